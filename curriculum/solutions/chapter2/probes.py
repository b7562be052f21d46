"""Probe environments: five tiny gymnasium envs whose correct values are known by hand.

Andy Jones' "Debugging RL" trick: before CartPole, train the agent on environments so simple that
each one can only fail for one reason. Run them in order; the first that fails names the broken
component.

| probe | obs            | actions | episode        | reward                 | what a failure means          |
|-------|----------------|---------|----------------|------------------------|-------------------------------|
| 1     | 0              | 1       | 1 step         | +1                     | value loss / optimiser        |
| 2     | random ±1      | 1       | 1 step         | obs                    | network ignores the obs       |
| 3     | 0, then 1      | 1       | 2 steps        | 0, then +1             | discounting / bootstrapping   |
| 4     | 0              | 2       | 1 step         | +1 for action 1, else -1 | action selection / gather   |
| 5     | random ±1      | 2       | 1 step         | +1 if action == (obs>0) else -1 | obs-action alignment |

Observations are always `Box(-1, 1, (1,), float32)`; the final observation of an episode equals
the last one seen, so an agent that bootstraps through a terminal state learns values near
1/(1-gamma) and gets told so.

Stable API (section 2.3 imports it; do not rename):

    from curriculum.solutions.chapter2 import probes
    probes.PROBES[i]                  # Probe, i in 1..5: .env_id ("curriculum/Probe{i}-v0"), .n_actions,
                                      #   .description, .component, .test_obs (float32 [k, 1]),
                                      #   .expected_q(gamma) -> [k, n_actions], .expected_v(gamma) -> [k],
                                      #   .best_action -> int64 [k] (None for one-action probes)
    probes.make_probe(i)              # gym.make(PROBES[i].env_id); importing this module registers them
    probes.evaluate_q(i, q_fn, gamma)                      -> ProbeResult
    probes.evaluate_actor_critic(i, value_fn, logits_fn, gamma) -> ProbeResult
    probes.diagnose(train, gamma, kind="q" | "actor_critic", probes=(1, 2, 3, 4, 5)) -> Diagnosis

    q_fn(obs: Float[Tensor, "k 1"]) -> Float[Tensor, "k n_actions"]
    value_fn(obs) -> Float[Tensor, "k"] (or "k 1");  logits_fn(obs) -> Float[Tensor, "k n_actions"]
    train(env_id: str) -> q_fn               (kind="q")
    train(env_id: str) -> (value_fn, logits_fn)  (kind="actor_critic")

Train on probes with a small discount (gamma = 0.5 is a good choice): with gamma = 0.99, probe 3's
Q(obs 0) = 0.99 cannot be told apart from a missing discount within the tolerance.

`Diagnosis.ok` is True when every probe passed; `str(diagnosis)` is a report naming the first
broken component and what to look at; `diagnosis.raise_if_failed()` raises `ProbeFailed` with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from jaxtyping import Float
from torch import Tensor

OBS_SPACE = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


class ProbeFailed(AssertionError):
    """Raised by `Diagnosis.raise_if_failed`; the message names the broken component."""


class _ProbeEnv(gym.Env[np.ndarray, np.int64]):
    """Shared plumbing: 1-d float observations, discrete actions, no rendering."""

    metadata = {"render_modes": []}
    n_actions = 1

    def __init__(self) -> None:
        self.observation_space = OBS_SPACE
        self.action_space = spaces.Discrete(self.n_actions)
        self._obs = np.zeros(1, dtype=np.float32)

    def _random_sign(self) -> np.ndarray:
        return np.array([self.np_random.choice([-1.0, 1.0])], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._obs = self._first_obs()
        return self._obs.copy(), {}

    def _first_obs(self) -> np.ndarray:
        return np.zeros(1, dtype=np.float32)


class Probe1Env(_ProbeEnv):
    """One action, observation 0, one step, reward +1. Q(0) = 1."""

    def step(self, action):
        return self._obs.copy(), 1.0, True, False, {}


class Probe2Env(_ProbeEnv):
    """One action, observation ±1, one step, reward = observation. Q(±1) = ±1."""

    def _first_obs(self) -> np.ndarray:
        return self._random_sign()

    def step(self, action):
        return self._obs.copy(), float(self._obs[0]), True, False, {}


class Probe3Env(_ProbeEnv):
    """One action, observation 0 then 1, reward 0 then +1. Q(0) = gamma, Q(1) = 1."""

    def step(self, action):
        if self._obs[0] == 0.0:
            self._obs = np.ones(1, dtype=np.float32)
            return self._obs.copy(), 0.0, False, False, {}
        return self._obs.copy(), 1.0, True, False, {}


class Probe4Env(_ProbeEnv):
    """Two actions, observation 0, one step, reward +1 for action 1 and -1 for action 0."""

    n_actions = 2

    def step(self, action):
        return self._obs.copy(), 1.0 if int(action) == 1 else -1.0, True, False, {}


class Probe5Env(_ProbeEnv):
    """Two actions, observation ±1, one step, reward +1 if action == (obs > 0) else -1."""

    n_actions = 2

    def _first_obs(self) -> np.ndarray:
        return self._random_sign()

    def step(self, action):
        good = int(action) == int(self._obs[0] > 0)
        return self._obs.copy(), 1.0 if good else -1.0, True, False, {}


@dataclass(frozen=True)
class Probe:
    index: int
    env_id: str
    n_actions: int
    description: str
    component: str  # what is broken if this is the first probe to fail
    test_obs: np.ndarray  # float32 [k, 1]: the observations the values are checked at
    q_table: Callable[[float], np.ndarray]  # gamma -> [k, n_actions]
    best_action: np.ndarray | None  # int64 [k]

    def expected_q(self, gamma: float) -> Float[Tensor, "k n_actions"]:
        return torch.tensor(self.q_table(gamma), dtype=torch.float32)

    def expected_v(self, gamma: float) -> Float[Tensor, "k"]:
        """Values under the optimal policy (what a trained critic should converge to)."""
        return self.expected_q(gamma).max(dim=-1).values


_ZERO = np.array([[0.0]], dtype=np.float32)
_SIGNS = np.array([[-1.0], [1.0]], dtype=np.float32)

PROBES: dict[int, Probe] = {
    1: Probe(1, "curriculum/Probe1-v0", 1, "constant obs, one step, reward +1",
             "the value loss or the optimiser (the network cannot even learn a constant)",
             _ZERO, lambda g: np.array([[1.0]]), None),
    2: Probe(2, "curriculum/Probe2-v0", 1, "obs ±1, one step, reward = obs",
             "the network's use of the observation (values do not depend on obs)",
             _SIGNS, lambda g: np.array([[-1.0], [1.0]]), None),
    3: Probe(3, "curriculum/Probe3-v0", 1, "obs 0 then 1, reward 0 then +1 (two steps)",
             "discounting / bootstrapping from the next state",
             np.array([[0.0], [1.0]], dtype=np.float32), lambda g: np.array([[g], [1.0]]), None),
    4: Probe(4, "curriculum/Probe4-v0", 2, "constant obs, one step, reward +1 for action 1, -1 for action 0",
             "action selection: the value of the action actually taken (gather / log-prob indexing)",
             _ZERO, lambda g: np.array([[-1.0, 1.0]]), np.array([1])),
    5: Probe(5, "curriculum/Probe5-v0", 2, "obs ±1, one step, reward +1 if action == (obs > 0) else -1",
             "pairing observations with actions (batches shuffled or misaligned)",
             _SIGNS, lambda g: np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([0, 1])),
}

_ENV_CLASSES = {1: Probe1Env, 2: Probe2Env, 3: Probe3Env, 4: Probe4Env, 5: Probe5Env}


def register_probes() -> None:
    """Register curriculum/Probe{1..5}-v0 with gymnasium (idempotent; done on import)."""
    for i, probe in PROBES.items():
        if probe.env_id not in gym.registry:
            gym.register(id=probe.env_id, entry_point=f"{__name__}:{_ENV_CLASSES[i].__name__}")


register_probes()


def make_probe(index: int, **kwargs) -> gym.Env:
    if index not in PROBES:
        raise ValueError(f"probe index must be one of {sorted(PROBES)}, got {index!r}")
    return gym.make(PROBES[index].env_id, **kwargs)


@dataclass
class ProbeResult:
    probe: Probe
    passed: bool
    message: str  # empty when passed

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗"
        return f"{mark} probe {self.probe.index} ({self.probe.description})" + ("" if self.passed else f": {self.message}")


def _to_numpy(x, what: str, shape: tuple[int, ...]) -> np.ndarray:
    if x is None:
        raise ProbeFailed(f"{what} returned None: did you forget a `return`?")
    arr = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    if arr.shape != shape and arr.size == int(np.prod(shape)):
        arr = arr.reshape(shape)  # accept value heads of shape [k, 1] for [k]
    if arr.shape != shape:
        raise ProbeFailed(f"{what} should return shape {shape} for a batch of {shape[0]} observations, got {arr.shape}")
    return arr


def _fmt(a: np.ndarray) -> str:
    a = np.asarray(a, dtype=np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0 for printing
    return np.array2string(a, precision=3, suppress_small=True).replace("\n", "")


def _value_hint(probe: Probe, got: np.ndarray, expected: np.ndarray, gamma: float) -> str:
    """Name the likely bug from the values learned, beyond the probe's general component."""
    blowup = 1.0 / (1.0 - gamma) if gamma < 1 else np.inf
    if np.abs(got).max() > 1.5 and np.abs(got).max() > 0.5 * blowup:
        return ("values grow towards 1/(1-gamma): you bootstrap through terminal states. Multiply the next-state "
                "value by (1 - terminated) in the TD target.")
    if probe.index == 1 and abs(got[0, 0]) < 0.2:
        return "the value stayed near 0: is the loss minimised (optimizer.step(), zero_grad) and is the reward in the target?"
    if probe.index == 2 and abs(got[0, 0] - got[1, 0]) < 0.3:
        return ("Q(-1) ≈ Q(+1): the network output does not depend on the observation. Are you feeding obs (not a "
                "constant or the next obs) to the network, with obs and rewards taken at the same indices?")
    if probe.index == 3:
        q0 = got[0, 0]
        if abs(q0 - 1.0) < 0.05 and abs(gamma - 1.0) > 0.05:
            return "Q(obs 0) ≈ 1 instead of gamma: the discount factor is not applied to the next-state value."
        if abs(q0) < 0.2:
            return ("Q(obs 0) ≈ 0: the target does not bootstrap from the next state (is every transition stored as "
                    "terminated, or is next_obs the same as obs?).")
    two_actions = got.shape[1] == 2
    if two_actions and np.all(np.abs(got[:, 0] - got[:, 1]) < 0.3):
        return ("Q(a=0) ≈ Q(a=1): every action is trained toward the same target. Select the taken action's value, "
                "e.g. q.gather(1, actions[:, None]).")
    if two_actions and np.all(np.sign(got) == -np.sign(expected)):
        return "the values are swapped between actions: actions and rewards are misaligned in your batch."
    if two_actions and probe.index == 5 and np.allclose(got[0], got[1], atol=0.3):
        return "the action values are the same for obs -1 and +1: observations and actions come from different transitions."
    return f"look at {probe.component}."


