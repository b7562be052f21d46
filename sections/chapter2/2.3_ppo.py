# %% [markdown]
# # 2.3 Policy gradients and Proximal Policy Optimisation
#
# PPO (Schulman et al., 2017) is the workhorse of deep RL, and the algorithm behind RLHF (section 2.4).
# The idea fits in one line: improve the policy with a policy-gradient step, but do not let any
# update move the policy far from the one that collected the data. Every word of that line leans on
# the *policy gradient*, so this section starts there, with the plainest policy-gradient algorithm,
# REINFORCE (Williams, 1992): you derive the gradient, implement it, watch it learn CartPole, and see
# why its noise is the problem every later trick (baselines, advantages, GAE, clipping) attacks. PPO is
# then REINFORCE with a critic, a better advantage estimate, and a rule that lets you reuse each batch
# for many gradient steps safely.
#
# The practice of PPO is a list of implementation details, each small, that together decide whether it
# learns at all. We follow
# [CleanRL's `ppo.py`](https://github.com/vwxyzjn/cleanrl/blob/master/cleanrl/ppo.py) and Huang et al.'s
# [37 implementation details of PPO](https://iclr-blog-track.github.io/2022/03/25/ppo-implementation-details/):
# orthogonal initialisation, generalised advantage estimation (GAE), advantage normalisation, the
# clipped surrogate objective, a clipped value loss, an entropy bonus, minibatch epochs, learning-rate
# annealing, gradient clipping, and the approx-KL and clip-fraction diagnostics that tell you whether it
# is working.
#
# You will
# 1. derive the policy-gradient theorem, then write reward-to-go, the REINFORCE loss, the REINFORCE
#    training loop and a learned baseline;
# 2. write PPO's actor-critic agent and its rollout loop over gymnasium 1.x vector environments,
#    getting autoreset and *terminated* vs *truncated* episodes right;
# 3. compute advantages with GAE, write the three loss terms and the diagnostics;
# 4. write the update (epochs of shuffled minibatches) and the training loop, and debug the whole
#    agent on section 2.2's probe environments;
# 5. solve CartPole-v1, log to Weights & Biases and plot the reward curve;
# 6. write the Nature CNN and run the same code on Atari (on a GPU, at full size);
# 7. shape a sparse reward without changing which policy is optimal.
#
# The references are `curriculum/solutions/chapter2/reinforce.py` and `curriculum/solutions/chapter2/ppo.py`,
# each one file, read top to bottom; diff yours against them.

# %% setup
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.distributions import Categorical, Normal
from tqdm.auto import tqdm

from curriculum import utils
from curriculum.solutions.chapter2 import atari
from curriculum.solutions.chapter2.ppo import (
    Batch,
    PPOArgs,
    Rollout,
    TrainResult,
    explained_variance,
    layer_init,
    make_envs,
    mountain_car_potential,
)
from curriculum.solutions.chapter2.reinforce import ReinforceArgs, ReinforceResult, mlp
from curriculum.checks.chapter2 import ppo as tests
from curriculum.checks.chapter2 import reinforce as pg_tests
from curriculum.utils import full_or_quick
from curriculum.utils.logging import wandb_run
from curriculum.utils.plotting import image_grid, line
from curriculum.utils.rl import EpisodeTracker, make_vec_env, require_finite, seed_everything

device = torch.device("cpu")  # CartPole's tiny MLPs are faster on the CPU; Atari below uses utils.get_device()
seed_everything(0)

# %% [markdown]
# ## Part 1: policy gradients
#
# ### The objective, and why it is hard to differentiate
#
# A policy $\pi_\theta(a|s)$ is a network that outputs a distribution over actions. Playing one episode
# with it produces a trajectory $\tau = (s_0, a_0, r_0, s_1, a_1, r_1, \dots, s_{T-1}, a_{T-1}, r_{T-1})$,
# and we want to maximise the expected return
#
# $$J(\theta) = \mathbb{E}_{\tau \sim \pi_\theta}\left[R(\tau)\right], \qquad R(\tau) = \sum_{t=0}^{T-1} \gamma^t r_t .$$
#
# In supervised learning the parameters sit inside the thing being averaged, so you differentiate the
# loss and average. Here they sit in the *distribution* the expectation is taken over: the environment
# is a black box (you cannot backpropagate through CartPole's physics), and the sampled actions are
# discrete. DQN (section 2.2) sidestepped this by learning values and acting greedily; policy-gradient
# methods differentiate $J$ directly.
#
# ### The log-derivative trick
#
# Write the expectation as a sum over trajectories, $J(\theta) = \sum_\tau p_\theta(\tau) R(\tau)$, and
# use $\nabla p = p \nabla \log p$:
#
# $$\nabla_\theta J = \sum_\tau R(\tau)\, \nabla_\theta p_\theta(\tau) = \sum_\tau p_\theta(\tau)\, R(\tau)\, \nabla_\theta \log p_\theta(\tau) = \mathbb{E}_{\tau \sim \pi_\theta}\left[R(\tau)\, \nabla_\theta \log p_\theta(\tau)\right].$$
#
# The gradient of an expectation has become an expectation of something we can compute for a sampled
# trajectory. And $\log p_\theta(\tau)$ is easy: the probability of a trajectory is a product of the
# start-state probability, the policy's choices and the environment's transitions,
#
# $$\log p_\theta(\tau) = \log p(s_0) + \sum_t \log \pi_\theta(a_t|s_t) + \sum_t \log P(s_{t+1}|s_t, a_t),$$
#
# and only the middle sum depends on $\theta$. The environment's dynamics drop out of the gradient: you
# never need a model of the world. So
#
# $$\nabla_\theta J = \mathbb{E}_\tau\left[\sum_t \nabla_\theta \log \pi_\theta(a_t|s_t)\; R(\tau)\right].$$
#
# Read it as weighted maximum likelihood: push up the log-probability of every action you took, in
# proportion to how good the whole episode was. A worked example: a one-step bandit with two actions,
# $\pi = (0.5, 0.5)$ from logits $(0, 0)$, rewards 1 for action 0 and 3 for action 1. The score
# $\nabla_{\text{logits}} \log \pi(a) = \text{onehot}(a) - \pi$ is $(0.5, -0.5)$ for action 0 and
# $(-0.5, 0.5)$ for action 1. The expected gradient is $0.5 \cdot 1 \cdot (0.5, -0.5) + 0.5 \cdot 3 \cdot (-0.5, 0.5) = (-0.5, 0.5)$:
# raise action 1's logit. Correct, but notice that *each sample* pushes its own action up (both
# rewards are positive); only the difference in push sizes carries the signal. That is the variance
# problem in miniature.
#
# ### Reward-to-go: causality removes noise for free
#
# An action at time $t$ cannot change rewards that were collected before it. The terms
# $\nabla \log \pi(a_t|s_t)\, r_k$ with $k < t$ have expectation zero (the same argument as the baseline
# below), so dropping them leaves the gradient unbiased and removes noise:
#
# $$\nabla_\theta J = \mathbb{E}_\tau\left[\sum_t \nabla_\theta \log \pi_\theta(a_t|s_t)\; G_t\right], \qquad G_t = \sum_{k \ge t} \gamma^{k-t} r_k .$$
#
# $G_t$, the **reward-to-go**, is the return from step $t$ onwards. (Strictly, the discounted objective
# weights step $t$'s term by a further $\gamma^t$; every practical implementation drops it and treats
# $\gamma$ as a way to say "rewards far away are less certain to be caused by this action".)
#
# ### Exercise: reward-to-go
#
# Write `reward_to_go(rewards, gamma)` for one episode. Computing each $G_t$ as its own sum costs
# $O(T^2)$; the recursion $G_t = r_t + \gamma G_{t+1}$ with $G_T = 0$, run backwards, costs $O(T)$.
# With rewards $(1, 2, 3)$ and $\gamma = 0.5$: $G_2 = 3$, $G_1 = 2 + 0.5 \cdot 3 = 3.5$,
# $G_0 = 1 + 0.5 \cdot 3.5 = 2.75$. The check uses that example, then random episodes against the
# double sum, and names the usual slips (an off-by-one that leaves out $r_t$, no discount, a discount
# counted from the episode start, the whole-episode return on every step).

