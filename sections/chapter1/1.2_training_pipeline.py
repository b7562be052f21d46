# %% [markdown]
# # 1.2 A production training pipeline
#
# Section 1.1 trained GPT-2 with a ten-line loop. That loop is fine for a notebook and useless for a
# real run: it cannot stream a corpus bigger than RAM, it forgets everything when the job is
# preempted, it wastes half the GPU on fp32, and it cannot use a second GPU. This section builds the
# trainer you would actually use, in the style of Karpathy's nanoGPT / build-nanogpt:
#
# | piece | why it matters |
# |---|---|
# | `uint16` memmap data | tokenise once; sample windows from a 20 GB file with 1 GB of RAM |
# | warmup + cosine LR | the schedule GPT-2/3 were trained with; warmup keeps Adam's early steps sane |
# | decay / no-decay groups | weight decay is a prior on weight matrices, not on biases and norms |
# | gradient accumulation | a 0.5M-token batch on a GPU that fits 64 sequences |
# | MFU | the one number that says how well you use the hardware |
# | checkpoints + exact resume | a killed job continues as if nothing happened |
# | bf16 autocast, TF32, `torch.compile`, flash attention | the 3-10x between a toy and a real run |
# | DDP through `torchrun` | more GPUs, same script |
# | fixed-batch validation + a multiple-choice benchmark | numbers that compare like with like, and a skill rather than a loss |
#
# You write the pieces where the bugs hide, from the data file to the evaluation; the reference
# trainer (`curriculum/solutions/chapter1/train.py`, a command-line tool you can run for real) is built
# from exactly those functions, and at the end you run it, kill it, resume it, and score it on a
# multiple-choice benchmark.
#
# ![How the pieces fit: data on disk, one training step, evaluation, and what a checkpoint keeps](figures/1.2_pipeline.svg)
#
# Read the figure from the left. The corpus is tokenised **once** into two flat files of token ids;
# every step samples windows from the training file with a seeded generator. One optimizer step
# (`train_step`) runs several micro-batches forward and backward, then unscales, clips, steps and
# updates the loss scale. Now and then the weights are evaluated on the validation file and on a
# multiple-choice task. The orange arrows are what a checkpoint must capture for a killed run to
# continue bit for bit: not only the weights, but the optimizer's moments, the loss scale, the step,
# every random generator, and the data position (which, because batches come from a seeded
# generator, is just that generator's state).
#
# **Online or offline.** Online the corpus is a real Hugging Face dataset tokenised with GPT-2's
# tokenizer; offline (on a plane, or behind a firewall) it is CPython's documentation with a small
# BPE trained on it.

# %% setup
from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum import utils
from curriculum.solutions.chapter1.gpt2 import GPT2, Config
from curriculum.solutions.chapter1.train import (
    CONFIG_DIR,
    CheckpointError,
    ConfigError,
    TrainConfig,
    load_config,
    lm_loss,
    mean_across_processes,
    resolve_amp_dtype,
    train,
)
from curriculum.solutions.chapter1.train_data import TOKEN_DTYPE, chunked, load_split, prepare_data, tokenizer_fns
from curriculum.checks.chapter1 import train as tests
from curriculum.solutions.chapter1.mc_eval import load_mc_examples, mc_accuracy
from curriculum.utils.offline import describe, load_tokenizer
from curriculum.utils.plotting import line

torch.manual_seed(0)
RUN_DIR = Path(tempfile.mkdtemp(prefix="curriculum-1.2-"))  # this kernel's own: two notebooks never share runs
ON_GPU = utils.get_device().type == "cuda"

# %% [markdown]
# ## 1. Tokenise once, into a memmap
#
# Pretraining reads the same text over and over, so we tokenise it **once** and store the ids as one
# flat array on disk. GPT-2's vocabulary has 50,257 entries, under 2^16, so each id fits in a
# `uint16`: 2 bytes per token, 20 GB for FineWeb-Edu's 10B-token sample. `np.memmap` maps that file
# into memory without reading it: indexing `data[i : i + 1025]` pages in just those bytes.
#
# Documents are joined with an end-of-text token so the model learns where one text ends, and every
# 200th document (here: every 20th paragraph) goes to a validation file the model never trains on.
# `prepare_data` caches the result, keyed by corpus and tokenizer.
#
# ![Documents become one stream of token ids with an end-of-text token after each; every val_every-th document goes to val.bin; a training window of block_size + 1 tokens gives x and y](figures/1.2_memmap.svg)
#
# Why split by document and not by position (say, the last 1% of tokens)? A stream has no known
# end, so "the last 1%" cannot be found until the whole stream is read; and a split by position cuts
# a document in two, so the model would train on the first half of a text and be validated on its
# second half, which flatters it. A document-level rule decided as each document arrives has neither
# problem.
#
# ### Exercise: tokenise documents into memmap files
#
# `write_memmaps(documents, encode_batch, eot_token, out_dir, val_every, max_tokens, chunk_docs)`
# writes `train.bin` and `val.bin`. The loop you write is the whole of data preparation at any scale:
#
# - take the documents `chunk_docs` at a time (`chunked` is given) and encode each chunk in one
#   `encode_batch` call: fast tokenizers are far quicker on a list than one text at a time;
# - append `eot_token` to every document's ids;
# - count documents across chunks; document `i` goes to val when `i % val_every == val_every - 1`;
# - write the ids as `uint16` bytes (`np.asarray(ids).astype(np.uint16).tobytes()`), but first make
#   sure every id fits: `astype(np.uint16)` turns 70,000 into 4,464 without a word, which would
#   corrupt the data for the whole run. Raise `ValueError` instead;
# - keep per-split token counts, return `(n_train, n_val)`, and when `max_tokens > 0` stop after the
#   first chunk at which the total written reaches it.
#
# The check writes eight documents of unequal lengths with `val_every=3` and `chunk_docs=2` (so the
# split rule has to count across chunk boundaries) and reads the bytes back.

# %% exercise curriculum.solutions.chapter1.train_data:write_memmaps difficulty=2 importance=3 minutes=20
tests.check_write_memmaps(write_memmaps)

