# %% [markdown]
# # 2.1 Multi-armed bandits
#
# A bandit is reinforcement learning with the hard parts removed: there is no state and no delayed
# reward. You pull one of k arms, receive a noisy reward, and pull again. What is left is the one
# problem every RL algorithm must solve: **exploration vs exploitation**. To find the best arm you
# must try arms that look worse; every such try costs reward.
#
# We follow chapter 2 of Sutton & Barto's *Reinforcement Learning: An Introduction* (S&B), and
# reproduce the shapes of its figures 2.2 (epsilon-greedy), 2.3 (optimistic initial values) and 2.4
# (UCB), then go beyond it with Thompson sampling and with **regret**, the yardstick bandit theory uses
# to say how much an exploration strategy costs.
#
# You will
# 1. meet the 10-armed testbed as a real `gymnasium` environment and write the loop that runs an agent on it;
# 2. write incremental value estimates and epsilon-greedy, and see why greedy gets stuck;
# 3. measure regret, and see why greedy's grows linearly while optimism makes it grow like log t;
# 4. write optimistic initial values, UCB, Thompson sampling and the gradient bandit, and compare them;
# 5. compute the Lai-Robbins lower bound that no algorithm can beat, and build a bandit whose arms drift.
#
# The reference is `curriculum/solutions/chapter2/bandits.py`.

# %% setup
import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env
from jaxtyping import Bool, Float, Int
from tqdm.auto import tqdm

from curriculum.checks.chapter2 import bandits as tests
from curriculum.solutions.chapter2.bandits import (
    BANDIT_ID,
    NONSTATIONARY_ID,
    BanditRuns,
    MultiArmedBanditEnv,
    RandomAgent,
    argmax_random_tiebreak,
)
from curriculum.utils import full_or_quick
from curriculum.utils.plotting import line

# %% [markdown]
# ## The 10-armed testbed
#
# Each bandit problem draws ten true arm values q*(a) from N(0, 1); pulling arm a returns a reward
# drawn from N(q*(a), 1). S&B average every curve over 2000 such problems ("runs") of 1000 steps.
# Averaging over problems matters: on a single problem one lucky or unlucky early reward decides
# everything, and the curve you would see says more about that draw than about the algorithm.
#
# The environment is an ordinary `gymnasium.Env`: `MultiArmedBanditEnv` in the reference module,
# registered as `curriculum/MultiArmedBandit-v0`. Its observation is always 0 (a bandit has no
# state) and it never terminates: the registered version is *truncated* after 1000 steps, which is
# exactly what truncation means (the task goes on; we stopped watching). gymnasium's own checker
# confirms it follows the API:

# %%
env = gym.make(BANDIT_ID)
check_env(env.unwrapped, skip_render_check=True)
obs, info = env.reset(seed=0)
print("arm means:", np.round(env.unwrapped.arm_means, 2), "best arm:", info["best_arm"])
print("five pulls of arm 0:", [round(env.step(0)[1], 2) for _ in range(5)])

# %% [markdown]
# Look at the five pulls of one arm: they scatter by about ±1 around its mean, while the gaps between
# arm means are often a few tenths. A single pull tells you very little; that is the whole difficulty.
#
# ![One turn of the bandit loop: the agent chooses an arm with get_action, the environment pays a noisy reward drawn around that arm's hidden mean, and the agent learns from it with observe; the loop has no state and no episode end](figures/2.1_bandit_loop.svg)
#
# Every agent in this section has the same three methods, so one loop compares them all:
# `reset(seed)` forgets everything and reseeds the agent's own random generator, `get_action() -> int`
# chooses an arm, and `observe(action, reward)` learns from the reward of the arm just pulled. The
# environment knows the means and never tells the agent; the agent sees only its own actions and rewards.
#
# ### Exercise: the testbed loop
#
# Write `run_testbed`, the experiment every plot of this section is made with. For each run: reset
# the environment with seed `seed + run` and the agent with `agent.reset(seed + run)`, store the
# bandit's true means (`env.unwrapped.arm_means`, read right after the reset), then take `num_steps`
# steps of *act, step the env, observe, record*. Record four arrays: the reward and action of every step,
# whether the action was the best arm *at that moment* (`info["best_arm"]` from the same `env.step`),
# and the means. Return them in a `BanditRuns`, whose `mean_reward` and `optimal_fraction` average over runs.
#
# Why the seeds: run i of every agent then faces the same bandit problem, so when two agents are
# compared their difference is not blurred by one of them having drawn easier problems (a *paired*
# comparison). Why `info["best_arm"]` and not the argmax of the stored means: later in this section the
# arms drift, and the best arm at step 900 need not be the best arm at reset.
#
# The check drives your loop with a small recording agent and compares every array with a loop it
# runs itself on the unwrapped environment, then repeats on a drifting bandit.

# %% exercise curriculum.solutions.chapter2.bandits:run_testbed difficulty=2 importance=5 minutes=15
tests.check_run_testbed(run_testbed)

