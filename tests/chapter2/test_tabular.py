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