# %% exercise curriculum.solutions.chapter2.reinforce:reward_to_go difficulty=1 importance=4 minutes=5
pg_tests.check_reward_to_go(reward_to_go)

# %% hint
# Start from the end of the episode, where nothing follows, and carry a running total backwards.

# %% hint
# Keep `running = 0.0`; for `t` from `len(rewards) - 1` down to 0, set `running = rewards[t] + gamma * running`
# and store it at position `t` of a `torch.zeros_like(rewards)`.

# %% [markdown]
# ### Baselines: less variance, no bias
#
# Subtract any function $b(s_t)$ of the state alone from $G_t$ and the expected gradient does not change:
#
# $$\mathbb{E}_{a \sim \pi(\cdot|s)}\left[\nabla_\theta \log \pi_\theta(a|s)\, b(s)\right] = b(s) \sum_a \pi_\theta(a|s) \frac{\nabla_\theta \pi_\theta(a|s)}{\pi_\theta(a|s)} = b(s)\, \nabla_\theta \sum_a \pi_\theta(a|s) = b(s)\, \nabla_\theta 1 = 0 .$$
#
# The variance, though, does change. In the bandit above, with $b = 2$ (the mean reward) the weights
# become $-1$ and $+1$: action 0's sample now pushes action 0 *down*, and each single sample points the
# right way. The best constant baseline is close to the expected return, and the best state-dependent
# one close to $V^\pi(s)$, the value of the state: then $G_t - V(s_t)$ says how much better this
# episode went than usual *from here*, an estimate of the **advantage** $A(s_t, a_t)$. PPO's critic is
# exactly this baseline, grown up.
#
# Two conditions make the derivation hold, and both are easy to break in code:
# - $b$ may depend on the state, never on the action taken (or on anything that saw it, such as a
#   value network already fitted to this batch's returns);
# - $b$ is a constant of the policy gradient: if gradient flows through it, the "policy loss" also
#   trains the baseline network, towards making $G - b$ large, the opposite of what a baseline is for.
#
# ![Two panels. Left: with every reward positive, each sampled action is pushed up, the arrows differ only in length. Right: after subtracting the baseline, the worse action is pushed down and the better one up, and the arrows point the right way with smaller spread.](figures/2.3_baseline.svg)
#
# ### Exercise: the REINFORCE loss
#
# Autograd differentiates losses, so we need a scalar whose gradient is minus the estimator. For a batch
# of $N$ episodes,
#
# $$\hat g = \frac{1}{N} \sum_{\text{episodes}} \sum_t \nabla_\theta \log \pi_\theta(a_t|s_t)\,\big(G_t - b(s_t)\big), \qquad L(\theta) = -\frac{1}{N} \sum_{\text{all steps}} \log \pi_\theta(a_t|s_t)\,\big(G_t - b(s_t)\big),$$
#
# with the weights $G_t - b(s_t)$ held constant. $L$ is not a loss in the usual sense: its value means
# nothing (it is not the return, and it can go up while the policy improves); only its gradient does.
# Note the normaliser. The estimator averages over *episodes*, so divide by $N$; dividing by the number
# of steps scales the gradient by a factor that changes from batch to batch as episodes get longer,
# which quietly shrinks the learning rate exactly as the agent improves.
#
# Write `reinforce_loss(logprobs, returns, num_episodes, baseline=None)`. The check computes the
# estimator independently, one `torch.autograd.grad` call per step, and compares it with the gradient
# of your loss, without and with a baseline that is a network's output. It names a flipped sign, a
# baseline that does not multiply the log-probability, a mean over steps instead of over episodes, and
# a baseline that leaks gradient into its network.

# %% exercise curriculum.solutions.chapter2.reinforce:reinforce_loss difficulty=2 importance=5 minutes=10
pg_tests.check_reinforce_loss(reinforce_loss)

