"""Section 2.3 beyond the automatic contract: each check catches plausible learner bugs (mutants),
the Atari wrappers behave as documented, and the Atari path runs end to end for a few steps."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.distributions import Categorical

from curriculum.solutions.chapter2 import atari, ppo, probes  # noqa: F401 - importing probes registers curriculum/Probe*-v0
from curriculum.checks.chapter2 import ppo as checks
from tests.support import assert_check_fails, mutant

PENDULUM_STEPS = 40_960



# ------------------------------------------------------------------------------------------ Agent
class AgentNoSmallInit(ppo.Agent):
    """Forgets std=0.01 on the actor's output layer."""

    def __init__(self, obs_shape, n_actions, hidden=64):
        super().__init__(obs_shape, n_actions, hidden)
        self.actor[-1] = ppo.layer_init(nn.Linear(hidden, n_actions))


class AgentArgmax(ppo.Agent):
    def get_action_and_value(self, obs, action=None):
        dist = Categorical(logits=self.actor(obs))
        if action is None:
            action = dist.probs.argmax(-1)
        return action, dist.log_prob(action), dist.entropy(), self.critic(obs).squeeze(-1)


class AgentIgnoresGivenAction(ppo.Agent):
    def get_action_and_value(self, obs, action=None):
        return super().get_action_and_value(obs, None)


class AgentValueNotSqueezed(ppo.Agent):
    def get_value(self, obs):
        return self.critic(obs)

    def get_action_and_value(self, obs, action=None):
        a, lp, ent, v = super().get_action_and_value(obs, action)
        return a, lp, ent, v[:, None]


class AgentSharedBody(ppo.Agent):
    def __init__(self, obs_shape, n_actions, hidden=64):
        super().__init__(obs_shape, n_actions, hidden)
        self.critic[0] = self.actor[0]


@pytest.mark.parametrize("mutant", [AgentNoSmallInit, AgentArgmax, AgentIgnoresGivenAction, AgentValueNotSqueezed,
                                    AgentSharedBody])
def test_check_agent_catches(mutant):
    assert_check_fails(checks.check_agent, mutant)


def _mlps(shared=False, gain_actor=0.01, no_tanh=False, plain_hidden=False):
    def build(obs_dim, n_actions, hidden=64):
        init = (lambda layer, std=2 ** 0.5: layer) if plain_hidden else ppo.layer_init
        act = nn.Identity if no_tanh else nn.Tanh
        first = init(nn.Linear(obs_dim, hidden))
        actor = nn.Sequential(first, act(), init(nn.Linear(hidden, hidden)), act(),
                              ppo.layer_init(nn.Linear(hidden, n_actions), std=gain_actor))
        critic = nn.Sequential(first if shared else init(nn.Linear(obs_dim, hidden)), act(),
                               init(nn.Linear(hidden, hidden)), act(), ppo.layer_init(nn.Linear(hidden, 1), std=1.0))
        return actor, critic

    return build


@pytest.mark.parametrize("bug, match", [
    (_mlps(shared=True), "separate networks"),
    (_mlps(gain_actor=1.0), "std=0.01"),
    (_mlps(no_tanh=True), "no nn.Tanh"),
    (_mlps(plain_hidden=True), "default gain sqrt"),
])
def test_check_actor_critic_mlps_catches(bug, match):
    assert_check_fails(checks.check_actor_critic_mlps, bug, match=match)


def test_check_agent_rejects_instance():
    assert_check_fails(checks.check_agent, ppo.Agent((4,), 2), match="class")


# ------------------------------------------------------------------------------------------ GAE
def gae_mutant(bootstrap_terminated=False, bootstrap_truncated=True, reset_on="done", lam_in_delta=False):
    def compute(next_value, rewards, values, terminated, truncated, gamma, gae_lambda):
        next_values = torch.cat([values[1:], next_value[None]])
        boot = torch.ones_like(rewards)
        if not bootstrap_terminated:
            boot = boot * (1 - terminated.float())
        if not bootstrap_truncated:
            boot = boot * (1 - truncated.float())
        reset = {"done": (terminated | truncated).float(), "terminated": terminated.float(),
                 "never": torch.zeros_like(rewards)}[reset_on]
        deltas = rewards + gamma * next_values * boot - values
        adv, last = torch.zeros_like(rewards), torch.zeros_like(next_value)
        for t in reversed(range(len(rewards))):
            last = deltas[t] + gamma * (1 if lam_in_delta else gae_lambda) * (1 - reset[t]) * last
            adv[t] = last
        return adv

    return compute