# %% hint
# Two nested loops: over chunks, then over the encoded documents of that chunk. A counter of
# documents lives outside both loops (it must not restart with each chunk); the token counts live in
# the `counts` dict the function already created, and the open files in `files[split]`.

# %% hint
# For each document: `ids = np.asarray(ids + [eot_token], dtype=np.int64)`; if `ids.max()` exceeds
# `np.iinfo(np.uint16).max`, raise; pick `split`; `files[split].write(ids.astype(np.uint16).tobytes())`;
# `counts[split] += len(ids)`; `bar.update(len(ids))`. After the inner loop, check `max_tokens`.

# %%
DATASET = "roneneldan/TinyStories"  # used when online; offline the stand-in corpus replaces it
info = prepare_data(DATASET, max_tokens=20_000_000, val_every=20)
train_data, val_data = load_split(info, "train"), load_split(info, "val")
_, decode, eot, _ = tokenizer_fns(load_tokenizer().value)
print(f"{info.corpus}\n{info.tokenizer}")
print(f"train: {len(train_data):,} tokens ({train_data.nbytes / 1e6:.2f} MB as {train_data.dtype}), val: {len(val_data):,}")
print(repr(decode(train_data[:60].tolist())))

# %% [markdown]
# ### Exercise: sample a batch from the memmap
#
# Pick `batch_size` random start offsets and cut windows of `block_size + 1` tokens: the first
# `block_size` are the input `x`, the last `block_size` the targets `y` (each position predicts the
# next token). Three details make this production code rather than a toy:
#
# - **every** valid start must be possible: `torch.randint(high)` excludes `high`, so the right bound
#   is `len(data) - block_size` (the last window's target ends on the final token);
# - draw the offsets with the `generator` you are given and nothing else: its state then *is* the
#   data position, which a checkpoint saves so a resumed run sees the same batches;
# - return `int64`: memmaps hold `uint16`, which embeddings and `cross_entropy` do not accept.

# %% exercise curriculum.solutions.chapter1.train_data:get_batch difficulty=2 importance=4 minutes=15
tests.check_get_batch(get_batch)

# %% hint
# One window of `block_size + 1` consecutive tokens gives both tensors: `x` is its first `block_size`
# tokens and `y` its last `block_size`. So you need `batch_size` start offsets, each chosen among
# every start whose window still fits inside the data.

# %% hint
# `torch.randint(len(data) - block_size, (batch_size,), generator=generator)`: the bound is exclusive,
# so the largest start is `len(data) - block_size - 1`, whose window ends on the final token. A slice
# of the memmap is a numpy `uint16` array: `.astype(np.int64)` before `torch.from_numpy`, then
# `torch.stack` the windows. The check fails if torch's global RNG moved, so no `torch.randint`
# without `generator=` and no `np.random`.

# %% hint
# ```python
# starts = torch.randint(..., generator=generator).tolist()
# windows = torch.stack([torch.from_numpy(data[i : i + block_size + 1].astype(np.int64)) for i in starts])
# return ..., ...   # x and y from windows
# ```

# %%
x, y = get_batch(train_data, 2, 16, torch.Generator().manual_seed(0))
print("x:", repr(decode(x[0].tolist())))
print("y:", repr(decode(y[0].tolist())))

# %% [markdown]
# ## 2. Learning-rate schedule: linear warmup, cosine decay
#
# At step 0 Adam's moment estimates are built from one gradient, so its steps are erratic; a full
# learning rate there can blow up the loss (or kill LayerNorms and attention heads for good).
# **Warmup** ramps the rate linearly over the first few hundred steps. After that, a **cosine**
# decay to a floor (`min_lr`, 10% of the peak for GPT-3) anneals the noise of SGD so the loss keeps
# dropping late in training.
#
# ### Exercise: `lr_at(step, ...)`
# Steps count from 0. Warmup gives `max_lr * (step + 1) / warmup_steps` (so the first step is not
# wasted at lr=0, and step `warmup_steps - 1` reaches `max_lr`); cosine runs from `max_lr` at
# `warmup_steps` to `min_lr` at `max_steps`; after that the rate stays at `min_lr`. The check
# compares with torch's `LinearLR` + `CosineAnnealingLR` chained by `SequentialLR`.

# %% exercise curriculum.solutions.chapter1.train:lr_at difficulty=2 importance=4 minutes=15
tests.check_lr_at(lr_at)

# %% hint
# Three regimes, tested in this order: warmup (`step < warmup_steps`), finished
# (`step >= max_steps`: return `min_lr`), and the cosine in between. Early returns keep it readable.

# %% hint
# In the cosine regime let `ratio = (step - warmup_steps) / (max_steps - warmup_steps)`, which goes from
# 0 to 1. The factor `0.5 * (1 + cos(pi * ratio))` then goes from 1 to 0, and the rate is
# `min_lr + factor * (max_lr - min_lr)`. The check walks through steps 0 to 99 (warmup 10, 100 steps)
# and names the phase of the first step that differs; a warmup of `step / warmup_steps` fails at step 0.

# %%
gpt2_cfg = load_config(CONFIG_DIR / "gpt2_124m.toml")
schedule = [lr_at(s, gpt2_cfg.max_lr, gpt2_cfg.min_lr, gpt2_cfg.warmup_steps, gpt2_cfg.max_steps) for s in range(gpt2_cfg.max_steps + 500)]
line(schedule, title="GPT-2 124M schedule: 715 warmup steps, cosine to 10% over 19,073 steps", ylabel="learning rate")

