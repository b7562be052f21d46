"""Section 1.2: a nanoGPT-style trainer for the section 1.1 GPT-2, from a CPU smoke run to multi-node DDP.

    python -m curriculum.solutions.chapter1.train --config configs/train/smoke_cpu.toml
    python -m curriculum.solutions.chapter1.train --config configs/train/gpt2_124m.toml max_steps=200 compile=false
    torchrun --nproc_per_node=8 -m curriculum.solutions.chapter1.train --config configs/train/gpt2_124m_ddp.toml

Only the launch command changes between one process and many: under `torchrun` every process
runs this same file, reads its rank from the environment, takes its slice of each global batch,
and DDP averages the gradients. The file reads top to bottom in the order the notebook teaches
it: config, LR schedule, parameter groups, gradient accumulation, MFU, checkpoints, the loop.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import math
import os
import random
import sys
import time
import tomllib
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence, get_type_hints

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from curriculum.solutions.chapter1.gpt2 import GPT2, Config, SamplingConfig, generate
from curriculum.solutions.chapter1.train_data import DataInfo, get_batch, load_split, prepare_data, tokenizer_fns
from curriculum.utils import get_device, offline
from curriculum.utils.files import atomic_write_text, sha256_file

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "train"  # smoke_cpu, gpt2_124m, gpt2_124m_ddp

# ---------------------------------------------------------------------------------------------
# Config: one flat dataclass, filled from a TOML file and then `key=value` overrides
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Every knob of a run. Defaults reproduce GPT-2 124M on ~10B tokens of FineWeb-Edu (build-nanogpt)."""

    # data
    dataset: str = "HuggingFaceFW/fineweb-edu"  # a HF dataset (streamed) when online; "offline" forces the stand-in
    dataset_config: str = "sample-10BT"
    data_dir: str = ""  # "" = a cache folder named after corpus and tokenizer
    max_tokens: int = 0  # tokens to prepare (0 = the whole corpus)
    val_every: int = 200  # every n-th document goes to the val split
    # model (section 1.1's Config; d_head = d_model / n_heads, d_mlp = 4 d_model)
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    n_ctx: int = 1024
    attn_impl: str = "sdpa"  # "sdpa" uses fused (flash on GPU) attention; "manual" is section 1.1's einsum
    # batch: tokens_per_step = micro_batch_size * block_size * world_size * grad_accum
    block_size: int = 1024  # training sequence length, at most n_ctx
    micro_batch_size: int = 16  # sequences per process per forward pass: as many as fit in memory
    tokens_per_step: int = 524_288  # tokens per optimizer step (2**19, GPT-3 small's 0.5M)
    # optimizer and schedule
    max_lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_steps: int = 715
    max_steps: int = 19_073
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    # evaluation and samples
    eval_interval: int = 250  # steps between val-loss evaluations (0: only at the end)
    eval_batches: int = 20  # micro-batches per val evaluation
    sample_interval: int = 1000  # steps between sample generations (0: only at the end)
    sample_tokens: int = 64
    sample_prompt: str = ""  # "" = start from the end-of-text token
    # system
    device: str = "auto"  # "auto" = cuda > mps > cpu
    dtype: str = "auto"  # "auto" = bf16 autocast on CUDA with bf16, fp16 + GradScaler on older CUDA, fp32 elsewhere
    compile: bool = False
    tf32: bool = True  # TF32 matmuls on Ampere+ (fp32 range, 10-bit mantissa, ~8x the fp32 rate)
    seed: int = 1337
    # checkpoints and logging
    out_dir: str = "runs/train/gpt2_124m"
    ckpt_interval: int = 1000  # steps between checkpoints (0: only at the end)
    resume: bool = True  # continue from out_dir/ckpt.pt when it exists
    resume_override: str = ""  # run settings (comma-separated, e.g. "max_lr,max_steps") a resume may change
    log_interval: int = 10
    wandb_project: str = ""  # "" = no W&B; otherwise a run, offline when no key is configured
    peak_flops: float = 0.0  # per-device peak for MFU; 0 = datasheet table or a measured matmul

    def model_config(self, d_vocab: int) -> Config:
        return Config(
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            d_head=self.d_model // self.n_heads,
            d_mlp=4 * self.d_model,
            d_vocab=d_vocab,
            n_ctx=self.n_ctx,
            attn_impl=self.attn_impl,
            tie_embeddings=True,  # GPT-2 reads logits off W_E^T: 38M fewer parameters at 124M scale
        )

    def resume_overrides(self) -> list[str]:
        return [name.strip() for name in self.resume_override.split(",") if name.strip()]

    def grad_accum_steps(self, world_size: int = 1) -> int:
        return self.tokens_per_step // (self.micro_batch_size * self.block_size * world_size)

    def validate(self, world_size: int = 1) -> None:
        """Raise ConfigError naming the fix for values that cannot run."""
        positive = ["n_layers", "n_heads", "d_model", "n_ctx", "block_size", "micro_batch_size", "tokens_per_step",
                    "max_steps", "eval_batches", "sample_tokens", "log_interval", "val_every"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        nonneg = ["max_tokens", "warmup_steps", "weight_decay", "grad_clip", "eval_interval", "sample_interval",
                  "ckpt_interval", "peak_flops", "min_lr"]
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.block_size > self.n_ctx:
            raise ConfigError(
                f"block_size={self.block_size} is longer than the model's context n_ctx={self.n_ctx}: "
                f"lower block_size or raise n_ctx"
            )
        if self.sample_tokens >= self.n_ctx:
            raise ConfigError(f"sample_tokens={self.sample_tokens} leaves no room for a prompt in n_ctx={self.n_ctx}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        per_micro = self.micro_batch_size * self.block_size * world_size
        if self.tokens_per_step % per_micro:
            raise ConfigError(
                f"tokens_per_step={self.tokens_per_step} is not divisible by micro_batch_size * block_size * "
                f"world_size = {self.micro_batch_size} * {self.block_size} * {world_size} = {per_micro}: "
                f"set tokens_per_step to a multiple of {per_micro}"
            )
        if not 0 <= self.min_lr <= self.max_lr:
            raise ConfigError(f"need 0 <= min_lr <= max_lr, got min_lr={self.min_lr}, max_lr={self.max_lr}")
        if self.warmup_steps >= self.max_steps:
            raise ConfigError(f"warmup_steps={self.warmup_steps} must be below max_steps={self.max_steps}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"betas must lie in [0, 1), got beta1={self.beta1}, beta2={self.beta2}")
        if unknown := set(self.resume_overrides()) - set(RUN_FIELDS):
            raise ConfigError(
                f"resume_override names {sorted(unknown)}, which a resume cannot change or which do not exist; "
                f"it takes run settings from: {', '.join(RUN_FIELDS)} (model shapes cannot change on resume)"
            )
        choices = {"attn_impl": ("sdpa", "manual"), "dtype": ("auto", "float32", "bfloat16", "float16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the fix."""


# What a resume compares with the checkpoint's config. Model fields decide the parameters' shapes, so a
# change can never load. Run fields decide which run this is (data, schedule, optimiser, seed): a change
# mixes two runs in one, so it needs `resume_override`. Everything else (device, precision, compile,
# micro_batch_size, evaluation, logging, out_dir) may change freely.
MODEL_FIELDS = ("n_layers", "n_heads", "d_model", "n_ctx")
RUN_FIELDS = ("dataset", "dataset_config", "max_tokens", "val_every", "block_size", "tokens_per_step", "max_lr",
              "min_lr", "warmup_steps", "max_steps", "weight_decay", "beta1", "beta2", "grad_clip", "seed")


def _parse_value(name: str, raw: Any, typ: type) -> Any:
    """Convert a TOML value or a command-line string to the field's type, or explain why not."""
    if isinstance(raw, str) and typ is not str:
        text = raw.strip().lower()
        if typ is bool:
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ConfigError(f"{name} expects true or false, got {raw!r}")
        try:
            raw = float(text) if typ is float else int(text.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{name} expects a {typ.__name__}, got {raw!r}") from None
    if typ is float and isinstance(raw, int) and not isinstance(raw, bool):
        raw = float(raw)
    if type(raw) is not typ:
        raise ConfigError(f"{name} expects a {typ.__name__}, got {raw!r} ({type(raw).__name__})")
    return raw


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A TrainConfig from a TOML file (a path, or the name of one in configs/train; its tables only
    group keys) and then `key=value` overrides."""
    types = get_type_hints(TrainConfig)
    values: dict[str, Any] = {}

    def set_value(key: str, raw: Any, where: str) -> None:
        if key not in types or key.startswith("_"):
            close = difflib.get_close_matches(key, types, n=1)
            hint = f": did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(types)}"
            raise ConfigError(f"unknown config key {key!r} in {where}{hint}")
        values[key] = _parse_value(key, raw, types[key])

    if path is not None:
        path = Path(path)
        if not path.exists() and (CONFIG_DIR / path).with_suffix(".toml").exists():
            path = (CONFIG_DIR / path).with_suffix(".toml")  # a bare name like "smoke_cpu"
        if not path.exists():
            shipped = ", ".join(p.stem for p in sorted(CONFIG_DIR.glob("*.toml")))
            raise ConfigError(f"config file {path} does not exist (shipped configs: {shipped})")
        with open(path, "rb") as f:
            table = tomllib.load(f)
        for key, value in table.items():
            for k, v in value.items() if isinstance(value, dict) else [(key, value)]:
                set_value(k, v, str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} should look like key=value")
        set_value(key.strip(), raw, "the command line")
    return TrainConfig(**values)


# ---------------------------------------------------------------------------------------------
# The pieces the notebook has you write
# ---------------------------------------------------------------------------------------------


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine decay to min_lr.

    - warmup: steps 0 .. warmup_steps-1 climb linearly, max_lr * (step + 1) / warmup_steps, so the
      first step is small but not zero and step warmup_steps-1 reaches max_lr;
    - cosine: from max_lr at step warmup_steps down to min_lr at step max_steps;
    - after max_steps: min_lr.
    """
    # EXERCISE: three cases: warmup, after max_steps, and cosine in between (decay ratio 0 -> 1 over max_steps - warmup_steps)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    decay_ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (max_lr - min_lr)
    # END EXERCISE


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: weight decay on the weight matrices, none on biases and LayerNorm.

    Decay pulls weights toward zero, a prior that suits the matrices that mix features (W_Q, W_in,
    the embeddings W_E and W_pos, ...); biases and LayerNorm gains/offsets are per-feature shifts and
    scales, and shrinking them just fights the normalisation. Our GPT2 names every weight matrix
    `W_*`; note that nanoGPT's shortcut "decay if p.dim() >= 2" is wrong here, because the
    TransformerLens layout stores per-head biases like b_Q as [n_heads, d_head] matrices.
    Every trainable parameter must appear exactly once (the tied embedding too).
    Returns [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}].
    """
    # EXERCISE: split the trainable named parameters: a name whose last part starts with "W_" decays, the rest do not
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]  # a tied tensor comes once
    decay = [p for name, p in named if name.split(".")[-1].startswith("W_")]
    no_decay = [p for name, p in named if not name.split(".")[-1].startswith("W_")]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # END EXERCISE


def lm_loss(logits: Float[Tensor, "batch seq vocab"], targets: Int[Tensor, "batch seq"]) -> Float[Tensor, ""]:
    """Mean next-token cross-entropy. On a CPU through ChunkedCrossEntropy (same value and gradient,
    fewer passes over the logits); elsewhere F.cross_entropy, which under autocast runs in fp32 by
    itself: no .float() copy of the (batch * seq * 50,257) logits, the biggest activation of the model."""
    logits, targets = rearrange(logits, "b s v -> (b s) v"), rearrange(targets, "b s -> (b s)")
    if logits.device.type == "cpu":
        return ChunkedCrossEntropy.apply(logits, targets)
    return F.cross_entropy(logits, targets)


class ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of [n, vocab] logits, computed a block of rows at a time.

    At a 50k vocabulary the logits are the model's largest tensor (412 MB for 2,048 tokens in fp32),
    and a CPU spends much of a small model's step just moving them. F.cross_entropy writes a full
    log-softmax in the forward pass, then in the backward fills a full zero tensor for the one-hot
    targets and writes a full gradient from both. Here the forward keeps only one number per row (its
    logsumexp), and the backward writes the gradient, softmax minus one-hot over n, in one pass; the
    temporaries are one block of rows (about 16 MB), which the allocator reuses instead of fetching
    fresh memory from the operating system each time. Targets must be valid token ids (no ignore_index).
    """

    BLOCK_ELEMENTS = 1 << 22  # rows per block = this // vocab: about 16 MB of fp32 per temporary

    @staticmethod
    def forward(ctx, logits: Float[Tensor, "n vocab"], targets: Int[Tensor, "n"]) -> Float[Tensor, ""]:
        n, vocab = logits.shape
        rows = max(1, ChunkedCrossEntropy.BLOCK_ELEMENTS // vocab)
        lse = torch.empty(n, dtype=torch.float32, device=logits.device)
        for i in range(0, n, rows):
            lse[i : i + rows] = torch.logsumexp(logits[i : i + rows].float(), dim=-1)
        target_logits = logits.gather(1, targets[:, None])[:, 0].float()
        ctx.save_for_backward(logits, targets, lse)
        ctx.rows = rows
        return (lse - target_logits).mean()

    @staticmethod
    def backward(ctx, grad_loss: Float[Tensor, ""]) -> tuple[Float[Tensor, "n vocab"], None]:
        logits, targets, lse = ctx.saved_tensors
        n, rows = logits.shape[0], ctx.rows
        grad = torch.empty_like(logits)
        scale = grad_loss / n
        for i in range(0, n, rows):
            probs = (logits[i : i + rows].float() - lse[i : i + rows, None]).exp_()  # softmax of the block
            probs[torch.arange(probs.shape[0], device=probs.device), targets[i : i + rows]] -= 1
            grad[i : i + rows] = probs.mul_(scale)
        return grad, None


def accumulate_gradients(
    model: nn.Module,
    micro_batches: Sequence[tuple[Tensor, Tensor]],
    scaler: torch.amp.GradScaler | None = None,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    no_sync: Callable[[], ContextManager] | None = None,
) -> Float[Tensor, ""]:
    """Forward and backward every (x, y) micro-batch so that the gradients left in `.grad` equal the
    gradient of the mean loss over all of them: what one big batch would give, in a fraction of the
    memory. Returns that mean loss, detached.

    `scaler` (fp16's GradScaler) scales the loss before backward; `autocast` wraps the forward pass;
    `no_sync` (DDP's) skips the gradient all-reduce on all but the last micro-batch.
    """
    n_micro = len(micro_batches)
    losses = []
    for i, (x, y) in enumerate(micro_batches):
        last = i == n_micro - 1
        with contextlib.nullcontext() if (last or no_sync is None) else no_sync():
            # EXERCISE: loss of this micro-batch (lm_loss, inside autocast()), scaled so the sum over micro-batches is the mean; then backward (through scaler.scale if given)
            with autocast():
                loss = lm_loss(model(x), y) / n_micro
            (scaler.scale(loss) if scaler is not None else loss).backward()
            # END EXERCISE
        losses.append(loss.detach())  # stays on the device: no GPU sync per micro-batch
    return torch.stack(losses).sum()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    micro_batches: Sequence[tuple[Tensor, Tensor]],
    lr: float,
    grad_clip: float,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    train_model: nn.Module | None = None,
    no_sync: Callable[[], ContextManager] | None = None,
) -> tuple[Float[Tensor, ""], Float[Tensor, ""]]:
    """One optimizer step over `micro_batches`; returns (mean loss, global gradient norm before clipping).

    Set `lr` in every parameter group, clear the old gradients, accumulate the new ones (through
    `train_model`, the compiled or DDP-wrapped model when there is one), bring fp16-scaled gradients
    back to their true size, clip their global norm to `grad_clip` (0: no clipping), step, and let
    the scaler adapt its scale. With a disabled scaler (bf16, fp32) the scaler calls do nothing.
    """
    train_model = model if train_model is None else train_model
    # EXERCISE: lr into every group; zero_grad; accumulate_gradients; scaler.unscale_; clip_grad_norm_ (grad_clip or inf); scaler.step; scaler.update
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(train_model, micro_batches, scaler, autocast, no_sync)
    scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    scaler.step(optimizer)  # skips the step if fp16 gradients overflowed
    scaler.update()
    return loss, grad_norm
    # END EXERCISE


def flops_per_token(model: GPT2, seq_len: int) -> float:
    """Training FLOPs per token for sequences of `seq_len`: 6N + 12 * n_layers * seq_len * d_model.

    N counts the parameters that take part in matmuls: all of them except the position embedding,
    which is a lookup (the token embedding counts once, as the tied unembedding). A matmul costs 2
    FLOPs per weight per token forward and 4 backward (grads for inputs and for weights): 6N. The
    attention scores and the weighted sum of values add 2 * 2 * seq_len * d_model FLOPs per layer
    per token forward, times 3 for forward + backward: 12 * n_layers * seq_len * d_model.
    """
    # EXERCISE: count N (skip model.pos_embed's parameters) and add the attention term from model.cfg
    n_params = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.pos_embed.parameters())
    return 6 * n_params + 12 * model.cfg.n_layers * seq_len * model.cfg.d_model
    # END EXERCISE


def mfu(flops_per_token: float, tokens_per_second: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the fraction of the hardware's peak FLOP/s the model's maths uses."""
    return flops_per_token * tokens_per_second / peak_flops


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    step: int,
    data_rng: torch.Generator,
    config: dict[str, Any] | None = None,
) -> None:
    """Save everything an exact resume needs: weights, optimizer moments, the fp16 loss scale, the
    step to run next, every RNG (torch CPU, CUDA, Python's `random`) and the data position (the state
    of the generator that draws batch offsets). Write to a temporary file, then rename, so a run
    killed mid-save never leaves a corrupt checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # EXERCISE: build one dict of state_dicts, step and RNG states; torch.save it to a temp file; os.replace onto path
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "data_rng": data_rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python_rng": random.getstate(),
        "config": config or {},
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")  # unique: runs may share a folder
    torch.save(state, tmp)
    os.replace(tmp, path)
    # END EXERCISE


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    data_rng: torch.Generator,
) -> int:
    """Restore what `save_checkpoint` wrote into the given objects; return the step to run next."""
    # EXERCISE: torch.load (map_location="cpu"), load each state_dict, restore every RNG state, return the step
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    data_rng.set_state(state["data_rng"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])
    return state["step"]
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# Guards around the checkpoint exercise: integrity, readable errors, no mixing of two runs
# ---------------------------------------------------------------------------------------------

HISTORY_KEYS = ("step", "loss", "lr", "val_step", "val_loss", "samples", "resumes")
SIDECAR_SUFFIX = ".sha256"  # ckpt.pt.sha256: JSON {sha256, bytes, step, config}, written after the checkpoint


class CheckpointError(RuntimeError):
    """A checkpoint a run refuses to resume from; the message names the file and what to do."""


def _start_over(path: Path) -> str:
    return (f"To start this run over, delete {path.name} and {path.name}{SIDECAR_SUFFIX} in {path.parent} (or set "
            f"resume=false); to keep them, point out_dir at a new folder. If you kept a copy of the checkpoint, put it back.")


def write_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                     step: int, data_rng: torch.Generator, config: dict[str, Any]) -> None:
    """`save_checkpoint`, then a sidecar with the file's SHA-256 and the run's config.

    The old sidecar is removed first: a run killed between the two writes leaves a checkpoint with no
    record (loaded with a warning), never one whose record belongs to another file (refused as damaged)."""
    path = Path(path)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    sidecar.unlink(missing_ok=True)
    save_checkpoint(path, model, optimizer, scaler, step, data_rng, config)
    record = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "step": step, "config": config}
    atomic_write_text(sidecar, json.dumps(record, indent=1))


def _read_checkpoint_config(path: Path) -> dict[str, Any]:
    """The config stored in a checkpoint with no sidecar, or a CheckpointError if it is not a checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises EOFError, UnpicklingError, RuntimeError... for a bad file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__} while unpickling): it is "
                              f"damaged or is some other file. {_start_over(path)}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} holds no model state_dict: it is not a checkpoint this trainer wrote. {_start_over(path)}")
    return state.get("config") or {}


def config_changes(saved: dict[str, Any], new: dict[str, Any], allowed: Sequence[str], path: Path) -> dict[str, list]:
    """The run settings that differ from the checkpoint's and are allowed to; refuse any other difference."""
    def diff(fields):
        return {k: [saved[k], new.get(k)] for k in fields if k in saved and saved[k] != new.get(k)}

    if model := diff(MODEL_FIELDS):
        listed = ", ".join(f"{k}: {old} in the checkpoint, {new_} now" for k, (old, new_) in model.items())
        raise CheckpointError(f"{path} holds a different model ({listed}): its weights cannot fit the model this "
                              f"config builds. Resume with the checkpoint's model settings, or train the new shape "
                              f"in a new out_dir (or with resume=false).")
    run = diff(RUN_FIELDS)
    if refused := {k: v for k, v in run.items() if k not in allowed}:
        listed = ", ".join(f"{k}: {old!r} -> {new_!r}" for k, (old, new_) in refused.items())
        raise CheckpointError(f"the config differs from the one {path} was trained with ({listed}); resuming would "
                              f"mix two runs in one. Put the old values back, start the new settings in a new out_dir, "
                              f"or accept the change with resume_override={','.join(refused)} (it is recorded in "
                              f"history.json).")
    return run


def resume_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, data_rng: torch.Generator, config: dict[str, Any],
                      allowed_changes: Sequence[str] = ()) -> tuple[int, dict[str, list]]:
    """Verify a checkpoint, compare its config with this run's, then `load_checkpoint` it.

    Returns (the step to run next, the run settings that changed, as {name: [old, new]})."""
    path = Path(path)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): it was never written. {_start_over(path)}")
    if sidecar.exists():
        try:
            record = json.loads(sidecar.read_text())
            expected, saved = record["sha256"], record.get("config") or {}
        except (json.JSONDecodeError, KeyError, TypeError):
            raise CheckpointError(f"{sidecar} (the integrity record of {path.name}) is unreadable, so the checkpoint "
                                  f"cannot be verified. {_start_over(path)}") from None
        if sha256_file(path) != expected:
            raise CheckpointError(f"{path} is damaged: its SHA-256 differs from the one recorded when it was saved "
                                  f"({size:,} bytes now, {record.get('bytes', 0):,} then). Resuming from it would train "
                                  f"on corrupted weights. {_start_over(path)}")
    else:
        warnings.warn(f"{path} has no integrity record ({sidecar.name}): it comes from an older trainer or from a run "
                      f"killed while saving, and cannot be verified. Loading it anyway.", stacklevel=2)
        saved = _read_checkpoint_config(path)
    changes = config_changes(saved, config, allowed_changes, path) if saved else {}
    try:
        step = load_checkpoint(path, model, optimizer, scaler, data_rng)
    except Exception as e:  # noqa: BLE001 - torch's message for a bad pickle recommends weights_only=False (unsafe)
        first = str(e).strip().splitlines()[0][:200] if isinstance(e, (KeyError, RuntimeError, ValueError)) else ""
        raise CheckpointError(f"{path} could not be loaded into this run ({type(e).__name__}{': ' + first if first else ''}). "
                              f"{_start_over(path)}") from None
    return step, changes


