"""Checks for section 2.1 (bandits): exact update rules on hand-computed cases, action frequencies,
and testbed comparisons against the reference epsilon-greedy agent."""

from __future__ import annotations

import functools
import math

import numpy as np

from curriculum.checking import check, fail

NUM_ARMS = 4
# (action, reward) sequence used by the hand-computed cases below.
HISTORY = [(0, 1.0), (1, -0.5), (0, 3.0), (2, 2.0), (0, 2.0), (1, 0.5)]


def _agent(cls, *args, **kwargs):
    if not isinstance(cls, type):
        fail(f"pass the class itself (e.g. {type(cls).__name__}), not an instance")
    return cls(*args, **kwargs)


def _feed(agent, history=HISTORY):
    for a, r in history:
        agent.observe(a, r)


def _frequencies(agent, n: int) -> np.ndarray:
    counts = np.bincount([agent.get_action() for _ in range(n)], minlength=agent.num_arms)
    return counts / n


def _assert_freq(freq: np.ndarray, expected: np.ndarray, n: int, what: str, hint: str) -> None:
    """Frequencies within 5 binomial standard errors (plus a floor) of the expected probabilities."""
    tol = 5 * np.sqrt(expected * (1 - expected) / n) + 0.01
    if (np.abs(freq - expected) > tol).any():
        fail(f"{what}: expected arm frequencies ≈ {np.round(expected, 3).tolist()}, got {np.round(freq, 3).tolist()}. {hint}")


TESTBED_RUNS, TESTBED_STEPS = 60, 300


