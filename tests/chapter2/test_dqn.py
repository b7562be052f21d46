"""Section 2.2 (DQN): reliability (bad hyperparameters, seeding, terminated vs truncated), the probe
diagnosis on a real DQN with planted bugs, and mutants each check must catch."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from curriculum.solutions.chapter2 import dqn as S
from curriculum.solutions.chapter2 import probes
from curriculum.checks.chapter2 import dqn as T
from curriculum.utils.rl import EpisodeTracker, make_vec_env
from tests.support import assert_check_fails, mutant

TRUNCATED_ID = "curriculum-test/AlwaysTruncated-v0"


class AlwaysTruncatedEnv(gym.Env):
    """Constant observation, one action, reward +1, never terminates; a TimeLimit of 2 steps truncates it.
    With gamma = 0.5 the true value is 1 / (1 - 0.5) = 2 (the task goes on forever)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 1.0, False, False, {}


if TRUNCATED_ID not in gym.registry:
    gym.register(TRUNCATED_ID, entry_point=AlwaysTruncatedEnv, max_episode_steps=2)


def _truncation_value() -> float:
    cfg = T.probe_config(S.DQNConfig, TRUNCATED_ID)
    q = S.train_dqn(cfg, progress=False).q_network
    with torch.no_grad():
        return float(q(torch.zeros(1, 1))[0, 0])


def test_truncated_episodes_bootstrap(monkeypatch):
    """Fails if terminated and truncated are conflated: the value would be 1 + 0.25 Q, i.e. 4/3, instead of 2."""
    assert _truncation_value() == pytest.approx(2.0, abs=0.15)

    class ConflateTruncation(gym.vector.VectorWrapper):
        """What `terminated = terminated or truncated` in a training loop amounts to."""

        def step(self, actions):
            obs, rewards, terminated, truncated, infos = self.env.step(actions)
            return obs, rewards, terminated | truncated, truncated, infos

    monkeypatch.setattr(S, "make_vec_env", lambda *args, **kwargs: ConflateTruncation(make_vec_env(*args, **kwargs)))
    assert _truncation_value() < 1.6


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(start_epsilon=-0.1), "start_epsilon"),
        (dict(end_epsilon=1.5), "end_epsilon"),
        (dict(buffer_size=32, batch_size=64), "buffer_size .* smaller than batch_size"),
        (dict(learning_starts=10, batch_size=64), "learning_starts"),
        (dict(gamma=1.1), "gamma"),
        (dict(tau=0.0), "tau"),
        (dict(loss="l1"), "loss"),
        (dict(num_envs=0), "num_envs"),
        (dict(learning_rate=-1e-3), "learning_rate"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.DQNConfig(**kwargs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="epsilon"):
        S.epsilon_greedy(S.QNetwork(1, 2), np.zeros((1, 1), np.float32), -0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="cannot sample"):
        S.ReplayBuffer(100, (1,)).sample(1)
    with pytest.raises(ValueError, match="duration"):
        S.linear_schedule(0, 1.0, 0.1, 0)
    with pytest.raises(ValueError, match="discrete"):
        S.train_dqn(S.DQNConfig(env_id="Pendulum-v1", total_timesteps=100, learning_starts=256), progress=False)


def test_training_is_reproducible_on_cpu():
    cfg = S.DQNConfig(total_timesteps=1200, learning_starts=200, train_frequency=8, gradient_steps=2,
                      hidden_sizes=(32, 32), batch_size=32, buffer_size=1000)
    a, b = S.train_dqn(cfg, progress=False), S.train_dqn(cfg, progress=False)
    assert a.tracker.returns == b.tracker.returns and len(a.tracker) > 10
    for pa, pb in zip(a.q_network.parameters(), b.q_network.parameters()):
        assert torch.equal(pa, pb)
    c = S.train_dqn(S.DQNConfig(**{**cfg.__dict__, "seed": 1}), progress=False)
    assert c.tracker.returns != a.tracker.returns


def test_episode_tracker_reads_vector_env_with_next_step_autoreset():
    envs = make_vec_env(probes.PROBES[3].env_id, num_envs=3, seed=0)
    envs.reset(seed=0)
    tracker = EpisodeTracker()
    for _ in range(7):  # 2 steps per episode + 1 autoreset step: two full episodes per sub-env
        _, _, _, _, infos = envs.step(np.zeros(3, dtype=np.int64))
        tracker.update(infos)
    assert tracker.returns == [1.0] * 6 and tracker.lengths == [2] * 6


def test_probe_diagnosis_finds_bugs_planted_in_a_real_dqn(monkeypatch):
    def train(env_id):
        return S.train_dqn(T.probe_config(S.DQNConfig, env_id), progress=False).q_network

    def loss_through_terminal(q_network, target_network, batch, gamma, loss="huber"):
        with torch.no_grad():
            target = batch.rewards + gamma * target_network(batch.next_obs).max(-1).values
        return F.mse_loss(q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1), target)

    monkeypatch.setattr(S, "td_loss", loss_through_terminal)
    d = probes.diagnose(train, gamma=0.5, probes=(1,))
    assert not d.ok and "bootstrap through terminal" in str(d), str(d)

    def loss_without_gather(q_network, target_network, batch, gamma, loss="huber"):
        with torch.no_grad():
            target = batch.rewards + gamma * (1 - batch.terminated) * target_network(batch.next_obs).max(-1).values
        return F.mse_loss(q_network(batch.obs).mean(-1), target)

    monkeypatch.setattr(S, "td_loss", loss_without_gather)
    d = probes.diagnose(train, gamma=0.5, probes=(4,))
    assert not d.ok and "q.gather" in str(d), str(d)