def load_history(out_dir: Path, start: int) -> dict[str, list]:
    """The run's history before step `start` (what a resumed run continues), from out_dir/history.json."""
    history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    path = out_dir / "history.json"
    if start == 0 or not path.exists():
        return history
    try:
        saved = json.loads(path.read_text())
        keep = [i for i, s in enumerate(saved["step"]) if s < start]
        history["step"] = [saved["step"][i] for i in keep]
        history["loss"] = [saved["loss"][i] for i in keep]
        history["lr"] = [saved["lr"][i] for i in keep]
        keep = [i for i, s in enumerate(saved["val_step"]) if s < start]
        history["val_step"] = [saved["val_step"][i] for i in keep]
        history["val_loss"] = [saved["val_loss"][i] for i in keep]
        history["samples"] = [(s, text) for s, text in saved["samples"] if s < start]
        history["resumes"] = list(saved.get("resumes", []))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        warnings.warn(f"{path} is unreadable: the history of steps before {start} is lost; training continues.", stacklevel=2)
        return {k: [] for k in HISTORY_KEYS}
    return history


# ---------------------------------------------------------------------------------------------
# Hardware: device, precision, peak FLOP/s, processes
# ---------------------------------------------------------------------------------------------

# Dense (no sparsity) peak FLOP/s per GPU from vendor datasheets: (bf16/fp16 tensor cores, TF32, plain fp32).
PEAK_FLOPS = {
    "H200": (989e12, 495e12, 67e12),
    "H100 PCIe": (756e12, 378e12, 51e12),
    "H100": (989e12, 495e12, 67e12),  # SXM
    "A100": (312e12, 156e12, 19.5e12),
    "L4": (121e12, 60e12, 30e12),
    "A10": (125e12, 62.5e12, 31e12),
}


