"""Checks for section 2.2, DQN part: network, replay buffer, schedule, action selection, TD loss
(against a hand-computed target and torch.nn.functional), vector-env storage (autoreset and
terminated vs truncated), and the whole training loop on the probe environments."""

from __future__ import annotations

import warnings

import gymnasium as gym
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
def check_replay_buffer_add(ReplayBuffer):
    buf = _filled_buffer(ReplayBuffer, capacity=10, n=7)
    if len(buf) != 7 or buf.pos != 7:
        fail(f"after adding 7 transitions to an empty buffer of capacity 10, size and pos should both be 7, got "
             f"size {buf.size} and pos {buf.pos}: advance pos by n (modulo capacity) and size by n (capped at capacity)")
    if not np.array_equal(buf.obs[:7, 0], np.arange(7)):
        fail(f"the first 7 transitions should fill slots 0..6 in order, slots hold obs {buf.obs[:7, 0].tolist()}")
    buf = _filled_buffer(ReplayBuffer, capacity=10, n=25)
    if len(buf) != 10:
        fail(f"after adding 25 transitions to a buffer of capacity 10, len(buffer) should stay 10, got {len(buf)}")
    slots = buf.obs[:, 0].astype(int)
    if sorted(slots.tolist()) != list(range(15, 25)):
        fail(f"after 25 adds to capacity 10 the buffer should hold transitions 15..24 (each new one overwriting the "
             f"oldest), it holds {sorted(slots.tolist())}")
    if not np.array_equal(slots, np.arange(15, 25)[np.argsort(np.arange(15, 25) % 10)]) or buf.pos != 5:
        fail(f"transition i belongs in slot i % capacity (a ring buffer): slots hold {slots.tolist()}, pos = {buf.pos} "
             "(expected 5, the slot of the oldest transition, written next)")
    i = slots
    aligned = (np.array_equal(buf.obs[:, 1], -i) and np.array_equal(buf.next_obs, buf.obs + 1)
               and np.array_equal(buf.rewards, 10 * i) and np.array_equal(buf.actions, i % 2)
               and np.array_equal(buf.terminated, (i % 3 == 0).astype(np.float32)))
    if not aligned:
        fail("the five arrays disagree about which transition sits in a slot: write obs, actions, rewards, next_obs "
             "and terminated at the same indices")
    return "ring buffer keeps the newest 10 of 25 transitions, in slot i % capacity"