def gae_forward_shift(next_value, rewards, values, terminated, truncated, gamma, gae_lambda):
    """Off by one: uses values[t] as the next value (V(s_t) instead of V(s_{t+1}))."""
    return ppo.compute_advantages(values[-1], rewards, torch.cat([values[:1], values[:-1]]), terminated, truncated,
                                  gamma, gae_lambda)


def gae_returns_not_advantages(next_value, rewards, values, terminated, truncated, gamma, gae_lambda):
    return ppo.compute_advantages(next_value, rewards, values, terminated, truncated, gamma, gae_lambda) + values


@pytest.mark.parametrize("mutant,message", [
    (gae_mutant(bootstrap_terminated=True), "bootstrap"),
    (gae_mutant(bootstrap_truncated=False), "truncat"),
    (gae_mutant(reset_on="never"), "boundar"),
    (gae_mutant(reset_on="terminated"), "boundar"),
    (gae_mutant(lam_in_delta=True), None),
    (gae_forward_shift, None),
    (gae_returns_not_advantages, None),
])
def test_check_gae_catches(mutant, message):
    assert_check_fails(checks.check_compute_advantages, mutant, match=message)


def test_gae_matches_monte_carlo_at_lambda_one():
    """Independent property: with lambda = 1, A_t + V(s_t) is the discounted return to the episode end,
    plus gamma^k V(final obs) after a truncation and nothing after a termination."""
    g = torch.Generator().manual_seed(5)
    T, gamma = 30, 0.9
    rewards, values = torch.randn(T, 1, generator=g), torch.randn(T, 1, generator=g)
    next_value = torch.randn(1, generator=g)
    terminated = torch.zeros(T, 1, dtype=torch.bool)
    truncated = torch.zeros(T, 1, dtype=torch.bool)
    terminated[7], truncated[18] = True, True
    adv = ppo.compute_advantages(next_value, rewards, values, terminated, truncated, gamma, 1.0)
    r, v = rewards[:, 0].tolist(), values[:, 0].tolist() + [next_value.item()]
    for t, end, boot in [(0, 7, 0.0), (5, 7, 0.0), (9, 18, v[19]), (20, T - 1, v[T])]:
        ret = sum(gamma ** (k - t) * r[k] for k in range(t, end + 1)) + gamma ** (end + 1 - t) * boot
        assert adv[t, 0].item() + v[t] == pytest.approx(ret, abs=1e-4)


