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
# Without it (on a plane, or behind a firewall) you get stand-ins the project builds: a byte-level BPE tokenizer trained
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
# ![The residual stream of GPT-2: tokens are embedded into a stream of width d_model; each block reads it through LayerNorm into attention and then into an MLP, and adds each output back; a final LayerNorm and the unembedding turn the stream into logits](figures/residual_stream.svg)
#
# Read the figure top to bottom, following one position's vector:
#
# - The embedding writes the stream's first value: the token's row of `W_E` plus the position's
#   row of `W_pos`. Shape `[batch, pos, d_model]`, and it keeps that shape all the way down.
# - Inside a block, attention reads a LayerNorm'd copy of the stream and adds its output back
#   (`hook_resid_mid = hook_resid_pre + attn(LN1(hook_resid_pre))`); the MLP does the same with
#   the result. Neither ever replaces the stream, so a block that has nothing useful to say can
#   write (almost) zero and the signal passes through untouched. This is also why deep stacks
#   train: the gradient has a direct path along the stream to every layer.
# - Attention is the only place where positions exchange information; the MLP, LayerNorms,
#   embedding and unembedding all act on each position separately.
# - The logits are a linear read-out (after the final LayerNorm) of the *sum* of everything every
#   component wrote. That sum structure is what lets interpretability attribute a prediction to
#   individual heads and neurons, as you will do in section 1.3.
#
# The dots on the stream are the activation names your model will expose, the same names
# TransformerLens uses: `blocks.{l}.hook_resid_pre`, `hook_resid_mid` and `hook_resid_post`; inside the
# attention box, `blocks.{l}.attn.hook_pattern` records each head's attention pattern.
#
# We use TransformerLens's parameter names and shapes (`W_Q: [n_heads, d_model, d_head]` and so
# on), so that real GPT-2 weights load straight into your model.

# %% [markdown]
# ### Exercise: LayerNorm
#
# LayerNorm makes each residual vector have mean 0 and variance 1 across `d_model`, then applies
# a learned scale `w` and shift `b`. Use the *biased* variance (divide by `d_model`, not
# `d_model - 1`), as `torch.nn.LayerNorm` does, and put `eps` inside the square root.

# %% exercise curriculum.solutions.chapter1.gpt2:LayerNorm difficulty=2 importance=4 minutes=10
tests.check_layer_norm(LayerNorm)

# %% hint
# Each position's vector is normalised on its own: the mean and the variance are taken over the
# last axis (`d_model`) only, never over the batch or the positions. `w` and `b` then give every
# feature its own scale and shift back.

# %% hint
# `mean(dim=-1, keepdim=True)` keeps a size-1 axis, so the result broadcasts against the
# `[batch, pos, d_model]` input. The variance is the mean of the squared *centred* values; if you
# use `.var`, pass `unbiased=False` (its default divides by `d_model - 1`, a small mismatch the
# check reports). `eps` is added to the variance, inside the square root.

# %% hint
# ```python
# centred = ...   # subtract the mean over d_model
# variance = ...  # mean over d_model of centred ** 2
# return centred / ... * self.w + self.b
# ```

# %% [markdown]
# ### Exercise: token embeddings
#
# `Embed` looks up a row of `W_E` per token: token id `t` becomes the vector `W_E[t]`, the first
# thing written into the residual stream. The check compares with `torch.nn.functional.embedding`.

# %% exercise curriculum.solutions.chapter1.gpt2:Embed difficulty=1 importance=3 minutes=5
tests.check_embed(Embed)

# %% hint
# The output has one `d_model` vector per (batch, position): a `[batch, pos]` tensor of ids turns
# into `[batch, pos, d_model]`. No loop is needed.

# %% hint
# Indexing a tensor with an integer tensor looks up every entry at once: `W[ids]` has shape
# `ids.shape + W.shape[1:]`.

# %% [markdown]
# ### Exercise: position embeddings
#
# GPT-2 learns a separate vector per *position* too (`W_pos`): attention itself is blind to order,
# so position has to be written into the residual stream. The vector depends on where a token
# sits, not on which token it is. `offset` will matter for the KV cache at the end: with a cache,
# the new token's position is the number of tokens already seen.

# %% exercise curriculum.solutions.chapter1.gpt2:PosEmbed difficulty=2 importance=3 minutes=10
tests.check_pos_embed(PosEmbed)

# %% hint
# `tokens` only tells you the batch size and the sequence length; its values do not matter. You
# need rows `offset, offset + 1, ..., offset + seq_len - 1` of `W_pos`, the same rows for every
# sequence of the batch.

