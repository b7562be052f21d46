"""Checks for section 1.2 (the training pipeline): one per exercise, each against an independent reference.

- memmap batches: windows located in the raw data, every valid offset reachable, only the given generator used
- LR schedule: torch's own LinearLR + CosineAnnealingLR chained with SequentialLR
- parameter groups: the set of W_* matrices, each trainable parameter exactly once
- gradient accumulation: the gradient of one big batch computed by plain autograd
- FLOPs per token: torch's FlopCounterMode counting the real forward + backward
- checkpoints: an uninterrupted run against a saved-and-restored one, step for step
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from curriculum.solutions.chapter1.gpt2 import GPT2, Config
from curriculum.checking import assert_close, assert_equal, assert_scalar_close, assert_shape, check, fail


def tiny_gpt2(seed: int = 0, tied: bool = True, attn_impl: str = "manual", n_ctx: int = 32, d_vocab: int = 97) -> GPT2:
    torch.manual_seed(seed)
    cfg = Config(d_model=32, n_layers=2, n_heads=4, d_head=8, d_mlp=128, d_vocab=d_vocab, n_ctx=n_ctx,
                 attn_impl=attn_impl, tie_embeddings=tied)
    return GPT2(cfg)


def _reference_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


# ---------------------------------------------------------------------------------------------


@check
def check_get_batch(get_batch) -> None:
    # Distinct ids near the top of the uint16 range: an int16 cast or a wrong window shows at once.
    n, block, batch = 40, 6, 5
    values = ((np.arange(n) * 2477 + 60_000) % 65_536).astype(np.uint16)
    position = {int(v): i for i, v in enumerate(values)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        values.tofile(path)
        data = np.memmap(path, dtype=np.uint16, mode="r")
        global_state = torch.get_rng_state()
        x, y = get_batch(data, batch, block, torch.Generator().manual_seed(0))
        if not torch.equal(torch.get_rng_state(), global_state):
            fail("get_batch changed torch's global RNG: draw offsets with torch.randint(..., generator=generator), "
                 "so the generator's state alone is the data position a checkpoint saves")
        for name, t in (("x", x), ("y", y)):
            assert_shape(t, (batch, block), name)
            if t.dtype != torch.int64:
                fail(f"{name} has dtype {t.dtype}; convert the uint16 ids to int64 (np.int64 / torch.long): "
                     f"embeddings and cross_entropy need int64, and int16 wraps ids above 32,767")
        for row in range(batch):
            start = position.get(int(x[row, 0]), -1)
            expected_x = torch.from_numpy(values[start : start + block].astype(np.int64))
            if start < 0 or start + block >= n or not torch.equal(x[row], expected_x):
                fail(f"x[{row}] is not a contiguous window of the data: slice data[i : i + block_size]")
            expected_y = torch.from_numpy(values[start + 1 : start + block + 1].astype(np.int64))
            if not torch.equal(y[row], expected_y):
                hint = " (y equals x: shift the targets by one token)" if torch.equal(y[row], x[row]) else ""
                fail(f"y[{row}] should be x[{row}] shifted left by one token, data[i + 1 : i + 1 + block_size]{hint}")
        again = get_batch(data, batch, block, torch.Generator().manual_seed(0))
        assert_equal(again[0], x, "x drawn twice from generators with the same seed",
                     hint="the batch must depend only on the generator's state")
        # Every valid start 0 .. n - block - 1 must be reachable: the last one's target ends on the final token.
        xs, _ = get_batch(data, 3000, block, torch.Generator().manual_seed(1))
        starts = {position[int(v)] for v in xs[:, 0]}
        missing = sorted(set(range(n - block)) - starts)
        if missing:
            fail(f"start offsets {missing} never came up in 3000 draws: torch.randint's upper bound is exclusive, "
                 f"so use len(data) - block_size")


@check
def check_lr_at(lr_at) -> None:
    max_lr, min_lr, warmup, max_steps = 1e-3, 1e-4, 10, 100
    # Independent reference: torch's schedulers. LinearLR climbs from max_lr/warmup to max_lr at step
    # warmup-1; CosineAnnealingLR then falls from max_lr to min_lr over max_steps - warmup steps.
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=max_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, total_iters=warmup - 1),
         torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_steps - warmup, eta_min=min_lr)],
        milestones=[warmup],
    )
    for step in range(max_steps):
        expected = opt.param_groups[0]["lr"]
        got = lr_at(step, max_lr, min_lr, warmup, max_steps)
        phase = "warmup: max_lr * (step + 1) / warmup_steps" if step < warmup else (
            "cosine: min_lr + 0.5 * (1 + cos(pi * (step - warmup_steps) / (max_steps - warmup_steps))) * (max_lr - min_lr)")
        assert_scalar_close(got, expected, f"lr_at({step}) ({'warmup' if step < warmup else 'cosine'} phase)",
                            rel=1e-6, abs_=1e-12, hint=phase)
        opt.step()
        sched.step()
    for step in (max_steps, max_steps + 1, 3 * max_steps):
        assert_scalar_close(lr_at(step, max_lr, min_lr, warmup, max_steps), min_lr, f"lr_at({step}) after max_steps",
                            rel=1e-9, hint="past max_steps the rate stays at min_lr (a cosine would climb back up)")


@check
def check_param_groups(param_groups) -> None:
    for tied in (True, False):
        model = tiny_gpt2(tied=tied)
        groups = param_groups(model, 0.1)
        if not isinstance(groups, list) or len(groups) != 2 or not all(isinstance(g, dict) for g in groups):
            fail("return a list of two dicts: [{'params': decay, 'weight_decay': wd}, {'params': no_decay, 'weight_decay': 0.0}]")
        assert_scalar_close(groups[0].get("weight_decay", -1), 0.1, "the first group's weight_decay")
        assert_scalar_close(groups[1].get("weight_decay", -1), 0.0, "the second group's weight_decay")
        name_of = {id(p): name for name, p in model.named_parameters()}
        seen: list[str] = []
        for g, label in zip(groups, ("decay", "no-decay")):
            for p in g.get("params", []):
                if id(p) not in name_of:
                    fail(f"the {label} group holds a tensor that is not one of the model's parameters")
                seen.append(name_of[id(p)])
        duplicates = sorted({n for n in seen if seen.count(n) > 1})
        if duplicates:
            fail(f"{duplicates} appear more than once: AdamW would update them twice per step")
        frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
        if set(frozen) & set(seen):
            fail(f"{sorted(set(frozen) & set(seen))} have requires_grad=False: leave frozen parameters out")
        missing = sorted({n for n, p in model.named_parameters() if p.requires_grad} - set(seen))
        if missing:
            fail(f"trainable parameters {missing} are in neither group")
        decayed = {name_of[id(p)] for p in groups[0]["params"]}
        expected = {n for n, p in model.named_parameters() if p.requires_grad and n.split(".")[-1].startswith("W_")}
        wrongly = sorted(decayed - expected)
        if wrongly:
            hint = " (b_Q/b_K/b_V are [n_heads, d_head]: p.dim() >= 2 does not mean 'matrix' here)" if any(
                n.endswith(("b_Q", "b_K", "b_V")) for n in wrongly) else ""
            fail(f"{wrongly[:4]} get weight decay but are biases or LayerNorm parameters{hint}")
        if expected - decayed:
            fail(f"weight matrices {sorted(expected - decayed)[:4]} should get weight decay")
        torch.optim.AdamW(groups, lr=1e-3)  # the groups must be usable as they are


@check
def check_accumulate_gradients(accumulate_gradients) -> None:
    model = tiny_gpt2(seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 97, (8, 12), generator=g)
    y = torch.randint(0, 97, (8, 12), generator=g)
    ref_loss = _reference_loss(model, x, y)
    ref_grads = torch.autograd.grad(ref_loss, list(model.parameters()), allow_unused=True)
    micro = [(x[i : i + 2], y[i : i + 2]) for i in range(0, 8, 2)]

    entered = []

    @contextlib.contextmanager
    def counting_autocast():
        entered.append(1)
        yield

    model.zero_grad(set_to_none=True)
    got_loss = accumulate_gradients(model, micro, None, counting_autocast)
    assert_scalar_close(got_loss, ref_loss.item(), "the returned loss (mean over micro-batches)", rel=1e-5,
                        hint="return the sum of the scaled micro-batch losses")
    for (name, p), ref in zip(model.named_parameters(), ref_grads):
        if ref is None:
            continue
        if p.grad is None:
            fail(f"{name}.grad is None after accumulate_gradients: call backward on each micro-batch's loss")
        ratio = (p.grad.norm() / ref.norm().clamp_min(1e-12)).item()
        hint = f"the accumulated gradient is {ratio:.3g}x the big-batch one"
        if abs(ratio - len(micro)) < 0.1:
            hint += ": divide each micro-batch loss by the number of micro-batches"
        elif abs(ratio - 1 / len(micro)) < 0.05:
            hint += ": only one micro-batch's gradient survived (zero_grad inside the loop? backward once at the end?)"
        assert_close(p.grad, ref, f"{name}.grad", atol=1e-6, rtol=1e-4, hint=hint)
    if len(entered) != len(micro):
        fail(f"autocast() was entered {len(entered)} times for {len(micro)} micro-batches: run each forward pass inside `with autocast():`")

    # With a GradScaler (fp16 training) backward must go through scaler.scale(loss).
    model.zero_grad(set_to_none=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    accumulate_gradients(model, micro, scaler)
    name, p = next(iter(model.named_parameters()))
    assert_close(p.grad, 8.0 * ref_grads[0], f"{name}.grad with a GradScaler of scale 8", atol=1e-5, rtol=1e-4,
                 hint="backpropagate scaler.scale(loss), not loss, when a scaler is given")


@check
def check_flops_per_token(flops_per_token, mfu) -> str:
    seq = 64
    model = tiny_gpt2(n_ctx=seq, d_vocab=512)  # n_ctx = seq so the position table is big enough to matter
    x = torch.randint(0, 512, (2, seq), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        _reference_loss(model, x, x).backward()
    measured = counter.get_total_flops() / x.numel()
    got = flops_per_token(model, seq)
    if not isinstance(got, (int, float)):
        fail(f"flops_per_token should return a number, got {type(got).__name__}")
    cfg = model.cfg
    n_all = sum(p.numel() for p in model.parameters())
    n_pos = sum(p.numel() for p in model.pos_embed.parameters())
    attn = 12 * cfg.n_layers * seq * cfg.d_model
    hints = {
        2 * (n_all - n_pos) + attn // 3: "that is the forward pass only: training adds backward, 2x forward",
        6 * (n_all - n_pos): "the attention term 12 * n_layers * seq_len * d_model is missing",
        6 * n_all + attn: "the position embedding is a lookup, not a matmul: leave W_pos out of N",
        6 * (n_all - n_pos) + attn // 2: "attention costs 12 (not 6) * n_layers * seq_len * d_model: 2 matmuls x 2 FLOPs x 3 passes",
    }
    if abs(got / measured - 1) > 0.03:
        hint = next((h for v, h in hints.items() if abs(got / v - 1) < 1e-3), "expected 6N + 12 * n_layers * seq_len * d_model")
        fail(f"flops_per_token = {got:,.0f}, but torch's FlopCounterMode measures {measured:,.0f} FLOPs per token "
             f"for forward + backward: {hint}")
    assert_scalar_close(mfu(1e9, 2_000.0, 1e13), 0.2, "mfu(1e9 FLOPs/token, 2,000 tokens/s, 1e13 peak)",
                        hint="MFU = flops_per_token * tokens_per_second / peak_flops")
    assert_scalar_close(mfu(6e8, 1e5, 989e12), 6e13 / 989e12, "mfu(6e8, 1e5, 989e12)")
    return f"formula {got:,.0f} vs measured {measured:,.0f} FLOPs/token ({got / measured - 1:+.1%})"


def _train_steps(model, optimizer, scaler, data, data_rng, n_steps: int) -> list[float]:
    """A small fp32 loop with every source of randomness a real one has: data offsets, torch and Python RNG."""
    from curriculum.solutions.chapter1.train_data import get_batch  # the reference sampler, not the learner's

    losses = []
    for _ in range(n_steps):
        x, y = get_batch(data, 4, 12, data_rng)
        noise = torch.rand(()) * 1e-3 + random.random() * 1e-3  # stands in for dropout and augmentation
        loss = _reference_loss(model, x, y) + noise
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    return losses


def _fresh_state(seed: int):
    model = tiny_gpt2(seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**seed)
    return model, optimizer, scaler, torch.Generator().manual_seed(seed)


@check
def check_checkpoint_roundtrip(save_checkpoint, load_checkpoint) -> None:
    data = np.random.default_rng(0).integers(0, 97, 500).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run" / "ckpt.pt"
        torch.manual_seed(0)
        random.seed(0)
        model, optimizer, scaler, data_rng = _fresh_state(seed=3)
        _train_steps(model, optimizer, scaler, data, data_rng, 3)
        scaler.update(new_scale=512.0)  # a loss scale that only a restored scaler knows
        save_checkpoint(path, model, optimizer, scaler, 3, data_rng, {"note": "check"})
        if not path.exists():
            fail(f"save_checkpoint did not create {path}: torch.save to the path you were given (create its folder)")
        expected = _train_steps(model, optimizer, scaler, data, data_rng, 3)

        # A new process: different init, fresh optimizer and scaler, different RNG states.
        torch.manual_seed(123)
        random.seed(123)
        model2, optimizer2, scaler2, data_rng2 = _fresh_state(seed=7)
        step = load_checkpoint(path, model2, optimizer2, scaler2, data_rng2)
        assert_equal(step, 3, "the step load_checkpoint returned", hint="return the step that was saved")
        assert_scalar_close(scaler2.get_scale(), 512.0, "the GradScaler's scale after loading",
                            hint="save and load scaler.state_dict(): fp16 runs restart with the wrong loss scale otherwise")
        got = _train_steps(model2, optimizer2, scaler2, data, data_rng2, 3)
        if got != expected:
            diverge = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
            fail(f"after resuming, step {diverge} loss is {got[diverge]:.8f} instead of {expected[diverge]:.8f}. "
                 "Restore all of: model and optimizer state_dicts (Adam's moments), the data generator's state, "
                 "torch's RNG (torch.get_rng_state) and Python's (random.getstate)")