def evaluate_q(
    index: int, q_fn: Callable[[Tensor], Tensor], gamma: float, atol: float = 0.1
) -> ProbeResult:
    """Compare a trained Q-function with the probe's hand-computed Q-values."""
    probe = PROBES[index]
    expected = probe.q_table(gamma)
    with torch.no_grad():
        got = _to_numpy(q_fn(torch.from_numpy(probe.test_obs)), "q_fn", expected.shape)
    err = np.abs(got - expected).max()
    if err <= atol:
        return ProbeResult(probe, True, "")
    msg = (f"Q at obs {probe.test_obs[:, 0].tolist()} should be {_fmt(expected)}, "
           f"got {_fmt(got)} (largest error {err:.3g} > {atol}). "
           f"Likely broken: {_value_hint(probe, got, expected, gamma)}")
    return ProbeResult(probe, False, msg)


def evaluate_actor_critic(
    index: int,
    value_fn: Callable[[Tensor], Tensor],
    logits_fn: Callable[[Tensor], Tensor],
    gamma: float,
    atol: float = 0.15,
    min_prob: float = 0.9,
) -> ProbeResult:
    """Check the critic against the optimal values and (two-action probes) the policy's best-action probability."""
    probe = PROBES[index]
    obs = torch.from_numpy(probe.test_obs)
    k = len(probe.test_obs)
    with torch.no_grad():
        values = _to_numpy(value_fn(obs), "value_fn", (k,))
        logits = _to_numpy(logits_fn(obs), "logits_fn", (k, probe.n_actions))
    expected_v = probe.expected_v(gamma).double().numpy()
    if probe.best_action is not None:
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        p_best = probs[np.arange(k), probe.best_action]
        if (p_best < min_prob).any():
            hint = ("the policy prefers the wrong action: check the sign of the policy-gradient loss "
                    "(minimise -advantage * log_prob) and that log-probs are of the actions taken"
                    if (p_best < 0.5).any() else
                    "the policy learns too slowly: is the advantage normalised/sign-correct, the entropy bonus small?")
            return ProbeResult(probe, False,
                               f"P(best action) at obs {probe.test_obs[:, 0].tolist()} should be >= {min_prob}, "
                               f"got {_fmt(p_best)}. Likely broken: {hint}")
    err = np.abs(values - expected_v).max()
    if err > atol:
        hint = _value_hint(probe, values[:, None], expected_v[:, None], gamma)
        return ProbeResult(probe, False,
                           f"V at obs {probe.test_obs[:, 0].tolist()} should be {_fmt(expected_v)}, got {_fmt(values)} "
                           f"(largest error {err:.3g} > {atol}). Likely broken: {hint}")
    return ProbeResult(probe, True, "")


