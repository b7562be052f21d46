"""Deep Q-learning (Mnih et al. 2015) on gymnasium 1.x vector envs, CleanRL-style: one flat file.

Read it top to bottom: config, Q-network, replay buffer, epsilon schedule, action selection,
TD loss, storing a vector step (the gymnasium 1.x autoreset subtlety), then the training loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.utils.device import torch_threads
from curriculum.utils.rl import EpisodeTracker, NonFiniteError, make_vec_env, seed_everything


@dataclass
class DQNConfig:
    """Defaults for CartPole-v1. In curriculum/benchmarks/dqn_cartpole.py every seed from 0 to 9 reaches a mean
    return >= 475 over 20 episodes within 41k-77k env steps (DQN is seed-fragile: with learning_rate 1e-3,
    seed 5 does not within 100k)."""

    env_id: str = "CartPole-v1"
    seed: int = 0
    num_envs: int = 4
    total_timesteps: int = 100_000  # env steps, summed over the vector's sub-envs
    learning_rate: float = 7e-4
    buffer_size: int = 100_000  # keep every transition: forgetting the early failures makes DQN collapse
    gamma: float = 0.99
    batch_size: int = 128
    hidden_sizes: tuple[int, ...] = (128, 128)  # wide enough for CartPole, small enough for ~2,500 env steps/s on one CPU thread
    start_epsilon: float = 1.0
    end_epsilon: float = 0.05
    exploration_fraction: float = 0.1  # fraction of total_timesteps over which epsilon decays linearly
    learning_starts: int = 1_000  # env steps of random play before the first update
    train_frequency: int = 4  # env steps between training phases
    gradient_steps: int = 1  # gradient steps per training phase
    target_update_frequency: int = 250  # env steps between updates of the target network
    tau: float = 1.0  # target <- tau * online + (1 - tau) * target; 1.0 is a hard copy (Mnih et al.)
    loss: str = "huber"  # "huber" (smooth L1, robust to large TD errors) or "mse"
    max_grad_norm: float = 10.0
    solve_return: float = 475.0
    solve_window: int = 20
    stop_when_solved: bool = False
    device: str = "cpu"
    cpu_threads: int = 1  # torch threads on CPU: for MLPs this small, thread sync costs more than it saves

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        for name in ("start_epsilon", "end_epsilon"):
            v = getattr(self, name)
            need(0.0 <= v <= 1.0, f"{name} is a probability and must be in [0, 1], got {v}")
        need(0.0 < self.exploration_fraction <= 1.0,
             f"exploration_fraction must be in (0, 1], got {self.exploration_fraction}")
        need(0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}")
        need(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        need(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("num_envs", "total_timesteps", "cpu_threads", "batch_size", "train_frequency", "gradient_steps",
                     "target_update_frequency", "solve_window"):
            need(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        need(self.buffer_size >= self.batch_size,
             f"buffer_size ({self.buffer_size}) is smaller than batch_size ({self.batch_size}): "
             "the buffer could never fill a batch. Increase buffer_size or reduce batch_size.")
        need(self.learning_starts >= self.batch_size,
             f"learning_starts ({self.learning_starts}) must be >= batch_size ({self.batch_size}) so the first "
             "update has a full batch of real transitions")
        need(self.total_timesteps >= self.num_envs,
             f"total_timesteps ({self.total_timesteps}) must be at least num_envs ({self.num_envs})")
        need(self.loss in ("huber", "mse"), f'loss must be "huber" or "mse", got {self.loss!r}')


class QNetwork(nn.Module):
    """MLP from an observation vector to one Q-value per action."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...] = (120, 84)):
        super().__init__()
        # EXERCISE: build self.net, an nn.Sequential of Linear+ReLU layers (one per hidden size) and a final Linear to n_actions (no activation: Q-values are unbounded)
        sizes = (obs_dim, *hidden_sizes)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], n_actions))
        self.net = nn.Sequential(*layers)
        # END EXERCISE

    def forward(self, obs: Float[Tensor, "batch obs_dim"]) -> Float[Tensor, "batch n_actions"]:
        return self.net(obs)


