# %% [markdown]
# # 2.3 Proximal Policy Optimisation
#
# PPO (Schulman et al., 2017) is the workhorse of deep RL, and the algorithm behind RLHF (section 2.4).
# The idea fits in one line: improve the policy with a policy-gradient step, but do not let any
# update move the policy far from the one that collected the data. The practice is a list of
# implementation details, each small, that together decide whether it learns at all. We follow
# [CleanRL's `ppo.py`](https://github.com/vwxyzjn/cleanrl/blob/master/cleanrl/ppo.py) and Huang et al.'s
# [37 implementation details of PPO](https://iclr-blog-track.github.io/2022/03/25/ppo-implementation-details/):
# orthogonal initialisation, generalised advantage estimation (GAE), advantage normalisation, the
# clipped surrogate objective, a clipped value loss, an entropy bonus, minibatch epochs, learning-rate
# annealing, gradient clipping, and the approx-KL and clip-fraction diagnostics that tell you whether it
# is working.
#
# You will
# 1. write the actor-critic agent;
# 2. compute advantages with GAE, getting *terminated* vs *truncated* episodes right;
# 3. write the three loss terms and the diagnostics;
# 4. write the update (epochs of shuffled minibatches) and debug the whole agent on section 2.2's
#    probe environments;
# 5. solve CartPole-v1, log to Weights & Biases and plot the reward curve;
# 6. run the same code on Atari (on a GPU, at full size).
#
# The reference is `curriculum/solutions/chapter2/ppo.py`, one file, read top to bottom; diff yours against it.

# %% setup
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.distributions import Categorical
from tqdm.auto import tqdm

from curriculum import utils
from curriculum.solutions.chapter2 import atari
from curriculum.solutions.chapter2.ppo import (
    Batch,
    PPOArgs,
    TrainResult,
    collect_rollout,
    explained_variance,
    layer_init,
    make_envs,
    nature_cnn,
)
from curriculum.checks.chapter2 import ppo as tests
from curriculum.utils import full_or_quick
from curriculum.utils.logging import wandb_run
from curriculum.utils.plotting import image_grid, line
from curriculum.utils.rl import EpisodeTracker, make_vec_env, require_finite, seed_everything

device = torch.device("cpu")  # CartPole's tiny MLPs are faster on the CPU; Atari below uses utils.get_device()
seed_everything(0)

# %% [markdown]
# ## The hyperparameters
#
# One dataclass, CleanRL-style, with defaults that solve CartPole-v1 in well under 100k steps (they are
# RL-Zoo's tuned values: 8 envs x 32 steps per rollout, 20 epochs on each batch of 256, gamma 0.98,
# lambda 0.8). `PPOArgs.atari()` gives CleanRL's Atari settings.

# %%
args = PPOArgs()
print(args)
print(f"batch size {args.batch_size}, {args.num_iterations} iterations")

# %% [markdown]
# ## The agent
#
# An **actor** maps an observation to logits over actions (a `Categorical` policy) and a **critic**
# maps it to a scalar value estimate. For CartPole they are two separate MLPs
# (4 -> 64 -> 64 -> out, tanh), since sharing a body lets the value loss's large gradients disturb the
# policy. Initialisation matters: orthogonal weights (`layer_init`, gain sqrt 2 by default), gain 0.01 on
# the actor's output (the first policy is nearly uniform, so it explores evenly) and gain 1 on the critic's.
#
# `get_action_and_value(obs, action=None)` does everything the rollout and the update need in one
# forward pass: it samples an action (or evaluates the given one), and returns its log-probability,
# the policy's entropy and the value.
#
# ### Exercise: the actor-critic agent
#
# Fill in the two fenced parts: the MLPs in `__init__` (the Atari branch above them is given) and
# `get_action_and_value`. The check looks at the networks' structure and the gains of their last layers,
# compares the four outputs with a `Categorical` built from your actor, and checks that actions are sampled,
# not taken greedily.

# %% exercise curriculum.solutions.chapter2.ppo:Agent difficulty=2 importance=4 minutes=15
tests.check_agent(Agent)