# %% [markdown]
# ## 3. Parameter groups: what gets weight decay
#
# AdamW's decoupled weight decay shrinks every parameter it is applied to by `lr * wd` per step. That
# is a sensible prior for the **weight matrices** that mix features: the embeddings and `W_Q, W_K,
# W_V, W_O, W_in, W_out`. It is a bad idea for **biases** and **LayerNorm** gains/offsets: they are
# per-feature shifts and scales; pulling a LayerNorm gain toward 0 fights the normalisation.
#
# nanoGPT's rule is "decay if `p.dim() >= 2`". Our model uses TransformerLens's layout, where the
# per-head biases `b_Q, b_K, b_V` have shape `[n_heads, d_head]`: two dimensions, still biases. So
# here the rule is by name: decay exactly the `W_*` parameters. Every trainable parameter must land
# in exactly one group (with tied embeddings, `W_E` is also the unembedding: once, not twice), and
# frozen ones (`requires_grad=False`) in none.
#
# ### Exercise: decay and no-decay parameter groups
#
# Return the two parameter groups AdamW takes: `[{"params": decay, "weight_decay": weight_decay},
# {"params": no_decay, "weight_decay": 0.0}]`. The check builds tied and untied models and checks
# that every trainable parameter appears exactly once, in the right group.

# %% exercise curriculum.solutions.chapter1.train:param_groups difficulty=2 importance=3 minutes=15
tests.check_param_groups(param_groups)

# %% hint
# Decide by name, not by shape. The last part of a parameter's dotted name
# (`blocks.0.attn.W_Q` → `W_Q`) says whether it is a weight matrix (`W_*`) or a bias or LayerNorm
# parameter.

# %% hint
# `model.named_parameters()` yields a tensor shared by two modules only once, so the tied `W_E` takes
# care of itself; keep only those with `p.requires_grad` (the unembedding bias `b_U` is frozen). Then
# `name.split(".")[-1].startswith("W_")` sorts them. A `p.dim() >= 2` rule puts `b_Q`, `b_K`, `b_V`
# in the decay group, which the check reports.

# %%
with torch.device("meta"):  # shapes only: no memory, no initialisation
    model_124m = GPT2(gpt2_cfg.model_config(d_vocab=50257))
decay, no_decay = param_groups(model_124m, 0.1)
n_decay, n_no = sum(p.numel() for p in decay["params"]), sum(p.numel() for p in no_decay["params"])
print(f"GPT-2 124M: {len(decay['params'])} tensors / {n_decay:,} parameters decay; "
      f"{len(no_decay['params'])} tensors / {n_no:,} do not")

# %% [markdown]
# ## 4. Gradient accumulation
#
# GPT-3 small was trained with 0.5M tokens per step (256 sequences of 2048 tokens; with GPT-2's context of
# 1024, 512 sequences). A single GPU fits
# perhaps 64 of them. Gradients are sums, so we can run 8 **micro-batches** of 64, let `.backward()`
# add their gradients into `.grad`, and step once. The only subtlety is the scale: the loss is a
# *mean* over tokens, so the big batch's gradient is the *mean* of the micro-batch gradients. Divide
# each micro-batch loss by the number of micro-batches before `backward`.
#
# The reference function also takes the pieces a real trainer threads through it: an `autocast`
# context for the forward pass, the fp16 `GradScaler` (backward goes through `scaler.scale(loss)`),
# and DDP's `no_sync` (see *More GPUs: DDP through torchrun* below). You write the two lines inside
# the loop.
#
# ### Exercise: gradient accumulation
#
# Fill in the body of the loop: one micro-batch's forward pass and backward pass. The check compares
# the gradients left in `.grad` with the gradient of one big batch computed by plain autograd, counts
# how often your code entered `autocast()`, and runs once more with a `GradScaler` of scale 8.

# %% exercise curriculum.solutions.chapter1.train:accumulate_gradients difficulty=2 importance=4 minutes=15
tests.check_accumulate_gradients(accumulate_gradients)

# %% hint
# Each micro-batch loss is a mean over its own tokens. Calling `backward` on each adds their gradients
# into `.grad`, giving the *sum* of `n_micro` means: `n_micro` times the big batch's gradient. Divide
# each loss by `n_micro` before `backward` (the micro-batches are the same size, so the mean of the
# means is the big batch's mean).

# %% hint
# `autocast` and `scaler` are arguments: `with autocast():` (call it, it makes a fresh context) around
# the forward pass and `lm_loss(model(x), y) / n_micro`; then `.backward()` on `scaler.scale(loss)`
# when a scaler is given, else on `loss`. Name the result `loss`: the line after the fence stores it.
# Do not call `zero_grad` inside the loop; the check's ratio hint tells you if only one micro-batch's
# gradient survived.

# %% [markdown]
# ## 5. One whole training step: mixed precision and clipping
#
# Accumulating gradients is the middle of a step. Around it sit five small operations whose *order*
# matters, and every one of them has a classic bug:
#
# 1. **Set the learning rate** in every parameter group (the schedule is a function of the step; the
#    optimizer only knows what you last wrote into `group["lr"]`).
# 2. **Clear old gradients** (`optimizer.zero_grad(set_to_none=True)`): `backward` *adds* into
#    `.grad`, which is what made accumulation work, and what makes a forgotten `zero_grad` silently
#    add last step's gradient to this one.
# 3. **Accumulate** the micro-batches (your `accumulate_gradients`).
# 4. **Unscale, then clip.** In fp16 training the `GradScaler` multiplied the loss by a large scale
#    *S* (often 2^16) so that small gradients do not underflow to zero in fp16. Every gradient is
#    therefore *S* times too big. `scaler.unscale_(optimizer)` divides them back; only then does
#    `clip_grad_norm_(params, max_norm)` see the true global norm. Clip before unscaling and you
#    compare `S * |g|` with `max_norm`: every step is clipped to a tiny fraction of its size.
#    Clipping rescales all gradients together when their global norm exceeds `max_norm`, so a single
#    bad batch cannot throw the weights far. `grad_clip = 0` means "no clipping" in our config, so pass
#    `float("inf")` then: `clip_grad_norm_(params, 0)` would zero every gradient.
# 5. **Step and update the scale.** `scaler.step(optimizer)` skips the step if any gradient is inf or
#    NaN (an fp16 overflow); `scaler.update()` then halves the scale after an overflow, or doubles it
#    after a run of clean steps. Without `update` the scale never adapts: one overflow and every
#    later step is skipped.
#
# With bf16 or fp32 the scaler is created with `enabled=False`, and all its methods pass through, so
# one code path serves every precision.
#
# A worked example of why clipping happens *after* unscaling: say the true gradient norm is 0.8,
# `max_norm = 1.0` and the scale is 65,536. The scaled norm is 52,429; clipping it to 1.0 multiplies
# every gradient by 1.0 / 52,429, and unscaling afterwards divides by another 65,536: the gradient the
# optimizer receives has norm 1 / 65,536, about 2 × 10^-5 of the true 0.8. With plain SGD the loss
# curve goes flat. With Adam the damage hides: Adam divides by the gradient's running scale, so the
# steps keep roughly their size, but clipping has stopped meaning anything (every step is "clipped"),
# the logged norm is 65,536 times too large, and once gradients are that small Adam's `eps` starts to
# dominate. Nothing raises an error in either case.
#
# ### Exercise: `train_step`
#
# Write the body of `train_step(model, optimizer, scaler, micro_batches, lr, grad_clip, autocast,
# train_model, no_sync)`: the five operations above, returning `(loss, grad_norm)` where `grad_norm`
# is what `clip_grad_norm_` returns (the norm *before* clipping, which is what you want to log).
# `train_model` is the model to run forward (the compiled or DDP-wrapped one in a real run); the
# parameters to clip are `model.parameters()`. The check takes two steps in fp32 without clipping,
# then two with clipping active and a scaler, and compares the parameters after every step with
# plain autograd + `clip_grad_norm_` + AdamW.

