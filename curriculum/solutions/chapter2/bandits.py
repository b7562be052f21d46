"""Multi-armed bandits (Sutton & Barto, chapter 2): the 10-armed testbed as a gymnasium env, and agents.

Every agent has the same three methods, so one loop (`run_testbed`) compares them all:
    agent.reset(seed)            forget everything, reseed the agent's own RNG
    agent.get_action() -> int    choose an arm
    agent.observe(action, reward)  learn from the reward of the arm just pulled
Ties between equally good arms are broken uniformly at random (with the agent's RNG): always
picking the lowest index is a classic bug that makes "greedy" look better or worse than it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from jaxtyping import Bool, Float, Int
from tqdm.auto import tqdm

BANDIT_ID = "curriculum/MultiArmedBandit-v0"
NONSTATIONARY_ID = "curriculum/NonstationaryBandit-v0"


class MultiArmedBanditEnv(gym.Env[np.int64, np.int64]):
    """The k-armed testbed: at reset the arm means q*(a) are drawn from N(mean_offset, 1);
    pulling arm a gives a reward drawn from N(q*(a), reward_std).

    A bandit has no state, so the observation is always 0 (Discrete(1)). It never terminates;
    the registered env truncates after `max_episode_steps` (1000 by default), one "run" in S&B's
    experiments. `info["best_arm"]` is the arm with the highest true mean (for % optimal action).
    Pass `options={"arm_means": [...]}` to reset to fix the means instead of sampling them.
    """

    metadata = {"render_modes": []}

    def __init__(self, num_arms: int = 10, mean_offset: float = 0.0, reward_std: float = 1.0):
        if num_arms < 2:
            raise ValueError(f"a bandit needs at least 2 arms, got num_arms={num_arms}")
        if reward_std < 0:
            raise ValueError(f"reward_std must be non-negative, got {reward_std}")
        self.num_arms, self.mean_offset, self.reward_std = num_arms, mean_offset, reward_std
        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.Discrete(num_arms)
        self.arm_means = np.zeros(num_arms)
        self.best_arm = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "arm_means" in options:
            means = np.asarray(options["arm_means"], dtype=np.float64)
            if means.shape != (self.num_arms,):
                raise ValueError(f"arm_means should have shape ({self.num_arms},), got {means.shape}")
            self.arm_means = means
        else:
            self.arm_means = self.np_random.normal(self.mean_offset, 1.0, size=self.num_arms)
        self.best_arm = int(np.argmax(self.arm_means))
        return np.int64(0), {"best_arm": self.best_arm}

    def step(self, action):
        if not (isinstance(action, (int, np.integer)) and 0 <= action < self.num_arms):  # cheaper than Discrete.contains
            raise ValueError(f"action must be an arm index in [0, {self.num_arms}), got {action!r}")
        reward = float(self.np_random.normal(self.arm_means[action], self.reward_std))
        return np.int64(0), reward, False, False, {"best_arm": self.best_arm}


if BANDIT_ID not in gym.registry:
    gym.register(id=BANDIT_ID, entry_point=f"{__name__}:MultiArmedBanditEnv", max_episode_steps=1000)


class NonstationaryBanditEnv(MultiArmedBanditEnv):
    """S&B exercise 2.5: every arm's mean starts at `mean_offset` and, after each pull, all of them take an
    independent random-walk step N(0, walk_std^2). `info["best_arm"]` is the best arm at the time of the pull."""

    def __init__(self, num_arms: int = 10, mean_offset: float = 0.0, reward_std: float = 1.0, walk_std: float = 0.01):
        if walk_std < 0:
            raise ValueError(f"walk_std must be non-negative, got {walk_std}")
        super().__init__(num_arms, mean_offset, reward_std)
        self.walk_std = walk_std

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if not (options and "arm_means" in options):
            options = {**(options or {}), "arm_means": np.full(self.num_arms, self.mean_offset)}
        return super().reset(seed=seed, options=options)

    def step(self, action):
        # EXERCISE: pay a reward from the current means (the parent's step), then move every arm's mean by N(0, walk_std^2) and recompute self.best_arm
        obs, reward, terminated, truncated, info = super().step(action)
        self.arm_means = self.arm_means + self.np_random.normal(0.0, self.walk_std, size=self.num_arms)
        self.best_arm = int(np.argmax(self.arm_means))
        return obs, reward, terminated, truncated, info
        # END EXERCISE


if NONSTATIONARY_ID not in gym.registry:
    gym.register(id=NONSTATIONARY_ID, entry_point=f"{__name__}:NonstationaryBanditEnv", max_episode_steps=10_000)


def argmax_random_tiebreak(values: Float[np.ndarray, "arms"], rng: np.random.Generator) -> int:
    """Index of the largest value; if several share it, one of them uniformly at random."""
    best = np.flatnonzero(values == values.max())
    return int(best[rng.integers(len(best))])


class RandomAgent:
    """Pulls arms uniformly at random: the baseline every agent must beat."""

    def __init__(self, num_arms: int, seed: int = 0):
        self.num_arms = num_arms
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def get_action(self) -> int:
        return int(self.rng.integers(self.num_arms))

    def observe(self, action: int, reward: float) -> None:
        pass


class ActionValueAgent:
    """Keeps an estimate Q(a) of every arm's value; subclasses add `get_action`, the way to act on them.

    step_size=None: sample averages, Q(a) += (R - Q(a)) / N(a)  (S&B eq. 2.3).
    step_size=alpha: constant step, Q(a) += alpha (R - Q(a))  (tracks non-stationary bandits).
    """

    def __init__(self, num_arms: int, initial_value: float = 0.0, step_size: float | None = None, seed: int = 0):
        if step_size is not None and not 0.0 < step_size <= 1.0:
            raise ValueError(f"step_size must be in (0, 1] (or None for sample averages), got {step_size}")
        self.num_arms, self.initial_value, self.step_size = num_arms, initial_value, step_size
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.q_estimates = np.full(self.num_arms, self.initial_value, dtype=np.float64)
        self.counts = np.zeros(self.num_arms, dtype=np.int64)

    def observe(self, action: int, reward: float) -> None:
        # EXERCISE: increment counts[action], then move q_estimates[action] toward reward by 1/N (sample average) or by step_size
        self.counts[action] += 1
        alpha = 1.0 / self.counts[action] if self.step_size is None else self.step_size
        self.q_estimates[action] += alpha * (reward - self.q_estimates[action])
        # END EXERCISE


class EpsilonGreedy(ActionValueAgent):
    """Explore with probability epsilon (uniformly over ALL arms, the greedy one included, as in S&B);
    otherwise pull the arm with the highest estimate, ties broken at random."""

    def __init__(self, num_arms: int, epsilon: float = 0.1, initial_value: float = 0.0,
                 step_size: float | None = None, seed: int = 0):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon is a probability and must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon
        super().__init__(num_arms, initial_value=initial_value, step_size=step_size, seed=seed)

    def get_action(self) -> int:
        # EXERCISE: with probability epsilon return a uniformly random arm, else the argmax of q_estimates (use argmax_random_tiebreak and self.rng)
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.num_arms))
        return argmax_random_tiebreak(self.q_estimates, self.rng)
        # END EXERCISE


class OptimisticGreedy(EpsilonGreedy):
    """Greedy with optimistic initial values (S&B fig. 2.3): every estimate starts at 5, far above
    any arm's mean, so each pull disappoints and the agent tries the others: exploration for free,
    early on only."""

    def __init__(self, num_arms: int, initial_value: float = 5.0, step_size: float = 0.1, seed: int = 0):
        # EXERCISE: call EpsilonGreedy's __init__ with epsilon=0 and this initial_value and step_size
        super().__init__(num_arms, epsilon=0.0, initial_value=initial_value, step_size=step_size, seed=seed)
        # END EXERCISE


class UCB(EpsilonGreedy):
    """Upper confidence bound (S&B eq. 2.10): pick argmax_a Q(a) + c sqrt(ln t / N(a)),
    where t is the number of this action (1 for the first). Untried arms count as maximising."""

    def __init__(self, num_arms: int, c: float = 2.0, seed: int = 0):
        if c < 0:
            raise ValueError(f"the exploration constant c must be non-negative, got {c}")
        self.c = c
        super().__init__(num_arms, epsilon=0.0, seed=seed)

    def scores(self) -> Float[np.ndarray, "arms"]:
        """Q(a) + c sqrt(ln t / N(a)) for the next action; +inf for arms never pulled."""
        # EXERCISE: t = (number of rewards observed so far) + 1; return q_estimates plus the exploration bonus, with np.inf where counts == 0
        t = self.counts.sum() + 1
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(np.log(t) / self.counts)
        return np.where(self.counts == 0, np.inf, self.q_estimates + bonus)
        # END EXERCISE

    def get_action(self) -> int:
        return argmax_random_tiebreak(self.scores(), self.rng)


def gaussian_posterior(
    counts: Float[np.ndarray, "arms"],
    reward_sums: Float[np.ndarray, "arms"],
    prior_mean: float,
    prior_std: float,
    noise_std: float,
) -> tuple[Float[np.ndarray, "arms"], Float[np.ndarray, "arms"]]:
    """(mean, std) of each arm's posterior over its mean, for a N(prior_mean, prior_std^2) prior and
    Gaussian rewards of known standard deviation noise_std, after `counts` rewards summing to `reward_sums`."""
    # EXERCISE: precisions add (1/prior_var + N/noise_var); the mean is the precision-weighted average of prior mean and rewards; return std, not variance
    precision = 1.0 / prior_std**2 + counts / noise_std**2
    mean = (prior_mean / prior_std**2 + reward_sums / noise_std**2) / precision
    return mean, 1.0 / np.sqrt(precision)
    # END EXERCISE


class ThompsonSampling:
    """Gaussian Thompson sampling: a N(prior_mean, prior_std^2) belief about each arm's mean,
    updated exactly (conjugate Gaussian, known reward noise noise_std); act by sampling one mean
    per arm from the posterior and pulling the arm whose sample is largest."""

    def __init__(self, num_arms: int, prior_mean: float = 0.0, prior_std: float = 1.0,
                 noise_std: float = 1.0, seed: int = 0):
        if prior_std <= 0 or noise_std <= 0:
            raise ValueError(f"prior_std and noise_std must be positive, got {prior_std} and {noise_std}")
        self.num_arms, self.prior_mean = num_arms, prior_mean
        self.prior_std, self.noise_std = prior_std, noise_std
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.counts = np.zeros(self.num_arms, dtype=np.int64)
        self.reward_sums = np.zeros(self.num_arms, dtype=np.float64)

    def posterior(self) -> tuple[Float[np.ndarray, "arms"], Float[np.ndarray, "arms"]]:
        return gaussian_posterior(self.counts, self.reward_sums, self.prior_mean, self.prior_std, self.noise_std)

    def get_action(self) -> int:
        # EXERCISE: sample one mean per arm from the posterior with self.rng and return the argmax
        mean, std = self.posterior()
        return int(np.argmax(self.rng.normal(mean, std)))
        # END EXERCISE

    def observe(self, action: int, reward: float) -> None:
        self.counts[action] += 1
        self.reward_sums[action] += reward


class GradientBandit:
    """Gradient bandit (S&B section 2.8): numerical preferences H(a), policy pi = softmax(H).

    After pulling A and receiving R, with baseline Rbar:
        H(A) += alpha (R - Rbar) (1 - pi(A));   H(a) -= alpha (R - Rbar) pi(a) for a != A,
    with pi computed before the update. Rbar is the average of the rewards BEFORE this one
    (S&B: "up to but not including time t, with Rbar_1 = R_1"), so the first update is zero.
    baseline=False uses Rbar = 0.
    """

    def __init__(self, num_arms: int, step_size: float = 0.1, baseline: bool = True, seed: int = 0):
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.num_arms, self.step_size, self.baseline = num_arms, step_size, baseline
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.preferences = np.zeros(self.num_arms, dtype=np.float64)
        self.mean_reward = 0.0
        self.t = 0

    def action_probs(self) -> Float[np.ndarray, "arms"]:
        z = self.preferences - self.preferences.max()  # subtracting the max avoids overflow in exp
        e = np.exp(z)
        return e / e.sum()

    def get_action(self) -> int:
        return int(self.rng.choice(self.num_arms, p=self.action_probs()))

    def observe(self, action: int, reward: float) -> None:
        # EXERCISE: baseline = mean of earlier rewards (this reward itself on the first step; 0 if not self.baseline); update preferences with the old pi; then update mean_reward and t
        self.t += 1
        if self.baseline:
            baseline = reward if self.t == 1 else self.mean_reward
        else:
            baseline = 0.0
        probs = self.action_probs()
        one_hot = np.eye(self.num_arms)[action]
        self.preferences += self.step_size * (reward - baseline) * (one_hot - probs)
        self.mean_reward += (reward - self.mean_reward) / self.t
        # END EXERCISE


@dataclass
class BanditRuns:
    """Everything that happened in `num_runs` independent runs of one agent, one row per run.

    rewards[i, t], actions[i, t]: the reward and arm of step t in run i;
    optimal[i, t]: whether that arm was the best arm at that moment (info["best_arm"]);
    arm_means[i]: the bandit's true means at the start of run i (throughout, for a stationary bandit)."""

    rewards: Float[np.ndarray, "runs steps"]
    actions: Int[np.ndarray, "runs steps"]
    optimal: Bool[np.ndarray, "runs steps"]
    arm_means: Float[np.ndarray, "runs arms"]

    @property
    def mean_reward(self) -> Float[np.ndarray, "steps"]:
        return self.rewards.mean(0)

    @property
    def optimal_fraction(self) -> Float[np.ndarray, "steps"]:
        return self.optimal.mean(0)


