"""RL plumbing shared by chapter 2 (bandits, DQN, PPO, RLHF): seeding, vector envs, episode returns.

    from curriculum.utils.rl import seed_everything, make_vec_env, EpisodeTracker

    seed_everything(0)
    envs = make_vec_env("CartPole-v1", num_envs=4, seed=0)
    obs, _ = envs.reset(seed=0)
    tracker = EpisodeTracker()
    ...
    obs, rewards, terminated, truncated, infos = envs.step(actions)
    for ret in tracker.update(infos):   # returns of the episodes that ended on this step
        ...
    tracker.mean_return(last=20)

gymnasium 1.x vector envs autoreset on the NEXT step: the step on which a sub-env terminates or
truncates returns that episode's true final observation; the following `step` call ignores the
action for that sub-env, resets it and returns the first observation of the new episode with
reward 0 and terminated = truncated = False. `make_vec_env` keeps that default (it is the one
`gymnasium` documents), and `EpisodeTracker` reads the `RecordEpisodeStatistics` info it adds.
"""

from __future__ import annotations

import random
from typing import Any

import gymnasium as gym
import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a CPU run is reproducible (environments are seeded on reset)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_vec_env(
    env_id: str,
    num_envs: int,
    seed: int,
    vectorization_mode: str = "sync",
    **env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """`gym.make_vec` with episode statistics recorded and the action space seeded.

    Reset it with `envs.reset(seed=seed)` (sub-env i gets seed + i). "sync" steps the sub-envs
    in one process, which is faster than "async" for cheap envs like CartPole.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization_mode, **env_kwargs)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.action_space.seed(seed)
    envs.single_action_space.seed(seed)
    return envs


def finished_episodes(infos: dict[str, Any]) -> list[tuple[float, int]]:
    """(return, length) of each sub-env episode that ended on this step, from RecordEpisodeStatistics' info."""
    if "_episode" not in infos:
        return []
    done = np.asarray(infos["_episode"])
    returns, lengths = infos["episode"]["r"], infos["episode"]["l"]
    return [(float(returns[i]), int(lengths[i])) for i in np.flatnonzero(done)]


class EpisodeTracker:
    """Collects finished-episode returns from a vector env's infos; keeps the full history for plots."""

    def __init__(self) -> None:
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.steps_at_end: list[int] = []  # env steps taken when each episode ended (x axis for plots)

    def update(self, infos: dict[str, Any], env_steps: int | None = None) -> list[float]:
        new = finished_episodes(infos)
        for ret, length in new:
            self.returns.append(ret)
            self.lengths.append(length)
            self.steps_at_end.append(env_steps if env_steps is not None else sum(self.lengths))
        return [r for r, _ in new]

    def mean_return(self, last: int = 20) -> float:
        """Mean of the last `last` finished episodes (NaN before any episode has ended)."""
        recent = self.returns[-last:]
        return float(np.mean(recent)) if recent else float("nan")

    def __len__(self) -> int:
        return len(self.returns)



class NonFiniteError(FloatingPointError):
    """Training met NaN or inf; the message names the quantity, where it appeared, and what usually causes it."""


_CAUSES = {
    "observation": "the environment (or a wrapper that normalises observations by a zero variance) returned it; "
                   "check the env's step() and reset()",
    "reward": "the environment's reward function returned it",
    "loss": "usually a learning rate too high for the model, a log of a zero probability, or advantages "
            "normalised by a standard deviation of zero; lower the learning rate or check those terms",
}


def require_finite(value: Any, what: str, where: str) -> None:
    """Raise NonFiniteError if `value` (a number, array or tensor) holds NaN or inf: training must stop
    there, not carry on with garbage (or fail later, deep inside a distribution's constructor)."""
    t = torch.as_tensor(value, dtype=torch.float64) if not isinstance(value, torch.Tensor) else value.detach()
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return
    first = tuple(int(i) for i in (~finite).nonzero()[0]) if t.ndim else ()
    kind = "NaN" if bool(torch.isnan(t).any()) else "inf"
    at = f" (first at index {first})" if first else ""
    cause = next((c for key, c in _CAUSES.items() if key in what), "")
    raise NonFiniteError(f"{what} is {kind} at {where}{at}, so training stops here" + (f": {cause}" if cause else ""))
