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
import os
import random
import tempfile
from pathlib import Path
from unittest import mock

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
    n = len(micro)
    loss_ratio = float(got_loss) / ref_loss.item() if isinstance(got_loss, (int, float, torch.Tensor)) else float("nan")
    if abs(loss_ratio - n) < 0.05:
        fail(f"the returned loss is {n}x the big-batch loss, and so will be every gradient: divide each micro-batch's "
             f"loss by the number of micro-batches ({n}) before backward, so the {n} gradients add up to the mean")
    assert_scalar_close(got_loss, ref_loss.item(), "the returned loss (mean over micro-batches)", rel=1e-5,
                        hint="return the sum of the scaled micro-batch losses (each already divided by the number of micro-batches)")
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
        else:
            hint += (f" (it should be 1x). Each micro-batch should contribute its own gradient divided by {len(micro)}: "
                     f"a ratio that is neither {len(micro)}x nor 1/{len(micro)}x usually means micro-batches were weighted "
                     "unequally, one was skipped or counted twice, or zero_grad ran partway through the loop")
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


@check
def check_save_checkpoint(save_checkpoint) -> None:
    data = np.random.default_rng(1).integers(0, 97, 500).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "new-folder" / "ckpt.pt"
        model, optimizer, scaler, data_rng = _fresh_state(seed=2)
        _train_steps(model, optimizer, scaler, data, data_rng, 2)
        rng_before = (torch.get_rng_state(), random.getstate(), data_rng.get_state())
        save_checkpoint(path, model, optimizer, scaler, 2, data_rng, {"max_lr": 3e-3})
        if not path.exists():
            fail(f"save_checkpoint did not create {path}: create the folder (path.parent.mkdir(parents=True, "
                 f"exist_ok=True)) and torch.save to the path you were given")
        leftovers = sorted(p.name for p in path.parent.iterdir() if p != path)
        if leftovers:
            fail(f"save_checkpoint left {leftovers} beside the checkpoint: os.replace the temporary file onto the path")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            fail(f"torch.load(path, weights_only=True) cannot read the checkpoint ({type(e).__name__}): save only "
                 f"tensors, numbers, strings and containers of them (state_dicts, RNG states), not whole objects")
        if not isinstance(state, dict):
            fail(f"the checkpoint holds a {type(state).__name__}; save one dict")
        needed = {"model": "model.state_dict()", "optimizer": "optimizer.state_dict() (Adam's moments)",
                  "scaler": "scaler.state_dict() (fp16's loss scale)", "step": "the step", "data_rng": "data_rng.get_state()",
                  "torch_rng": "torch.get_rng_state()", "python_rng": "random.getstate()", "config": "the config"}
        missing = [f"{k!r} ({what})" for k, what in needed.items() if k not in state]
        if missing:
            fail(f"the checkpoint dict lacks {', '.join(missing)}: an exact resume needs every one")
        assert_equal(state["step"], 2, "the saved step")
        saved_scale = state["scaler"].get("scale") if isinstance(state["scaler"], dict) else None
        if saved_scale is None or float(saved_scale) != scaler.get_scale():
            fail(f"the saved scaler state has scale {saved_scale}, but the GradScaler's scale is {scaler.get_scale():g}: "
                 f"save scaler.state_dict() (fp16's loss scale) of the scaler you were given")
        for name, tensor in model.state_dict().items():
            assert_close(state["model"][name], tensor, f"saved model weight {name}", atol=0, rtol=0)
        assert_equal(len(state["optimizer"].get("state", {})), len(list(model.parameters())),
                     "parameters with saved Adam moments", hint="save optimizer.state_dict(), after the steps were taken")
        for saved, now, what in zip((state["torch_rng"], state["python_rng"], state["data_rng"]), rng_before,
                                    ("torch's RNG state", "Python's random state", "the data generator's state")):
            same = torch.equal(saved, now) if isinstance(now, torch.Tensor) else tuple(saved) == tuple(now) or saved == now
            if not same:
                fail(f"the saved {what} is not the state at the time of saving: store the get_state() of that generator")
        assert_equal(state["config"], {"max_lr": 3e-3}, "the saved config")
        _check_save_is_atomic(save_checkpoint, path, model, optimizer, scaler, data_rng)