# %% hint
# Build two `nn.Sequential`s of the same shape, obs_dim -> hidden -> hidden -> out, with `nn.Tanh()`
# between layers and every `nn.Linear` wrapped in `layer_init`. They differ only in the output size
# (n_actions logits, 1 value) and the gain of the last layer. In `get_action_and_value`, the actor's output
# is a set of logits: wrap it in a distribution, which gives you sampling, log-probabilities and entropy.

# %% hint
# `layer_init(nn.Linear(hidden, n_actions), std=0.01)` and `layer_init(nn.Linear(hidden, 1), std=1.0)`; the
# other layers keep the default gain sqrt(2). Call `self.features(obs)` first (it converts to float, and for
# Atari runs the CNN), then `Categorical(logits=self.actor(x))`. Sample only when `action is None`, otherwise
# keep the given action: the update re-scores the rollout's actions with the new policy. The value is
# `self.critic(x).squeeze(-1)`, one number per observation.

# %% hint
# ```python
# x = self.features(obs)
# dist = Categorical(logits=...)
# if action is None:
#     action = ...
# return action, dist.log_prob(action), ..., ...
# ```

# %% [markdown]
# ## Rollouts with gymnasium 1.x vector environments
#
# PPO collects `num_steps` steps from each of `num_envs` environments, then learns from that batch.
# gymnasium 1.x vector envs **autoreset on the next step**: when sub-env *i* ends an episode at step t,
# step t returns the episode's *true final observation*; step t + 1 ignores the action for env *i*,
# resets it, and returns the first observation of the new episode with reward 0. So the row of the
# rollout after an episode end is not a real transition: `collect_rollout` marks it `valid = False`,
# and the update leaves it out. Let's see one:

# %%
envs = make_vec_env("CartPole-v1", num_envs=2, seed=0)
obs, _ = envs.reset(seed=0)
agent = Agent(envs.single_observation_space.shape, 2)
rollout = collect_rollout(agent, envs, torch.as_tensor(obs), torch.zeros(2, dtype=torch.bool), num_steps=60)
t, env = map(int, torch.nonzero(rollout.terminated | rollout.truncated)[0])
print(f"env {env} ended an episode at step {t} (terminated={bool(rollout.terminated[t, env])})")
print(f"row {t}: valid={bool(rollout.valid[t, env])}, obs={rollout.obs[t, env].numpy().round(2)}")
print(f"row {t + 1}: valid={bool(rollout.valid[t + 1, env])}, obs={rollout.obs[t + 1, env].numpy().round(2)}  <- final observation")
print(f"row {t + 2}: valid={bool(rollout.valid[t + 2, env])}, obs={rollout.obs[t + 2, env].numpy().round(2)}  <- new episode")
envs.close()

# %% [markdown]
# ## Generalised advantage estimation
#
# The policy gradient wants the **advantage** A(s, a): how much better action a was than the policy's
# average from s. One-step TD errors, $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$, are low-variance but
# biased by the critic; summing rewards to the end of the episode is unbiased but noisy. GAE mixes them:
#
# $$A_t = \sum_k (\gamma\lambda)^k \delta_{t+k} \quad\Longleftrightarrow\quad A_t = \delta_t + \gamma\lambda A_{t+1},$$
#
# computed backwards over the rollout. Two ways an episode can end, two different rules:
#
# - **terminated** (the pole fell): there is no future, so $\delta_t = r_t - V(s_t)$. Bootstrapping here
#   teaches the critic that falling is worth as much as standing.
# - **truncated** (the 500-step time limit): the state still has a future; the episode was just cut.
#   Bootstrap from the final observation's value, which is row t + 1 of the rollout (next-step autoreset
#   puts it there). Treating a time-out as a terminal state makes late states look worse than they are.
#
# Either way the recursion must not sum TD errors across the boundary into the next episode:
# multiply $A_{t+1}$ by $(1 - \text{done}_t)$.
#
# The returns the critic regresses on are then `advantages + values`.
#
# ### Exercise: generalised advantage estimation
#
# Write `compute_advantages`. The check first runs two small rollouts worked out by hand (one with no episode
# end; one where env 0 terminates and env 1 is truncated), then random rollouts with many episode ends for lambda = 0, 0.95 and 1, against a slow
# reference that sums the TD errors of each episode separately. When your answer matches a known mistake
# (bootstrapping through a termination, not bootstrapping after a truncation, leaking across episodes) it
# says which one.