def run_testbed(
    agent,
    num_runs: int = 2000,
    num_steps: int = 1000,
    seed: int = 0,
    progress: bool = True,
    env_id: str = BANDIT_ID,
    **env_kwargs,
) -> BanditRuns:
    """Run `agent` on `num_runs` fresh bandits (gym.make(env_id, max_episode_steps=num_steps, **env_kwargs)),
    `num_steps` pulls each, and record every step.

    Run i resets the env with seed `seed + i` and the agent with `agent.reset(seed + i)`, so two agents
    compared with the same seed face exactly the same bandit problems (a paired comparison: less noise)."""
    if num_runs < 1 or num_steps < 1:
        raise ValueError(f"num_runs and num_steps must be positive, got {num_runs} and {num_steps}")
    env = gym.make(env_id, max_episode_steps=num_steps, **env_kwargs)
    num_arms = env.action_space.n
    rewards = np.zeros((num_runs, num_steps))
    actions = np.zeros((num_runs, num_steps), dtype=np.int64)
    optimal = np.zeros((num_runs, num_steps), dtype=bool)
    arm_means = np.zeros((num_runs, num_arms))
    for run in tqdm(range(num_runs), desc=type(agent).__name__, disable=not progress):
        # EXERCISE: reset env and agent with seed + run, store the means, then num_steps times: act, step, observe, record
        env.reset(seed=seed + run)
        agent.reset(seed + run)
        arm_means[run] = env.unwrapped.arm_means
        for t in range(num_steps):
            action = agent.get_action()
            _, reward, _, _, info = env.step(action)
            agent.observe(action, reward)
            rewards[run, t], actions[run, t], optimal[run, t] = reward, action, action == info["best_arm"]
        # END EXERCISE
    env.close()
    return BanditRuns(rewards, actions, optimal, arm_means)


