"""Probe environments: they pass gymnasium's own checker, their hand-computed values match Monte Carlo
returns, and the diagnosis names the bug for the classic value-learning mistakes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from curriculum.solutions.chapter2 import probes
from curriculum.solutions.chapter2.probes import PROBES

GAMMA = 0.5


@pytest.mark.parametrize("index", sorted(PROBES))
def test_probe_passes_gymnasium_env_checker(index):
    env = probes.make_probe(index)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.id == PROBES[index].env_id


@pytest.mark.parametrize("index", sorted(PROBES))
def test_expected_q_matches_monte_carlo_returns(index):
    """Roll each action from each start state and compare the discounted return with the table."""
    probe = PROBES[index]
    env = probes.make_probe(index)
    expected = probe.q_table(GAMMA)
    seen = {}
    for seed in range(20):
        for action in range(probe.n_actions):
            obs, _ = env.reset(seed=seed)
            start, ret, disc, done = float(obs[0]), 0.0, 1.0, False
            first = True
            while not done:
                a = action if first else int(np.argmax(expected[list(probe.test_obs[:, 0]).index(float(obs[0]))]))
                obs, r, term, trunc, _ = env.step(a)
                ret += disc * r
                disc *= GAMMA
                done, first = term or trunc, False
            seen[(start, action)] = ret
    for row, o in enumerate(probe.test_obs[:, 0]):
        if probe.index == 3 and o == 1.0:
            continue  # obs 1 is only reached mid-episode; its value is the last reward, covered by Q(0) = gamma * 1
        for a in range(probe.n_actions):
            assert seen[(float(o), a)] == pytest.approx(expected[row, a]), (index, o, a)


def test_vector_probe_resets_on_next_step():
    envs = gym.make_vec(PROBES[3].env_id, num_envs=2)
    obs, _ = envs.reset(seed=0)
    assert obs.ravel().tolist() == [0.0, 0.0]
    obs, r, term, _, _ = envs.step(np.zeros(2, dtype=np.int64))
    assert obs.ravel().tolist() == [1.0, 1.0] and not term.any()
    obs, r, term, _, _ = envs.step(np.zeros(2, dtype=np.int64))
    assert r.tolist() == [1.0, 1.0] and term.all()


def _table_q(q):
    q = torch.as_tensor(np.asarray(q), dtype=torch.float32)
    return lambda obs: q


@pytest.mark.parametrize("index", sorted(PROBES))
def test_correct_values_pass(index):
    assert probes.evaluate_q(index, _table_q(PROBES[index].q_table(GAMMA)), GAMMA).passed


@pytest.mark.parametrize(
    "index,q,needle",
    [
        (1, [[0.0]], "is the loss minimised"),
        (1, [[1 / (1 - GAMMA)]], "bootstrap through terminal"),
        (2, [[0.0], [0.0]], "does not depend on the observation"),
        (3, [[1.0], [1.0]], "discount factor is not applied"),
        (3, [[0.0], [1.0]], "does not bootstrap"),
        (4, [[0.0, 0.0]], "q.gather"),
        (4, [[1.0, -1.0]], "misaligned"),
        (5, [[0.0, 0.0], [0.0, 0.0]], "q.gather"),
        (5, [[-1.0, 1.0], [-1.0, 1.0]], "different transitions"),
    ],
)
def test_diagnosis_names_the_bug(index, q, needle):
    result = probes.evaluate_q(index, _table_q(q), GAMMA)
    assert not result.passed
    assert needle in result.message, result.message


def test_actor_critic_evaluation():
    good = probes.evaluate_actor_critic(5, lambda o: o.abs()[:, 0], lambda o: torch.cat([-5 * o, 5 * o], 1), GAMMA)
    assert good.passed, good.message
    wrong_policy = probes.evaluate_actor_critic(5, lambda o: o.abs()[:, 0], lambda o: torch.cat([5 * o, -5 * o], 1), GAMMA)
    assert not wrong_policy.passed and "wrong action" in wrong_policy.message
    v_shape = probes.evaluate_actor_critic(3, lambda o: torch.tensor([[GAMMA], [1.0]]), lambda o: torch.zeros(2, 1), GAMMA)
    assert v_shape.passed, v_shape.message  # a [k, 1] value head is accepted


def test_diagnose_reports_first_failure_and_bad_shapes():
    def train(env_id):
        idx = int(env_id.split("Probe")[1][0])
        q = PROBES[idx].q_table(GAMMA) * (0.0 if idx == 3 else 1.0)
        return _table_q(q)

    d = probes.diagnose(train, GAMMA)
    assert not d.ok and d.first_failure.probe.index == 3
    assert "First failure is probe 3" in str(d)
    with pytest.raises(probes.ProbeFailed, match="probe 3"):
        d.raise_if_failed()
    with pytest.raises(probes.ProbeFailed, match="shape"):
        probes.evaluate_q(4, _table_q([[1.0]]), GAMMA)
    with pytest.raises(ValueError, match="kind"):
        probes.diagnose(train, GAMMA, kind="policy")
    with pytest.raises(ValueError, match="probe index"):
        probes.make_probe(6)