# %% hint
# The loss is a weighted negative log-likelihood of the actions taken. Build the weights first, make sure
# no gradient can flow through them, then combine with the log-probabilities.

# %% hint
# `weights = returns - baseline.detach()` (or just `returns` when there is no baseline); the loss is
# `-(logprobs * weights).sum() / num_episodes`: a sum over every step of every episode, divided by the
# number of episodes.

# %% [markdown]
# ### Exercise: the REINFORCE training loop
#
# Now the whole algorithm, on CartPole-v1 (push a cart left or right to keep a pole upright; +1 per step,
# at most 500 steps). One iteration:
#
# 1. play `episodes_per_batch` complete episodes with the *current* policy: at every step, build
#    `Categorical(logits=policy(obs))`, sample an action, keep its log-probability (with its graph: the
#    gradient goes through it later), step the environment, keep the reward; an episode ends when
#    `terminated or truncated`;
# 2. turn each episode's rewards into reward-to-go (per episode, so returns never leak across episodes);
# 3. concatenate, call `reinforce_loss`, and take **one** optimiser step;
# 4. throw the episodes away. The gradient is an expectation under the policy that played them; after
#    the step that policy is gone. This is what "on-policy" means, and the waste it causes is
#    what PPO's clipped objective lets you reduce.
#
# Seed each `env.reset` from the `episode` counter the skeleton sets up (for instance
# `seed=args.seed * 100_000 + episode`, then increment it), so a run repeats exactly and no two episodes
# share a start. Record each episode's undiscounted return in `result.episode_returns`. Leave the `if value_net is not None`
# branch (the baseline) for the next exercise, but write the call: `fit_baseline(value_net, value_opt,
# torch.stack(all_obs), returns, args.baseline_epochs)` returns the baseline for `reinforce_loss`.
#
# The check trains your loop on probes 4 and 5 of section 2.2 (one-step episodes where one action is
# right: probe 5 fails alone if observations and actions are misaligned), watching the optimiser as it
# goes: the gradient applied at each update must be that update's alone (`backward()` adds to `.grad`, so
# `optimizer.zero_grad()` comes before it). Then it runs 20 iterations on CartPole and asks for a clear
# rise in the mean return.

# %% exercise curriculum.solutions.chapter2.reinforce:train_reinforce difficulty=3 importance=5 minutes=25
pg_tests.check_train_reinforce(train_reinforce)

# %% hint
# Two nested loops inside the iteration loop: episodes, and steps within an episode. Collect three
# flat lists across the whole batch (observations, log-probabilities, returns), since the loss wants
# every step of every episode at once. The rewards are per episode, because reward-to-go is.

# %% hint
# Per step: `obs_t = torch.as_tensor(obs, dtype=torch.float32)`, `dist = Categorical(logits=policy(obs_t))`,
# `action = dist.sample()`, keep `dist.log_prob(action)`, then `env.step(int(action))`. After the episode,
# `all_returns.append(reward_to_go(torch.tensor(rewards), args.gamma))`. After the batch, `torch.stack` the
# log-probs, `torch.cat` the returns, and `optimizer.zero_grad(); loss.backward(); optimizer.step()`.

# %% hint
# ```python
# all_obs, all_logprobs, all_returns = [], [], []
# for _ in range(args.episodes_per_batch):
#     obs, _ = env.reset(seed=...)
#     rewards, done = [], False
#     while not done:
#         ...
#     all_returns.append(...)
#     result.episode_returns.append(sum(rewards))
# returns = torch.cat(all_returns)
# baseline = None
# if value_net is not None:
#     baseline = fit_baseline(...)
# loss = reinforce_loss(...)
# ...
# ```

# %% [markdown]
# ### Exercise: a learned baseline
#
# The value baseline is a second network, $V_\phi(s)$, regressed on the returns:
# $\min_\phi \frac{1}{n}\sum_t (V_\phi(s_t) - G_t)^2$. Order matters. Predict the baseline for this batch
# *first*, then fit: a network already fitted to this batch's $G_t$ has seen the outcome of $a_t$, so
# $b$ would depend on the action and the no-bias argument above would fail (with a flexible network and
# many epochs, $G_t - b(s_t)$ can shrink to nothing and the policy stops learning).
#
# Write `fit_baseline(value_net, optimizer, obs, returns, epochs)`: return `value_net(obs)` as it was
# before fitting (no gradient), after taking `epochs` full-batch steps of mean squared error. The check
# counts the steps, checks the order, and fits a value network to Monte Carlo returns on probes 1-3,
# whose values are known: 1, $\pm 1$, and $(\gamma, 1)$ for the two-step probe.

# %% exercise curriculum.solutions.chapter2.reinforce:fit_baseline difficulty=2 importance=4 minutes=10
pg_tests.check_fit_baseline(fit_baseline)

# %% hint
# Two phases: a prediction under `torch.no_grad()`, then a short regression loop. The prediction you return
# must not change when the network does.

# %% hint
# `with torch.no_grad(): baseline = value_net(obs).squeeze(-1)`; then `epochs` times: the loss
# `((value_net(obs).squeeze(-1) - returns) ** 2).mean()`, `zero_grad`, `backward`, `step`. Return `baseline`.

# %% [markdown]
# ### REINFORCE on CartPole, with and without the baseline
#
# Train both for the same number of episodes from the same seed and compare the learning curves. At the
# default size (60 iterations of 8 episodes) plain REINFORCE typically climbs from about 20 to a few
# hundred steps; in quick mode the runs are short and the curves only begin to rise.

# %%
pg_iters = full_or_quick(60, 12)
pg_runs = {name: train_reinforce(ReinforceArgs(seed=0, num_iterations=pg_iters, baseline=base))
           for name, base in (("no baseline", False), ("value baseline", True))}
for name, res in pg_runs.items():
    print(f"{name:>15}: mean return of the first 20 episodes {np.mean(res.episode_returns[:20]):6.1f}, "
          f"of the last 20 {np.mean(res.episode_returns[-20:]):6.1f} ({res.seconds:.0f}s)")