# %% hint
# Two nested loops: the outer one over runs (wrap its range in `tqdm(..., disable=not progress)` so you see
# progress), the inner one over steps. Everything that must be fresh for a new bandit problem (the env's means,
# the agent's estimates) is reset at the top of the outer loop, never inside the inner one.

# %% hint
# `env.reset(seed=seed + run)` returns `(obs, info)`; after it, `env.unwrapped.arm_means` holds the new means
# (`env` itself is wrapped by `gym.make`). `env.step(action)` returns `(obs, reward, terminated, truncated, info)`.
# Call `agent.observe(action, reward)` before the next `get_action`, or the agent never learns.

# %% hint
# ```python
# for run in tqdm(range(num_runs), ...):
#     env.reset(seed=...); agent.reset(...)
#     arm_means[run] = ...
#     for t in range(num_steps):
#         action = agent.get_action()
#         _, reward, _, _, info = env.step(action)
#         ...  # observe, then fill rewards[run, t], actions[run, t], optimal[run, t]
# ```

# %% [markdown]
# The random agent is the floor every other agent must beat. Its average reward should hover around 0
# (the mean of the arm means) and it should pick the best arm about one time in ten.

# %%
N_RUNS = full_or_quick(2000, 50)
N_STEPS = full_or_quick(1000, 300)
random_runs = run_testbed(RandomAgent(10), N_RUNS, N_STEPS)
print(f"random agent: mean reward {random_runs.mean_reward.mean():.3f}, optimal action {random_runs.optimal_fraction.mean():.1%}")

# %% [markdown]
# ## Estimating action values, incrementally
#
# The natural estimate of an arm's value is the mean of the rewards it has paid. You don't need to
# store the rewards: with N(a) pulls, the new mean is the old one moved a fraction 1/N(a) of the way
# to the new reward,
#
# $$Q(a) \leftarrow Q(a) + \frac{1}{N(a)}\big(R - Q(a)\big)\qquad\text{(S\&B eq. 2.3)}.$$
#
# A worked example: an arm pays 1, then 3, then 2. After the first pull N = 1 and Q jumps all the way to
# 1 (the initial value is forgotten entirely). After the second, Q = 1 + (3 - 1)/2 = 2, the mean of 1 and
# 3. After the third, Q = 2 + (2 - 2)/3 = 2. The form *old estimate + step size × error* is the
# skeleton of nearly every update rule in this chapter: TD learning and Q-learning (section 2.2) move
# a value estimate a step towards a target in exactly this way.
#
# Replace 1/N(a) by a constant step size alpha and the estimate becomes an exponentially weighted
# average: the reward from k pulls ago has weight alpha(1 - alpha)^k, so old rewards fade and the
# estimate can follow an arm whose value changes. You will need that at the end of the section.
#
# ### Exercise: incremental value estimates
#
# Write `ActionValueAgent.observe`. The agent holds `q_estimates` (starting at `initial_value`) and
# `counts`; `step_size=None` means sample averages. It has no `get_action`: the subclasses you write next
# decide how to act on the estimates. The check feeds it a fixed list of (arm, reward) pairs and
# compares its estimates with averages worked out by hand, for sample averages and for a constant
# step size, then checks that `reset` restores the initial values.

# %% exercise curriculum.solutions.chapter2.bandits:ActionValueAgent difficulty=1 importance=5 minutes=8
tests.check_action_values(ActionValueAgent)

# %% hint
# `observe` counts the pull, then moves the estimate of that one arm part of the way towards the reward it just
# paid. Which part of the way depends on `self.step_size`.

# %% hint
# Increment `counts[action]` *before* computing 1/N: after the first pull N = 1 and the estimate must become the
# reward itself, whatever the initial value was.

# %% hint
# ```python
# def observe(self, action, reward):
#     self.counts[action] += 1
#     alpha = ...  # 1 / counts[action] for sample averages, else self.step_size
#     # move self.q_estimates[action] a fraction alpha of the way from its value to `reward`
# ```

# %% [markdown]
# ## Epsilon-greedy
#
# The simplest way to keep exploring: with probability epsilon pull an arm uniformly at random
# (the greedy arm included, as in S&B), otherwise pull the arm with the highest estimate. With 10 arms
# and epsilon = 0.1 the greedy arm is chosen with probability 0.9 + 0.1/10 = 0.91.
#
# Two details matter more than they look:
# - **Ties.** At the start every estimate is 0. `np.argmax` would then always pick arm 0; break ties
#   at random (`argmax_random_tiebreak`). With always-first tie-breaking a greedy agent's behaviour
#   depends on how the arms happen to be numbered, which is not a property of the algorithm.
# - **Randomness.** Draw every random number from `self.rng`, so `reset(seed)` makes runs reproducible
#   and two agents can face the same problems.
#
# ### Exercise: epsilon-greedy
#
# Write `EpsilonGreedy.get_action` (it inherits `observe` from your `ActionValueAgent`). The check
# counts how often each arm is chosen when two arms tie and when epsilon = 0.4, and checks that
# `reset(seed)` replays the same actions.