# ---- mutants ----


class QNetworkFinalReLU(S.QNetwork):
    def __init__(self, obs_dim, n_actions, hidden_sizes=(120, 84)):
        super().__init__(obs_dim, n_actions, hidden_sizes)
        self.net.append(nn.ReLU())


class QNetworkOneHidden(S.QNetwork):
    def __init__(self, obs_dim, n_actions, hidden_sizes=(120, 84)):
        super().__init__(obs_dim, n_actions, hidden_sizes[:1])


class BufferNoOverwrite(S.ReplayBuffer):
    def add(self, obs, actions, rewards, next_obs, terminated):
        if self.size + len(actions) <= self.capacity:
            S.ReplayBuffer.add(self, obs, actions, rewards, next_obs, terminated)


BufferPosNotAdvanced = mutant(S.ReplayBuffer, ("self.pos = int((self.pos + len(actions)) % self.capacity)", "pass"))
BufferSizeUncapped = mutant(S.ReplayBuffer, ("min(self.size + len(actions), self.capacity)", "self.size + len(actions)"))
BufferRewardsShifted = mutant(S.ReplayBuffer, ("self.rewards[idx] = rewards", "self.rewards[(idx + 1) % self.capacity] = rewards"))


def sample_independent_fields(buffer, batch_size, device="cpu"):
    b = S.sample_batch(buffer, batch_size, device)
    b.rewards = torch.as_tensor(buffer.rewards[buffer.rng.integers(0, buffer.size, batch_size)])
    return b


def sample_empty_slots(buffer, batch_size, device="cpu"):
    size, buffer.size = buffer.size, buffer.capacity
    try:
        return S.sample_batch(buffer, batch_size, device)
    finally:
        buffer.size = size


def sample_global_rng(buffer, batch_size, device="cpu"):
    buffer.rng = np.random.default_rng()
    return S.sample_batch(buffer, batch_size, device)


def sample_numpy(buffer, batch_size, device="cpu"):
    idx = buffer.rng.integers(0, buffer.size, size=batch_size)
    return S.ReplayBatch(buffer.obs[idx], buffer.actions[idx], buffer.rewards[idx], buffer.next_obs[idx], buffer.terminated[idx])


def schedule_unclipped(step, start, end, duration):
    return start + (end - start) * step / duration


def schedule_backwards(step, start, end, duration):
    return end + (start - end) * min(step / duration, 1.0)


def eps_greedy_one_coin(q_network, obs, epsilon, rng):
    """One exploration coin for the whole vector of envs instead of one per env."""
    with torch.no_grad():
        greedy = q_network(torch.as_tensor(obs)).argmax(-1).numpy()
    if rng.random() < epsilon:
        return rng.integers(0, 3, size=len(obs))
    return greedy


def eps_greedy_explore_others(q_network, obs, epsilon, rng):
    with torch.no_grad():
        greedy = q_network(torch.as_tensor(obs)).argmax(-1).numpy()
    other = (greedy + rng.integers(1, 3, size=len(obs))) % 3
    return np.where(rng.random(len(obs)) < epsilon, other, greedy)


