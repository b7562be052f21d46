"""Section 2.1: the bandit env against gymnasium's checker, and plausible learner bugs each check must catch."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from curriculum.solutions.chapter2 import bandits as B
from curriculum.checks.chapter2 import bandits as T
from tests.support import assert_check_fails


def test_bandit_env_passes_gymnasium_checker_and_is_registered():
    env = gym.make(B.BANDIT_ID)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 1000


def test_bandit_rewards_follow_the_arm_means_and_truncate():
    env = gym.make(B.BANDIT_ID, max_episode_steps=3000, num_arms=3)
    _, info = env.reset(seed=0, options={"arm_means": [0.0, 2.0, -1.0]})
    assert info["best_arm"] == 1
    rewards = [env.step(1)[1] for _ in range(2999)]
    *_, terminated, truncated, _ = env.step(1)
    assert not terminated and truncated
    assert np.mean(rewards) == pytest.approx(2.0, abs=0.1) and np.std(rewards) == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="arm index"):
        env.unwrapped.step(3)
    with pytest.raises(ValueError, match="shape"):
        env.reset(options={"arm_means": [1.0]})


def test_same_seed_same_bandit():
    env = B.MultiArmedBanditEnv()
    env.reset(seed=5)
    m = env.arm_means.copy()
    env.reset(seed=5)
    assert np.array_equal(m, env.arm_means)


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (B.EpsilonGreedy, dict(epsilon=-0.1), "epsilon"),
        (B.EpsilonGreedy, dict(epsilon=1.5), "epsilon"),
        (B.EpsilonGreedy, dict(step_size=0.0), "step_size"),
        (B.UCB, dict(c=-1.0), "c must be non-negative"),
        (B.ThompsonSampling, dict(prior_std=0.0), "positive"),
        (B.GradientBandit, dict(step_size=-0.1), "step_size"),
    ],
)
def test_bad_hyperparameters_raise(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(10, **kwargs)


def test_run_testbed_is_reproducible_and_reproduces_sutton_barto_ordering():
    a = B.run_testbed(B.EpsilonGreedy(10, 0.1), 20, 50, seed=3, progress=False)
    b = B.run_testbed(B.EpsilonGreedy(10, 0.1), 20, 50, seed=3, progress=False)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # S&B fig 2.2: greedy gets stuck, eps=0.1 finds the best arm more often.
    _, opt_greedy = B.run_testbed(B.EpsilonGreedy(10, 0.0), 100, 300, seed=0, progress=False)
    _, opt_eps = B.run_testbed(B.EpsilonGreedy(10, 0.1), 100, 300, seed=0, progress=False)
    assert opt_eps[-100:].mean() > opt_greedy[-100:].mean() + 0.1


# ---- mutants: each is a plausible learner bug; the check must raise CheckFailed ----


class NoTieBreak(B.EpsilonGreedy):
    def get_action(self):
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.num_arms))
        return int(np.argmax(self.q_estimates))


class ExploreOnlyOthers(B.EpsilonGreedy):
    def get_action(self):
        greedy = B.argmax_random_tiebreak(self.q_estimates, self.rng)
        if self.rng.random() < self.epsilon:
            return int(self.rng.choice([a for a in range(self.num_arms) if a != greedy]))
        return greedy


class CountAfterUpdate(B.EpsilonGreedy):
    def observe(self, action, reward):
        alpha = 1.0 / (self.counts[action] + 2) if self.step_size is None else self.step_size
        self.q_estimates[action] += alpha * (reward - self.q_estimates[action])
        self.counts[action] += 1


class IgnoresStepSize(B.EpsilonGreedy):
    def observe(self, action, reward):
        self.counts[action] += 1
        self.q_estimates[action] += (reward - self.q_estimates[action]) / self.counts[action]


class GlobalRng(B.EpsilonGreedy):
    def get_action(self):
        if np.random.random() < self.epsilon:
            return int(np.random.randint(self.num_arms))
        return B.argmax_random_tiebreak(self.q_estimates, np.random.default_rng())


class NotOptimistic(B.OptimisticGreedy):
    def __init__(self, num_arms, seed=0):
        super().__init__(num_arms, initial_value=0.0, seed=seed)


class UCBOffByOne(B.UCB):
    def scores(self):
        t = max(self.counts.sum(), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(np.log(t) / self.counts)
        return np.where(self.counts == 0, np.inf, self.q_estimates + bonus)


class UCBNoSqrt(B.UCB):
    def scores(self):
        t = self.counts.sum() + 1
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.log(t) / self.counts
        return np.where(self.counts == 0, np.inf, self.q_estimates + bonus)


class UCBUntriedZero(B.UCB):
    def scores(self):
        s = B.UCB.scores(self)
        return np.where(np.isinf(s), 0.0, s)


class ThompsonVariance(B.ThompsonSampling):
    def posterior(self):
        mean, std = B.ThompsonSampling.posterior(self)
        return mean, std**2


class ThompsonGreedy(B.ThompsonSampling):
    def get_action(self):
        return B.argmax_random_tiebreak(self.posterior()[0], self.rng)


class ThompsonNoPrior(B.ThompsonSampling):
    def posterior(self):
        n = np.maximum(self.counts, 1)
        return self.reward_sums / n, self.noise_std / np.sqrt(n)


class GradientBaselineIncludesReward(B.GradientBandit):
    def observe(self, action, reward):
        self.t += 1
        self.mean_reward += (reward - self.mean_reward) / self.t
        base = self.mean_reward if self.baseline else 0.0
        self.preferences += self.step_size * (reward - base) * (np.eye(self.num_arms)[action] - self.action_probs())


class GradientOnlyChosenArm(B.GradientBandit):
    def observe(self, action, reward):
        self.t += 1
        base = (reward if self.t == 1 else self.mean_reward) if self.baseline else 0.0
        self.preferences[action] += self.step_size * (reward - base) * (1 - self.action_probs()[action])
        self.mean_reward += (reward - self.mean_reward) / self.t


class GradientArgmax(B.GradientBandit):
    def get_action(self):
        return int(np.argmax(self.preferences))


@pytest.mark.parametrize(
    "check,mutant",
    [
        (T.check_epsilon_greedy, NoTieBreak),
        (T.check_epsilon_greedy, ExploreOnlyOthers),
        (T.check_epsilon_greedy, CountAfterUpdate),
        (T.check_epsilon_greedy, IgnoresStepSize),
        (T.check_epsilon_greedy, GlobalRng),
        (T.check_optimistic_greedy, NotOptimistic),
        (T.check_ucb, UCBOffByOne),
        (T.check_ucb, UCBNoSqrt),
        (T.check_ucb, UCBUntriedZero),
        (T.check_thompson_sampling, ThompsonVariance),
        (T.check_thompson_sampling, ThompsonGreedy),
        (T.check_thompson_sampling, ThompsonNoPrior),
        (T.check_gradient_bandit, GradientBaselineIncludesReward),
        (T.check_gradient_bandit, GradientOnlyChosenArm),
        (T.check_gradient_bandit, GradientArgmax),
    ],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_check_catches_mutant(check, mutant):
    assert_check_fails(check, mutant)


def test_checks_reject_an_instance():
    assert_check_fails(T.check_epsilon_greedy, B.EpsilonGreedy(4), match="class itself")