# %% exercise curriculum.solutions.chapter2.ppo:compute_advantages difficulty=4 importance=5 minutes=30
tests.check_compute_advantages(compute_advantages)

# %% hint
# Do it in two passes. First all the one-step TD errors at once: each row needs V of the *next* row, so
# shift `values` up by one and put `next_value` in the last place. Then walk backwards from the last step,
# carrying the running advantage A_{t+1}. Two different masks: `terminated` switches off the bootstrap in
# delta, `terminated | truncated` resets the running sum.

# %% hint
# `next_values = torch.cat([values[1:], next_value[None]])` has shape (step, env). With the masks as floats,
# `deltas = rewards + gamma * next_values * (1 - terminated) - values`. Keep `last` as a tensor of shape
# (env,) starting at zero, and loop `for t in reversed(range(num_steps))`, updating all envs at once with
# `gamma * gae_lambda * (1 - done[t]) * last`. Convert the boolean tensors with `.float()` before doing
# arithmetic with them.

# %% hint
# ```python
# next_values = ...
# not_terminated = 1.0 - terminated.float()
# not_done = 1.0 - (terminated | truncated).float()
# deltas = ...
# advantages = torch.zeros_like(rewards)
# last = torch.zeros_like(next_value)
# for t in reversed(range(rewards.shape[0])):
#     last = ...
#     advantages[t] = last
# return advantages
# ```

# %% [markdown]
# ## The clipped surrogate objective
#
# With $r_t(\theta) = \pi_\theta(a_t|s_t) / \pi_{\text{old}}(a_t|s_t)$, PPO maximises
#
# $$L^{CLIP} = \mathbb{E}_t\left[\min\left(r_t A_t,\ \text{clip}(r_t, 1-\epsilon, 1+\epsilon) A_t\right)\right].$$
#
# The min makes it a pessimistic bound: once the ratio has moved more than $\epsilon$ in the direction
# the advantage favours, the gradient vanishes, so several epochs on one batch cannot run the policy
# away from the data. As a loss we minimise the negation: the **max** of $-A r$ and $-A\,\text{clip}(r)$.
# The advantages are normalised per minibatch first (zero mean, unit std), so the step size does not
# depend on the reward scale.
#
# ### Exercise: the clipped policy loss
#
# Write `policy_loss`. The check compares it with an independent formula, with and without advantage
# normalisation, and recognises the usual slips: min instead of max, a flipped sign, a missing clip, a
# missing or unwanted normalisation. It also checks that the gradient reaches `new_logprob`.

# %% exercise curriculum.solutions.chapter2.ppo:policy_loss difficulty=3 importance=5 minutes=15
tests.check_policy_loss(policy_loss)

# %% hint
# The ratio of probabilities is the exponential of the difference of log-probabilities. Normalise the
# advantages (only if `norm_adv`) before using them. As a loss, the pessimistic bound becomes the *larger*
# of the two per-sample losses, then the mean over the batch.

# %% hint
# `ratio = (new_logprob - old_logprob).exp()`; normalise with `(adv - adv.mean()) / (adv.std() + 1e-8)`;
# clip with `torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)`; combine with `torch.max(unclipped, clipped)`
# elementwise, then `.mean()`. Don't detach anything: `old_logprob` is already a constant from the rollout.

# %% [markdown]
# ## The value loss and the diagnostics
#
# The critic regresses on the GAE returns. CleanRL also clips the *value* the same way (the new value
# may move at most $\epsilon$ from the old one before the loss stops pulling), taking the pessimistic max
# of the clipped and unclipped squared errors. The evidence that this helps is mixed; it is on by default
# because the original implementation did it.
#
# ### Exercise: the clipped value loss
#
# Write `value_loss`. The check compares it with the formula for both values of `clip_vloss` and names the
# common slips: a missing factor 0.5, min instead of max, clipping around the returns instead of the old
# values.

# %% exercise curriculum.solutions.chapter2.ppo:value_loss difficulty=2 importance=3 minutes=10
tests.check_value_loss(value_loss)

