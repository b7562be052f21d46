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
from curriculum.utils.rl import EpisodeTracker, make_vec_env, seed_everything

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

# %% exercise curriculum.solutions.chapter2.ppo:Agent
tests.check_agent(Agent)

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

# %% exercise curriculum.solutions.chapter2.ppo:compute_advantages
tests.check_compute_advantages(compute_advantages)

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

# %% exercise curriculum.solutions.chapter2.ppo:policy_loss
tests.check_policy_loss(policy_loss)

# %% [markdown]
# ## The value loss and the diagnostics
#
# The critic regresses on the GAE returns. CleanRL also clips the *value* the same way (the new value
# may move at most $\epsilon$ from the old one before the loss stops pulling), taking the pessimistic max
# of the clipped and unclipped squared errors. The evidence that this helps is mixed; it is on by default
# because the original implementation did it.
#
# Two numbers tell you whether an update was healthy:
# - **approx KL** between the old and new policies, with the estimator $\mathbb{E}[(r - 1) - \log r]$
#   (unbiased and never negative, unlike $\mathbb{E}[-\log r]$). Above ~0.02 the updates are large.
# - **clip fraction**: how often the ratio left $[1-\epsilon, 1+\epsilon]$. Near 0: the clip does nothing
#   (the learning rate could be larger); above ~0.3: the policy is trying to move too far.

# %% exercise curriculum.solutions.chapter2.ppo:value_loss
tests.check_value_loss(value_loss)

# %% exercise curriculum.solutions.chapter2.ppo:kl_and_clipfrac
tests.check_kl_and_clipfrac(kl_and_clipfrac)

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

# %% exercise curriculum.solutions.chapter2.ppo:ppo_update
tests.check_ppo_update(ppo_update)

# %% [markdown]
# ## The training loop, and the probe environments
#
# `train_ppo` puts it together: reset, then per iteration anneal the learning rate linearly to 0,
# collect a rollout, compute advantages, update, log. Your one line to write is the annealing.
#
# The check then trains your agent on section 2.2's five **probe environments**, each small enough to
# fail for one reason only: a constant reward (the value loss), an observation-dependent reward (does the
# network read the obs?), a two-step episode (discounting and bootstrapping), a reward that depends on
# the action (log-prob indexing, the sign of the policy loss) and one that depends on both (are
# observations and actions aligned in your batch?). The first failure names the broken component.

# %% exercise curriculum.solutions.chapter2.ppo:train_ppo
tests.check_train_ppo(train_ppo)

# %% [markdown]
# ## CartPole-v1
#
# Now the real thing: balance a pole for 500 steps. We log losses, KL and returns to Weights & Biases
# (offline unless you have configured a key; `wandb sync` uploads later). At CI size this is a short
# run; the full run reaches a mean return of 475+ within ~50k steps (see `curriculum/benchmarks/ppo_cartpole.py`).

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
# At full size (`PPOArgs.atari()`: 10M steps, a few hours on one GPU) Breakout reaches a return of about
# 400. In CI we only run a few updates to check that the pipeline works end to end.

# %%
atari_args = PPOArgs.atari(total_timesteps=full_or_quick(10_000_000, 64), num_envs=full_or_quick(8, 2), num_steps=full_or_quick(128, 16),
                           update_epochs=full_or_quick(4, 1))
with wandb_run("ppo-atari", atari_args, name="breakout") as run:
    atari_result = train_ppo(atari_args, run=run, device=utils.get_device())
print(f"{atari_result.env_steps} steps, {len(atari_result.tracker)} finished games, "
      f"mean return {atari_result.tracker.mean_return(20):.1f}")
if len(atari_result.tracker):
    line({"game score": atari_result.tracker.returns}, x=atari_result.tracker.steps_at_end, smooth=20,
         title="PPO on Breakout", xlabel="environment steps", ylabel="score")