# ------------------------------------------------------------------------------------------ losses
def policy_loss_min(new, old, adv, clip_coef, norm_adv=True):
    if norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = (new - old).exp()
    return torch.min(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def policy_loss_wrong_sign(new, old, adv, clip_coef, norm_adv=True):
    return -ppo.policy_loss(new, old, adv, clip_coef, norm_adv)


def policy_loss_no_norm(new, old, adv, clip_coef, norm_adv=True):
    return ppo.policy_loss(new, old, adv, clip_coef, False)


def policy_loss_ratio_inverted(new, old, adv, clip_coef, norm_adv=True):
    return ppo.policy_loss(old, new, adv, clip_coef, norm_adv)


def policy_loss_detached(new, old, adv, clip_coef, norm_adv=True):
    return ppo.policy_loss(new.detach(), old, adv, clip_coef, norm_adv)


def policy_loss_clip_advantage(new, old, adv, clip_coef, norm_adv=True):
    if norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = (new - old).exp()
    return torch.max(-adv * ratio, -adv.clamp(1 - clip_coef, 1 + clip_coef) * ratio).mean()


@pytest.mark.parametrize("mutant", [policy_loss_min, policy_loss_wrong_sign, policy_loss_no_norm,
                                    policy_loss_ratio_inverted, policy_loss_detached, policy_loss_clip_advantage])
def test_check_policy_loss_catches(mutant):
    assert_check_fails(checks.check_policy_loss, mutant)


def test_policy_loss_min_named():
    assert_check_fails(checks.check_policy_loss, policy_loss_min, match="MAX")


def value_loss_no_half(new, old, ret, c, clip=True):
    return 2 * ppo.value_loss(new, old, ret, c, clip)


def value_loss_min(new, old, ret, c, clip=True):
    if not clip:
        return 0.5 * ((new - ret) ** 2).mean()
    v_clipped = old + (new - old).clamp(-c, c)
    return 0.5 * torch.min((new - ret) ** 2, (v_clipped - ret) ** 2).mean()


def value_loss_ignores_flag(new, old, ret, c, clip=True):
    return ppo.value_loss(new, old, ret, c, True)


def value_loss_clip_around_returns(new, old, ret, c, clip=True):
    return ppo.value_loss(new, ret, ret, c, clip)


@pytest.mark.parametrize("mutant", [value_loss_no_half, value_loss_min, value_loss_ignores_flag,
                                    value_loss_clip_around_returns])
def test_check_value_loss_catches(mutant):
    assert_check_fails(checks.check_value_loss, mutant)


def kl_naive(new, old, c):
    logratio = new - old
    return (-logratio).mean().item(), ((logratio.exp() - 1).abs() > c).float().mean().item()


def clipfrac_wrong(new, old, c):
    kl, _ = ppo.kl_and_clipfrac(new, old, c)
    return kl, ((new - old).abs() > c).float().mean().item()


@pytest.mark.parametrize("mutant", [kl_naive, clipfrac_wrong])
def test_check_kl_catches(mutant):
    assert_check_fails(checks.check_kl_and_clipfrac, mutant)


# ------------------------------------------------------------------------------------------ update
def update_mutant(clip_grad=True, ent_sign=-1.0, shuffle_batches=True, early_stop=True, epochs_scale=1, vf=True):
    """ppo_update with one detail wrong (the reference, rewritten with switches)."""

    def update(agent, optimizer, batch, args):
        stats = {}
        for _ in range(args.update_epochs * epochs_scale):
            order = torch.randperm(len(batch)) if shuffle_batches else torch.arange(len(batch))
            mbs = order.tensor_split(args.num_minibatches) if shuffle_batches else [order]
            for mb in mbs:
                _, lp, ent, v = agent.get_action_and_value(batch.obs[mb], batch.actions[mb])
                pg = ppo.policy_loss(lp, batch.logprobs[mb], batch.advantages[mb], args.clip_coef, args.norm_adv)
                vl = ppo.value_loss(v, batch.values[mb], batch.returns[mb], args.clip_coef, args.clip_vloss)
                loss = pg + ent_sign * args.ent_coef * ent.mean() + (args.vf_coef * vl if vf else 0)
                optimizer.zero_grad()
                loss.backward()
                if clip_grad:
                    nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
                kl, cf = ppo.kl_and_clipfrac(lp, batch.logprobs[mb], args.clip_coef)
            stats = dict(policy_loss=pg.item(), value_loss=vl.item(), entropy=ent.mean().item(), approx_kl=kl, clipfrac=cf)
            if early_stop and args.target_kl is not None and kl > args.target_kl:
                break
        return stats

    return update


def test_update_mutant_switches_off_is_reference():
    checks.check_ppo_update(update_mutant())


@pytest.mark.parametrize("mutant", [
    update_mutant(clip_grad=False),
    update_mutant(ent_sign=+1.0),
    update_mutant(shuffle_batches=False),
    update_mutant(early_stop=False),
    update_mutant(epochs_scale=2),
    update_mutant(vf=False),
])
def test_check_ppo_update_catches(mutant):
    assert_check_fails(checks.check_ppo_update, mutant)


# ------------------------------------------------------------------------------------------ training
def test_check_train_ppo_catches_missing_annealing():
    def no_annealing(args, **kwargs):
        return ppo.train_ppo(dataclasses.replace(args, anneal_lr=False), **kwargs)

    assert_check_fails(checks.check_train_ppo, no_annealing, match="anneal")


def test_check_train_ppo_catches_bootstrapping_through_terminal(monkeypatch):
    monkeypatch.setattr(ppo, "compute_advantages", gae_mutant(bootstrap_terminated=True))
    assert_check_fails(checks.check_train_ppo, ppo.train_ppo, match="probe")


def test_rollout_marks_autoreset_rows_invalid():
    """Next-step autoreset: the row after an episode end holds the final observation and is not a transition."""
    from curriculum.utils.rl import make_vec_env

    envs = make_vec_env("curriculum/Probe3-v0", num_envs=2, seed=0)
    obs, _ = envs.reset(seed=0)
    agent = ppo.Agent((1,), 1)
    r = ppo.collect_rollout(agent, envs, torch.as_tensor(obs), torch.zeros(2, dtype=torch.bool), num_steps=6)
    # Probe 3: obs 0 (reward 0), obs 1 (reward 1, terminated), then the autoreset row, repeating every 3 rows
    assert r.valid[:, 0].tolist() == [True, True, False, True, True, False]
    assert r.terminated[:, 0].tolist() == [False, True, False, False, True, False]
    assert r.rewards[:, 0].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    batch = ppo.Batch.from_rollout(r, torch.zeros(6, 2))
    assert len(batch) == 8
    envs.close()


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="num_minibatches"):
        ppo.PPOArgs(num_minibatches=0)
    with pytest.raises(ValueError, match="gamma"):
        ppo.PPOArgs(gamma=1.5)