# %% hint
# Slice `W_pos[offset : offset + seq_len]` (shape `[seq_len, d_model]`), then add the batch axis with
# `einops.repeat(..., "pos d_model -> batch pos d_model", batch=batch)` (or `.expand`). The check
# also calls it with `offset=5` on two tokens: ignoring the offset returns rows 0 and 1 instead of
# 5 and 6.

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

# %% exercise curriculum.solutions.chapter1.gpt2:apply_causal_mask difficulty=3 importance=4 minutes=15
tests.check_apply_causal_mask(apply_causal_mask)

# %% hint
# Think in absolute positions. The keys sit at positions `0 .. key_pos - 1`; the queries are the last
# `query_pos` of those positions. Query `i` may look at key `j` exactly when `j` is at most its own
# absolute position. With as many queries as keys this is the usual lower triangle.

# %% hint
# Two `torch.arange`s with broadcasting build the whole `[query_pos, key_pos]` comparison at once:
# one column vector of query positions (starting at `key_pos - query_pos`), one row vector of key
# positions. `attn_scores.masked_fill(mask, float("-inf"))` broadcasts that 2-D mask over batch and
# heads. Create the aranges on `attn_scores.device`.

# %% hint
# The check tries 7 queries against 7 keys, then 1 and 3 queries against 7 keys. If only the square
# case passes, your mask is `torch.triu(..., diagonal=1)` without the shift: with fewer queries, the
# diagonal moves right by `key_pos - query_pos`.

# %% [markdown]
# ### Exercise: multi-head attention
#
# Implement the forward pass with `einops.einsum`, writing the shapes out. The check compares your
# layer with `torch.nn.functional.scaled_dot_product_attention` on the same weights, and checks the
# pattern passes through `self.hook_pattern` (that is what lets `run_with_cache` record it, as in
# TransformerLens). (The reference solution also has a second path through PyTorch's fused kernel,
# `attn_impl="sdpa"`, which section 1.2 uses; you write only the plain path, the one the check runs.)

# %% exercise curriculum.solutions.chapter1.gpt2:Attention difficulty=4 importance=5 minutes=40
tests.check_attention(Attention)

# %% hint
# Three stages. Project the (already normalised) input to queries, keys and values, one set per head.
# Compare every query with every key to get scores `[batch, n_heads, query_pos, key_pos]`, scale,
# mask and softmax them into a pattern. Mix the values with the pattern, then project each head's
# result back to `d_model` with `W_O` and *sum over heads*. The forward pass has two
# `raise NotImplementedError` lines with a given KV-cache line between them: the first becomes q, k
# and v, the second everything after, using the `k` and `v` the cache line returns.

# %% hint
# Write every step as an einsum with named axes. The projection to queries, for example, is
# `"b p d, h d e -> b h p e"`, plus `b_Q[:, None]` (the bias is `[n_heads, d_head]`; the `None`
# broadcasts it over positions). In the scores, give query and key positions different names so they
# stay two axes; the output projection sums over heads (an axis that appears on the left only), and
# `b_O` is added once after that, not once per head.

# %% hint
# The shape of the second fence:
# ```python
# attn_scores = einops.einsum(q, k, ...) / ...
# pattern = self.hook_pattern(...)   # masked, softmaxed over the key axis
# z = einops.einsum(pattern, v, ...)
# return einops.einsum(z, self.W_O, ...) + self.b_O
# ```
# If the check says the pattern never passed through `self.hook_pattern`, you computed the softmax
# but used it without wrapping it.

# %% [markdown]
# ### Exercise: the MLP
#
# The MLP acts on each position separately: `d_model → d_mlp (= 4 d_model) → d_model` with a
# GELU in between (GPT-2 uses its tanh approximation). Where attention moves information between
# positions, the MLP processes what has arrived at each one.

# %% exercise curriculum.solutions.chapter1.gpt2:MLP difficulty=2 importance=3 minutes=10
tests.check_mlp(MLP)

# %% hint
# Two linear maps with a nonlinearity between them, applied at every position with the same
# weights: nothing mixes positions. Each linear map has its bias added after the matrix product.

# %% hint
# `W_in` is `[d_model, d_mlp]`, so the input goes on the left: `einops.einsum(x, W_in, "b p d, d m -> b p m")`.
# The GELU is `F.gelu(pre, approximate="tanh")`; the exact GELU (the default) differs by about 1e-3,
# enough for the check to fail with a hint about it.

# %% [markdown]
# ### Exercise: the transformer block
#
# A block is *pre-norm*: LayerNorm before attention and before the MLP, each output added back into
# the residual stream. Route the three values of the stream through `hook_resid_pre`,
# `hook_resid_mid` and `hook_resid_post`, so that `run_with_cache` records them, and hand the block's
# `kv_cache` to attention.