def cumulative_regret(
    arm_means: Float[np.ndarray, "runs arms"], actions: Int[np.ndarray, "runs steps"]
) -> Float[np.ndarray, "steps"]:
    """Mean over runs of the regret accumulated up to each step: sum over s <= t of (best mean - mean of the
    arm pulled at step s). Uses the true means, not the noisy rewards (the "pseudo-regret")."""
    # EXERCISE: gap of each pulled arm = best mean of its run - that arm's mean (np.take_along_axis); cumulative sum over steps; average over runs
    pulled = np.take_along_axis(arm_means, actions, axis=1)
    gaps = arm_means.max(axis=1, keepdims=True) - pulled
    return gaps.cumsum(axis=1).mean(axis=0)
    # END EXERCISE


def lai_robbins_constant(arm_means: Float[np.ndarray, "arms"], noise_std: float = 1.0) -> float:
    """The constant C in Lai & Robbins' lower bound: any algorithm that is good on every bandit has regret at least
    about C ln T on this one, where C sums, over the suboptimal arms a, gap(a) / KL(N(q*(a), s^2) || N(q*(best), s^2)),
    with s = noise_std and gap(a) = q*(best) - q*(a)."""
    # EXERCISE: the KL divergence between two Gaussians of equal std s is gap^2 / (2 s^2); sum gap / KL over arms with gap > 0
    gaps = arm_means.max() - arm_means
    gaps = gaps[gaps > 0]
    return float(np.sum(2 * noise_std**2 / gaps))
    # END EXERCISE