def resolve_amp_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for this run, or None for plain fp32."""
    if dtype == "float32" or (dtype == "auto" and device.type != "cuda"):
        return None
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype == "float16" and device.type != "cuda":
        raise ConfigError("dtype=float16 needs CUDA (fp16 loss scaling is a GPU technique): use bfloat16 or float32")
    return torch.bfloat16 if dtype == "bfloat16" else torch.float16


def peak_flops_per_device(device: torch.device, amp_dtype: torch.dtype | None, tf32: bool) -> tuple[float, str]:
    """(peak FLOP/s, where the number came from): a datasheet for known GPUs, else a measured matmul."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (half, tf32_peak, fp32) in PEAK_FLOPS.items():
            if key in name:
                peak = half if amp_dtype is not None else tf32_peak if tf32 else fp32
                return peak, f"{name} datasheet"
    # Without a datasheet, one yardstick for every precision: an emulated bf16 matmul on a CPU without
    # bf16 units is slower than fp32, and MFU against it would exceed 100%.
    return measure_matmul_flops(device, torch.float32), f"measured {device.type} fp32 matmul"


def measure_matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 1024, reps: int = 3) -> float:
    """FLOP/s of a square matmul: the practical peak where no datasheet applies (CPUs, unknown GPUs)."""
    a = torch.ones(n, n, device=device, dtype=dtype)  # values don't change a matmul's speed; no RNG use
    b = a.clone()
    a @ b  # warm-up: kernel selection, thread pool start
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: torchrun sets RANK, LOCAL_RANK and WORLD_SIZE."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Distributed:
    """Join the process group when launched by torchrun (NCCL on GPUs, gloo on CPU); else a single process."""
    if "RANK" not in os.environ:
        return Distributed(0, 0, 1, get_device(None if device == "auto" else device))
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)  # one GPU per process, picked by its rank on this node
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, local_rank, world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