# %% exercise curriculum.solutions.chapter1.gpt2:TransformerBlock difficulty=2 importance=4 minutes=10
tests.check_transformer_block(TransformerBlock)

# %% hint
# LayerNorm is applied to what each sublayer *reads*, never to the stream itself: the stream is only
# ever added to. Attention reads the normalised stream and its output is added back; the MLP then
# does the same on the updated stream.

# %% hint
# Wrap each stream value in its hook as you compute it, e.g. `resid_pre = self.hook_resid_pre(resid_pre)`,
# and call `self.attn(self.ln1(...), kv_cache)`. The usual bugs: adding the MLP's output to
# `resid_pre` instead of `resid_mid`, or normalising the stream in place (`x = ln(x) + attn(...)`);
# both change the output and the check compares with a block built from `F.layer_norm` and the
# fused attention kernel.

# %% [markdown]
# ### Exercise: the unembedding
#
# The unembedding reads the final residual stream and produces one logit per vocabulary entry at each
# position: a linear map `d_model → d_vocab`. Its bias `b_U` is frozen (`requires_grad=False`,
# zero for GPT-2) but is still part of the map.

# %% exercise curriculum.solutions.chapter1.gpt2:Unembed difficulty=1 importance=2 minutes=5
tests.check_unembed(Unembed)

# %% hint
# The same operation at every position: `[batch, pos, d_model]` in, `[batch, pos, d_vocab]` out.

# %% hint
# `einops.einsum(x, self.W_U, "b p d, d v -> b p v")`, then add `self.b_U`.

# %% [markdown]
# ### Exercise: the whole model
#
# Put it together. GPT-2 *ties* its unembedding to its embedding (`W_U = W_E^T`): with
# `tie_embeddings=True` there is no `Unembed` and the logits read `W_E` directly. The check loads
# Hugging Face GPT-2 weights (through TransformerLens) into your model and compares logits to 1e-4,
# in both modes.

# %% exercise curriculum.solutions.chapter1.gpt2:GPT2 difficulty=3 importance=5 minutes=20
tests.check_gpt2(GPT2)

# %% hint
# Follow the residual stream: token embedding plus position embedding, every block in order, the
# final LayerNorm, then the read-out to logits. With a KV cache, each block gets its own layer's
# cache and the position embedding starts at `offset` (computed for you above the fence).

# %% hint
# `for layer, block in enumerate(self.blocks)` gives you the index for `kv_cache[layer]`; pass `None`
# when there is no cache. For the tied read-out (`self.unembed is None`), `W_E` is
# `[d_vocab, d_model]`, so the einsum is `"b p d, v d -> b p v"`. Keep the submodule names
# (`embed`, `pos_embed`, `blocks`, `ln_final`, `unembed`): the check loads the weights by name.

# %% hint
# ```python
# residual = ...  # embed + pos_embed(tokens, offset)
# for layer, block in enumerate(self.blocks):
#     residual = block(residual, ...)
# residual = self.ln_final(residual)
# if self.unembed is None:
#     return ...  # logits from W_E
# return self.unembed(residual)
# ```

# %% [markdown]
# ## Loading GPT-2's weights
#
# TransformerLens 4 wraps Hugging Face models in a `TransformerBridge`. In compatibility mode with
# `no_processing=True` it exposes the raw weights under the names we used, e.g.
# `blocks.0.attn.W_Q` with shape `[n_heads, d_model, d_head]`.
#
# ### Exercise: load the weights
#
# Copy the TransformerLens weights into your model. The names already match, so the work is in the
# edge cases: the source may hold entries your model does not have (the separate unembedding when
# yours is tied), and a weight your model needs may be missing, which must be an error rather than
# a model that silently keeps its random initialisation.

# %% exercise curriculum.solutions.chapter1.gpt2:load_gpt2_weights difficulty=2 importance=3 minutes=10
tests.check_load_gpt2_weights(load_gpt2_weights)

# %% hint
# Start from your model's own parameter names, `model.state_dict().keys()`, not from the source's:
# every one of them must be found in `tl_params`, and anything else in `tl_params` is ignored.

# %% hint
# Collect the names missing from `tl_params` and raise a `KeyError` naming them if there are any
# (the check deletes `blocks.0.attn.W_Q` and expects an exception). Otherwise pass
# `{k: tl_params[k] for k in model.state_dict()}` to `model.load_state_dict` and return the model.

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
#
# Write the loss every language model in this course trains on. The one thing to get right is the
# alignment: the logits at position `i` are a prediction of token `i + 1`.