@dataclass
class ReplayBatch:
    obs: Float[Tensor, "batch obs_dim"]
    actions: Int[Tensor, "batch"]
    rewards: Float[Tensor, "batch"]
    next_obs: Float[Tensor, "batch obs_dim"]
    terminated: Float[Tensor, "batch"]  # 1.0 where the episode truly ended: no bootstrapping from next_obs


class ReplayBuffer:
    """Fixed-size ring buffer of single transitions, sampled uniformly with replacement.

    It stores `terminated`, never `truncated`: a transition cut off by a time limit still has a
    future, so its target bootstraps from next_obs like any other.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid transitions

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: Float[np.ndarray, "n obs_dim"],
        actions: Int[np.ndarray, "n"],
        rewards: Float[np.ndarray, "n"],
        next_obs: Float[np.ndarray, "n obs_dim"],
        terminated: Bool[np.ndarray, "n"],
    ) -> None:
        """Add n transitions, overwriting the oldest once the buffer is full."""
        # EXERCISE: write the n transitions at slots pos, pos+1, ... (wrapping around modulo capacity), then advance pos and size
        idx = (self.pos + np.arange(len(actions))) % self.capacity
        self.obs[idx] = obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.next_obs[idx] = next_obs
        self.terminated[idx] = terminated
        self.pos = int((self.pos + len(actions)) % self.capacity)
        self.size = min(self.size + len(actions), self.capacity)
        # END EXERCISE

    def sample(self, batch_size: int, device: str | torch.device = "cpu") -> ReplayBatch:
        """Uniformly sample batch_size stored transitions (with replacement): see `sample_batch`."""
        return sample_batch(self, batch_size, device)


def sample_batch(buffer: ReplayBuffer, batch_size: int, device: str | torch.device = "cpu") -> ReplayBatch:
    """Draw batch_size indices uniformly from the filled slots (with replacement, from buffer.rng) and return
    the transitions at those indices as tensors on device, each transition's five fields kept together."""
    if batch_size > buffer.size:
        raise ValueError(f"cannot sample {batch_size} transitions from a buffer holding {buffer.size}: "
                         "wait until learning_starts >= batch_size steps have been stored")
    # EXERCISE: draw batch_size indices in [0, buffer.size) with buffer.rng and return a ReplayBatch of tensors on device
    idx = buffer.rng.integers(0, buffer.size, size=batch_size)

    def t(x: np.ndarray) -> Tensor:
        return torch.as_tensor(x[idx], device=device)

    return ReplayBatch(t(buffer.obs), t(buffer.actions), t(buffer.rewards), t(buffer.next_obs), t(buffer.terminated))
    # END EXERCISE


def linear_schedule(step: int, start: float, end: float, duration: int) -> float:
    """Linearly interpolate from start (at step 0) to end (at step duration), then stay at end."""
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    # EXERCISE: return start + (end - start) * fraction of duration elapsed, clipped so it never goes past end
    return start + (end - start) * min(step / duration, 1.0)
    # END EXERCISE


