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
# (UCB), then go beyond it with Thompson sampling.
#
# You will
# 1. meet the 10-armed testbed as a real `gymnasium` environment;
# 2. write epsilon-greedy with incremental sample averages, and see why greedy gets stuck;
# 3. write UCB, Thompson sampling and the gradient bandit, and compare them on the testbed.
#
# The reference is `curriculum/solutions/chapter2/bandits.py`.

# %% setup
import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env
from jaxtyping import Float

from curriculum.solutions.chapter2.bandits import (
    BANDIT_ID,
    MultiArmedBanditEnv,
    RandomAgent,
    argmax_random_tiebreak,
    run_testbed,
)
from curriculum.checks.chapter2 import bandits as tests
from curriculum.utils import full_or_quick
from curriculum.utils.plotting import line

# %% [markdown]
# ## The 10-armed testbed
#
# Each bandit problem draws ten true arm values q*(a) from N(0, 1); pulling arm a returns a reward
# drawn from N(q*(a), 1). S&B average every curve over 2000 such problems ("runs") of 1000 steps.
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
# Every agent has the same interface, so one loop (`run_testbed`) compares them all:
# `reset(seed)`, `get_action() -> int`, `observe(action, reward)`. The random agent is the floor:

# %%
N_RUNS = full_or_quick(2000, 50)
N_STEPS = full_or_quick(1000, 300)
rewards_random, optimal_random = run_testbed(RandomAgent(10), N_RUNS, N_STEPS)
print(f"random agent: mean reward {rewards_random.mean():.3f}, optimal action {optimal_random.mean():.1%}")

# %% [markdown]
# ## Epsilon-greedy and incremental averages
#
# Estimate each arm's value by the mean of its rewards so far. You don't need to store the rewards:
# with N(a) pulls, the new mean is the old one moved a fraction 1/N(a) of the way to the new reward,
#
# $$Q(a) \leftarrow Q(a) + \frac{1}{N(a)}\big(R - Q(a)\big)\qquad\text{(S\&B eq. 2.3)}.$$
#
# Replace 1/N(a) by a constant step size alpha and the estimate becomes an exponentially
# weighted average that tracks a changing bandit. The agent explores with probability epsilon
# (uniformly over *all* arms) and otherwise pulls the arm with the highest estimate.
#
# Two details matter more than they look:
# - **Ties.** At the start every estimate is 0. `np.argmax` would then always pick arm 0; break ties
#   at random (`argmax_random_tiebreak`).
# - **Randomness.** Draw every random number from `self.rng`, so `reset(seed)` makes runs reproducible
#   and two agents can face the same problems.
#
# ### Exercise: epsilon-greedy with incremental averages
#
# Fill in `get_action` and `observe`. The check feeds the agent a fixed list of (arm, reward) pairs and
# compares its estimates with averages worked out by hand, for sample averages and for a constant step
# size; it then counts how often each arm is chosen when two arms tie and when epsilon = 0.4, and checks
# that `reset(seed)` replays the same actions.

# %% exercise curriculum.solutions.chapter2.bandits:EpsilonGreedy difficulty=2 importance=5 minutes=15
tests.check_epsilon_greedy(EpsilonGreedy)

# %% hint
# `get_action` is one coin flip: with probability epsilon pick any arm uniformly (the greedy one can come up
# too), otherwise the arm with the largest estimate. `observe` counts the pull, then moves the estimate of
# that one arm part of the way towards the reward it just paid.

# %% hint
# `self.rng.random() < self.epsilon` is the coin, `self.rng.integers(self.num_arms)` the random arm, and
# `argmax_random_tiebreak(self.q_estimates, self.rng)` the greedy arm (plain `np.argmax` always returns
# the first of tied arms, which the tie test catches). In `observe`, increment `counts[action]` *before*
# computing 1/N: after the first pull N = 1 and the estimate must become the reward itself.

# %% hint
# ```python
# def observe(self, action, reward):
#     self.counts[action] += 1
#     alpha = ...  # 1 / counts[action] for sample averages, else self.step_size
#     # move self.q_estimates[action] a fraction alpha of the way from its value to `reward`
# ```

# %% [markdown]
# ### Figure 2.2: greedy gets stuck
#
# A purely greedy agent (epsilon = 0) locks onto the first arm that pays off. With a little
# exploration the agent keeps finding better arms. Expect: greedy improves fastest at first and then
# plateaus around 1.0 average reward and ~35% optimal actions; epsilon = 0.1 explores more and finds
# the best arm sooner (~80% optimal); epsilon = 0.01 learns slowly but would overtake in the long run.

# %%
results = {}
for eps in (0.0, 0.01, 0.1):
    results[f"ε = {eps}"] = run_testbed(EpsilonGreedy(10, epsilon=eps), N_RUNS, N_STEPS)
line({k: r for k, (r, _) in results.items()}, title="Average reward (S&B fig. 2.2, top)", ylabel="average reward")
line({k: 100 * o for k, (_, o) in results.items()}, title="% optimal action (S&B fig. 2.2, bottom)", ylabel="% optimal action")

# %% [markdown]
# ### Optimistic initial values (figure 2.3)
#
# Start every estimate at +5, far above any arm's true value, and act greedily. Each pull
# disappoints, so the agent tries the others: systematic exploration early on, none later.
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
# `OptimisticGreedy` inherits `get_action`, `observe` and `reset` from `EpsilonGreedy`. Only the
# settings differ: no random exploration at all, and estimates that start high.

