"""Training throughput (tokens/s) and MFU of the section 1.2 trainer's step, across the switches that matter.

    python -m curriculum.benchmarks.train_throughput            # GPT-2 124M on a GPU; a scaled-down GPT-2 shape on CPU
    python -m curriculum.benchmarks.train_throughput --quick    # fewer steps and compiled variants (tiny shape on CPU)
    python -m curriculum.benchmarks.train_throughput --shape 124m --batch 16

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
import time
from dataclasses import dataclass

import torch

from curriculum.solutions.chapter1.gpt2 import GPT2
from curriculum.solutions.chapter1.train import (
    TrainConfig,
    accumulate_gradients,
    flops_per_token,
    mfu,
    param_groups,
    peak_flops_per_device,
    resolve_amp_dtype,
)
from curriculum.utils import get_device

SHAPES = {
    "124m": dict(n_layers=12, n_heads=12, d_model=768, n_ctx=1024, block_size=1024, vocab=50257),
    # GPT-2's head size (64) and proportions at CPU scale; the offline tokenizer's vocabulary
    "small-cpu": dict(n_layers=4, n_heads=4, d_model=256, n_ctx=256, block_size=256, vocab=4096),
    "tiny-cpu": dict(n_layers=2, n_heads=2, d_model=128, n_ctx=128, block_size=128, vocab=4096),
}


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
        optimizer.zero_grad(set_to_none=True)
        accumulate_gradients(step_model, micro, scaler, autocast)
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed steps, and compile only the SDPA variants")
    ap.add_argument("--shape", choices=SHAPES, help="model shape (default: 124m on a GPU, small-cpu otherwise)")
    ap.add_argument("--batch", type=int, help="sequences per step (default: 16 on a GPU, 4 on CPU)")
    ap.add_argument("--device", help="cuda / cpu / mps (default: the best available)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 on a shared machine)")
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
    for v in variants:
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


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