# %% exercise curriculum.solutions.chapter2.bandits:EpsilonGreedy difficulty=1 importance=5 minutes=7
tests.check_epsilon_greedy(EpsilonGreedy)

# %% hint
# `get_action` is one coin flip: with probability epsilon pick any arm uniformly (the greedy one can come up
# too), otherwise the arm with the largest estimate.

# %% hint
# `self.rng.random() < self.epsilon` is the coin, `self.rng.integers(self.num_arms)` the random arm, and
# `argmax_random_tiebreak(self.q_estimates, self.rng)` the greedy arm. Plain `np.argmax` always returns the
# first of tied arms, which the tie test catches; `np.random` instead of `self.rng` breaks reproducibility.

# %% [markdown]
# ### Figure 2.2: greedy gets stuck
#
# A purely greedy agent (epsilon = 0) locks onto the first arm that pays off. With a little
# exploration the agent keeps finding better arms. In S&B's figure (2000 runs), greedy improves
# fastest at first and then plateaus around 1.0 average reward and about a third optimal actions;
# epsilon = 0.1 finds the best arm sooner (about 80% optimal by step 1000); epsilon = 0.01 learns
# slowly but would overtake in the long run, because once it has found the best arm it wastes only
# 1% of its pulls instead of 10%. Your curves should have those shapes; in quick mode they are much
# noisier because they average over far fewer problems.

# %%
results = {f"ε = {eps}": run_testbed(EpsilonGreedy(10, epsilon=eps), N_RUNS, N_STEPS) for eps in (0.0, 0.01, 0.1)}
line({k: r.mean_reward for k, r in results.items()}, title="Average reward (S&B fig. 2.2, top)", ylabel="average reward")
line({k: 100 * r.optimal_fraction for k, r in results.items()}, title="% optimal action (S&B fig. 2.2, bottom)", ylabel="% optimal action")

# %% [markdown]
# ## Regret: what exploration costs
#
# Average reward tells you how well an agent does; **regret** tells you how much it lost by not knowing
# which arm was best. If the best arm has mean q*, the regret after T pulls is the expected shortfall
# against always pulling it:
#
# $$\text{Regret}(T) = T\,q^* - \mathbb E\Big[\sum_{t=1}^{T} q_*(A_t)\Big] = \sum_a \Delta_a\,\mathbb E[N_T(a)],
# \qquad \Delta_a = q^* - q_*(a).$$
#
# The second form is the useful one: regret is the expected number of pulls of each worse arm, times
# how much worse it is (its *gap*). We use the true means q*(A_t), not the noisy rewards: the noise
# averages out in expectation and only blurs the curve (this version is often called the *pseudo-regret*).
# Worked example: means [1, 0, 3], actions 0, 2, 1, 2. The gaps of the pulled arms are 2, 0, 3, 0, so the
# cumulative regret after each step is 2, 2, 5, 5.
#
# How regret grows with T sorts strategies into two kinds:
# - **Linear regret.** Greedy may lock onto a worse arm forever; whenever that happens (in a fixed
#   fraction of problems) it pays that arm's gap on every step, so the expected regret grows like c·T.
#   Epsilon-greedy with a fixed epsilon is also linear: even after it knows the best arm it spends a
#   fraction epsilon of its pulls at random, paying on average epsilon times the mean gap per step.
# - **Logarithmic regret.** A good strategy pulls a worse arm only about as often as needed to be sure it
#   is worse. Telling two means a gap Δ apart through noise of standard deviation σ takes on the order
#   of σ²/Δ² samples per "level of confidence", and being wrong with probability at most 1/T needs
#   confidence growing like ln T. So each worse arm is pulled O(ln T / Δ²) times and costs Δ each time:
#   regret of order Σ_a ln T / Δ_a.
#
# The difference is huge over a long horizon: linear regret means the agent never stops paying for
# its ignorance, logarithmic regret means the cost per step goes to zero. On a plot of regret against
# log t, a logarithmic curve becomes a straight line while a linear one bends sharply upward.
#
# ### Exercise: cumulative regret
#
# Write `cumulative_regret(arm_means, actions)`: for each run, the gap of the arm pulled at each step
# (its run's best mean minus the pulled arm's mean), summed cumulatively over steps, then averaged over
# runs. `arm_means` is `(runs, arms)` and `actions` is `(runs, steps)`, as your `run_testbed` records them.
# The check uses the worked example above and a random case computed with plain loops.

# %% exercise curriculum.solutions.chapter2.bandits:cumulative_regret difficulty=2 importance=4 minutes=8
tests.check_cumulative_regret(cumulative_regret)

# %% hint
# Three array operations, no loops: look up the mean of each pulled arm, subtract it from the best mean of the
# same run, and accumulate over the step axis. Average over runs last.

# %% hint
# `np.take_along_axis(arm_means, actions, axis=1)` has shape (runs, steps): the mean of the arm pulled at each
# step. (`arm_means[actions]` indexes *rows* with the actions, which is not what you want.) `arm_means.max(axis=1,
# keepdims=True)` is each run's best mean as a (runs, 1) column that broadcasts against it.