class BatchSampler:
    """Draws each global batch from one generator shared (by seed) by every process; each process keeps
    its slice. So N processes see exactly the batches of one process with an N-times batch, and the
    generator's state is the whole data position a checkpoint needs."""

    def __init__(self, data, micro_batch_size: int, block_size: int, dist_: Distributed, generator: torch.Generator):
        self.data, self.batch, self.block, self.dist, self.generator = data, micro_batch_size, block_size, dist_, generator

    def next(self) -> tuple[Tensor, Tensor]:
        x, y = get_batch(self.data, self.batch * self.dist.world_size, self.block, self.generator)
        mine = slice(self.dist.rank * self.batch, (self.dist.rank + 1) * self.batch)
        x, y = x[mine], y[mine]
        if self.dist.device.type == "cuda":  # pinned memory lets the copy overlap with compute
            return x.pin_memory().to(self.dist.device, non_blocking=True), y.pin_memory().to(self.dist.device, non_blocking=True)
        return x.to(self.dist.device), y.to(self.dist.device)


def mean_across_processes(value: Tensor, dist_: Distributed) -> float:
    if dist_.world_size > 1:
        value = value.to(dist_.device)
        dist.all_reduce(value, op=dist.ReduceOp.SUM)  # gloo has no AVG
        value = value / dist_.world_size
    return value.item()