# %% hint
# Without clipping it is half the mean squared error between the new values and the returns. With clipping,
# build a second prediction that is the new value held within `clip_coef` of the *old* value, square its
# error too, and keep the larger of the two errors for each sample before averaging.

# %% hint
# `v_clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)`; then
# `0.5 * torch.max((new_values - returns) ** 2, (v_clipped - returns) ** 2).mean()`. Return early with the
# plain loss when `clip_vloss` is False.

# %% [markdown]
# ### Exercise: approx KL and clip fraction
#
# Two numbers tell you whether an update was healthy:
# - **approx KL** between the old and new policies, with the estimator $\mathbb{E}[(r - 1) - \log r]$,
#   where $r = \pi_\text{new}(a|s) / \pi_\text{old}(a|s)$ for actions sampled from the old policy.
#   The naive $\mathbb{E}[-\log r]$ is unbiased as well, but single samples of it are often
#   negative and swing widely. Adding $r - 1$, whose expectation under the old policy is exactly
#   zero, keeps the estimate unbiased while making every sample non-negative ($x - 1 \ge \log x$)
#   and cutting its variance when the policies are close. Above ~0.02 the updates are large.
# - **clip fraction**: how often the ratio left $[1-\epsilon, 1+\epsilon]$. Near 0: the clip does nothing
#   (the learning rate could be larger); above ~0.3: the policy is trying to move too far.
#
# Write `kl_and_clipfrac`; it returns two Python floats. The check uses log-ratios spread evenly over
# [-0.5, 0.5], where testing the log-ratio instead of the ratio against the clip range gives a visibly
# different fraction.

# %% exercise curriculum.solutions.chapter2.ppo:kl_and_clipfrac difficulty=2 importance=3 minutes=10
tests.check_kl_and_clipfrac(kl_and_clipfrac)

# %% hint
# Both are averages over the batch of simple functions of the log-ratio `new_logprob - old_logprob`. They
# are diagnostics, so compute them without gradients and hand back plain numbers.

# %% hint
# With `logratio = new_logprob - old_logprob` and `ratio = logratio.exp()`: the KL estimate is
# `((ratio - 1) - logratio).mean()`, the clip fraction `((ratio - 1).abs() > clip_coef).float().mean()`.
# Wrap them in `torch.no_grad()` and return `.item()` of each.

# %% [markdown]
# ## The update
#
# Each rollout gives a batch (`Batch.from_rollout` drops the invalid autoreset rows and adds
# `returns = advantages + values`). PPO reuses it for `update_epochs` passes, each over shuffled
# minibatches:
#
# `loss = policy_loss - ent_coef * entropy + vf_coef * value_loss`
#
# then backward, **clip the gradient norm** to `max_grad_norm` (one bad minibatch cannot wreck the
# network), and step. If `target_kl` is set and an epoch's approx KL exceeds it, stop early.
#
# ### Exercise: the PPO update
#
# Write the body of `ppo_update`. The check counts optimiser steps and minibatch sizes, measures the gradient
# norm after clipping, and runs small updates that must make a rewarded action more likely, raise the entropy
# when only the entropy bonus is on, pull the critic towards the returns, and stop early on `target_kl`.

# %% exercise curriculum.solutions.chapter2.ppo:ppo_update difficulty=3 importance=5 minutes=20
tests.check_ppo_update(ppo_update)

# %% hint
# Two nested loops: epochs outside, minibatches inside. Each epoch shuffles the indices 0..n-1 afresh and
# cuts them into `num_minibatches` pieces, so every sample is used once per epoch. For each piece,
# re-evaluate the *stored* actions under the current policy, build the three-term loss from your
# `policy_loss` and `value_loss`, and take one optimiser step. Check `target_kl` once per epoch, after its
# last minibatch.

# %% hint
# `torch.randperm(n).tensor_split(args.num_minibatches)` gives the index pieces; index every field of `batch`
# with the same `mb`. `agent.get_action_and_value(batch.obs[mb], batch.actions[mb])` returns the new
# log-probs, entropy and values. The entropy bonus is *subtracted*:
# `loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss`. Then `optimizer.zero_grad()`,
# `loss.backward()`, `nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)`, `optimizer.step()`.
# Fill `stats` with the keys listed in the docstring (`.item()` of each loss).

