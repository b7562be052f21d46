# %% [markdown]
# # 1.1 GPT-2 from scratch
#
# In this section you build GPT-2 one module at a time, check each piece against an established
# implementation, load real weights into your model, train it, and then write the sampling code
# that turns a next-token predictor into a text generator: temperature, top-k, top-p, a frequency
# penalty, beam search, and a KV cache.
#
# **How to work through it.** Each exercise is a function or class whose body raises
# `NotImplementedError` with a hint. Fill it in and run the cell: the check underneath prints
# `✓ ... passed`, or tells you what differs (which shape, which index, expected vs got). The
# reference implementation lives in `curriculum/solutions/chapter1/gpt2.py`; look only when stuck.
#
# **Online or offline.** With internet access you get the real GPT-2 small and its tokenizer.
# Without it (CI, a plane) you get stand-ins the project builds: a byte-level BPE tokenizer trained
# on CPython's documentation and a randomly initialised GPT-2-shaped model. The first cells say
# which one you got.

# %% setup
from __future__ import annotations

import math
import time

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from curriculum import utils
from curriculum.solutions.chapter1.gpt2 import (
    Config,
    KVCache,
    SamplingConfig,
    config_from_bridge,
    generate,
    random_batches,
    sample_next_token,
    train_lm,
)
from curriculum.checks.chapter1 import gpt2 as tests
from curriculum.utils.offline import describe, load_gpt2, load_text_corpus, load_tokenizer
from curriculum.utils.plotting import attention_patterns, line

device = utils.get_device()
torch.manual_seed(0)

# %% [markdown]
# ## Tokens in, logits out
#
# A language model reads a sequence of integer **tokens** and, at every position, outputs
# **logits**: one unnormalised score per vocabulary entry for what the *next* token is. The
# tokenizer turns text into tokens. GPT-2's is a byte-level BPE: common words are one token,
# rare words are split into pieces, and any byte string can be encoded.

# %%
tokenizer_loaded = load_tokenizer()
describe(tokenizer_loaded)
tokenizer = tokenizer_loaded.value
example = "The if statement is used for conditional execution."
ids = tokenizer(example)["input_ids"]
print(ids)
print([tokenizer.decode([i]) for i in ids])

# %% [markdown]
# ## The residual stream
#
# GPT-2 is a stack of blocks that each *read from* and *add to* one vector per position, the
# **residual stream** (`d_model` wide). Embeddings write the first value; every attention layer
# and MLP adds its output; the unembedding reads the final value to produce logits. Keeping this
# picture in mind makes the interpretability sections natural: every component communicates only
# through the residual stream.
#
# We use TransformerLens's parameter names and shapes (`W_Q: [n_heads, d_model, d_head]` and so
# on), so that real GPT-2 weights load straight into your model.

# %% [markdown]
# ### Exercise: LayerNorm
#
# LayerNorm makes each residual vector have mean 0 and variance 1 across `d_model`, then applies
# a learned scale `w` and shift `b`. Use the *biased* variance (divide by `d_model`, not
# `d_model - 1`), as `torch.nn.LayerNorm` does, and put `eps` inside the square root.

# %% exercise curriculum.solutions.chapter1.gpt2:LayerNorm
tests.check_layer_norm(LayerNorm)

# %% [markdown]
# ### Exercise: token and position embeddings
#
# `Embed` looks up a row of `W_E` per token. GPT-2 learns a separate vector per *position* too
# (`W_pos`): attention itself is blind to order, so position has to be written into the residual
# stream. `offset` will matter for the KV cache at the end: with a cache, the new token's position
# is the number of tokens already seen.

# %% exercise curriculum.solutions.chapter1.gpt2:Embed
tests.check_embed(Embed)

# %% exercise curriculum.solutions.chapter1.gpt2:PosEmbed
tests.check_pos_embed(PosEmbed)

# %% [markdown]
# ## Attention
#
# Each head moves information *between* positions. Every position emits a query; every earlier
# position offers a key and a value. The score of query `i` against key `j` is `q_i · k_j /
# sqrt(d_head)` (the scale keeps the softmax from saturating as `d_head` grows). A softmax over
# the keys turns scores into an **attention pattern**; the head's output is the pattern-weighted
# sum of values, projected back by `W_O`.
#
# A language model must not peek at the future, so scores of keys after the query are set to
# `-inf` before the softmax: the **causal mask**.
#
# ### Exercise: the causal mask
#
# Write it for the general case where there are fewer queries than keys: with a KV cache the
# queries are the *last* `query_pos` positions. Query `i` then sits at absolute position
# `key_pos - query_pos + i`. (Off-by-one here is the classic bug: a query may attend to itself.)

# %% exercise curriculum.solutions.chapter1.gpt2:apply_causal_mask
tests.check_apply_causal_mask(apply_causal_mask)

# %% [markdown]
# ### Exercise: multi-head attention
#
# Implement the forward pass with `einops.einsum`, writing the shapes out. The check compares your
# layer with `torch.nn.functional.scaled_dot_product_attention` on the same weights, and checks the
# pattern passes through `self.hook_pattern` (that is what lets `run_with_cache` record it, as in
# TransformerLens). The `sdpa` branch in the reference is the fused kernel section 1.2 uses.