@torch.no_grad()
def evaluate(model: nn.Module, sampler: BatchSampler, n_batches: int, autocast, seed: int, dist_: Distributed) -> float:
    """Mean val loss over the same `n_batches` batches every time (a fixed generator), so evaluations
    compare like with like and never move the training data position."""
    # EXERCISE: eval mode; reseed the sampler's generator; mean lm_loss over n_batches (under autocast); back to train mode; average across processes
    model.eval()
    sampler.generator = torch.Generator().manual_seed(seed)
    losses = torch.zeros(())
    for _ in range(n_batches):
        x, y = sampler.next()
        with autocast():
            losses += lm_loss(model(x), y).float().cpu()
    model.train()
    return mean_across_processes(losses / n_batches, dist_)
    # END EXERCISE


@torch.no_grad()
def sample_text(model: GPT2, tokenizer, prompt: str, n_tokens: int, device: torch.device, seed: int) -> str:
    """Sample with section 1.1's `generate` and its own seeded generator: the training RNGs never move."""
    encode_batch, decode, eot, _ = tokenizer_fns(tokenizer)
    ids = (encode_batch([prompt])[0] if prompt else [eot])[-(model.cfg.n_ctx - n_tokens) :]
    tokens = generate(model, torch.tensor([ids], device=device), n_tokens, SamplingConfig(temperature=1.0, top_k=50),
                      use_cache=True, seed=seed)
    model.train()  # generate() switched to eval mode
    return decode(tokens[0].tolist())