# %% exercise curriculum.solutions.chapter1.train:train_step difficulty=3 importance=5 minutes=20
tests.check_train_step(train_step)

# %% hint
# Seven calls in order: write `lr` into each of `optimizer.param_groups`; `optimizer.zero_grad`;
# `accumulate_gradients(train_model, micro_batches, scaler, autocast, no_sync)`; `scaler.unscale_`;
# `torch.nn.utils.clip_grad_norm_`; `scaler.step`; `scaler.update`.

# %% hint
# The max norm is `grad_clip or float("inf")`. Keep both return values: the loss from
# `accumulate_gradients` and the norm from `clip_grad_norm_`. If the check says the norm is 1024x too
# big, `unscale_` is missing or comes after the clip; if step 1 is off while step 0 matched, the
# gradients were not cleared.

# %% [markdown]
# ## 6. FLOPs per token and MFU
#
# **Model FLOPs utilisation** is the fraction of the hardware's peak FLOP/s that the model's own
# arithmetic uses: `flops_per_token * tokens_per_second / peak_flops`. It ignores recomputation and
# overheads on purpose, so it compares runs, implementations and hardware honestly.
#
# The count (Kaplan et al. 2020; PaLM, appendix B): a matmul with a weight of N entries costs 2N FLOPs
# per token forward (a multiply and an add) and 4N backward (gradients for the input and for the
# weight): **6N** per token, with N every parameter that takes part in a matmul: everything but the
# position table, which is a lookup (the tied `W_E` counts once, as the unembedding). Attention adds
# the `QK^T` scores and the weighted sum of values, `2 * 2 * seq_len * d_model` FLOPs per layer per
# token forward, times 3 with backward: **12 · n_layers · seq_len · d_model**.
# The check counts the real FLOPs of a forward + backward with `torch.utils.flop_counter`.
#
# A worked example for GPT-2 124M at 1024 tokens: about 124M parameters, minus the 0.8M of the
# position table, gives 6 × 123.6M ≈ 0.74 GFLOPs for the weights; attention adds
# 12 × 12 × 1024 × 768 ≈ 0.11 GFLOPs. So attention is about 13% of the cost at this length, and its
# share grows linearly with the context. The cell after the exercise prints the exact figure.
#
# ### Exercise: FLOPs per token
#
# `flops_per_token(model, seq_len)` returns the training FLOPs per token from the formula above.
# `mfu` (given, one line: achieved FLOP/s over peak FLOP/s) turns it and a measured throughput into a
# utilisation. The check accepts a formula within 3% of the counted FLOPs.

# %% exercise curriculum.solutions.chapter1.train:flops_per_token,mfu difficulty=3 importance=3 minutes=20
tests.check_flops_per_token(flops_per_token, mfu)

# %% hint
# Two terms. The weights: 6 FLOPs per parameter per token (2 forward, 4 backward), counting every
# parameter except the position table. The attention products, which involve no parameters and grow
# with `seq_len`: `12 * n_layers * seq_len * d_model`.

# %% hint
# `sum(p.numel() for p in model.parameters())` counts the tied `W_E` once; subtract the same sum over
# `model.pos_embed.parameters()`. The sizes are in `model.cfg`. The check recognises the common
# slips and names them: forward only, the attention term missing, `W_pos` counted, or 6 instead of 12.

# %%
fpt = flops_per_token(model_124m, 1024)
print(f"GPT-2 124M at 1024 tokens: {fpt / 1e9:.3f} GFLOPs per token")
for device_name, peak in [("A100 (bf16, 312 TFLOP/s)", 312e12), ("H100 SXM (bf16, 989 TFLOP/s)", 989e12)]:
    print(f"  {device_name}: 50% MFU = {0.5 * peak / fpt:,.0f} tokens/s; "
          f"10B tokens in {10e9 / (0.5 * peak / fpt) / 3600:.1f} h")

