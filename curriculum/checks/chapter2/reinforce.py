"""Checks for section 2.3's policy-gradient part (REINFORCE). The loss is checked against the
estimator computed independently, one `torch.autograd.grad` per step; the loops by behaviour
(probe environments and a short CartPole learning curve)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Categorical

from curriculum.checking import assert_close, assert_shape, check, fail, on_optimizer_steps


# --------------------------------------------------------------------------------------------- reward-to-go
def _rtg_reference(rewards: list[float], gamma: float) -> torch.Tensor:
    """The definition, as a double sum: G_t = sum_{k >= t} gamma^(k - t) r_k."""
    T = len(rewards)
    return torch.tensor([sum(gamma ** (k - t) * rewards[k] for k in range(t, T)) for t in range(T)])


@check
def check_reward_to_go(reward_to_go) -> None:
    # Hand-computed: rewards [1, 2, 3], gamma 0.5 -> G = [1 + 0.5*2 + 0.25*3, 2 + 0.5*3, 3] = [2.75, 3.5, 3]
    got = reward_to_go(torch.tensor([1.0, 2.0, 3.0]), 0.5)
    got = assert_shape(got, (3,), "reward_to_go([1, 2, 3], 0.5)", hint="one return per step of the episode")
    expected = torch.tensor([2.75, 3.5, 3.0])
    if torch.allclose(got.float(), torch.tensor([3.5, 3.0, 0.0])):
        fail("reward_to_go is off by one: G_t starts with r_t itself (the reward of step t), not r_{t+1}")
    if torch.allclose(got.float(), torch.tensor([6.0, 5.0, 3.0])):
        fail("reward_to_go is not discounted: multiply the future return by gamma at each step back")
    if torch.allclose(got.float(), torch.tensor([2.75, 2.75, 2.75])):
        fail("every step got the whole episode's return: use the reward-to-go, the return from step t onwards")
    if torch.allclose(got.float(), torch.tensor([1 + 1 + 0.75, 1.0 + 0.75, 0.75])):
        fail("the discount is counted from the start of the episode (gamma^k r_k) instead of from step t "
             "(gamma^(k - t) r_k): walk backwards with G_t = r_t + gamma * G_{t+1}")
    assert_close(got, expected, "reward_to_go([1, 2, 3], gamma=0.5)", hint="G_t = r_t + gamma * G_{t+1}, G_T = 0")
    g = torch.Generator().manual_seed(0)
    for gamma in (0.0, 0.9, 1.0):
        rewards = torch.randn(17, generator=g)
        assert_close(reward_to_go(rewards, gamma), _rtg_reference(rewards.tolist(), gamma),
                     f"reward_to_go (17 random rewards, gamma={gamma})", atol=1e-4,
                     hint="G_t = r_t + gamma * G_{t+1}; with gamma = 0, G_t = r_t")
    one = reward_to_go(torch.tensor([4.0]), 0.9)
    assert_close(one, torch.tensor([4.0]), "reward_to_go of a one-step episode")


# --------------------------------------------------------------------------------------------- the loss
def _episode_batch(seed: int = 0):
    """A small policy, three episodes of lengths 5, 2 and 9 with random states, actions and rewards."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    policy = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    lengths = [5, 2, 9]
    obs = torch.randn(sum(lengths), 3, generator=g)
    actions = torch.randint(0, 2, (sum(lengths),), generator=g)
    returns = torch.cat([_rtg_reference(torch.randn(n, generator=g).add(1).tolist(), 0.9) for n in lengths])
    return policy, lengths, obs, actions, returns.float()


def _estimator(policy, obs, actions, weights, n_episodes) -> list[torch.Tensor]:
    """(1/N) sum_t grad log pi(a_t|s_t) * w_t, one autograd.grad call per step."""
    params = list(policy.parameters())
    total = [torch.zeros_like(p) for p in params]
    for s, a, w in zip(obs, actions, weights):
        logp = Categorical(logits=policy(s)).log_prob(a)
        for acc, grad in zip(total, torch.autograd.grad(logp, params)):
            acc += grad * float(w) / n_episodes
    return total


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