@functools.lru_cache(maxsize=1)
def _epsilon_greedy_reference() -> float:
    """Mean reward of the reference epsilon-greedy (eps=0.1) over the second half of the testbed runs."""
    from curriculum.solutions.chapter2.bandits import EpsilonGreedy, run_testbed

    rewards, _ = run_testbed(EpsilonGreedy(10, epsilon=0.1), TESTBED_RUNS, TESTBED_STEPS, seed=1000, progress=False)
    return float(rewards[TESTBED_STEPS // 2 :].mean())


def _compare_on_testbed(agent, name: str, min_gain: float) -> str:
    """Paired comparison: the same bandit problems (seeds) as the reference epsilon-greedy run."""
    from curriculum.solutions.chapter2.bandits import run_testbed

    runs, steps = TESTBED_RUNS, TESTBED_STEPS
    got_r, _ = run_testbed(agent, runs, steps, seed=1000, progress=False)
    ref, got = _epsilon_greedy_reference(), float(got_r[steps // 2 :].mean())
    if got < ref + min_gain:
        fail(f"on the 10-armed testbed ({runs} runs x {steps} steps) {name} should beat epsilon-greedy (eps=0.1), "
             f"whose mean reward over the second half is {ref:.3f}; yours got {got:.3f}")
    return f"mean reward {got:.3f} vs epsilon-greedy {ref:.3f}"


@check
def check_epsilon_greedy(EpsilonGreedy):
    # Sample averages, by hand: arm0 gets 1, 3, 2 -> 2.0; arm1 gets -0.5, 0.5 -> 0.0; arm2 gets 2 -> 2.0.
    agent = _agent(EpsilonGreedy, NUM_ARMS, epsilon=0.0, seed=0)
    _feed(agent)
    expected = np.array([2.0, 0.0, 2.0, 0.0])
    if not np.allclose(agent.q_estimates, expected):
        fail(f"after rewards {HISTORY} (as (arm, reward)), sample-average q_estimates should be {expected.tolist()}, "
             f"got {np.round(agent.q_estimates, 4).tolist()}. Increment counts[action] BEFORE dividing by it.")
    if agent.counts.tolist() != [3, 2, 1, 0]:
        fail(f"counts should be [3, 2, 1, 0], got {agent.counts.tolist()}")

    # Constant step size 0.5 with initial value 1: arm0 1 -> 1 -> 2 -> 2; arm1 1 -> 0.25 -> 0.375; arm2 1 -> 1.5.
    agent = _agent(EpsilonGreedy, NUM_ARMS, epsilon=0.0, initial_value=1.0, step_size=0.5, seed=0)
    _feed(agent)
    expected = np.array([2.0, 0.375, 1.5, 1.0])
    if not np.allclose(agent.q_estimates, expected):
        fail(f"with step_size=0.5 and initial_value=1, q_estimates should be {expected.tolist()}, got "
             f"{np.round(agent.q_estimates, 4).tolist()}. Q(a) += step_size * (R - Q(a)); start from initial_value.")

    # Greedy (epsilon=0) with the tie between arms 0 and 2: both about half the time, never the others.
    agent = _agent(EpsilonGreedy, NUM_ARMS, epsilon=0.0, seed=0)
    _feed(agent)
    n = 4000
    _assert_freq(_frequencies(agent, n), np.array([0.5, 0, 0.5, 0]), n, "greedy with a tie between arms 0 and 2",
                 "Break ties uniformly at random (argmax_random_tiebreak), not with np.argmax, which always picks the first.")

    # epsilon = 0.4 and a single best arm 0: P(arm 0) = 0.6 + 0.4/4, others 0.1 each.
    agent = _agent(EpsilonGreedy, NUM_ARMS, epsilon=0.4, seed=1)
    _feed(agent, [(0, 1.0)])
    _assert_freq(_frequencies(agent, n), np.array([0.7, 0.1, 0.1, 0.1]), n, "epsilon=0.4 with best arm 0",
                 "Explore with probability epsilon, uniformly over ALL arms (the greedy one included).")

    agent.reset(123)
    if agent.q_estimates.tolist() != [0.0] * NUM_ARMS or agent.counts.sum() != 0:
        fail("reset(seed) should forget the estimates and counts")
    a = [agent.get_action() for _ in range(20)]
    agent.reset(123)
    if [agent.get_action() for _ in range(20)] != a:
        fail("after reset(seed) the same seed should give the same actions: draw every random number from self.rng")


@check
def check_optimistic_greedy(OptimisticGreedy):
    """Optimistic, purely greedy: every arm looks great until tried, so the first k pulls try each arm once."""
    from curriculum.solutions.chapter2.bandits import MultiArmedBanditEnv

    env = MultiArmedBanditEnv(num_arms=10)
    agent = _agent(OptimisticGreedy, 10, seed=0)
    env.reset(seed=0)
    first = []
    for _ in range(10):
        a = agent.get_action()
        first.append(a)
        agent.observe(a, env.step(a)[1])
    if sorted(first) != list(range(10)):
        fail(f"the first 10 actions of the optimistic agent should try every arm once, got {first}. "
             "Start q_estimates at initial_value=5 and act greedily (epsilon=0).")


@check
def check_ucb(UCB):
    agent = _agent(UCB, NUM_ARMS, c=2.0, seed=0)
    _feed(agent)
    # t = 7 (the seventh action); Q = [2, 0, 2, 0]; N = [3, 2, 1, 0].
    bonus = 2.0 * np.sqrt(math.log(7) / np.array([3.0, 2.0, 1.0]))
    expected = np.array([2.0 + bonus[0], 0.0 + bonus[1], 2.0 + bonus[2], np.inf])
    got = np.asarray(agent.scores(), dtype=np.float64)
    if got.shape != (NUM_ARMS,):
        fail(f"scores() should return one score per arm, shape ({NUM_ARMS},), got {got.shape}")
    if not np.isinf(got[3]) or got[3] < 0:
        fail(f"an arm never pulled should score +inf (so it is tried first), got {got[3]}")
    if not np.allclose(got[:3], expected[:3]):
        hint = "Use t = number of rewards seen + 1, bonus = c * sqrt(ln(t) / N(a))."
        for t_alt in (6, 8):
            if np.allclose(got[:3], [2, 0, 2] + 2.0 * np.sqrt(math.log(t_alt) / np.array([3.0, 2.0, 1.0]))):
                hint = f"You used t = {t_alt}; this is the 7th action, so t = (rewards seen) + 1 = 7."
        fail(f"UCB scores should be {np.round(expected, 4).tolist()}, got {np.round(got, 4).tolist()}. {hint}")
    if agent.get_action() != 3:
        fail("the untried arm 3 should be chosen next")
    return _compare_on_testbed(_agent(UCB, 10, c=2.0), "UCB (c=2)", min_gain=0.02)


@check
def check_thompson_sampling(ThompsonSampling):
    agent = _agent(ThompsonSampling, NUM_ARMS, prior_mean=0.5, prior_std=2.0, noise_std=1.0, seed=0)
    _feed(agent)
    # Precision 1/4 + N; mean = (0.5/4 + sum) / precision.
    n = np.array([3, 2, 1, 0.0])
    s = np.array([6.0, 0.0, 2.0, 0.0])
    prec = 0.25 + n
    exp_mean, exp_std = (0.125 + s) / prec, 1 / np.sqrt(prec)
    got = agent.posterior()
    if not (isinstance(got, tuple) and len(got) == 2):
        fail("posterior() should return a (mean, std) tuple of arrays")
    mean, std = (np.asarray(x, dtype=np.float64) for x in got)
    if not np.allclose(mean, exp_mean):
        fail(f"posterior means should be {np.round(exp_mean, 4).tolist()}, got {np.round(mean, 4).tolist()}. "
             "Weight the prior mean by 1/prior_std^2 and the reward sum by 1/noise_std^2, divide by the precision.")
    if not np.allclose(std, exp_std):
        hint = " (that is the variance: take the square root)" if np.allclose(std, exp_std**2) else ""
        fail(f"posterior stds should be {np.round(exp_std, 4).tolist()}, got {np.round(std, 4).tolist()}{hint}. "
             "precision = 1/prior_std^2 + N/noise_std^2, std = 1/sqrt(precision).")

    # Two arms: P(pick arm 1) = P(theta1 > theta0) = Phi((m1 - m0) / sqrt(s0^2 + s1^2)), in closed form.
    agent = _agent(ThompsonSampling, 2, seed=3)
    _feed(agent, [(0, 0.0), (1, 0.8), (1, 0.2)])
    m, sd = (np.asarray(x, dtype=np.float64) for x in agent.posterior())
    p1 = 0.5 * (1 + math.erf((m[1] - m[0]) / math.sqrt(2 * (sd[0] ** 2 + sd[1] ** 2))))
    n_draws = 4000
    _assert_freq(_frequencies(agent, n_draws), np.array([1 - p1, p1]), n_draws, "Thompson sampling on 2 arms",
                 "Sample one value per arm from N(mean, std) and take the argmax; don't act greedily on the means.")
    return _compare_on_testbed(_agent(ThompsonSampling, 10), "Thompson sampling", min_gain=0.05)


@check
def check_gradient_bandit(GradientBandit):
    agent = _agent(GradientBandit, 3, step_size=0.5, baseline=True, seed=0)
    history = [(0, 2.0), (1, 0.0), (2, 4.0)]
    # By hand: step 1 has baseline R1 = 2, so no change. Step 2: baseline 2, advantage -2, pi uniform ->
    # H = 0.5*-2*([0,1,0]-1/3) = [1/3, -2/3, 1/3]. Step 3: baseline mean(2, 0) = 1, advantage 3.
    h = np.zeros(3)
    pi = np.exp(h) / np.exp(h).sum()
    h += 0.5 * -2.0 * (np.eye(3)[1] - pi)
    pi = np.exp(h) / np.exp(h).sum()
    h += 0.5 * 3.0 * (np.eye(3)[2] - pi)
    _feed(agent, history[:1])
    if not np.allclose(agent.preferences, 0.0):
        fail(f"after the first reward the preferences should not move (the baseline is the first reward itself), got "
             f"{np.round(agent.preferences, 4).tolist()}")
    _feed(agent, history[1:])
    if not np.allclose(agent.preferences, h):
        fail(f"after {history} with step_size 0.5, preferences should be {np.round(h, 4).tolist()}, got "
             f"{np.round(agent.preferences, 4).tolist()}. Use the baseline of the rewards BEFORE this one, pi from "
             "BEFORE the update, and move every arm: H(a) += alpha (R - baseline) (1[a == A] - pi(a)).")
    probs = np.asarray(agent.action_probs())
    if not np.allclose(probs, np.exp(h) / np.exp(h).sum()):
        fail(f"action_probs() should be softmax(preferences) = {np.round(np.exp(h) / np.exp(h).sum(), 4).tolist()}")
    n = 4000
    _assert_freq(_frequencies(agent, n), probs, n, "gradient bandit actions", "Sample actions from softmax(preferences).")

    no_base = _agent(GradientBandit, 3, step_size=0.5, baseline=False, seed=0)
    _feed(no_base, history[:1])
    expected = 0.5 * 2.0 * (np.eye(3)[0] - 1 / 3)
    if not np.allclose(no_base.preferences, expected):
        fail(f"with baseline=False the first update uses baseline 0: preferences should be {np.round(expected, 4).tolist()}, "
             f"got {np.round(no_base.preferences, 4).tolist()}")