# %% [markdown]
# ## 7. Checkpoints and exact resume
#
# Long runs die: preemption, a node failure, a time limit. A checkpoint that holds only the weights
# resumes a *different* run: Adam's moment estimates restart from zero (a loss spike), the learning
# rate schedule restarts unless the step is saved, and the data order changes. An **exact** resume
# restores everything that decides the future: model, optimizer, GradScaler (fp16's loss scale),
# the step, every RNG (torch, CUDA, Python's `random`) and the data position, which for us is the
# state of the batch generator. Then the resumed loss curve is bit-for-bit the uninterrupted one.
#
# Save atomically: `torch.save` to a temporary file, then `os.replace` it onto the real path, so a
# job killed mid-save leaves the previous checkpoint intact. Give the temporary file a name no other
# process will pick (add the process id and a random suffix): two runs sharing a folder must never
# rename each other's half-written file. Load with `map_location="cpu"` (the optimizer and model
# move tensors to the parameters' device) and `weights_only=True` (safe to unpickle).
#
# ### Exercise: save a checkpoint
#
# `save_checkpoint(path, model, optimizer, scaler, step, data_rng, config)` puts everything that
# decides the future of the run into one dict and writes it atomically. Use these keys (the loader,
# and the trainer's guards, read them): `"model"`, `"optimizer"`, `"scaler"`, `"step"`, `"data_rng"`,
# `"torch_rng"`, `"cuda_rng"` (an empty list without CUDA), `"python_rng"`, `"config"`. Create the
# folder if it does not exist. The check reads your file back with `weights_only=True` and compares
# every entry with the live objects.

# %% exercise curriculum.solutions.chapter1.train:save_checkpoint difficulty=2 importance=4 minutes=15
tests.check_save_checkpoint(save_checkpoint)

# %% hint
# One dict holds it all: the model's, optimizer's and scaler's `state_dict()`, the step, the state of
# `data_rng`, torch's CPU RNG, the CUDA RNGs (when CUDA is available) and Python's `random`, plus the
# config (`config or {}`).

# %% hint
# `data_rng.get_state()`, `torch.get_rng_state()`, `torch.cuda.get_rng_state_all()` and
# `random.getstate()` give the states. Write to a temporary name beside the checkpoint, such as
# `path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")`, with `torch.save`, then
# `os.replace(tmp, path)`.

# %% [markdown]
# ### Exercise: load a checkpoint
#
# `load_checkpoint(path, model, optimizer, scaler, data_rng)` restores what `save_checkpoint` wrote
# into fresh objects and returns the step to run next. Load with `map_location="cpu"`: a checkpoint
# written on GPU 3 must load on a laptop, and `load_state_dict` moves each tensor to where its
# parameter already lives. The check trains 3 steps, saves, trains 3 more, then loads into a
# differently seeded model, optimizer, scaler and RNGs, and requires the same 3 losses, exactly.

# %% exercise curriculum.solutions.chapter1.train:load_checkpoint difficulty=2 importance=4 minutes=15
tests.check_checkpoint_roundtrip(save_checkpoint, load_checkpoint)

# %% hint
# Every `get_state` / `state_dict` you saved has a partner: `load_state_dict`, `data_rng.set_state`,
# `torch.set_rng_state`, `torch.cuda.set_rng_state_all` (only when the list is non-empty and CUDA is
# available), `random.setstate`.

# %% hint
# `state = torch.load(path, map_location="cpu", weights_only=True)`, then restore the model, the
# optimizer, the scaler, the data generator and the three RNGs from their keys, and return
# `state["step"]`.

# %% hint
# The check names the first resumed step whose loss differs. If step 0 is already off by less than
# about 0.002 (the size of the stand-in noise), torch's or Python's RNG was not restored; if it is off
# by more, the weights or the data generator. If step 0 matches and step 1 does not, the weights were
# right but Adam's moments were not. A wrong GradScaler scale has its own message.

# %% [markdown]
# ## 8. Precision, compilation and the config
#
# Three switches that cost nothing in code and buy most of the speed on a GPU:
#
# - **bf16 autocast** (`torch.autocast("cuda", dtype=torch.bfloat16)`): matmuls run on bf16 tensor
#   cores (16x the fp32 rate on an H100) while weights, optimizer state and reductions stay fp32.
#   bf16 has fp32's exponent range, so no loss scaling is needed. GPUs without bf16 (V100, T4) use
#   **fp16 + `GradScaler`**: fp16's small range underflows small gradients, so the loss is
#   multiplied by a large scale before backward and the gradients divided by it before the step
#   (a step whose gradients overflowed is skipped and the scale halved).
# - **TF32** (`torch.set_float32_matmul_precision("high")` or `allow_tf32`): whatever stays fp32
#   runs on tensor cores with a 10-bit mantissa.
# - **`torch.compile`** fuses the elementwise operations (GELU, LayerNorm, residual adds) into few
#   kernels, so activations make fewer trips to memory. **Flash attention**
#   (`F.scaled_dot_product_attention`, our `attn_impl="sdpa"`) never writes the seq x seq attention
#   matrix to memory at all.
#
# On a CPU the bottleneck is often the loss rather than the matmuls. At a 50k vocabulary the logits
# are the largest tensor in the model: 2,048 tokens × 50,304 entries × 4 bytes = 412 MB, against
# 1 MB for the residual stream of the same tokens at `d_model = 128`. `F.cross_entropy` passes over a
# tensor of that size several times: it writes a full log-softmax in the forward pass, and in the
# backward pass it fills a full tensor of zeros for the one-hot targets and then writes the full
# gradient. The given `lm_loss` therefore calls `ChunkedCrossEntropy` on a CPU. Its forward pass
# keeps one number per row, the logsumexp, and its backward pass writes the gradient,
# `(softmax - one_hot) / n`, in a single pass over blocks of about 80 rows. The loss and gradient
# equal `F.cross_entropy`'s up to float rounding. Measured on a 2-core
# CPU at the nanoGPT-shaped setting of `benchmarks/train_throughput.py` (4 layers, `d_model` 128,
# 16 × 128 tokens), it makes a whole training step 7 to 9% faster. On a GPU, `lm_loss` keeps
# `F.cross_entropy`. GPU kernels go further: [llm.c](https://github.com/karpathy/llm.c)'s classifier
# kernel computes the loss and writes the gradient over the logits in place, and
# [Liger Kernel](https://github.com/linkedin/Liger-Kernel)'s fused linear cross-entropy runs the
# read-out matmul and the loss a block of rows at a time, so the full logits never exist.
#
# The config is one dataclass, read from a TOML file and then `key=value` overrides, exactly as on
# the command line: `python -m curriculum.solutions.chapter1.train --config configs/train/gpt2_124m.toml max_steps=100`.
# Values that cannot work are refused up front, with the fix.