# %% [markdown]
# Regret of the three epsilon-greedy agents you just ran. Step is on a log scale: look for greedy's curve
# bending upward (linear growth looks exponential on a log-x axis) and for epsilon = 0.1 climbing steadily at
# its exploration rate, while epsilon = 0.01 pays little per step but keeps paying for mistakes it finds late.

# %%
def plot_regret(runs: dict, title: str):
    curves = {name: cumulative_regret(r.arm_means, r.actions) for name, r in runs.items()}
    fig = line(curves, x=np.arange(1, len(next(iter(curves.values()))) + 1), title=title, ylabel="cumulative regret", show=False)
    fig.update_xaxes(type="log")
    fig.show()
    return curves


regret_eps = plot_regret(results, "Cumulative regret of epsilon-greedy (log-scale step)")
for name, curve in regret_eps.items():
    print(f"{name:10s} regret after {N_STEPS} steps: {curve[-1]:7.1f}   added in the last half: {curve[-1] - curve[N_STEPS // 2 - 1]:6.1f}")

# %% [markdown]
# ## Optimism in the face of uncertainty
#
# Both log-regret strategies below follow one principle: **act as if the world is as good as it could
# plausibly be.** If an arm is truly good, optimism about it is correct and you pull it: no loss. If it
# is bad, pulling it produces rewards that shrink the optimism: you learn, and you stop. Either way
# optimism is self-correcting, whereas pessimism (or plain greed) about an arm is never corrected,
# because you never pull the arm again to find out. That asymmetry is why greedy can stay stuck
# forever and an optimist cannot.
#
# ### Optimistic initial values (figure 2.3)
#
# The crudest optimism: start every estimate at +5, far above any arm's true value, and act greedily.
# Each pull disappoints, so the agent tries the others: systematic exploration early on, none later.
# With a constant step size 0.1 the first reward only pulls the estimate a tenth of the way down
# (from 5 to about 4.5 for an arm worth 0), so every arm is still "promising" after one try, and the
# agent cycles through all of them several times before the estimates settle. It is a trick for
# stationary problems only: the exploration is front-loaded, and a bandit that changes later will
# never be re-explored.
#
# `OptimisticGreedy` is `EpsilonGreedy(epsilon=0, initial_value=5, step_size=0.1)`; if your
# `EpsilonGreedy` is right, it needs no new code.
#
# ### Exercise: optimistic greedy
#
# Write the constructor: it only forwards its arguments to `EpsilonGreedy`. The check runs the agent for
# ten steps on a 10-armed bandit: an optimistic greedy agent must try every arm exactly once in that time.

# %% exercise curriculum.solutions.chapter2.bandits:OptimisticGreedy difficulty=1 importance=3 minutes=5
tests.check_optimistic_greedy(OptimisticGreedy)

# %% hint
# `OptimisticGreedy` inherits `get_action`, `observe` and `reset`. Only the settings differ: no random
# exploration at all, and estimates that start high.

# %% hint
# Call `super().__init__(...)` with `epsilon=0.0` and pass this constructor's own `initial_value`,
# `step_size` and `seed` through by keyword (don't hard-code 5 and 0.1: the defaults already say so).
# If the check reports the same arm twice in the first ten pulls, epsilon is not 0 or the estimates did not
# start at `initial_value`.

# %% [markdown]
# In S&B's figure 2.3 the optimistic agent starts worse (it is busy being disappointed), shows a spike
# around step 11 (after one pass over the arms, many runs all turn to the arm that disappointed least,
# which is often the best), and then overtakes epsilon-greedy because it stops exploring.

# %%
results_23 = {
    "optimistic, greedy (Q1=5, ε=0)": run_testbed(OptimisticGreedy(10), N_RUNS, N_STEPS),
    "realistic, ε-greedy (Q1=0, ε=0.1)": run_testbed(EpsilonGreedy(10, epsilon=0.1, step_size=0.1), N_RUNS, N_STEPS),
}
line({k: 100 * r.optimal_fraction for k, r in results_23.items()}, title="Optimistic initial values (S&B fig. 2.3)", ylabel="% optimal action")

