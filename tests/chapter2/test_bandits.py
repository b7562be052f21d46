"""Section 2.1: the bandit env against gymnasium's checker, and plausible learner bugs each check must catch."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from curriculum.checks.chapter2 import bandits as T
from curriculum.solutions.chapter2 import bandits as B
from tests.support import assert_check_fails, mutant


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
        (B.EpsilonGreedy, {"epsilon": -0.1}, "epsilon"),
        (B.EpsilonGreedy, {"epsilon": 1.5}, "epsilon"),
        (B.EpsilonGreedy, {"step_size": 0.0}, "step_size"),
        (B.UCB, {"c": -1.0}, "c must be non-negative"),
        (B.ThompsonSampling, {"prior_std": 0.0}, "positive"),
        (B.GradientBandit, {"step_size": -0.1}, "step_size"),
    ],
)
def test_bad_hyperparameters_raise(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(10, **kwargs)


def test_run_testbed_is_reproducible_and_reproduces_sutton_barto_ordering():
    a = B.run_testbed(B.EpsilonGreedy(10, 0.1), 20, 50, seed=3, progress=False)
    b = B.run_testbed(B.EpsilonGreedy(10, 0.1), 20, 50, seed=3, progress=False)
    assert np.array_equal(a.rewards, b.rewards) and np.array_equal(a.actions, b.actions)
    # S&B fig 2.2: greedy gets stuck, eps=0.1 finds the best arm more often.
    opt_greedy = B.run_testbed(B.EpsilonGreedy(10, 0.0), 100, 300, seed=0, progress=False).optimal_fraction
    opt_eps = B.run_testbed(B.EpsilonGreedy(10, 0.1), 100, 300, seed=0, progress=False).optimal_fraction
    assert opt_eps[-100:].mean() > opt_greedy[-100:].mean() + 0.1


def test_regret_grows_linearly_for_greedy_and_slowly_for_ucb():
    greedy = B.run_testbed(B.EpsilonGreedy(10, 0.0), 100, 400, seed=0, progress=False)
    ucb = B.run_testbed(B.UCB(10), 100, 400, seed=0, progress=False)
    r_greedy, r_ucb = (B.cumulative_regret(r.arm_means, r.actions) for r in (greedy, ucb))
    assert r_ucb[-1] < r_greedy[-1]
    # the second half of the run adds less regret than the first for UCB (log-like), about as much for greedy
    assert r_ucb[-1] - r_ucb[199] < 0.7 * r_ucb[199]
    assert r_greedy[-1] - r_greedy[199] > 0.7 * r_greedy[199]


def test_constant_step_size_beats_sample_average_on_a_nonstationary_bandit():
    kw = {"env_id": B.NONSTATIONARY_ID, "walk_std": 0.05, "seed": 0, "progress": False}
    avg = B.run_testbed(B.EpsilonGreedy(10, 0.1), 40, 2000, **kw)
    const = B.run_testbed(B.EpsilonGreedy(10, 0.1, step_size=0.1), 40, 2000, **kw)
    assert const.optimal[:, 1000:].mean() > avg.optimal[:, 1000:].mean() + 0.05


def test_gaussian_posterior_matches_sequential_bayes_update():
    rng = np.random.default_rng(0)
    history = [(int(a), float(r)) for a, r in zip(rng.integers(3, size=20), rng.normal(size=20))]
    counts = np.bincount([a for a, _ in history], minlength=3)
    sums = np.bincount([a for a, _ in history], weights=[r for _, r in history], minlength=3)
    got = B.gaussian_posterior(counts, sums, 0.3, 1.7, 0.6)
    ref = T._sequential_posterior(history, 3, 0.3, 1.7, 0.6)
    assert np.allclose(got[0], ref[0]) and np.allclose(got[1], ref[1])


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


class CountAfterUpdate(B.ActionValueAgent):
    def observe(self, action, reward):
        alpha = 1.0 / (self.counts[action] + 2) if self.step_size is None else self.step_size
        self.q_estimates[action] += alpha * (reward - self.q_estimates[action])
        self.counts[action] += 1


class IgnoresStepSize(B.ActionValueAgent):
    def observe(self, action, reward):
        self.counts[action] += 1
        self.q_estimates[action] += (reward - self.q_estimates[action]) / self.counts[action]


class ResetForgetsInitialValue(B.ActionValueAgent):
    def reset(self, seed):
        super().reset(seed)
        self.q_estimates[:] = 0.0


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


# ---- the conjugate Gaussian posterior: bugs that unit variances would hide ----

def posterior_variance(counts, sums, prior_mean, prior_std, noise_std):
    mean, std = B.gaussian_posterior(counts, sums, prior_mean, prior_std, noise_std)
    return mean, std**2


def posterior_no_prior(counts, sums, prior_mean, prior_std, noise_std):
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums / counts, noise_std / np.sqrt(counts)


def posterior_divides_by_noise_precision(counts, sums, prior_mean, prior_std, noise_std):
    precision = 1.0 / prior_std**2 + counts * noise_std**2
    return (prior_mean / prior_std**2 + sums * noise_std**2) / precision, 1.0 / np.sqrt(precision)


def posterior_std_for_variance(counts, sums, prior_mean, prior_std, noise_std):
    precision = 1.0 / prior_std + counts / noise_std
    return (prior_mean / prior_std + sums / noise_std) / precision, 1.0 / np.sqrt(precision)


def posterior_prior_std_for_variance(counts, sums, prior_mean, prior_std, noise_std):
    precision = 1.0 / prior_std + counts / noise_std**2
    return (prior_mean / prior_std + sums / noise_std**2) / precision, 1.0 / np.sqrt(precision)


def posterior_mean_forgets_prior_mean(counts, sums, prior_mean, prior_std, noise_std):
    precision = 1.0 / prior_std**2 + counts / noise_std**2
    return (sums / noise_std**2) / precision, 1.0 / np.sqrt(precision)


def _thompson_with(posterior_fn):
    class Mutant(B.ThompsonSampling):
        def posterior(self):
            return posterior_fn(self.counts, self.reward_sums, self.prior_mean, self.prior_std, self.noise_std)

    Mutant.__name__ = f"Thompson_{posterior_fn.__name__}"
    return Mutant


@pytest.mark.parametrize(
    "bug,match",
    [
        (posterior_no_prior, "ignores the prior"),
        (posterior_divides_by_noise_precision, "divides where it should multiply by the noise precision"),
        (posterior_std_for_variance, "standard deviation where a variance is needed"),
        (posterior_prior_std_for_variance, r"1/prior_std\^2"),
        (posterior_mean_forgets_prior_mean, "Weight the prior mean"),
        (posterior_variance, "which is the variance"),
    ],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_posterior_checks_catch_variance_bugs(bug, match):
    assert_check_fails(T.check_gaussian_posterior, bug, match=match)
    assert_check_fails(T.check_thompson_sampling, _thompson_with(bug), match=match)


class ThompsonGreedy(B.ThompsonSampling):
    def get_action(self):
        return B.argmax_random_tiebreak(self.posterior()[0], self.rng)


class ThompsonSwapsStds(B.ThompsonSampling):
    def posterior(self):
        return B.gaussian_posterior(self.counts, self.reward_sums, self.prior_mean, self.noise_std, self.prior_std)


# ---- the testbed loop and regret ----

def _testbed_mutant(*replacements):
    return mutant(B.run_testbed, *replacements)


TESTBED_MUTANTS = {
    "agent_not_reset": (_testbed_mutant(("        agent.reset(seed + run)\n", "")), "reset once per run"),
    "same_seed_every_run": (_testbed_mutant(("env.reset(seed=seed + run)", "env.reset(seed=seed)"),
                                            ("agent.reset(seed + run)", "agent.reset(seed)")), "reset once per run with seeds"),
    "no_observe": (_testbed_mutant(("            agent.observe(action, reward)\n", "")), "observe should be called once per step"),
    "optimal_from_initial_means": (_testbed_mutant(('action == info["best_arm"]', "action == int(np.argmax(arm_means[run]))")),
                                   "best arm moves"),
    "env_kwargs_dropped": (_testbed_mutant(("gym.make(env_id, max_episode_steps=num_steps, **env_kwargs)",
                                            "gym.make(env_id, max_episode_steps=num_steps)")), "optimal"),
    "steps_averaged": (_testbed_mutant(("return BanditRuns(rewards, actions, optimal, arm_means)",
                                        "return BanditRuns(rewards.mean(1), actions, optimal, arm_means)")), "shape"),
}


@pytest.mark.parametrize("name", list(TESTBED_MUTANTS))
def test_run_testbed_check_catches_loop_bugs(name):
    bug, match = TESTBED_MUTANTS[name]
    assert_check_fails(T.check_run_testbed, bug, match=match)


def test_run_testbed_check_catches_env_reset_once():
    def reset_once(agent, num_runs=2000, num_steps=1000, seed=0, progress=True, env_id=B.BANDIT_ID, **kw):
        env = gym.make(env_id, max_episode_steps=num_steps * num_runs, **kw)
        env.reset(seed=seed)
        rows = []
        for run in range(num_runs):
            agent.reset(seed + run)
            means = env.unwrapped.arm_means.copy()
            r, a, o = [], [], []
            for _ in range(num_steps):
                act = agent.get_action()
                _, rew, _, _, info = env.step(act)
                agent.observe(act, rew)
                r.append(rew), a.append(act), o.append(act == info["best_arm"])
            rows.append((r, a, o, means))
        return B.BanditRuns(*(np.array(x) for x in zip(*rows)))

    assert_check_fails(T.check_run_testbed, reset_once, match="reset the env at the start of EVERY run")


def regret_no_cumsum(arm_means, actions):
    return (arm_means.max(1, keepdims=True) - np.take_along_axis(arm_means, actions, axis=1)).mean(0)


def regret_reversed(arm_means, actions):
    return (np.take_along_axis(arm_means, actions, axis=1) - arm_means.max(1, keepdims=True)).cumsum(1).mean(0)


def regret_global_best(arm_means, actions):
    return (arm_means.max() - np.take_along_axis(arm_means, actions, axis=1)).cumsum(1).mean(0)


def regret_sum_over_runs(arm_means, actions):
    return (arm_means.max(1, keepdims=True) - np.take_along_axis(arm_means, actions, axis=1)).cumsum(1).sum(0)


def regret_wrong_axis(arm_means, actions):
    return (arm_means.max(1, keepdims=True) - np.take_along_axis(arm_means, actions, axis=1)).cumsum(0).mean(0)


@pytest.mark.parametrize(
    "bug,match",
    [
        (regret_no_cumsum, "accumulate it with cumsum"),
        (regret_reversed, "subtraction is reversed"),
        (regret_global_best, "own best mean"),
        (regret_sum_over_runs, "should be"),
        (regret_wrong_axis, "should be"),
    ],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_regret_check_catches(bug, match):
    assert_check_fails(T.check_cumulative_regret, bug, match=match)


# ---- the non-stationary bandit ----

def _nonstationary(step_body):
    class Mutant(B.NonstationaryBanditEnv):
        def step(self, action):
            return step_body(self, action)

    return Mutant


def walk_only_pulled(self, action):
    out = B.MultiArmedBanditEnv.step(self, action)
    self.arm_means = self.arm_means.copy()
    self.arm_means[action] += self.np_random.normal(0.0, self.walk_std)
    self.best_arm = int(np.argmax(self.arm_means))
    return out


def walk_with_variance(self, action):
    out = B.MultiArmedBanditEnv.step(self, action)
    self.arm_means = self.arm_means + self.np_random.normal(0.0, self.walk_std**2, size=self.num_arms)
    self.best_arm = int(np.argmax(self.arm_means))
    return out


def best_arm_not_updated(self, action):
    out = B.MultiArmedBanditEnv.step(self, action)
    self.arm_means = self.arm_means + self.np_random.normal(0.0, self.walk_std, size=self.num_arms)
    return out


@pytest.mark.parametrize(
    "bug,match",
    [(walk_only_pulled, "whichever arm was pulled"), (walk_with_variance, "walk_std\\*\\*2"),
     (best_arm_not_updated, "recompute self.best_arm")],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_nonstationary_check_catches(bug, match):
    assert_check_fails(T.check_nonstationary_env, _nonstationary(bug), match=match)


class NonstationaryRandomStart(B.NonstationaryBanditEnv):
    def reset(self, *, seed=None, options=None):
        return B.MultiArmedBanditEnv.reset(self, seed=seed, options=options)


# ---- Lai-Robbins ----

@pytest.mark.parametrize(
    "bug,match",
    [
        (lambda m, s=1.0: float(np.sum(2 * s**2 / (m.max() - m))), "leave out the best arm"),
        (lambda m, s=1.0: float(sum(2 * s / g for g in m.max() - m if g > 0)), "s where the KL has the variance"),
        (lambda m, s=1.0: float(sum(s**2 / g for g in m.max() - m if g > 0)), "a 2 in its denominator"),
        (lambda m, s=1.0: float(sum(g**2 / (2 * s**2) for g in m.max() - m if g > 0)), "summed the KLs"),
    ],
    ids=["includes_best_arm", "std_not_variance", "missing_2", "sums_kl"],
)
def test_lai_robbins_check_catches(bug, match):
    with np.errstate(divide="ignore"):
        assert_check_fails(T.check_lai_robbins, bug, match=match)


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
        (T.check_action_values, CountAfterUpdate),
        (T.check_action_values, IgnoresStepSize),
        (T.check_action_values, ResetForgetsInitialValue),
        (T.check_epsilon_greedy, GlobalRng),
        (T.check_optimistic_greedy, NotOptimistic),
        (T.check_ucb, UCBOffByOne),
        (T.check_ucb, UCBNoSqrt),
        (T.check_ucb, UCBUntriedZero),
        (T.check_thompson_sampling, ThompsonGreedy),
        (T.check_thompson_sampling, ThompsonSwapsStds),
        (T.check_nonstationary_env, NonstationaryRandomStart),
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