line({name: res.episode_returns for name, res in pg_runs.items()}, smooth=20,
     title="REINFORCE on CartPole-v1", xlabel="episode", ylabel="return")

# %% [markdown]
# One run per setting says little about variance, which is the baseline's whole point. Measure it directly:
# take the trained policy, draw several independent batches, and compute the gradient estimate of each,
# with and without the baseline (using the trained value network). The mean of the estimates should
# agree (no bias); the spread around the mean should shrink.

# %%
def gradient_estimates(policy, value_net, n_batches, episodes=4, seed=123):
    env, grads = gym.make("CartPole-v1"), {"no baseline": [], "value baseline": []}
    for i in range(n_batches):
        obs_l, logp_l, ret_l = [], [], []
        for e in range(episodes):
            obs, _ = env.reset(seed=seed + i * episodes + e)
            rewards, done = [], False
            while not done:
                o = torch.as_tensor(obs, dtype=torch.float32)
                dist = Categorical(logits=policy(o))
                a = dist.sample()
                obs_l.append(o), logp_l.append(dist.log_prob(a))
                obs, r, term, trunc, _ = env.step(int(a))
                rewards.append(float(r))
                done = term or trunc
            ret_l.append(reward_to_go(torch.tensor(rewards), 0.99))
        logp, returns = torch.stack(logp_l), torch.cat(ret_l)
        with torch.no_grad():
            b = value_net(torch.stack(obs_l)).squeeze(-1)
        for name, base in (("no baseline", None), ("value baseline", b)):
            g = torch.autograd.grad(-reinforce_loss(logp, returns, episodes, base), list(policy.parameters()),
                                    retain_graph=True)
            grads[name].append(torch.cat([x.reshape(-1) for x in g]))
    env.close()
    return {k: torch.stack(v) for k, v in grads.items()}


est = gradient_estimates(pg_runs["value baseline"].policy, pg_runs["value baseline"].value_net, full_or_quick(30, 8))
mean_all = torch.cat(list(est.values())).mean(0)
for name, g in est.items():
    print(f"{name:>15}: |mean| {g.mean(0).norm():7.2f}   spread (RMS distance from the pooled mean) "
          f"{(g - mean_all).norm(dim=1).pow(2).mean().sqrt():7.2f}")

# %% [markdown]
# What you should see: a spread several times smaller with the baseline, for the same policy and the same
# episodes (in quick mode the policy is barely trained and the gap is smaller). The spread of an average
# over N episodes falls as $1/\sqrt{N}$, so a spread k times smaller saves a factor of $k^2$ in episodes
# for a gradient of the same quality. (With few batches the two means differ by sampling noise; they
# agree in expectation.)
#
# REINFORCE's remaining weaknesses set PPO's agenda:
# - **one gradient step per batch**: every episode is used once, then thrown away;
# - **whole-episode returns**: $G_t$ sums every future reward, so its variance grows with the horizon;
#   a critic that bootstraps (TD errors, GAE) trades a little bias for much less variance;
# - **no step-size control**: a large step can collapse the policy onto bad actions, after which it
#   only collects data that confirms them. PPO's clip is a cheap guard against that.
#
# ## Part 2: PPO

# %% [markdown]
# ### The hyperparameters
#
# One dataclass, CleanRL-style, with defaults that solve CartPole-v1 well within 100k steps (RL-Zoo's tuned
# values: 8 envs x 32 steps per rollout, 20 epochs on each batch of 256, gamma 0.98, lambda 0.8; with a
# learning rate of 2e-3 instead of RL-Zoo's 1e-3: with it, each of seeds 0 to 9 reaches a mean return of 475
# within 60k steps, as `python -m curriculum.benchmarks.ppo_cartpole` shows). `PPOArgs.pendulum()`, `PPOArgs.mujoco()` and `PPOArgs.atari()` give settings for the
# continuous-control and Atari parts below.
#
# Compare with REINFORCE: PPO also collects a batch with the current policy, but instead of one gradient
# step it takes `update_epochs` passes over the batch, and instead of the return-to-go it weights each
# log-probability by a GAE advantage from a learned critic. The rest of this part builds those pieces.

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
# ### Exercise: the actor and critic networks
#
# Write `actor_critic_mlps(obs_dim, n_actions, hidden)`, returning `(actor, critic)`: two `nn.Sequential`s
# of the same shape, obs_dim -> hidden -> hidden -> out with `nn.Tanh()` between layers, every `nn.Linear`
# wrapped in `layer_init`. They differ in the output size (n_actions logits, 1 value) and in the gain of
# the last layer. Why those gains: an orthogonal matrix with gain g has rows of norm exactly g, so with
# g = 0.01 the first logits are all within a few hundredths of 0 for any observation, a near-uniform policy
# that explores every action; with g = 1 the first values have the spread of the inputs, about the scale of
# a return after the reward normalisation many setups use. The check builds the networks with unequal sizes
# (5 inputs, 3 actions, 16 hidden units) and reads each layer's shape and row norms.

# %% exercise curriculum.solutions.chapter2.ppo:actor_critic_mlps difficulty=1 importance=3 minutes=8
tests.check_actor_critic_mlps(actor_critic_mlps)

# %% hint
# Two `nn.Sequential`s of Linear, Tanh, Linear, Tanh, Linear. Every `nn.Linear` goes through `layer_init`;
# only the last one of each gets a non-default `std`.

# %% hint
# `layer_init(nn.Linear(hidden, n_actions), std=0.01)` ends the actor and `layer_init(nn.Linear(hidden, 1),
# std=1.0)` the critic; the other layers keep the default gain sqrt(2). Build two separate networks: reusing
# one `nn.Linear` object in both shares its weights, which the check reports.

# %% [markdown]
# ### Exercise: the actor-critic agent
#
# `Agent.__init__` (given) builds its networks with your `actor_critic_mlps` (for images, with the Nature
# CNN you write later as a shared trunk). Write `get_action_and_value`. The check compares the four
# outputs with a `Categorical` built from your actor, checks that a given action is scored rather than
# replaced, and that actions are sampled, not taken greedily.