@dataclass
class Diagnosis:
    results: list[ProbeResult]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def first_failure(self) -> ProbeResult | None:
        return next((r for r in self.results if not r.passed), None)

    def __str__(self) -> str:
        lines = [str(r) for r in self.results]
        if (f := self.first_failure) is not None:
            lines.append(f"First failure is probe {f.probe.index}: fix {f.probe.component} first; "
                         "later probes depend on the earlier ones.")
        else:
            lines.append("All probes passed.")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise ProbeFailed(str(self))


def diagnose(
    train: Callable[[str], object],
    gamma: float,
    kind: str = "q",
    probes: Sequence[int] = (1, 2, 3, 4, 5),
    atol: float | None = None,
) -> Diagnosis:
    """Train a fresh agent on each probe (`train(env_id)`) and check what it learned.

    kind="q": train returns q_fn.  kind="actor_critic": train returns (value_fn, logits_fn).
    """
    if kind not in ("q", "actor_critic"):
        raise ValueError(f'kind must be "q" or "actor_critic", got {kind!r}')
    results = []
    for i in probes:
        trained = train(PROBES[i].env_id)
        if kind == "q":
            results.append(evaluate_q(i, trained, gamma, atol=0.1 if atol is None else atol))
        else:
            if not (isinstance(trained, tuple) and len(trained) == 2):
                raise ProbeFailed("for kind='actor_critic', train(env_id) must return (value_fn, logits_fn)")
            results.append(evaluate_actor_critic(i, *trained, gamma, atol=0.15 if atol is None else atol))
    return Diagnosis(results)
