"""Section 1.2 beyond the automatic stub/solution test: mutants each check must catch, the config
system's errors, exact resume, and real 2-process DDP through torchrun (gloo) against one process."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from curriculum.solutions.chapter1 import train as S
from curriculum.solutions.chapter1 import train_data as D
from curriculum.checks.chapter1 import train as T
from tests.support import assert_check_fails

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "train" / "smoke_cpu.toml"

def fails(check, *fns) -> None:
    assert_check_fails(check, *fns)


# --------------------------------------------------------------------------------------------- get_batch


def batch_y_equals_x(data, batch_size, block_size, generator):
    x, _ = D.get_batch(data, batch_size, block_size, generator)
    return x, x.clone()


def batch_off_by_one_high(data, batch_size, block_size, generator):
    starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator).tolist()
    w = torch.stack([torch.from_numpy(data[i : i + block_size + 1].astype(np.int64)) for i in starts])
    return w[:, :-1], w[:, 1:]


def batch_global_rng(data, batch_size, block_size, generator):
    starts = torch.randint(len(data) - block_size, (batch_size,)).tolist()
    w = torch.stack([torch.from_numpy(data[i : i + block_size + 1].astype(np.int64)) for i in starts])
    return w[:, :-1], w[:, 1:]


def batch_numpy_rng(data, batch_size, block_size, generator):
    starts = np.random.randint(0, len(data) - block_size, batch_size)
    w = torch.stack([torch.from_numpy(data[i : i + block_size + 1].astype(np.int64)) for i in starts])
    return w[:, :-1], w[:, 1:]


def batch_int16(data, batch_size, block_size, generator):
    x, y = D.get_batch(data, batch_size, block_size, generator)
    return x.to(torch.int16).long(), y.to(torch.int16).long()


def batch_uint16_dtype(data, batch_size, block_size, generator):
    x, y = D.get_batch(data, batch_size, block_size, generator)
    return x.to(torch.int32), y.to(torch.int32)


@pytest.mark.parametrize("mutant", [batch_y_equals_x, batch_off_by_one_high, batch_global_rng, batch_numpy_rng,
                                    batch_int16, batch_uint16_dtype])
def test_get_batch_mutants(mutant):
    fails(T.check_get_batch, mutant)


# --------------------------------------------------------------------------------------------- lr_at


def lr_warmup_from_zero(step, max_lr, min_lr, warmup_steps, max_steps):
    return max_lr * step / warmup_steps if step < warmup_steps else S.lr_at(step, max_lr, min_lr, warmup_steps, max_steps)


def lr_decay_to_zero(step, max_lr, min_lr, warmup_steps, max_steps):
    return S.lr_at(step, max_lr, 0.0, warmup_steps, max_steps)


def lr_ratio_ignores_warmup(step, max_lr, min_lr, warmup_steps, max_steps):
    if step < warmup_steps or step >= max_steps:
        return S.lr_at(step, max_lr, min_lr, warmup_steps, max_steps)
    return min_lr + 0.5 * (1 + math.cos(math.pi * step / max_steps)) * (max_lr - min_lr)


def lr_no_clamp(step, max_lr, min_lr, warmup_steps, max_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def lr_linear_decay(step, max_lr, min_lr, warmup_steps, max_steps):
    if step < warmup_steps or step >= max_steps:
        return S.lr_at(step, max_lr, min_lr, warmup_steps, max_steps)
    return max_lr - (step - warmup_steps) / (max_steps - warmup_steps) * (max_lr - min_lr)


@pytest.mark.parametrize("mutant", [lr_warmup_from_zero, lr_decay_to_zero, lr_ratio_ignores_warmup, lr_no_clamp,
                                    lr_linear_decay])
def test_lr_mutants(mutant):
    fails(T.check_lr_at, mutant)


# --------------------------------------------------------------------------------------------- param_groups


def groups_by_dim(model, weight_decay):  # nanoGPT's rule: wrong for TransformerLens-shaped biases
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]


def groups_decay_all(model, weight_decay):
    return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay},
            {"params": [], "weight_decay": 0.0}]


def groups_include_frozen(model, weight_decay):
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if n.split(".")[-1].startswith("W_")], "weight_decay": weight_decay},
            {"params": [p for n, p in named if not n.split(".")[-1].startswith("W_")], "weight_decay": 0.0}]


def groups_swapped(model, weight_decay):
    decay, no_decay = S.param_groups(model, weight_decay)
    return [{"params": decay["params"], "weight_decay": 0.0}, {"params": no_decay["params"], "weight_decay": weight_decay}]


def groups_duplicate(model, weight_decay):
    decay, no_decay = S.param_groups(model, weight_decay)
    return [{"params": decay["params"] + no_decay["params"][:1], "weight_decay": weight_decay}, no_decay]


def groups_by_weight_name(model, weight_decay):  # "weight" never occurs in our W_* names: nothing decays
    ps = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in ps if "weight" in n], "weight_decay": weight_decay},
            {"params": [p for n, p in ps if "weight" not in n], "weight_decay": 0.0}]


@pytest.mark.parametrize("mutant", [groups_by_dim, groups_decay_all, groups_include_frozen, groups_swapped,
                                    groups_duplicate, groups_by_weight_name])
def test_param_groups_mutants(mutant):
    fails(T.check_param_groups, mutant)


# --------------------------------------------------------------------------------------------- accumulation


def _accumulate(scale_by, zero_each=False, use_scaler=True, use_autocast=True, last_only=False):
    def accumulate(model, micro_batches, scaler=None, autocast=contextlib.nullcontext, no_sync=None):
        raw_losses = []
        for i, (x, y) in enumerate(micro_batches):
            if zero_each:
                model.zero_grad()
            with autocast() if use_autocast else contextlib.nullcontext():
                raw = S.lm_loss(model(x), y)
            loss = raw / scale_by(len(micro_batches), x)
            if not last_only or i == len(micro_batches) - 1:
                (scaler.scale(loss) if (scaler is not None and use_scaler) else loss).backward()
            raw_losses.append(raw.detach())
        return torch.stack(raw_losses).mean()  # the right loss: only the gradients are wrong

    return accumulate


@pytest.mark.parametrize("mutant", [
    _accumulate(lambda n, x: 1),  # forgot to divide: gradients n times too big
    _accumulate(lambda n, x: x.shape[0]),  # divided by the micro-batch size instead
    _accumulate(lambda n, x: n, zero_each=True),  # zero_grad inside the loop
    _accumulate(lambda n, x: n, last_only=True),  # backward only once, at the end
    _accumulate(lambda n, x: n, use_scaler=False),  # ignores the GradScaler
    _accumulate(lambda n, x: n, use_autocast=False),  # forward outside autocast
])
def test_accumulate_mutants(mutant):
    fails(T.check_accumulate_gradients, mutant)


# --------------------------------------------------------------------------------------------- FLOPs / MFU


def _n(model, skip_pos=True):
    n = sum(p.numel() for p in model.parameters())
    return n - sum(p.numel() for p in model.pos_embed.parameters()) if skip_pos else n


@pytest.mark.parametrize("mutant", [
    lambda m, s: 2 * _n(m) + 4 * m.cfg.n_layers * s * m.cfg.d_model,  # forward only
    lambda m, s: 6 * _n(m),  # no attention term
    lambda m, s: 6 * _n(m, skip_pos=False) + 12 * m.cfg.n_layers * s * m.cfg.d_model,  # counts the lookup table
    lambda m, s: 6 * _n(m) + 6 * m.cfg.n_layers * s * m.cfg.d_model,  # half the attention term
])
def test_flops_mutants(mutant):
    fails(T.check_flops_per_token, mutant, S.mfu)


@pytest.mark.parametrize("mutant", [
    lambda f, t, p: p / (f * t),  # inverted
    lambda f, t, p: f * t / p * 100,  # a percentage
    lambda f, t, p: 3 * f * t / p,  # forward-only FLOPs assumed in f, "corrected" twice
])
def test_mfu_mutants(mutant):
    fails(T.check_flops_per_token, S.flops_per_token, mutant)


def test_flops_formula_matches_nanogpt_for_gpt2_small():
    """nanoGPT prints 123.65M parameters for GPT-2 124M (all but the position table) and uses 6N + 12LTd."""
    cfg = S.TrainConfig().model_config(d_vocab=50257)
    with torch.device("meta"):
        model = S.GPT2(cfg)
    n = sum(p.numel() for p in model.parameters()) - 1024 * 768
    assert n == 123_653_376
    assert S.flops_per_token(model, 1024) == 6 * n + 12 * 12 * 1024 * 768


# --------------------------------------------------------------------------------------------- checkpoints


def _save_without(key):
    def save(path, model, optimizer, scaler, step, data_rng, config=None):
        S.save_checkpoint(path, model, optimizer, scaler, step, data_rng, config)
        state = torch.load(path, weights_only=True)
        fresh = {"optimizer": torch.optim.AdamW(model.parameters(), lr=3e-3).state_dict(),
                 "scaler": torch.amp.GradScaler("cpu").state_dict(), "data_rng": torch.Generator().get_state(),
                 "torch_rng": torch.Generator().get_state(), "python_rng": random.Random(0).getstate(),
                 "step": 0}
        state[key] = fresh[key]
        torch.save(state, path)

    return save


def _load_skipping(key):
    def load(path, model, optimizer, scaler, data_rng):
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        if key != "optimizer":
            optimizer.load_state_dict(state["optimizer"])
        if key != "scaler":
            scaler.load_state_dict(state["scaler"])
        if key != "data_rng":
            data_rng.set_state(state["data_rng"])
        if key != "torch_rng":
            torch.set_rng_state(state["torch_rng"])
        if key != "python_rng":
            random.setstate(state["python_rng"])
        return state["step"] + (1 if key == "step" else 0)

    return load


@pytest.mark.parametrize("key", ["optimizer", "scaler", "data_rng", "torch_rng", "python_rng", "step"])
def test_checkpoint_mutants(key):
    fails(T.check_checkpoint_roundtrip, S.save_checkpoint, _load_skipping(key))
    fails(T.check_checkpoint_roundtrip, _save_without(key), S.load_checkpoint)


def test_checkpoint_save_is_atomic(tmp_path):
    model, optimizer, scaler, rng = T._fresh_state(seed=0)
    path = tmp_path / "ckpt.pt"
    S.save_checkpoint(path, model, optimizer, scaler, 5, rng)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"], "no temporary file is left behind"


# --------------------------------------------------------------------------------------------- config system


def test_configs_ship_and_validate():
    smoke = S.load_config(SMOKE)
    smoke.validate(1)
    assert smoke.dataset == "offline" and smoke.device == "cpu"
    single = S.load_config(ROOT / "configs/train/gpt2_124m.toml")
    single.validate(1)
    assert (single.n_layers, single.d_model, single.n_heads, single.n_ctx) == (12, 768, 12, 1024)
    assert single.grad_accum_steps(1) * single.micro_batch_size * single.block_size == single.tokens_per_step
    multi = S.load_config(ROOT / "configs/train/gpt2_124m_ddp.toml")
    multi.validate(8)
    assert multi.grad_accum_steps(8) >= 1


@pytest.mark.parametrize("n,vocab,block", [(37, 101, 5 * 101), (16, 50, 1 << 22), (9, 13, 1)], ids=["blocks+tail", "one-block", "row-blocks"])
def test_chunked_cross_entropy_matches_f_cross_entropy(monkeypatch, n, vocab, block):
    """The CPU loss gives F.cross_entropy's value and gradient, whether the rows split into several
    blocks with a short last one, fit in one, or go one row at a time; on spread-out logits (std 4),
    so a wrong softmax normaliser or a missing one-hot shows."""
    monkeypatch.setattr(S.ChunkedCrossEntropy, "BLOCK_ELEMENTS", block)
    g = torch.Generator().manual_seed(n)
    logits = (torch.randn(n, vocab, generator=g) * 4 + torch.linspace(-3, 2, vocab)).requires_grad_()
    targets = torch.randint(0, vocab, (n,), generator=g)
    want = torch.nn.functional.cross_entropy(logits, targets)
    (want_grad,) = torch.autograd.grad(want * 2.5, logits)
    got = S.ChunkedCrossEntropy.apply(logits, targets)
    (got_grad,) = torch.autograd.grad(got * 2.5, logits)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)


def test_lm_loss_on_cpu_in_bf16_keeps_the_logits_dtype():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(2, 5, 300, generator=g) * 3).to(torch.bfloat16).requires_grad_()
    targets = torch.randint(0, 300, (2, 5), generator=g)
    loss = S.lm_loss(logits, targets)
    loss.backward()
    want = torch.nn.functional.cross_entropy(logits.detach().float().flatten(0, 1), targets.flatten())
    assert loss.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss, want)
    with pytest.raises((IndexError, RuntimeError)):
        S.lm_loss(logits, targets.masked_fill(targets == targets[0, 0], -100))


def test_overrides_parse_types():
    cfg = S.load_config(SMOKE, ["max_steps=7", "max_lr=1e-3", "compile=true", "dataset=offline", "tokens_per_step=2_048"])
    assert (cfg.max_steps, cfg.max_lr, cfg.compile, cfg.tokens_per_step) == (7, 1e-3, True, 2048)


@pytest.mark.parametrize("overrides,message", [
    (["max_step=10"], "did you mean 'max_steps'"),
    (["max_steps=ten"], "max_steps expects a int"),
    (["compile=maybe"], "compile expects true or false"),
    (["max_steps"], "should look like key=value"),
])
def test_bad_overrides_say_what_to_fix(overrides, message):
    with pytest.raises(S.ConfigError, match=message):
        S.load_config(SMOKE, overrides)


@pytest.mark.parametrize("overrides,world,message", [
    (["block_size=128"], 1, "longer than the model's context n_ctx=64"),
    (["tokens_per_step=1000"], 1, "not divisible by micro_batch_size"),
    ([], 3, r"world_size = 8 \* 64 \* 3"),
    (["min_lr=1.0"], 1, "min_lr <= max_lr"),
    (["warmup_steps=500"], 1, "must be below max_steps"),
    (["n_heads=3"], 1, "not divisible by n_heads"),
    (["dtype=fp8"], 1, "dtype must be one of"),
    (["micro_batch_size=0"], 1, "micro_batch_size must be positive"),
    (["sample_tokens=64"], 1, "leaves no room"),
])
def test_impossible_values_are_rejected(overrides, world, message):
    cfg = S.load_config(SMOKE, overrides)
    with pytest.raises(S.ConfigError, match=message):
        cfg.validate(world)


def test_toml_unknown_key_names_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[optim]\nlearning_rate = 1e-3\n')
    with pytest.raises(S.ConfigError, match="unknown config key 'learning_rate' in .*bad.toml"):
        S.load_config(bad)


def test_cli_reports_config_errors():
    out = subprocess.run([sys.executable, "-m", "curriculum.solutions.chapter1.train", "--config", str(SMOKE), "block_size=4096"],
                         cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode != 0 and "config error: block_size=4096 is longer" in out.stderr


def test_fp16_on_cpu_is_refused():
    with pytest.raises(S.ConfigError, match="float16 needs CUDA"):
        S.resolve_amp_dtype("float16", torch.device("cpu"))
    assert S.resolve_amp_dtype("auto", torch.device("cpu")) is None
    assert S.resolve_amp_dtype("bfloat16", torch.device("cpu")) is torch.bfloat16


# --------------------------------------------------------------------------------------------- the trainer

TINY = ["n_layers=1", "d_model=32", "n_heads=2", "n_ctx=32", "block_size=32", "micro_batch_size=4",
        "tokens_per_step=256", "max_steps=6", "warmup_steps=2", "eval_interval=3", "eval_batches=2",
        "sample_tokens=8", "ckpt_interval=3", "log_interval=1"]


def _env() -> dict[str, str]:
    return {**os.environ, "CURRICULUM_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("CURRICULUM_OFFLINE", "1")


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full = S.train(S.load_config(SMOKE, TINY + [f"out_dir={tmp_path / 'full'}"]), quiet=True)
    cut = S.load_config(SMOKE, TINY + [f"out_dir={tmp_path / 'cut'}", "resume=true"])
    first = S.train(cut, stop_after=4, quiet=True)  # "killed" after step 4; its last checkpoint is step 3
    assert first["step"] == [0, 1, 2, 3]
    torch.manual_seed(999)  # the resumed process starts with other RNG states: the checkpoint must restore them
    random.seed(999)
    second = S.train(cut, quiet=True)
    assert second["step"] == [0, 1, 2, 3, 4, 5], "the resumed history keeps the steps before the resume point"
    assert second["loss"] == full["loss"], "resumed losses must be bit-for-bit those of the uninterrupted run"
    assert second["val_loss"] == full["val_loss"] and second["val_step"] == full["val_step"]
    assert second["samples"] == full["samples"]
    assert second["resumes"] == [{"step": 3, "changed": {}}]
    on_disk = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert on_disk["step"] == full["step"] and on_disk["loss"] == full["loss"], "history.json covers the whole run"
    assert full["loss"][-1] < full["loss"][0]


def test_ddp_two_processes_match_one_process_with_double_batch(tmp_path):
    """Real torchrun with gloo: 2 ranks x micro-batch 4 take the same global batches as 1 rank x 8."""
    common = TINY + ["tokens_per_step=512", "max_steps=4", "eval_interval=2", "ckpt_interval=0"]
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "curriculum.solutions.chapter1.train", "--config", str(SMOKE), *common, "micro_batch_size=4",
         f"out_dir={tmp_path / 'ddp'}"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, f"torchrun failed:\n{out.stderr[-3000:]}"
    ddp = json.loads((tmp_path / "ddp" / "history.json").read_text())
    single = S.train(S.load_config(SMOKE, common + ["micro_batch_size=8", f"out_dir={tmp_path / 'one'}"]), quiet=True)
    np.testing.assert_allclose(ddp["loss"], single["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ddp["val_loss"], single["val_loss"], rtol=1e-5, atol=1e-6)
    assert ddp["loss"][-1] < ddp["loss"][0]


def test_memmap_files_roundtrip(tmp_path):
    ids = [[1, 2, 3], [4, 5], [6]]
    docs = ["a", "b", "c"]
    n_train, n_val = D.write_memmaps(docs, lambda texts: [ids["abc".index(t)] for t in texts], 0, tmp_path, val_every=2)
    train = np.fromfile(tmp_path / "train.bin", dtype=np.uint16).tolist()
    val = np.fromfile(tmp_path / "val.bin", dtype=np.uint16).tolist()
    assert train == [1, 2, 3, 0, 6, 0] and val == [4, 5, 0] and (n_train, n_val) == (6, 3)
    with pytest.raises(ValueError, match="does not fit"):
        D.write_memmaps(["a"], lambda texts: [[70_000]], 0, tmp_path / "big")


# --------------------------------------------------------------------------------------------- checkpoint guards
# Damaged files, changed configs and neighbours: each refused with a message naming the file and the fix.

RESUME_TINY = TINY + ["resume=true"]

def _finished_run(tmp_path, *extra) -> Path:
    out = tmp_path / "run"
    S.train(S.load_config(SMOKE, RESUME_TINY + [f"out_dir={out}", *extra]), quiet=True)
    return out


def _resume(out, *extra):
    return S.train(S.load_config(SMOKE, RESUME_TINY + [f"out_dir={out}", *extra]), quiet=True)


def _damage(data: bytes, how: str) -> bytes:
    mid = len(data) // 2
    return {
        "flipped": data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :],
        "truncated": data[:mid],
        "empty": b"",
        "random": np.random.default_rng(0).bytes(len(data)),
    }[how]


# Without the sidecar, flipped bytes inside a tensor load silently (what the SHA-256 is for); the rest still fail.
@pytest.mark.parametrize("how, sidecar", [(h, True) for h in ("flipped", "truncated", "empty", "random")]
                         + [(h, False) for h in ("truncated", "empty", "random")])
def test_damaged_checkpoint_is_refused(tmp_path, how, sidecar):
    out = _finished_run(tmp_path)
    ckpt = out / "ckpt.pt"
    assert (out / "ckpt.pt.sha256").exists()
    if not sidecar:  # a checkpoint from an older trainer: nothing to verify against, so it must fail to load
        (out / "ckpt.pt.sha256").unlink()
    ckpt.write_bytes(_damage(ckpt.read_bytes(), how))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(S.CheckpointError) as err:
            _resume(out, "max_steps=6")
    message = str(err.value)
    assert str(ckpt) in message and "delete ckpt.pt" in message and "resume=false" in message
    assert "weights_only=False" not in message, "never pass on torch's advice to load unsafely"
    if how == "empty":
        assert "empty (0 bytes)" in message
    elif sidecar:
        assert "damaged: its SHA-256 differs" in message
    else:
        assert "not a readable checkpoint" in message


def test_checkpoint_without_integrity_record_loads_with_warning(tmp_path):
    out = _finished_run(tmp_path, "max_steps=4", "warmup_steps=1")
    first = json.loads((out / "history.json").read_text())
    (out / "ckpt.pt.sha256").unlink()
    with pytest.warns(UserWarning, match="no integrity record"):
        with pytest.raises(S.CheckpointError, match=r"max_steps: 4 -> 6"):
            _resume(out, "max_steps=6", "warmup_steps=1")
    with pytest.warns(UserWarning, match="no integrity record"):
        resumed = _resume(out, "max_steps=6", "warmup_steps=1", "resume_override=max_steps")
    assert resumed["step"] == list(range(6)) and resumed["loss"][:4] == first["loss"]


def test_changed_model_shape_is_refused_naming_fields(tmp_path):
    out = _finished_run(tmp_path)
    with pytest.raises(S.CheckpointError, match=r"n_heads: 2 in the checkpoint, 4 now, d_model: 32 in the checkpoint, 64 now"):
        _resume(out, "d_model=64", "n_heads=4")
    with pytest.raises(S.ConfigError, match="model shapes cannot change"):
        _resume(out, "d_model=64", "resume_override=d_model")


@pytest.mark.parametrize("change", ["max_lr=0.001", "tokens_per_step=512", "seed=7"])
def test_changed_run_setting_needs_an_override_which_is_recorded(tmp_path, change):
    out = _finished_run(tmp_path, "max_steps=4")
    name, _, value = change.partition("=")
    with pytest.raises(S.CheckpointError, match=rf"{name}: .* -> .*resume_override={name}"):
        _resume(out, "max_steps=4", change)
    history = _resume(out, "max_steps=6", change, f"resume_override={name},max_steps")
    (resume,) = history["resumes"]
    assert resume["step"] == 4 and set(resume["changed"]) == {name, "max_steps"}
    assert str(resume["changed"][name][1]) == str(getattr(S.load_config(SMOKE, [change]), name))
    assert json.loads((out / "history.json").read_text())["resumes"] == [resume]


def test_free_settings_resume_without_override(tmp_path):
    out = _finished_run(tmp_path, "max_steps=4")
    history = _resume(out, "max_steps=4", "eval_interval=2", "sample_tokens=4", "micro_batch_size=2")
    assert history["step"] == [0, 1, 2, 3]


def test_unknown_override_is_a_config_error():
    with pytest.raises(S.ConfigError, match="resume_override names .*'max_lrr'"):
        S.load_config(SMOKE, ["resume_override=max_lrr"]).validate()


_WRITER = """
import sys
from curriculum.solutions.chapter1 import train as S
from curriculum.checks.chapter1.train import _fresh_state
model, optimizer, scaler, rng = _fresh_state(seed=int(sys.argv[2]))
for step in range(30):
    S.write_checkpoint(sys.argv[1], model, optimizer, scaler, step, rng, {"seed": int(sys.argv[2])})