@check
def check_reinforce_loss(reinforce_loss) -> None:
    policy, lengths, obs, actions, returns = _episode_batch()
    n_ep, n_steps = len(lengths), len(obs)
    params = list(policy.parameters())
    baseline_net = nn.Linear(3, 1)  # the baseline is a network's output, as it will be in training
    for use_baseline in (False, True):
        logprobs = Categorical(logits=policy(obs)).log_prob(actions)
        baseline = baseline_net(obs).squeeze(-1) if use_baseline else None
        loss = reinforce_loss(logprobs, returns, n_ep, baseline)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            fail(f"reinforce_loss should return a scalar tensor, got {loss!r:.80}")
        if not loss.requires_grad:
            fail("reinforce_loss has no gradient: do not detach the log-probabilities (only the weights)")
        baseline_net.zero_grad()
        grads = torch.autograd.grad(loss, params, retain_graph=use_baseline, allow_unused=True)
        if any(g is None for g in grads):
            fail("some policy parameters get no gradient from reinforce_loss: the loss must use `logprobs`")
        got = -_flat(grads)  # the loss is minimised, so its gradient is minus the estimator
        weights = returns - baseline.detach() if use_baseline else returns
        expected = _flat(_estimator(policy, obs, actions, weights, n_ep))
        what = "the gradient of reinforce_loss" + (" with a baseline" if use_baseline else "")
        if torch.allclose(got, -expected, atol=1e-5):
            fail(f"{what} points the wrong way: the loss is MINUS sum log pi * (G - b) (we minimise it to ascend the return)")
        if use_baseline:
            no_baseline = _flat(_estimator(policy, obs, actions, returns, n_ep))
            if torch.allclose(got, no_baseline, atol=1e-5):
                fail(f"{what} equals the gradient without it: the baseline must multiply the log-probability, "
                     "weights = returns - baseline, loss = -(logprobs * weights).sum() / num_episodes "
                     "(subtracting it outside the product adds a constant with no effect on the policy)")
        ratio = (got @ expected) / (expected @ expected)
        if torch.allclose(got, expected * n_ep / n_steps, atol=1e-5):
            fail(f"{what} is the estimator times n_episodes / n_steps: you average over steps. Sum over steps and "
                 "divide by the number of episodes (the estimator averages whole episodes)")
        if torch.allclose(got, expected * n_ep, atol=1e-5):
            fail(f"{what} is the estimator times the number of episodes: divide the sum by num_episodes")
        assert_close(got, expected, what, atol=1e-5,
                     hint=f"(your gradient is {ratio:.3g} times the estimator along its direction) "
                          "loss = -(logprobs * (returns - baseline)).sum() / num_episodes")
        if use_baseline:
            loss.backward()
            leaked = [p.grad for p in baseline_net.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
            if leaked:
                fail("the policy loss sends gradient into the baseline network: detach the baseline "
                     "(weights = returns - baseline.detach()); the baseline is fitted by its own regression loss")


# --------------------------------------------------------------------------------------------- the loop
def _probe_args(env_id: str):
    from curriculum.solutions.chapter2.reinforce import ReinforceArgs

    return ReinforceArgs(env_id=env_id, gamma=0.5, num_iterations=30, episodes_per_batch=16, learning_rate=3e-2)


class _StaleGradientSpy:
    """While active, every optimiser step (any optimizer: `on_optimizer_steps`) marks the gradients it
    just applied with NaN. A loop that clears them (optimizer.zero_grad(), or policy.zero_grad(), before the
    next backward) never sees the mark; one that does not accumulates the next gradient onto it, and the
    next step finds NaN: the gradient about to be applied still holds the previous update's."""

    def __enter__(self):
        self.optimizers: list = []
        self.hooks = contextlib.ExitStack()
        self.hooks.enter_context(on_optimizer_steps(before=self._before, after=self._after))
        return self

    def __exit__(self, *exc) -> None:
        self.hooks.close()
        for optimizer in self.optimizers:  # leave no mark behind on the trained policy
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None and not torch.isfinite(p.grad).all():
                        p.grad = None

    @staticmethod
    def _grads(optimizer):
        return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]

    def _before(self, optimizer) -> None:
        if any(not torch.isfinite(g).all() for g in self._grads(optimizer)):
            fail("the gradient applied at an update still contains the previous update's gradient: gradients "
                 "accumulate across updates (backward() adds to .grad). Call optimizer.zero_grad() before "
                 "loss.backward() in every iteration")

    def _after(self, optimizer) -> None:
        if not any(o is optimizer for o in self.optimizers):
            self.optimizers.append(optimizer)
        with torch.no_grad():
            for g in self._grads(optimizer):
                g.fill_(float("nan"))


