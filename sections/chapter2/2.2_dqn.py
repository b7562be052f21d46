# %% [markdown]
# # 2.2 Value-based RL: from dynamic programming to DQN
#
# Section 2.1 had no state. Now actions move us between states, rewards can come much later, and
# we need the *value* of a state: the expected (discounted) sum of the rewards that follow it.
# This section climbs one ladder in three rungs:
#
# 1. **Dynamic programming** (S&B chapter 4): with the environment's model in hand, compute values
#    exactly: policy evaluation, policy iteration. Checked against the book's hand-solved gridworld.
# 2. **Tabular TD learning** (S&B chapter 6): no model, only experience. Q-learning and SARSA on
#    `CliffWalking-v1`, where they famously learn different paths, and on `FrozenLake-v1`.
# 3. **Deep Q-learning** (Mnih et al., 2015): replace the table by a neural network, add a replay
#    buffer and a target network, debug it on *probe environments*, and solve `CartPole-v1`
#    with gymnasium 1.x vector environments.
#
# Each rung keeps one idea from the one below. Dynamic programming gives the Bellman equation, which says
# what a value function *is*. TD learning turns that equation into an update rule you can apply with
# nothing but sampled transitions. DQN applies the same update rule to a neural network, and most of its
# machinery exists to stop the network from wrecking that rule. If you keep the equation in view, every
# exercise below is one way to estimate its two sides.
#
# Two pieces of vocabulary carry through the whole section. A **return** is the discounted sum of the
# rewards from some time on, $G_t = r_t + \gamma r_{t+1} + \gamma^2 r_{t+2} + \dots$; a **value** is the
# expected return, $V_\pi(s) = \mathbb{E}_\pi[G_t \mid s_t = s]$, and $Q_\pi(s, a)$ is the same thing
# when the first action is fixed to a. The discount gamma in [0, 1] says how much a reward one step later
# is worth relative to one now; with gamma < 1 the sum stays finite even if the episode never ends.
#
# The references are `curriculum/solutions/chapter2/tabular.py`, `curriculum/solutions/chapter2/dqn.py` (CleanRL-style, one
# file top to bottom) and `curriculum/solutions/chapter2/probes.py`.

# %% setup
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter2 import probes
from curriculum.solutions.chapter2.dqn import DQNConfig, DQNResult, ReplayBatch, stop_if_not_finite
from curriculum.solutions.chapter2.tabular import (
    Model,
    random_walk_episode,
    TabularConfig,
    epsilon_greedy_action,
    greedy_rollout,
    gridworld_P,
    model_from_P,
    policy_iteration,
    success_rate,
    value_iteration,
)
from curriculum.checks.chapter2 import dqn as dqn_tests
from curriculum.checks.chapter2 import tabular as tests
from curriculum.utils import full_or_quick
from curriculum.utils.plotting import imshow, line
from curriculum.utils.device import torch_threads
from curriculum.utils.rl import EpisodeTracker, make_vec_env, seed_everything

# %% [markdown]
# ## Part 1: dynamic programming
#
# gymnasium's toy-text environments carry their full model: `env.unwrapped.P[s][a]` is a list of
# `(probability, next_state, reward, terminated)`. `model_from_P` turns it into two arrays,
#
# - `rewards[s, a]`: the expected immediate reward, and
# - `transitions[s, a, s']`: the probability of landing in s' **and continuing**.
#
# Outcomes that terminate the episode are left out of `transitions`: after the end there is no
# more value to add. With these, a Bellman backup for every state and action at once is one line,
#
# $$Q(s, a) = r(s, a) + \gamma \sum_{s'} T(s, a, s')\, V(s') \quad\Longleftrightarrow\quad
# \texttt{Q = rewards + gamma * transitions @ V}.$$
#
# Why does one backup give Q from V? Split the return after its first reward: $G_t = r_t + \gamma G_{t+1}$.
# Take expectations given $s_t = s, a_t = a$: the first term averages to r(s, a), and the second is gamma
# times the expected value of wherever we land, which is $\sum_{s'} T(s, a, s') V(s')$. Everything the
# section does is built on this one identity, the **Bellman equation**. When an outcome ends the episode
# its $G_{t+1}$ is zero, which is exactly why `transitions` leaves terminating outcomes out: their mass
# simply contributes nothing to the sum.
#
# Our first MDP is S&B's example 4.1: a 4x4 grid, terminal corners, reward -1 per move.

# %%
grid = model_from_P(gridworld_P(4))
print("rewards:", grid.rewards.shape, " transitions:", grid.transitions.shape)

# %% [markdown]
# ### Policy evaluation
#
# For a policy pi (a table `policy[s, a]` of probabilities), its value function is the fixed point of
#
# $$V(s) = \sum_a \pi(a|s)\Big[r(s,a) + \gamma \sum_{s'} T(s,a,s') V(s')\Big].$$
#
# Start from V = 0 and apply the right-hand side until V stops changing.
#
# ### Exercise: iterative policy evaluation
#
# Fill in the sweep loop of `policy_evaluation`. The check compares your answer with S&B figure 4.1 for
# the random policy, and with an exact linear solve on a random MDP.

# %% exercise curriculum.solutions.chapter2.tabular:policy_evaluation difficulty=2 importance=4 minutes=15
tests.check_policy_evaluation(policy_evaluation)

# %% hint
# Each sweep does two things for all states at once: compute Q(s, a) from the current V with one Bellman
# backup, then average Q over actions with the policy's probabilities. Stop when the largest change in V
# from one sweep to the next is below `tol`.

# %% hint
# `model.rewards + gamma * model.transitions @ V` has shape (states, actions): the matrix product sums over
# the last axis of `transitions`, the next state. `(policy * Q).sum(-1)` then averages over actions. Compare
# `np.abs(V_new - V).max()` with `tol`, and return `V_new` from inside the loop; if the loop runs out, the
# `RuntimeError` after it is raised for you.

# %% hint
# ```python
# V = np.zeros(model.n_states)
# for _ in range(max_sweeps):
#     Q = ...
#     V_new = ...
#     if ...:
#         return V_new
#     V = V_new
# ```

# %%
V_random = policy_evaluation(grid, np.full((16, 4), 0.25), gamma=1.0)
imshow(V_random.reshape(4, 4), title="Random policy on S&B's gridworld: V(s) (fig. 4.1)", zmid=None)