# %% exercise curriculum.solutions.chapter2.ppo:Agent difficulty=2 importance=4 minutes=10
tests.check_agent(Agent)

# %% hint
# The actor's output is a set of logits: wrap it in a distribution, which gives you sampling,
# log-probabilities and entropy. Call `self.features(obs)` first (it converts to float, and for Atari runs
# the CNN).

# %% hint
# `Categorical(logits=self.actor(x))`. Sample only when `action is None`, otherwise keep the given action:
# the update re-scores the rollout's actions with the new policy. The value is `self.critic(x).squeeze(-1)`,
# one number per observation.

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
# REINFORCE played whole episodes on one environment. PPO instead steps `num_envs` copies of the
# environment in lockstep for a fixed `num_steps`, then learns from that batch, cutting episodes wherever
# the rollout happens to end (the critic's bootstrap covers the part it did not see). Batching the
# policy's forward pass over environments is most of PPO's speed on a CPU, and fixed-size rollouts make
# every update the same size, whatever the episode lengths.
#
# gymnasium 1.x vector envs **autoreset on the next step**. When sub-env *i* ends an episode at step t,
# step t returns the episode's *true final observation*, its reward and the `terminated`/`truncated`
# flags; step t + 1 ignores the action for env *i*, resets it, and returns the first observation of the
# new episode with reward 0 and both flags False. Two consequences shape the rollout:
#
# - the row after an episode end is **not a real transition**: its action did nothing and its reward
#   is not the agent's. Mark it `valid = False`; the update leaves it out. If it were kept, the policy
#   would be credited for a reward of 0 after the final state, and the critic would learn that the
#   final observation leads to the first observation of the next episode.
# - the final observation sits in the rollout as the next row's `obs`, so its value is the next row's
#   `values` entry. That is exactly what a **truncated** episode needs: the episode was cut by a time
#   limit, the state still has a future, and GAE bootstraps from $V(s_\text{final})$. A **terminated**
#   episode must not bootstrap (there is no future), which is why `terminated` and `truncated` are
#   stored separately: merge them and the agent either bootstraps through falls or treats every
#   time-out as a fall.
#
# ![A timeline of one sub-environment over rollout rows t-1 to t+3: at row t the episode ends, row t+1 holds the final observation and is the autoreset row, marked invalid, row t+2 starts the new episode. Below, the two bootstrap rules: truncated bootstraps from V of the final observation, terminated uses 0.](figures/2.3_rollout_autoreset.svg)
#
# ### Exercise: collect a rollout
#
# Write the loop of `collect_rollout`. Each of the `num_steps` iterations: under `torch.no_grad()`, ask the
# agent for actions, log-probs and values of the current `obs`; step the environments; append one
# `(num_envs,)` tensor per key to `store` (the observation you acted on, not the one that came back;
# `valid` is `~done`, the negation of "did the previous step end this env's episode"); then move on:
# `obs` becomes the returned observation and `done = terminated | truncated`. After the loop, `next_value`
# is V of the last `obs`. Call `tracker.update(infos, env_steps)` after each step so episode returns are
# recorded, where `env_steps` counts environment steps so far: `global_step + (step + 1) * num_envs`.
#
# The check drives your loop with a scripted agent on two counter environments whose every
# observation, reward and flag is known: env 0 terminates after 3 steps, env 1 is truncated after 4.
# It compares every field with a hand simulation of next-step autoreset, over two consecutive rollouts
# (so `done` must carry across the boundary), and names the slips: storing the next observation instead
# of the current one, merging terminations into truncations, a `done` that misses one kind of episode end,
# marking every row valid, keeping gradients.

# %% exercise curriculum.solutions.chapter2.ppo:collect_rollout difficulty=3 importance=5 minutes=20
tests.check_collect_rollout(collect_rollout)

# %% hint
# The row you append at step t describes the decision made at step t: the observation the agent saw, what
# it chose, and what came back. The only state you carry from one step to the next is the current
# observation and whether the last step ended each episode.

# %% hint
# Inside the loop: `with torch.no_grad(): action, logprob, _, value = agent.get_action_and_value(obs)`, then
# `next_obs, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())`. Append `obs`, `action`,
# `logprob`, `value` and `~done`; convert `reward`, `terminated`, `truncated` with `torch.as_tensor(...,
# device=device)` (rewards as float32). Then `obs = torch.as_tensor(next_obs, device=device)` and
# `done = terminated | truncated` (as a tensor). `require_finite(next_obs, ...)` stops early on a NaN.

# %% hint
# ```python
# for step in range(num_steps):
#     with torch.no_grad():
#         action, logprob, _, value = ...
#     next_obs, reward, terminated, truncated, infos = envs.step(...)
#     if tracker is not None:
#         tracker.update(infos, global_step + (step + 1) * n_envs)
#     for k, v in (("obs", obs), ("actions", action), ("logprobs", logprob), ("values", value), ("valid", ~done)):
#         store[k].append(v)
#     ...  # rewards, terminated, truncated
#     obs = ...
#     done = ...
# with torch.no_grad():
#     next_value = ...
# ```