# %% [markdown]
# ## Upper confidence bound
#
# Epsilon-greedy explores blindly: a clearly bad arm is tried as often as a promising one. UCB makes
# optimism precise. For each arm build a confidence interval around its estimate, wide when the arm has
# few pulls and narrow when it has many, and pull the arm whose interval reaches highest:
#
# $$A_t = \arg\max_a \Big[Q(a) + c\sqrt{\frac{\ln t}{N(a)}}\Big],$$
#
# where t is the number of this action (t = 1 for the first). An arm never pulled counts as maximising.
#
# ![Four arms drawn as confidence intervals around their estimates Q(a): arm 1 has the highest estimate and a narrow interval after many pulls, arm 3 has a lower estimate but few pulls and so the tallest interval; UCB pulls arm 3, the highest upper bound, even though greedy would pull arm 1](figures/2.1_ucb_intervals.svg)
#
# Read the figure as UCB does. Arm 1 has the best estimate but has been pulled so often that its
# upper bound is barely above it. Arm 3 looks worse, yet with only a few pulls its true value could well
# be higher than arm 1's, so UCB pulls it. Either arm 3 is good (and UCB has found it) or its rewards
# pull its estimate down and shrink its interval, and it drops out of contention. Arm 4 is both poor and
# well measured: its whole interval sits below arm 1's estimate, and UCB will leave it alone for a long
# time. That is the difference from epsilon-greedy, which would keep pulling arm 4 at random.
#
# Where the bonus comes from: by Hoeffding's inequality, the mean of N rewards in [0, 1] exceeds the
# true mean by more than sqrt(ln(1/δ) / (2N)) with probability at most δ. Choose δ shrinking like 1/t⁴
# and you get UCB1's bonus sqrt(2 ln t / N) (Auer et al., 2002): the bound holds at every step except
# with a probability that sums to something finite. The √N in the denominator is the square-root law
# of averaging; the ln t in the numerator slowly widens the interval of an arm left alone, so no arm is
# abandoned for ever. Auer et al. prove that UCB1's expected regret after T pulls is at most
# Σ over worse arms of 8 ln T / Δ_a, plus a constant: logarithmic, with each arm's cost inversely
# proportional to its gap, just as the argument above said it should be. S&B's c plays the role of
# the √2 and trades exploration (large c) against exploitation (small c).
#
# ### Exercise: UCB scores
#
# Write `scores`; `get_action` takes their argmax. The check compares your scores with hand-computed
# ones after six rewards, then runs your agent on the testbed: it must beat epsilon-greedy.

# %% exercise curriculum.solutions.chapter2.bandits:UCB difficulty=2 importance=4 minutes=15
tests.check_ucb(UCB)

# %% hint
# Everything is an array over arms: `self.q_estimates` and `self.counts` (inherited). t is the number of the
# action about to be taken, so it is one more than the number of rewards seen so far. Arms with a count of 0
# get the score `np.inf`, whatever the formula says.

# %% hint
# `t = self.counts.sum() + 1` (using `self.counts.sum()` alone is the off-by-one the check names).
# Dividing by a count of 0 makes numpy warn; compute the bonus anyway inside
# `with np.errstate(divide="ignore", invalid="ignore"):` and then overwrite those arms with
# `np.where(self.counts == 0, np.inf, ...)`.

# %% hint
# ```python
# t = ...
# with np.errstate(divide="ignore", invalid="ignore"):
#     bonus = ...  # c * sqrt(ln t / N(a)), one number per arm
# return np.where(self.counts == 0, np.inf, ...)
# ```

# %% [markdown]
# ## Thompson sampling
#
# Keep a *belief* about each arm's mean: a Gaussian N(mu, sigma^2) that starts at the prior and
# sharpens with every reward. With Gaussian rewards of known noise the update is exact (conjugate):
# precisions add,
#
# $$\frac{1}{\sigma^2} = \frac{1}{\sigma_0^2} + \frac{N}{\sigma_\text{noise}^2},\qquad
# \mu = \sigma^2\Big(\frac{\mu_0}{\sigma_0^2} + \frac{\sum R}{\sigma_\text{noise}^2}\Big).$$
#
# Precisions, not variances, add because each independent observation contributes its own amount of
# information. A worked example: prior N(0, 1.5²) (precision 1/2.25 ≈ 0.44), noise σ = 0.7 (each reward
# adds 1/0.49 ≈ 2.04), and an arm that paid two rewards summing to 2.0. The posterior precision is
# 0.44 + 2 × 2.04 ≈ 4.53, so the std is about 0.47; the mean is (0 / 2.25 + 2.0 / 0.49) / 4.53 ≈ 0.90. The
# sample mean 1.0 is pulled a little towards the prior mean 0, by an amount that shrinks as rewards accumulate.
#
# ![A wide Gaussian prior over an arm's mean, centred at 0, and the much narrower posterior after a few rewards, centred near their average; the posterior mean lies between the prior mean and the sample mean, closer to the sample mean](figures/2.1_posterior_update.svg)
#
# With unit prior and unit noise variances every precision is a plain count, and several classic bugs
# (dividing by a variance instead of multiplying, using a standard deviation as a variance) give exactly
# the right numbers. The check therefore uses prior std 1.5 and noise std 0.7 and compares with Bayes'
# rule applied one reward at a time, a different route to the same posterior.
#
# ### Exercise: the conjugate Gaussian posterior
#
# Write `gaussian_posterior(counts, reward_sums, prior_mean, prior_std, noise_std)`: the formulas above for
# all arms at once, returning each arm's posterior mean and standard deviation.

# %% exercise curriculum.solutions.chapter2.bandits:gaussian_posterior difficulty=2 importance=4 minutes=10
tests.check_gaussian_posterior(gaussian_posterior)

# %% hint
# Work in precisions (1 / variance). The prior contributes 1/prior_std², each of an arm's N rewards
# contributes 1/noise_std². The posterior mean weights the prior mean and the reward sum by those same
# precisions and divides by the total.