def train(cfg: TrainConfig, stop_after: int | None = None, quiet: bool = False) -> dict[str, list]:
    """Train per `cfg`; return the history {"step", "loss", "lr", "val_step", "val_loss", "samples", "resumes"},
    also written to out_dir/history.json (with every checkpoint, and at the end). A resumed run's history
    starts at step 0: the steps before the resume point come from the history.json it continues, and
    "resumes" lists each resume's step and the settings `resume_override` let it change.

    `stop_after=k` ends the run after step k as if the job were killed there (after its checkpoint, if
    one falls due): resuming from out_dir must then reproduce the uninterrupted run.
    """
    dist_ = setup_distributed(cfg.device)
    try:
        return _train(cfg, dist_, stop_after, quiet)
    finally:
        if dist_.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, dist_: Distributed, stop_after: int | None, quiet: bool) -> dict[str, list]:
    cfg.validate(dist_.world_size)
    device, main = dist_.device, dist_.is_main
    log = print if (main and not quiet) else (lambda *a, **k: None)
    torch.manual_seed(cfg.seed)  # same init on every process (DDP also broadcasts rank 0's weights)
    random.seed(cfg.seed)
    if cfg.tf32 and device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # fp32 matmuls on TF32 tensor cores

    # Data: the main process tokenises once; the others wait, then read the same files.
    if main:
        info = prepare_data(cfg.dataset, cfg.dataset_config, cfg.data_dir, cfg.max_tokens, cfg.val_every)
    if dist_.world_size > 1:
        dist.barrier()
    if not main:
        info = prepare_data(cfg.dataset, cfg.dataset_config, cfg.data_dir, cfg.max_tokens, cfg.val_every)
    log(f"data: {info.corpus}; {info.n_train_tokens:,} train / {info.n_val_tokens:,} val tokens; tokenizer {info.tokenizer}")
    data_rng = torch.Generator().manual_seed(cfg.seed)
    train_sampler = BatchSampler(load_split(info, "train"), cfg.micro_batch_size, cfg.block_size, dist_, data_rng)
    val_sampler = BatchSampler(load_split(info, "val"), cfg.micro_batch_size, cfg.block_size, dist_, torch.Generator())

    # Model, optimizer, precision.
    model = GPT2(cfg.model_config(info.vocab_size)).to(device)
    amp_dtype = resolve_amp_dtype(cfg.dtype, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.max_lr, betas=(cfg.beta1, cfg.beta2),
        fused=device.type == "cuda",  # one kernel for all parameters instead of a loop over them
    )
    autocast = lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)  # noqa: E731

    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / "ckpt.pt"
    start, changes = 0, {}
    if cfg.resume and ckpt_path.exists():
        start, changes = resume_checkpoint(ckpt_path, model, optimizer, scaler, data_rng, dataclasses.asdict(cfg),
                                           cfg.resume_overrides())
        log(f"resumed from {ckpt_path} at step {start}" + (f"; changed by resume_override: {changes}" if changes else ""))

    train_model: nn.Module = torch.compile(model) if cfg.compile else model
    if dist_.world_size > 1:
        train_model = DDP(train_model, device_ids=[dist_.local_rank] if device.type == "cuda" else None)
    no_sync = train_model.no_sync if isinstance(train_model, DDP) else None

    grad_accum = cfg.grad_accum_steps(dist_.world_size)
    fpt = flops_per_token(model, cfg.block_size)
    peak, peak_source = (cfg.peak_flops, "config") if cfg.peak_flops else peak_flops_per_device(device, amp_dtype, cfg.tf32)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters, attention {cfg.attn_impl}; device {device} x{dist_.world_size}, "
        f"autocast {amp_dtype}, compile {cfg.compile}; {grad_accum} micro-batches of "
        f"{cfg.micro_batch_size}x{cfg.block_size} per process per step; peak {peak / 1e12:.3g} TFLOP/s ({peak_source})")

    tokenizer = offline.load_tokenizer().value
    history = load_history(out_dir, start)  # a resumed run keeps the steps before the resume point
    if start:
        history["resumes"].append({"step": start, "changed": changes})

    def save(step: int) -> None:
        # history first: if the job dies before the checkpoint lands, resume truncates it to the old checkpoint's step
        atomic_write_text(out_dir / "history.json", json.dumps(history))
        write_checkpoint(ckpt_path, model, optimizer, scaler, step, data_rng, dataclasses.asdict(cfg))

    def eval_and_sample(step: int, final: bool = False) -> None:
        if final or (cfg.eval_interval and step % cfg.eval_interval == 0):
            val = evaluate(train_model, val_sampler, cfg.eval_batches, autocast, cfg.seed, dist_)
            history["val_step"].append(step)
            history["val_loss"].append(val)
            log(f"step {step}: val loss {val:.4f}")
            if run is not None:
                run.log({"val/loss": val}, step=step)
        if main and (final or (cfg.sample_interval and step % cfg.sample_interval == 0 and step > 0)):
            text = sample_text(model, tokenizer, cfg.sample_prompt, cfg.sample_tokens, device, cfg.seed)
            history["samples"].append((step, text))
            log(f"step {step} sample: {text!r}")

    run_ctx = contextlib.nullcontext(None)
    if main and cfg.wandb_project:
        from curriculum.utils.logging import wandb_run

        run_ctx = wandb_run(cfg.wandb_project, dataclasses.asdict(cfg), name=Path(cfg.out_dir).name)
    with run_ctx as run:
        bar = tqdm(total=cfg.max_steps, initial=start, desc="train", disable=not main or quiet)
        step = start
        for step in range(start, cfg.max_steps):
            eval_and_sample(step)
            t0 = time.perf_counter()
            lr = lr_at(step, cfg.max_lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
            micro_batches = [train_sampler.next() for _ in range(grad_accum)]
            loss, grad_norm = train_step(model, optimizer, scaler, micro_batches, lr, cfg.grad_clip, autocast,
                                         train_model, no_sync)
            loss_value = mean_across_processes(loss, dist_)  # .item() waits for the GPU: dt is honest
            dt = time.perf_counter() - t0
            tokens_per_s = cfg.tokens_per_step / dt
            step_mfu = mfu(fpt, tokens_per_s / dist_.world_size, peak)
            history["step"].append(step)
            history["loss"].append(loss_value)
            history["lr"].append(lr)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:,.0f}", mfu=f"{step_mfu:.1%}")
            if run is not None and step % cfg.log_interval == 0:
                run.log({"train/loss": loss_value, "train/lr": lr, "train/grad_norm": float(grad_norm),
                         "perf/tokens_per_s": tokens_per_s, "perf/mfu": step_mfu}, step=step)
            done = step + 1
            if main and cfg.ckpt_interval and done % cfg.ckpt_interval == 0:
                save(done)
            if stop_after is not None and done >= stop_after:
                break
        else:
            eval_and_sample(cfg.max_steps, final=True)
            if main:
                save(cfg.max_steps)
        bar.close()
    if main:  # the metrics as JSON too: for plots, and for tests that launch the CLI through torchrun
        atomic_write_text(out_dir / "history.json", json.dumps(history))
    return history


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML file (configs/train/*.toml)")
    parser.add_argument("overrides", nargs="*", help="key=value pairs that override the file, e.g. max_steps=100")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        cfg.validate(int(os.environ.get("WORLD_SIZE", 1)))
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    train(cfg)


if __name__ == "__main__":
    main()
