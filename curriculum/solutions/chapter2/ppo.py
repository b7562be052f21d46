"""Section 2.3: Proximal Policy Optimisation, CleanRL-style, on CartPole and Atari.

Read top to bottom in the order the notebook teaches it:

    PPOArgs                 hyperparameters (defaults solve CartPole-v1 in < 100k steps)
    Agent                   actor and critic (MLPs for vector obs, a shared Nature CNN for Atari)
    compute_advantages      GAE, correct on terminated vs truncated episodes
    collect_rollout         num_steps of experience from a gymnasium 1.x vector env (next-step autoreset)
    policy_loss             clipped surrogate objective, with advantage normalisation
    value_loss              (clipped) value loss
    kl_and_clipfrac         approx-KL and clip-fraction diagnostics
    ppo_update              epochs of shuffled minibatches, entropy bonus, gradient clipping
    train_ppo               the loop: learning-rate annealing, rollouts, updates, logging
    GaussianAgent           continuous actions: a Normal policy with a state-independent log-std (Pendulum, MuJoCo)

gymnasium 1.x vector envs autoreset on the NEXT step. The step on which an episode ends returns the
episode's true final observation; the step after that ignores the action and returns the first
observation of a new episode with reward 0. Two consequences, both handled here:
- that "reset step" is not a real transition: `collect_rollout` marks it invalid and the update skips it;
- the final observation is stored as the next row of the rollout, so a *truncated* episode can
  bootstrap from V(final observation) while a *terminated* one must not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.distributions import Categorical, Normal
from tqdm.auto import tqdm

from curriculum.solutions.chapter2 import atari
from curriculum.utils.rl import EpisodeTracker, make_vec_env, require_finite, seed_everything


@dataclass
class PPOArgs:
    env_id: str = "CartPole-v1"
    seed: int = 1
    num_envs: int = 8
    num_steps: int = 32  # steps per env per rollout: batch = num_envs * num_steps
    total_timesteps: int = 100_000
    learning_rate: float = 2e-3  # RL-Zoo's CartPole value is 1e-3; 2e-3 reaches 475 within 60k steps on seeds 0-9
    anneal_lr: bool = True  # linearly to 0 over training: late updates are small and stable
    gamma: float = 0.98
    gae_lambda: float = 0.8
    num_minibatches: int = 1
    update_epochs: int = 20
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None  # stop the epochs early if the policy moved further than this
    hidden: int = 64

    def __post_init__(self) -> None:
        if self.num_envs < 1 or self.num_steps < 1:
            raise ValueError(f"num_envs and num_steps must be >= 1, got {self.num_envs} and {self.num_steps}")
        if self.num_minibatches < 1 or self.num_minibatches > self.batch_size:
            raise ValueError(f"num_minibatches must be in 1..batch_size={self.batch_size}, got {self.num_minibatches}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"gamma and gae_lambda must be in [0, 1], got {self.gamma} and {self.gae_lambda}")
        if self.clip_coef <= 0:
            raise ValueError(f"clip_coef must be positive, got {self.clip_coef}")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_timesteps // self.batch_size)

    @classmethod
    def pendulum(cls, **overrides: Any) -> "PPOArgs":
        """Continuous control on Pendulum-v1 (after RL-Zoo's tuned values, without gSDE)."""
        defaults = dict(env_id="Pendulum-v1", num_envs=4, num_steps=256, total_timesteps=100_000, gamma=0.9,
                        gae_lambda=0.95, num_minibatches=4, update_epochs=10, learning_rate=1e-3)
        return cls(**{**defaults, **overrides})

    @classmethod
    def mujoco(cls, **overrides: Any) -> "PPOArgs":
        """CleanRL's ppo_continuous_action.py defaults (1M steps; e.g. HalfCheetah-v5, needs `mujoco`)."""
        defaults = dict(env_id="HalfCheetah-v5", num_envs=1, num_steps=2048, total_timesteps=1_000_000,
                        learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, num_minibatches=32, update_epochs=10)
        return cls(**{**defaults, **overrides})

    @classmethod
    def atari(cls, **overrides: Any) -> "PPOArgs":
        """CleanRL's ppo_atari.py defaults (10M steps reach ~400 on Breakout on one GPU)."""
        defaults = dict(env_id="ALE/Breakout-v5", num_envs=8, num_steps=128, total_timesteps=10_000_000,
                        learning_rate=2.5e-4, gamma=0.99, gae_lambda=0.95, num_minibatches=4, update_epochs=4,
                        clip_coef=0.1, ent_coef=0.01)
        return cls(**{**defaults, **overrides})


def layer_init(layer: nn.Linear | nn.Conv2d, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain `std`, constant bias: the init every PPO implementation uses."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def nature_cnn() -> nn.Sequential:
    """Mnih et al. (2015)'s trunk on 4 stacked 84x84 frames (already scaled to [0, 1]) -> [batch, 512].

    conv 32 filters 8x8 stride 4 -> conv 64 4x4 stride 2 -> conv 64 3x3 stride 1 -> flatten -> linear 512,
    a ReLU after each, every layer through `layer_init` with its default gain sqrt(2).
    """
    # EXERCISE: three Conv2d layers and one Linear, each layer_init-ed and followed by a ReLU, with a Flatten before the Linear
    return nn.Sequential(
        layer_init(nn.Conv2d(4, 32, 8, stride=4)), nn.ReLU(),
        layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
        layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
        nn.Flatten(),
        layer_init(nn.Linear(64 * 7 * 7, 512)), nn.ReLU(),
    )
    # END EXERCISE


def actor_critic_mlps(obs_dim: int, n_actions: int, hidden: int = 64) -> tuple[nn.Sequential, nn.Sequential]:
    """Two separate MLPs, obs_dim -> hidden -> hidden -> out with tanh, every Linear through layer_init: the
    actor ends in n_actions logits (gain 0.01: a near-uniform first policy), the critic in one value (gain 1)."""
    # EXERCISE: build the actor and the critic: Linear/Tanh MLPs with layer_init (std 0.01 and 1.0 on the last layers)
    actor = nn.Sequential(
        layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, n_actions), std=0.01),
    )
    critic = nn.Sequential(
        layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, 1), std=1.0),
    )
    return actor, critic
    # END EXERCISE


