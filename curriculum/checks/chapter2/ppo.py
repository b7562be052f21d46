"""Checks for section 2.3 (PPO). Each compares against a formula written out independently here,
hand-computed numbers, or behaviour (probe environments), and names the likely bug when it can."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Categorical

from curriculum.checking import assert_close, assert_scalar_close, assert_shape, check, fail, module_instance


# --------------------------------------------------------------------------------------------- Agent
def _last_linear(module: nn.Module, what: str) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        fail(f"{what} has no nn.Linear layers")
    return linears[-1]


@check
def check_actor_critic_mlps(actor_critic_mlps) -> str:
    torch.manual_seed(0)
    got = actor_critic_mlps(5, 3, 16)
    if not isinstance(got, tuple) or len(got) != 2 or not all(isinstance(m, nn.Module) for m in got):
        fail("actor_critic_mlps should return (actor, critic), two nn.Modules")
    actor, critic = got
    _check_mlps(actor, critic, obs_dim=5, n_actions=3, hidden=16)
    return "two separate tanh MLPs, orthogonal init, last-layer gains 0.01 (actor) and 1 (critic)"


def _is_orthogonal(weight: torch.Tensor, gain: float) -> bool:
    """W is gain times an orthogonal matrix: its rows (if it is wide) or its columns (if tall) are orthogonal with norm gain."""
    W = weight.detach().double()
    gram = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
    return torch.allclose(gram, gain ** 2 * torch.eye(len(gram), dtype=W.dtype), atol=1e-4 * max(gain ** 2, 1e-4))


def _check_mlps(actor: nn.Module, critic: nn.Module, obs_dim: int, n_actions: int, hidden: int) -> None:
    actor_params = {id(p) for p in actor.parameters()}
    if any(id(p) in actor_params for p in critic.parameters()):
        fail("for vector observations the actor and the critic should be separate networks (no shared layers)")
    for net, who in ((actor, "actor"), (critic, "critic")):
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if [(m.in_features, m.out_features) for m in linears[:2]] != [(obs_dim, hidden), (hidden, hidden)]:
            fail(f"the {who} should be {obs_dim} -> {hidden} -> {hidden} -> out, got Linear layers "
                 f"{[(m.in_features, m.out_features) for m in linears]}")
        if not any(isinstance(m, nn.Tanh) for m in net.modules()):
            fail(f"the {who} has no nn.Tanh between its layers: without a nonlinearity it is one linear map")
        for m in linears[:-1]:
            if not _is_orthogonal(m.weight, 2 ** 0.5):
                fail(f"the {who}'s hidden layers should be layer_init(...) with the default gain sqrt(2) (an orthogonal "
                     f"matrix times 1.414), got a weight that is not: wrap every nn.Linear in layer_init")
    out_a, out_c = _last_linear(actor, "actor"), _last_linear(critic, "critic")
    if out_a.out_features != n_actions or out_c.out_features != 1:
        fail(f"the actor should end in {n_actions} logits and the critic in 1 value, got {out_a.out_features} and {out_c.out_features}")
    # orthogonal init with gain g gives each output row of the weight a norm of exactly g
    for layer, gain, who in ((out_a, 0.01, "actor"), (out_c, 1.0, "critic")):
        norms = layer.weight.detach().norm(dim=1)
        if not torch.allclose(norms, torch.full_like(norms, gain), rtol=1e-3):
            fail(f"the {who}'s last layer should be layer_init(..., std={gain}) (orthogonal, row norm {gain}), "
                 f"got row norms {norms.tolist()}"
                 + (": a tiny actor output makes the first policy near-uniform" if who == "actor" else ""))


@check
def check_agent(Agent) -> None:
    torch.manual_seed(0)
    agent = module_instance(Agent, (4,), 2)
    for name in ("actor", "critic"):
        if not isinstance(getattr(agent, name, None), nn.Module):
            fail(f"Agent should have an nn.Module attribute `{name}`")
    _check_mlps(agent.actor, agent.critic, obs_dim=4, n_actions=2, hidden=64)

    obs = torch.randn(64, 4)
    action, logprob, entropy, value = agent.get_action_and_value(obs)
    for t, what in ((action, "action"), (logprob, "log_prob"), (entropy, "entropy"), (value, "value")):
        assert_shape(t, (64,), what, hint="return one number per observation (squeeze the critic's last axis)")
    with torch.no_grad():
        dist = Categorical(logits=agent.actor(obs))
        assert_close(logprob, dist.log_prob(action), "log_prob of the sampled action",
                     hint="use Categorical(logits=actor(obs)).log_prob(action)")
        assert_close(entropy, dist.entropy(), "entropy", hint="use the distribution's entropy()")
        assert_close(value, agent.critic(obs).squeeze(-1), "value", hint="value = critic(obs).squeeze(-1)")
    given = torch.randint(0, 2, (64,))
    got_action, got_logprob, _, _ = agent.get_action_and_value(obs, given)
    if not torch.equal(torch.as_tensor(got_action), given):
        fail("when `action` is passed in, return it unchanged (the update re-evaluates the rollout's actions)")
    assert_close(got_logprob, dist.log_prob(given).detach(), "log_prob of a given action",
                 hint="evaluate the given action, do not sample a new one")
    # sampling, not argmax: from one near-uniform state both actions must appear
    samples = torch.stack([agent.get_action_and_value(obs[:1])[0] for _ in range(50)])
    if samples.unique().numel() < 2:
        fail("get_action_and_value always picks the same action from a near-uniform policy: sample "
             "(dist.sample()) instead of taking the argmax, or PPO never explores")


# --------------------------------------------------------------------------------------------- GAE
def gae_reference(next_value, rewards, values, terminated, truncated, gamma, lam,
                  bootstrap_terminated=False, bootstrap_truncated=True, reset_at="done"):
    """Independent GAE: for each env and each t, sum (gamma*lam)^k delta_{t+k} until the episode ends.
    The keyword arguments reproduce common bugs, so the check can name them."""
    T, E = rewards.shape
    next_values = torch.cat([values[1:], next_value[None]]).double()
    out = torch.zeros(T, E, dtype=torch.float64)
    for e in range(E):
        for t in range(T):
            total, coef = 0.0, 1.0
            for k in range(t, T):
                term, trunc = bool(terminated[k, e]), bool(truncated[k, e])
                boot = (not term or bootstrap_terminated) and (not trunc or bootstrap_truncated)
                delta = float(rewards[k, e]) + gamma * float(next_values[k, e]) * boot - float(values[k, e])
                total += coef * delta
                ends = {"done": term or trunc, "terminated": term, "never": False}[reset_at]
                if ends:
                    break
                coef *= gamma * lam
            out[t, e] = total
    return out.float()


_GAE_BUGS = [
    (dict(bootstrap_terminated=True), "you bootstrap through terminated steps: multiply V(s_{t+1}) by (1 - terminated_t)"),
    (dict(bootstrap_truncated=False), "you do not bootstrap after truncation: a truncated episode's final "
     "observation still has a value, so only `terminated` (not `truncated`) should zero V(s_{t+1})"),
    (dict(reset_at="never"), "the advantage leaks across episode boundaries: multiply A_{t+1} by (1 - done_t) "
     "where done = terminated | truncated"),
    (dict(reset_at="terminated"), "the advantage leaks across truncated episode boundaries: reset the recursion "
     "on terminated OR truncated"),
    (dict(bootstrap_terminated=True, reset_at="never"), "episodes are never separated: bootstrap only when "
     "not terminated, and reset the recursion at every episode end"),
]


def _check_gae_case(fn, case: dict, what: str) -> None:
    got = fn(**case)
    expected = gae_reference(case["next_value"], case["rewards"], case["values"], case["terminated"],
                             case["truncated"], case["gamma"], case["gae_lambda"])
    got = assert_shape(got, expected.shape, what)
    if torch.allclose(got.float(), expected, atol=1e-4):
        return
    for kwargs, hint in _GAE_BUGS:
        bug = gae_reference(case["next_value"], case["rewards"], case["values"], case["terminated"],
                            case["truncated"], case["gamma"], case["gae_lambda"], **kwargs)
        if torch.allclose(got.float(), bug, atol=1e-4):
            fail(f"{what}: {hint}")
    if case["gae_lambda"] == 0.0:
        hint = "with lambda = 0 the advantage is the one-step TD error r + gamma V(s') (1 - terminated) - V(s)"
    else:
        hint = "loop t backwards: A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}"
    assert_close(got, expected, what, atol=1e-4, hint=hint)


@check
def check_compute_advantages(compute_advantages) -> None:
    f, tr = False, True
    # Hand-computed. One env, no episode end, gamma 0.9, lambda 0.8: every delta = 1 + 0.9*0.5 - 0.5 = 0.95;
    # A2 = 0.95, A1 = 0.95 + 0.72*0.95 = 1.634, A0 = 0.95 + 0.72*1.634 = 2.12648.
    got = compute_advantages(next_value=torch.tensor([0.5]), rewards=torch.ones(3, 1), values=torch.full((3, 1), 0.5),
                             terminated=torch.zeros(3, 1, dtype=torch.bool), truncated=torch.zeros(3, 1, dtype=torch.bool),
                             gamma=0.9, gae_lambda=0.8)
    assert_close(got, torch.tensor([[2.12648], [1.634], [0.95]]), "advantages (no episode end)", atol=1e-4,
                 hint="loop t backwards: A_t = delta_t + gamma * lambda * A_{t+1}, delta_t = r_t + gamma V(s_{t+1}) - V(s_t)")
    # Hand-computed, gamma 0.5, lambda 1, values [1, 2, 3, 4], next_value 5, rewards [1, 1, 0, 1] (row 2 is the
    # autoreset step). Env 0 terminates at t=1, env 1 is truncated at t=1.
    #   env 0: deltas [1+1-1, 1+0-2, 0+2-3, 1+2.5-4] = [1, -1, -1, -0.5];  A = [1 + 0.5*(-1), -1, -1 + 0.5*(-0.5), -0.5]
    #   env 1: delta_1 = 1 + 0.5*3 - 2 = 0.5 (bootstraps from V(final obs) = 3);  A = [1 + 0.5*0.5, 0.5, -1.25, -0.5]
    case = dict(next_value=torch.tensor([5.0, 5.0]), rewards=torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]),
                values=torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]),
                terminated=torch.tensor([[f, f], [tr, f], [f, f], [f, f]]),
                truncated=torch.tensor([[f, f], [f, tr], [f, f], [f, f]]), gamma=0.5, gae_lambda=1.0)
    expected = torch.tensor([[0.5, 1.25], [-1.0, 0.5], [-1.25, -1.25], [-0.5, -0.5]])
    assert_close(gae_reference(**{k: v for k, v in case.items() if k != "gae_lambda"}, lam=1.0), expected,
                 "the check's own reference (a bug in the check: please report it)")
    _check_gae_case(compute_advantages, case, "advantages (env 0 terminates at t=1, env 1 is truncated at t=1)")
    # Random rollouts with many episode ends, against the independent per-episode sum above.
    g = torch.Generator().manual_seed(0)
    for lam in (0.0, 0.95, 1.0):
        T, E = 12, 3
        ends = torch.rand(T, E, generator=g)
        case = dict(next_value=torch.randn(E, generator=g), rewards=torch.randn(T, E, generator=g),
                    values=torch.randn(T, E, generator=g), terminated=ends < 0.15, truncated=(ends >= 0.15) & (ends < 0.3),
                    gamma=0.9, gae_lambda=lam)
        _check_gae_case(compute_advantages, case, f"advantages (random rollout, lambda={lam})")


# --------------------------------------------------------------------------------------------- losses
def _normalise(adv: torch.Tensor, unbiased: bool) -> torch.Tensor:
    return (adv - adv.mean()) / (adv.std(unbiased=unbiased) + 1e-8)


def _surrogate(new, old, adv, c, norm, unbiased=True, reduce=torch.maximum):
    adv = _normalise(adv, unbiased) if norm else adv
    ratio = (new - old).exp()
    return reduce(-adv * ratio, -adv * ratio.clamp(1 - c, 1 + c)).mean()


@check
def check_policy_loss(policy_loss) -> None:
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(200, generator=g) * 2
    new = old + torch.randn(200, generator=g) * 0.4  # ratios well outside [0.8, 1.2], so clipping matters
    adv = torch.randn(200, generator=g) * 3 + 1
    for norm in (False, True):
        got = policy_loss(new, old, adv, 0.2, norm)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            fail(f"policy_loss should return a scalar tensor (the mean over the batch), got {got!r:.80}")
        if not got.requires_grad and new.requires_grad:
            fail("policy_loss must be differentiable")
        expected = _surrogate(new, old, adv, 0.2, norm)
        if norm and math.isclose(got.item(), _surrogate(new, old, adv, 0.2, True, unbiased=False).item(), rel_tol=1e-5):
            continue  # the biased std is a fine normaliser too
        if math.isclose(got.item(), expected.item(), rel_tol=1e-4, abs_tol=1e-6):
            continue
        bugs = [
            (_surrogate(new, old, adv, 0.2, norm, reduce=torch.minimum),
             "you take the min of the two losses: PPO takes the pessimistic objective, min of the surrogates = "
             "MAX of the losses -A*ratio and -A*clip(ratio)"),
            (-_surrogate(new, old, adv, 0.2, norm), "the sign is flipped: the loss is -A * ratio (we minimise it)"),
            (_surrogate(new, old, adv, 0.2, not norm), "advantage normalisation is " + ("missing" if norm else
             "applied although norm_adv=False")),
            (_surrogate(new, old, adv, 1e9, norm), "the ratio is never clipped: clamp it to [1 - clip_coef, 1 + clip_coef]"),
            (-(adv if not norm else _normalise(adv, True)).mul((new - old).exp()).mean(),
             "the ratio is never clipped: clamp it to [1 - clip_coef, 1 + clip_coef]"),
        ]
        for value, hint in bugs:
            if math.isclose(got.item(), value.item(), rel_tol=1e-4, abs_tol=1e-6):
                fail(f"policy_loss(norm_adv={norm}): {hint}")
        assert_scalar_close(got, expected.item(), f"policy_loss(norm_adv={norm})",
                            hint="ratio = exp(new - old); loss = mean(max(-A*ratio, -A*clamp(ratio, 1-c, 1+c)))")
    # gradient flows to the new log-probs only
    new_p = new.clone().requires_grad_(True)
    policy_loss(new_p, old, adv, 0.2, True).backward()
    if new_p.grad is None or new_p.grad.abs().sum() == 0:
        fail("no gradient reaches new_logprob: do not detach it (old_logprob is the constant)")


def _vloss(new, old, ret, c, clip, reduce=torch.maximum, half=0.5):
    unclipped = (new - ret) ** 2
    if not clip:
        return half * unclipped.mean()
    clipped = (old + (new - old).clamp(-c, c) - ret) ** 2
    return half * reduce(unclipped, clipped).mean()


@check
def check_value_loss(value_loss) -> None:
    g = torch.Generator().manual_seed(2)
    old = torch.randn(100, generator=g)
    new = old + torch.randn(100, generator=g) * 0.5
    ret = torch.randn(100, generator=g) * 2
    for clip in (False, True):
        got = value_loss(new, old, ret, 0.2, clip)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            fail(f"value_loss should return a scalar tensor, got {got!r:.80}")
        expected = _vloss(new, old, ret, 0.2, clip).item()
        if math.isclose(got.item(), expected, rel_tol=1e-4, abs_tol=1e-6):
            continue
        bugs = [
            (_vloss(new, old, ret, 0.2, clip, half=1.0), "missing the factor 0.5 in front of the squared error"),
            (_vloss(new, old, ret, 0.2, clip, reduce=torch.minimum), "take the MAX of the clipped and unclipped errors"),
            (_vloss(new, old, ret, 0.2, not clip), "clip_vloss=" + str(clip) + " is ignored"),
            (0.5 * torch.maximum((new - ret) ** 2, (ret + (new - ret).clamp(-0.2, 0.2) - ret) ** 2).mean(),
             "clip the new value around the OLD value: old + clamp(new - old, -c, c)"),
        ]
        for value, hint in bugs:
            if math.isclose(got.item(), value.item(), rel_tol=1e-4, abs_tol=1e-6):
                fail(f"value_loss(clip_vloss={clip}): {hint}")
        assert_scalar_close(got, expected, f"value_loss(clip_vloss={clip})",
                            hint="0.5 * mean((V - R)^2), with the clipped value old + clamp(V - old, -c, c)")


@check
def check_kl_and_clipfrac(kl_and_clipfrac) -> None:
    g = torch.Generator().manual_seed(3)
    old = -torch.rand(500, generator=g) * 2
    # log ratios spread evenly over [-0.35, 0.6]: lopsided, so a ratio inverted to old/new gives another KL,
    # and |ratio - 1| > 0.2 and |log ratio| > 0.2 disagree on a few percent of samples
    new = old + torch.linspace(-0.35, 0.6, 500)[torch.randperm(500, generator=g)]
    out = kl_and_clipfrac(new, old, 0.2)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(f"kl_and_clipfrac should return a tuple (approx_kl, clipfrac), got {type(out).__name__}")
    kl, frac = (float(x) for x in out)
    logratio = new - old
    expected_kl = ((logratio.exp() - 1) - logratio).mean().item()
    if math.isclose(kl, (-logratio).mean().item(), rel_tol=1e-4):
        fail("approx_kl is mean(-log ratio), the naive estimator (high variance, can go negative): "
             "use mean((ratio - 1) - log ratio)")
    inverted = ((-logratio).exp() - 1 + logratio).mean().item()
    if math.isclose(kl, inverted, rel_tol=1e-4):
        fail(f"approx_kl is {kl:.4g}, the estimator with the ratio inverted (old / new); expected {expected_kl:.4g}: "
             "logratio = new_logprob - old_logprob, ratio = exp(logratio)")
    if kl < 0:
        fail(f"approx_kl is negative ({kl:.4g}): (ratio - 1) - log ratio is never negative, so check the sign of each term")
    assert_scalar_close(kl, expected_kl, "approx_kl", hint="mean((ratio - 1) - logratio) with logratio = new - old")
    expected_frac = ((logratio.exp() - 1).abs() > 0.2).float().mean().item()
    assert_scalar_close(frac, expected_frac, "clipfrac", hint="fraction of samples with |ratio - 1| > clip_coef (the ratio, not the log ratio)")


# --------------------------------------------------------------------------------------------- update
def _update_setup(ppo_module, n=64, **arg_overrides):
    torch.manual_seed(0)
    agent = ppo_module.Agent((4,), 2)
    obs = torch.randn(n, 4)
    with torch.no_grad():
        actions, logprobs, _, values = agent.get_action_and_value(obs)
    defaults = dict(num_envs=1, num_steps=n, update_epochs=3, num_minibatches=4, learning_rate=1e-2, ent_coef=0.0)
    args = ppo_module.PPOArgs(**{**defaults, **arg_overrides})
    return agent, obs, actions, logprobs, values, args


def _count_steps(opt: torch.optim.Optimizer) -> list[int]:
    """Wrap opt.step to count calls; returns the one-element counter."""
    count, step = [0], opt.step

    def counting_step(*args, **kwargs):
        count[0] += 1
        return step(*args, **kwargs)

    opt.step = counting_step
    return count


@check
def check_ppo_update(ppo_update) -> None:
    from curriculum.solutions.chapter2 import ppo as ref

    # 1. every sample once per epoch, one optimiser step per minibatch
    agent, obs, actions, logprobs, values, args = _update_setup(ref)
    batch = ref.Batch(obs, actions, logprobs, values, torch.randn(64), values + torch.randn(64))
    opt = torch.optim.Adam(agent.parameters(), lr=1e-2)
    steps = _count_steps(opt)
    seen = []
    forward = agent.get_action_and_value
    agent.get_action_and_value = lambda o, a=None: (seen.append(len(o)), forward(o, a))[1]
    stats = ppo_update(agent, opt, batch, args)
    if steps[0] != args.update_epochs * args.num_minibatches:
        fail(f"expected {args.update_epochs} epochs x {args.num_minibatches} minibatches = "
             f"{args.update_epochs * args.num_minibatches} optimizer steps, got {steps[0]}")
    if sum(seen) != args.update_epochs * 64 or max(seen) > 64 // args.num_minibatches + 1:
        fail(f"each epoch should split the {64} samples into {args.num_minibatches} minibatches (each sample once); "
             f"the forward passes saw batches of sizes {seen}")
    if not isinstance(stats, dict) or not {"policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"} <= set(stats):
        fail("ppo_update should return a dict with policy_loss, value_loss, entropy, approx_kl and clipfrac")
    # 2. gradients are clipped: huge returns make huge value gradients
    agent, obs, actions, logprobs, values, args = _update_setup(ref, update_epochs=1, num_minibatches=1, max_grad_norm=0.5)
    opt = torch.optim.SGD(agent.parameters(), lr=0.0)  # lr 0: the update leaves the gradients of the last step to inspect
    ppo_update(agent, opt, ref.Batch(obs, actions, logprobs, values, torch.randn(64), values + 1000.0), args)
    norm = torch.norm(torch.stack([p.grad.norm() for p in agent.parameters() if p.grad is not None]))
    if norm > args.max_grad_norm * 1.01:
        fail(f"gradient norm after the update is {norm:.3g} > max_grad_norm={args.max_grad_norm}: call "
             "nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm) between backward() and step()")
    # 3. positive advantage for action 1 everywhere makes action 1 more likely
    agent, obs, _, _, values, args = _update_setup(ref, update_epochs=4, num_minibatches=2, norm_adv=False)
    acts = torch.randint(0, 2, (64,))
    with torch.no_grad():
        _, logprobs, _, _ = agent.get_action_and_value(obs, acts)
        p_before = agent.actor(obs).softmax(-1)[:, 1].mean()
    adv = torch.where(acts == 1, 1.0, -1.0)
    ppo_update(agent, torch.optim.Adam(agent.parameters(), lr=1e-2), ref.Batch(obs, acts, logprobs, values, adv, values), args)
    with torch.no_grad():
        p_after = agent.actor(obs).softmax(-1)[:, 1].mean()
    if p_after <= p_before + 0.05:
        fail(f"with advantage +1 for action 1 and -1 for action 0, P(action 1) went {p_before:.3f} -> {p_after:.3f}: "
             "check the policy loss's sign and that you pass the minibatch's actions to get_action_and_value")
    # 4. the entropy bonus increases entropy (loss = ... - ent_coef * entropy)
    agent, obs, actions, logprobs, values, args = _update_setup(ref, update_epochs=5, num_minibatches=1, ent_coef=1.0)
    with torch.no_grad():
        _last_linear(agent.actor, 'actor').bias.copy_(torch.tensor([1.0, -1.0]))  # start away from uniform
        _, logprobs, ent_before, _ = agent.get_action_and_value(obs, actions)
    ppo_update(agent, torch.optim.Adam(agent.parameters(), lr=1e-2), ref.Batch(obs, actions, logprobs, values, torch.zeros(64), values), args)
    with torch.no_grad():
        _, _, ent_after, _ = agent.get_action_and_value(obs, actions)
    if ent_after.mean() <= ent_before.mean():
        fail(f"with only the entropy term active, entropy went {ent_before.mean():.4f} -> {ent_after.mean():.4f}: "
             "the bonus is SUBTRACTED from the loss (loss = pg_loss - ent_coef * entropy + vf_coef * v_loss)")
    # 5. the value head moves toward the returns
    agent, obs, actions, logprobs, values, args = _update_setup(ref, update_epochs=20, num_minibatches=1)
    returns = values + 0.15
    ppo_update(agent, torch.optim.Adam(agent.parameters(), lr=1e-3), ref.Batch(obs, actions, logprobs, values, torch.zeros(64), returns), args)
    with torch.no_grad():
        err = (agent.get_value(obs) - returns).abs().mean()
    if err > 0.1:
        fail(f"after 20 epochs the critic is still {err:.3f} from the returns (started 0.15 away): is vf_coef * value_loss "
             "in the total loss, with the minibatch's old values and returns?")
    # 6. early stopping on target_kl
    agent, obs, actions, logprobs, values, args = _update_setup(ref, update_epochs=5, num_minibatches=2, target_kl=1e-12)
    opt = torch.optim.Adam(agent.parameters(), lr=1e-2)
    steps = _count_steps(opt)
    ppo_update(agent, opt, ref.Batch(obs, actions, logprobs, values, torch.randn(64), values), args)
    if steps[0] != args.num_minibatches:
        fail(f"with target_kl={args.target_kl} the first epoch already exceeds it, so training should stop after it "
             f"({args.num_minibatches} steps), got {steps[0]} steps: check approx_kl > target_kl after each epoch")


# --------------------------------------------------------------------------------------------- training
def probe_args(env_id: str):
    from curriculum.solutions.chapter2.ppo import PPOArgs

    return PPOArgs(env_id=env_id, seed=0, gamma=0.5, num_envs=4, num_steps=16, total_timesteps=512,
                   learning_rate=3e-3, update_epochs=10)


TIME_LIMIT_PROBE = "curriculum/ProbeTimeLimit-v0"
TIME_LIMIT_STEPS = 2


def _register_time_limit_probe() -> str:
    """An environment that never terminates: one action, observation always 1, reward +1, episodes cut by a
    time limit of TIME_LIMIT_STEPS steps (so every episode end is a truncation). Its true value is
    1 / (1 - gamma); the rollout must store terminated = False throughout, and GAE must bootstrap each
    truncated episode from V(final observation)."""
    import gymnasium as gym

    from curriculum.solutions.chapter2 import probes

    class EndlessProbeEnv(probes._ProbeEnv):
        def _first_obs(self):
            return np.ones(1, dtype=np.float32)

        def step(self, action):
            return self._obs.copy(), 1.0, False, False, {}

    if TIME_LIMIT_PROBE not in gym.registry:
        gym.register(id=TIME_LIMIT_PROBE, entry_point=EndlessProbeEnv, max_episode_steps=TIME_LIMIT_STEPS)
    return TIME_LIMIT_PROBE


def _wiring(train_ppo, env_id: str = "curriculum/Probe3-v0", never_terminates: bool = False):
    """Run train_ppo on a probe with collect_rollout and ppo_update wrapped (in train_ppo's own globals) to
    record what the loop passes between them, and check the plumbing: rollouts continue from where the
    previous one stopped, the batch holds the valid rows with GAE advantages of the rollout. On an env whose
    episodes only ever end by truncation (`never_terminates`), also check that no truncation is treated as a
    termination, in the rollout's flags or in the advantages."""
    from curriculum.solutions.chapter2 import ppo as ref

    g = getattr(train_ppo, "__globals__", {})
    names = ("collect_rollout", "ppo_update")
    if not all(callable(g.get(n)) for n in names):
        return train_ppo(probe_args(env_id), progress=False)
    saved = {n: g[n] for n in names}
    calls, batches = [], []

    def collect(agent, envs, obs, done, num_steps, *rest, **kw):
        r = saved["collect_rollout"](agent, envs, obs, done, num_steps, *rest, **kw)
        calls.append((obs.clone(), torch.as_tensor(done).clone(), num_steps, r))
        return r

    def update(agent, optimizer, batch, args):
        batches.append(batch)
        return saved["ppo_update"](agent, optimizer, batch, args)

    args = probe_args(env_id)
    g.update(collect_rollout=collect, ppo_update=update)
    try:
        result = train_ppo(args, progress=False)
    finally:
        g.update(saved)
    if len(calls) != args.num_iterations or len(batches) != args.num_iterations:
        fail(f"{args.num_iterations} iterations should collect {args.num_iterations} rollouts and run as many updates, "
             f"got {len(calls)} rollouts and {len(batches)} updates")
    if result.env_steps != args.num_iterations * args.batch_size:
        fail(f"env_steps should count num_envs * num_steps = {args.batch_size} per iteration, "
             f"{args.num_iterations * args.batch_size} in all; got {result.env_steps}")
    for i, ((obs, done, n, r), batch) in enumerate(zip(calls, batches)):
        if n != args.num_steps:
            fail(f"collect_rollout was asked for {n} steps, expected args.num_steps = {args.num_steps}")
        if i == 0 and bool(done.any()):
            fail("the first rollout should start with done = all False (nothing has ended yet)")
        if i > 0:
            prev = calls[i - 1][3]
            if not torch.equal(obs, prev.next_obs):
                fail(f"rollout {i} does not start from the previous rollout's next_obs: carry obs = rollout.next_obs "
                     "over to the next iteration (resetting would cut every episode at a rollout boundary)")
            if not torch.equal(done, prev.next_done):
                fail(f"rollout {i} starts with done = {done.tolist()}, but the previous rollout ended with next_done = "
                     f"{prev.next_done.tolist()}: carry done = rollout.next_done over, or the first row after an "
                     "episode end is taken for a real transition")
        merged_msg = (f"on an environment that never terminates (a time limit cuts its episodes every "
                      f"{TIME_LIMIT_STEPS} steps), {{}}: truncated is merged into done (terminated | truncated), "
                      "which treats the time limit as a terminal state. A truncated episode still has a future: GAE "
                      "must bootstrap it from V(final observation), so keep the env's terminated and truncated "
                      "apart and pass both to compute_advantages (rollout.terminated, rollout.truncated)")
        if never_terminates and bool(torch.as_tensor(r.terminated).bool().any()):
            fail(merged_msg.format(f"rollout {i} stores terminated = True on "
                                   f"{int(torch.as_tensor(r.terminated).bool().sum())} rows"))
        adv = ref.compute_advantages(r.next_value, r.rewards, r.values, r.terminated, r.truncated,
                                     args.gamma, args.gae_lambda)
        if never_terminates:
            merged = ref.compute_advantages(r.next_value, r.rewards, r.values, r.terminated | r.truncated,
                                            r.truncated, args.gamma, args.gae_lambda)
            got = batch.advantages.detach().float() if isinstance(batch.advantages, torch.Tensor) else None
            if (got is not None and got.shape == merged[r.valid].shape
                    and torch.allclose(got, merged[r.valid], atol=1e-5)
                    and not torch.allclose(adv[r.valid], merged[r.valid], atol=1e-5)):
                fail(merged_msg.format(f"the advantages of iteration {i} do not bootstrap the truncated "
                                       "episodes"))
        if len(batch) != int(r.valid.sum()):
            fail(f"the batch has {len(batch)} rows, the rollout {int(r.valid.sum())} valid ones: build it with "
                 "Batch.from_rollout(rollout, advantages), which drops the autoreset rows")
        assert_close(batch.advantages, adv[r.valid], f"the batch's advantages (iteration {i})",
                     hint="compute_advantages(rollout.next_value, rollout.rewards, rollout.values, rollout.terminated, "
                          "rollout.truncated, args.gamma, args.gae_lambda)")
    return result


@check
def check_train_ppo(train_ppo) -> str:
    from curriculum.solutions.chapter2 import probes

    def train(env_id):
        agent = train_ppo(probe_args(env_id), progress=False).agent
        return agent.get_value, lambda obs: agent.actor(agent.features(obs))

    result = _wiring(train_ppo)
    lrs = [row["learning_rate"] for row in result.history]
    n, lr0 = len(lrs), probe_args("").learning_rate
    expected = [lr0 * (1 - i / n) for i in range(n)]
    if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(lrs, expected)):
        fail(f"the learning rate should anneal linearly from {lr0} by lr0 * (1 - iteration / num_iterations); "
             f"got {lrs[:3]} ... {lrs[-2:]}, expected {expected[:3]} ... {expected[-2:]}")
    _wiring(train_ppo, _register_time_limit_probe(), never_terminates=True)
    diagnosis = probes.diagnose(train, gamma=0.5, kind="actor_critic")
    if not diagnosis.ok:
        fail("PPO failed a probe environment:\n" + str(diagnosis))
    return "all five probes passed"