# %% hint
# `counts` and `reward_sums` are arrays over arms, so the formulas work elementwise with no loop. Square the
# stds before inverting them, and return the standard deviation `1 / np.sqrt(precision)`, not the variance.
# An arm with count 0 comes out as the prior itself; no special case is needed.

# %% [markdown]
# ### Exercise: acting by posterior sampling
#
# To act, sample one plausible mean per arm from its posterior and pull the arm whose sample is
# largest. Each arm is then pulled with exactly the probability that it is the best one given what we
# know: an arm with a wide posterior sometimes produces a high sample and gets tried; an arm whose
# posterior sits far below the leader's almost never does. Exploration fades exactly as fast as the
# uncertainty does, with no constant like epsilon or c to tune.
#
# Write `ThompsonSampling.get_action`; `posterior()` calls your `gaussian_posterior` and `observe` keeps
# each arm's count and reward sum. The check compares `posterior()` with the sequential update (with
# non-unit variances again), then compares how often your agent picks each of two arms with the exact
# probability P(θ₁ > θ₀), and finally runs it on the testbed against epsilon-greedy.

# %% exercise curriculum.solutions.chapter2.bandits:ThompsonSampling difficulty=2 importance=4 minutes=8
tests.check_thompson_sampling(ThompsonSampling)

# %% hint
# Sampling replaces the estimate: draw θ(a) ~ N(mean(a), std(a)²) for every arm, then act greedily on the
# draws, not on the means (acting on the means is plain greedy, and the two-arm frequency test fails).

# %% hint
# `self.rng.normal(mean, std)` with arrays draws one sample per arm from the agent's own generator;
# `int(np.argmax(...))` of the samples is the action.
# %% [markdown]
# ## The gradient bandit
#
# Instead of estimating values, learn *preferences* H(a) and act with pi = softmax(H). Stochastic
# gradient ascent on the expected reward gives (S&B section 2.8)
#
# $$H(a) \leftarrow H(a) + \alpha\,(R - \bar R)\,(\mathbb 1[a = A] - \pi(a))\quad\text{for every arm } a,$$
#
# where the baseline $\bar R$ is the average of the earlier rewards. The baseline does not change
# the expected gradient, only its variance; this is the same trick as the value baseline in
# policy-gradient methods (section 2.3).
#
# ### Exercise: the gradient bandit's update
#
# Write `observe`; `action_probs` (a stable softmax) and `get_action` are given. The check replays three
# rewards with step size 0.5 and compares the preferences after each with a hand calculation, with and
# without the baseline.

# %% exercise curriculum.solutions.chapter2.bandits:GradientBandit difficulty=3 importance=3 minutes=15
tests.check_gradient_bandit(GradientBandit)

# %% hint
# Three things happen, in this order: choose the baseline (the mean of the rewards *before* this one; on
# the very first step that is the reward itself, so nothing moves), update every arm's preference using
# the policy as it was before the update, then fold the new reward into the running mean.

# %% hint
# `self.action_probs()` gives pi; call it before touching `self.preferences`. `np.eye(self.num_arms)[action]`
# is the indicator 1[a = A] as a vector, so one line updates all arms. Keep `self.t` as the number of rewards
# seen and update the mean incrementally, `mean_reward += (reward - mean_reward) / t`. With
# `self.baseline` False the baseline is 0.

# %% hint
# ```python
# self.t += 1
# baseline = ...  # reward if t == 1, else mean_reward; 0.0 without a baseline
# probs = self.action_probs()
# self.preferences += ...  # step_size * (reward - baseline) * (indicator - probs)
# self.mean_reward += ...
# ```

# %% [markdown]
# ## Everything on one plot (figure 2.4 and beyond)
#
# UCB beats epsilon-greedy after its first k steps (it spends those trying each arm once, visible as
# a spike at step 11 in S&B's figure 2.4). Thompson sampling is usually best of all on this testbed,
# partly because its prior N(0, 1) and noise std 1 are exactly how the testbed is generated: it is
# being told the truth about the world, which UCB is not.

# %%
agents = {
    "ε-greedy ε=0.1": EpsilonGreedy(10, epsilon=0.1),
    "greedy": EpsilonGreedy(10, epsilon=0.0),
    "UCB c=2": UCB(10, c=2.0),
    "Thompson": ThompsonSampling(10),
    "gradient α=0.1": GradientBandit(10, step_size=0.1),
    "random": RandomAgent(10),
}
comparison = {name: run_testbed(agent, N_RUNS, N_STEPS) for name, agent in agents.items()}
line({k: r.mean_reward for k, r in comparison.items()}, smooth=full_or_quick(10, 5), title="Average reward (S&B fig. 2.4, extended)", ylabel="average reward")
line({k: 100 * r.optimal_fraction for k, r in comparison.items()}, smooth=full_or_quick(10, 5), title="% optimal action", ylabel="% optimal action")
for name, r in comparison.items():
    print(f"{name:16s} mean reward {r.mean_reward.mean():.3f}   optimal action over the last 100 steps {r.optimal_fraction[-100:].mean():.1%}")