class Agent(nn.Module):
    """Actor (logits over actions) and critic (a state value).

    Vector observations: two separate MLPs, obs_dim -> hidden -> hidden -> out, tanh activations,
    `layer_init` everywhere, with std 0.01 on the actor's last layer (the initial policy is close to
    uniform, so early exploration is not biased) and std 1 on the critic's last layer.
    Image observations ([4, 84, 84]): one shared Nature CNN, then a linear actor and a linear critic.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        if len(obs_shape) == 3:
            self.trunk = nature_cnn()
            self.actor = layer_init(nn.Linear(512, n_actions), std=0.01)
            self.critic = layer_init(nn.Linear(512, 1), std=1.0)
            return
        self.trunk = nn.Identity()
        self.actor, self.critic = actor_critic_mlps(int(np.prod(obs_shape)), n_actions, hidden)

    def features(self, obs: Tensor) -> Tensor:
        if isinstance(self.trunk, nn.Identity):
            return obs.float()
        return self.trunk(obs.float() / 255.0)  # Atari frames are uint8

    def get_value(self, obs: Tensor) -> Float[Tensor, "batch"]:
        return self.critic(self.features(obs)).squeeze(-1)

    def get_action_and_value(
        self, obs: Tensor, action: Int[Tensor, "batch"] | None = None
    ) -> tuple[Int[Tensor, "batch"], Float[Tensor, "batch"], Float[Tensor, "batch"], Float[Tensor, "batch"]]:
        """(action, log pi(action|obs), entropy of pi(.|obs), V(obs)). Samples an action if none is given."""
        # EXERCISE: build a Categorical from the actor's logits; sample if action is None; return action, log_prob, entropy, value
        x = self.features(obs)
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(x).squeeze(-1)
        # END EXERCISE


class GaussianAgent(Agent):
    """Continuous actions: the actor's output is the MEAN of a Normal per action dimension; its log standard
    deviation is one learned parameter per dimension, the same in every state (starts at 0, so std 1).
    An action's log-probability (and the entropy) is the sum over the independent dimensions."""

    def __init__(self, obs_shape: tuple[int, ...], action_dim: int, hidden: int = 64) -> None:
        super().__init__(obs_shape, action_dim, hidden)
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def get_action_and_value(
        self, obs: Tensor, action: Float[Tensor, "batch act"] | None = None
    ) -> tuple[Float[Tensor, "batch act"], Float[Tensor, "batch"], Float[Tensor, "batch"], Float[Tensor, "batch"]]:
        # EXERCISE: Normal(mean = actor(x), std = exp(log_std)); sample if no action; sum log_prob and entropy over action dims
        x = self.features(obs)
        mean = self.actor(x)
        dist = Normal(mean, self.log_std.exp().expand_as(mean))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), self.critic(x).squeeze(-1)
        # END EXERCISE