def epsilon_greedy(
    q_network: nn.Module, obs: Float[np.ndarray, "n obs_dim"], epsilon: float, rng: np.random.Generator
) -> Int[np.ndarray, "n"]:
    """One action per sub-env: uniformly random with probability epsilon, else argmax_a Q(obs, a)."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    # EXERCISE: compute greedy actions with q_network (no gradients), then replace each with a random action with probability epsilon (use rng)
    with torch.no_grad():
        device = next(q_network.parameters()).device
        q = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device))
    greedy = q.argmax(dim=-1).cpu().numpy()
    n_actions = q.shape[-1]
    explore = rng.random(len(obs)) < epsilon
    return np.where(explore, rng.integers(0, n_actions, size=len(obs)), greedy)
    # END EXERCISE


def td_loss(
    q_network: nn.Module, target_network: nn.Module, batch: ReplayBatch, gamma: float, loss: str = "huber"
) -> Float[Tensor, ""]:
    """Mean TD loss between Q(s, a) and the target r + gamma * (1 - terminated) * max_a' Q_target(s', a').

    The target is a constant (no gradient flows into the target network)."""
    # EXERCISE: gather Q(s, a) of the taken actions, build the target without gradients (mask bootstrapping on terminated), return huber (F.smooth_l1_loss) or mse loss
    with torch.no_grad():
        next_q = target_network(batch.next_obs).max(dim=-1).values
        target = batch.rewards + gamma * (1.0 - batch.terminated) * next_q
    q_taken = q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1)
    if loss == "huber":
        return F.smooth_l1_loss(q_taken, target)
    return F.mse_loss(q_taken, target)
    # END EXERCISE


def store_vector_step(
    buffer: ReplayBuffer,
    obs: Float[np.ndarray, "n obs_dim"],
    actions: Int[np.ndarray, "n"],
    rewards: Float[np.ndarray, "n"],
    next_obs: Float[np.ndarray, "n obs_dim"],
    terminated: Bool[np.ndarray, "n"],
    autoreset: Bool[np.ndarray, "n"],
) -> int:
    """Store one vector-env step's transitions; return how many were stored.

    gymnasium 1.x autoresets on the NEXT step: if sub-env i ended on the previous step
    (`autoreset[i]`, i.e. terminated or truncated there), this step only reset it. Its "transition"
    goes from the last episode's final obs to the new episode's first obs, with the action ignored:
    it is not a real transition and must be skipped. When sub-env i ends on this step, next_obs[i]
    is the true final observation, so truncated episodes can bootstrap from it.
    """
    # EXERCISE: keep only sub-envs that did not autoreset on this step, and store terminated (not terminated | truncated)
    keep = ~np.asarray(autoreset, dtype=bool)
    if keep.any():
        buffer.add(obs[keep], actions[keep], rewards[keep], next_obs[keep], terminated[keep])
    return int(keep.sum())
    # END EXERCISE


def stop_if_not_finite(obs: np.ndarray, loss: Tensor | None, env_id: str, env_step: int) -> None:
    """Stop training at the first NaN or infinity, naming where it appeared: a NaN loss poisons every weight
    on the next optimiser step, and from then on the agent learns nothing while the run carries on."""
    bad = ~np.isfinite(np.asarray(obs, dtype=np.float64))
    if bad.any():
        rows = sorted({int(i) for i in np.argwhere(bad)[:, 0]})
        raise NonFiniteError(
            f"non-finite observation (NaN or inf) from {env_id} at env step {env_step}, sub-env(s) {rows}: the "
            "environment produced it, and training on it would poison the Q-network. Check the env (or an "
            "observation wrapper) rather than the agent.")
    if loss is not None and not torch.isfinite(loss.detach()).all():
        raise NonFiniteError(
            f"non-finite TD loss ({float(loss.detach()):.3g}) at env step {env_step}: the Q-values diverged or a "
            "reward is NaN/inf. Lower learning_rate, keep max_grad_norm finite, use the huber loss, and check "
            "that the target is computed under torch.no_grad() from the target network.")


@dataclass
class DQNResult:
    q_network: QNetwork
    tracker: EpisodeTracker
    env_steps: int
    wall_time: float
    solved_at_step: int | None  # first env step at which the mean of the last solve_window returns >= solve_return
    solved_at_time: float | None
    losses: list[float] = field(default_factory=list)


def train_dqn(cfg: DQNConfig, progress: bool = True) -> DQNResult:
    with torch_threads(cfg.cpu_threads):
        seed_everything(cfg.seed)
        envs = make_vec_env(cfg.env_id, cfg.num_envs, cfg.seed)
        if not isinstance(envs.single_action_space, gym.spaces.Discrete):
            raise ValueError(f"DQN needs a discrete action space, {cfg.env_id} has {envs.single_action_space}")
        obs_shape = envs.single_observation_space.shape
        n_actions = int(envs.single_action_space.n)
        device = torch.device(cfg.device)
        rng = np.random.default_rng(cfg.seed)

        q_network = QNetwork(int(np.prod(obs_shape)), n_actions, cfg.hidden_sizes).to(device)
        target_network = QNetwork(int(np.prod(obs_shape)), n_actions, cfg.hidden_sizes).to(device)
        target_network.load_state_dict(q_network.state_dict())
        optimizer = torch.optim.Adam(q_network.parameters(), lr=cfg.learning_rate)
        buffer = ReplayBuffer(cfg.buffer_size, obs_shape, seed=cfg.seed)
        tracker = EpisodeTracker()
        losses: list[float] = []

        obs, _ = envs.reset(seed=cfg.seed)
        stop_if_not_finite(obs, None, cfg.env_id, 0)
        autoreset = np.zeros(cfg.num_envs, dtype=bool)
        n_iters = cfg.total_timesteps // cfg.num_envs
        # Phases are counted in env steps; with num_envs sub-envs each iteration is num_envs env steps.
        train_every = max(1, cfg.train_frequency // cfg.num_envs)
        target_every = max(1, cfg.target_update_frequency // cfg.num_envs)
        exploration_steps = max(1, int(cfg.exploration_fraction * cfg.total_timesteps))
        solved_step = solved_time = None
        loss = None  # set by a gradient step; read (and cleared) after each iteration
        start = time.perf_counter()
        bar = tqdm(range(n_iters), desc=f"DQN {cfg.env_id}", disable=not progress)
        for it in bar:
            step = it * cfg.num_envs
            # EXERCISE: one iteration: act (random before learning_starts, then epsilon-greedy with the linear schedule), step the envs, store the step, carry obs and autoreset forward; every train_every iterations from learning_starts on, take cfg.gradient_steps optimiser steps on sampled batches (assign each loss to `loss`); every target_every iterations, move the target network towards the online one by tau
            epsilon = linear_schedule(step, cfg.start_epsilon, cfg.end_epsilon, exploration_steps)
            if step < cfg.learning_starts:
                actions = envs.action_space.sample()
            else:
                actions = epsilon_greedy(q_network, obs, epsilon, rng)
            next_obs, rewards, terminated, truncated, infos = envs.step(actions)
            store_vector_step(buffer, obs, actions, rewards, next_obs, terminated, autoreset)
            autoreset = np.logical_or(terminated, truncated)
            obs = next_obs

            if step >= cfg.learning_starts and it % train_every == 0:
                for _ in range(cfg.gradient_steps):
                    batch = buffer.sample(cfg.batch_size, device)
                    loss = td_loss(q_network, target_network, batch, cfg.gamma, cfg.loss)
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(q_network.parameters(), cfg.max_grad_norm)
                    optimizer.step()
            if it % target_every == 0:
                with torch.no_grad():
                    for p_target, p in zip(target_network.parameters(), q_network.parameters()):
                        p_target.lerp_(p, cfg.tau)
            # END EXERCISE
            stop_if_not_finite(obs, loss, cfg.env_id, step + cfg.num_envs)
            if loss is not None:
                losses.append(loss.item())
                loss = None

            if tracker.update(infos, env_steps=step + cfg.num_envs):
                mean_ret = tracker.mean_return(cfg.solve_window)
                bar.set_postfix(mean_return=f"{mean_ret:.0f}", eps=f"{epsilon:.2f}")
                if solved_step is None and len(tracker) >= cfg.solve_window and mean_ret >= cfg.solve_return:
                    solved_step, solved_time = step + cfg.num_envs, time.perf_counter() - start
                    if cfg.stop_when_solved:
                        break
        envs.close()
        env_steps = (it + 1) * cfg.num_envs
        return DQNResult(q_network, tracker, env_steps, time.perf_counter() - start, solved_step, solved_time, losses)