# %% [markdown]
# ### Regret curves: linear vs logarithmic
#
# Now the same runs as regret, with step on a log scale. What to look for:
# - **random** is the steepest: a straight line in t, which on a log-x axis curves sharply upward.
# - **greedy** and **epsilon-greedy** also keep curving upward: their regret per step never falls to zero
#   (greedy because some runs are stuck on a worse arm for good, epsilon-greedy because it keeps
#   exploring at rate 0.1).
# - **UCB** and **Thompson** flatten into roughly straight lines on this axis: regret growing like
#   log t. UCB pays more early (it must try every arm, and its bonus with c = 2 is generous), Thompson
#   pays least.
# If UCB's curve bends up like epsilon-greedy's, its bonus is probably not shrinking with N(a); if
# Thompson's does, check that it samples from the posterior instead of acting on the means.

# %%
regret = plot_regret(comparison, "Cumulative regret on the 10-armed testbed (log-scale step)")
for name, curve in regret.items():
    print(f"{name:16s} regret at step {N_STEPS // 10:4d}: {curve[N_STEPS // 10 - 1]:6.1f}   at step {N_STEPS}: {curve[-1]:6.1f}")

# %% [markdown]
# ## How good can it get? The Lai-Robbins lower bound
#
# Logarithmic regret is not just achievable, it is the best possible. Lai & Robbins (1985) showed that
# any algorithm that does reasonably on *every* bandit (its regret grows slower than any power of T)
# must, on each particular bandit, pull every worse arm a at least about ln T / KL(a, best) times, where
# KL is the Kullback-Leibler divergence between that arm's reward distribution and the best arm's.
# The intuition: if arm a's rewards look statistically almost like the best arm's (small KL), no
# algorithm can rule out that a is secretly the best without pulling it many times, and an algorithm
# that refused would have linear regret on the bandit where a really is best. Multiplying by the cost
# of each pull gives
#
# $$\liminf_{T\to\infty} \frac{\text{Regret}(T)}{\ln T} \;\ge\; C = \sum_{a:\,\Delta_a>0} \frac{\Delta_a}{\mathrm{KL}(a, \text{best})}.$$
#
# For Gaussian rewards with a common std σ, KL = Δ²/(2σ²), so each arm contributes 2σ²/Δ_a: close
# competitors are the expensive ones. UCB1's upper bound (8 ln T/Δ_a per arm) has the same 1/Δ shape
# with a worse constant, and refined versions of UCB (KL-UCB) and Thompson sampling match C exactly.
#
# ### Exercise: the Lai-Robbins constant
#
# Write `lai_robbins_constant(arm_means, noise_std)` for Gaussian arms. You need the KL divergence between
# two Gaussians of equal std; derive it or look it up. The check compares with a hand calculation for two
# noise levels.

# %% exercise curriculum.solutions.chapter2.bandits:lai_robbins_constant difficulty=2 importance=3 minutes=8
tests.check_lai_robbins(lai_robbins_constant)

# %% hint
# Only worse arms count: the best arm costs nothing to pull, and its KL to itself is 0, so including it divides
# by zero. Compute the gaps, keep those above 0, and sum gap / KL over them.

# %% hint
# KL(N(μ₁, σ²) ‖ N(μ₂, σ²)) = (μ₁ − μ₂)² / (2σ²), so gap / KL simplifies to 2σ² / gap. `noise_std` is σ, not σ².

# %% [markdown]
# The bound is asymptotic: it says regret / ln T cannot stay below C for ever, not that it is above
# C ln T at every T. On a problem with a tiny gap, C is huge, and C ln T can exceed the regret of pulling
# the worse arm *every* time for the whole run: at that horizon nobody can yet tell the arms apart, and
# the bound has nothing to say. Compare, on the first few testbed problems, C ln T with the regret UCB
# and Thompson sampling actually paid there (one run each, so these numbers are noisy):

# %%
ucb_runs, ts_runs = comparison["UCB c=2"], comparison["Thompson"]
print(f"{'problem':>7} {'smallest gap':>12} {'C ln T':>8} {'UCB regret':>11} {'Thompson regret':>16}")
for i in range(5):
    means = ucb_runs.arm_means[i]
    gaps = np.sort(means.max() - means)
    c_ln_t = lai_robbins_constant(means) * np.log(N_STEPS)
    r_ucb = cumulative_regret(ucb_runs.arm_means[i : i + 1], ucb_runs.actions[i : i + 1])[-1]
    r_ts = cumulative_regret(ts_runs.arm_means[i : i + 1], ts_runs.actions[i : i + 1])[-1]
    print(f"{i:>7} {gaps[1]:>12.3f} {c_ln_t:>8.1f} {r_ucb:>11.1f} {r_ts:>16.1f}")