# %% [markdown]
# What to look for: the corners are 0 (nothing happens after the end), values fall towards -22 in the
# two corners furthest from both exits, and the map is symmetric under the half-turn that swaps the two
# terminal corners. A random walker needs on average 14 moves from a square next to an exit, because it
# wanders away more often than it steps out. If your map is not symmetric, a row/column mix-up in the
# grid or the wrong axis in the matrix product is the usual culprit.
#
# ### Policy evaluation is a linear system
#
# The sweeps converge, but to what? Fix the policy and average the Bellman equation over its actions.
# Define the policy's expected reward and its state-to-state transition matrix,
#
# $$r_\pi(s) = \sum_a \pi(a|s)\, r(s, a), \qquad P_\pi(s, s') = \sum_a \pi(a|s)\, T(s, a, s').$$
#
# Then the equation for every state at once reads $V = r_\pi + \gamma P_\pi V$: a linear system in the
# n_states unknowns. Move the V terms to one side and
#
# $$V_\pi = (I - \gamma P_\pi)^{-1} r_\pi.$$
#
# A worked example with two states. State A gives reward 1 and moves to B; state B gives reward 0 and
# stays in B with probability 0.5 or ends the episode. With gamma = 0.9: $V_B = 0 + 0.9 \cdot 0.5\, V_B$,
# so $V_B = 0$; $V_A = 1 + 0.9\, V_B = 1$. Change B's reward to 2 and $V_B = 2 / (1 - 0.45) \approx 3.64$,
# $V_A = 1 + 0.9 \cdot 3.64 \approx 4.27$. The matrix form does the same algebra for any number of states.
#
# When does the inverse exist? If gamma < 1 the rows of $\gamma P_\pi$ sum to less than one, so every
# eigenvalue of $\gamma P_\pi$ has magnitude below one and $I - \gamma P_\pi$ is invertible; the same
# fact is why the sweeps converge (each sweep shrinks the error by a factor gamma). With gamma = 1 it still
# works when every state eventually reaches a terminal outcome, as on the gridworld: the missing terminal
# mass plays the role of the discount. The iterative method is the right tool when the state space is
# large (one sweep costs a matrix-vector product, the solve costs $O(n^3)$) and when it is embedded in
# something bigger; the linear solve is the right tool for checking it, which is what you do next.
#
# ### Exercise: exact policy evaluation by a linear solve
#
# Write `exact_policy_evaluation`: build $r_\pi$ and $P_\pi$ from `model` and `policy`, then solve the
# system. The check runs an independent iterative evaluation on a random MDP with gamma = 0.8 and compares,
# then compares with S&B's figure 4.1 on the gridworld. Its messages recognise a transposed $P_\pi$, a missing
# gamma, a reward taken from the next state instead of the expected immediate reward, and uniform weights
# over actions.

# %% exercise curriculum.solutions.chapter2.tabular:exact_policy_evaluation difficulty=2 importance=3 minutes=10
tests.check_exact_policy_evaluation(exact_policy_evaluation)

# %% hint
# Two averages over actions with the policy's weights: one over the rewards table (giving a vector with one
# entry per state), one over the transition tensor (giving a states-by-states matrix whose row s is where you
# go from s). Then one call to a linear solver.

# %% hint
# `(policy * model.rewards).sum(-1)` is $r_\pi$. For $P_\pi$, `np.einsum("sa,sat->st", policy, model.transitions)`
# keeps s as the row index, which is the convention `P_pi @ V` needs. `np.linalg.solve(A, b)` is more accurate
# than forming the inverse with `np.linalg.inv`.

# %% hint
# ```python
# r_pi = ...
# P_pi = ...
# return np.linalg.solve(np.eye(model.n_states) - gamma * P_pi, r_pi)
# ```

# %% [markdown]
# The two methods agree on FrozenLake as well, for a policy they have never seen:

# %%
lake_model = model_from_P(gym.make("FrozenLake-v1").unwrapped.P)
uniform_lake = np.full((lake_model.n_states, lake_model.n_actions), 0.25)
gap = np.abs(exact_policy_evaluation(lake_model, uniform_lake, 0.95) - policy_evaluation(lake_model, uniform_lake, 0.95))
print(f"FrozenLake, random policy, gamma = 0.95: largest difference between solve and sweeps {gap.max():.1e}")

# %% [markdown]
# ### Policy improvement and policy iteration
#
# Acting greedily with respect to V (one step of look-ahead) gives a policy at least as good as the
# one V came from. Alternate evaluation and improvement and you reach the optimal policy in a
# handful of iterations. On the gridworld the optimal value is minus the number of steps to the
# nearest corner.
#
# The argument for "at least as good" is short enough to follow. Let pi' pick, in every state, the action
# with the largest $Q_\pi(s, a)$. Then $Q_\pi(s, \pi'(s)) \ge V_\pi(s)$, because a maximum is at least an
# average. So taking pi' for one step and following pi afterwards is no worse than pi. Apply the same
# inequality at the next step, and the next: following pi' for ever is no worse either. If the greedy policy
# is the same as pi, then $V_\pi$ already satisfies the Bellman *optimality* equation
# $V(s) = \max_a [r(s,a) + \gamma \sum_{s'} T V]$, and pi is optimal. There are finitely many deterministic
# policies and each iteration strictly improves until it stops, so policy iteration ends.
#
# ### Exercise: greedy policy improvement
#
# Write `policy_improvement`. `policy_iteration` in the reference module alternates the reference's own
# evaluation and improvement (it does not call yours); the cells below use it to compare with your values. The check tests the greedy action in every state, then runs policy iteration on the
# gridworld and on FrozenLake and compares with the optimal values.

# %% exercise curriculum.solutions.chapter2.tabular:policy_improvement difficulty=1 importance=4 minutes=5
tests.check_policy_iteration(policy_improvement)

# %% hint
# The same backup as in policy evaluation gives Q(s, a) for every state and action; the greedy policy puts
# all its probability on the best action of each row.

# %% hint
# `Q.argmax(-1)` picks one action per state (the lowest index on ties, as the docstring asks).
# `np.eye(model.n_actions)[actions]` turns those indices into one-hot rows of shape (states, actions),
# which is the format `policy_evaluation` expects.

# %%
_, V_star = policy_iteration(grid, gamma=1.0)
print(V_star.reshape(4, 4))

# %% [markdown]
# The same code solves FrozenLake, a slippery 4x4 lake: each action moves you in the intended
# direction only a third of the time. The optimal policy still falls into a hole sometimes; this is
# the ceiling Q-learning will be measured against below.

