"""Checks for section 2.2, DQN part: network, replay buffer, schedule, action selection, TD loss
(against a hand-computed target and torch.nn.functional), vector-env storage (autoreset and
terminated vs truncated), and the whole training loop on the probe environments."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curriculum.checking import assert_close, assert_shape, check, fail, module_instance


@check
def check_q_network(QNetwork):
    torch.manual_seed(0)
    net = module_instance(QNetwork, 4, 2, (32, 16))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    if shapes != [(4, 32), (32, 16), (16, 2)]:
        fail(f"expected Linear layers (in, out) = [(4, 32), (32, 16), (16, 2)], got {shapes}: one hidden layer per "
             "entry of hidden_sizes, then a final layer to n_actions")
    out = assert_shape(net(torch.randn(5, 4)), (5, 2), "QNetwork output")
    # Q-values can be negative and unbounded: there must be no activation after the last layer.
    x = torch.randn(256, 4) * 3
    with torch.no_grad():
        for m in linears:
            m.bias.fill_(-1.0)
        if (net(x) >= 0).all():
            fail("every Q-value is non-negative even with negative biases: remove the activation after the final Linear")
    return f"output shape {tuple(out.shape)}"


def _filled_buffer(ReplayBuffer, capacity: int, n: int, seed: int = 0):
    buf = ReplayBuffer(capacity, (2,), seed=seed)
    i = np.arange(n)
    # Transition i is recognisable from every field: obs = (i, -i), next_obs = obs + 1, reward = 10 i.
    for chunk in np.array_split(i, max(1, n // 3)):
        obs = np.stack([chunk, -chunk], 1).astype(np.float32)
        buf.add(obs, chunk % 2, (10 * chunk).astype(np.float32), obs + 1, chunk % 3 == 0)
    return buf


@check
def check_replay_buffer(ReplayBuffer):
    buf = _filled_buffer(ReplayBuffer, capacity=10, n=7)
    if len(buf) != 7:
        fail(f"after adding 7 transitions to a buffer of capacity 10, len(buffer) should be 7, got {len(buf)}")
    buf = _filled_buffer(ReplayBuffer, capacity=10, n=25)
    if len(buf) != 10:
        fail(f"after adding 25 transitions to a buffer of capacity 10, len(buffer) should stay 10, got {len(buf)}")
    first = buf.sample(10)
    for name, dtype in [("obs", torch.float32), ("actions", torch.int64), ("rewards", torch.float32),
                        ("next_obs", torch.float32), ("terminated", torch.float32)]:
        t = getattr(first, name)
        if not isinstance(t, torch.Tensor) or t.dtype != dtype:
            fail(f"batch.{name} should be a {dtype} tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    if first.obs.shape != (10, 2) or first.actions.shape != (10,):
        fail(f"a batch of 10 should have obs of shape (10, 2) and actions of shape (10,), got "
             f"{tuple(first.obs.shape)} and {tuple(first.actions.shape)}")
    samples = [buf.sample(10) for _ in range(200)]
    batch = type(first)(*(torch.cat([getattr(b, f) for b in samples]) for f in
                          ("obs", "actions", "rewards", "next_obs", "terminated")))
    i = batch.obs[:, 0].long()
    if sorted(set(i.tolist())) != list(range(15, 25)):
        fail(f"after 25 adds to capacity 10 the buffer should hold transitions 15..24 (the oldest overwritten), "
             f"sampled {sorted(set(i.tolist()))}")
    aligned = (torch.equal(batch.obs[:, 1], -batch.obs[:, 0]) and torch.equal(batch.next_obs, batch.obs + 1)
               and torch.equal(batch.rewards, 10 * i.float()) and torch.equal(batch.actions, i % 2)
               and torch.equal(batch.terminated, (i % 3 == 0).float()))
    if not aligned:
        fail("the fields of a sampled transition come from different transitions: use the same indices for "
             "obs, actions, rewards, next_obs and terminated")
    counts = torch.bincount(i - 15, minlength=10).float() / 2000
    if (counts - 0.1).abs().max() > 0.04:
        fail(f"sampling should be uniform over stored transitions (each ~0.1), got frequencies {counts.numpy().round(3).tolist()}")
    small = _filled_buffer(ReplayBuffer, capacity=10, n=3)
    try:
        small.sample(5)
    except ValueError:
        pass
    else:
        fail("sampling 5 transitions from a buffer holding 3 should raise ValueError (not silently sample zeros)")
    a = _filled_buffer(ReplayBuffer, 10, 25, seed=1).sample(8).obs
    b = _filled_buffer(ReplayBuffer, 10, 25, seed=1).sample(8).obs
    if not torch.equal(a, b):
        fail("two buffers with the same seed should sample the same indices: draw them with self.rng")


@check
def check_linear_schedule(linear_schedule):
    cases = [(0, 1.0), (250, 0.7625), (500, 0.525), (1000, 0.05), (5000, 0.05)]
    for step, expected in cases:
        got = linear_schedule(step, 1.0, 0.05, 1000)
        if not isinstance(got, (float, int, np.floating)) or abs(got - expected) > 1e-9:
            hint = " After `duration` steps epsilon must stay at `end`." if step > 1000 else ""
            fail(f"linear_schedule({step}, start=1.0, end=0.05, duration=1000) should be {expected}, got {got}.{hint}")


class _FixedQ(nn.Module):
    """Q(obs) = obs @ W: lets the check choose greedy actions exactly."""

    def __init__(self, W: torch.Tensor):
        super().__init__()
        self.W = nn.Parameter(W)

    def forward(self, obs):
        return obs @ self.W


@check
def check_epsilon_greedy(epsilon_greedy):
    net = _FixedQ(torch.eye(3))
    obs = np.eye(3, dtype=np.float32)[[2, 0, 1, 2]]  # greedy actions are 2, 0, 1, 2
    rng = np.random.default_rng(0)
    got = np.asarray(epsilon_greedy(net, obs, 0.0, rng))
    if got.shape != (4,):
        fail(f"epsilon_greedy should return one action per observation, shape (4,), got {got.shape}")
    if got.tolist() != [2, 0, 1, 2]:
        fail(f"with epsilon = 0 the actions should be the argmax of the Q-values, [2, 0, 1, 2], got {got.tolist()}")
    n = 3000
    many = np.eye(3, dtype=np.float32)[np.zeros(n, dtype=int)]  # greedy action 0 everywhere
    acts = np.asarray(epsilon_greedy(net, many, 0.3, np.random.default_rng(1)))
    freq = np.bincount(acts, minlength=3) / n
    expected = np.array([0.7 + 0.1, 0.1, 0.1])
    if np.abs(freq - expected).max() > 0.04:
        fail(f"with epsilon = 0.3 and 3 actions, expected action frequencies ≈ {expected.tolist()} (exploring uniformly "
             f"over ALL actions, independently per env), got {freq.round(3).tolist()}")
    a1 = np.asarray(epsilon_greedy(net, many[:50], 0.5, np.random.default_rng(7)))
    a2 = np.asarray(epsilon_greedy(net, many[:50], 0.5, np.random.default_rng(7)))
    if not np.array_equal(a1, a2):
        fail("the same rng seed should give the same actions: draw random numbers from the rng argument")


@check
def check_td_loss(td_loss):
    from curriculum.solutions.chapter2.dqn import ReplayBatch

    # Q(s) = s @ W; the target network has different weights so using the wrong network shows.
    q_net = _FixedQ(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
    target_net = _FixedQ(torch.tensor([[0.5, 4.0], [-2.0, 1.0]]))
    batch = ReplayBatch(
        obs=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        actions=torch.tensor([0, 0, 0]),  # the first is not the argmax, so max != gather
        rewards=torch.tensor([1.0, -1.0, 0.5]),
        next_obs=torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]]),
        terminated=torch.tensor([0.0, 1.0, 0.0]),
    )
    gamma = 0.9
    q_taken = torch.tensor([1.0, 3.0, 4.0])
    # max_a Q_target(s'): [max(-2, 1), max(0.5, 4), max(1, 8)] = [1, 4, 8]; the 2nd transition is terminal.
    target = torch.tensor([1.0 + 0.9 * 1.0, -1.0, 0.5 + 0.9 * 8.0])
    for kind, ref in [("mse", F.mse_loss(q_taken, target)), ("huber", F.smooth_l1_loss(q_taken, target))]:
        q_net.zero_grad()
        target_net.zero_grad()
        loss = td_loss(q_net, target_net, batch, gamma, kind)
        hint = ""
        no_mask = torch.tensor([1.0 + 0.9, -1.0 + 0.9 * 4.0, 0.5 + 0.9 * 8.0])
        if torch.is_tensor(loss) and loss.numel() == 1:
            if torch.isclose(loss.detach(), (F.mse_loss if kind == "mse" else F.smooth_l1_loss)(q_taken, no_mask)):
                hint = "You bootstrap from the terminal transition: multiply the next value by (1 - terminated)."
            elif kind == "huber" and torch.isclose(loss.detach(), F.mse_loss(q_taken, target)):
                hint = 'loss="huber" should use F.smooth_l1_loss.'
        if torch.is_tensor(loss) and loss.numel() != 1:
            fail(f"td_loss should return a scalar (the mean over the batch), got shape {tuple(loss.shape)}")
        assert_close(loss, ref, f"td_loss ({kind})", hint=hint or
                     "Q(s, a) = q_network(obs).gather(1, actions); target = r + gamma (1 - terminated) max_a' target_network(s', a').")
        loss.backward()
        if target_net.W.grad is not None and target_net.W.grad.abs().sum() > 0:
            fail("gradients flow into the target network: compute the target under torch.no_grad() (or .detach() it)")
        if q_net.W.grad is None:
            fail("no gradient reaches the Q-network: don't compute Q(s, a) under torch.no_grad()")


@check
def check_store_vector_step(store_vector_step):
    from curriculum.solutions.chapter2.dqn import ReplayBuffer

    buf = ReplayBuffer(16, (1,), seed=0)
    obs = np.array([[0.0], [1.0], [2.0]], dtype=np.float32)
    next_obs = obs + 10
    actions = np.array([0, 1, 0])
    rewards = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    # env 0 terminated now, env 1 was truncated by a time limit now, env 2 was reset by this step.
    terminated = np.array([True, False, False])
    autoreset = np.array([False, False, True])
    n = store_vector_step(buf, obs, actions, rewards, next_obs, terminated, autoreset)
    if len(buf) != 2:
        fail(f"2 real transitions happened (env 2 only autoreset on this step), but the buffer holds {len(buf)}. "
             "gymnasium 1.x resets on the step AFTER termination/truncation: skip sub-envs whose previous step ended.")
    if n != 2:
        fail(f"store_vector_step should return the number of stored transitions, 2, got {n}")
    stored = sorted(zip(buf.obs[:2, 0].tolist(), buf.terminated[:2].tolist()))
    if stored != [(0.0, 1.0), (1.0, 0.0)]:
        hint = ""
        if stored == [(0.0, 1.0), (1.0, 1.0)]:
            hint = (" You stored terminated | truncated: a truncated episode did not really end, so its target must "
                    "still bootstrap from next_obs. Store `terminated` only.")
        fail(f"expected (obs, terminated) pairs [(0.0, 1.0), (1.0, 0.0)] in the buffer, got {stored}.{hint}")
    if not np.array_equal(buf.next_obs[:2, 0], [10.0, 11.0]):
        fail(f"next_obs should be stored as returned by the env (the true final obs), got {buf.next_obs[:2, 0].tolist()}")


@check
def check_train_dqn_on_probes(train_dqn):
    """Train a small DQN on each probe environment and compare its Q-values with the known answers."""
    from curriculum.solutions.chapter2 import probes
    from curriculum.solutions.chapter2.dqn import DQNConfig

    def train(env_id: str):
        result = train_dqn(probe_config(DQNConfig, env_id), progress=False)
        return result.q_network

    diagnosis = probes.diagnose(train, gamma=0.5, kind="q")
    if not diagnosis.ok:
        fail(str(diagnosis))
    return "all five probes passed"


def probe_config(DQNConfig, env_id: str, seed: int = 0):
    """A DQN small and fast enough for the probes: uniform exploration (DQN is off-policy), gamma 0.5."""
    return DQNConfig(env_id=env_id, seed=seed, num_envs=8, total_timesteps=1600, learning_rate=1e-2,
                     buffer_size=2000, gamma=0.5, batch_size=64, hidden_sizes=(32,), start_epsilon=1.0,
                     end_epsilon=1.0, learning_starts=200, train_frequency=8, gradient_steps=1,
                     target_update_frequency=100, loss="mse", solve_return=float("inf"))