# %% hint
# Call `super().__init__(...)` with `epsilon=0.0` and pass this constructor's own `initial_value`,
# `step_size` and `seed` through by keyword (don't hard-code 5 and 0.1: the defaults already say so).
# If the check reports the same arm twice in the first ten pulls, epsilon is not 0 or the estimates did not
# start at `initial_value`.

# %%
results_23 = {
    "optimistic, greedy (Q1=5, ε=0)": run_testbed(OptimisticGreedy(10), N_RUNS, N_STEPS),
    "realistic, ε-greedy (Q1=0, ε=0.1)": run_testbed(EpsilonGreedy(10, epsilon=0.1, step_size=0.1), N_RUNS, N_STEPS),
}
line({k: 100 * o for k, (_, o) in results_23.items()}, title="Optimistic initial values (S&B fig. 2.3)", ylabel="% optimal action")

# %% [markdown]
# ## Upper confidence bound
#
# Epsilon-greedy explores blindly: a clearly bad arm is tried as often as a promising one. UCB
# explores where it is *uncertain*: it pulls
#
# $$A_t = \arg\max_a \Big[Q(a) + c\sqrt{\frac{\ln t}{N(a)}}\Big],$$
#
# where t is the number of this action (t = 1 for the first). The bonus shrinks as an arm is pulled
# (N grows) and grows slowly for arms left alone (ln t). An arm never pulled counts as maximising.
#
# ### Exercise: UCB scores
#
# Write `scores`; `get_action` takes their argmax. The check compares your scores with hand-computed
# ones after six rewards, then runs your agent on the testbed: it must beat epsilon-greedy.

# %% exercise curriculum.solutions.chapter2.bandits:UCB difficulty=2 importance=4 minutes=15
tests.check_ucb(UCB)

# %% hint
# Everything is an array over arms: `self.q_estimates` and `self.counts` (inherited from
# `EpsilonGreedy`). t is the number of the action about to be taken, so it is one more than the number
# of rewards seen so far. Arms with a count of 0 get the score `np.inf`, whatever the formula says.

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
# To act, sample one plausible mean per arm from its posterior and pull the arm whose sample is
# largest. Each arm is pulled with the probability that it is the best one given what we know:
# exploration that fades exactly as fast as the uncertainty does.
#
# ### Exercise: Gaussian Thompson sampling
#
# Write `posterior` (the formulas above, for all arms at once) and `get_action`. `observe` is given: it
# keeps each arm's count and reward sum. The check compares the posterior with hand-computed values, then
# compares how often your agent picks each of two arms with the exact probability, and finally runs it on
# the testbed against epsilon-greedy.

# %% exercise curriculum.solutions.chapter2.bandits:ThompsonSampling difficulty=3 importance=4 minutes=15
tests.check_thompson_sampling(ThompsonSampling)

# %% hint
# Work in precisions (1 / variance). The prior contributes 1/prior_std², each of an arm's N rewards
# contributes 1/noise_std². The posterior mean weights the prior mean and the reward sum by those same
# precisions and divides by the total.

# %% hint
# `self.counts` and `self.reward_sums` are arrays over arms, so the formulas work elementwise with no loop.
# Return the standard deviation, `1 / np.sqrt(precision)`, not the variance (the check tells you if you
# returned the variance). In `get_action`, `self.rng.normal(mean, std)` draws one sample per arm; take
# the argmax of the samples. Taking the argmax of the means instead is greedy, and the two-arm frequency
# test fails.

# %% hint
# ```python
# def posterior(self):
#     precision = ...  # 1/prior_std**2 + counts/noise_std**2
#     mean = ...       # (prior_mean/prior_std**2 + reward_sums/noise_std**2) / precision
#     return mean, ...
#
# def get_action(self):
#     mean, std = self.posterior()
#     return int(np.argmax(...))
# ```

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
# a spike at step 11 in S&B's figure 2.4). Thompson sampling is usually best of all on this testbed.

# %%
agents = {
    "ε-greedy ε=0.1": EpsilonGreedy(10, epsilon=0.1),
    "UCB c=2": UCB(10, c=2.0),
    "Thompson": ThompsonSampling(10),
    "gradient α=0.1": GradientBandit(10, step_size=0.1),
    "random": RandomAgent(10),
}
comparison = {name: run_testbed(agent, N_RUNS, N_STEPS) for name, agent in agents.items()}
line({k: r for k, (r, _) in comparison.items()}, smooth=full_or_quick(10, 5), title="Average reward (S&B fig. 2.4, extended)", ylabel="average reward")
line({k: 100 * o for k, (_, o) in comparison.items()}, smooth=full_or_quick(10, 5), title="% optimal action", ylabel="% optimal action")
for name, (r, o) in comparison.items():
    print(f"{name:16s} mean reward {r.mean():.3f}   optimal action over the last 100 steps {o[-100:].mean():.1%}")

# %% [markdown]
# ## Going further
# - Non-stationary bandits (S&B exercise 2.5): let the arm means drift with a random walk; compare
#   sample averages with a constant step size.
# - Gradient bandit with and without baseline when rewards are offset by +4 (`run_testbed(...,
#   mean_offset=4.0)`, S&B figure 2.5).
# - A parameter study (S&B figure 2.6): average reward over the first 1000 steps against each
#   algorithm's hyperparameter on a log scale.

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