# %% [markdown]
# Let's look at one episode end in a real CartPole rollout:

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
# The final observation has a pole angle (third number) beyond CartPole's limit of about 0.21 radians, or
# a cart position beyond 2.4: that is why the episode terminated. The next row is a fresh start near zero.

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
# Write the body of `ppo_update`. Return the last minibatch's `stats` as a dict with the keys `policy_loss`,
# `value_loss`, `entropy` (its mean), `approx_kl` and `clipfrac`, as Python floats: `train_ppo` logs them
# under those names. The check counts optimiser steps and minibatch sizes, measures the gradient
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
# `train_ppo` puts the pieces together. The set-up around the loop is given: seed, build the vector envs
# and the agent, an Adam optimiser with `eps=1e-5` (CleanRL's value; the default 1e-8 lets Adam take
# huge steps on parameters whose gradients were near zero), reset, and `done` all False. So is the
# bookkeeping after each update: the explained variance of the critic, logging, the progress bar.
#
# ### Exercise: the PPO training loop
#
# Write the body of one iteration:
#
# 1. **anneal** the learning rate linearly: `args.learning_rate` at iteration 0, falling by the same amount
#    each iteration, reaching 0 one step after the last (only if `args.anneal_lr`). Late in training the
#    advantage estimates are small and noisy; a shrinking step keeps a good policy from being knocked over;
# 2. **collect** a rollout from the current `obs` and `done`, and carry `rollout.next_obs` and
#    `rollout.next_done` over to the next iteration: episodes continue across rollouts, and the first row
#    after an episode end must be recognised as the autoreset row even when it falls in the next rollout;
# 3. count the environment steps (`global_step += args.batch_size`; the tracker and the logs use it);
# 4. compute the **advantages** with your GAE from the rollout, and `Batch.from_rollout(rollout, advantages)`
#    (it drops the invalid rows and adds `returns = advantages + values`);
# 5. **update** with `ppo_update`, keeping its `stats` for the logging that follows.
#
# The check runs your loop on a probe with `collect_rollout` and `ppo_update` wrapped, so it can see what
# your loop passes between them: each rollout must start where the previous one stopped, each batch must
# hold the rollout's valid rows with GAE advantages, and the learning rate must follow the linear schedule.
# It does the same on an environment that never terminates, whose episodes a time limit cuts every two
# steps: no row may be stored as terminated, and the advantages must bootstrap each truncated episode from
# V(final observation) (a time limit is not a terminal state). Then it trains your whole agent on section 2.2's five **probe environments**, each small enough to fail
# for one reason only: a constant reward (the value loss), an observation-dependent reward (does the
# network read the obs?), a two-step episode (discounting and bootstrapping), a reward that depends on the
# action (log-prob indexing, the sign of the policy loss) and one that depends on both (are observations
# and actions aligned in your batch?). The first failure names the broken component, which may be in an
# earlier exercise.

# %% exercise curriculum.solutions.chapter2.ppo:train_ppo difficulty=2 importance=4 minutes=15
tests.check_train_ppo(train_ppo)

# %% hint
# Every piece is a function you wrote; the loop is about passing the right things between them. Two
# variables outlive an iteration: the observation and the done flags where the rollout stopped.

# %% hint
# The learning rate lives in `optimizer.param_groups[0]["lr"]`; at iteration `iteration` (from 0) it is
# `args.learning_rate * (1.0 - iteration / args.num_iterations)`. The rollout is
# `collect_rollout(agent, envs, obs, done, args.num_steps, tracker, global_step)`; GAE takes
# `rollout.next_value, rollout.rewards, rollout.values, rollout.terminated, rollout.truncated` and the two
# discount parameters from `args`.

# %% hint
# ```python
# if args.anneal_lr:
#     optimizer.param_groups[0]["lr"] = ...
# rollout = collect_rollout(...)
# obs, done = rollout.next_obs, rollout.next_done
# global_step += args.batch_size
# advantages = compute_advantages(...)
# batch = Batch.from_rollout(rollout, advantages)
# stats = ppo_update(agent, optimizer, batch, args)
# ```

# %% [markdown]
# ## CartPole-v1
#
# Now the real thing: balance a pole for 500 steps. We log losses, KL and returns to Weights & Biases
# (offline unless you have configured a key; `wandb sync` uploads later). In quick mode this is a short
# run that will not solve the task. At full size, `curriculum/benchmarks/ppo_cartpole.py` trains seeds 0-9
# with these defaults and a 60k-step budget: on two cores of a shared server CPU every seed reached a
# mean return of 475 (over 20 episodes), after 26k-45k environment steps and under a minute of wall time each.

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
# ## Continuous actions
#
# Nothing in PPO's objective cares whether actions are discrete: it needs $\log \pi(a|s)$ of the actions
# taken, an entropy, and samples. For a robot joint or a pendulum's torque, the standard choice is a
# **Gaussian policy**: the actor outputs the mean $\mu_\theta(s)$ of a Normal distribution per action
# dimension, and the standard deviation comes from a separate learned parameter, $\sigma = e^{\log\sigma}$,
# one per dimension and the **same in every state**. Three details:
#
# - **state-independent log-std**. Letting the network output $\sigma(s)$ too is possible, but gives the
#   policy a way to collapse its exploration in some states early on; one global $\log\sigma$, starting at
#   0 ($\sigma = 1$), shrinks only as fast as the whole policy gets confident. Parameterising the log
#   keeps $\sigma$ positive without constraints.
# - **independent dimensions**. With a diagonal covariance the joint density is a product, so the
#   log-probability of an action vector is the *sum* of the per-dimension log-probabilities (and so is the
#   entropy). Forget the sum and the ratio in the clipped objective is computed per dimension, a
#   different (and wrong) objective.
# - **clip in the environment, not in the policy**. Samples from a Normal can leave the valid range
#   ($[-2, 2]$ for Pendulum's torque). The environment wrapper clips what is *applied*, while the rollout
#   keeps the unclipped sample whose log-probability the policy actually computed; clipping before storing
#   would make the stored log-prob describe a different action. `make_envs` also rescales rewards by a
#   running estimate of the return's spread (`NormalizeReward`), so one learning rate suits any reward scale;
#   the returns you see are recorded before that wrapper.
#
# ### Exercise: a Gaussian policy
#
# Write `GaussianAgent.get_action_and_value`. The networks come from `Agent` (the actor now outputs
# `action_dim` means); `self.log_std` is created for you. The check compares log-probabilities and the entropy
# with the Normal density written out by hand, checks that samples are spread with the policy's own mean and
# standard deviation, and that gradient reaches `log_std`.

# %% exercise curriculum.solutions.chapter2.ppo:GaussianAgent difficulty=2 importance=3 minutes=10
tests.check_gaussian_agent(GaussianAgent)

# %% hint
# It is the discrete version with a different distribution: `torch.distributions.Normal(mean, std)` gives you
# `sample()`, `log_prob()` and `entropy()`, each per action dimension. Reduce the last axis where the
# return value needs one number per observation.