def td_no_terminal_mask(q_network, target_network, batch, gamma, loss="huber"):
    return S.td_loss(q_network, target_network, S.ReplayBatch(batch.obs, batch.actions, batch.rewards, batch.next_obs,
                                                                torch.zeros_like(batch.terminated)), gamma, loss)


def td_grad_into_target(q_network, target_network, batch, gamma, loss="huber"):
    target = batch.rewards + gamma * (1 - batch.terminated) * target_network(batch.next_obs).max(-1).values
    q = q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1)
    return (F.smooth_l1_loss if loss == "huber" else F.mse_loss)(q, target)


def td_online_target(q_network, target_network, batch, gamma, loss="huber"):
    return S.td_loss(q_network, q_network, batch, gamma, loss)


def td_always_mse(q_network, target_network, batch, gamma, loss="huber"):
    return S.td_loss(q_network, target_network, batch, gamma, "mse")


def td_max_not_taken(q_network, target_network, batch, gamma, loss="huber"):
    with torch.no_grad():
        target = batch.rewards + gamma * (1 - batch.terminated) * target_network(batch.next_obs).max(-1).values
    return (F.smooth_l1_loss if loss == "huber" else F.mse_loss)(q_network(batch.obs).max(-1).values, target)


def td_sum_reduction(q_network, target_network, batch, gamma, loss="huber"):
    return S.td_loss(q_network, target_network, batch, gamma, loss) * len(batch.actions)


def store_conflated(buffer, obs, actions, rewards, next_obs, terminated, autoreset):
    keep = ~autoreset
    truncated = np.array([False, True, False])[: len(keep)]  # the check's env 1 was truncated
    buffer.add(obs[keep], actions[keep], rewards[keep], next_obs[keep], (terminated | truncated)[keep])
    return int(keep.sum())


def store_everything(buffer, obs, actions, rewards, next_obs, terminated, autoreset):
    buffer.add(obs, actions, rewards, next_obs, terminated)
    return len(actions)


train_dqn_no_target_updates = mutant(S.train_dqn, ("if it % target_every == 0:", "if it == 0:"))

train_dqn_target_every_iteration = mutant(S.train_dqn, ("if it % target_every == 0:", "if True:"))
train_dqn_epsilon_per_iteration = mutant(S.train_dqn, ("linear_schedule(step,", "linear_schedule(it,"))
train_dqn_obs_not_carried = mutant(S.train_dqn, ("            obs = next_obs\n", ""))
train_dqn_autoreset_never_set = mutant(S.train_dqn, ("autoreset = np.logical_or(terminated, truncated)", "pass"))
train_dqn_autoreset_terminated_only = mutant(S.train_dqn, ("autoreset = np.logical_or(terminated, truncated)", "autoreset = terminated"))
train_dqn_no_optimizer_step = mutant(S.train_dqn, ("optimizer.step()", "pass"))
train_dqn_trains_every_iteration = mutant(S.train_dqn, ("it % train_every == 0", "True"))
train_dqn_online_as_target = mutant(S.train_dqn, ("td_loss(q_network, target_network,", "td_loss(q_network, q_network,"))
train_dqn_loss_renamed = mutant(S.train_dqn, ("loss = td_loss(", "td_value = td_loss("),
                                ("loss.backward()", "td_value.backward()"))


@pytest.mark.parametrize(
    "mutant_fn,match",
    [
        (train_dqn_no_target_updates, "target network never changed"),
        (train_dqn_target_every_iteration, "target network changed"),
        (train_dqn_epsilon_per_iteration, "epsilon was"),
        (train_dqn_obs_not_carried, "obs = next_obs"),
        (train_dqn_autoreset_never_set, "autoreset"),
        (train_dqn_autoreset_terminated_only, "end only by truncation"),
        (train_dqn_no_optimizer_step, "optimizer.step"),
        (train_dqn_trains_every_iteration, "td_loss was called"),
        (train_dqn_online_as_target, "online network as its target"),
        (train_dqn_loss_renamed, "`loss`"),
    ],
    ids=lambda x: getattr(x, "__name__", None) if callable(x) else None,
)
def test_training_loop_check_names_the_bug(mutant_fn, match):
    assert_check_fails(T.check_train_dqn_on_probes, mutant_fn, match=match)


NAN_OBS_ID, NAN_REWARD_ID = "curriculum-test/NaNObservation-v0", "curriculum-test/NaNReward-v0"