"""


def test_two_runs_checkpointing_into_one_folder_both_succeed(tmp_path):
    path = tmp_path / "shared" / "ckpt.pt"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(seed)], cwd=ROOT, env=_env(),
                              stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    errors = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in errors), f"a writer crashed: {errors}"
    assert not list(path.parent.glob("*.tmp")), "no temporary file is left behind"
    model, optimizer, scaler, rng = T._fresh_state(seed=0)
    saved = json.loads((path.parent / "ckpt.pt.sha256").read_text())["config"]
    step, _ = S.resume_checkpoint(path, model, optimizer, scaler, rng, saved)  # whichever won, it verifies
    assert step == 29


_PREPARER = """
import sys
from curriculum.solutions.chapter1.train_data import prepare_data
print(prepare_data("offline", "", sys.argv[1], 0, 200).n_train_tokens)
"""


def test_two_processes_preparing_one_data_folder_both_succeed(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _PREPARER, str(tmp_path / "data")], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read().strip(), p.stderr.read()[-2000:]) for p in procs]
    assert all(code == 0 for code, _, _ in results), f"a preparation crashed: {results}"
    assert results[0][1] == results[1][1] and int(results[0][1]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"], "scratch folders are cleaned up"



def test_history_written_ahead_of_a_checkpoint_is_truncated_on_resume(tmp_path):
    """A job killed after writing history.json but before its checkpoint landed: the resume drops the
    steps past the checkpoint it actually loads, so no step appears twice."""
    out = tmp_path / "run"
    S.train(S.load_config(SMOKE, RESUME_TINY + [f"out_dir={out}"]), stop_after=4, quiet=True)  # checkpoint at 3
    ahead = json.loads((out / "history.json").read_text())
    ahead["step"] += [4, 5]
    ahead["loss"] += [1.0, 1.0]
    ahead["lr"] += [0.0, 0.0]
    (out / "history.json").write_text(json.dumps(ahead))
    history = _resume(out)
    assert history["step"] == [0, 1, 2, 3, 4, 5] and 1.0 not in history["loss"]


def test_two_training_runs_sharing_an_out_dir_both_finish(tmp_path):
    """Two trainer processes (say, a notebook and a terminal) checkpointing every step into one folder."""
    cmd = [sys.executable, "-m", "curriculum.solutions.chapter1.train", "--config", str(SMOKE), *TINY, "ckpt_interval=1",
           f"out_dir={tmp_path / 'shared'}"]
    procs = [subprocess.Popen(cmd + [f"seed={seed}"], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    results = [(p.wait(timeout=300), p.stderr.read()[-2000:]) for p in procs]
    assert all(code == 0 for code, _ in results), f"a run crashed: {results}"
    assert not list((tmp_path / "shared").glob("*.tmp"))


# --------------------------------------------------------------------------------------------- new exercises: mutants

from curriculum.solutions.chapter1 import mc_eval as M  # noqa: E402
from tests.support import mutant  # noqa: E402


@pytest.mark.parametrize("replacements, match", [
    ((("ids + [eot_token]", "ids"),), "no end-of-text tokens"),
    ((("ids + [eot_token]", "[eot_token] + ids"),), "starts with eot_token"),
    ((("doc_index % val_every == val_every - 1", "doc_index % val_every == 0"),), "document i goes to val"),
    ((("ids.astype(TOKEN_DTYPE).tobytes()", "ids.astype(np.int32).tobytes()"),), "4 bytes per token"),
    ((("                if ids.max() > np.iinfo(TOKEN_DTYPE).max:\n", "                if False:\n"),), "wrapped silently"),
    ((("            if max_tokens and counts", "            if False and counts"),), "max_tokens"),
    ((("                doc_index += 1\n", ""),), "document i goes to val"),
    ((("        for chunk in chunked(documents, chunk_docs):\n", "        for chunk in chunked(documents, chunk_docs):\n            doc_index = 0\n"),),
     "document i goes to val"),
])
def test_write_memmaps_mutants(replacements, match):
    assert_check_fails(T.check_write_memmaps, mutant(D.write_memmaps, *replacements), match=match)


@pytest.mark.parametrize("replacements, match", [
    ((("    optimizer.zero_grad(set_to_none=True)\n", ""),), "zero_grad"),
    ((("    scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones\n", ""),), "unscale_"),
    ((("    scaler.update()\n", ""),), r"scaler\.update\(\)"),
    ((("        group[\"lr\"] = lr\n", "        pass\n"),), "set group\\['lr'\\] = lr"),
    ((("grad_clip or float(\"inf\")", "float(\"inf\")"),), "clip the global gradient norm"),
    ((("grad_clip or float(\"inf\")", "grad_clip"),), "zeroes every gradient"),
])
def test_train_step_mutants(replacements, match):
    assert_check_fails(T.check_train_step, mutant(S.train_step, *replacements), match=match)


def _save_leaving_tmp(path, model, optimizer, scaler, step, data_rng, config=None):
    S.save_checkpoint(path, model, optimizer, scaler, step, data_rng, config)
    (Path(path).parent / "ckpt.pt.123-abc.tmp").write_bytes(b"half")


def _save_whole_objects(path, model, optimizer, scaler, step, data_rng, config=None):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "step": step}, path)


@pytest.mark.parametrize("key, match", [("optimizer", "Adam moments"), ("scaler", "loss scale"),
                                        ("data_rng", "data generator"), ("torch_rng", "torch's RNG"),
                                        ("python_rng", "Python's random"), ("step", "saved step")])
def test_save_checkpoint_mutants(key, match):
    assert_check_fails(T.check_save_checkpoint, _save_without(key), match=match)


@pytest.mark.parametrize("key", ["model", "optimizer", "scaler", "step", "data_rng", "torch_rng", "python_rng", "config"])
def test_save_checkpoint_missing_key(key):
    def save(path, *args):
        S.save_checkpoint(path, *args)
        state = torch.load(path, weights_only=True)
        del state[key]
        torch.save(state, path)

    assert_check_fails(T.check_save_checkpoint, save, match=f"lacks '{key}'")


def test_save_checkpoint_must_be_atomic():
    direct = mutant(S.save_checkpoint, ("torch.save(state, tmp)\n    os.replace(tmp, path)", "torch.save(state, path)"))
    assert_check_fails(T.check_save_checkpoint, direct, match="broken file.*temporary")
    swallowed = mutant(S.save_checkpoint, ("torch.save(state, tmp)\n    os.replace(tmp, path)",
                                           "try:\n        torch.save(state, tmp)\n        os.replace(tmp, path)\n    except OSError:\n        pass"))
    assert_check_fails(T.check_save_checkpoint, swallowed, match="returned normally")


def test_accumulate_without_dividing_is_named_at_the_loss():
    bug = mutant(S.accumulate_gradients, ("loss = lm_loss(model(x), y) / n_micro", "loss = lm_loss(model(x), y)"))
    assert_check_fails(T.check_accumulate_gradients, bug, match="divide each micro-batch's loss by the number of micro-batches")


def test_save_checkpoint_leftovers_and_unsafe_pickles():
    assert_check_fails(T.check_save_checkpoint, _save_leaving_tmp, match="os.replace")
    assert_check_fails(T.check_save_checkpoint, _save_whole_objects, match="weights_only=True")


@pytest.mark.parametrize("replacements, match", [
    ((("    model.eval()\n", ""),), "training mode"),
    ((("    model.train()\n", ""),), "still in eval mode"),
    ((("    sampler.generator = torch.Generator().manual_seed(seed)\n", ""),), "reseed"),
    ((("        with autocast():\n            losses +=", "        with contextlib.nullcontext():\n            losses +="),), "autocast"),
    ((("losses / n_batches", "losses / (n_batches + 1)"),), "mean validation loss"),
])
def test_evaluate_mutants(replacements, match):
    assert_check_fails(T.check_evaluate, mutant(S.evaluate, *replacements), match=match)


def test_evaluate_without_no_grad_is_caught():
    import inspect
    source = inspect.getsource(S.evaluate).replace("@torch.no_grad()\n", "")
    ns = dict(vars(S))
    exec(compile(source, "<mutant>", "exec"), ns)
    assert_check_fails(T.check_evaluate, ns["evaluate"], match="no_grad")


@pytest.mark.parametrize("replacements, match", [
    ((("(losses * mask).sum(1) / mask.sum(1)", "(losses * mask).sum(1)"),), "summed"),
    ((("mask[i, len(context) - 1 : len(row) - 1] = 1.0", "mask[i, : len(row) - 1] = 1.0"),), "context's tokens were scored"),
    ((("mask[i, len(context) - 1 : len(row) - 1] = 1.0", "mask[i, len(context) : len(row)] = 1.0"),), "misaligned"),
    ((("(losses * mask).sum(1) / mask.sum(1)", "(losses * mask).sum(1) / (length - 1)"),), "padding"),
])
def test_ending_losses_mutants(replacements, match):
    assert_check_fails(T.check_ending_losses, mutant(M.ending_losses, *replacements), match=match)


def test_offline_mc_examples_hold_out_training_paragraphs():
    examples = M.offline_mc_examples(50, val_every=20, seed=1)
    assert len(examples) == 50 and all(len(e.endings) == 4 and 0 <= e.label < 4 for e in examples)
    assert len({e.label for e in examples}) == 4, "the right answer is not always in one place"
    docs = D._split_documents(__import__("curriculum.utils.offline", fromlist=["x"]).offline_corpus())
    train_text = " ".join(" ".join(d.split()) for i, d in enumerate(docs) if i % 20 != 19)
    held = [e for e in examples if e.context + " " + e.endings[e.label] not in train_text]
    assert len(held) == 50, "every passage comes from held-out paragraphs and appears in no training one"
