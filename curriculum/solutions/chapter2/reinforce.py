"""Section 2.3, part 1: vanilla policy gradients (REINFORCE), the algorithm PPO builds on.

Read top to bottom in the order the notebook teaches it:

    ReinforceArgs       hyperparameters (defaults learn CartPole-v1 to a few hundred steps in ~300 episodes)
    reward_to_go        G_t = r_t + gamma * G_{t+1}, per episode
    reinforce_loss      -(1 / n_episodes) * sum_t log pi(a_t|s_t) * (G_t - b_t), the baseline held constant
    train_reinforce     the loop: play whole episodes with the current policy, compute returns, one step
    fit_baseline        a learned state-value baseline: predict the returns, then regress on them

The gradient estimator is, for a batch of N episodes,

    g = (1/N) sum_episodes sum_t grad log pi(a_t|s_t) * (G_t - b(s_t)),

and `reinforce_loss` is the scalar whose gradient is -g (we minimise it). Dividing by the number of
*episodes* (not steps) keeps long episodes weighted as the estimator weights them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from jaxtyping import Float
from torch import Tensor
from torch.distributions import Categorical
from tqdm.auto import tqdm

from curriculum.utils.rl import seed_everything


@dataclass
class ReinforceArgs:
    env_id: str = "CartPole-v1"
    seed: int = 0
    gamma: float = 0.99
    num_iterations: int = 60  # one gradient step per iteration
    episodes_per_batch: int = 8
    learning_rate: float = 1e-2
    hidden: int = 32
    baseline: bool = False  # learn a value baseline V(s) and use G_t - V(s_t)
    baseline_lr: float = 1e-2
    baseline_epochs: int = 10  # regression steps on each batch's returns


def mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))


def reward_to_go(rewards: Float[Tensor, "T"], gamma: float) -> Float[Tensor, "T"]:
    """G_t = sum_{k >= t} gamma^(k - t) r_k over ONE episode (rewards[t] is what step t returned)."""
    # EXERCISE: walk backwards: G_t = r_t + gamma * G_{t+1}, with G_T = 0 after the last step
    returns = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns
    # END EXERCISE


def reinforce_loss(
    logprobs: Float[Tensor, "steps"],
    returns: Float[Tensor, "steps"],
    num_episodes: int,
    baseline: Float[Tensor, "steps"] | None = None,
) -> Float[Tensor, ""]:
    """The surrogate loss whose gradient is minus the REINFORCE estimator.

    `logprobs[i]` is log pi(a_i|s_i) for every step of every episode in the batch (concatenated),
    `returns[i]` its reward-to-go, `baseline[i]` (optional) a prediction of it made from s_i alone.
    The weights (returns minus baseline) are constants of the policy gradient: no gradient may flow
    through them. Sum over steps, divide by the number of episodes.
    """
    # EXERCISE: weights = returns - baseline (held constant); loss = -(logprobs * weights).sum() / num_episodes
    weights = returns if baseline is None else returns - baseline.detach()
    return -(logprobs * weights.detach()).sum() / num_episodes
    # END EXERCISE


@dataclass
class ReinforceResult:
    policy: nn.Module
    value_net: nn.Module | None
    episode_returns: list[float] = field(default_factory=list)  # undiscounted return of every episode played
    seconds: float = 0.0


def fit_baseline(
    value_net: nn.Module,
    optimizer: torch.optim.Optimizer,
    obs: Float[Tensor, "steps obs_dim"],
    returns: Float[Tensor, "steps"],
    epochs: int,
) -> Float[Tensor, "steps"]:
    """Return the baseline b(s) = V(s) for these states, predicted BEFORE fitting (and detached), then take
    `epochs` full-batch regression steps of V towards the returns (mean squared error)."""
    # EXERCISE: predict (no grad) first; then epochs of MSE regression on the returns; return the prediction
    with torch.no_grad():
        baseline = value_net(obs).squeeze(-1)
    for _ in range(epochs):
        loss = ((value_net(obs).squeeze(-1) - returns) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return baseline
    # END EXERCISE


def train_reinforce(args: ReinforceArgs, progress: bool = True) -> ReinforceResult:
    """REINFORCE on one (non-vectorised) environment. Each iteration plays `episodes_per_batch` whole
    episodes with actions sampled from the current policy, computes every step's reward-to-go, and
    takes one optimiser step on `reinforce_loss`. With `args.baseline`, `fit_baseline` supplies b(s)."""
    seed_everything(args.seed)
    env = gym.make(args.env_id)
    obs_dim, n_actions = int(np.prod(env.observation_space.shape)), int(env.action_space.n)
    policy = mlp(obs_dim, n_actions, args.hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate)
    value_net = mlp(obs_dim, 1, args.hidden) if args.baseline else None
    value_opt = torch.optim.Adam(value_net.parameters(), lr=args.baseline_lr) if value_net is not None else None
    result = ReinforceResult(policy, value_net)
    start = time.perf_counter()
    episode = 0
    for _ in tqdm(range(args.num_iterations), desc=f"REINFORCE {args.env_id}", disable=not progress):
        # EXERCISE: play episodes_per_batch episodes (sample actions, keep log-probs); reward-to-go; (baseline); one step
        all_obs, all_logprobs, all_returns = [], [], []
        for _ in range(args.episodes_per_batch):
            obs, _ = env.reset(seed=args.seed * 100_000 + episode)
            episode += 1
            rewards, done = [], False
            while not done:
                obs_t = torch.as_tensor(obs, dtype=torch.float32)
                dist = Categorical(logits=policy(obs_t))
                action = dist.sample()
                all_obs.append(obs_t)
                all_logprobs.append(dist.log_prob(action))
                obs, reward, terminated, truncated, _ = env.step(int(action))
                rewards.append(float(reward))
                done = terminated or truncated
            all_returns.append(reward_to_go(torch.tensor(rewards), args.gamma))
            result.episode_returns.append(sum(rewards))
        returns = torch.cat(all_returns)
        baseline = None
        if value_net is not None:
            baseline = fit_baseline(value_net, value_opt, torch.stack(all_obs), returns, args.baseline_epochs)
        loss = reinforce_loss(torch.stack(all_logprobs), returns, args.episodes_per_batch, baseline)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # END EXERCISE
    env.close()
    result.seconds = time.perf_counter() - start
    return result