def compute_advantages(
    next_value: Float[Tensor, "env"],
    rewards: Float[Tensor, "step env"],
    values: Float[Tensor, "step env"],
    terminated: Bool[Tensor, "step env"],
    truncated: Bool[Tensor, "step env"],
    gamma: float,
    gae_lambda: float,
) -> Float[Tensor, "step env"]:
    """Generalised advantage estimation over a rollout.

    Row t holds obs s_t, its value V(s_t), and what stepping from it returned: r_t, terminated_t,
    truncated_t. V(s_{t+1}) is values[t + 1] (next_value for the last row). When the episode ended at
    step t, s_{t+1} is its final observation (next-step autoreset), so:

        delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)    # no future after a terminal state,
                                                                             # but a truncated one still has one
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}          # done = terminated or truncated:
                                                                             # never sum across episodes
    """
    # EXERCISE: GAE: loop t from the last step back, bootstrapping only when not terminated, resetting at every episode end
    next_values = torch.cat([values[1:], next_value[None]])
    not_terminated = 1.0 - terminated.float()
    not_done = 1.0 - (terminated | truncated).float()
    deltas = rewards + gamma * next_values * not_terminated - values
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        last = deltas[t] + gamma * gae_lambda * not_done[t] * last
        advantages[t] = last
    return advantages
    # END EXERCISE


@dataclass
class Rollout:
    """num_steps x num_envs of experience. `valid` is False on autoreset steps (not real transitions)."""

    obs: Tensor  # [step, env, *obs_shape]
    actions: Int[Tensor, "step env"]
    logprobs: Float[Tensor, "step env"]
    values: Float[Tensor, "step env"]
    rewards: Float[Tensor, "step env"]
    terminated: Bool[Tensor, "step env"]
    truncated: Bool[Tensor, "step env"]
    valid: Bool[Tensor, "step env"]
    next_obs: Tensor  # [env, *obs_shape]: where the next rollout starts
    next_done: Bool[Tensor, "env"]  # did the last step end an episode (so the next step is an autoreset)?
    next_value: Float[Tensor, "env"]