# %% hint
# ```python
# for _ in range(args.update_epochs):
#     for mb in ...:
#         _, new_logprob, entropy, new_value = agent.get_action_and_value(...)
#         pg_loss = policy_loss(...)
#         v_loss = value_loss(...)
#         loss = ...
#         ...  # zero_grad, backward, clip, step
#         approx_kl, clipfrac = kl_and_clipfrac(new_logprob, batch.logprobs[mb], args.clip_coef)
#     stats = dict(policy_loss=..., value_loss=..., entropy=..., approx_kl=approx_kl, clipfrac=clipfrac)
#     if args.target_kl is not None and approx_kl > args.target_kl:
#         break
# ```

# %% [markdown]
# ## The training loop, and the probe environments
#
# `train_ppo` puts it together: reset, then per iteration anneal the learning rate linearly to 0,
# collect a rollout, compute advantages, update, log.
#
# ### Exercise: learning-rate annealing, and the probes
#
# Your one line to write is the annealing. The check first compares the learning rate at every iteration with
# the linear schedule, then trains your whole agent on section 2.2's five **probe environments**, each small
# enough to fail for one reason only: a constant reward (the value loss), an observation-dependent reward
# (does the network read the obs?), a two-step episode (discounting and bootstrapping), a reward that depends
# on the action (log-prob indexing, the sign of the policy loss) and one that depends on both (are
# observations and actions aligned in your batch?). The first failure names the broken component, which may
# be in an earlier exercise.

# %% exercise curriculum.solutions.chapter2.ppo:train_ppo difficulty=1 importance=3 minutes=10
tests.check_train_ppo(train_ppo)

# %% hint
# At the first iteration the learning rate is `args.learning_rate`; it falls by the same amount every
# iteration and would reach 0 one step after the last iteration. Only anneal when `args.anneal_lr` is set.

# %% hint
# Set it on the optimiser directly: `optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - iteration
# / args.num_iterations)`. `iteration` starts at 0. If the schedule is right but a probe fails, go back to the
# exercise the failure message points at.

# %% [markdown]
# ## CartPole-v1
#
# Now the real thing: balance a pole for 500 steps. We log losses, KL and returns to Weights & Biases
# (offline unless you have configured a key; `wandb sync` uploads later). In quick mode this is a short
# run that will not solve the task; at the default full size (100k steps) the agent reaches a mean return of
# 475+ within ~50k steps (see `curriculum/benchmarks/ppo_cartpole.py`).

# %%
args = PPOArgs(seed=1, total_timesteps=full_or_quick(100_000, 6_144))
with wandb_run("ppo-cartpole", args, name=f"cartpole-seed{args.seed}") as run:
    result = train_ppo(args, run=run)
print(f"{result.env_steps} steps in {result.seconds:.0f}s; mean return of the last 20 episodes: "
      f"{result.tracker.mean_return(20):.1f}")

# %%
line({"episode return": result.tracker.returns}, x=result.tracker.steps_at_end, smooth=10,
     title="PPO on CartPole-v1", xlabel="environment steps", ylabel="return")
line({k: [row[k] for row in result.history] for k in ("approx_kl", "clipfrac", "explained_variance")},
     title="Update diagnostics per iteration", xlabel="iteration")

# %% [markdown]
# Read the diagnostics together. Approx KL should stay around 0.005-0.02 and the clip fraction below
# ~0.2; explained variance should climb toward 1 as the critic learns (it dips whenever the policy
# improves, because the returns change). A KL that grows steadily means the learning rate is too high;
# the annealing brings both down at the end.
#
# **Try it:** set `gae_lambda=1.0` or `0.0`, `norm_adv=False`, `update_epochs=1`, or make your GAE
# bootstrap through terminated states, and compare the curves. Which details matter most on CartPole?