# %% exercise curriculum.solutions.chapter1.gpt2:lm_cross_entropy difficulty=2 importance=5 minutes=10
tests.check_lm_cross_entropy(lm_cross_entropy)

# %% hint
# The last position predicts a token you do not have, and the first token is never predicted: drop
# the last position's logits and the first token, so that `seq - 1` predictions line up with
# `seq - 1` targets. Then average the negative log-probability of each target.

# %% hint
# `logits[:, :-1].log_softmax(dim=-1)` gives log-probabilities; `.gather(-1, tokens[:, 1:, None])`
# picks one per position (the index needs a trailing axis of size 1; drop it afterwards). Using
# `logits[:, 1:]` or `tokens[:, :-1]` gives a plausible-looking number that the check, which compares
# with `F.cross_entropy` on the shifted tensors, rejects.

# %% [markdown]
# Now train a small GPT-2 of your own on a text corpus, with your modules. The loop is in
# `curriculum/solutions/chapter1/gpt2.py:train_lm`: sample random windows, compute the loss, AdamW step.
# Section 1.2 turns it into a production trainer.
#
# **How long this takes.** At full size (2,000 steps of 32 x 128 tokens) the next cell is a real
# training run: on a 2-core laptop CPU it is still going after 5 minutes (tens of minutes in all, an
# estimate); on a Colab GPU, a few minutes (also an estimate). In quick mode (`CURRICULUM_QUICK=1`) it
# takes seconds and stops early in the curve.

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
# The checks compare with Hugging Face's logits processors. Each function takes the logits of the
# last position, `[batch, d_vocab]`, and returns modified logits of the same shape; `generate`
# chains them and samples from the softmax of the result.
#
# ### Exercise: temperature
#
# Scale the logits by the temperature. The guard against `temperature <= 0` is written for you
# (temperature 0 means greedy decoding, handled elsewhere).

# %% exercise curriculum.solutions.chapter1.gpt2:apply_temperature difficulty=1 importance=3 minutes=5
tests.check_apply_temperature(apply_temperature)

# %% hint
# Softmax only cares about differences between logits. To sharpen the distribution at `T < 1`, those
# differences must grow; to flatten it at `T > 1`, they must shrink.

# %% hint
# One arithmetic operation on the whole tensor. Multiplying by `T` instead of dividing is the mistake
# the check names.

# %% [markdown]
# ### Exercise: frequency penalty
#
# Push down every token in proportion to how often it already occurs in that row's sequence, so that
# a token used three times is penalised three times as much. Rows of the batch are independent.

# %% exercise curriculum.solutions.chapter1.gpt2:apply_frequency_penalty difficulty=3 importance=2 minutes=15
tests.check_apply_frequency_penalty(apply_frequency_penalty)

# %% hint
# Build a `[batch, d_vocab]` tensor of counts: entry `(row, t)` is how many times token `t` appears in
# `input_ids[row]`. The result is `logits - freq_penalty * counts`.

# %% hint
# `torch.zeros_like(logits).scatter_add_(-1, input_ids, ones)` adds 1 at `(row, input_ids[row, j])`
# for every `j`, repeats included; `ones` must have `input_ids`' shape and the logits' dtype. A loop
# over rows with `torch.bincount(row, minlength=d_vocab)` works too. Counting each token once (a set,
# or `scatter_` instead of `scatter_add_`) fails the check: token 5 appears three times in its first row.

# %% [markdown]
# ### Exercise: top-k
#
# Keep the `k` largest logits of each row unchanged and set the rest to `-inf`, so that sampling can
# only pick one of the `k` most likely tokens.

# %% exercise curriculum.solutions.chapter1.gpt2:top_k_filter difficulty=2 importance=3 minutes=10
tests.check_top_k_filter(top_k_filter)

# %% hint
# You do not need to know *which* tokens are in the top `k`, only the `k`-th largest value of each
# row: everything strictly below it goes.

# %% hint
# `logits.topk(k, dim=-1).values` is sorted, largest first, so its last column is the threshold;
# slice it as `[..., -1:]` to keep an axis that broadcasts against the row. Then
# `logits.masked_fill(logits < threshold, float("-inf"))`. Guard `k` larger than the vocabulary with
# `min(k, logits.shape[-1])`.

# %% [markdown]
# ### Exercise: top-p (nucleus)
#
# Keep the smallest set of most likely tokens whose probabilities add up to at least `top_p`, and
# always at least `min_tokens_to_keep` tokens. The set grows when the model is unsure and shrinks
# when it is confident. Watch the boundary: the token whose probability carries the total across
# `top_p` is kept.