# %%
lake_env = gym.make("FrozenLake-v1")
lake = model_from_P(lake_env.unwrapped.P)
lake_policy, lake_V = policy_iteration(lake, gamma=0.99)
imshow(lake_V.reshape(4, 4), title="FrozenLake-v1: optimal V(s), gamma = 0.99", zmid=None)
lake_optimal = success_rate(lake_env, lake_policy.argmax(1), episodes=full_or_quick(2000, 300))
print(f"optimal policy reaches the goal {lake_optimal:.0%} of the time")

# %% [markdown]
# ## Part 2: learning from experience — Q-learning and SARSA
#
# Without the model we can't compute expectations, but we can *sample* them. Two ways to sample the
# right-hand side of $Q(s, a) = \mathbb{E}[G_t]$ suggest themselves. Monte Carlo waits until the episode
# ends and uses the actual return $G_t$: unbiased, but it adds up the noise of every later reward and
# action. Temporal-difference (TD) learning uses the Bellman identity $G_t = r_t + \gamma G_{t+1}$ and
# replaces $G_{t+1}$ by the current estimate of the next state's value: it can update after every single
# step, with much less variance, at the price of the bias of an estimate built on estimates
# (**bootstrapping**). After each step (s, a, r, s'), move Q(s, a) a fraction alpha of the way toward a
# target:
#
# - **Q-learning** (off-policy): target = r + gamma max_a' Q(s', a'): the value of acting greedily
#   from s', whatever we actually do next.
# - **SARSA** (on-policy): target = r + gamma Q(s', a') with a' the action the (epsilon-greedy)
#   agent actually takes next.
#
# In both, a transition that *terminates* the episode has target r: there is nothing after it.
#
# ### Exercise: the Q-learning update
#
# Write `q_learning_update`, which changes one entry of the table in place. The check applies it once to a
# small table, where max and mean of the next row differ, and once to a terminating transition.

# %% exercise curriculum.solutions.chapter2.tabular:q_learning_update difficulty=1 importance=5 minutes=5
tests.check_q_learning_update(q_learning_update)

# %% hint
# The target is the reward plus gamma times the value of the *best* action in the next state; after a
# terminating step it is the reward alone. Then move `Q[s, a]` a fraction alpha of the way to the target.

# %% hint
# `Q[s_next].max()` is the best next value. Write into the table with `Q[s, a] += ...`: the function
# returns nothing, so assigning to a local copy would leave the caller's table unchanged (the check looks
# at the table after the call, and also checks that no other entry moved).

# %% [markdown]
# ### Exercise: the SARSA update
#
# `sarsa_update` differs from Q-learning in one term: it bootstraps from the action the agent actually takes
# next, `a_next`, instead of the best one. The check uses a case where the two disagree.

# %% exercise curriculum.solutions.chapter2.tabular:sarsa_update difficulty=1 importance=4 minutes=5
tests.check_sarsa_update(sarsa_update)

# %% hint
# Copy your Q-learning update and change the bootstrap term: the next state's value is now the value of
# the action `a_next` that the behaviour policy chose there, exploration included.

# %% hint
# `Q[s_next, a_next]` replaces `Q[s_next].max()`. If the check says you got 2.8, you still take the max.
# Keep the rule for terminating transitions: target = r.

# %% [markdown]
# ### The training loop, and the cliff
#
# `CliffWalking-v1`: walk from the bottom-left to the bottom-right corner of a 4x12 grid; every
# step costs -1, stepping into the cliff along the bottom edge costs -100 and sends you back to the
# start. S&B example 6.6: with epsilon = 0.1 exploration, Q-learning learns the *optimal* path
# right along the edge (its values assume greedy behaviour) but keeps falling off while exploring;
# SARSA learns the value of what it actually does, exploration included, and takes the *safe* path
# further up.
#
# ### Exercise: the tabular training loop
#
# Fill in the body of the episode loop in `train_tabular`. The check trains both methods on CliffWalking and
# compares the greedy paths: Q-learning must walk along the edge (return -13), SARSA must take a safer,
# longer path.

# %% exercise curriculum.solutions.chapter2.tabular:train_tabular difficulty=2 importance=4 minutes=15
tests.check_cliff_walking(train_tabular)

# %% hint
# The loop already picked the first action before the episode starts. Each step: act, observe, choose the
# *next* action epsilon-greedily, update, and carry the next state and the next action into the following
# step. SARSA is only on-policy if the action it bootstraps from is the one the agent then really takes.

# %% hint
# Use `env.step(a)` (five return values) and `epsilon_greedy_action(Q[s_next], cfg.epsilon, rng)`. Pass
# `terminated`, not `truncated`, to the update: a time limit does not end the task. End the episode on
# `terminated or truncated`. Choose `a_next` before the update (SARSA needs it) and then act with that same
# `a_next` on the next step rather than drawing a new action.

# %% hint
# ```python
# s_next, r, terminated, truncated, _ = env.step(a)
# a_next = ...
# if method == "sarsa":
#     ...
# else:
#     ...
# returns[ep] += r
# s, a, done = ...
# ```

# %%
cliff = gym.make("CliffWalking-v1")
cliff_cfg = TabularConfig(episodes=500, alpha=0.5, epsilon=0.1, gamma=1.0, seed=0)
Q_q, returns_q = train_tabular(cliff, "q_learning", cliff_cfg)
Q_s, returns_s = train_tabular(cliff, "sarsa", cliff_cfg)
line({"Q-learning": returns_q, "SARSA": returns_s}, smooth=20, title="CliffWalking: reward per episode while learning (S&B fig. 6.4)",
     xlabel="episode", ylabel="sum of rewards")


def show_path(path: list[int], shape=(4, 12)) -> None:
    rows = [["." for _ in range(shape[1])] for _ in range(shape[0])]
    for c in range(1, shape[1] - 1):
        rows[-1][c] = "C"
    for s in path:
        r, c = divmod(s, shape[1])
        rows[r][c] = "o"
    print("\n".join("".join(r) for r in rows))


for name, Q in [("Q-learning", Q_q), ("SARSA", Q_s)]:
    ret, path = greedy_rollout(cliff, Q)
    print(f"\n{name}: greedy return {ret:.0f}")
    show_path(path)

# %% [markdown]
# SARSA earns more *while learning* (about -25 per episode against Q-learning's -50: Q-learning's
# exploratory steps next to the cliff are expensive), yet Q-learning's greedy path is the shorter.
# Which one is "right" depends on whether you will keep exploring when it matters.
#
# On FrozenLake, Q-learning with enough episodes gets close to the optimal policy that policy
# iteration computed from the model:

# %%
lake_cfg = TabularConfig(episodes=full_or_quick(20_000, 500), alpha=0.1, epsilon=0.1, gamma=0.99, seed=0)
Q_lake, returns_lake = train_tabular(lake_env, "q_learning", lake_cfg)
learned = success_rate(lake_env, Q_lake.argmax(1), episodes=full_or_quick(2000, 300))
print(f"Q-learning's greedy policy reaches the goal {learned:.0%} of the time (optimal: {lake_optimal:.0%})")

# %% [markdown]
# In quick mode the 500 episodes are far too few and the number above is low; at full size (20,000
# episodes) Q-learning comes close to the optimum. FrozenLake's only reward is at the goal, so for
# thousands of episodes almost every update has target 0 and the table learns nothing: one-step TD moves
# the news of the goal back by one state per visit. That slowness is what the next idea addresses.
#
# ## n-step returns: between TD and Monte Carlo
#
# One-step TD looks one reward ahead and then trusts the estimate; Monte Carlo looks all the way to the
# end and trusts nothing. The **n-step return** looks n rewards ahead and then bootstraps:
#
# $$G_t^{(n)} = r_t + \gamma r_{t+1} + \dots + \gamma^{n-1} r_{t+n-1} + \gamma^n V(s_{t+n}).$$
#
# With n = 1 this is the TD target; with n at least the episode's remaining length it is the Monte Carlo
# return. In between you trade variance (more sampled rewards) against bias (less reliance on V), and
# news of a reward travels n states back per update instead of one.
#
# The edge of the episode needs care, and it is the same care DQN needs later. Say the trajectory has
# T steps, $s_0, \dots, s_T$. Near the end the window of n rewards does not fit; it holds only the
# $m = \min(n, T - t)$ rewards that exist, and the bootstrap term becomes $\gamma^m V(s_T)$. Whether that
# term is there depends on *why* the trajectory stopped:
#
# - **terminated**: $s_T$ is a terminal state, nothing follows, so the bootstrap term is zero;
# - **truncated** (a time limit, or simply the end of the data you collected): $s_T$ is an ordinary state
#   with a future, and $\gamma^m V(s_T)$ stands in for that future.
#
# A worked example, gamma = 0.5, n = 2, rewards (1, 0, 2) and estimates $V(s_0..s_3) = (0.5, -0.5, 1, 4)$.
# At t = 0: $1 + 0.5 \cdot 0 + 0.25 \cdot V(s_2) = 1.25$. At t = 1: $0 + 0.5 \cdot 2 + 0.25 \cdot V(s_3)$,
# which is 1 if the episode terminated at $s_3$ and 2 if it was truncated there. At t = 2 the window holds
# one reward: $2 + 0.5 \cdot V(s_3)$, so 2 or 4.
#
# ### Exercise: n-step TD targets
#
# Write the loop of `n_step_targets`, which returns $G_t^{(n)}$ for every t of one trajectory. The check
# starts with the worked example's first target, then compares with a direct implementation of the
# definition for n = 1, 2, 3, 5, 8, for both a terminated and a truncated trajectory. It uses a large
# $V(s_T)$ so that bootstrapping through the terminal state shows, and it names off-by-one windows.

# %% exercise curriculum.solutions.chapter2.tabular:n_step_targets difficulty=2 importance=4 minutes=15
tests.check_n_step_targets(n_step_targets)

# %% hint
# For each t, first decide how many rewards the window holds (n, or fewer near the end), then sum them with
# increasing powers of gamma starting at gamma^0, then decide whether the state where the window stops has a
# future. It has none only if that state is s_T and the trajectory terminated.

# %% hint
# With `m = min(n, T - t)` the rewards are `rewards[t : t + m]` with discounts `gamma ** k` for k = 0..m-1, and the
# bootstrap state is `values[t + m]` with discount `gamma ** m`. Skip that term exactly when
# `t + m == T and terminated`. Using `values[t + m - 1]` or summing m + 1 rewards is the classic off-by-one.

# %% hint
# ```python
# for t in range(T):
#     m = ...
#     G = ...
#     if not (...):
#         G += ...
#     targets[t] = G
# ```

# %% [markdown]
# ### n-step TD on the random walk
#
# S&B's example 7.1 is the classic place to see the trade-off: 19 states in a row, start in the middle,
# step left or right at random; leaving on the right pays +1, on the left -1. With gamma = 1 the true values
# rise linearly from -0.9 to +0.9. Below, each episode's states are updated towards their n-step targets
# (computed with V as it was at the start of the episode), and we measure the root-mean-square error of V
# over the first 10 episodes, averaged over independent runs, for several n and step sizes alpha.

# %%
TRUE_WALK_V = np.arange(1, 20) / 10 - 1  # -0.9, -0.8, ..., 0.9
WALK_ALPHAS = np.array([0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])