# %% [markdown]
# ## Atari
#
# The same algorithm runs Atari unchanged: only the agent's body (a Nature CNN over four stacked
# 84x84 grayscale frames) and the environment wrappers differ. The wrappers (`curriculum/solutions/chapter2/atari.py`)
# are the standard stack: no-op starts, a frame skip of 4 with max-pooling over the last two frames,
# grayscale, resize to 84x84, losing a life ends a training episode (but not the game), FIRE on reset,
# rewards clipped to their sign, and a stack of 4 frames. Episode statistics are recorded *before* the
# wrappers, so the returns you see are the real game's score.

# %%
env = atari.make_atari_env("ALE/Breakout-v5")
obs, _ = env.reset(seed=0)
print("observation", obs.shape, obs.dtype, "actions", env.unwrapped.get_action_meanings())
image_grid(np.asarray(obs), nrow=4, value_range=(0, 255),
                          titles=[f"frame t-{3 - i}" for i in range(4)])
env.close()

# %% [markdown]
# ### Training on Breakout (opt-in)
#
# The full run (`PPOArgs.atari()`: 10M environment steps) is long, so the next cell does **not** start it
# unless you set `RUN_ATARI = True` in it. With these settings Breakout reaches a score of about 400.
#
# How long it takes, as estimates extrapolated from short runs of this code (not measured over a full run):
# - **CPU only**: on two cores of an AMD EPYC server CPU, training ran at about 320 environment steps per
#   second, so 10M steps take roughly 9 hours. The convolutional network's updates dominate; more cores help.
# - **With a GPU**: the updates become cheap and the Atari emulator, which always runs on the CPU, sets the
#   pace. The 8 environments step at about 1,600 steps per second on one such core, so expect 2-3 hours.
#
# Start it when you can leave it running, and watch the score in Weights & Biases.
#
# With `RUN_ATARI = False` the cell skips training, except in quick mode, where it runs a few tiny updates
# so you can see that the whole pipeline (wrappers, CNN agent, device placement, logging) works end to end.

# %%
RUN_ATARI = False  # set True to train for 10M steps: about 2-3 hours with a GPU, 9+ hours on a CPU

if RUN_ATARI or utils.QUICK:
    atari_args = PPOArgs.atari() if RUN_ATARI else PPOArgs.atari(total_timesteps=64, num_envs=2, num_steps=16, update_epochs=1)
    with wandb_run("ppo-atari", atari_args, name="breakout") as run:
        atari_result = train_ppo(atari_args, run=run, device=utils.get_device())
    print(f"{atari_result.env_steps} steps, {len(atari_result.tracker)} finished games, "
          f"mean return {atari_result.tracker.mean_return(20):.1f}")
    if len(atari_result.tracker):
        line({"game score": atari_result.tracker.returns}, x=atari_result.tracker.steps_at_end, smooth=20,
             title="PPO on Breakout", xlabel="environment steps", ylabel="score")
else:
    print("Skipping the Atari run: set RUN_ATARI = True in this cell to train PPO on Breakout.")

# %% [markdown]
# ## Further reading
# - [Schulman, Wolski, Dhariwal, Radford & Klimov, "Proximal Policy Optimization Algorithms" (2017)](https://arxiv.org/abs/1707.06347):
#   the clipped objective (section 3), the KL-penalty alternative (section 4) and the combined loss with a
#   value term and an entropy bonus (section 5).
# - [Schulman, Moritz, Levine, Jordan & Abbeel, "High-Dimensional Continuous Control Using Generalized Advantage Estimation" (2015)](https://arxiv.org/abs/1506.02438):
#   where GAE comes from, and how lambda trades bias against variance.
# - [Huang, Dossa, Raffin, Kanervisto & Wang, "The 37 Implementation Details of Proximal Policy Optimization" (ICLR blog track, 2022)](https://iclr-blog-track.github.io/2022/03/25/ppo-implementation-details/):
#   every detail this section's `ppo.py` implements, with CleanRL code for each, plus the Atari wrappers.
# - [Andrychowicz et al., "What Matters In On-Policy Reinforcement Learning? A Large-Scale Empirical Study" (2020)](https://arxiv.org/abs/2006.05990):
#   which of those details actually matter, measured over 250,000 training runs.
# - [John Schulman, "Approximating KL Divergence" (2020)](http://joschu.net/blog/kl-approx.html):
#   both -log r and (r - 1) - log r are unbiased; why the second is preferred (lower variance,
#   never negative).