# %% exercise curriculum.solutions.chapter1.gpt2:Attention
tests.check_attention(Attention)

# %% [markdown]
# ### Exercise: MLP, block, unembedding
#
# The MLP acts on each position separately: `d_model → d_mlp (= 4 d_model) → d_model` with a
# GELU in between (GPT-2 uses its tanh approximation). A block is *pre-norm*: LayerNorm before
# attention and before the MLP, each output added back into the residual stream.

# %% exercise curriculum.solutions.chapter1.gpt2:MLP
tests.check_mlp(MLP)

# %% exercise curriculum.solutions.chapter1.gpt2:TransformerBlock
tests.check_transformer_block(TransformerBlock)

# %% exercise curriculum.solutions.chapter1.gpt2:Unembed
tests.check_unembed(Unembed)

# %% [markdown]
# ### Exercise: the whole model
#
# Put it together. GPT-2 *ties* its unembedding to its embedding (`W_U = W_E^T`): with
# `tie_embeddings=True` there is no `Unembed` and the logits read `W_E` directly. The check loads
# Hugging Face GPT-2 weights (through TransformerLens) into your model and compares logits to 1e-4,
# in both modes.

# %% exercise curriculum.solutions.chapter1.gpt2:GPT2
tests.check_gpt2(GPT2)

# %% [markdown]
# ## Loading GPT-2's weights
#
# TransformerLens 4 wraps Hugging Face models in a `TransformerBridge`. In compatibility mode with
# `no_processing=True` it exposes the raw weights under the names we used, e.g.
# `blocks.0.attn.W_Q` with shape `[n_heads, d_model, d_head]`.
#
# ### Exercise: load the weights

# %% exercise curriculum.solutions.chapter1.gpt2:load_gpt2_weights
tests.check_load_gpt2_weights(load_gpt2_weights)

# %%
gpt2_loaded = load_gpt2()
describe(gpt2_loaded)
bridge = gpt2_loaded.value
bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
reference_gpt2 = load_gpt2_weights(GPT2(config_from_bridge(bridge.cfg)), bridge.tl_parameters()).to(device)

prompt = "The if statement is used for"
prompt_tokens = torch.tensor([tokenizer(prompt)["input_ids"]], device=device)
with torch.no_grad():
    ours = reference_gpt2(prompt_tokens)
    theirs = bridge.to(device)(prompt_tokens)
print(f"max |our logits - TransformerLens logits| = {(ours - theirs).abs().max().item():.2e}")

# %% [markdown]
# Your model records activations under TransformerLens's hook names. Here is layer 0's attention
# pattern on the prompt (a pretrained GPT-2 shows previous-token heads and heads attending to the
# first token; the offline random model's patterns are close to uniform over earlier positions).

# %%
_, cache = reference_gpt2.run_with_cache(prompt_tokens)
print([name for name in cache.keys() if name.startswith("blocks.0")])
str_tokens = [tokenizer.decode([t]) for t in prompt_tokens[0].tolist()]
attention_patterns(str_tokens, cache["blocks.0.attn.hook_pattern"][0], title="layer 0 attention patterns")

# %% [markdown]
# ## Training
#
# The loss is the average negative log-probability the model gives the *actual* next token.
# A model that guesses uniformly over `V` tokens scores `ln V`; anything lower means it learned
# something.
#
# ### Exercise: next-token cross-entropy

# %% exercise curriculum.solutions.chapter1.gpt2:lm_cross_entropy
tests.check_lm_cross_entropy(lm_cross_entropy)

# %% [markdown]
# Now train a small GPT-2 of your own on a text corpus, with your modules. The loop is in
# `curriculum/solutions/chapter1/gpt2.py:train_lm`: sample random windows, compute the loss, AdamW step.
# Section 1.2 turns it into a production trainer.

# %%
corpus_loaded = load_text_corpus()
describe(corpus_loaded)
all_tokens = torch.tensor(tokenizer(corpus_loaded.value)["input_ids"])
split = int(0.9 * len(all_tokens))
train_tokens, val_tokens = all_tokens[:split], all_tokens[split:]
print(f"{len(train_tokens):,} training tokens, {len(val_tokens):,} validation tokens")

small_cfg = Config(
    d_model=utils.full_or_quick(256, 64),
    n_layers=utils.full_or_quick(4, 2),
    n_heads=utils.full_or_quick(8, 4),
    d_head=utils.full_or_quick(32, 16),
    d_mlp=utils.full_or_quick(1024, 256),
    d_vocab=len(tokenizer),
    n_ctx=128,
    tie_embeddings=True,
)
small_gpt2 = GPT2(small_cfg).to(device)
history = train_lm(
    small_gpt2,
    train_tokens,
    val_tokens,
    steps=utils.full_or_quick(2000, 400),
    batch_size=utils.full_or_quick(32, 16),
    seq_len=utils.full_or_quick(128, 64),
    lr=utils.full_or_quick(1e-3, 3e-3),
    eval_every=utils.full_or_quick(100, 50),
)
print(f"uniform guessing: {math.log(len(tokenizer)):.2f}; final validation loss: {history['val_loss'][-1]:.2f}")
# Expect a fast drop to ~6.5 (the model learns which tokens are common: unigram statistics), a
# plateau, then a slower descent as attention starts to use context. Full size goes much lower.
line(
    {"train": history["train_loss"], "validation": history["val_loss"]},
    x={"train": list(range(len(history["train_loss"]))), "validation": history["val_step"]},
    smooth=0,
    title="Training a small GPT-2",
    ylabel="cross-entropy loss",
)