# %% exercise curriculum.solutions.chapter1.gpt2:top_p_filter difficulty=4 importance=3 minutes=25
tests.check_top_p_filter(top_p_filter)

# %% hint
# Sort each row from most to least likely and walk down it, adding up probabilities. A token is
# removed when the probability of the tokens *before* it already reaches `top_p`. Decide this in
# sorted order, then put each decision back at its token's place in the vocabulary.

# %% hint
# `sorted_logits, order = logits.sort(dim=-1, descending=True)`; with `probs = sorted_logits.softmax(-1)`,
# the mass before each token is `probs.cumsum(-1) - probs`. Set the first `min_tokens_to_keep` columns
# of the removal mask to `False`. `mask.scatter(-1, order, mask)` moves each sorted entry to the
# vocabulary index `order` says it came from; then `masked_fill` with `-inf`.

# %% hint
# If the check says a row kept one token fewer than expected, you compared the cumulative sum
# *including* the token with `top_p`, which drops the token that crosses the threshold. If the kept
# count is right but in the wrong places, the mask was applied in sorted order without scattering back.

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
#
# Write the loop body: one step of extending and pruning the beams. The score of a beam is the sum of
# the log-probabilities of its generated tokens; return the beams best first.

# %% exercise curriculum.solutions.chapter1.gpt2:beam_search difficulty=4 importance=3 minutes=30
tests.check_beam_search(beam_search)

# %% hint
# Every (beam, next token) pair is a candidate, scored by the beam's score plus the log-probability
# of that token after it. Keep the `num_beams` best candidates over the whole grid: two survivors may
# share a parent, and some beams have no child at all. At the first step there is a single beam
# with score 0.

# %% hint
# The beams are a batch `[n_beams, seq]`, so one forward pass scores them all: take
# `model(beams)[:, -1].log_softmax(dim=-1)` and add `scores[:, None]`. Flatten the `[n_beams, d_vocab]`
# grid and call `.topk(num_beams)`; it returns values sorted best first. The flat index encodes both
# the parent (`// d_vocab`) and the token (`% d_vocab`).

# %% hint
# ```python
# candidates = (scores[:, None] + log_probs).flatten()
# scores, flat_idx = ...
# parent, token = ...
# beams = torch.cat([beams[parent], token[:, None]], dim=1)
# ```
# Taking the top `num_beams` *per beam* instead of over the grid gives different beams from Hugging
# Face's, which is what the check reports.

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
#
# `LayerKVCache.update` receives the keys and values of the newest positions and must return the keys
# and values of *every* position so far, in order. The check feeds a prompt in chunks (5 tokens, then
# 2, then 1 and 1) and compares the logits with a single uncached pass, then compares cached and
# uncached greedy generation.

# %% exercise curriculum.solutions.chapter1.gpt2:LayerKVCache difficulty=2 importance=3 minutes=10
tests.check_layer_kv_cache(LayerKVCache)

# %% hint
# The cache starts empty (`self.k is None`); the first call just stores what it is given. Later calls
# append the new positions after the old ones and store the result.

# %% hint
# Keys and values are `[batch, n_heads, pos, d_head]`, so the position axis is `dim=-2`:
# `torch.cat([self.k, k], dim=-2)`. Concatenating on another axis shows up in the check as a wrong
# cache length after 9 tokens; putting new before old shows up as different logits.

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

# %% [markdown]
# ## Further reading
#
# - [Attention Is All You Need](https://arxiv.org/abs/1706.03762) (Vaswani et al., 2017): the
#   transformer itself; read section 3 for scaled dot-product attention, multi-head attention and why
#   the scores are divided by the square root of the key size.
# - [Language Models are Unsupervised Multitask Learners](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
#   (Radford et al., 2019): the GPT-2 report; section 2.3 lists the changes from the original
#   transformer that you implemented (pre-norm blocks, a final LayerNorm, the context and vocabulary sizes).
# - [Layer Normalization](https://arxiv.org/abs/1607.06450) (Ba, Kiros and Hinton, 2016): where
#   LayerNorm comes from and why normalising over features, not over the batch, suits sequence models.
# - [A Mathematical Framework for Transformer Circuits](https://transformer-circuits.pub/2021/framework/index.html)
#   (Elhage et al., 2021): the residual stream as a shared communication channel and attention heads
#   as independent read/write operations; the way of looking at your model that sections 1.3 and 1.4 build on.
# - [The Curious Case of Neural Text Degeneration](https://arxiv.org/abs/1904.09751) (Holtzman et al.,
#   2019): why greedy and beam search produce repetitive text and why top-k falls short; it introduces
#   the nucleus (top-p) sampling you wrote.