def _check_save_is_atomic(save_checkpoint, path: Path, model, optimizer, scaler, data_rng) -> None:
    """A save that dies half-way (a full disk, a killed job) must leave the previous checkpoint whole."""
    if not path.exists():
        return  # the caller reports the missing file
    before = path.read_bytes()

    def dies_half_way(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(b"half a checkpoint")
        else:
            f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device (simulated by the check)")

    with mock.patch("torch.save", dies_half_way):
        try:
            save_checkpoint(path, model, optimizer, scaler, 3, data_rng, {"max_lr": 3e-3})
        except OSError:
            pass
        else:
            fail("when torch.save raised (a full disk), save_checkpoint returned normally: let the error propagate, "
                 "a learner must know their checkpoint was not written")
    if not path.exists() or path.read_bytes() != before:
        fail("a save that failed half-way replaced the previous checkpoint with a broken file: torch.save to a temporary "
             "file in the same folder first, and only then os.replace it onto the path (the rename is atomic)")
    for leftover in path.parent.iterdir():
        if leftover != path:
            leftover.unlink()  # a real run cleans up on its next save; here we keep the folder for the next test


def _reference_steps(batches, lrs, clip: float) -> tuple[list[list[torch.Tensor]], list[float], set[str]]:
    """Plain autograd, AdamW and clipping: the parameters after each step train_step must reproduce, the
    norms, and the parameters whose gradient is only rounding noise (below)."""
    ref = tiny_gpt2(seed=5)
    optimizer = torch.optim.AdamW(ref.parameters(), lr=99.0, weight_decay=0.1)  # lr is overwritten each step
    norms, snapshots, noise_only = [], [], set()
    for micro, lr in zip(batches, lrs):
        optimizer.zero_grad(set_to_none=True)
        loss = sum(_reference_loss(ref, x, y) for x, y in micro) / len(micro)
        loss.backward()
        # The key bias b_K adds the same amount to every score of a query, which softmax ignores: its true
        # gradient is zero, and what autograd returns is rounding noise. Adam divides a gradient by its own
        # size, so noise moves b_K by about lr per step, differently for any two correct ways of computing the
        # loss. Such parameters are compared with a tolerance of lr, not 1e-6.
        noise_only |= {name for name, p in ref.named_parameters() if p.grad is not None and p.grad.abs().max() < 1e-7}
        norms.append(torch.nn.utils.clip_grad_norm_(ref.parameters(), clip or float("inf")).item())
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        snapshots.append([p.detach().clone() for p in ref.parameters()])
    return snapshots, norms, noise_only


@check
def check_train_step(train_step) -> str:
    """Two steps against plain autograd + AdamW: first in fp32 without clipping (grad_clip=0), then with
    clipping active and an fp16-style GradScaler (scale 1024, doubling after every finite step)."""
    g = torch.Generator().manual_seed(4)
    batches = [[(torch.randint(0, 97, (2, 10), generator=g), torch.randint(0, 97, (2, 10), generator=g)) for _ in range(2)]
               for _ in range(2)]
    lrs = (2e-3, 1e-3)
    for scaled, clip in ((False, 0.0), (True, 0.05)):
        where = f"with grad_clip={clip} and a GradScaler" if scaled else "in fp32 with grad_clip=0 (no clipping)"
        snapshots, ref_norms, noise_only = _reference_steps(batches, lrs, clip)
        model = tiny_gpt2(seed=5)
        optimizer = torch.optim.AdamW(model.parameters(), lr=99.0, weight_decay=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1, enabled=scaled)
        for i, (micro, lr) in enumerate(zip(batches, lrs)):
            out = train_step(model, optimizer, scaler, micro, lr, clip)
            if not (isinstance(out, tuple) and len(out) == 2):
                fail(f"train_step should return (loss, grad_norm), got {type(out).__name__}")
            norm = float(out[1])
            for group in optimizer.param_groups:
                if group["lr"] != lr:
                    fail(f"after step {i} a parameter group has lr={group['lr']}, not {lr}: set group['lr'] = lr in every group")
            if scaled and abs(norm / ref_norms[i] - 1024.0 * 2**i) < 1:
                fail(f"step {i} {where}: the gradient norm is {norm:.4g}, {norm / ref_norms[i]:.0f}x the true "
                     f"{ref_norms[i]:.4g}: the gradients were still multiplied by the scaler's scale. Call "
                     f"scaler.unscale_(optimizer) before clipping")
            if i == 1 and abs(norm - ref_norms[1]) > 1e-3 * ref_norms[1]:
                fail(f"step 1 {where}: the gradient norm is {norm:.4g}, expected {ref_norms[1]:.4g} (step 0 matched): "
                     f"the gradients of step 0 were still in .grad. Call optimizer.zero_grad() before accumulating")
            assert_scalar_close(norm, ref_norms[i], f"step {i} {where}: the gradient norm train_step returned", rel=1e-3,
                                hint="return clip_grad_norm_'s result: the global norm before clipping (grad_clip=0 "
                                     "means no clipping: pass float('inf'), since a max norm of 0 zeroes every gradient)")
            expected_scale = 1024.0 * 2 ** (i + 1)
            if scaled and scaler.get_scale() != expected_scale:
                fail(f"after step {i} the GradScaler's scale is {scaler.get_scale():g}, expected {expected_scale:g}: "
                     f"call scaler.update() after scaler.step(optimizer), so the scale adapts (and shrinks after an "
                     f"overflow)")
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if not scaled and grads and all(bool((gr == 0).all()) for gr in grads):
                fail(f"after step {i} {where} every gradient is zero: clip_grad_norm_ with a max norm of 0 zeroes every "
                     f"gradient. grad_clip=0 means no clipping: pass grad_clip or float('inf')")
            hint = (f"clip the global gradient norm to grad_clip={clip} (torch.nn.utils.clip_grad_norm_) after "
                    f"unscaling and before scaler.step(optimizer)") if scaled else "step with the optimizer once per call"
            for (name, p), q in zip(model.named_parameters(), snapshots[i]):
                atol = 2 * sum(lrs[: i + 1]) if name in noise_only else 1e-6
                assert_close(p, q, f"parameter {name} after step {i} {where}", atol=atol, rtol=1e-4, hint=hint)
    return "two steps match plain autograd + AdamW, without and with clipping and a scaler"


@check
def check_evaluate(evaluate) -> str:
    from curriculum.solutions.chapter1.train import BatchSampler, Distributed, lm_loss

    data = np.random.default_rng(2).integers(0, 97, 2000).astype(np.uint16)
    model = tiny_gpt2(seed=6)
    dist_ = Distributed(0, 0, 1, torch.device("cpu"))
    seen = {"training": [], "grad": []}

    def record(module, inputs, output) -> None:
        seen["training"].append(module.training)
        seen["grad"].append(torch.is_grad_enabled())

    model.register_forward_hook(record)
    sampler = BatchSampler(data, 3, 16, dist_, torch.Generator().manual_seed(11))  # a val sampler, mid-run

    # independent: the same n batches from a generator seeded with `seed`, mean of their losses
    ref_gen = torch.Generator().manual_seed(42)
    ref_sampler = BatchSampler(data, 3, 16, dist_, ref_gen)
    with torch.no_grad():
        ref = sum(lm_loss(model(x), y).item() for x, y in (ref_sampler.next() for _ in range(4))) / 4
    seen["training"].clear()
    seen["grad"].clear()

    entered = []

    @contextlib.contextmanager
    def counting_autocast():
        entered.append(1)
        yield

    got = evaluate(model, sampler, 4, counting_autocast, 42, dist_)
    if not isinstance(got, float):
        fail(f"evaluate should return a Python float (the mean loss), got {type(got).__name__}")
    if len(seen["training"]) != 4:
        fail(f"the model ran {len(seen['training'])} forward passes for n_batches=4: one per batch")
    if any(seen["training"]):
        fail("the model was in training mode during evaluation: call model.eval() first (dropout and the like behave "
             "differently in eval mode)")
    if not model.training:
        fail("the model is still in eval mode after evaluate: call model.train() before returning")
    if any(seen["grad"]):
        fail("gradients were being recorded during evaluation: run it under torch.no_grad()")
    if len(entered) != 4:
        fail(f"autocast() was entered {len(entered)} times for 4 batches: run each forward pass inside `with autocast():`")
    again = evaluate(model, sampler, 4, contextlib.nullcontext, 42, dist_)
    if got != again:
        fail(f"two evaluations of the same model gave {got:.6f} and {again:.6f}: reseed the sampler's generator "
             f"(torch.Generator().manual_seed(seed)) so every evaluation uses the same batches")
    assert_scalar_close(got, ref, "the mean validation loss", rel=1e-5,
                        hint="average lm_loss over n_batches batches drawn after seeding a fresh generator with `seed`")
    return f"val loss {got:.4f}, same batches every call, train mode restored"


@check
def check_write_memmaps(write_memmaps) -> str:
    from curriculum.solutions.chapter1.train_data import TOKEN_DTYPE

    docs = ["alpha", "be", "gamma ray", "d", "epsilon", "zeta", "eta theta", "iota"]  # 8 documents, unequal lengths
    encode_batch = lambda texts: [[300 + ord(c) * 7 for c in t] for t in texts]  # noqa: E731 - ids above 255 on purpose
    eot, val_every = 5, 3
    expected = {"train": [], "val": []}
    for i, ids in enumerate(encode_batch(docs)):
        expected["val" if i % val_every == val_every - 1 else "train"] += ids + [eot]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        counts = write_memmaps(iter(docs), encode_batch, eot, out, val_every=val_every, chunk_docs=2)
        for split in ("train", "val"):
            if not (out / f"{split}.bin").exists():
                fail(f"no {split}.bin in out_dir: write one file per split")
            raw = (out / f"{split}.bin").read_bytes()
            if len(raw) == 4 * len(expected[split]) or len(raw) == 8 * len(expected[split]):
                fail(f"{split}.bin has {len(raw) // len(expected[split])} bytes per token: write "
                     f"ids.astype(np.uint16).tobytes() (2 bytes per token, what load_split reads)")
            got = np.frombuffer(raw, dtype=TOKEN_DTYPE).tolist()
            if got != expected[split]:
                no_eot = [t for t in expected[split] if t != eot]
                if got == no_eot:
                    fail(f"{split}.bin has no end-of-text tokens: append eot_token after every document")
                if got and got[0] == eot:
                    fail(f"{split}.bin starts with eot_token: append it after each document, not before")
                fail(f"{split}.bin holds {len(got)} tokens, expected {len(expected[split])} (documents "
                     f"{[i for i in range(len(docs)) if (i % val_every == val_every - 1) == (split == 'val')]} with "
                     f"eot after each): document i goes to val when i % val_every == val_every - 1, counting from 0 "
                     f"across chunks")
        assert_equal(tuple(counts), (len(expected["train"]), len(expected["val"])), "the returned (n_train, n_val)",
                     hint="count the tokens written to each split, eot included")

        try:
            write_memmaps(iter(["x"]), lambda texts: [[70_000]], eot, out / "big")
        except ValueError:
            pass
        else:
            fail("an id of 70,000 was written without complaint: uint16 holds ids up to 65,535, so it wrapped "
                 "silently into another token. Raise ValueError when an id does not fit")

        limited = write_memmaps(iter(docs), encode_batch, eot, out / "limited", val_every=val_every, max_tokens=10,
                                chunk_docs=2)
        first_two_chunks = sum(len(ids) + 1 for ids in encode_batch(docs[:4]))  # 6 + 3 tokens after chunk 1 < 10
        assert_equal(sum(limited), first_two_chunks, "tokens written with max_tokens=10 and chunk_docs=2",
                     hint="after each chunk, stop once the tokens written reach max_tokens")
    return f"train {counts[0]} / val {counts[1]} tokens, uint16, eot after each document"


@check
def check_ending_losses(ending_losses) -> str:
    model = tiny_gpt2(seed=8).eval()
    g = torch.Generator().manual_seed(9)
    context = torch.randint(1, 97, (7,), generator=g).tolist()
    endings = [torch.randint(1, 97, (n,), generator=g).tolist() for n in (3, 5, 1, 4)]  # unequal: padding matters

    def per_token(ending, shift=1, with_context=False):
        tokens = torch.tensor([context + ending])
        logp = model(tokens)[0].log_softmax(-1)
        first = 1 if with_context else len(context)
        positions = range(first, len(context) + len(ending))
        if shift == 0:  # the logits at the token's own position: one too late
            positions = range(first, len(context) + len(ending))
            return torch.stack([-logp[t, tokens[0, t]] for t in positions])
        return torch.stack([-logp[t - 1, tokens[0, t]] for t in positions])

    def diagnose(endings, got, padded: bool):
        expected = torch.stack([per_token(e).mean() for e in endings])
        summed = torch.stack([per_token(e).sum() for e in endings])
        with_ctx = torch.stack([per_token(e, with_context=True).mean() for e in endings])
        unshifted = torch.stack([per_token(e, shift=0).mean() for e in endings])
        if not isinstance(got, torch.Tensor):
            fail(f"ending_losses should return a tensor of one loss per ending, got {type(got).__name__}")
        got = got.detach().float().cpu()
        assert_shape(got, (len(endings),), "ending_losses(...)")
        if torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
            return got
        for alt, why in ((summed, "summed over each ending's tokens; HellaSwag's length-normalised rule takes the mean, "
                                  "so long endings are not penalised for being long"),
                         (with_ctx, "the context's tokens were scored too: score only the ending's tokens (the context "
                                    "is the same for every ending and only dilutes the difference)"),
                         (unshifted, "off by one: the logits at position t predict token t + 1, so score ending token j "
                                     "with the logits at position len(context) + j - 1")):
            if torch.allclose(got, alt, atol=1e-4, rtol=1e-4):
                fail(f"ending_losses returned {got.tolist()}: {why}")
        shown = f"ending_losses returned {[round(v, 4) for v in got.tolist()]}, expected {[round(v, 4) for v in expected.tolist()]}"
        if not padded:
            fail(f"{shown} on endings of equal length, where no padding is needed: the scored positions are misaligned. "
                 "Losses computed from logits[:, :-1] against tokens[:, 1:] sit one place left of the tokens they score, "
                 "so the mask of ending token j belongs at index len(context) + j - 1, not len(context) + j")
        fail(f"{shown} (mean next-token loss of each ending's tokens given the context). Endings of equal length "
             "pass, so padding positions were scored: mask them out, and divide by each ending's own token count")

    with torch.no_grad():
        same_length = [torch.randint(1, 97, (4,), generator=g).tolist() for _ in range(3)]
        diagnose(same_length, ending_losses(model, context, same_length), padded=False)
        got = diagnose(endings, ending_losses(model, context, endings), padded=True)
    return f"per-ending losses {[round(v, 3) for v in got.tolist()]}"