# %% [markdown]
# ## Sampling
#
# The model gives a distribution over the next token; a **decoding strategy** picks one, appends
# it, and repeats. Greedy decoding (always the argmax) is deterministic and dull: it loops. The
# usual knobs:
#
# - **temperature** `T` divides the logits: `T < 1` sharpens the distribution, `T > 1` flattens it;
# - a **frequency penalty** subtracts `penalty × count` from tokens already used, discouraging loops;
# - **top-k** samples only among the `k` most likely tokens;
# - **top-p** (nucleus) samples among the smallest set of tokens whose probabilities sum to `p`,
#   adapting to how confident the model is.
#
# The checks compare with Hugging Face's logits processors.

# %% exercise curriculum.solutions.chapter1.gpt2:apply_temperature
tests.check_apply_temperature(apply_temperature)

# %% exercise curriculum.solutions.chapter1.gpt2:apply_frequency_penalty
tests.check_apply_frequency_penalty(apply_frequency_penalty)

# %% exercise curriculum.solutions.chapter1.gpt2:top_k_filter
tests.check_top_k_filter(top_k_filter)

# %% exercise curriculum.solutions.chapter1.gpt2:top_p_filter
tests.check_top_p_filter(top_p_filter)

# %% [markdown]
# Sample from a trained model: pretrained GPT-2 online, the small model you just trained offline.
# Compare the strategies: greedy tends to repeat itself; high temperature drifts into noise;
# top-p keeps the text varied but on topic.

# %%
sampling_model = reference_gpt2 if gpt2_loaded.real else small_gpt2
prompt = "The if statement" if not gpt2_loaded.real else "In a shocking finding, scientists discovered"
prompt_tokens = torch.tensor([tokenizer(prompt)["input_ids"]], device=device)
strategies = {
    "greedy": SamplingConfig(temperature=0.0),
    "temperature 0.7": SamplingConfig(temperature=0.7),
    "temperature 2.0": SamplingConfig(temperature=2.0),
    "top-k 20": SamplingConfig(top_k=20),
    "top-p 0.9, frequency penalty 0.5": SamplingConfig(top_p=0.9, freq_penalty=0.5),
}
for name, sampling in strategies.items():
    out = generate(sampling_model, prompt_tokens, utils.full_or_quick(40, 20), sampling, seed=0)
    print(f"--- {name}\n{tokenizer.decode(out[0].tolist())!r}\n")

# %% [markdown]
# ## Beam search
#
# Beam search looks for a *high-probability sequence* rather than sampling. It keeps `num_beams`
# partial sequences; each step it extends every beam by every token and keeps the `num_beams`
# best extensions by total log-probability, over all beams together. The check compares your
# beams and scores with Hugging Face's `generate(num_beams=...)`.
#
# ### Exercise: beam search

# %% exercise curriculum.solutions.chapter1.gpt2:beam_search
tests.check_beam_search(beam_search)

# %%
beams, scores = beam_search(sampling_model, prompt_tokens, num_beams=4, max_new_tokens=utils.full_or_quick(20, 8))
for beam, score in zip(beams, scores):
    print(f"{score.item():7.2f}  {tokenizer.decode(beam.tolist())!r}")

# %% [markdown]
# ## The KV cache
#
# Generating `n` tokens naively re-runs the model on the whole sequence every step: quadratic
# work. But the keys and values of earlier positions never change (the mask stops them from
# seeing later tokens), so we can store them and feed the model only the newest token. The
# attention layer already calls `kv_cache.update(k, v)`; `GPT2.forward` passes each layer its
# cache, and `PosEmbed` its offset.
#
# ### Exercise: the per-layer cache

# %% exercise curriculum.solutions.chapter1.gpt2:LayerKVCache
tests.check_layer_kv_cache(LayerKVCache)

# %% [markdown]
# With the cache, generation gives the same tokens and is much faster once sequences get long.
# `curriculum/benchmarks/kv_cache.py` measures this on a GPT-2-small-shaped model.

# %%
n_new = utils.full_or_quick(200, 30)
timings = {}
for use_cache in (False, True):
    start = time.perf_counter()
    out = generate(sampling_model, prompt_tokens, n_new, use_cache=use_cache, progress=True)
    timings[use_cache] = (time.perf_counter() - start, out)
assert torch.equal(timings[False][1], timings[True][1]), "cached and uncached generations differ"
print(f"{n_new} tokens: {timings[False][0]:.2f}s without cache, {timings[True][0]:.2f}s with; same tokens")