class NaNAfterAWhileEnv(gym.Env):
    """Probe-1-like (one action, reward +1, 5-step episodes) until env step 300, then NaN in the observation or
    the reward: the kind of fault a buggy wrapper or simulator produces."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(1)

    def __init__(self, where: str = "obs"):
        self.where, self.t, self.total = where, 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        self.total += 1
        broken = self.total > 300
        obs = np.full(1, np.nan if broken and self.where == "obs" else 0.0, np.float32)
        reward = float("nan") if broken and self.where == "reward" else 1.0
        return obs, reward, self.t >= 5, False, {}


for _id, _where in ((NAN_OBS_ID, "obs"), (NAN_REWARD_ID, "reward")):
    if _id not in gym.registry:
        gym.register(_id, entry_point=NaNAfterAWhileEnv, kwargs={"where": _where})


@pytest.mark.parametrize("env_id,match", [(NAN_OBS_ID, "non-finite observation .* sub-env"), (NAN_REWARD_ID, "non-finite TD loss")])
def test_nan_stops_training_and_says_where(env_id, match):
    cfg = S.DQNConfig(env_id=env_id, num_envs=2, total_timesteps=1000, learning_starts=64, batch_size=32,
                      buffer_size=1000, hidden_sizes=(8,), train_frequency=2)
    with pytest.raises(FloatingPointError, match=match):
        S.train_dqn(cfg, progress=False)


def test_nan_loss_from_the_learner_is_caught(monkeypatch):
    monkeypatch.setattr(S, "td_loss", lambda *args, **kwargs: torch.tensor(float("nan"), requires_grad=True))
    cfg = T.probe_config(S.DQNConfig, probes.PROBES[1].env_id)
    with pytest.raises(FloatingPointError, match="non-finite TD loss"):
        S.train_dqn(cfg, progress=False)


@pytest.mark.parametrize(
    "check,mutant",
    [
        (T.check_q_network, QNetworkFinalReLU),
        (T.check_q_network, QNetworkOneHidden),
        (T.check_replay_buffer_add, BufferNoOverwrite),
        (T.check_replay_buffer_add, BufferPosNotAdvanced),
        (T.check_replay_buffer_add, BufferSizeUncapped),
        (T.check_replay_buffer_add, BufferRewardsShifted),
        (T.check_sample_batch, sample_independent_fields),
        (T.check_sample_batch, sample_empty_slots),
        (T.check_sample_batch, sample_global_rng),
        (T.check_sample_batch, sample_numpy),
        (T.check_linear_schedule, schedule_unclipped),
        (T.check_linear_schedule, schedule_backwards),
        (T.check_epsilon_greedy, eps_greedy_one_coin),
        (T.check_epsilon_greedy, eps_greedy_explore_others),
        (T.check_td_loss, td_no_terminal_mask),
        (T.check_td_loss, td_grad_into_target),
        (T.check_td_loss, td_online_target),
        (T.check_td_loss, td_always_mse),
        (T.check_td_loss, td_max_not_taken),
        (T.check_td_loss, td_sum_reduction),
        (T.check_store_vector_step, store_conflated),
        (T.check_store_vector_step, store_everything),
    ],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_check_catches_mutant(check, mutant):
    assert_check_fails(check, mutant)


def td_always_huber(q_network, target_network, batch, gamma, loss="huber"):
    return S.td_loss(q_network, target_network, batch, gamma, "huber")


def td_unsqueezed(q_network, target_network, batch, gamma, loss="huber"):
    with torch.no_grad():
        target = batch.rewards + gamma * (1 - batch.terminated) * target_network(batch.next_obs).max(-1).values
    q = q_network(batch.obs).gather(1, batch.actions[:, None])  # (batch, 1): broadcasts against (batch,)
    return (F.smooth_l1_loss if loss == "huber" else F.mse_loss)(q, target)


@pytest.mark.parametrize("mutant, match", [
    (td_no_terminal_mask, "terminal transition"),
    (td_online_target, "online network"),
    (td_max_not_taken, "action actually taken"),
    (td_unsqueezed, r"\(batch, 1\)"),
    (td_always_huber, 'loss="mse" gave the Huber loss'),
    (td_always_mse, 'loss="huber" should use'),
])
def test_td_loss_check_names_the_bug(mutant, match):
    assert_check_fails(T.check_td_loss, mutant, match=match)