@check
def check_sample_batch(sample_batch):
    from curriculum.solutions.chapter2.dqn import ReplayBuffer

    buf = _filled_buffer(ReplayBuffer, capacity=10, n=25)
    first = sample_batch(buf, 10)
    for name, dtype in [("obs", torch.float32), ("actions", torch.int64), ("rewards", torch.float32),
                        ("next_obs", torch.float32), ("terminated", torch.float32)]:
        t = getattr(first, name, None)
        if not isinstance(t, torch.Tensor) or t.dtype != dtype:
            fail(f"batch.{name} should be a {dtype} tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    if first.obs.shape != (10, 2) or first.actions.shape != (10,):
        fail(f"a batch of 10 should have obs of shape (10, 2) and actions of shape (10,), got "
             f"{tuple(first.obs.shape)} and {tuple(first.actions.shape)}")
    samples = [sample_batch(buf, 10) for _ in range(200)]
    batch = type(first)(*(torch.cat([getattr(b, f) for b in samples]) for f in
                          ("obs", "actions", "rewards", "next_obs", "terminated")))
    i = batch.obs[:, 0].long()
    if sorted(set(i.tolist())) != list(range(15, 25)):
        fail(f"the buffer holds transitions 15..24 in its 10 slots, but the batches contain {sorted(set(i.tolist()))}: "
             "draw indices in [0, buffer.size)")
    aligned = (torch.equal(batch.obs[:, 1], -batch.obs[:, 0]) and torch.equal(batch.next_obs, batch.obs + 1)
               and torch.equal(batch.rewards, 10 * i.float()) and torch.equal(batch.actions, i % 2)
               and torch.equal(batch.terminated, (i % 3 == 0).float()))
    if not aligned:
        fail("the fields of a sampled transition come from different transitions: use the same indices for "
             "obs, actions, rewards, next_obs and terminated")
    counts = torch.bincount(i - 15, minlength=10).float() / 2000
    if (counts - 0.1).abs().max() > 0.04:
        fail(f"sampling should be uniform over stored transitions (each ~0.1), got frequencies {counts.numpy().round(3).tolist()}")
    partly = _filled_buffer(ReplayBuffer, capacity=10, n=6)
    seen = torch.cat([sample_batch(partly, 6).obs[:, 0] for _ in range(50)])
    if seen.max() > 5 or (seen == 0).float().mean() > 0.5:
        fail(f"a buffer of capacity 10 holding 6 transitions sampled slots beyond the filled ones (obs values "
             f"{sorted(set(seen.long().tolist()))}): draw from [0, buffer.size), not [0, capacity)")
    a = sample_batch(_filled_buffer(ReplayBuffer, 10, 25, seed=1), 8).obs
    b = sample_batch(_filled_buffer(ReplayBuffer, 10, 25, seed=1), 8).obs
    if not torch.equal(a, b):
        fail("two buffers with the same seed should sample the same indices: draw them with buffer.rng")
    return "uniform, seeded, and each transition's fields stay together"


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
            fn = F.mse_loss if kind == "mse" else F.smooth_l1_loss
            online_next = (batch.next_obs @ q_net.W).max(1).values.detach()
            online_target = batch.rewards + gamma * (1 - batch.terminated) * online_next
            q_max = (batch.obs @ q_net.W).max(1).values.detach()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the broadcasting bug below is exactly what torch warns about
                broadcast = fn(q_taken[:, None], target)
            diagnoses = [
                (fn(q_taken, no_mask), "You bootstrap from the terminal transition: multiply the next value by (1 - terminated)."),
                (fn(q_taken, online_target), "The target uses the online network's max over s': bootstrap from target_network, "
                                             "which lags behind, so the target does not move with every update."),
                (fn(q_max, target), "Q(s, a) is the max over actions: take the value of the action actually taken, "
                                    "q_network(obs).gather(1, actions[:, None]).squeeze(1)."),
                (broadcast, "Q(s, a) has shape (batch, 1) and the target (batch,): the loss broadcast them to (batch, batch). "
                            "Squeeze the gathered values to (batch,) before the loss."),
            ]
            if kind == "mse":
                diagnoses.append((F.smooth_l1_loss(q_taken, target), 'loss="mse" gave the Huber loss: choose F.mse_loss when kind is "mse".'))
            else:
                diagnoses.append((F.mse_loss(q_taken, target), 'loss="huber" should use F.smooth_l1_loss.'))
            for value, why in diagnoses:
                if torch.isclose(loss.detach(), value):
                    hint = why
                    break
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


def _params(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()]).clone()


class _LoopSpy:
    """Wraps the functions the training loop calls (looked up by name in the learner's namespace) and records
    what the loop passed to them, so the check can say which part of the loop is wrong."""

    NAMES = ("epsilon_greedy", "store_vector_step", "td_loss")

    def __init__(self, namespace: dict):
        self.ns, self.saved = namespace, {}
        self.epsilons: list[float] = []
        self.stores: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.losses: list[tuple[int, bool, torch.Tensor, torch.Tensor]] = []

    def __enter__(self):
        missing = [n for n in self.NAMES if n not in self.ns]
        if missing:
            fail(f"train_dqn's namespace has no {missing}: run the cells that define them first")
        self.saved = {n: self.ns[n] for n in self.NAMES}
        eps_fn, store_fn, loss_fn = (self.saved[n] for n in self.NAMES)

        def epsilon_greedy(q_network, obs, epsilon, rng):
            self.epsilons.append(float(epsilon))
            return eps_fn(q_network, obs, epsilon, rng)

        def store_vector_step(buffer, obs, actions, rewards, next_obs, terminated, autoreset):
            self.stores.append((np.array(obs, copy=True), np.array(next_obs, copy=True),
                                np.array(autoreset, dtype=bool, copy=True)))
            return store_fn(buffer, obs, actions, rewards, next_obs, terminated, autoreset)

        def td_loss(q_network, target_network, batch, gamma, loss="huber"):
            self.losses.append((len(batch.actions), target_network is q_network, _params(q_network),
                                _params(target_network)))
            return loss_fn(q_network, target_network, batch, gamma, loss)

        self.ns.update(epsilon_greedy=epsilon_greedy, store_vector_step=store_vector_step, td_loss=td_loss)
        return self

    def __exit__(self, *exc):
        self.ns.update(self.saved)
        return False