def collect_rollout(
    agent: Agent,
    envs: gym.vector.VectorEnv,
    obs: Tensor,
    done: Bool[Tensor, "env"],
    num_steps: int,
    tracker: EpisodeTracker | None = None,
    global_step: int = 0,
) -> Rollout:
    """Step `envs` num_steps times from observation `obs`, sampling actions from the agent without gradients.

    `done` says whether the previous step ended each sub-env's episode: if so, this step is the
    autoreset step, whose action is ignored and whose row is marked invalid.

    Row t of each `store` list holds a tensor of shape (env, ...): the observation the action was chosen
    from, the action, its log-prob and value, and what `envs.step` returned for it. At the end `obs` and
    `done` must describe the state after the last step (where the next rollout starts), and `next_value`
    is V(obs) of that state. Pass each step's infos to `tracker.update` (if given) with the env-step count.
    """
    device = obs.device
    n_envs = envs.num_envs
    store = {k: [] for k in ("obs", "actions", "logprobs", "values", "rewards", "terminated", "truncated", "valid")}
    # EXERCISE: num_steps times: act without grad, step, store the row (valid = not done), carry obs and done; then next_value
    for step in range(num_steps):
        with torch.no_grad():
            action, logprob, _, value = agent.get_action_and_value(obs)
        next_obs, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
        require_finite(next_obs, "an observation", f"step {global_step + (step + 1) * n_envs}")
        require_finite(reward, "a reward", f"step {global_step + (step + 1) * n_envs}")
        if tracker is not None:
            tracker.update(infos, global_step + (step + 1) * n_envs)
        for k, v in (("obs", obs), ("actions", action), ("logprobs", logprob), ("values", value), ("valid", ~done)):
            store[k].append(v)
        store["rewards"].append(torch.as_tensor(reward, dtype=torch.float32, device=device))
        store["terminated"].append(torch.as_tensor(terminated, device=device))
        store["truncated"].append(torch.as_tensor(truncated, device=device))
        obs = torch.as_tensor(next_obs, device=device)
        done = store["terminated"][-1] | store["truncated"][-1]
    with torch.no_grad():
        next_value = agent.get_value(obs)
    # END EXERCISE
    return Rollout(**{k: torch.stack(v) for k, v in store.items()}, next_obs=obs, next_done=done, next_value=next_value)


def policy_loss(
    new_logprob: Float[Tensor, "batch"],
    old_logprob: Float[Tensor, "batch"],
    advantages: Float[Tensor, "batch"],
    clip_coef: float,
    norm_adv: bool = True,
) -> Float[Tensor, ""]:
    """The clipped surrogate objective, as a loss to minimise.

    ratio = pi_new(a|s) / pi_old(a|s). Normalise the advantages over the minibatch first (if norm_adv),
    then take the pessimistic (larger) of the two losses -A * ratio and -A * clip(ratio, 1 - c, 1 + c),
    averaged over the batch.
    """
    # EXERCISE: ratio from log-probs; normalise advantages; mean of max(-A * ratio, -A * clipped ratio)
    ratio = (new_logprob - old_logprob).exp()
    if norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(unclipped, clipped).mean()
    # END EXERCISE


def value_loss(
    new_values: Float[Tensor, "batch"],
    old_values: Float[Tensor, "batch"],
    returns: Float[Tensor, "batch"],
    clip_coef: float,
    clip_vloss: bool = True,
) -> Float[Tensor, ""]:
    """0.5 * mean squared error to the returns. With clip_vloss, also compute the error of the value
    moved at most clip_coef from old_values, and take the larger (pessimistic) of the two per sample."""
    # EXERCISE: 0.5 * mean((V - returns)^2); if clip_vloss, elementwise max with the clipped value's squared error
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    v_clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (v_clipped - returns) ** 2).mean()
    # END EXERCISE


def kl_and_clipfrac(
    new_logprob: Float[Tensor, "batch"], old_logprob: Float[Tensor, "batch"], clip_coef: float
) -> tuple[float, float]:
    """approx KL(pi_old || pi_new) with the low-variance estimator mean((ratio - 1) - log ratio)
    (Schulman's k3: unbiased and always >= 0), and the fraction of samples whose ratio left [1 - c, 1 + c]."""
    # EXERCISE: logratio = new - old; approx_kl = mean((ratio - 1) - logratio); clipfrac = mean(|ratio - 1| > clip_coef)
    with torch.no_grad():
        logratio = new_logprob - old_logprob
        ratio = logratio.exp()
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1).abs() > clip_coef).float().mean()
    return approx_kl.item(), clipfrac.item()
    # END EXERCISE


