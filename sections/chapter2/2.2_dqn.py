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
from curriculum.solutions.chapter2.dqn import DQNConfig, DQNResult, ReplayBatch
from curriculum.solutions.chapter2.tabular import (
    Model,
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
# ### Policy improvement and policy iteration
#
# Acting greedily with respect to V (one step of look-ahead) gives a policy at least as good as the
# one V came from. Alternate evaluation and improvement and you reach the optimal policy in a
# handful of iterations. On the gridworld the optimal value is minus the number of steps to the
# nearest corner.
#
# ### Exercise: greedy policy improvement
#
# Write `policy_improvement`; `policy_iteration` (in the reference module) alternates it with your
# `policy_evaluation`. The check tests the greedy action in every state, then runs policy iteration on the
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
# Without the model we can't compute expectations, but we can *sample* them. After each step
# (s, a, r, s'), move Q(s, a) toward a target:
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
# ### Exercise: the replay buffer
#
# Write `add` and `sample`. The check fills a small buffer past its capacity and checks which transitions
# survived, that sampled fields belong together, that sampling is uniform and seeded, and that asking for
# more transitions than are stored raises an error (given).

# %% exercise curriculum.solutions.chapter2.dqn:ReplayBuffer difficulty=2 importance=4 minutes=15
dqn_tests.check_replay_buffer(ReplayBuffer)

# %% hint
# `add` receives n transitions at once (one per sub-environment). They go into the slots `pos, pos + 1, ...`,
# wrapping round to 0 at the end of the arrays; afterwards `pos` points at the next free slot and `size`
# grows until it reaches `capacity`. `sample` draws one set of indices and uses it for all five arrays.

# %% hint
# `idx = (self.pos + np.arange(n)) % self.capacity` gives the slots, and numpy fancy assignment
# `self.obs[idx] = obs` writes all n rows at once. In `sample`, draw with `self.rng.integers(0, self.size,
# size=batch_size)` (only filled slots; `self.rng` so the same seed gives the same batch), index every array
# with the same `idx`, and convert with `torch.as_tensor(..., device=device)`. Keep the arrays' dtypes:
# actions must come out as int64 for `gather`.

# %% hint
# ```python
# def sample(self, batch_size, device="cpu"):
#     ...  # the size check is given
#     idx = ...
#     return ReplayBatch(*(torch.as_tensor(x[idx], device=device) for x in (...)))
# ```

# %% [markdown]
# ### Exploration: epsilon-greedy with a linear schedule
# Explore a lot at first, then less: epsilon decays linearly from `start_epsilon` to `end_epsilon`
# over the first `exploration_fraction` of training, then stays there.
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
# ### The training loop
#
# Read `train_dqn` top to bottom: it is CleanRL's `dqn.py` loop for gymnasium 1.x.
#
# ### Exercise: the DQN gradient step
#
# Write the gradient step inside the training loop. The check trains a small DQN on all five probes
# (gamma = 0.5, uniform exploration: Q-learning is off-policy, so it can learn the greedy values from random
# behaviour) and names the first probe that fails.

# %% exercise curriculum.solutions.chapter2.dqn:train_dqn difficulty=2 importance=4 minutes=10
dqn_tests.check_train_dqn_on_probes(train_dqn)

# %% hint
# A standard PyTorch step on a minibatch from the replay buffer: sample, compute your `td_loss` with the
# online and target networks, clear old gradients, backpropagate, clip the gradient norm, step the optimiser.
# The line after the fence reads `loss`, so keep that name.

# %% hint
# `buffer.sample(cfg.batch_size, device)`, then `td_loss(q_network, target_network, batch, cfg.gamma,
# cfg.loss)`. Call `optimizer.zero_grad()` before `loss.backward()`, and
# `nn.utils.clip_grad_norm_(q_network.parameters(), cfg.max_grad_norm)` between `backward` and
# `optimizer.step()`. If probe 1 fails, the optimiser step is probably missing or in the wrong place; if probe
# 3 fails, look at gamma and the terminal mask in `td_loss`.

# %% [markdown]
# ### Solving CartPole-v1
#
# CartPole is "solved" at a mean return of 475 over the last 20 episodes (500 is the time limit).
# With the defaults in `DQNConfig`, `curriculum/benchmarks/dqn_cartpole.py` measured 52k, 38k and 58k environment
# steps to solve on seeds 0, 1 and 2 (with epsilon decaying over 20% of training instead of 10%,
# seed 2 sat on a plateau near 100 until 95k steps). Expect the reward curve to stay near 20
# during the random warm-up, climb to 100-200 as epsilon decays,
# often *plateau* there (the pole stays up but the cart drifts off the track: a long-horizon
# problem the value function has to learn), then climb to 500 and wobble. DQN on CartPole is famously
# seed-sensitive; try another seed, or Double DQN below, before suspecting your code (the probes
# already vouched for it).

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
# - `Acrobot-v1` and `LunarLander-v3` with the same code.

# %% [markdown]
# ## Further reading
# - [Sutton & Barto, *Reinforcement Learning: An Introduction*, 2nd edition (2018)](http://incompleteideas.net/book/the-book-2nd.html):
#   chapter 4 (dynamic programming) and chapter 6 (TD learning, with the cliff-walking example 6.6).
# - [Mnih et al., "Human-level control through deep reinforcement learning" (Nature, 2015)](https://www.nature.com/articles/nature14236):
#   the DQN paper; its Methods section lists the replay buffer, target network and Atari preprocessing.
# - [van Hasselt, Guez & Silver, "Deep Reinforcement Learning with Double Q-learning" (2015)](https://arxiv.org/abs/1509.06461):
#   why the max in the target overestimates Q-values, and the one-line fix suggested under "Going further".
# - [Andy Jones, "Debugging RL, Without the Agonizing Pain" (2021)](https://andyljones.com/posts/rl-debugging.html):
#   the probe environments used above, and a habit of testing RL code one component at a time.