TRUNCATING_ENV_ID = "curriculum-check/NeverEnds-v0"


class _NeverEnds(gym.Env):
    """An episode that never terminates: only its time limit (2 steps) ends it, by truncation."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, False, False, {}


def _check_autoreset_after_truncation(train_dqn) -> None:
    """Probe 2's episodes end by termination; this one's end by truncation, which must set autoreset too."""
    from curriculum.solutions.chapter2.dqn import DQNConfig

    if TRUNCATING_ENV_ID not in gym.registry:
        gym.register(TRUNCATING_ENV_ID, entry_point=_NeverEnds, max_episode_steps=2)
    cfg = DQNConfig(env_id=TRUNCATING_ENV_ID, seed=0, num_envs=2, total_timesteps=18, buffer_size=64, batch_size=4,
                    hidden_sizes=(4,), learning_starts=1000, target_update_frequency=40)
    with _LoopSpy(train_dqn.__globals__) as spy:
        train_dqn(cfg, progress=False)
    # steps 1, 2 (truncated), then the reset step, and again: autoreset is set on every third iteration
    want = [k % 3 == 2 for k in range(len(spy.stores))]
    got = [bool(a.all()) for _, _, a in spy.stores]
    if got != want:
        k = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
        fail(f"on an env whose episodes end only by truncation (a 2-step time limit), store_vector_step got "
             f"autoreset = {got[k]} at iteration {k} (expected {want[k]}): a truncated episode is reset on the next "
             "step just like a terminated one, so set `autoreset = terminated | truncated`, not `terminated` alone")


def _check_loop_structure(train_dqn) -> str:
    """Run 60 iterations on Probe 2 (one-step episodes, random obs) with spies, and compare what the loop did with what the
    configuration asks for."""
    from curriculum.solutions.chapter2 import probes
    from curriculum.solutions.chapter2.dqn import DQNConfig, linear_schedule

    cfg = DQNConfig(env_id=probes.PROBES[2].env_id, seed=0, num_envs=4, total_timesteps=240, learning_rate=1e-2,
                    buffer_size=500, batch_size=16, hidden_sizes=(8,), start_epsilon=1.0, end_epsilon=0.1,
                    exploration_fraction=0.5, learning_starts=64, train_frequency=8, gradient_steps=2,
                    target_update_frequency=40, loss="mse")
    n_iters, train_every, target_every = 60, 2, 10  # what the config means in loop iterations (4 envs each)
    with _LoopSpy(train_dqn.__globals__) as spy:
        result = train_dqn(cfg, progress=False)

    # Storing: every iteration, with obs carried forward and autoreset set from the previous step's ends.
    if len(spy.stores) != n_iters:
        fail(f"store_vector_step was called {len(spy.stores)} times in {n_iters} iterations: store every step of the vector env")
    for k in range(1, n_iters):
        if not np.array_equal(spy.stores[k][0], spy.stores[k - 1][1]):
            fail(f"at iteration {k} the obs you stored is not the next_obs the previous step returned: after storing, "
                 "carry the new observation forward with `obs = next_obs`")
    # Probe 2 episodes last one step: every step alternates between ending the episode and being its reset step.
    for k, (_, _, autoreset) in enumerate(spy.stores):
        if autoreset.tolist() != [k % 2 == 1] * cfg.num_envs:
            fail(f"at iteration {k} store_vector_step got autoreset = {autoreset.tolist()}; on Probe 2 every episode ends "
                 f"after one step, so it should be {[k % 2 == 1] * cfg.num_envs}. After storing, set "
                 "`autoreset = terminated | truncated` (the next step of those sub-envs is only their reset).")

    _check_autoreset_after_truncation(train_dqn)

    # Acting: epsilon-greedy from learning_starts on, with epsilon from the linear schedule in env steps.
    acting = [it for it in range(n_iters) if it * cfg.num_envs >= cfg.learning_starts]
    if len(spy.epsilons) != len(acting):
        fail(f"epsilon_greedy was called {len(spy.epsilons)} times; with learning_starts = {cfg.learning_starts} and "
             f"{cfg.num_envs} envs it should act epsilon-greedily on the {len(acting)} iterations from env step "
             f"{cfg.learning_starts} on (random actions before that)")
    expected_eps = [linear_schedule(it * cfg.num_envs, 1.0, 0.1, 120) for it in acting]
    if not np.allclose(spy.epsilons, expected_eps):
        k = int(np.flatnonzero(~np.isclose(spy.epsilons, expected_eps))[0])
        fail(f"at env step {acting[k] * cfg.num_envs} epsilon was {spy.epsilons[k]:.4g}, expected {expected_eps[k]:.4g}: "
             "use linear_schedule(step, start_epsilon, end_epsilon, int(exploration_fraction * total_timesteps)) with "
             "step counted in env steps (iteration * num_envs)")

    # Learning: gradient_steps updates every train_every iterations, on full batches, with a separate target.
    train_iters = [it for it in acting if it % train_every == 0]
    if not spy.losses:
        fail("td_loss was never called: from learning_starts on, sample a batch and compute td_loss with it")
    if len(spy.losses) != len(train_iters) * cfg.gradient_steps:
        fail(f"td_loss was called {len(spy.losses)} times, expected {len(train_iters) * cfg.gradient_steps}: "
             f"{cfg.gradient_steps} gradient steps every train_frequency = {cfg.train_frequency} env steps "
             f"({train_every} iterations of {cfg.num_envs} envs), from learning_starts on")
    sizes = {n for n, _, _, _ in spy.losses}
    if sizes != {cfg.batch_size}:
        fail(f"td_loss got batches of sizes {sorted(sizes)}, expected {cfg.batch_size}: sample cfg.batch_size transitions")
    if any(same for _, same, _, _ in spy.losses):
        fail("td_loss was given the online network as its target network: pass target_network")
    q_moves = sum(not torch.equal(a[2], b[2]) for a, b in zip(spy.losses, spy.losses[1:]))
    if q_moves == 0:
        fail("the Q-network's weights never change between gradient steps: call loss.backward() and then "
             "optimizer.step() (after optimizer.zero_grad())")
    versions = 1 + sum(not torch.equal(a[3], b[3]) for a, b in zip(spy.losses, spy.losses[1:]))
    if versions == 1:
        fail("the target network never changed while training: every target_update_frequency env steps, move it "
             "towards the online network (p_target.lerp_(p, tau) for each pair of parameters)")
    if versions > 8:
        fail(f"the target network changed {versions - 1} times in {len(spy.losses)} gradient steps; with "
             f"target_update_frequency = {cfg.target_update_frequency} env steps it should change about every "
             f"{target_every} iterations (4 times here). Update it only when it % target_every == 0.")
    if len(result.losses) != len(train_iters):
        fail(f"the loop recorded {len(result.losses)} losses, expected one per training phase ({len(train_iters)}): "
             "assign each gradient step's loss to the variable `loss`, which the lines after your code read")
    return f"{len(spy.losses)} gradient steps, {versions - 1} target updates"


@check
def check_train_dqn_on_probes(train_dqn):
    """The loop's structure on a short run with spies, then a small DQN trained on each probe environment and
    its Q-values compared with the known answers."""
    from curriculum.solutions.chapter2 import probes
    from curriculum.solutions.chapter2.dqn import DQNConfig

    structure = _check_loop_structure(train_dqn)

    def train(env_id: str):
        result = train_dqn(probe_config(DQNConfig, env_id), progress=False)
        return result.q_network

    diagnosis = probes.diagnose(train, gamma=0.5, kind="q")
    if not diagnosis.ok:
        fail(str(diagnosis))
    return f"loop structure ({structure}) and all five probes passed"


def probe_config(DQNConfig, env_id: str, seed: int = 0):
    """A DQN small and fast enough for the probes: uniform exploration (DQN is off-policy), gamma 0.5."""
    return DQNConfig(env_id=env_id, seed=seed, num_envs=8, total_timesteps=1600, learning_rate=1e-2,
                     buffer_size=2000, gamma=0.5, batch_size=64, hidden_sizes=(32,), start_epsilon=1.0,
                     end_epsilon=1.0, learning_starts=200, train_frequency=8, gradient_steps=1,
                     target_update_frequency=100, loss="mse", solve_return=float("inf"))