@check
def check_train_reinforce(train_reinforce) -> str:
    from curriculum.solutions.chapter2 import probes
    from curriculum.solutions.chapter2.reinforce import ReinforceArgs

    for i in (4, 5):
        probe = probes.PROBES[i]
        if i == 4:
            with _StaleGradientSpy():
                result = train_reinforce(_probe_args(probe.env_id), progress=False)
        else:
            result = train_reinforce(_probe_args(probe.env_id), progress=False)
        n = len(result.episode_returns)
        if n != 30 * 16:
            fail(f"on probe {i}, 30 iterations of 16 episodes should record 480 episode returns, got {n}: "
                 "append each finished episode's (undiscounted) return to result.episode_returns")
        with torch.no_grad():
            p = result.policy(torch.from_numpy(probe.test_obs)).softmax(-1)[torch.arange(len(probe.test_obs)),
                                                                           torch.from_numpy(probe.best_action)]
        if (p < 0.9).any():
            hint = ("the policy prefers the WRONG action: is the loss minus log pi * return?" if (p < 0.5).any() else
                    "it learns too slowly: one optimiser step per iteration on the whole batch, with log-probs of "
                    "the actions actually taken")
            fail(f"probe {i} ({probe.description}): P(best action) at obs {probe.test_obs[:, 0].tolist()} should "
                 f"reach 0.9, got {np.round(p.numpy(), 3).tolist()}. {hint}"
                 + (" Probe 5 failing alone means observations and actions are misaligned." if i == 5 else ""))
    args = ReinforceArgs(seed=0, num_iterations=20)
    result = train_reinforce(args, progress=False)
    rets = result.episode_returns
    first, last = float(np.mean(rets[:24])), float(np.mean(rets[-24:]))
    if not last >= first + 15:
        fail(f"on CartPole-v1, 20 iterations of 8 episodes should lift the mean return by 15 or more; the first 24 "
             f"episodes averaged {first:.1f}, the last 24 {last:.1f}. Check that each iteration uses episodes of the "
             "CURRENT policy, zero_grad before backward, and that rewards reach reward_to_go in step order, one "
             "call per episode (on the concatenated batch, returns leak from one episode into the one before)")
    return f"probes 4 and 5 solved; CartPole mean return {first:.1f} -> {last:.1f} in {len(rets)} episodes"


# --------------------------------------------------------------------------------------------- the baseline
@check
def check_fit_baseline(fit_baseline) -> str:
    from curriculum.solutions.chapter2 import probes

    torch.manual_seed(0)
    value_net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    obs, returns = torch.randn(40, 3), torch.randn(40)
    before = value_net(obs).squeeze(-1).detach()
    opt = torch.optim.Adam(value_net.parameters(), lr=1e-2)
    steps, step = [0], opt.step
    opt.step = lambda *a, **k: (steps.__setitem__(0, steps[0] + 1), step(*a, **k))[1]
    out = fit_baseline(value_net, opt, obs, returns, 7)
    out = assert_shape(out, (40,), "the baseline fit_baseline returns", hint="one value per state: squeeze the last axis")
    if out.requires_grad:
        fail("the returned baseline carries a gradient: predict it under torch.no_grad() (or .detach() it)")
    if steps[0] != 7:
        fail(f"fit_baseline should take exactly `epochs` = 7 optimiser steps, took {steps[0]}")
    after = value_net(obs).squeeze(-1).detach()
    if torch.allclose(out, after, atol=1e-6) and not torch.allclose(before, after, atol=1e-6):
        fail("the returned baseline was predicted AFTER fitting on these same returns: predict first, then fit "
             "(a baseline that has seen G_t can depend on a_t, which biases the gradient)")
    assert_close(out, before, "the returned baseline", hint="return value_net(obs) as it was before the regression steps")
    if ((after - returns) ** 2).mean() >= ((before - returns) ** 2).mean():
        fail("the regression steps did not bring V closer to the returns: minimise mean((V(s) - G)^2) "
             "with optimizer.zero_grad(), loss.backward(), optimizer.step()")

    # Probes 1-3: Monte Carlo returns of known value; the fitted V must match them.
    gamma = 0.5
    for i in (1, 2, 3):
        env = probes.make_probe(i)
        torch.manual_seed(i)
        net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
        opt = torch.optim.Adam(net.parameters(), lr=3e-2)
        for it in range(40):
            obs_list, ret_list = [], []
            for ep in range(8):
                obs, _ = env.reset(seed=it * 8 + ep)
                rewards, done = [], False
                while not done:
                    obs_list.append(torch.as_tensor(obs))
                    obs, r, term, trunc, _ = env.step(0)
                    rewards.append(r)
                    done = term or trunc
                ret_list.append(_rtg_reference(rewards, gamma))
            fit_baseline(net, opt, torch.stack(obs_list), torch.cat(ret_list).float(), 5)
        res = probes.evaluate_actor_critic(i, lambda o, net=net: net(o).squeeze(-1), lambda o: torch.zeros(len(o), 1), gamma)
        if not res.passed:
            fail(f"fitting V to Monte Carlo returns failed a probe:\n{res}\nA common cause when only this "
                 "part fails is a shape slip: value_net(obs) is (steps, 1), and (steps, 1) - (steps,) broadcasts to "
                 "(steps, steps), which fits every state to the mean return. squeeze(-1) before subtracting")
    return "the baseline matches probes 1-3"
