"""Training throughput (tokens/s) and MFU of the section 1.2 trainer's step, across the switches that matter.

    python -m curriculum.benchmarks.train_throughput            # GPT-2 124M on a GPU; a scaled-down GPT-2 shape on CPU
    python -m curriculum.benchmarks.train_throughput --quick    # fewer steps and compiled variants (tiny shape on CPU)
    python -m curriculum.benchmarks.train_throughput --shape 124m --batch 16
    python -m curriculum.benchmarks.train_throughput --nanogpt ~/src/nanoGPT   # also time nanoGPT's train.py

With `--nanogpt PATH` (a checkout of github.com/karpathy/nanoGPT; it is never copied into this
repository) the nanoGPT-shaped row (4 layers, 4 heads, d_model 128, block 128, batch 16, vocabulary
50,304, fp32, eager, SDPA attention as nanoGPT uses) is timed for our `train_step` and for nanoGPT's
own `train.py` on random tokens, alternating, in this one run; without it that comparison is skipped.

Every variant runs the trainer's own step (accumulate_gradients, clipping, AdamW) on random tokens
in this one process, so the ratios compare like with like: eager vs torch.compile, manual (einsum)
vs SDPA attention (flash attention on GPU), fp32 vs autocast (bf16 where the device has it, fp16 with
a GradScaler on older GPUs). MFU is against the peak of the precision used: the datasheet on known
GPUs, else a measured fp32 matmul for every row (so CPU MFU says how close the model gets to this
machine's fp32 BLAS, and CPU autocast rows are comparable with fp32 ones).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass

import torch

from curriculum.solutions.chapter1.gpt2 import GPT2
from curriculum.solutions.chapter1.train import (
    TrainConfig,
    flops_per_token,
    mfu,
    param_groups,
    peak_flops_per_device,
    resolve_amp_dtype,
    train_step,
)
from curriculum.utils import get_device

SHAPES = {
    "124m": dict(n_layers=12, n_heads=12, d_model=768, n_ctx=1024, block_size=1024, vocab=50257),
    # GPT-2's head size (64) and proportions at CPU scale; the offline tokenizer's vocabulary
    "small-cpu": dict(n_layers=4, n_heads=4, d_model=256, n_ctx=256, block_size=256, vocab=4096),
    "tiny-cpu": dict(n_layers=2, n_heads=2, d_model=128, n_ctx=128, block_size=128, vocab=4096),
    # nanoGPT's train.py at a CPU-sized shape (its default vocabulary: GPT-2's rounded up to 50,304)
    "nanogpt": dict(n_layers=4, n_heads=4, d_model=128, n_ctx=128, block_size=128, vocab=50304),
}
NANOGPT_BATCH = 16


@dataclass
class Variant:
    compile: bool
    attn_impl: str
    autocast: bool

    @property
    def name(self) -> str:
        return f"{'compile' if self.compile else 'eager':7s} {self.attn_impl:6s} {'autocast' if self.autocast else 'fp32':8s}"


def measure(variant: Variant, shape: dict, batch: int, device: torch.device, warmup: int, steps: int) -> dict:
    cfg = TrainConfig(n_layers=shape["n_layers"], n_heads=shape["n_heads"], d_model=shape["d_model"],
                      n_ctx=shape["n_ctx"], attn_impl=variant.attn_impl)
    torch.manual_seed(0)
    model = GPT2(cfg.model_config(shape["vocab"])).to(device)
    amp_dtype = resolve_amp_dtype("auto" if device.type == "cuda" else "bfloat16", device) if variant.autocast else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=device.type == "cuda")
    autocast = lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)  # noqa: E731
    step_model = torch.compile(model) if variant.compile else model
    tokens = torch.randint(0, shape["vocab"], (batch, shape["block_size"] + 1), device=device)
    micro = [(tokens[:, :-1], tokens[:, 1:])]

    def step() -> None:
        train_step(model, optimizer, scaler, micro, 1e-4, 1.0, autocast, step_model)

    t_compile = time.perf_counter()
    for _ in range(warmup):  # kernel selection, autotuning and (for compile) the compilation itself
        step()
    _sync(device)
    warm_s = time.perf_counter() - t_compile
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    tokens_per_s = batch * shape["block_size"] * steps / (time.perf_counter() - t0)
    peak, source = _peak(device, amp_dtype)
    return dict(tokens_per_s=tokens_per_s, mfu=mfu(flops_per_token(model, shape["block_size"]), tokens_per_s, peak),
                peak=peak, peak_source=source, warm_s=warm_s, amp=str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32")


@functools.lru_cache(maxsize=None)
def _peak(device: torch.device, amp_dtype: torch.dtype | None) -> tuple[float, str]:
    """Measured once per precision, so every row's MFU shares one yardstick (a shared CPU is noisy)."""
    return peak_flops_per_device(device, amp_dtype, tf32=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_nanogpt(checkout: Path, steps: int, warmup: int) -> float:
    """Tokens/s of nanoGPT's own train.py at the nanogpt shape, on random tokens, CPU or GPU as torch picks.

    train.py reads data/<dataset>/{train,val}.bin and configurator.py relative to its working folder, so
    it runs in a scratch folder holding both; its per-iteration times after `warmup` iterations are used."""
    shape = SHAPES["nanogpt"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data" / "bench"
        data.mkdir(parents=True)
        for split in ("train", "val"):
            torch.randint(0, shape["vocab"], (200_000,), dtype=torch.int32).numpy().astype("uint16").tofile(data / f"{split}.bin")
        (Path(tmp) / "configurator.py").write_text((checkout / "configurator.py").read_text())
        device = "cuda" if torch.cuda.is_available() else "cpu"
        args = ["--dataset=bench", f"--batch_size={NANOGPT_BATCH}", f"--block_size={shape['block_size']}",
                f"--n_layer={shape['n_layers']}", f"--n_head={shape['n_heads']}", f"--n_embd={shape['d_model']}",
                "--dropout=0.0", "--bias=True", "--compile=False", f"--device={device}", "--dtype=float32",
                "--gradient_accumulation_steps=1", f"--max_iters={warmup + steps}", f"--lr_decay_iters={warmup + steps}",
                "--eval_interval=1000000", "--eval_iters=1", "--log_interval=1", "--wandb_log=False",
                f"--out_dir={Path(tmp) / 'out'}"]
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        out = subprocess.run([sys.executable, str(checkout / "train.py"), *args], cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"nanoGPT's train.py failed: {out.stderr.strip().splitlines()[-1:]}")
    times = [float(ms) / 1e3 for it, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", out.stdout)
             if int(it) >= warmup]
    if not times:
        raise RuntimeError("no 'iter N: ... time Xms' lines in nanoGPT's output: is PATH a nanoGPT checkout?")
    return NANOGPT_BATCH * shape["block_size"] / statistics.median(times)


def compare_with_nanogpt(checkout: Path, device: torch.device, warmup: int, steps: int, rounds: int = 3) -> None:
    """Our train_step and nanoGPT's train.py at the same shape, alternating, best round of each."""
    if not (checkout / "train.py").exists() or not (checkout / "configurator.py").exists():
        print(f"\n--nanogpt {checkout}: no train.py and configurator.py there; skipping the nanoGPT comparison")
        return
    shape = SHAPES["nanogpt"]
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(measure(Variant(False, "sdpa", False), shape, NANOGPT_BATCH, device, warmup, steps)["tokens_per_s"])
        theirs.append(time_nanogpt(checkout, steps, warmup))
    print(f"\nnanoGPT-shaped row: {shape['n_layers']} layers, {shape['n_heads']} heads, d_model {shape['d_model']}, "
          f"block {shape['block_size']}, batch {NANOGPT_BATCH}, vocabulary {shape['vocab']:,}, fp32, eager, SDPA; "
          f"best of {rounds} alternating rounds")
    print(f"{'ours (train_step)':26s} {max(ours):10,.0f} tokens/s   rounds: {', '.join(f'{t:,.0f}' for t in ours)}")
    print(f"{'nanoGPT train.py':26s} {max(theirs):10,.0f} tokens/s   rounds: {', '.join(f'{t:,.0f}' for t in theirs)}")
    print(f"{'ours / nanoGPT':26s} {max(ours) / max(theirs):10.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed steps, and compile only the SDPA variants")
    ap.add_argument("--shape", choices=SHAPES, help="model shape (default: 124m on a GPU, small-cpu otherwise)")
    ap.add_argument("--batch", type=int, help="sequences per step (default: 16 on a GPU, 4 on CPU)")
    ap.add_argument("--device", help="cuda / cpu / mps (default: the best available)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 on a shared machine)")
    ap.add_argument("--nanogpt", type=Path, metavar="PATH",
                    help="a nanoGPT checkout: also time its train.py at the nanoGPT-shaped row's size (skipped without it)")
    ap.add_argument("--only-nanogpt", action="store_true", help="with --nanogpt: skip the variant table")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = get_device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for whatever stays fp32
    shape = SHAPES[args.shape or ("124m" if device.type == "cuda" else "tiny-cpu" if args.quick else "small-cpu")]
    batch = args.batch or (16 if device.type == "cuda" else 4)
    warmup, steps = (2, 4) if args.quick else (3, 10) if device.type != "cuda" else (5, 20)

    variants = [Variant(False, attn, amp) for attn in ("manual", "sdpa") for amp in (False, True)]
    if not args.no_compile:
        variants += [Variant(True, "sdpa", amp) for amp in (False, True)]
        if not args.quick:
            variants += [Variant(True, "manual", amp) for amp in (False, True)]

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads; shape {shape}; batch {batch} x {shape['block_size']} tokens; "
          f"{warmup} warm-up + {steps} timed steps per variant\n")
    print(f"{'variant':26s} {'precision':>9s} {'tokens/s':>10s} {'vs eager/manual/fp32':>21s} {'MFU':>7s} "
          f"{'peak TFLOP/s':>12s} {'warm-up s':>9s}")
    base = None
    for v in [] if args.only_nanogpt else variants:
        torch._dynamo.reset()  # each compiled variant compiles afresh
        try:
            r = measure(v, shape, batch, device, warmup, steps)
        except Exception as e:  # noqa: BLE001 - e.g. no C++ compiler for inductor: report and go on
            print(f"{v.name:26s} failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
            continue
        base = base or r["tokens_per_s"]
        print(f"{v.name:26s} {r['amp']:>9s} {r['tokens_per_s']:10,.0f} {r['tokens_per_s'] / base:20.2f}x "
              f"{r['mfu']:7.1%} {r['peak'] / 1e12:12.3g} {r['warm_s']:9.1f}")
        source = r["peak_source"]
    if base:
        print(f"\nMFU is against the peak of each row's precision: {source}")
    if args.nanogpt:
        compare_with_nanogpt(args.nanogpt.expanduser(), device, warmup, steps)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
