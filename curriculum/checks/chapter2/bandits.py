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

    runs = run_testbed(EpsilonGreedy(10, epsilon=0.1), TESTBED_RUNS, TESTBED_STEPS, seed=1000, progress=False)
    return float(runs.rewards[:, TESTBED_STEPS // 2 :].mean())


def _compare_on_testbed(agent, name: str, min_gain: float) -> str:
    """Paired comparison: the same bandit problems (seeds) as the reference epsilon-greedy run."""
    from curriculum.solutions.chapter2.bandits import run_testbed

    runs, steps = TESTBED_RUNS, TESTBED_STEPS
    got_r = run_testbed(agent, runs, steps, seed=1000, progress=False).rewards
    ref, got = _epsilon_greedy_reference(), float(got_r[:, steps // 2 :].mean())
    if got < ref + min_gain:
        fail(f"on the 10-armed testbed ({runs} runs x {steps} steps) {name} should beat epsilon-greedy (eps=0.1), "
             f"whose mean reward over the second half is {ref:.3f}; yours got {got:.3f}")
    return f"mean reward {got:.3f} vs epsilon-greedy {ref:.3f}"


@check
def check_action_values(ActionValueAgent):
    # Sample averages, by hand: arm0 gets 1, 3, 2 -> 2.0; arm1 gets -0.5, 0.5 -> 0.0; arm2 gets 2 -> 2.0.
    agent = _agent(ActionValueAgent, NUM_ARMS, seed=0)
    _feed(agent)
    expected = np.array([2.0, 0.0, 2.0, 0.0])
    if not np.allclose(agent.q_estimates, expected):
        fail(f"after rewards {HISTORY} (as (arm, reward)), sample-average q_estimates should be {expected.tolist()}, "
             f"got {np.round(agent.q_estimates, 4).tolist()}. Increment counts[action] BEFORE dividing by it.")
    if agent.counts.tolist() != [3, 2, 1, 0]:
        fail(f"counts should be [3, 2, 1, 0], got {agent.counts.tolist()}")

    # Constant step size 0.5 with initial value 1: arm0 1 -> 1 -> 2 -> 2; arm1 1 -> 0.25 -> 0.375; arm2 1 -> 1.5.
    agent = _agent(ActionValueAgent, NUM_ARMS, initial_value=1.0, step_size=0.5, seed=0)
    _feed(agent)
    expected = np.array([2.0, 0.375, 1.5, 1.0])
    if not np.allclose(agent.q_estimates, expected):
        fail(f"with step_size=0.5 and initial_value=1, q_estimates should be {expected.tolist()}, got "
             f"{np.round(agent.q_estimates, 4).tolist()}. Q(a) += step_size * (R - Q(a)); start from initial_value.")
    agent.reset(7)
    if agent.q_estimates.tolist() != [1.0] * NUM_ARMS or agent.counts.sum() != 0:
        fail("reset(seed) should set every estimate back to initial_value and every count to 0")


@check
def check_epsilon_greedy(EpsilonGreedy):
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


# Non-unit, unequal variances: prior variance 2.25, noise variance 0.49. With both equal to 1, multiplying and
# dividing by a variance, or using a std for a variance, give the same numbers and a bug goes unseen.
PRIOR_MEAN, PRIOR_STD, NOISE_STD = 0.5, 1.5, 0.7


def _sequential_posterior(history, num_arms, prior_mean, prior_std, noise_std):
    """Independent of the batch formula: Bayes' rule one reward at a time (a scalar Kalman update per arm)."""
    mean = np.full(num_arms, float(prior_mean))
    var = np.full(num_arms, float(prior_std) ** 2)
    for a, r in history:
        gain = var[a] / (var[a] + noise_std**2)  # how far this one reward moves the belief
        mean[a] += gain * (r - mean[a])
        var[a] *= 1 - gain
    return mean, np.sqrt(var)


def _posterior_bug(mean, std, counts, sums, prior_mean, prior_std, noise_std) -> str:
    """Name the bug if (mean, std) matches a known wrong posterior."""
    n, s = np.asarray(counts, dtype=np.float64), np.asarray(sums, dtype=np.float64)
    pv, nv = prior_std**2, noise_std**2
    with np.errstate(divide="ignore", invalid="ignore"):
        bugs = {
            "it ignores the prior (a plain average of the rewards): add the prior's precision 1/prior_std^2 and "
            "its mean prior_mean/prior_std^2": (s / np.maximum(n, 1), noise_std / np.sqrt(np.maximum(n, 1))),
            "it divides where it should multiply by the noise precision: each reward adds 1/noise_std^2 to the "
            "precision, so write counts / noise_std**2, not counts * noise_std**2":
                ((prior_mean / pv + s * nv) / (1 / pv + n * nv), 1 / np.sqrt(1 / pv + n * nv)),
            "it uses a standard deviation where a variance is needed: precisions are 1/prior_std**2 and "
            "1/noise_std**2 (square the stds)":
                ((prior_mean / prior_std + s / noise_std) / (1 / prior_std + n / noise_std), 1 / np.sqrt(1 / prior_std + n / noise_std)),
            "it swaps prior_std and noise_std":
                ((prior_mean / nv + s / pv) / (1 / nv + n / pv), 1 / np.sqrt(1 / nv + n / pv)),
        }
    pulled = n > 0  # an arm never pulled may come out as nan under some bugs; judge on the others
    for msg, (bm, bs) in bugs.items():
        if np.allclose(mean[pulled], bm[pulled]) or np.allclose(std[pulled], bs[pulled]):
            return " Your posterior looks like " + msg + "."
    return ""


def _assert_posterior(got, history, num_arms, prior_mean, prior_std, noise_std, what: str) -> None:
    if not (isinstance(got, tuple) and len(got) == 2):
        fail(f"{what} should return a (mean, std) tuple of arrays, got {type(got).__name__}")
    mean, std = (np.asarray(x, dtype=np.float64) for x in got)
    if mean.shape != (num_arms,) or std.shape != (num_arms,):
        fail(f"{what}: mean and std should have one entry per arm, shape ({num_arms},), got {mean.shape} and {std.shape}")
    exp_mean, exp_std = _sequential_posterior(history, num_arms, prior_mean, prior_std, noise_std)
    counts = np.bincount([a for a, _ in history], minlength=num_arms)
    sums = np.bincount([a for a, _ in history], weights=[r for _, r in history], minlength=num_arms)
    setting = f"prior N({prior_mean}, {prior_std}^2), noise std {noise_std}, rewards {history} (as (arm, reward))"
    if not np.allclose(std, exp_std):
        if np.allclose(std, exp_std**2):
            fail(f"{what}: posterior stds should be {np.round(exp_std, 4).tolist()}, got {np.round(std, 4).tolist()}, "
                 "which is the variance: return 1/sqrt(precision), not 1/precision.")
        fail(f"{what}: with {setting}, posterior stds should be {np.round(exp_std, 4).tolist()}, got "
             f"{np.round(std, 4).tolist()}.{_posterior_bug(mean, std, counts, sums, prior_mean, prior_std, noise_std)} "
             "precision = 1/prior_std^2 + N/noise_std^2, std = 1/sqrt(precision).")
    if not np.allclose(mean, exp_mean):
        fail(f"{what}: with {setting}, posterior means should be {np.round(exp_mean, 4).tolist()}, got "
             f"{np.round(mean, 4).tolist()}.{_posterior_bug(mean, std, counts, sums, prior_mean, prior_std, noise_std)} "
             "Weight the prior mean by 1/prior_std^2 and the reward sum by 1/noise_std^2, then divide by the precision.")


@check
def check_gaussian_posterior(gaussian_posterior):
    counts = np.bincount([a for a, _ in HISTORY], minlength=NUM_ARMS)
    sums = np.bincount([a for a, _ in HISTORY], weights=[r for _, r in HISTORY], minlength=NUM_ARMS)
    for prior_mean, prior_std, noise_std in [(PRIOR_MEAN, PRIOR_STD, NOISE_STD), (-1.0, 0.4, 2.5)]:
        got = gaussian_posterior(counts.copy(), sums.copy(), prior_mean, prior_std, noise_std)
        _assert_posterior(got, HISTORY, NUM_ARMS, prior_mean, prior_std, noise_std, "gaussian_posterior")
    # arm 3 was never pulled: its posterior is the prior itself
    mean, std = (np.asarray(x, dtype=np.float64) for x in gaussian_posterior(counts, sums, PRIOR_MEAN, PRIOR_STD, NOISE_STD))
    if not (np.isclose(mean[3], PRIOR_MEAN) and np.isclose(std[3], PRIOR_STD)):
        fail(f"an arm with no rewards should keep the prior N({PRIOR_MEAN}, {PRIOR_STD}^2), got N({mean[3]:.4f}, {std[3]:.4f}^2)")


@check
def check_thompson_sampling(ThompsonSampling):
    agent = _agent(ThompsonSampling, NUM_ARMS, prior_mean=PRIOR_MEAN, prior_std=PRIOR_STD, noise_std=NOISE_STD, seed=0)
    _feed(agent)
    _assert_posterior(agent.posterior(), HISTORY, NUM_ARMS, PRIOR_MEAN, PRIOR_STD, NOISE_STD, "ThompsonSampling.posterior()")

    # Two arms: P(pick arm 1) = P(theta1 > theta0) = Phi((m1 - m0) / sqrt(s0^2 + s1^2)), in closed form.
    history = [(0, 0.0), (1, 0.8), (1, 0.2)]
    agent = _agent(ThompsonSampling, 2, prior_mean=0.0, prior_std=PRIOR_STD, noise_std=NOISE_STD, seed=3)
    _feed(agent, history)
    m, sd = _sequential_posterior(history, 2, 0.0, PRIOR_STD, NOISE_STD)
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


class _RecordingAgent:
    """A small learning agent (greedy on sample means, random ties, from its own RNG) that also records how the
    loop drives it, so the check can say which step of the loop is missing."""

    def __init__(self, num_arms: int):
        self.num_arms = num_arms
        self.reset_seeds: list[int] = []
        self.observed: list[list[int]] = []
        self.reset(0)
        self.reset_seeds.clear()

    def reset(self, seed: int) -> None:
        self.reset_seeds.append(int(seed))
        self.observed.append([])
        self.rng = np.random.default_rng(seed)
        self.sums, self.counts = np.zeros(self.num_arms), np.zeros(self.num_arms)
        self.last = None

    def get_action(self) -> int:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(self.counts > 0, self.sums / self.counts, np.inf)
        best = np.flatnonzero(values == values.max())
        self.last = int(best[self.rng.integers(len(best))])
        return self.last

    def observe(self, action: int, reward: float) -> None:
        self.observed[-1].append(int(action))
        self.sums[action] += reward
        self.counts[action] += 1


def _reference_runs(env_cls, num_runs, num_steps, seed, **env_kwargs):
    """The loop written out directly on the unwrapped env (no gym.make), with a fresh recording agent."""
    agent = _RecordingAgent(env_cls(**env_kwargs).num_arms)
    env = env_cls(**env_kwargs)
    rewards, actions, optimal, means = [], [], [], []
    for run in range(num_runs):
        env.reset(seed=seed + run)
        agent.reset(seed + run)
        means.append(env.arm_means.copy())
        row_r, row_a, row_o = [], [], []
        for _ in range(num_steps):
            a = agent.get_action()
            _, r, _, _, info = env.step(a)
            agent.observe(a, r)
            row_r.append(r), row_a.append(a), row_o.append(a == info["best_arm"])
        rewards.append(row_r), actions.append(row_a), optimal.append(row_o)
    return np.array(rewards), np.array(actions), np.array(optimal), np.array(means)


@check
def check_run_testbed(run_testbed):
    from curriculum.solutions.chapter2.bandits import (
        NONSTATIONARY_ID,
        MultiArmedBanditEnv,
        NonstationaryBanditEnv,
    )

    num_runs, num_steps, seed = 3, 40, 11
    agent = _RecordingAgent(10)
    got = run_testbed(agent, num_runs, num_steps, seed=seed, progress=False)
    for field in ("rewards", "actions", "optimal", "arm_means"):
        if not hasattr(got, field):
            fail(f"run_testbed should return BanditRuns(rewards, actions, optimal, arm_means); the result has no {field!r}")
    expected_shapes = {"rewards": (num_runs, num_steps), "actions": (num_runs, num_steps),
                       "optimal": (num_runs, num_steps), "arm_means": (num_runs, 10)}
    for field, shape in expected_shapes.items():
        if np.shape(getattr(got, field)) != shape:
            fail(f"with num_runs={num_runs}, num_steps={num_steps}, {field} should have shape {shape} (one row per run), "
                 f"got {np.shape(getattr(got, field))}")
    want_seeds = [seed + i for i in range(num_runs)]
    if agent.reset_seeds != want_seeds:
        fail(f"the agent should be reset once per run with seeds {want_seeds}, got agent.reset calls with {agent.reset_seeds}. "
             "Call agent.reset(seed + run) at the start of every run, so no run inherits what the agent learned before.")
    lengths = [len(o) for o in agent.observed[-num_runs:]]
    if lengths != [num_steps] * num_runs:
        fail(f"agent.observe should be called once per step ({num_steps} per run), got {lengths} calls per run: "
             "without observe the agent never learns.")

    ref_r, ref_a, ref_o, ref_m = _reference_runs(MultiArmedBanditEnv, num_runs, num_steps, seed)
    if not np.allclose(got.arm_means, ref_m):
        fail("arm_means differ from the bandits that env.reset(seed=seed + run) draws: reset the env at the start of "
             "EVERY run with seed + run, and store env.unwrapped.arm_means right after the reset.")
    if not np.array_equal(np.asarray(got.actions), ref_a):
        fail("the actions differ from a loop that calls get_action, env.step(action), observe(action, reward) in that "
             "order every step: check you record the action you passed to env.step and call observe with its reward.")
    if not np.allclose(got.rewards, ref_r):
        fail("the rewards differ from those env.step returned: record the reward of each step in rewards[run, t].")
    if not np.array_equal(np.asarray(got.optimal, dtype=bool), ref_o):
        fail("optimal[run, t] should be action == info['best_arm'], with info from that same env.step.")

    # On a bandit whose best arm moves, "optimal" must come from info at each step, not from the means at reset.
    agent = _RecordingAgent(10)
    got = run_testbed(agent, 2, 60, seed=5, progress=False, env_id=NONSTATIONARY_ID, walk_std=0.5)
    _, _, ref_o, _ = _reference_runs(NonstationaryBanditEnv, 2, 60, 5, walk_std=0.5)
    if not np.array_equal(np.asarray(got.optimal, dtype=bool), ref_o):
        fail("on the non-stationary bandit (env_id=NONSTATIONARY_ID) optimal[run, t] is wrong: the best arm moves, so "
             "compare the action with info['best_arm'] returned by that step, and pass env_id and **env_kwargs to gym.make.")


@check
def check_cumulative_regret(cumulative_regret):
    # By hand: run 0 has means [1, 0, 3] (best 3), run 1 has [2, 2.5, 0] (best 2.5).
    arm_means = np.array([[1.0, 0.0, 3.0], [2.0, 2.5, 0.0]])
    actions = np.array([[0, 2, 1, 2], [1, 0, 2, 1]])
    # gaps: run 0 -> 2, 0, 3, 0; run 1 -> 0, 0.5, 2.5, 0; cumulative: [2, 2, 5, 5] and [0, 0.5, 3, 3].
    expected = np.array([1.0, 1.25, 4.0, 4.0])
    got = np.asarray(cumulative_regret(arm_means, actions), dtype=np.float64)
    if got.shape != (4,):
        fail(f"cumulative_regret should return one number per step, shape (4,) for 2 runs x 4 steps, got {got.shape}. "
             "Sum over steps cumulatively (axis 1) and average over runs (axis 0).")
    if np.allclose(got, -expected):
        fail(f"regret should be positive (best mean - mean of the pulled arm), got {got.tolist()}: the subtraction is reversed.")
    if np.allclose(got, [1.0, 0.25, 2.75, 0.0]):
        fail(f"expected the cumulative regret {expected.tolist()}, got the regret of each step alone {got.tolist()}: "
             "accumulate it with cumsum over steps.")
    if not np.allclose(got, expected):
        fail(f"for arm_means {arm_means.tolist()} and actions {actions.tolist()} the mean cumulative regret should be "
             f"{expected.tolist()}, got {np.round(got, 4).tolist()}. Each run's gap uses that run's own best mean and "
             "the mean of the arm pulled (np.take_along_axis(arm_means, actions, axis=1)).")

    # A larger random case against a plain loop.
    rng = np.random.default_rng(0)
    arm_means, actions = rng.normal(size=(5, 7)), rng.integers(7, size=(5, 30))
    ref = np.zeros(30)
    for i in range(5):
        total = 0.0
        for t in range(30):
            total += arm_means[i].max() - arm_means[i, actions[i, t]]
            ref[t] += total / 5
    got = np.asarray(cumulative_regret(arm_means, actions), dtype=np.float64)
    if got.shape != (30,) or not np.allclose(got, ref):
        fail("on random means and actions (5 runs x 30 steps, 7 arms) your regret differs from a plain loop over runs "
             "and steps.")


@check
def check_nonstationary_env(NonstationaryBanditEnv):
    from gymnasium.utils.env_checker import check_env

    env = NonstationaryBanditEnv(num_arms=5, mean_offset=1.0, walk_std=0.1)
    check_env(env, skip_render_check=True)
    _, info = env.reset(seed=0)
    start = np.array(env.arm_means, dtype=np.float64)
    if not np.allclose(start, 1.0):
        fail(f"after reset every arm's mean should start at mean_offset = 1.0 (S&B exercise 2.5), got {np.round(start, 3).tolist()}")
    means, rewards, best = [start], [], []
    for _ in range(2000):
        before = np.array(env.arm_means, dtype=np.float64)
        _, r, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            fail("a bandit never terminates (and the unwrapped env never truncates): return False, False")
        rewards.append(r - before[0])
        best.append((info["best_arm"], int(np.argmax(before))))
        means.append(np.array(env.arm_means, dtype=np.float64))
    steps = np.diff(np.array(means), axis=0)
    moved = (np.abs(steps) > 0).mean(0)
    if (moved < 0.99).any():
        fail(f"every arm's mean should take a random-walk step after each pull, whichever arm was pulled; the fraction "
             f"of steps on which each arm moved (arm 0 was always pulled) is {np.round(moved, 2).tolist()}")
    walk = steps.std()
    if not 0.09 < walk < 0.11:
        hint = " (that is walk_std**2: normal() takes a standard deviation)" if 0.009 < walk < 0.011 else ""
        fail(f"the random-walk increments should have std walk_std = 0.1, got {walk:.4f}{hint}")
    if not 0.9 < np.std(rewards) < 1.1:
        fail(f"rewards should be N(mean of the pulled arm before the walk step, reward_std^2 = 1); reward - mean has std "
             f"{np.std(rewards):.3f}. Pay the reward first (the parent's step), then move the means.")
    wrong = [i for i, (b, ref) in enumerate(best) if b != ref]
    if wrong:
        fail(f"info['best_arm'] should be the best arm when the reward was paid; it is wrong at {len(wrong)} of 2000 steps "
             f"(first at step {wrong[0]}). After the walk, recompute self.best_arm = argmax of the new means, so the "
             "next step reports it.")
    env.reset(seed=0)
    if not np.allclose(env.arm_means, 1.0):
        fail("reset should put every mean back at mean_offset")


@check
def check_lai_robbins(lai_robbins_constant):
    means = np.array([0.5, 1.5, 1.0, -0.5])  # gaps 1, 0, 0.5, 2
    for noise_std in (1.0, 2.0):
        expected = sum(2 * noise_std**2 / g for g in (1.0, 0.5, 2.0))
        got = lai_robbins_constant(means.copy(), noise_std)
        if not np.isfinite(got):
            fail(f"got {got}: leave out the best arm (gap 0; it costs nothing and its KL is 0).")
        if not np.isclose(got, expected):
            hint = "KL(N(m1, s^2) || N(m2, s^2)) = (m1 - m2)^2 / (2 s^2), so gap / KL = 2 s^2 / gap."
            if np.isclose(got, sum(2 * noise_std / g for g in (1.0, 0.5, 2.0))) and noise_std != 1.0:
                hint = "You used s where the KL has the variance s^2."
            elif np.isclose(got, expected / 2):
                hint = "The Gaussian KL has a 2 in its denominator: KL = gap^2 / (2 s^2)."
            elif np.isclose(got, sum(g**2 / (2 * noise_std**2) for g in (1.0, 0.5, 2.0))):
                hint = "You summed the KLs; the bound sums gap / KL: each arm must be pulled about ln T / KL times and costs gap each time."
            fail(f"for means {means.tolist()} and noise_std {noise_std} the constant is {expected:.4f}, got {got:.4f}. {hint}")