def n_step_td_walk_error(n: int, alpha: float, episodes: int = 10, runs: int = 50, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(runs):
        V = np.zeros(19)
        for _ in range(episodes):
            states, rewards = random_walk_episode(rng)
            targets = n_step_targets(rewards, np.append(V[states], 0.0), terminated=True, n=n, gamma=1.0)
            for s, G in zip(states, targets):
                V[s] += alpha * (G - V[s])
            errors.append(np.sqrt(np.mean((V - TRUE_WALK_V) ** 2)))
    return float(np.mean(errors))


walk_runs = full_or_quick(50, 5)
walk_errors = {f"n = {n}": [n_step_td_walk_error(n, a, runs=walk_runs) for a in WALK_ALPHAS] for n in (1, 2, 4, 8, 32)}
line(walk_errors, x=WALK_ALPHAS, title="n-step TD on the 19-state random walk (S&B fig. 7.2)", xlabel="alpha",
     ylabel="RMS error over the first 10 episodes")
best = min(((name, a, e) for name, errs in walk_errors.items() for a, e in zip(WALK_ALPHAS, errs)), key=lambda x: x[2])
print(f"lowest error {best[2]:.3f} with {best[0]}, alpha = {best[1]}")

# %% [markdown]
# What you should see: U-shaped curves (too small a step size learns slowly, too large a one chases the
# noise), with the large-n curves bottoming out at small alpha because their targets are noisy, and the
# n = 1 curve reaching its lowest error at a much larger alpha (around 0.8 here) because its targets are
# smooth but slow. The best errors come
# from an intermediate n, which the printed line names. (Quick mode averages only 5 runs, so the curves
# are ragged.) If every curve sits near 0.55, the error of V = 0 everywhere, the updates are not reaching V.
#
# n-step targets are how most modern value-based agents learn (Rainbow uses n = 3, and PPO's advantage
# estimator in section 2.3 is a weighted average over all n). DQN below keeps n = 1, which makes its
# replay buffer simpler: a stored transition's target never depends on what the behaviour policy did next.

# %% [markdown]
# ## Part 3: DQN
#
# A table needs one entry per state. CartPole's state is four real numbers, so we replace the table
# with a network Q(s, ·; theta) and regress it onto the Q-learning target. Done naively this
# diverges; DQN adds two stabilisers:
#
# - a **replay buffer**: store transitions and train on random minibatches of them, which breaks the
#   correlation between consecutive samples and reuses each one many times;
# - a **target network**: compute targets with a copy of the network that is updated only every few
#   hundred steps, so the target does not chase the prediction.
#
# Why does the naive version diverge? In the table, updating Q(s, a) changed that one entry. A network
# shares its weights between all states, so a gradient step that raises Q(s, a) also raises Q(s', a') for
# similar s', which raises the target for Q(s, a), which the next step chases further. Sutton and Barto call
# the combination of function approximation, bootstrapping and off-policy data the *deadly triad*: each is
# harmless alone, together they can blow up. DQN keeps all three (it needs them) and damps the feedback loop:
# the frozen target network breaks the "raise the prediction, raise the target" cycle for a few hundred
# steps at a time, and uniform replay spreads each update over many past situations instead of the last few
# correlated frames.
#
# ![DQN's data flow: the vector env is stepped with epsilon-greedy actions from the online network; transitions (s, a, r, s', terminated) go into a replay buffer; uniform minibatches feed the online network's Q(s, a) and the target network's max over next actions; the TD loss updates only the online network, which is copied into the target network every target_update_frequency steps](figures/2.2_dqn_data_flow.svg)
#
# Read the figure as two loops running at different speeds. The top loop is *acting*: every step, the
# online network picks actions for all sub-environments and the resulting transitions go into the buffer.
# The bottom loop is *learning*: every few steps, a minibatch is drawn from the buffer; the online network
# scores the actions that were taken, the target network scores the best next action, and the Huber loss
# between the two (with r and the terminated flag coming straight from the batch) updates the online
# weights only. The dashed arrow is the slowest loop of all: the copy into the target network. Each
# exercise below builds one box or arrow; the last one wires them together.
#
# ### Exercise: the Q-network
# An MLP from the observation to one Q-value per action. No activation after the last layer:
# Q-values are sums of rewards and can be any real number. Build `self.net` in `__init__`; the check
# looks at the layer sizes and checks that the output can be negative.

# %% exercise curriculum.solutions.chapter2.dqn:QNetwork difficulty=1 importance=3 minutes=10
dqn_tests.check_q_network(QNetwork)

# %% hint
# One `nn.Linear` per entry of `hidden_sizes`, each followed by `nn.ReLU()`, then a last `nn.Linear` to
# `n_actions` with nothing after it. With `hidden_sizes=(32, 16)` and 4 inputs the layers are
# (4, 32), (32, 16), (16, 2).

# %% hint
# Pair consecutive sizes with `zip(sizes[:-1], sizes[1:])`, where `sizes = (obs_dim, *hidden_sizes)`;
# collect the layers in a list and wrap it in `nn.Sequential(*layers)`.

# %% [markdown]
# ### The replay buffer
#
# A ring buffer of fixed capacity: once full, each new transition overwrites the oldest. Sampling
# is uniform, and all five fields of a sampled transition must come from the *same* transition (a
# classic bug is indexing them separately). We store `terminated`, and never `truncated`: a
# CartPole episode cut off at 500 steps by the time limit did not end, the pole was still up. Its
# last transition must bootstrap from the next state like any other; treating it as terminal
# teaches the network that standing upright near step 500 is worth nothing.
#
# The buffer is five parallel arrays (obs, actions, rewards, next_obs, terminated) and a write position.
# A worked example with capacity 4: after adding transitions 0..5 one at a time, slots 0..3 hold
# transitions (4, 5, 2, 3): 4 and 5 overwrote the two oldest, `pos` is 2 (transition 2 is the oldest, so it
# goes next) and `size` is 4. Why keep old data at all? Because a network trained only on the last few
# thousand steps forgets what it learned about situations the current policy has stopped visiting, such as the
# pole falling, and then starts visiting them again. `DQNConfig` keeps every CartPole transition for this
# reason.
#
# ### Exercise: storing transitions in the replay buffer
#
# Write `ReplayBuffer.add`, which stores n transitions at once (one per sub-environment). The check fills a
# buffer of capacity 10 with 7, then with 25 transitions in chunks of 3 (so some chunks wrap round the end),
# and looks at the arrays directly: which transitions survived, in which slots, and whether the five
# fields of each slot belong to the same transition.

# %% exercise curriculum.solutions.chapter2.dqn:ReplayBuffer difficulty=2 importance=4 minutes=10
dqn_tests.check_replay_buffer_add(ReplayBuffer)

# %% hint
# The n transitions go into the slots `pos, pos + 1, ...`, wrapping round to 0 at the end of the arrays;
# afterwards `pos` points at the next slot to write and `size` grows until it reaches `capacity`.

# %% hint
# `idx = (self.pos + np.arange(n)) % self.capacity` gives the slots, and numpy fancy assignment
# `self.obs[idx] = obs` writes all n rows at once (do the same for the other four arrays). Then
# `self.pos = (self.pos + n) % self.capacity` and `self.size = min(self.size + n, self.capacity)`.

# %% [markdown]
# ### Exercise: sampling a minibatch
#
# `ReplayBuffer.sample` hands its work to `sample_batch(buffer, batch_size, device)`, which you write now.
# Sampling is uniform over the *filled* slots, with replacement, and every field of a sampled transition
# must come from the same index: drawing the rewards with a second set of indices gives a batch where the
# rewards belong to other transitions, and the network then learns noise while its loss looks perfectly
# healthy. The check samples 2,000 transitions from the buffer of the previous check and tests that they
# come from the 10 stored ones in equal proportions, that the fields line up, that a half-full buffer never
# yields empty slots, that the dtypes are right (actions int64, for `gather`), and that the same seed gives
# the same batch.

# %% exercise curriculum.solutions.chapter2.dqn:sample_batch difficulty=1 importance=4 minutes=5
dqn_tests.check_sample_batch(sample_batch)

# %% hint
# One set of random indices, drawn with the buffer's own generator (so the same seed gives the same batch),
# used for all five arrays; then convert each to a tensor on `device`.

# %% hint
# `idx = buffer.rng.integers(0, buffer.size, size=batch_size)` draws only filled slots. `torch.as_tensor(x[idx],
# device=device)` keeps numpy's dtypes, so actions come out as int64 and the rest as float32. Return
# `ReplayBatch(obs, actions, rewards, next_obs, terminated)` in that order.

# %% [markdown]
# ### Exploration: epsilon-greedy with a linear schedule
# Explore a lot at first, then less: epsilon decays linearly from `start_epsilon` to `end_epsilon`
# over the first `exploration_fraction` of training, then stays there. Early on the Q-network is random and
# its greedy actions mean nothing, so random actions are as good and fill the buffer with varied data;
# later the network's greedy choice is informed and exploring costs reward. The final epsilon stays above
# zero so the agent keeps seeing the consequences of actions its greedy policy would never take; without
# that, an over-estimated action would never be tried and so never corrected.
#
# ### Exercise: the linear schedule
#
# `linear_schedule(step, start, end, duration)` returns `start` at step 0, `end` at step `duration`, a
# straight line in between, and `end` for ever after. The check tries steps before, at and after `duration`.

# %% exercise curriculum.solutions.chapter2.dqn:linear_schedule difficulty=1 importance=2 minutes=5
dqn_tests.check_linear_schedule(linear_schedule)

# %% hint
# The fraction of the way through is `step / duration`; cap it at 1 with `min(..., 1.0)` so epsilon does not
# keep falling (or go negative) past `duration`. Then interpolate: `start + (end - start) * fraction`.

# %% hint
# `end` may be smaller than `start` (as it is for epsilon), so write the interpolation with `end - start`, not
# with `abs` or a hard-coded direction; the formula then works for increasing schedules too.

# %% [markdown]
# ### Exercise: epsilon-greedy actions for a vector of environments
#
# `epsilon_greedy` picks one action per sub-environment from a batch of observations. Each sub-environment
# flips its own coin, and exploring picks uniformly among *all* actions (the greedy one included), as in
# section 2.1. The check uses a network whose greedy actions are known and counts the action frequencies.

# %% exercise curriculum.solutions.chapter2.dqn:epsilon_greedy difficulty=2 importance=3 minutes=10
dqn_tests.check_epsilon_greedy(epsilon_greedy)

# %% hint
# Compute the greedy action for every observation with one forward pass, then, independently for each row,
# replace it by a random action with probability epsilon. Everything random comes from the `rng` argument.

# %% hint
# Run the network under `torch.no_grad()` on `torch.as_tensor(obs, dtype=torch.float32)`, placed on the
# network's device (`next(q_network.parameters()).device`); `q.argmax(dim=-1).cpu().numpy()` are the greedy
# actions. `rng.random(n) < epsilon` is one coin per row, `rng.integers(0, n_actions, size=n)` one random
# action per row, and `np.where(explore, random_actions, greedy)` combines them. One coin for the whole batch
# explores in every env at once, which the frequency test catches.

# %% [markdown]
# ### The TD loss
#
# $$L(\theta) = \text{mean over the batch of } \ell\Big(Q(s, a;\theta),\; r + \gamma\,(1 - \text{terminated})\,\max_{a'} Q(s', a'; \theta^-)\Big)$$
#
# with theta^- the target network's weights and ell the squared error or the Huber loss (quadratic
# for small errors, linear for large ones, so one surprising transition can't blow up the
# gradient). The target is a constant: no gradient may flow into the target network. Pick out
# Q(s, a) of the action actually taken with `gather`.
#
# A worked example of why the Huber loss helps. Early in training the network's Q-values are near 0 while
# a target can be 5 or more. With the squared error written as $\tfrac12 \delta^2$, a TD error of 5
# contributes a gradient of 5 times the network's own gradient (`F.mse_loss` is $\delta^2$, without the
# half, which doubles these numbers); a TD error of 50, from one transition whose target the network has badly
# misjudged, contributes 50 and dominates the batch. The Huber loss is $\tfrac12 \delta^2$ for
# $|\delta| \le 1$ and $|\delta| - \tfrac12$ beyond, so its gradient is capped at 1 in size: the outlier
# still counts, but only as much as any other large error. (Mnih et al. describe this as clipping the
# error term to [-1, 1].)
#
# ### Exercise: the TD loss
#
# Write `td_loss`. The check uses two fixed linear "networks" with different weights, so using the wrong
# network, forgetting the terminal mask, or taking the max where you need the taken action all give a
# different number; it also checks where the gradients go.

# %% exercise curriculum.solutions.chapter2.dqn:td_loss difficulty=2 importance=5 minutes=15
dqn_tests.check_td_loss(td_loss)

# %% hint
# Two halves. The target: reward plus gamma times the target network's best value in the next state, with
# the bootstrap term multiplied by (1 - terminated), all computed without gradients. The prediction: the
# online network's Q-value of the action in the batch, with gradients. Then one of two regression losses.

# %% hint
# `target_network(batch.next_obs).max(dim=-1).values` is the best next value; wrap the target in
# `torch.no_grad()`. For the prediction, `q_network(batch.obs)` has shape (batch, n_actions);
# `.gather(1, batch.actions[:, None]).squeeze(1)` picks one entry per row. Finish with `F.smooth_l1_loss`
# for `"huber"` or `F.mse_loss` for `"mse"`; both average over the batch.

# %% hint
# ```python
# with torch.no_grad():
#     next_q = ...
#     target = ...
# q_taken = ...
# return F.smooth_l1_loss(q_taken, target) if loss == "huber" else F.mse_loss(q_taken, target)
# ```

# %% [markdown]
# ### Terminated or truncated, and where the reset step goes
#
# ![Top: a terminated transition s to s' whose target is r alone; middle: a truncated one whose target is r + gamma max Q(s', a'), because s' still has a future; bottom: three consecutive calls to a gymnasium 1.x vector env for one sub-env, the episode ending at step k (store it), the reset step k+1 that returns the new episode's first observation with reward 0 (skip it), and step k+2 (store it)](figures/2.2_terminated_truncated.svg)
#
# gymnasium reports two different reasons for an episode to stop, and the figure puts them side by side.
# **Terminated** means the environment reached a state with no future: CartPole's pole fell, FrozenLake's
# agent fell in a hole or reached the goal. The target is the reward alone, and the buffer stores
# `terminated = True` so that `td_loss` multiplies the bootstrap term by zero. **Truncated** means
# something outside the task stopped the episode, usually a `TimeLimit` wrapper: CartPole is cut off at 500
# steps with the pole still up. The state s' is as good a state as any other, its value is large, and the
# target must bootstrap from it. If you treat truncation as termination, the network learns that states
# near step 500 are worth about one reward, although the observation does not contain the step count; it
# cannot tell those states from identical ones at step 50, so the error leaks into every upright state. Pardo
# et al. (2018) study this effect and call the fix partial-episode bootstrapping.
#
# The same distinction appeared in the n-step targets above: a window that reaches a terminated end adds
# nothing, a window that reaches a truncated end adds $\gamma^m V(s_T)$.
#
# ### Storing vector-env steps: gymnasium 1.x autoreset
#
# `gymnasium.vector` runs several copies of the environment and steps them together. When sub-env i
# ends (terminated or truncated) on some step, that step returns its **true final observation**;
# the env is reset on the **next** `step` call, which ignores the action for sub-env i and returns
# the first observation of its new episode with reward 0. (gym 0.2x reset within the same step and
# hid the final observation in `info`; code written for it silently gets this wrong.) So:
#
# - on the step where sub-env i ends, `next_obs[i]` is the real next state: store the transition;
# - on the step after it (`autoreset[i]` is True), the "transition" jumps from one episode's end to
#   the next one's start: skip it.
#
# The bottom row of the figure shows the three calls. Storing the middle one would add a transition from
# the final state of one episode to the first state of the next, with an action that was never executed and
# reward 0; Q-learning would then pull the value of a terminal-adjacent state towards the value of a fresh
# start. The bug is quiet: CartPole still learns, just worse, which is why the check below tests it directly.
#
# ### Exercise: storing one vector-env step
#
# Write `store_vector_step`. The check steps three sub-envs at once: one terminates, one is truncated by the
# time limit, and one is only being reset. Two transitions must reach the buffer, with the right
# `terminated` flags.

# %% exercise curriculum.solutions.chapter2.dqn:store_vector_step difficulty=2 importance=4 minutes=10
dqn_tests.check_store_vector_step(store_vector_step)

# %% hint
# `autoreset[i]` tells you the previous step ended sub-env i's episode, so this step only reset it: drop
# those rows. Every other row is a real transition, the final one of an episode included. Store
# `terminated` as it is; `truncated` is not even an argument, on purpose.

# %% hint
# Build a boolean mask `keep = ~autoreset`, index every array with it (`obs[keep]`, `actions[keep]`, ...),
# call `buffer.add` once, and return `int(keep.sum())`. Skip the call when nothing is kept.

# %% [markdown]
# ### Debugging with probe environments
#
# An RL agent that doesn't learn CartPole tells you nothing about *why*. Andy Jones' probe
# environments each isolate one component; `curriculum.solutions.chapter2.probes` registers five as gymnasium
# envs (`curriculum/Probe1-v0` … `Probe5-v0`):
#
# | probe | setup | correct Q | if it fails, suspect |
# |---|---|---|---|
# | 1 | one action, obs 0, one step, reward +1 | Q = 1 | the loss / optimiser |
# | 2 | one action, obs ±1, reward = obs | Q(±1) = ±1 | the network ignores the observation |
# | 3 | one action, obs 0 then 1, reward 0 then +1 | Q(0) = gamma, Q(1) = 1 | discounting / bootstrapping |
# | 4 | two actions, obs 0, reward +1 for action 1 else -1 | Q = (-1, +1) | selecting the taken action (`gather`) |
# | 5 | two actions, obs ±1, +1 if action matches the sign | per-obs | pairing observations with actions |
#
# `probes.diagnose(train, gamma)` trains a fresh agent on each and reports the first broken
# component. Here is what it says about a Q-function that forgot the terminal mask:

# %%
bootstraps_through_the_end = probes.evaluate_q(1, lambda obs: torch.full((len(obs), 1), 1.9), gamma=0.5)
print(bootstraps_through_the_end)

# %% [markdown]
# Reading a probe report: each line is one probe, and the first failure is the one to fix, because later
# probes need the components earlier ones test. Probe 1 failing means the network cannot even learn a
# constant, so the loss, the optimiser step or the learning rate is broken. Probe 2 failing alone means the
# observation does not reach the network (a stale `obs`, or observations and rewards from different
# transitions). Probe 3 is the only one with two steps, so it alone tests gamma, the terminal mask and the
# target network; a Q(0) near 1 instead of gamma means a missing discount, values near 1/(1-gamma) mean
# bootstrapping through the end. Probes 4 and 5 test that the loss is about the action actually taken.
#
# ### The training loop
#
# Now wire the boxes of the data-flow figure together. `train_dqn` sets everything up (networks, optimiser,
# buffer, vector env) and runs `total_timesteps // num_envs` iterations; each iteration steps all sub-envs
# once, so the loop counts env steps as `step = it * num_envs`. One iteration does, in order:
#
# 1. **act**: for the first `learning_starts` env steps take random actions (the network knows nothing yet
#    and the buffer needs a full batch); afterwards take `epsilon_greedy` actions with epsilon from
#    `linear_schedule(step, ...)` over `exploration_steps` env steps;
# 2. **step and store**: step the vector env, pass the step to `store_vector_step` with the `autoreset` flags
#    of the *previous* step, then set `autoreset = terminated | truncated` and `obs = next_obs`;
# 3. **learn**: from `learning_starts` on, every `train_every` iterations, take `gradient_steps` optimiser
#    steps, each on a freshly sampled minibatch: `td_loss(..., loss=cfg.loss)`, `zero_grad`, `backward`,
#    clip the gradient norm to `cfg.max_grad_norm`, `step`;
# 4. **sync**: every `target_every` iterations, move the target network's weights towards the online
#    network's by `tau` (`tau = 1` is the hard copy of the DQN paper).
#
# The order inside one iteration matters less than you might fear (learning before or after storing the
# newest step changes one transition out of thousands), but the *frequencies* matter a great deal: the
# ratio of gradient steps to env steps and the target update period are the two hyperparameters DQN is most
# sensitive to. The lines after your code are given: they read `obs`, `loss`, `infos` and `epsilon` (keep
# those names, and set `epsilon` on every iteration: it is 1.0 during the random warm-up), record the loss,
# stop training on a NaN, and track episode returns.
#
# **The NaN guard.** A single non-finite number is enough to ruin a run: a NaN loss gives NaN gradients,
# one optimiser step turns every weight into NaN, and from then on every Q-value is NaN and `argmax` returns
# action 0 for ever. Nothing crashes; the reward curve just goes flat. So after each iteration
# `stop_if_not_finite` looks at the newest observation and the newest loss and raises `FloatingPointError`
# at the first NaN or infinity, naming which one it was: a non-finite observation points at the
# environment or a wrapper, a non-finite loss at the learning side (a learning rate that is too large, a
# NaN reward, a target computed from the wrong network).
#
# ### Exercise: the DQN training loop
#
# Write the body of the loop. The check first runs 60 iterations on Probe 2 with spies on `epsilon_greedy`,
# `store_vector_step` and `td_loss` (the ones in this notebook, looked up by name), and compares what your
# loop did with what the configuration asks for: a store every step with `obs` carried forward and the
# right `autoreset` flags, epsilon-greedy actions from `learning_starts` on with the scheduled epsilon, the
# right number of gradient steps on full batches, a target network that is neither frozen nor copied every
# step. Then it trains a small DQN on all five probes (gamma = 0.5, uniform exploration: Q-learning is
# off-policy, so it can learn the greedy values from random behaviour) and names the first probe that
# fails. Both parts together take a few seconds.

# %% exercise curriculum.solutions.chapter2.dqn:train_dqn difficulty=3 importance=5 minutes=30
dqn_tests.check_train_dqn_on_probes(train_dqn)

# %% hint
# Follow the four numbered stages above, using the functions you have written: `linear_schedule`,
# `epsilon_greedy`, `store_vector_step`, `buffer.sample`, `td_loss`. Everything the loop needs (`rng`,
# `exploration_steps`, `train_every`, `target_every`, `device`) is defined just before it.

# %% hint
# Acting: `envs.action_space.sample()` gives random actions for all sub-envs; then
# `envs.step(actions)` returns `next_obs, rewards, terminated, truncated, infos`. Learning: inside
# `if step >= cfg.learning_starts and it % train_every == 0:`, loop `cfg.gradient_steps` times over sample,
# `loss = td_loss(...)`, `optimizer.zero_grad()`, `loss.backward()`,
# `nn.utils.clip_grad_norm_(q_network.parameters(), cfg.max_grad_norm)`, `optimizer.step()`. Syncing: under
# `torch.no_grad()`, `p_target.lerp_(p, cfg.tau)` for each pair of parameters.

# %% hint
# ```python
# epsilon = linear_schedule(step, ...)
# actions = ... if step < cfg.learning_starts else ...
# next_obs, rewards, terminated, truncated, infos = envs.step(actions)
# store_vector_step(...)
# autoreset = ...
# obs = next_obs
# if step >= cfg.learning_starts and it % train_every == 0:
#     for _ in range(cfg.gradient_steps):
#         ...
# if it % target_every == 0:
#     with torch.no_grad():
#         ...
# ```

# %% [markdown]
# ### Solving CartPole-v1
#
# CartPole is "solved" at a mean return of 475 over the last 20 episodes (500 is the time limit).
# With the defaults in `DQNConfig`, `curriculum/benchmarks/dqn_cartpole.py` solves it on every seed
# from 0 to 9, between 41k and 77k environment steps (median 52k), at about 2,500 environment steps
# per second on one CPU thread. The defaults are a balance: with `learning_rate=1e-3` and everything
# else unchanged, seed 5 does not get there within 100k steps. Expect the reward curve to stay near 20
# during the random warm-up, climb to 100-200 as epsilon decays,
# often *plateau* there (the pole stays up but the cart drifts off the track: a long-horizon
# problem the value function has to learn), then climb to 500 and wobble. DQN on CartPole is famously
# seed-sensitive, and a correct loop that draws its random numbers in another order than the reference
# can need tens of thousands of steps more or fewer; try another seed, or Double DQN below, before
# suspecting your code (the probes already vouched for it). In quick mode the run below is far too short
# to solve CartPole: expect "not solved" and a mean return in the tens.

# %%
cfg = DQNConfig(seed=0, total_timesteps=full_or_quick(100_000, 3_000), stop_when_solved=False)
result = train_dqn(cfg)
tracker = result.tracker
print(f"{len(tracker)} episodes; mean return of the last 20: {tracker.mean_return(20):.1f}; "
      + (f"solved at env step {result.solved_at_step:,} ({result.solved_at_time:.0f} s)" if result.solved_at_step else "not solved"))
line({"episode return": tracker.returns}, x=tracker.steps_at_end, smooth=20, title="DQN on CartPole-v1",
     xlabel="environment step", ylabel="return")

# %% [markdown]
# ## Going further
# - **Double DQN** (van Hasselt et al., 2016): choose the next action with the online network and
#   evaluate it with the target network. One line in `td_loss`; compare the learned Q-values with the
#   actual returns to see the overestimation it removes.
# - Break something on purpose (drop the terminal mask, store `terminated | truncated`, sample buffer
#   fields independently) and watch which probe catches it.
# - n-step DQN: store n-step transitions (use your `n_step_targets` on each sub-env's recent steps) and
#   bootstrap with gamma^n. Watch for the two edges you met above: a window that crosses a terminated end,
#   and the reset step, which must never sit inside a window.
# - `Acrobot-v1` and `LunarLander-v3` with the same code.

# %% [markdown]
# ## Further reading
# - [Sutton & Barto, *Reinforcement Learning: An Introduction*, 2nd edition (2018)](http://incompleteideas.net/book/the-book-2nd.html):
#   chapter 4 (dynamic programming), chapter 6 (TD learning, with the cliff-walking example 6.6), chapter 7
#   (n-step methods and the random walk of figure 7.2) and section 11.3 (the deadly triad).
# - [Mnih et al., "Human-level control through deep reinforcement learning" (Nature, 2015), doi:10.1038/nature14236](https://doi.org/10.1038/nature14236):
#   the DQN paper; its Methods section lists the replay buffer, target network and Atari preprocessing.
# - [Mnih et al., "Playing Atari with Deep Reinforcement Learning" (2013), arXiv:1312.5602](https://arxiv.org/abs/1312.5602):
#   the workshop paper before it, with replay but no target network; comparing the two shows what the
#   target network was added for.
# - [Pardo et al., "Time Limits in Reinforcement Learning" (ICML 2018), arXiv:1712.00378](https://arxiv.org/abs/1712.00378):
#   why a time-limit cut-off must bootstrap (the truncated row of the figure above), with experiments.
# - [Gymnasium, "Autoreset Mode" of vector environments](https://gymnasium.farama.org/main/api/vector/autoreset/):
#   the next-step, same-step and disabled modes, and what each one returns on the step after an episode ends.
# - [van Hasselt, Guez & Silver, "Deep Reinforcement Learning with Double Q-learning" (2015)](https://arxiv.org/abs/1509.06461):
#   why the max in the target overestimates Q-values, and the one-line fix suggested under "Going further".
# - [Andy Jones, "Debugging RL, Without the Agonizing Pain" (2021)](https://andyljones.com/posts/rl-debugging.html):
#   the probe environments used above, and a habit of testing RL code one component at a time.