@dataclass
class Batch:
    """The valid rows of a rollout, flattened over (step, env), with their advantages and returns."""

    obs: Tensor
    actions: Int[Tensor, "batch"]
    logprobs: Float[Tensor, "batch"]
    values: Float[Tensor, "batch"]
    advantages: Float[Tensor, "batch"]
    returns: Float[Tensor, "batch"]

    @classmethod
    def from_rollout(cls, r: Rollout, advantages: Float[Tensor, "step env"]) -> "Batch":
        keep = r.valid  # drop autoreset steps: their action was ignored and their reward is not the agent's
        return cls(r.obs[keep], r.actions[keep], r.logprobs[keep], r.values[keep],
                   advantages[keep], (advantages + r.values)[keep])

    def __len__(self) -> int:
        return len(self.actions)


def ppo_update(agent: Agent, optimizer: torch.optim.Optimizer, batch: Batch, args: PPOArgs) -> dict[str, float]:
    """update_epochs passes over the batch in num_minibatches shuffled minibatches.

    Each minibatch: loss = policy_loss - ent_coef * entropy + vf_coef * value_loss, then backward,
    clip the gradient norm to max_grad_norm, and step. Stop the epochs early if target_kl is set and
    the approx KL exceeds it. Returns the last minibatch's losses and diagnostics.
    """
    n = len(batch)
    stats: dict[str, float] = {}
    # EXERCISE: loop over epochs and shuffled minibatches; total loss; zero_grad/backward/clip_grad_norm_/step; fill stats
    for _ in range(args.update_epochs):
        for mb in torch.randperm(n).tensor_split(args.num_minibatches):
            _, new_logprob, entropy, new_value = agent.get_action_and_value(batch.obs[mb], batch.actions[mb])
            pg_loss = policy_loss(new_logprob, batch.logprobs[mb], batch.advantages[mb], args.clip_coef, args.norm_adv)
            v_loss = value_loss(new_value, batch.values[mb], batch.returns[mb], args.clip_coef, args.clip_vloss)
            entropy_loss = entropy.mean()
            loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss

            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()

            approx_kl, clipfrac = kl_and_clipfrac(new_logprob, batch.logprobs[mb], args.clip_coef)
        stats = dict(policy_loss=pg_loss.item(), value_loss=v_loss.item(), entropy=entropy_loss.item(),
                     approx_kl=approx_kl, clipfrac=clipfrac)
        if args.target_kl is not None and approx_kl > args.target_kl:
            break
    # END EXERCISE
    return stats


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 - Var(returns - values) / Var(returns): 1 is a perfect critic, 0 no better than a constant."""
    var = returns.var()
    return float("nan") if var == 0 else (1 - (returns - values).var() / var).item()


def make_envs(args: PPOArgs) -> gym.vector.VectorEnv:
    if atari.is_atari(args.env_id):
        return atari.make_atari_vec_env(args.env_id, args.num_envs, args.seed)
    envs = make_vec_env(args.env_id, args.num_envs, args.seed)
    if isinstance(envs.single_action_space, gym.spaces.Box):
        # a Normal policy's samples are unbounded: clip them to the action range inside the env (the rollout
        # keeps the unclipped sample, whose log-prob the policy computed). Rewards are scaled by a running
        # estimate of the return's std, so one learning rate fits any reward scale. Episode statistics were
        # recorded inside these wrappers, so reported returns stay the environment's own.
        envs = gym.wrappers.vector.NormalizeReward(gym.wrappers.vector.ClipAction(envs), gamma=args.gamma)
    return envs


@dataclass
class TrainResult:
    agent: Agent
    tracker: EpisodeTracker  # finished-episode returns and the env step each ended at
    history: list[dict[str, float]]  # one row of losses/diagnostics per iteration
    env_steps: int
    seconds: float


def train_ppo(
    args: PPOArgs,
    run: Any = None,
    stop_at_return: float | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """The whole algorithm. `run` is a wandb run (or None); `stop_at_return` ends training once the mean
    of the last 20 episode returns reaches it (for benchmarks)."""
    seed_everything(args.seed)
    envs = make_envs(args)
    if isinstance(envs.single_action_space, gym.spaces.Box):
        agent = GaussianAgent(envs.single_observation_space.shape, int(np.prod(envs.single_action_space.shape)), args.hidden)
    else:
        agent = Agent(envs.single_observation_space.shape, int(envs.single_action_space.n), args.hidden)
    agent = agent.to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    tracker, history = EpisodeTracker(), []

    obs = torch.as_tensor(envs.reset(seed=args.seed)[0], device=device)
    require_finite(obs, "an observation", "reset")
    done = torch.zeros(args.num_envs, dtype=torch.bool, device=device)
    global_step, start = 0, time.perf_counter()
    bar = tqdm(range(args.num_iterations), desc=f"PPO {args.env_id}", disable=not progress)
    for iteration in bar:
        # EXERCISE: anneal the lr; collect a rollout (carry obs and done over); count steps; GAE; Batch.from_rollout; ppo_update
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - iteration / args.num_iterations)
        rollout = collect_rollout(agent, envs, obs, done, args.num_steps, tracker, global_step)
        obs, done = rollout.next_obs, rollout.next_done
        global_step += args.batch_size

        advantages = compute_advantages(rollout.next_value, rollout.rewards, rollout.values,
                                        rollout.terminated, rollout.truncated, args.gamma, args.gae_lambda)
        batch = Batch.from_rollout(rollout, advantages)
        stats = ppo_update(agent, optimizer, batch, args)
        # END EXERCISE
        for name in ("policy_loss", "value_loss"):
            require_finite(stats[name], f"the {name.replace('_', ' ')}", f"iteration {iteration} (step {global_step})")
        stats.update(explained_variance=explained_variance(batch.values, batch.returns),
                     learning_rate=optimizer.param_groups[0]["lr"], mean_return=tracker.mean_return(20),
                     steps_per_second=global_step / (time.perf_counter() - start))
        history.append(stats)
        if run is not None:
            run.log({f"charts/{k}" if k in ("mean_return", "learning_rate", "steps_per_second") else f"losses/{k}": v
                     for k, v in stats.items()}, step=global_step)
        bar.set_postfix(ret=f"{stats['mean_return']:.1f}", kl=f"{stats['approx_kl']:.4f}")
        if stop_at_return is not None and len(tracker) >= 20 and tracker.mean_return(20) >= stop_at_return:
            break
    envs.close()
    return TrainResult(agent, tracker, history, global_step, time.perf_counter() - start)


class PotentialShaping(gym.Wrapper):
    """Potential-based reward shaping (Ng, Harada & Russell, 1999): r' = r + gamma * Phi(s') - Phi(s).

    `potential(obs) -> float` scores how promising a state looks. The potential of the state after a
    TERMINATION is 0 (there is no future to be promising about); after a truncation the state is real and
    keeps its potential. The discounted sum of the shaping terms over an episode telescopes to
    gamma^T Phi(s_T) - Phi(s_0); for an episode that terminates, Phi(s_T) = 0 and what is left, -Phi(s_0), no
    policy can change, so the optimal policy is the same. (A truncated episode's last term does depend on the
    policy, but it is exactly the value the next, cut-off part of the episode would have paid back.)
    """

    def __init__(self, env: gym.Env, potential: Any, gamma: float) -> None:
        super().__init__(env)
        self.potential, self.gamma = potential, gamma
        self.last_potential = 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.last_potential = float(self.potential(obs))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        # EXERCISE: Phi(s') (0 if terminated); shaped = reward + gamma * Phi(s') - Phi(s); remember Phi(s') for the next step
        potential = 0.0 if terminated else float(self.potential(obs))
        shaped = float(reward) + self.gamma * potential - self.last_potential
        self.last_potential = potential
        # END EXERCISE
        return obs, shaped, terminated, truncated, info


def mountain_car_potential(obs: np.ndarray) -> float:
    """MountainCar's mechanical energy, scaled to about [0, 1]: height (the track is sin(3x)) plus speed.
    Pumping energy in is exactly what the car must learn to do to reach the flag."""
    position, velocity = float(obs[0]), float(obs[1])
    height = 0.45 * np.sin(3 * position) + 0.55
    return 0.5 * (height + 0.5 * velocity**2 / 0.0025)