# %%
print("autocast dtype on this machine:", resolve_amp_dtype("auto", utils.get_device()))
for overrides in (["max_step=10"], ["block_size=4096"], ["tokens_per_step=1000"]):
    try:
        load_config(CONFIG_DIR / "smoke_cpu.toml", overrides).validate()
    except ConfigError as e:
        print(f"{overrides[0]!r:>24} -> {e}")

# %% [markdown]
# ## 9. Evaluation: fixed batches, no gradients
#
# The training loss is a noisy, optimistic estimate: each batch is new, and the model was just
# updated on batches like it. The validation loss answers the question that matters (how well does
# the model predict text it never trained on?) and is only useful if two evaluations compare like
# with like. Four rules make it so:
#
# - **Eval mode** (`model.eval()`): dropout and similar layers switch to their deterministic
#   behaviour. Our GPT-2 has none, but a trainer must not depend on that; and switch back with
#   `model.train()` afterwards, or every later training step runs in eval mode.
# - **No gradients.** `torch.no_grad()` (here the decorator on the function) stops autograd from
#   recording the forward pass: less memory, faster, and no risk of a stray `backward`.
# - **The same batches every time.** Reseed the validation sampler's generator with a fixed seed at the
#   start of each evaluation (`sampler.generator = torch.Generator().manual_seed(seed)`). Then a
#   drop in validation loss is the model's doing, not a luckier draw.
# - **Every process agrees.** Under DDP each process evaluates its slice; average the result across
#   processes (`mean_across_processes`) so every rank logs the same number.
#
# ### Exercise: `evaluate`
#
# Write the body of `evaluate(model, sampler, n_batches, autocast, seed, dist_)`: return the mean of
# `lm_loss` over `n_batches` batches from `sampler.next()`, each forward pass under `autocast()`,
# following the four rules. Accumulate the losses as a tensor and call `.item()` once at the end
# (`mean_across_processes` does it): each `.item()` waits for the GPU to finish.

# %% exercise curriculum.solutions.chapter1.train:evaluate difficulty=2 importance=4 minutes=10
tests.check_evaluate(evaluate)

# %% hint
# `model.eval()`; a fresh seeded generator on the sampler; a loop of `n_batches` that draws
# `x, y = sampler.next()` and adds `lm_loss(model(x), y)` computed inside `with autocast():`;
# `model.train()`; return the mean.

# %% hint
# Keep a running sum `losses = torch.zeros(())`, add `lm_loss(...).float().cpu()` each time, and
# return `mean_across_processes(losses / n_batches, dist_)`, which returns a Python float.

# %% [markdown]
# ## 10. Run it
#
# The smoke config is a 2-layer GPT on the offline corpus that trains in about a minute on a laptop
# CPU; on a GPU we make it bigger. Watch the progress bar: loss, learning rate, tokens/s and MFU
# (on a CPU the "peak" is a measured matmul, so CPU MFU says how close the model's maths comes to
# this machine's BLAS). Validation loss is measured on the same fixed batches every time, so its
# curve compares like with like.

# %%
overrides = [f"out_dir={RUN_DIR / 'smoke'}", f"max_steps={utils.full_or_quick(200, 40)}", f"eval_interval={utils.full_or_quick(25, 10)}"]
if ON_GPU and not utils.QUICK:
    overrides += ["device=cuda", "dtype=auto", "n_layers=6", "d_model=384", "n_heads=6", "n_ctx=256", "block_size=256",
                  "micro_batch_size=64", "tokens_per_step=32768", "max_steps=1000", "eval_interval=100"]
cfg = load_config(CONFIG_DIR / "smoke_cpu.toml", overrides)
history = train(cfg)

# %%
line(
    {"train": history["loss"], "validation": history["val_loss"]},
    x={"train": history["step"], "validation": history["val_step"]},
    smooth=10,
    title="Smoke run: train and validation loss",
    ylabel="cross-entropy (nats)",
)
print(f"uniform guessing: {math.log(info.vocab_size):.2f} nats; val loss {history['val_loss'][0]:.2f} -> {history['val_loss'][-1]:.2f}")
print("sample:", repr(history["samples"][-1][1]))

# %% [markdown]
# ### Kill it, resume it
#
# We run a short job to the end, then the same job "killed" after step 4 (its last checkpoint is at
# step 3), then restart it with `resume=true` from a process whose RNGs are in a different state.
# The resumed losses should equal the uninterrupted ones exactly: not approximately, bit for bit.

# %%
tiny = ["n_layers=1", "d_model=32", "n_heads=2", "n_ctx=32", "block_size=32", "micro_batch_size=4", "tokens_per_step=256",
        "max_steps=6", "warmup_steps=2", "eval_interval=3", "ckpt_interval=3", "sample_tokens=8"]
full = train(load_config(CONFIG_DIR / "smoke_cpu.toml", tiny + [f"out_dir={RUN_DIR / 'full'}"]), quiet=True)
killed_cfg = load_config(CONFIG_DIR / "smoke_cpu.toml", tiny + [f"out_dir={RUN_DIR / 'killed'}", "resume=false"])
killed = train(killed_cfg, stop_after=4, quiet=True)
torch.manual_seed(12345)
random.seed(12345)
resumed = train(load_config(CONFIG_DIR / "smoke_cpu.toml", tiny + [f"out_dir={RUN_DIR / 'killed'}", "resume=true"]), quiet=True)
print("uninterrupted:", [f"{v:.6f}" for v in full["loss"]])
print("killed+resumed:", [f"{v:.6f}" for v in resumed["loss"]])  # the history keeps the steps before the resume
print("identical:", resumed["loss"] == full["loss"], "| resumes:", resumed["resumes"])