# %% hint
# `mean = self.actor(x)`, `dist = Normal(mean, self.log_std.exp().expand_as(mean))`; sample only if `action is
# None`; return `action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), self.critic(x).squeeze(-1)`.

# %% [markdown]
# ### Pendulum-v1
#
# Swing a pendulum up and hold it there, with a weak motor: the agent must learn to pump energy in by
# swinging back and forth first. Rewards are always negative (a cost on angle, speed and torque); a random
# policy scores about -1200 per 200-step episode, a good one -200 or better. `train_ppo` picks the
# `GaussianAgent` whenever the action space is continuous, so the same loop runs unchanged.

# %%
pend_args = PPOArgs.pendulum(total_timesteps=full_or_quick(100_000, 8_192))
pend = train_ppo(pend_args)
print(f"{pend.env_steps} steps in {pend.seconds:.0f}s; mean return of the first 10 episodes "
      f"{np.mean(pend.tracker.returns[:10]):.0f}, of the last 10 {np.mean(pend.tracker.returns[-10:]):.0f}; "
      f"policy std now {pend.agent.log_std.exp().detach().numpy().round(2)}")
line({"episode return": pend.tracker.returns}, x=pend.tracker.steps_at_end, smooth=5,
     title="PPO on Pendulum-v1", xlabel="environment steps", ylabel="return")

# %% [markdown]
# What you should see at full size: the return climbs steadily from around -1200 (compare the two numbers
# printed above), and the policy's standard deviation falls below 1 as it commits to a swing-up. In quick
# mode the run is a few dozen episodes long and only the first gains, if any, show. If the return does not move at all, print a few sampled
# actions: a missing `.sum(-1)` or a standard deviation stuck near 0 are the usual causes.
#
# ### MuJoCo (optional)
#
# The MuJoCo locomotion tasks (HalfCheetah, Hopper, Walker2d, ...) are the standard continuous-control
# benchmark, and the same code runs them with `PPOArgs.mujoco()` (CleanRL's settings: 1M steps, one
# environment, rollouts of 2048 steps). They need the `mujoco` package, which is not installed by default:
# `pip install "gymnasium[mujoco]"`. The next cell skips itself when `mujoco` is missing, and otherwise only
# trains when you set `RUN_MUJOCO = True` (1M steps take on the order of an hour on a laptop CPU, an
# estimate, not a measured run).

# %%
import importlib.util

RUN_MUJOCO = False  # set True to train PPO on HalfCheetah-v5 for 1M steps (needs `mujoco`)

if importlib.util.find_spec("mujoco") is None:
    print("Skipping MuJoCo: the `mujoco` package is not installed (pip install \"gymnasium[mujoco]\").")
elif RUN_MUJOCO or utils.QUICK:
    mj_args = PPOArgs.mujoco() if RUN_MUJOCO else PPOArgs.mujoco(total_timesteps=512, num_steps=256, update_epochs=1)
    mj = train_ppo(mj_args)
    print(f"HalfCheetah-v5: {mj.env_steps} steps, {len(mj.tracker)} finished episodes, "
          f"mean return {mj.tracker.mean_return(10):.0f}")
else:
    print("Skipping the MuJoCo run: set RUN_MUJOCO = True in this cell to train PPO on HalfCheetah-v5.")

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
# ### Exercise: the Nature CNN
#
# The agent's body for pixels is the convolutional network of Mnih et al. (2015), the "Nature CNN", shared
# by actor and critic (two linear heads on its 512 features). It is small by vision standards, on purpose:
# the signal in an 84x84 game screen is a few moving sprites, and a small network is fast enough to run on
# every environment step. Follow the shapes through it (a convolution without padding maps a side of
# length $n$ to $\lfloor (n - k)/s \rfloor + 1$):
#
# | layer | kernel, stride | output shape |
# |---|---|---|
# | input (4 stacked frames, scaled to [0, 1]) | | 4 x 84 x 84 |
# | conv, 32 filters, ReLU | 8x8, 4 | 32 x 20 x 20 |
# | conv, 64 filters, ReLU | 4x4, 2 | 64 x 9 x 9 |
# | conv, 64 filters, ReLU | 3x3, 1 | 64 x 7 x 7 |
# | flatten | | 3136 |
# | linear, ReLU | | 512 |
#
# The first layer's large stride does most of the downsampling cheaply; four stacked frames as input
# channels let the very first filters see motion. As for the MLPs, every layer goes through `layer_init`
# with the default gain $\sqrt 2$ (the right scale for ReLU layers: it keeps activations from shrinking or
# growing layer by layer at the start), and the heads use 0.01 (actor) and 1 (critic).
#
# Write `nature_cnn()`. The check compares the layout and the output shape, recomputes the forward pass
# with your weights by hand (so the layers must run in the order above), and checks that every weight has
# orthogonal rows of norm $\sqrt 2$ and zero biases.

# %% exercise curriculum.solutions.chapter2.ppo:nature_cnn difficulty=1 importance=3 minutes=10
tests.check_nature_cnn(nature_cnn)

# %% hint
# One `nn.Sequential`: three convolutions, a flatten, a linear layer, with a ReLU after each of the four
# weight layers. The 3136 in the table is the only number you have to work out.