# %% [markdown]
# Look at the rows whose smallest gap is large (a few tenths or more): there C ln T is a sensible
# yardstick and the regret of the good algorithms is of the same order. Rows with a tiny smallest gap
# show the huge C; the regret actually paid there is small because confusing two nearly equal arms
# costs almost nothing per pull.
#
# ## When the bandit changes: constant step sizes
#
# Everything so far assumed stationary arms. Real problems drift: a recommendation goes out of
# fashion, a server slows down. S&B's exercise 2.5 models this with a bandit whose means all start
# equal and then take independent random walks, adding N(0, 0.01²) noise to every arm after every pull.
# Sample averages weight the reward from step 1 as much as the one from step 5000, so after a while
# they barely move; a constant step size keeps weighting recent rewards, at the price of never settling.
#
# ### Exercise: a drifting bandit
#
# Write `NonstationaryBanditEnv.step`: pay the reward from the current means (the parent's `step`), then
# move *every* arm's mean by an independent N(0, walk_std²) step drawn from `self.np_random`, and update
# `self.best_arm`, so the next step's `info` reports the new best arm. `reset` (given) starts all means at
# `mean_offset`. The check runs gymnasium's env checker and then measures the walk over 2000 steps.

# %% exercise curriculum.solutions.chapter2.bandits:NonstationaryBanditEnv difficulty=2 importance=3 minutes=10
tests.check_nonstationary_env(NonstationaryBanditEnv)

# %% hint
# Call `super().step(action)` first and keep everything it returns: the reward and the `info["best_arm"]` in it
# describe the bandit at the time of the pull. Only then change the means.

# %% hint
# `self.np_random.normal(0.0, self.walk_std, size=self.num_arms)` is one step for every arm (its second argument
# is a standard deviation). Assign a new array to `self.arm_means` and set `self.best_arm = int(np.argmax(...))`.

# %% [markdown]
# Now the experiment S&B's exercise asks for: epsilon-greedy (epsilon = 0.1) with sample averages
# against the same agent with step size 0.1, on the drifting bandit. Early on the two are alike (the
# means have not moved much); as the arms drift apart, the sample-average agent keeps trusting estimates
# dominated by rewards from long ago, and its fraction of optimal actions falls behind the constant-step
# agent's. With the full-size run below (200 problems of 10,000 steps, about a minute per agent on a
# laptop CPU) the gap is clear in the second half; quick mode's shorter, fewer runs show the start of it.

# %%
NS_RUNS, NS_STEPS = full_or_quick(200, 20), full_or_quick(10_000, 2000)
drift = {
    "sample averages": run_testbed(EpsilonGreedy(10, 0.1), NS_RUNS, NS_STEPS, env_id=NONSTATIONARY_ID),
    "constant step 0.1": run_testbed(EpsilonGreedy(10, 0.1, step_size=0.1), NS_RUNS, NS_STEPS, env_id=NONSTATIONARY_ID),
}
line({k: 100 * r.optimal_fraction for k, r in drift.items()}, smooth=NS_STEPS // 50, title="Drifting bandit: % optimal action", ylabel="% optimal action")
for name, r in drift.items():
    print(f"{name:18s} optimal action over the second half: {r.optimal_fraction[NS_STEPS // 2 :].mean():.1%}")

# %% [markdown]
# ## Going further
# - Gradient bandit with and without baseline when rewards are offset by +4 (`run_testbed(...,
#   mean_offset=4.0)`, S&B figure 2.5): without a baseline every reward looks good and the preferences
#   of whatever arm is pulled first run away.
# - A parameter study (S&B figure 2.6): average reward over the first 1000 steps against each
#   algorithm's hyperparameter on a log scale.
# - Optimistic initial values on the drifting bandit: the exploration happens once, at the start, and the
#   agent never notices when the best arm changes.
# - Thompson sampling with a deliberately wrong prior (say N(0, 0.1²)) or noise std: how much regret does
#   overconfidence cost?

# %% [markdown]
# ## Further reading
# - [Sutton & Barto, *Reinforcement Learning: An Introduction*, 2nd edition (2018)](http://incompleteideas.net/book/the-book-2nd.html):
#   chapter 2 is this section's source; read sections 2.6-2.8 for the derivations of optimistic values, UCB and
#   the gradient bandit's update.
# - [Auer, Cesa-Bianchi & Fischer, "Finite-time Analysis of the Multiarmed Bandit Problem" (Machine Learning, 2002)](https://doi.org/10.1023/A:1013689704352):
#   where the UCB1 bonus comes from, and why its regret grows only logarithmically with time.
# - [Russo, Van Roy, Kazerouni, Osband & Wen, "A Tutorial on Thompson Sampling" (2017)](https://arxiv.org/abs/1707.02038):
#   Thompson sampling beyond Gaussian arms (Bernoulli bandits, shortest paths, RL), and when it works badly.
# - [Lattimore & Szepesvári, *Bandit Algorithms* (2020)](https://tor-lattimore.com/downloads/book/book.pdf):
#   the theory in depth; chapters 7-8 on UCB and 36 on Thompson sampling.
# - [Lai & Robbins, "Asymptotically Efficient Adaptive Allocation Rules" (Advances in Applied Mathematics, 1985)](https://doi.org/10.1016/0196-8858(85)90002-8):
#   the lower bound on regret in terms of KL divergences, and the first index policies that reach it.
