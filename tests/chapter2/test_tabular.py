"""Section 2.2 (tabular): mutants each check must catch, plus model and config reliability."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from curriculum.solutions.chapter2 import tabular as S
from curriculum.checks.chapter2 import tabular as T
from tests.support import assert_check_fails


def test_model_from_gymnasium_P_matches_known_cliff_walking_optimum():
    env = gym.make("CliffWalking-v1")
    model = S.model_from_P(env.unwrapped.P)
    assert np.allclose(model.transitions.sum(-1) <= 1 + 1e-12, True)
    assert S.value_iteration(model, 1.0)[36] == pytest.approx(-13.0)  # start state: 13 steps along the cliff edge
    _, V = S.policy_iteration(model, 0.9)
    assert np.allclose(S.value_iteration(model, 0.9), V, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [(dict(epsilon=-0.1), "epsilon"), (dict(alpha=0.0), "alpha"),
                                          (dict(gamma=1.5), "gamma"), (dict(episodes=0), "episodes")])
def test_bad_tabular_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.TabularConfig(**kwargs)


def test_bad_policy_and_method_raise():
    model = S.model_from_P(S.gridworld_P())
    with pytest.raises(ValueError, match="probability distribution"):
        S.policy_evaluation(model, np.ones((16, 4)), 1.0)
    with pytest.raises(ValueError, match="method"):
        S.train_tabular(gym.make("CliffWalking-v1"), "td_lambda", S.TabularConfig(episodes=1), progress=False)


def test_tabular_training_is_reproducible_and_learns_frozen_lake():
    env = gym.make("FrozenLake-v1", is_slippery=False)
    cfg = S.TabularConfig(episodes=300, alpha=0.5, epsilon=0.2, gamma=0.9, seed=3)
    Q1, R1 = S.train_tabular(env, "q_learning", cfg, progress=False)
    Q2, R2 = S.train_tabular(env, "q_learning", cfg, progress=False)
    assert np.array_equal(Q1, Q2) and np.array_equal(R1, R2)
    assert S.success_rate(env, Q1.argmax(1), episodes=5) == 1.0


# ---- mutants ----


def eval_ignores_gamma(model, policy, gamma, tol=1e-8):
    return S.policy_evaluation(model, policy, 1.0 if gamma > 0.95 else min(1.0, gamma + 0.09), tol)


def eval_uniform_weights(model, policy, gamma, tol=1e-8):
    return S.policy_evaluation(model, np.full_like(policy, 1.0 / policy.shape[1]), gamma, tol)


def eval_max_not_expectation(model, policy, gamma, tol=1e-8):
    V = np.zeros(model.n_states)
    for _ in range(10_000):
        V_new = (model.rewards + gamma * model.transitions @ V).max(-1)
        if np.abs(V_new - V).max() < tol:
            break
        V = V_new
    return V_new


def eval_one_sweep(model, policy, gamma, tol=1e-8):
    return (policy * (model.rewards + gamma * model.transitions @ np.zeros(model.n_states))).sum(-1)


def improvement_argmin(model, V, gamma):
    return np.eye(model.n_actions)[(model.rewards + gamma * model.transitions @ V).argmin(-1)]


def improvement_indices(model, V, gamma):
    return (model.rewards + gamma * model.transitions @ V).argmax(-1)


def q_no_terminal_mask(Q, s, a, r, s_next, terminated, alpha, gamma):
    Q[s, a] += alpha * (r + gamma * Q[s_next].max() - Q[s, a])


def q_mean_not_max(Q, s, a, r, s_next, terminated, alpha, gamma):
    Q[s, a] += alpha * (r + (0 if terminated else gamma * Q[s_next].mean()) - Q[s, a])


def q_replace_not_step(Q, s, a, r, s_next, terminated, alpha, gamma):
    Q[s, a] = r + (0 if terminated else gamma * Q[s_next].max())


def sarsa_uses_max(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    S.q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma)


def sarsa_no_terminal_mask(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    Q[s, a] += alpha * (r + gamma * Q[s_next, a_next] - Q[s, a])


def train_sarsa_as_q_learning(env, method, cfg, progress=True):
    return S.train_tabular(env, "q_learning", cfg, progress)


def train_greedy_only(env, method, cfg, progress=True):
    """Forgets to explore: epsilon = 0 from the start."""
    return S.train_tabular(env, method, S.TabularConfig(cfg.episodes, cfg.alpha, 0.0, cfg.gamma, cfg.seed), progress)


@pytest.mark.parametrize(
    "check,mutant",
    [
        (T.check_policy_evaluation, eval_ignores_gamma),
        (T.check_policy_evaluation, eval_uniform_weights),
        (T.check_policy_evaluation, eval_max_not_expectation),
        (T.check_policy_evaluation, eval_one_sweep),
        (T.check_policy_iteration, improvement_argmin),
        (T.check_policy_iteration, improvement_indices),
        (T.check_q_learning_update, q_no_terminal_mask),
        (T.check_q_learning_update, q_mean_not_max),
        (T.check_q_learning_update, q_replace_not_step),
        (T.check_sarsa_update, sarsa_uses_max),
        (T.check_sarsa_update, sarsa_no_terminal_mask),
        (T.check_cliff_walking, train_sarsa_as_q_learning),
        (T.check_cliff_walking, train_greedy_only),
    ],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_check_catches_mutant(check, mutant):
    assert_check_fails(check, mutant)


# ---- exact policy evaluation and n-step targets ----


def _r_and_P(model, policy):
    return (policy * model.rewards).sum(-1), np.einsum("sa,sat->st", policy, model.transitions)


def exact_transposed(model, policy, gamma):
    r_pi, P_pi = _r_and_P(model, policy)
    return np.linalg.solve(np.eye(model.n_states) - gamma * P_pi.T, r_pi)


def exact_missing_gamma(model, policy, gamma):
    r_pi, P_pi = _r_and_P(model, policy)
    return np.linalg.solve(np.eye(model.n_states) - P_pi, r_pi)


def exact_reward_of_next_state(model, policy, gamma):
    r_pi, P_pi = _r_and_P(model, policy)
    return np.linalg.solve(np.eye(model.n_states) - gamma * P_pi, P_pi @ r_pi)


def exact_uniform_actions(model, policy, gamma):
    return S.exact_policy_evaluation(model, np.full_like(policy, 1.0 / policy.shape[1]), gamma)


def n_step_window_too_long(rewards, values, terminated, n, gamma):
    return S.n_step_targets(rewards, values, terminated, n + 1, gamma)


def n_step_bootstrap_one_early(rewards, values, terminated, n, gamma):
    T, out = len(rewards), []
    for t in range(T):
        m = min(n, T - t)
        G = sum(gamma**k * rewards[t + k] for k in range(m))
        if not (t + m == T and terminated):
            G += gamma**m * values[t + m - 1]
        out.append(G)
    return np.array(out)


def n_step_through_terminal(rewards, values, terminated, n, gamma):
    return S.n_step_targets(rewards, values, False, n, gamma)


def n_step_truncated_as_terminal(rewards, values, terminated, n, gamma):
    return S.n_step_targets(rewards, values, True, n, gamma)


def n_step_gamma_off_by_one(rewards, values, terminated, n, gamma):
    T, out = len(rewards), []
    for t in range(T):
        m = min(n, T - t)
        G = sum(gamma ** (k + 1) * rewards[t + k] for k in range(m))
        if not (t + m == T and terminated):
            G += gamma**m * values[t + m]
        out.append(G)
    return np.array(out)


def test_exact_evaluation_agrees_with_iteration_on_frozen_lake():
    lake = S.model_from_P(gym.make("FrozenLake-v1").unwrapped.P)
    policy = np.full((lake.n_states, lake.n_actions), 0.25)
    assert np.allclose(S.exact_policy_evaluation(lake, policy, 0.95), S.policy_evaluation(lake, policy, 0.95), atol=1e-6)


def test_n_step_with_long_window_is_the_monte_carlo_return():
    rewards = np.array([1.0, 2.0, 3.0])
    G = S.n_step_targets(rewards, np.full(4, 7.0), True, 10, 0.9)
    assert np.allclose(G, [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3])
    with pytest.raises(ValueError, match="n must be"):
        S.n_step_targets(rewards, np.zeros(4), True, 0, 0.9)
    with pytest.raises(ValueError, match="values"):
        S.n_step_targets(rewards, np.zeros(3), True, 1, 0.9)


@pytest.mark.parametrize(
    "check,mutant_fn,match",
    [
        (T.check_exact_policy_evaluation, exact_transposed, "transposed"),
        (T.check_exact_policy_evaluation, exact_missing_gamma, "gamma is missing"),
        (T.check_exact_policy_evaluation, exact_reward_of_next_state, "indexed by the next state"),
        (T.check_exact_policy_evaluation, exact_uniform_actions, "uniformly|r_pi"),
        (T.check_n_step_targets, n_step_window_too_long, "n \\+ 1 rewards"),
        (T.check_n_step_targets, n_step_bootstrap_one_early, "off by one"),
        (T.check_n_step_targets, n_step_through_terminal, "bootstrap through the terminal"),
        (T.check_n_step_targets, n_step_truncated_as_terminal, "truncated, not terminated"),
        (T.check_n_step_targets, n_step_gamma_off_by_one, "1.25"),
    ],
    ids=lambda x: getattr(x, "__name__", None) if callable(x) else None,
)
def test_new_checks_name_the_bug(check, mutant_fn, match):
    assert_check_fails(check, mutant_fn, match=match)
