"""Tabular RL (Sutton & Barto chapters 4 and 6): dynamic programming with a known model, then
Q-learning and SARSA from experience, on gymnasium's toy-text environments.

A model comes from the `P` table gymnasium's toy-text envs expose (`env.unwrapped.P`):
P[s][a] = [(probability, next_state, reward, terminated), ...]. We turn it into two arrays,
    rewards[s, a]            expected immediate reward
    transitions[s, a, s']    probability of landing in s' AND continuing (terminated outcomes removed),
so every Bellman backup is one line: Q = rewards + gamma * transitions @ V. Dropping terminated
outcomes from `transitions` is how "no value after the end of the episode" is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from jaxtyping import Float, Int
from tqdm.auto import tqdm

from curriculum.solutions.chapter2.bandits import argmax_random_tiebreak


@dataclass
class Model:
    rewards: Float[np.ndarray, "states actions"]
    transitions: Float[np.ndarray, "states actions next_states"]

    @property
    def n_states(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_actions(self) -> int:
        return self.rewards.shape[1]


def model_from_P(P: dict[int, dict[int, list[tuple]]]) -> Model:
    """Convert a gymnasium toy-text `P` table into a `Model`."""
    n_states, n_actions = len(P), len(P[0])
    rewards = np.zeros((n_states, n_actions))
    transitions = np.zeros((n_states, n_actions, n_states))
    for s in range(n_states):
        for a in range(n_actions):
            for prob, s2, r, terminated in P[s][a]:
                rewards[s, a] += prob * r
                if not terminated:
                    transitions[s, a, int(s2)] += prob
    return Model(rewards, transitions)


# Actions in the gridworld, in CliffWalking's order.
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVES = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}


def gridworld_P(size: int = 4) -> dict[int, dict[int, list[tuple]]]:
    """S&B example 4.1: a size x size grid, terminal corners 0 and size^2 - 1, reward -1 per move,
    moves off the grid leave the state unchanged. Terminal states absorb with reward 0."""
    n = size * size
    terminal = {0, n - 1}
    P: dict[int, dict[int, list[tuple]]] = {}
    for s in range(n):
        P[s] = {}
        row, col = divmod(s, size)
        for a, (dr, dc) in MOVES.items():
            if s in terminal:
                P[s][a] = [(1.0, s, 0.0, True)]
                continue
            r2, c2 = row + dr, col + dc
            s2 = r2 * size + c2 if 0 <= r2 < size and 0 <= c2 < size else s
            P[s][a] = [(1.0, s2, -1.0, s2 in terminal)]
    return P


def policy_evaluation(
    model: Model, policy: Float[np.ndarray, "states actions"], gamma: float, tol: float = 1e-8, max_sweeps: int = 100_000
) -> Float[np.ndarray, "states"]:
    """Iterative policy evaluation: repeat V <- sum_a pi(a|s) [r(s,a) + gamma sum_s' T(s,a,s') V(s')] until the
    largest change is below tol. `policy[s, a]` is the probability of action a in state s."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not np.allclose(policy.sum(-1), 1.0):
        raise ValueError("policy[s] must be a probability distribution over actions (rows summing to 1)")
    # EXERCISE: start from V = 0; each sweep compute Q = rewards + gamma * transitions @ V, then V_new = sum_a policy * Q; stop when max |V_new - V| < tol
    V = np.zeros(model.n_states)
    for _ in range(max_sweeps):
        Q = model.rewards + gamma * model.transitions @ V
        V_new = (policy * Q).sum(-1)
        if np.abs(V_new - V).max() < tol:
            return V_new
        V = V_new
    # END EXERCISE
    raise RuntimeError(f"policy evaluation did not converge in {max_sweeps} sweeps: with gamma = 1 the policy must "
                       "reach a terminal state from everywhere")


def exact_policy_evaluation(
    model: Model, policy: Float[np.ndarray, "states actions"], gamma: float
) -> Float[np.ndarray, "states"]:
    """V_pi in one linear solve: V = r_pi + gamma P_pi V, so V = (I - gamma P_pi)^{-1} r_pi, where
    r_pi[s] = sum_a pi(a|s) r(s, a) and P_pi[s, s'] = sum_a pi(a|s) T(s, a, s')."""
    if not np.allclose(policy.sum(-1), 1.0):
        raise ValueError("policy[s] must be a probability distribution over actions (rows summing to 1)")
    # EXERCISE: average rewards and transitions over the policy's actions to get r_pi (states,) and P_pi (states, states), then solve (I - gamma P_pi) V = r_pi
    r_pi = (policy * model.rewards).sum(-1)
    P_pi = np.einsum("sa,sat->st", policy, model.transitions)
    return np.linalg.solve(np.eye(model.n_states) - gamma * P_pi, r_pi)
    # END EXERCISE


def policy_improvement(model: Model, V: Float[np.ndarray, "states"], gamma: float) -> Float[np.ndarray, "states actions"]:
    """The deterministic policy greedy with respect to V (one-hot rows; ties go to the lowest action)."""
    # EXERCISE: compute Q from V with one Bellman backup and return one-hot rows of its argmax over actions
    Q = model.rewards + gamma * model.transitions @ V
    return np.eye(model.n_actions)[Q.argmax(-1)]
    # END EXERCISE


def policy_iteration(model: Model, gamma: float, max_iters: int = 1000) -> tuple[Float[np.ndarray, "states actions"], Float[np.ndarray, "states"]]:
    """Alternate evaluation and greedy improvement until the policy stops changing; return (policy, V)."""
    policy = np.full((model.n_states, model.n_actions), 1.0 / model.n_actions)
    for _ in range(max_iters):
        V = policy_evaluation(model, policy, gamma)
        new_policy = policy_improvement(model, V, gamma)
        # Compare values rather than actions: equally good actions could flip forever otherwise.
        if np.array_equal(new_policy, policy) or np.allclose(policy_evaluation(model, new_policy, gamma), V, atol=1e-6):
            return new_policy, V
        policy = new_policy
    raise RuntimeError(f"policy iteration did not converge in {max_iters} iterations")


def value_iteration(model: Model, gamma: float, tol: float = 1e-10) -> Float[np.ndarray, "states"]:
    """V* by repeated Bellman optimality backups (an independent route to what policy iteration finds)."""
    V = np.zeros(model.n_states)
    while True:
        V_new = (model.rewards + gamma * model.transitions @ V).max(-1)
        if np.abs(V_new - V).max() < tol:
            return V_new
        V = V_new


# ---- learning from experience: Q-learning and SARSA ----


def q_learning_update(
    Q: Float[np.ndarray, "states actions"], s: int, a: int, r: float, s_next: int, terminated: bool,
    alpha: float, gamma: float,
) -> None:
    """In place: Q(s,a) += alpha [r + gamma max_a' Q(s',a') - Q(s,a)], with no bootstrap term if terminated."""
    # EXERCISE: build the off-policy target (max over next actions, zero after termination) and move Q[s, a] toward it
    target = r + (0.0 if terminated else gamma * Q[s_next].max())
    Q[s, a] += alpha * (target - Q[s, a])
    # END EXERCISE


def sarsa_update(
    Q: Float[np.ndarray, "states actions"], s: int, a: int, r: float, s_next: int, a_next: int, terminated: bool,
    alpha: float, gamma: float,
) -> None:
    """In place: Q(s,a) += alpha [r + gamma Q(s',a') - Q(s,a)] with a' the action actually taken next."""
    # EXERCISE: build the on-policy target (the next action's value, zero after termination) and move Q[s, a] toward it
    target = r + (0.0 if terminated else gamma * Q[s_next, a_next])
    Q[s, a] += alpha * (target - Q[s, a])
    # END EXERCISE


def n_step_targets(
    rewards: Float[np.ndarray, "T"], values: Float[np.ndarray, "T_plus_1"], terminated: bool, n: int, gamma: float
) -> Float[np.ndarray, "T"]:
    """n-step TD targets for every time step of one trajectory s_0, a_0, r_0, s_1, ..., s_T.

    rewards[t] is the reward received on the step from s_t to s_{t+1}; values[t] is the current estimate
    V(s_t) for t = 0..T. The target for time t sums the next min(n, T - t) discounted rewards and, if the
    window ends before T, bootstraps from gamma^n V(s_{t+n}). If it reaches T, it bootstraps from V(s_T)
    only when the trajectory was cut short (truncated); after a termination nothing follows.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    T = len(rewards)
    if len(values) != T + 1:
        raise ValueError(f"values needs one entry per state s_0..s_T, {T + 1}, got {len(values)}")
    targets = np.zeros(T)
    # EXERCISE: for each t, sum gamma^k rewards[t + k] over the window k < min(n, T - t), then add gamma^m V(s_{t+m}) (m the window length) unless s_{t+m} is the terminal state
    for t in range(T):
        m = min(n, T - t)
        G = sum(gamma**k * rewards[t + k] for k in range(m))
        if not (t + m == T and terminated):
            G += gamma**m * values[t + m]
        targets[t] = G
    # END EXERCISE
    return targets


def random_walk_episode(rng: np.random.Generator, n_states: int = 19) -> tuple[np.ndarray, np.ndarray]:
    """S&B example 7.1: start in the middle of n_states states, step left or right with probability 1/2;
    leaving on the left ends the episode with reward -1, on the right with +1, every other reward is 0.
    Returns the visited non-terminal states s_0..s_{T-1} and the T rewards."""
    s, states, rewards = n_states // 2, [], []
    while 0 <= s < n_states:
        states.append(s)
        s += rng.choice((-1, 1))
        rewards.append(-1.0 if s < 0 else 1.0 if s >= n_states else 0.0)
    return np.array(states), np.array(rewards)


@dataclass
class TabularConfig:
    episodes: int = 500
    alpha: float = 0.5
    epsilon: float = 0.1
    gamma: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon is a probability and must be in [0, 1], got {self.epsilon}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha (the step size) must be in (0, 1], got {self.alpha}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be at least 1, got {self.episodes}")


def epsilon_greedy_action(q_row: Float[np.ndarray, "actions"], epsilon: float, rng: np.random.Generator) -> int:
    if rng.random() < epsilon:
        return int(rng.integers(len(q_row)))
    return argmax_random_tiebreak(q_row, rng)


def train_tabular(
    env: gym.Env, method: str, cfg: TabularConfig, progress: bool = True
) -> tuple[Float[np.ndarray, "states actions"], Float[np.ndarray, "episodes"]]:
    """Run `cfg.episodes` episodes of Q-learning or SARSA with an epsilon-greedy behaviour policy.
    Returns the Q-table and each episode's (undiscounted) return while learning."""
    if method not in ("q_learning", "sarsa"):
        raise ValueError(f'method must be "q_learning" or "sarsa", got {method!r}')
    rng = np.random.default_rng(cfg.seed)
    Q = np.zeros((env.observation_space.n, env.action_space.n))
    returns = np.zeros(cfg.episodes)
    for ep in tqdm(range(cfg.episodes), desc=method, disable=not progress):
        s, _ = env.reset(seed=cfg.seed + ep)
        a = epsilon_greedy_action(Q[s], cfg.epsilon, rng)
        done = False
        while not done:
            # EXERCISE: step with a, pick a_next epsilon-greedily from Q[s_next], apply the method's update (SARSA needs a_next), add r to returns[ep], move on; stop on terminated or truncated
            s_next, r, terminated, truncated, _ = env.step(a)
            a_next = epsilon_greedy_action(Q[s_next], cfg.epsilon, rng)
            if method == "sarsa":
                sarsa_update(Q, s, a, r, s_next, a_next, terminated, cfg.alpha, cfg.gamma)
            else:
                q_learning_update(Q, s, a, r, s_next, terminated, cfg.alpha, cfg.gamma)
            returns[ep] += r
            s, a, done = s_next, a_next, terminated or truncated
            # END EXERCISE
    return Q, returns


def greedy_rollout(env: gym.Env, Q: Float[np.ndarray, "states actions"], seed: int = 0, max_steps: int = 200) -> tuple[float, list[int]]:
    """Return and visited states of one episode acting greedily (ties to the lowest action) w.r.t. Q."""
    s, _ = env.reset(seed=seed)
    total, path = 0.0, [int(s)]
    for _ in range(max_steps):
        s, r, terminated, truncated, _ = env.step(int(Q[s].argmax()))
        total += r
        path.append(int(s))
        if terminated or truncated:
            break
    return total, path


def success_rate(env: gym.Env, policy: Int[np.ndarray, "states"], episodes: int = 1000, seed: int = 0) -> float:
    """Fraction of episodes reaching positive reward with a deterministic policy (FrozenLake's goal)."""
    wins = 0
    for ep in range(episodes):
        s, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(policy[s]))
            done = terminated or truncated
        wins += r > 0
    return wins / episodes