# %% [markdown]
# ### What the trainer adds around your two functions
#
# Your `save_checkpoint` and `load_checkpoint` move the state; `train` wraps them in three guards that
# cost a few lines each and save days:
#
# - **Integrity.** After each save the trainer writes `ckpt.pt.sha256` beside the checkpoint: the
#   file's SHA-256 and the run's config. Before a resume it recomputes the hash. A disk or copy error
#   that flips a few bytes inside a weight tensor still unpickles without complaint, and the run would
#   carry on from garbage weights; with the hash it is refused, naming the file and what to do.
# - **One run per folder.** A resume compares the config with the checkpoint's. A different model
#   shape cannot load at all; a different learning rate, batch size, seed, schedule length or dataset
#   *can* load, and then the run silently becomes a mix of two experiments. Both are refused; when
#   you mean it (say, training for more steps), name the settings in `resume_override=max_steps` and
#   the change is recorded in `history.json` under `resumes`.
# - **Whole history.** `history.json` is rewritten with each checkpoint, and a resumed run continues
#   it, so the loss curve of a run that was killed twice is still one curve from step 0.
#
# Here the checkpoint of the killed run gets 64 bytes flipped in the middle, and then a resume with a
# changed learning rate is attempted on an intact copy:

# %%
ckpt = RUN_DIR / "killed" / "ckpt.pt"
intact = ckpt.read_bytes()
mid = len(intact) // 2
ckpt.write_bytes(intact[:mid] + bytes(b ^ 0xFF for b in intact[mid : mid + 64]) + intact[mid + 64 :])
for overrides in (["resume=true"], ["resume=true", "max_lr=1e-3"]):
    try:
        train(load_config(CONFIG_DIR / "smoke_cpu.toml", tiny + [f"out_dir={RUN_DIR / 'killed'}", *overrides]), quiet=True)
    except CheckpointError as e:
        print(f"{' '.join(overrides)}:\n  {e}\n")
    ckpt.write_bytes(intact)

# %% [markdown]
# ## 11. Does lower loss mean a better model? A multiple-choice evaluation
#
# Validation loss compares models trained on the same data with the same tokenizer, and nothing
# else: change the tokenizer and the loss changes meaning. To compare with other models, and to see
# whether lower loss becomes a skill, pretraining runs also report **downstream** scores. The one
# build-nanogpt uses, and that is cheap enough to run every few hundred steps, is **HellaSwag**
# (Zellers et al., 2019): a context and four endings, one right. The wrong endings were generated
# by a language model and then filtered so that models of that time found them plausible, while
# people found them silly.
#
# A base model answers with no prompt at all, by likelihood. For each ending, feed `context + ending`
# and average the loss over the ending's tokens only; the ending with the lowest average wins.
# Three details decide the score:
#
# - **Score only the ending.** The context is shared by all four rows, so its tokens add the same
#   loss to each and only dilute the difference.
# - **Average, do not sum.** A sum favours short endings (fewer tokens, fewer chances to be
#   surprised). The mean per token is the length-normalised rule (HellaSwag's `acc_norm` normalises
#   by length too, in characters rather than tokens).
# - **Shift by one.** The logits at position t predict token t + 1. An ending that starts at
#   position `len(context)` is scored by the logits from `len(context) - 1` to the second-to-last
#   position of the row.
#
# A worked example with a 3-token context `[c0, c1, c2]` and the 2-token ending `[e0, e1]`: the row is
# `[c0, c1, c2, e0, e1]` (positions 0 to 4). `e0` is predicted by the logits at position 2, `e1` by
# those at position 3; the logits at position 4 predict whatever would come next and are not used.
# The score is the mean of the two cross-entropies.
#
# All four endings go through the model in **one** batch: pad the rows to the longest one. Padding
# after a row's end changes none of its logits (the model is causal), but the padded positions must
# not enter the mean.
#
# **Online or offline.** Online you get HellaSwag's validation set. Offline the examples are a
# stand-in in the same format, built from the validation paragraphs of our corpus (ones the model
# never trained on): 24 words of a paragraph are the context, the next 8 the right ending, and three
# other 8-word spans of the *same* paragraph the wrong ones. Distractors from the same paragraph share
# the context's words and topic, so the only way to win is to know what comes next. It exercises
# exactly the same scoring code, and a model that has learned something about the corpus should
# beat the 25% of guessing; it measures continuation of Python's documentation, not commonsense,
# so do not compare its numbers with HellaSwag's.
#
# ### Exercise: score the endings
#
# Write the body of `ending_losses(model, context, endings)`: `context` is a list of token ids,
# `endings` a list of lists. Return a tensor with one mean loss per ending, from a single forward
# pass over the padded batch. The check uses endings of lengths 3, 5, 1 and 4, so padding and the
# shift both matter, and recognises a sum, a scored context and an unshifted target by name.

# %% exercise curriculum.solutions.chapter1.mc_eval:ending_losses difficulty=3 importance=4 minutes=20
tests.check_ending_losses(ending_losses)

# %% hint
# Build `tokens` of shape `[n_endings, max_len]` (zeros, then copy each row in) and a float `mask` of
# shape `[n_endings, max_len - 1]` marking which *targets* belong to the ending. The targets of the
# logits `logits[:, :-1]` are `tokens[:, 1:]`.

# %% hint
# For row i, the ending's tokens sit at target positions `len(context) - 1` to `len(row) - 2`
# (inclusive). Per-token losses: `F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:],
# reduction="none")`, shape `[n_endings, max_len - 1]`; then `(losses * mask).sum(1) / mask.sum(1)`.

# %% [markdown]
# Now score the model trained above (loaded from its final checkpoint) against a freshly initialised
# one of the same shape. Chance is 25%. With a few hundred examples, the standard error of an
# accuracy near 30% is about 2 percentage points, so only a gap of several points means something.

# %%
mc = load_mc_examples(utils.full_or_quick(500, 100), val_every=20)
describe(mc)
example = mc.value[0]
print("context:", repr(example.context))
for i, ending in enumerate(example.endings):
    print(f"  {'*' if i == example.label else ' '} {ending!r}")
