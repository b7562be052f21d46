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

# %% exercise curriculum.solutions.chapter2.bandits:EpsilonGreedy
tests.check_epsilon_greedy(EpsilonGreedy)

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

# %% exercise curriculum.solutions.chapter2.bandits:OptimisticGreedy
tests.check_optimistic_greedy(OptimisticGreedy)

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
# Write `scores`; `get_action` takes their argmax. The check also runs your agent on the testbed:
# it must beat epsilon-greedy.

# %% exercise curriculum.solutions.chapter2.bandits:UCB
tests.check_ucb(UCB)

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

# %% exercise curriculum.solutions.chapter2.bandits:ThompsonSampling
tests.check_thompson_sampling(ThompsonSampling)

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

# %% exercise curriculum.solutions.chapter2.bandits:GradientBandit
tests.check_gradient_bandit(GradientBandit)

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