# ------------------------------------------------------------------------------------------ Atari
def test_atari_wrappers():
    env = atari.make_atari_env("ALE/Breakout-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    lives_lost, rewards = 0, set()
    for _ in range(2000):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.add(reward)
        if terminated:
            game_over = env.unwrapped.ale.game_over()
            lives = env.unwrapped.ale.lives()
            if not game_over:  # episodic life: a lost life ends the training episode only
                lives_lost += 1
                env.reset()
                assert env.unwrapped.ale.lives() == lives, "a life loss must not restart the game"
            else:
                assert "episode" in info
                break
    assert lives_lost >= 1
    assert rewards <= {-1.0, 0.0, 1.0}
    env.close()


def test_atari_ppo_smoke():
    args = ppo.PPOArgs.atari(num_envs=2, num_steps=8, total_timesteps=32, update_epochs=1, num_minibatches=2)
    result = ppo.train_ppo(args, progress=False)
    assert result.env_steps == 32
    assert np.isfinite(result.history[-1]["value_loss"])


@pytest.mark.parametrize(
    "old,new,message",
    [
        ("logratio = new_logprob - old_logprob", "logratio = old_logprob - new_logprob", r"ratio inverted \(old / new\)"),
        ("approx_kl = ((ratio - 1) - logratio).mean()", "approx_kl = (logratio - (ratio - 1)).mean()", r"approx_kl is negative"),
    ],
    ids=["inverted-ratio", "sign-flipped"],
)
def test_approx_kl_check_catches_an_inverted_ratio_and_a_flipped_sign(old, new, message):
    assert_check_fails(checks.check_kl_and_clipfrac, mutant(ppo.kl_and_clipfrac, (old, new)), match=message)


class _NanAfter(gym.Wrapper):
    """CartPole whose observations turn to NaN after `k` steps: a broken environment or wrapper."""

    def __init__(self, env, k: int):
        super().__init__(env)
        self.k, self.t = k, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return (obs * np.nan if self.t > self.k else obs), reward, terminated, truncated, info


def test_nan_observation_stops_the_rollout_naming_it():
    from curriculum.utils.rl import NonFiniteError

    envs = gym.vector.SyncVectorEnv([lambda: _NanAfter(gym.make("CartPole-v1"), 3)])
    obs = torch.as_tensor(envs.reset(seed=0)[0])
    agent = ppo.Agent((4,), 2, 16)
    with pytest.raises(NonFiniteError, match="an observation is NaN at step 4.*environment"):
        ppo.collect_rollout(agent, envs, obs, torch.zeros(1, dtype=torch.bool), 8)


def test_nan_loss_stops_training_naming_it(monkeypatch):
    from curriculum.utils.rl import NonFiniteError

    real = ppo.ppo_update
    monkeypatch.setattr(ppo, "ppo_update", lambda *a: {**real(*a), "value_loss": float("nan")})
    args = ppo.PPOArgs(total_timesteps=256, num_envs=2, num_steps=64)
    with pytest.raises(NonFiniteError, match="the value loss is NaN at iteration 0"):
        ppo.train_ppo(args, progress=False)


# ------------------------------------------------------------------------------------------ rollout loop
@pytest.mark.parametrize("old,new,message", [
    ('("valid", ~done)', '("valid", torch.ones_like(done))', "autoreset step"),
    ('store["terminated"].append(torch.as_tensor(terminated, device=device))',
     'store["terminated"].append(torch.zeros(n_envs, dtype=torch.bool, device=device))', "terminated flags"),
    ('store["truncated"].append(torch.as_tensor(truncated, device=device))',
     'store["truncated"].append(torch.as_tensor(terminated | truncated, device=device))', "merged with terminated"),
    ('        obs = torch.as_tensor(next_obs, device=device)\n', '        obs = torch.as_tensor(next_obs, device=device)\n        store["obs"][-1] = obs\n',
     "AFTER step t"),
    ("        with torch.no_grad():\n            action, logprob", "        if True:\n            action, logprob", "torch.no_grad"),
    ('        done = store["terminated"][-1] | store["truncated"][-1]\n', '', "autoreset step"),
    ("tracker.update(infos, global_step + (step + 1) * n_envs)", "pass", "tracker"),
], ids=["all-valid", "no-terminations", "terminated-as-truncated", "stores-next-obs", "keeps-grad", "done-not-carried",
        "no-tracker"])
def test_check_collect_rollout_catches(old, new, message):
    assert_check_fails(checks.check_collect_rollout, mutant(ppo.collect_rollout, (old, new)), match=message)


def test_check_collect_rollout_catches_a_rollout_that_bootstraps_through_termination():
    """Every episode end stored as a truncation: GAE would bootstrap from V(final obs) after a fall."""
    bug = mutant(ppo.collect_rollout,
                 ('store["terminated"].append(torch.as_tensor(terminated, device=device))',
                  'store["terminated"].append(torch.zeros(n_envs, dtype=torch.bool, device=device))'),
                 ('store["truncated"].append(torch.as_tensor(truncated, device=device))',
                  'store["truncated"].append(torch.as_tensor(terminated | truncated, device=device))'))
    assert_check_fails(checks.check_collect_rollout, bug, match="bootstrap through a terminal state")


def test_collect_rollout_done_carried_across_rollouts():
    """A rollout that starts right after an episode end marks its first row as the autoreset row."""
    bug = mutant(ppo.collect_rollout, ("device = obs.device\n", "device = obs.device\n    done = torch.zeros_like(done)\n"))
    assert_check_fails(checks.check_collect_rollout, bug, match="valid flags")


# ------------------------------------------------------------------------------------------ Nature CNN
@pytest.mark.parametrize("old,new,message", [
    ("nn.Conv2d(32, 64, 4, stride=2)", "nn.Conv2d(32, 64, 4, stride=1)", "conv layers"),
    ("layer_init(nn.Linear(64 * 7 * 7, 512)), nn.ReLU(),", "layer_init(nn.Linear(64 * 7 * 7, 512)),", "ReLU"),
    ("layer_init(nn.Conv2d(64, 64, 3, stride=1))", "nn.Conv2d(64, 64, 3, stride=1)", "layer_init"),
    ("layer_init(nn.Conv2d(4, 32, 8, stride=4))", "layer_init(nn.Conv2d(4, 32, 8, stride=4), std=1.0)", "sqrt\\(2\\)"),
    ("layer_init(nn.Conv2d(4, 32, 8, stride=4)), nn.ReLU(),", "layer_init(nn.Conv2d(4, 32, 8, stride=4)),", "ReLU"),
], ids=["stride", "no-final-relu", "default-init", "gain-1", "missing-relu"])
def test_check_nature_cnn_catches(old, new, message):
    assert_check_fails(checks.check_nature_cnn, mutant(ppo.nature_cnn, (old, new)), match=message)


# ------------------------------------------------------------------------------------------ training loop wiring
@pytest.mark.parametrize("old,new,message", [
    ("obs, done = rollout.next_obs, rollout.next_done", "obs = rollout.next_obs", "carry done"),
    ("obs, done = rollout.next_obs, rollout.next_done", "done = rollout.next_done", "next_obs"),
    ("global_step += args.batch_size", "global_step += args.num_steps", "env_steps"),
    ("rollout.terminated, rollout.truncated, args.gamma, args.gae_lambda)",
     "rollout.terminated, rollout.truncated, args.gamma, 1.0)", "advantages"),
    ("batch = Batch.from_rollout(rollout, advantages)",
     ("batch = Batch(rollout.obs.flatten(0, 1), rollout.actions.flatten(), rollout.logprobs.flatten(), "
      "rollout.values.flatten(), advantages.flatten(), (advantages + rollout.values).flatten())"), "valid ones"),
], ids=["done-not-carried", "obs-not-carried", "step-count", "wrong-lambda", "keeps-autoreset-rows"])
def test_check_train_ppo_catches_wiring(old, new, message):
    assert_check_fails(checks.check_train_ppo, mutant(ppo.train_ppo, (old, new)), match=message)


def test_check_train_ppo_catches_truncation_merged_into_done_in_the_loop():
    bug = mutant(ppo.train_ppo, ("rollout.terminated, rollout.truncated, args.gamma, args.gae_lambda)",
                                 "rollout.terminated | rollout.truncated, rollout.truncated, args.gamma, args.gae_lambda)"))
    assert_check_fails(checks.check_train_ppo, bug, match="truncated is merged into done")


def test_check_train_ppo_catches_truncation_merged_into_done_in_the_rollout(monkeypatch):
    bug = mutant(ppo.collect_rollout, ('store["terminated"].append(torch.as_tensor(terminated, device=device))',
                                       'store["terminated"].append(torch.as_tensor(terminated | truncated, device=device))'))
    monkeypatch.setattr(ppo, "collect_rollout", bug)
    assert_check_fails(checks.check_train_ppo, ppo.train_ppo, match="truncated is merged into done")


# ------------------------------------------------------------------------------------------ continuous actions
@pytest.mark.parametrize("old,new,message", [
    ("dist.log_prob(action).sum(-1), dist.entropy().sum(-1)", "dist.log_prob(action), dist.entropy().sum(-1)", "sum it over"),
    ("action = dist.sample()", "action = mean", "equals the mean"),
    ("self.log_std.exp().expand_as(mean)", "self.log_std.expand_as(mean).abs()", "log_std.exp"),
    ("self.log_std.exp().expand_as(mean)", "self.log_std.detach().exp().expand_as(mean)", "no gradient reaches log_std"),
    ("dist.entropy().sum(-1)", "dist.entropy().mean(-1)", "entropy"),
    ("if action is None:\n            action = dist.sample()", "action = dist.sample()", "unchanged"),
], ids=["no-sum", "mean-not-sampled", "no-exp", "detached-std", "entropy-mean", "ignores-given"])
def test_check_gaussian_agent_catches(old, new, message):
    assert_check_fails(checks.check_gaussian_agent, mutant(ppo.GaussianAgent, (old, new)), match=message)


def test_ppo_learns_pendulum():
    """Continuous control end to end: the mean return of the last 10 episodes beats the first 10 by 200+."""
    torch.set_num_threads(1)
    result = ppo.train_ppo(ppo.PPOArgs.pendulum(seed=0, total_timesteps=PENDULUM_STEPS), progress=False)
    first, last = np.mean(result.tracker.returns[:10]), np.mean(result.tracker.returns[-10:])
    assert last >= first + 200, f"Pendulum: mean return {first:.0f} over the first 10 episodes, {last:.0f} over the last 10"


# ------------------------------------------------------------------------------------------ reward shaping
@pytest.mark.parametrize("old,new,message", [
    ("shaped = float(reward) + self.gamma * potential - self.last_potential",
     "shaped = float(reward) + potential - self.last_potential", "gamma is missing"),
    ("potential = 0.0 if terminated else float(self.potential(obs))",
     "potential = float(self.potential(obs))", "0 after a termination"),
    ("potential = 0.0 if terminated else float(self.potential(obs))",
     "potential = 0.0 if terminated or truncated else float(self.potential(obs))", "zeroed after a truncation"),
    ("shaped = float(reward) + self.gamma * potential - self.last_potential",
     "shaped = float(reward) - self.gamma * potential + self.last_potential", "sign is flipped"),
    ("        self.last_potential = potential\n", "", "remember it"),
    ("        self.last_potential = float(self.potential(obs))\n        return obs, info",
     "        return obs, info", "remember it"),
], ids=["no-gamma", "terminal-potential-kept", "truncation-zeroed", "sign", "never-updated", "reset-forgotten"])
def test_check_potential_shaping_catches(old, new, message):
    assert_check_fails(checks.check_potential_shaping, mutant(ppo.PotentialShaping, (old, new)), match=message)


def test_shaping_telescopes_on_mountain_car():
    """The property that preserves optimal policies: the discounted sum of the shaping terms over an
    episode is gamma^T Phi(s_T) - Phi(s_0), whatever the actions."""
    gamma = 0.99
    env = ppo.PotentialShaping(gym.make("MountainCar-v0"), ppo.mountain_car_potential, gamma)
    obs, _ = env.reset(seed=0)
    phi0, total, t, done = ppo.mountain_car_potential(obs), 0.0, 0, False
    rng = np.random.default_rng(0)
    while not done:
        obs, r, term, trunc, _ = env.step(int(rng.integers(3)))
        total += gamma**t * (r - (-1.0))  # MountainCar pays -1 per step: keep only the shaping term
        t += 1
        done = term or trunc
    end = 0.0 if term else ppo.mountain_car_potential(obs)
    assert total == pytest.approx(gamma**t * end - phi0, abs=1e-6)