encode = lambda text: load_tokenizer().value.encode(text)  # noqa: E731
trained = GPT2(cfg.model_config(info.vocab_size))
trained.load_state_dict(torch.load(RUN_DIR / "smoke" / "ckpt.pt", map_location="cpu", weights_only=True)["model"])
torch.manual_seed(0)
untrained = GPT2(cfg.model_config(info.vocab_size))
for name, m in (("untrained", untrained), ("trained", trained)):
    acc = mc_accuracy(m, mc.value, encode, cfg.n_ctx)
    se = math.sqrt(acc * (1 - acc) / len(mc.value))
    print(f"{name:>9}: accuracy {acc:.1%} +- {se:.1%} (chance 25%)")

# %% [markdown]
# What to expect: the untrained model scores near chance. It can land a few points above 25%: with
# tied embeddings, a random model's logits lean towards tokens like the ones it has just read, and
# the right ending, which continues the same sentence, sometimes repeats a word of the context. The
# trained model should sit clearly above it at full size (200 steps on a laptop CPU put it roughly
# ten points ahead); in quick mode the run is short and the gap may be within the error bars. Online, with the released GPT-2 124M, build-nanogpt's HellaSwag script (the same rule) reports
# roughly 29-30% on the full validation set, and the 124M model trained by
# `configs/train/gpt2_124m.toml` lands in the same range: a small model barely beats chance on
# HellaSwag, which is exactly why it is a useful yardstick for growth.

# %% [markdown]
# ## 12. More GPUs: DDP through torchrun
#
# `torchrun --nproc_per_node=N` starts N copies of the same script and sets `RANK`, `LOCAL_RANK` and
# `WORLD_SIZE` in each. `setup_distributed` reads them, joins the process group (NCCL on GPUs, gloo
# on CPUs) and pins one GPU per process; the model is wrapped in `DistributedDataParallel`, which
# all-reduces (averages) gradients during `backward`. Two details in our trainer:
#
# - **Data.** Every process draws the *same* global batch of `micro_batch_size * world_size` windows
#   from the same seeded generator and keeps its own slice. So 2 processes with micro-batch 4 see
#   exactly the batches of 1 process with micro-batch 8, the generator state is still the whole data
#   position, and the loss curves match (the tests check this with real torchrun and gloo).
# - **`no_sync`.** With gradient accumulation, only the last micro-batch's backward needs the
#   all-reduce; `model.no_sync()` skips it on the others, saving (accum - 1) rounds of communication.
#
# Launch lines (the config files are in `configs/train/`):
#
# ```bash
# torchrun --standalone --nproc_per_node=8 -m curriculum.solutions.chapter1.train --config configs/train/gpt2_124m_ddp.toml
# # two nodes: run on each, with the first node's address
# torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
#     -m curriculum.solutions.chapter1.train --config configs/train/gpt2_124m_ddp.toml
# ```
#
# To see it on this machine, run the cell below (two CPU processes with gloo, a few steps).

# %%
if not utils.QUICK:  # starting two more Python processes takes too long for quick mode
    import json
    import subprocess
    import sys

    repo = CONFIG_DIR.parents[1]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "curriculum.solutions.chapter1.train",
                    "--config", str(CONFIG_DIR / "smoke_cpu.toml"), *tiny, "max_steps=4", f"out_dir={RUN_DIR / 'ddp'}"],
                   cwd=repo, env={**os.environ, "PYTHONPATH": str(repo), "CURRICULUM_OFFLINE": "1"}, check=True)
    print("2 processes:", json.loads((RUN_DIR / "ddp" / "history.json").read_text())["loss"])

# %% [markdown]
# ## What next
#
# - `python -m curriculum.benchmarks.train_throughput` measures tokens/s and MFU for eager vs `torch.compile`,
#   manual vs SDPA attention and fp32 vs autocast on your hardware. On one H100, GPT-2 124M with
#   bf16 + compile + flash attention should reach around 50% MFU.
# - Run `configs/train/gpt2_124m.toml` on a GPU. Karpathy's build-nanogpt reports that this recipe
#   (10B FineWeb-Edu tokens) reaches a val loss near 3.1 and matches the original GPT-2 124M on
#   HellaSwag.
# - The trained weights keep TransformerLens's parameter names, so the interpretability sections
#   can load and inspect them.

# %% [markdown]
# ## Further reading
#
# - [Scaling Laws for Neural Language Models](https://arxiv.org/abs/2001.08361) (Kaplan et al., 2020):
#   section 2.1 derives the `6N` training FLOPs per token (and the attention term) that
#   `flops_per_token` uses; the rest shows how loss falls with parameters, data and compute.
# - [PaLM: Scaling Language Modeling with Pathways](https://arxiv.org/abs/2204.02311) (Chowdhery et al.,
#   2022): section 4.1 introduces model FLOPs utilisation and why it is a fairer yardstick than
#   hardware FLOPs utilisation; appendix B spells out the FLOP count behind it.
# - [Decoupled Weight Decay Regularization](https://arxiv.org/abs/1711.05101) (Loshchilov and Hutter,
#   2017): AdamW, and why weight decay is not the same as an L2 penalty once Adam rescales gradients.
# - [Mixed Precision Training](https://arxiv.org/abs/1710.03740) (Micikevicius et al., 2017): fp16
#   training with an fp32 master copy of the weights and loss scaling, the idea behind `GradScaler`.
# - [HellaSwag: Can a Machine Really Finish Your Sentence?](https://arxiv.org/abs/1905.07830) (Zellers et
#   al., 2019): how the wrong endings were generated and filtered (adversarial filtering), and why
#   models of the time found them hard while people did not.
# - [build-nanogpt](https://github.com/karpathy/build-nanogpt) (Karpathy, 2024): the reference for
#   this section's recipe, from FineWeb-Edu shards to a HellaSwag evaluation during training; read its
#   `train_gpt2.py` beside our trainer and compare the choices.
# - [FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness](https://arxiv.org/abs/2205.14135)
#   (Dao et al., 2022): how the fused attention kernel avoids writing the attention matrix to memory,
#   and why memory traffic rather than arithmetic limits attention on a GPU.