# %% hint
# `layer_init(nn.Conv2d(4, 32, 8, stride=4)), nn.ReLU()`, and likewise `(32, 64, 4, stride=2)` and
# `(64, 64, 3, stride=1)`; then `nn.Flatten()` and `layer_init(nn.Linear(64 * 7 * 7, 512)), nn.ReLU()`.

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
# ## Reward shaping
#
# CartPole pays +1 every step, so even a random agent gets a learning signal. Many tasks do not. In
# MountainCar-v0 an under-powered car sits in a valley and must reach a flag on the right hill; the reward
# is -1 per step until it gets there, for at most 200 steps. A random policy essentially never reaches
# the flag, so every episode returns exactly -200, every advantage is zero after normalisation, and the
# policy gradient has nothing to say. The car has to rock back and forth to build momentum, a behaviour
# random exploration is vanishingly unlikely to stumble on.
#
# The tempting fix is to add rewards for things that look like progress ("+1 for moving right"). That
# changes the task: agents are notorious for farming such bonuses (circling to collect a "progress"
# reward forever) instead of finishing. **Potential-based shaping** (Ng, Harada & Russell, 1999) is the
# form that provably cannot do this. Pick any potential $\Phi(s)$, a guess of how promising a state is,
# and add
#
# $$F(s, s') = \gamma\,\Phi(s') - \Phi(s)$$
#
# to every transition's reward. Along an episode $s_0, s_1, \dots, s_T$ the discounted shaping terms
# telescope:
#
# $$\sum_{t=0}^{T-1} \gamma^t \big(\gamma \Phi(s_{t+1}) - \Phi(s_t)\big) = \gamma^T \Phi(s_T) - \Phi(s_0).$$
#
# With $\Phi = 0$ at terminal states the sum is $-\Phi(s_0)$, the same for every policy from $s_0$. So
# every policy's value shifts by the same amount, $Q'(s, a) = Q(s, a) - \Phi(s)$, the ranking of actions
# is unchanged, and the optimal policy is the same. What shaping changes is the *learning signal*: a
# transition that raises the potential is rewarded now, not only when the flag is reached. Two details
# carry the proof, and both are easy to get wrong:
#
# - **the factor $\gamma$**. Without it the terms telescope only when $\gamma = 1$; with discounting, a
#   state of high potential pays a bonus every time you step into it, and looping near it can beat finishing;
# - **$\Phi = 0$ after termination, but not after truncation**. A terminal state has no future, so it
#   cannot be promising; if it kept its potential, ending the episode in a high-potential state would pay a
#   bonus the original task does not. A truncated episode's last state is an ordinary state cut off by the
#   clock, and it keeps its potential, consistent with bootstrapping from it.
#
# For MountainCar a natural potential is the car's mechanical energy, height plus kinetic energy (speed
# squared), scaled to about [0, 1] (`mountain_car_potential`, given): pumping energy in
# is exactly what the task requires, and the flag is reached by having enough of it.
#
# ### Exercise: a potential-based shaping wrapper
#
# Write the body of `PotentialShaping.step`: compute $\Phi(s')$ (0 if the step terminated), the shaped reward,
# and remember $\Phi(s')$ for the next step (`reset` stores $\Phi(s_0)$ for you). The check steps your wrapper
# and an unwrapped copy of the same environment side by side, through terminations, a truncation and resets,
# and compares every shaped reward with $r + \gamma\Phi(s') - \Phi(s)$ computed independently; it names a
# missing $\gamma$, a terminal state that keeps its potential, a truncated one that loses it, and a flipped sign.

# %% exercise curriculum.solutions.chapter2.ppo:PotentialShaping difficulty=2 importance=3 minutes=10
tests.check_potential_shaping(PotentialShaping)

# %% hint
# The wrapper carries one number between steps: the potential of the state the agent is in now. Each step
# turns the new observation into a potential, uses both numbers, and then the new one becomes the old one.

# %% hint
# `potential = 0.0 if terminated else float(self.potential(obs))`; then
# `shaped = float(reward) + self.gamma * potential - self.last_potential`; then `self.last_potential = potential`.

# %% [markdown]
# Now watch the telescoping happen. Play random episodes of MountainCar through your wrapper and add up the
# discounted shaping terms (shaped reward minus the original -1). The sum should equal
# $\gamma^T \Phi(s_T) - \Phi(s_0)$ for each episode, whatever the actions were: every policy's return moves
# by an amount that depends only on where the episode started and where it was cut off.

# %%
gamma = 0.99
shaped_env = PotentialShaping(gym.make("MountainCar-v0"), mountain_car_potential, gamma)
rng = np.random.default_rng(0)
for episode in range(3):
    obs, _ = shaped_env.reset(seed=episode)
    phi0, shaping_sum, t, done = mountain_car_potential(obs), 0.0, 0, False
    while not done:
        obs, r, terminated, truncated, _ = shaped_env.step(int(rng.integers(3)))
        shaping_sum += gamma**t * (r - (-1.0))
        t += 1
        done = terminated or truncated
    end = 0.0 if terminated else mountain_car_potential(obs)
    print(f"episode {episode}: {t} steps, discounted shaping sum {shaping_sum:+.5f}, "
          f"gamma^T Phi(s_T) - Phi(s_0) = {gamma**t * end - phi0:+.5f}")
shaped_env.close()

# %% [markdown]
# The two columns agree to rounding. **Try it:** train PPO on MountainCar-v0 with and without the wrapper
# (wrap each sub-environment by passing `wrappers=[lambda e: PotentialShaping(e, mountain_car_potential,
# args.gamma)]` to `gym.make_vec`), and compare how often the flag is reached. Then break the wrapper (drop
# $\gamma$, or give terminal states their potential) and look for an agent that has learned to hover.

# %% [markdown]
# ## Further reading
# - [Williams, "Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement Learning", Machine Learning 8 (1992)](https://doi.org/10.1007/BF00992696):
#   the REINFORCE family and the first derivation of the likelihood-ratio gradient for neural networks,
#   including the baseline (the "reinforcement comparison" term).
# - [Sutton & Barto, "Reinforcement Learning: An Introduction", 2nd ed. (2018), chapter 13](http://www.incompleteideas.net/book/RLbook2020trimmed.pdf):
#   the policy-gradient theorem proved for the discounted and episodic cases, REINFORCE with a baseline,
#   actor-critic methods and Gaussian policies for continuous actions, at textbook pace.
# - [Ng, Harada & Russell, "Policy Invariance Under Reward Transformations: Theory and Application to Reward Shaping" (ICML 1999)](http://www.andrewng.org/portfolio/policy-invariance-under-reward-transformations-theory-and-application-to-reward-shaping/):
#   why potential-based shaping preserves optimal policies, why it is the only form that always does, and
#   the reward-farming bugs other shaping schemes cause.
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