# --------------------------------------------------------------------------------------------- rollouts
def _counter_env(term_at: int | None, max_steps: int):
    """obs = (steps into the episode, episode index), reward = new step count + 100 * action,
    terminated when the step count reaches `term_at`, truncated after `max_steps` (TimeLimit)."""
    import gymnasium as gym
    import numpy as np

    class CounterEnv(gym.Env):
        observation_space = gym.spaces.Box(-1e6, 1e6, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.ep = getattr(self, "ep", -1) + 1
            self.t = 0
            return np.array([0.0, self.ep], np.float32), {}

        def step(self, action):
            self.t += 1
            term = term_at is not None and self.t == term_at
            return np.array([self.t, self.ep], np.float32), float(self.t + 100 * int(action)), term, False, {}

    return lambda: gym.wrappers.TimeLimit(CounterEnv(), max_episode_steps=max_steps)


class _ScriptedAgent(nn.Module):
    """action = step count mod 2, log-prob = -(step count), value = step count + 0.5 + 10 * episode.
    The scale parameter makes every output carry a gradient unless it is computed under no_grad."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def get_value(self, obs):
        obs = obs.float()
        return (obs[:, 0] + 0.5 + 10 * obs[:, 1]) * self.scale

    def get_action_and_value(self, obs, action=None):
        obs = obs.float()
        if action is None:
            action = obs[:, 0].long() % 2
        return action, -obs[:, 0] * self.scale, torch.zeros(len(obs)), self.get_value(obs)


def _expected_rollout(starts, term_at, max_steps, num_steps):
    """Simulate next-step autoreset by hand for each sub-env. `starts`: per env (t, ep, pending_reset)."""
    rows = {k: [] for k in ("obs", "actions", "rewards", "terminated", "truncated", "valid")}
    state = [list(s) for s in starts]
    returns = []  # (env, episode return) of each episode that ends
    ep_ret = [0.0 for _ in starts]
    for _ in range(num_steps):
        row = {k: [] for k in rows}
        for e, (t, ep, pending) in enumerate(state):
            row["obs"].append([t, ep])
            a = int(t) % 2
            row["actions"].append(a)
            row["valid"].append(not pending)
            if pending:
                state[e] = [0, ep + 1, False]
                row["rewards"].append(0.0), row["terminated"].append(False), row["truncated"].append(False)
                continue
            t += 1
            r = float(t + 100 * a)
            ep_ret[e] += r
            term = term_at[e] is not None and t == term_at[e]
            trunc = t >= max_steps[e]
            row["rewards"].append(r), row["terminated"].append(term), row["truncated"].append(trunc)
            if term or trunc:
                returns.append((e, ep_ret[e]))
                ep_ret[e] = 0.0
            state[e] = [t, ep, term or trunc]
        for k, v in row.items():
            rows[k].append(v)
    out = {k: torch.tensor(v) for k, v in rows.items()}
    out["obs"] = out["obs"].float()
    return out, state, returns


@check
def check_collect_rollout(collect_rollout) -> None:
    import gymnasium as gym

    from curriculum.utils.rl import EpisodeTracker

    term_at, max_steps = [3, None], [50, 4]  # env 0 terminates after 3 steps, env 1 is truncated after 4
    envs = gym.vector.SyncVectorEnv([_counter_env(term_at[0], max_steps[0]), _counter_env(term_at[1], max_steps[1])])
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    obs = torch.as_tensor(envs.reset(seed=0)[0])
    agent, tracker = _ScriptedAgent(), EpisodeTracker()
    starts = [(0, 0, False), (0, 0, False)]
    for call, n in enumerate((9, 6)):
        done = torch.zeros(2, dtype=torch.bool) if call == 0 else r.next_done
        start_obs = obs if call == 0 else r.next_obs
        r = collect_rollout(agent, envs, start_obs, done, n, tracker, 0)
        expected, end_state, _ = _expected_rollout(starts, term_at, max_steps, n)
        what = "the first rollout (9 steps from reset)" if call == 0 else "a second rollout continuing the first"
        for k in ("obs", "actions", "rewards", "terminated", "truncated", "valid", "logprobs", "values"):
            if not isinstance(getattr(r, k, None), torch.Tensor):
                fail(f"Rollout.{k} should be a tensor of shape (num_steps, num_envs)")
        assert_shape(r.rewards, (n, 2), f"rewards of {what}", hint="stack one (num_envs,) tensor per step")
        if r.logprobs.requires_grad or r.values.requires_grad:
            fail("the rollout's log-probs/values carry gradients: act under torch.no_grad() (the update recomputes them)")
        if torch.equal(r.obs.float()[:-1], expected["obs"][1:]):
            fail(f"in {what}, row t holds the observation AFTER step t: store the observation the action was chosen "
                 "from (obs before envs.step), then move on to next_obs")
        assert_close(r.obs.float(), expected["obs"], f"observations of {what}",
                     hint="store obs before stepping; after the step, obs = next_obs (the env's autoreset puts the "
                          "final observation and then the new episode's first one in the right rows)")
        assert_close(r.actions.float(), expected["actions"].float(), f"actions of {what}")
        if not torch.equal(r.terminated.bool(), expected["terminated"]):
            if torch.equal(r.truncated.bool(), expected["terminated"] | expected["truncated"]):
                fail(f"in {what}, terminations are stored as truncations: GAE would then bootstrap through a "
                     "terminal state. Store the env's `terminated` and `truncated` separately")
            fail(f"terminated flags of {what}: expected {expected['terminated'].int().T.tolist()} (env-major), "
                 f"got {r.terminated.int().T.tolist()}. Store what envs.step returned for each step")
        if not torch.equal(r.truncated.bool(), expected["truncated"]):
            fail(f"truncated flags of {what}: expected {expected['truncated'].int().T.tolist()}, "
                 f"got {r.truncated.int().T.tolist()}. Store the env's `truncated` as it is, not merged with terminated")
        assert_close(r.rewards.float(), expected["rewards"], f"rewards of {what}",
                     hint="row t's reward is what envs.step returned for row t's action")
        if not torch.equal(r.valid.bool(), expected["valid"]):
            if bool(r.valid.all()):
                fail(f"in {what} every row is marked valid, but the row after each episode end is gymnasium's "
                     "autoreset step (action ignored, reward 0): mark it valid = False (valid = not done of the "
                     "previous step, carried across rollouts)")
            wrongly_valid = r.valid.bool() & ~expected["valid"]
            for kind in ("truncated", "terminated"):
                after = torch.zeros_like(wrongly_valid)
                after[1:] = expected[kind][:-1]
                if bool(wrongly_valid.any()) and bool((after | ~wrongly_valid).all()):
                    fail(f"in {what} the row after each {kind} episode is marked valid, but a {kind} episode "
                         "ends too and gymnasium autoresets after it: done = terminated | truncated")
            fail(f"valid flags of {what}: expected {expected['valid'].int().T.tolist()}, got {r.valid.int().T.tolist()}: "
                 "row t is invalid exactly when the previous step (possibly the last of the previous rollout) ended an episode")
        assert_close(r.logprobs, -expected["obs"][..., 0], f"log-probs of {what}",
                     hint="store the log-prob get_action_and_value returned for the action you sent to the env")
        assert_close(r.values, agent.get_value(expected["obs"].reshape(-1, 2)).detach().reshape(n, 2),
                     f"values of {what}", hint="store V(obs) of the observation the action was chosen from")
        exp_next = torch.tensor([[t, ep] for t, ep, _ in end_state]).float()
        assert_close(torch.as_tensor(r.next_obs).float(), exp_next, f"next_obs of {what}",
                     hint="next_obs is the observation returned by the LAST envs.step call")
        if not torch.equal(torch.as_tensor(r.next_done).bool(), torch.tensor([p for _, _, p in end_state])):
            fail(f"next_done of {what} should say which sub-envs ended an episode on the last step, got {r.next_done.tolist()}")
        assert_close(r.next_value, agent.get_value(exp_next).detach(), f"next_value of {what}",
                     hint="next_value = V(next_obs), under no_grad: GAE bootstraps the last row from it")
        starts = [tuple(s) for s in end_state]
    _, _, ended = _expected_rollout([(0, 0, False), (0, 0, False)], term_at, max_steps, 15)
    if len(tracker) != len(ended):
        fail(f"the tracker recorded {len(tracker)} finished episodes, expected {len(ended)}: "
             "call tracker.update(infos, env_steps) after every envs.step")
    envs.close()


# --------------------------------------------------------------------------------------------- Nature CNN
@check
def check_nature_cnn(nature_cnn) -> None:
    torch.manual_seed(0)
    net = nature_cnn()
    if not isinstance(net, nn.Module):
        fail(f"nature_cnn() should return an nn.Module (an nn.Sequential), got {type(net).__name__}")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    layout = [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs]
    expected = [(4, 32, 8, 4), (32, 64, 4, 2), (64, 64, 3, 1)]
    if layout != expected:
        fail(f"conv layers (in, out, kernel, stride) should be {expected}, got {layout}")
    if len(linears) != 1 or (linears[0].in_features, linears[0].out_features) != (3136, 512):
        fail(f"expected one Linear(3136, 512) after the convolutions (64 channels x 7 x 7 = 3136), got "
             f"{[(m.in_features, m.out_features) for m in linears]}")
    x = torch.rand(3, 4, 84, 84)
    out = net(x)
    assert_shape(out, (3, 512), "nature_cnn()(frames [3, 4, 84, 84])", hint="did you Flatten before the Linear?")
    if (out < 0).any():
        fail("the output has negative entries: end with a ReLU after the Linear layer")
    relus = sum(isinstance(m, nn.ReLU) for m in net.modules())
    if relus != 4:
        fail(f"expected 4 ReLUs (one after each conv and after the linear layer), found {relus}")
    # independent forward pass with the learner's weights: the layers must run in this order
    h = x
    for c in convs:
        h = torch.relu(torch.nn.functional.conv2d(h, c.weight, c.bias, stride=c.stride))
    h = torch.relu(torch.nn.functional.linear(h.flatten(1), linears[0].weight, linears[0].bias))
    assert_close(out, h, "nature_cnn's output vs the same weights applied conv-relu x3, flatten, linear-relu")
    # orthogonal init with gain sqrt(2): the rows of each weight (flattened per output unit) are orthogonal,
    # each of norm sqrt(2)
    for layer in convs + linears:
        w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        gram = w @ w.T
        if not torch.allclose(gram.diagonal(), torch.full((w.shape[0],), 2.0), atol=1e-3):
            norm = gram.diagonal().sqrt().mean().item()
            fail(f"{layer}: rows of the weight have norm {norm:.3g}, expected sqrt(2) = 1.414: wrap each layer in "
                 "layer_init(...) (orthogonal, default std=sqrt(2))")
        if not torch.allclose(gram, torch.diag(gram.diagonal()), atol=1e-3):
            fail(f"{layer}: weight rows are not orthogonal: use layer_init (nn.init.orthogonal_), not the default init")
        if layer.bias.abs().max() > 0:
            fail(f"{layer}: biases should start at 0 (layer_init sets them to bias_const=0)")


# --------------------------------------------------------------------------------------------- continuous actions
def _normal_logprob(a, mean, log_std):
    """log N(a; mean, exp(log_std)^2), written out, per dimension."""
    return -0.5 * ((a - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)


@check
def check_gaussian_agent(GaussianAgent) -> None:
    torch.manual_seed(0)
    agent = module_instance(GaussianAgent, (3,), 2)
    log_std = getattr(agent, "log_std", None)
    if not isinstance(log_std, nn.Parameter) or tuple(log_std.shape) != (2,):
        fail("GaussianAgent should have `log_std`, an nn.Parameter of shape (action_dim,) = (2,), independent of the state")
    with torch.no_grad():
        log_std.copy_(torch.tensor([-0.5, 0.3]))  # unequal, away from 0, so std = log_std or a missing exp shows
    obs = torch.randn(256, 3)
    action, logprob, entropy, value = agent.get_action_and_value(obs)
    assert_shape(action, (256, 2), "sampled actions", hint="one value per action dimension")
    if logprob.shape == (256, 2):
        fail("log_prob has shape (batch, action_dim): sum it over the action dimensions (they are independent, "
             "so the joint log-probability is the sum), giving one number per observation")
    assert_shape(logprob, (256,), "log_prob", hint="dist.log_prob(action).sum(-1)")
    assert_shape(entropy, (256,), "entropy", hint="dist.entropy().sum(-1)")
    assert_shape(value, (256,), "value", hint="self.critic(x).squeeze(-1)")
    with torch.no_grad():
        mean = agent.actor(obs)
        if torch.allclose(action, mean):
            fail("the sampled action equals the mean: sample from the Normal (dist.sample()), or the policy never explores")
        std_wrong = _normal_logprob(action, mean, log_std.abs().log()).sum(-1)  # std = |log_std| (no exp)
        expected = _normal_logprob(action, mean, log_std).sum(-1)
        if torch.allclose(logprob, std_wrong, atol=1e-4):
            fail("the standard deviation is log_std itself: use std = log_std.exp()")
        assert_close(logprob, expected, "log_prob of the sampled actions",
                     hint="Normal(actor(x), log_std.exp()).log_prob(action).sum(-1)")
        ent = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum().expand(256)
        assert_close(entropy, ent, "entropy", hint="the Normal's entropy, summed over action dimensions "
                     "(for this policy it is the same in every state: it depends only on log_std)")
        z = (action - mean) / log_std.exp()
        if abs(z.std().item() - 1) > 0.15 or abs(z.mean().item()) > 0.15:
            fail(f"the sampled actions, standardised by the policy's mean and std, have mean {z.mean():.2f} and std "
                 f"{z.std():.2f} (expected 0 and 1): sample from Normal(mean, exp(log_std))")
    given = torch.randn(256, 2)
    a2, lp2, _, _ = agent.get_action_and_value(obs, given)
    if not torch.equal(a2, given):
        fail("when `action` is passed in, return it unchanged (the update re-scores the rollout's actions)")
    assert_close(lp2.detach(), _normal_logprob(given, mean, log_std).sum(-1).detach(), "log_prob of given actions")
    lp2.sum().backward()
    if log_std.grad is None or log_std.grad.abs().sum() == 0:
        fail("no gradient reaches log_std: build the std from the parameter (log_std.exp()), do not detach it")


# --------------------------------------------------------------------------------------------- reward shaping
def _phi(obs) -> float:
    """A potential that differs at every counter-env state, and is not 0 at reset."""
    return float(obs[0]) * 0.7 + 0.3 * float(obs[1]) + 1.0


@check
def check_potential_shaping(PotentialShaping) -> None:
    gamma = 0.9
    for term_at, max_steps, what in ((3, 50, "an env that terminates after 3 steps"),
                                     (None, 4, "an env truncated after 4 steps")):
        base = _counter_env(term_at, max_steps)()
        env = PotentialShaping(_counter_env(term_at, max_steps)(), _phi, gamma)
        obs_b, _ = base.reset(seed=0)
        env.reset(seed=0)
        prev_phi = _phi(obs_b)
        for step in range(11):  # crosses several episode ends, so resets are covered too
            action = step % 2
            ob, r, term, trunc, _ = base.step(action)
            os_, rs, term_s, trunc_s, _ = env.step(action)
            if (term_s, trunc_s) != (term, trunc) or not np.array_equal(os_, ob):
                fail("the wrapper must pass observations and the terminated/truncated flags through unchanged")
            phi_next = 0.0 if term else _phi(ob)
            expected = r + gamma * phi_next - prev_phi
            if not math.isclose(float(rs), expected, abs_tol=1e-5):
                bugs = [
                    (r + phi_next - prev_phi, "gamma is missing: F = gamma * Phi(s') - Phi(s) (without it the "
                     "shaping terms do not telescope under discounting, and the optimal policy can change)"),
                    (r + gamma * _phi(ob) - prev_phi, "Phi(s') must be 0 after a termination: there is no future, "
                     "and a terminal state that keeps its potential pays a bonus for ending the episode"),
                    (r + gamma * 0.0 - prev_phi, "Phi(s') is zeroed after a truncation: only a TERMINATION "
                     "ends the future; a truncated episode's last state is a real state with its potential"),
                    (r - gamma * phi_next + prev_phi, "the sign is flipped: F = gamma * Phi(s') - Phi(s)"),
                ]
                hint = next((h for v, h in bugs if math.isclose(float(rs), v, abs_tol=1e-5)), None)
                if hint is None:
                    hint = ("expected r + gamma * Phi(s') - Phi(s), where Phi(s) is the potential of the observation "
                            "the previous step (or reset) returned: remember it in reset() and after each step")
                fail(f"on {what}, step {step} (terminated={term}, truncated={trunc}): shaped reward {float(rs):.4f}, "
                     f"expected {expected:.4f}: {hint}")
            prev_phi = phi_next
            if term or trunc:
                ob, _ = base.reset()
                env.reset()
                prev_phi = _phi(ob)
