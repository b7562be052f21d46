"""Checks for section 2.2, tabular part: DP against Sutton & Barto's hand-solved gridworld and an
exact linear solve; Q-learning / SARSA updates on hand-computed cases; CliffWalking behaviour."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from curriculum.checking import check, fail

# S&B figure 4.1 (k = infinity): values of the equiprobable random policy on the 4x4 gridworld, gamma = 1.
RANDOM_POLICY_V = np.array([
    [0, -14, -20, -22],
    [-14, -18, -20, -20],
    [-20, -20, -18, -14],
    [-22, -20, -14, 0],
], dtype=float)
# Optimal values: minus the number of steps to the nearest terminal corner.
OPTIMAL_V = np.array([[-min(r + c, 6 - r - c) for c in range(4)] for r in range(4)], dtype=float)


def _gridworld_model():
    from curriculum.solutions.chapter2.tabular import gridworld_P, model_from_P

    return model_from_P(gridworld_P(4))


def _random_mdp(seed: int = 0, n_states: int = 6, n_actions: int = 3):
    """A random MDP with some terminating probability mass, for comparison with an exact linear solve."""
    from curriculum.solutions.chapter2.tabular import Model

    rng = np.random.default_rng(seed)
    raw = rng.random((n_states, n_actions, n_states + 1))  # last column: the episode ends
    raw /= raw.sum(-1, keepdims=True)
    return Model(rng.normal(size=(n_states, n_actions)), raw[..., :n_states])


def _as_array(x, shape, what: str) -> np.ndarray:
    if x is None:
        fail(f"{what} returned None: did you forget a `return`?")
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != shape:
        fail(f"{what} should have shape {shape}, got {arr.shape}")
    return arr


@check
def check_policy_evaluation(policy_evaluation):
    model = _gridworld_model()
    V = _as_array(policy_evaluation(model, np.full((16, 4), 0.25), 1.0), (16,), "policy_evaluation")
    if not np.allclose(V.reshape(4, 4), RANDOM_POLICY_V, atol=1e-3):
        hint = ""
        if V.min() < -30:
            hint = " Values are too negative: are you bootstrapping from terminal states? Use model.transitions, which drops them."
        elif np.allclose(V, 0):
            hint = " All zero: add the reward term r(s, a)."
        fail(f"on S&B's 4x4 gridworld the random policy's values should be\n{RANDOM_POLICY_V}\ngot\n"
             f"{np.round(V.reshape(4, 4), 2)}.{hint}")
    # Independent: V = r_pi + gamma T_pi V solved exactly.
    mdp = _random_mdp()
    rng = np.random.default_rng(1)
    pi = rng.random((6, 3))
    pi /= pi.sum(-1, keepdims=True)
    gamma = 0.9
    r_pi = (pi * mdp.rewards).sum(-1)
    T_pi = np.einsum("sa,sat->st", pi, mdp.transitions)
    exact = np.linalg.solve(np.eye(6) - gamma * T_pi, r_pi)
    got = _as_array(policy_evaluation(mdp, pi, gamma), (6,), "policy_evaluation")
    if not np.allclose(got, exact, atol=1e-5):
        fail(f"on a random MDP with gamma = 0.9, expected the exact solution of V = r_pi + gamma T_pi V = "
             f"{np.round(exact, 4).tolist()}, got {np.round(got, 4).tolist()}. Weight Q(s, a) by policy[s, a] and "
             "multiply the next-state values by gamma.")


@check
def check_policy_iteration(policy_improvement):
    from curriculum.solutions.chapter2.tabular import policy_iteration

    model = _gridworld_model()
    V = np.arange(16, dtype=float)  # any V: the greedy policy must pick the successor with the largest V - 1
    pi = _as_array(policy_improvement(model, V, 1.0), (16, 4), "policy_improvement")
    if not np.allclose(pi.sum(-1), 1.0) or not np.isin(pi, [0.0, 1.0]).all():
        fail("policy_improvement should return a deterministic policy: one-hot rows of shape (n_states, n_actions)")
    q = model.rewards + model.transitions @ V
    chosen = q[np.arange(16), pi.argmax(-1)]
    if not np.allclose(chosen, q.max(-1)):
        s = int(np.flatnonzero(~np.isclose(chosen, q.max(-1)))[0])
        fail(f"in state {s} the greedy action should maximise r(s,a) + gamma * sum_s' T(s,a,s') V(s') = "
             f"{np.round(q[s], 3).tolist()}, but your policy picks action {int(pi[s].argmax())}. Use argmax, not argmin.")
    _, V_star = policy_iteration(model, 1.0)
    if not np.allclose(np.asarray(V_star).reshape(4, 4), OPTIMAL_V, atol=1e-3):
        fail(f"policy iteration on the gridworld should reach the optimal values\n{OPTIMAL_V}\ngot\n"
             f"{np.round(np.asarray(V_star).reshape(4, 4), 2)}")
    # Independent route on FrozenLake: value iteration written out here.
    from curriculum.solutions.chapter2.tabular import model_from_P

    lake = model_from_P(gym.make("FrozenLake-v1").unwrapped.P)
    V_vi = np.zeros(lake.n_states)
    for _ in range(5000):
        V_vi = (lake.rewards + 0.95 * lake.transitions @ V_vi).max(-1)
    _, V_pi = policy_iteration(lake, 0.95)
    if not np.allclose(V_pi, V_vi, atol=1e-4):
        fail(f"on FrozenLake-v1 (gamma = 0.95) policy iteration should match value iteration's V* "
             f"{np.round(V_vi, 3).tolist()}, got {np.round(V_pi, 3).tolist()}")


@check
def check_q_learning_update(q_learning_update):
    Q = np.array([[0.0, 1.0], [2.0, 4.0], [0.0, 0.0]])
    q_learning_update(Q, 0, 1, r=1.0, s_next=1, terminated=False, alpha=0.5, gamma=0.9)
    # target = 1 + 0.9 * max(2, 4) = 4.6; Q[0, 1] = 1 + 0.5 * (4.6 - 1) = 2.8
    if not np.isclose(Q[0, 1], 2.8):
        hint = " You used the mean/next-action value instead of max_a' Q(s', a')." if np.isclose(Q[0, 1], 1 + 0.5 * (1 + 0.9 * 3 - 1)) else ""
        fail(f"Q[0, 1] should be 1 + 0.5 * (1 + 0.9 * max(2, 4) - 1) = 2.8, got {Q[0, 1]:.4g}.{hint}")
    if not np.array_equal(np.delete(Q.ravel(), 1), [0.0, 2.0, 4.0, 0.0, 0.0]):
        fail("only Q[s, a] should change; update the table in place at [s, a]")
    Q = np.array([[0.0, 1.0], [2.0, 4.0]])
    q_learning_update(Q, 0, 1, r=1.0, s_next=1, terminated=True, alpha=0.5, gamma=0.9)
    if not np.isclose(Q[0, 1], 1.0):
        fail(f"after a terminating transition the target is just the reward: Q[0, 1] should be 1 + 0.5 * (1 - 1) = 1.0, "
             f"got {Q[0, 1]:.4g}. Don't bootstrap from next states when terminated.")


@check
def check_sarsa_update(sarsa_update):
    Q = np.array([[0.0, 1.0], [2.0, 4.0]])
    sarsa_update(Q, 0, 1, r=1.0, s_next=1, a_next=0, terminated=False, alpha=0.5, gamma=0.9)
    # target = 1 + 0.9 * Q[1, 0] = 2.8; Q[0, 1] = 1 + 0.5 * 1.8 = 1.9
    if not np.isclose(Q[0, 1], 1.9):
        hint = " That is the Q-learning update: SARSA uses Q(s', a') of the action actually taken next." if np.isclose(Q[0, 1], 2.8) else ""
        fail(f"Q[0, 1] should be 1 + 0.5 * (1 + 0.9 * Q[1, 0] - 1) = 1.9, got {Q[0, 1]:.4g}.{hint}")
    Q = np.array([[0.0, 1.0], [2.0, 4.0]])
    sarsa_update(Q, 0, 1, r=-1.0, s_next=1, a_next=1, terminated=True, alpha=0.5, gamma=0.9)
    if not np.isclose(Q[0, 1], 0.0):
        fail(f"after a terminating transition the target is just the reward: Q[0, 1] should be 1 + 0.5 * (-1 - 1) = 0.0, "
             f"got {Q[0, 1]:.4g}")


@check
def check_cliff_walking(train_tabular):
    """S&B example 6.6: Q-learning's greedy path hugs the cliff (return -13); SARSA's stays away from it."""
    from curriculum.solutions.chapter2.tabular import TabularConfig, greedy_rollout

    env = gym.make("CliffWalking-v1")
    cfg = TabularConfig(episodes=300, alpha=0.5, epsilon=0.1, gamma=1.0, seed=0)
    Q_q, _ = train_tabular(env, "q_learning", cfg, progress=False)
    Q_s, _ = train_tabular(env, "sarsa", cfg, progress=False)
    ret_q, path_q = greedy_rollout(env, Q_q)
    ret_s, path_s = greedy_rollout(env, Q_s)
    if ret_q != -13:
        fail(f"Q-learning's greedy policy should walk the optimal path along the cliff (return -13), got {ret_q} "
             f"via states {path_q}")
    if not -21 <= ret_s < -13:
        fail(f"SARSA's greedy policy should take a safer, longer path (return between -21 and -15), got {ret_s} via {path_s}. "
             "Is SARSA bootstrapping from the action it actually takes next?")
    return f"Q-learning return {ret_q:.0f} (cliff edge), SARSA return {ret_s:.0f} (safe path)"


def _iterative_evaluation(model, pi, gamma: float, sweeps: int = 5000) -> np.ndarray:
    """Independent reference for the linear solve: apply the Bellman expectation backup until it settles."""
    V = np.zeros(model.n_states)
    for _ in range(sweeps):
        V_new = (pi * (model.rewards + gamma * model.transitions @ V)).sum(-1)
        if np.abs(V_new - V).max() < 1e-12:
            break
        V = V_new
    return V_new


def _linear_solve_bug(got: np.ndarray, model, pi, gamma: float) -> str:
    """Name the bug if `got` is what a plausible mistake in the linear solve gives."""
    r_pi = (pi * model.rewards).sum(-1)
    P_pi = np.einsum("sa,sat->st", pi, model.transitions)
    eye = np.eye(model.n_states)
    diagnoses = [
        (lambda: np.linalg.solve(eye - gamma * P_pi.T, r_pi),
         ("P_pi is transposed: row s of P_pi must hold the probabilities of moving FROM s, so that (P_pi @ V)[s] "
          "is the expected next value seen from s. Build it as P_pi[s, s'] = sum_a policy[s, a] transitions[s, a, s'].")),
        (lambda: np.linalg.solve(eye - P_pi, r_pi), "gamma is missing: solve (I - gamma P_pi) V = r_pi."),
        (lambda: np.linalg.solve(eye - gamma * P_pi, P_pi @ r_pi),
         ("the reward is indexed by the next state: r(s, a) is already the expected reward of taking a in s "
          "(model_from_P averaged it over next states), so r_pi = sum_a policy[s, a] rewards[s, a], with no P_pi in front.")),
        (lambda: np.linalg.solve(eye - gamma * P_pi, model.rewards.mean(-1)),
         "the actions are averaged uniformly: weight rewards[s, a] by policy[s, a]."),
    ]
    for candidate, msg in diagnoses:
        try:
            if np.allclose(got, candidate(), atol=1e-6):
                return msg
        except np.linalg.LinAlgError:  # e.g. I - P_pi is singular without the discount
            continue
    return ("r_pi[s] = sum_a policy[s, a] rewards[s, a], P_pi[s, s'] = sum_a policy[s, a] transitions[s, a, s'], "
            "then np.linalg.solve(I - gamma P_pi, r_pi).")


@check
def check_exact_policy_evaluation(exact_policy_evaluation):
    # A random MDP whose transitions are far from symmetric, so a transposed P_pi gives different values.
    mdp = _random_mdp(seed=3)
    rng = np.random.default_rng(4)
    pi = rng.random((6, 3))
    pi /= pi.sum(-1, keepdims=True)
    gamma = 0.8
    expected = _iterative_evaluation(mdp, pi, gamma)
    got = _as_array(exact_policy_evaluation(mdp, pi, gamma), (6,), "exact_policy_evaluation")
    if not np.allclose(got, expected, atol=1e-6):
        fail(f"on a random MDP (gamma = 0.8) iterative policy evaluation gives V = {np.round(expected, 4).tolist()}, "
             f"your linear solve gives {np.round(got, 4).tolist()}. {_linear_solve_bug(got, mdp, pi, gamma)}")
    model = _gridworld_model()
    uniform = np.full((16, 4), 0.25)
    V = _as_array(exact_policy_evaluation(model, uniform, 1.0), (16,), "exact_policy_evaluation")
    if not np.allclose(V.reshape(4, 4), RANDOM_POLICY_V, atol=1e-6):
        fail(f"on S&B's 4x4 gridworld (gamma = 1) the random policy's values should be\n{RANDOM_POLICY_V}\ngot\n"
             f"{np.round(V.reshape(4, 4), 2)}. {_linear_solve_bug(V, model, uniform, 1.0)}")
    return f"matches iterative policy evaluation to {np.abs(got - expected).max():.1e} and S&B's figure 4.1"


def _n_step_reference(rewards, values, terminated, n, gamma):
    """Independent reference: the definition, one return at a time, with the terminal value set to zero."""
    T = len(rewards)
    v = np.array(values, dtype=float)
    if terminated:
        v[T] = 0.0
    out = []
    for t in range(T):
        end = min(t + n, T)
        out.append(sum(gamma ** (k - t) * rewards[k] for k in range(t, end)) + gamma ** (end - t) * v[end])
    return np.array(out)


@check
def check_n_step_targets(n_step_targets):
    rewards = np.array([1.0, 0.0, 2.0, -1.0, 3.0])
    values = np.array([0.5, -0.5, 1.0, 2.0, -2.0, 10.0])  # V(s_5) = 10 is large, so bootstrapping from it shows
    gamma = 0.5
    # A worked case, by hand: n = 2 at t = 0 is r_0 + gamma r_1 + gamma^2 V(s_2) = 1 + 0 + 0.25 * 1 = 1.25.
    got = _as_array(n_step_targets(rewards, values, True, 2, gamma), (5,), "n_step_targets")
    if not np.isclose(got[0], 1.25):
        hint = ""
        if np.isclose(got[0], 1 + 0.5 * 0 + 0.25 * 2 + 0.125 * 2):
            hint = " That sums n + 1 rewards: the window holds exactly n rewards, r_t .. r_{t+n-1}, then V(s_{t+n})."
        elif any(np.isclose(got[0], x) for x in (1 + 0.5 * 1.0, 1 + 0.25 * -0.5, 1 + 0.5 * -0.5, 1 + 0.25 * 2.0)):
            hint = " The bootstrap term is off by one: after n rewards the next state is s_{t+n}, discounted by gamma^n."
        fail(f"with n = 2 and gamma = 0.5, the target at t = 0 is r_0 + gamma r_1 + gamma^2 V(s_2) = 1 + 0 + 0.25 * 1 = 1.25, "
             f"got {got[0]:.4g}.{hint}")
    for terminated in (True, False):
        for n in (1, 2, 3, 5, 8):
            expected = _n_step_reference(rewards, values, terminated, n, gamma)
            got = _as_array(n_step_targets(rewards, values, terminated, n, gamma), (5,), "n_step_targets")
            if np.allclose(got, expected):
                continue
            t = int(np.flatnonzero(~np.isclose(got, expected))[0])
            hint = ""
            if terminated and np.allclose(got, _n_step_reference(rewards, values, False, n, gamma)):
                hint = (" You bootstrap through the terminal state: when the window reaches the end of a terminated "
                        "episode, nothing follows, so add no V(s_T) term (V(s_T) = 10 here only to make this visible).")
            elif not terminated and np.allclose(got, _n_step_reference(rewards, values, True, n, gamma)):
                hint = (" This trajectory was truncated, not terminated: the state s_T still has a future, so a window that "
                        "reaches T bootstraps from gamma^(T - t) V(s_T).")
            elif t + n > 5:
                hint = " The mistake is near the end, where the window is cut short: it holds min(n, T - t) rewards."
            fail(f"n = {n}, gamma = 0.5, terminated = {terminated}: expected targets {np.round(expected, 4).tolist()}, "
                 f"got {np.round(got, 4).tolist()} (first difference at t = {t}).{hint}")
    one_step = n_step_targets(rewards, values, False, 1, gamma)
    if not np.allclose(one_step, rewards + gamma * values[1:]):
        fail("n = 1 should give the TD(0) target r_t + gamma V(s_{t+1})")
    return "n = 1 is TD(0), n >= T is the Monte Carlo return, and the end of the episode is handled both ways"
