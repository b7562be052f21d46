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

import json
import math
import time

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from curriculum import utils
from curriculum.solutions.chapter1.gpt2 import (
    Config,
    KVCache,
    SamplingConfig,
    config_from_bridge,
    random_batches,
)
from curriculum.checks.chapter1 import gpt2 as tests
from curriculum.utils.offline import describe, load_gpt2, load_text_corpus, load_tokenizer
from curriculum.utils.plotting import attention_patterns, line

device = utils.get_device()
torch.manual_seed(0)

# %% [markdown]
# ## What goes in and what comes out
#
# Before building anything, look at the two ends of the model. A language model never sees text: it
# reads a sequence of integer **tokens**, and at every position it outputs **logits**, one
# unnormalised score per vocabulary entry for what the *next* token is. Everything in between is the
# transformer you are about to write. The conversion from text to tokens is done by a separate
# program, the **tokenizer**, which is fixed before the model is trained and never changes afterwards.
# Its choices shape what the model finds easy and what it finds strangely hard, so it pays to know them.
#
# ### Tokens and byte-pair encoding
#
# Why not feed characters, or whole words? Characters make sequences long, and attention's cost grows
# with the square of the length; words make the vocabulary unbounded, and a word never seen in training
# would have no id at all. GPT-2 sits in between with a **byte-level BPE** (byte-pair encoding) tokenizer.
# Training it is a short loop over a large corpus: start from the 256 possible bytes as the vocabulary,
# count every pair of neighbouring symbols, merge the most frequent pair into a new symbol, record the
# merge, and repeat. GPT-2's tokenizer ran 50,000 merges; with the 256 bytes and one special
# `<|endoftext|>` token that gives its 50,257 entries. Encoding new text replays the recorded merges in
# order. Because the alphabet is bytes, *any* string can be encoded, emoji and typos included: in the
# worst case it falls apart into single bytes.
#
# The first merges a tokenizer learns are the most frequent pairs of its corpus. `Ġ` is how the
# tokenizer writes a space inside its vocabulary, so `Ġ + t` is "a space followed by t".

# %%
tokenizer_loaded = load_tokenizer()
describe(tokenizer_loaded)
tokenizer = tokenizer_loaded.value
merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
print(f"{len(tokenizer):,} tokens in the vocabulary, {len(merges):,} merges")
print("first merges:", [" + ".join(m) if isinstance(m, list) else m.replace(" ", " + ") for m in merges[:12]])


def show_tokens(text: str) -> None:
    """Print how the tokenizer splits `text`: the pieces between bars, then their ids."""
    ids = tokenizer(text)["input_ids"]
    print(f"{text!r:40} -> {len(ids):2} tokens |" + "|".join(tokenizer.decode([i]) for i in ids) + f"|  {ids}")


example = "The if statement is used for conditional execution."
show_tokens(example)

# %% [markdown]
# Now the quirks. Run the cell and look for four things:
#
# - **Leading spaces belong to the word after them.** `"world"` and `" world"` are different tokens with
#   different ids, and the model has to learn that they mean the same word. A prompt that ends in a space
#   is an odd input for the model: in the text it learned from, that space would have been part of the
#   next token.
# - **Capitalisation changes everything.** `hello`, `Hello` and `HELLO` are unrelated ids as far as the
#   model's input is concerned; text in capitals is rarer in the training corpus, so it is usually split
#   into more, shorter pieces.
# - **Numbers are split by frequency, not by place value.** A year or a long number breaks into chunks
#   whose boundaries depend on which digit groups were common in the corpus, so the same digit can land
#   in different chunks in two numbers. This is one reason small language models are bad at arithmetic.
# - **Rare words and code are split into fragments**, and the split of a word can depend on whether a space
#   precedes it.
#
# The last line shows the ratio of characters to tokens on a paragraph: for English prose a GPT-2 token
# is a few characters long on average, so a 1,024-token context holds roughly a page or two of prose.

# %%
for text in ["world", " world", "hello", "Hello", "HELLO", " HELLO",
             "The year 2023", "The year 1987", "12345 + 67890 = 80235",
             "unbelievably", " unbelievably", "print(len(my_list))"]:
    show_tokens(text)
print("tokens as the vocabulary stores them (Ġ = a space):", tokenizer.convert_ids_to_tokens(tokenizer(" Hello world")["input_ids"]))
assert tokenizer.decode(tokenizer(example)["input_ids"]) == example  # byte-level: decoding gives the text back exactly
paragraph = (
    "Language models read text as a sequence of tokens. Each token is a common chunk of characters: "
    "a whole short word, a piece of a longer one, or a single byte for something the tokenizer has never seen."
)
print(f"{len(paragraph)} characters, {len(tokenizer(paragraph)['input_ids'])} tokens: "
      f"{len(paragraph) / len(tokenizer(paragraph)['input_ids']):.1f} characters per token")

# %% [markdown]
# ### Logits: what comes out
#
# For a batch of token sequences of shape `[batch, pos]`, the model returns logits of shape
# `[batch, pos, d_vocab]`. The vector at position `i` is the model's guess about token `i + 1`, given
# tokens `0..i`. One forward pass therefore makes `pos` predictions at once, one per prefix of the
# sequence: that is why training a transformer is efficient (every position of every sequence is a
# training example), and why the model must be stopped from looking ahead, or predicting the next token
# would be trivial.
#
# Logits are not probabilities. A softmax over the vocabulary turns them into a distribution:
# `p(t) = exp(logit_t) / Σ_s exp(logit_s)`. Adding the same constant to every logit of a position leaves
# the softmax unchanged, so the absolute value of a logit means nothing; only differences do. A
# difference of `Δ` between two tokens' logits means the first is `e^Δ` times as likely as the second: a
# gap of 2 is a factor of about 7.4. In practice we work with **log-probabilities**, `log_softmax` of
# the logits, which are the logits shifted so that their exponentials sum to 1.
#
# The cell below loads a GPT-2 (the real one online, a randomly initialised one of the same shape
# offline), runs it on the example sentence, and prints the shape of the logits and the five most likely
# next tokens after the last position, then the model's single best guess after every prefix. With the
# real GPT-2 the guesses are plausible continuations of each prefix. The offline model is untrained: its
# probabilities are spread thin over the whole vocabulary (none above a fraction of a percent), and its best
# guess after each prefix tends to be the token it has just read. That is not a bug. In an untrained
# model the residual stream is dominated by the current token's own embedding, and because GPT-2 reads
# its logits through the same matrix it embeds with (`W_U = W_E^T`, tied embeddings), the token whose
# embedding is most similar to that vector is the token itself. Training has to overcome this
# "predict yourself" default.

# %%
gpt2_loaded = load_gpt2()
describe(gpt2_loaded)
bridge = gpt2_loaded.value
example_tokens = torch.tensor([tokenizer(example)["input_ids"]])
with torch.no_grad():
    example_logits = bridge(example_tokens)
print("tokens:", tuple(example_tokens.shape), " logits:", tuple(example_logits.shape))
probs = example_logits[0, -1].softmax(dim=-1)
top = probs.topk(5)
print(f"after {example!r}, the model's top 5 next tokens:")
for p, t in zip(top.values.tolist(), top.indices.tolist()):
    print(f"  {tokenizer.decode([t])!r:15} p = {p:.3f}   logit = {example_logits[0, -1, t].item():.2f}")
guesses = example_logits[0].argmax(dim=-1).tolist()
for i, t in enumerate(example_tokens[0].tolist()[:-1]):
    prefix = tokenizer.decode(example_tokens[0, : i + 1].tolist())
    actual = tokenizer.decode([example_tokens[0, i + 1].item()])
    print(f"  {prefix!r:55} guess {tokenizer.decode([guesses[i]])!r:12} actual {actual!r}")

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
# The next figure zooms into one block and writes the shape of the tensor after every step. It is the
# map for the exercises that follow: LayerNorm, the attention layer (steps 1 to 6, including the causal
# mask of step 3), the MLP, and then the block that wires them to the stream. Two facts on it are worth
# remembering now. First, the shape of the stream, `[batch, pos, d_model]`, is the same at the input and
# the output of every block, which is what lets you stack twelve of them (or forty-eight, in the largest
# GPT-2). Second, attention is the only place where a position's output depends on other positions; a
# bug that leaks information from later tokens can only live there.
#
# ![One GPT-2 block zoomed in: the stream enters at the top; a LayerNorm'd copy goes through attention (per-head queries, keys and values, scaled scores, causal mask, softmax over keys, weighted sum of values, output projection summed over heads) and is added back; a second LayerNorm'd copy goes through the MLP (widen to d_mlp, GELU, narrow back) and is added back; the shape after each step is written on the right](figures/1.1_transformer_block.svg)
#
# We use TransformerLens's parameter names and shapes (`W_Q: [n_heads, d_model, d_head]` and so
# on), so that real GPT-2 weights load straight into your model. We also use its *activation* names:
# each value interpretability reads passes through a `HookPoint` (an identity layer that
# `run_with_cache` and `run_with_hooks` can record or edit), with the same name and shape as in
# TransformerLens. Then every tool you write in section 1.3 runs on your own model as well as on a
# TransformerLens one. The hooks you will route values through:
#
# | hook (inside `blocks.{l}` unless marked) | shape | what it holds |
# |---|---|---|
# | `hook_embed`, `hook_pos_embed` (top level) | `[batch, pos, d_model]` | token and position embeddings, before they are added |
# | `ln1.hook_scale`, `ln2.hook_scale`, `ln_final.hook_scale` | `[batch, pos, 1]` | LayerNorm's divisor `sqrt(var + eps)` |
# | `ln1.hook_normalized` (and the others) | `[batch, pos, d_model]` | centred and divided, before `w` and `b` |
# | `attn.hook_q`, `attn.hook_k`, `attn.hook_v` | `[batch, pos, n_heads, d_head]` | per-head queries, keys, values |
# | `attn.hook_pattern` | `[batch, n_heads, query_pos, key_pos]` | softmaxed attention |
# | `attn.hook_z` | `[batch, query_pos, n_heads, d_head]` | each head's mix of values, before `W_O` |
# | `hook_attn_out`, `hook_mlp_out` | `[batch, pos, d_model]` | what each sublayer adds to the stream |
# | `hook_resid_pre`, `hook_resid_mid`, `hook_resid_post` | `[batch, pos, d_model]` | the stream itself |
#
# Note the order of axes: q, k, v and z put positions before heads (TransformerLens's layout), while
# the pattern puts heads first. Section 1.3 indexes `hook_z[:, pos, head]`, so the layout is part of
# the contract, and the checks hold you to it.

# %% [markdown]
# ### Exercise: LayerNorm
#
# LayerNorm makes each residual vector have mean 0 and variance 1 across `d_model`, then applies
# a learned scale `w` and shift `b`. Use the *biased* variance (divide by `d_model`, not
# `d_model - 1`), as `torch.nn.LayerNorm` does, and put `eps` inside the square root. Pass the divisor
# `sqrt(var + eps)` (shape `[batch, pos, 1]`) through `self.hook_scale`, and the normalised vector
# (before `w` and `b`) through `self.hook_normalized`: section 1.3 divides each component's
# contribution by the recorded scale to see what the final LayerNorm does to it.

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
# layer with `torch.nn.functional.scaled_dot_product_attention` on the same weights, and checks that
# q, k, v, the pattern and z pass through their hooks with the shapes of the table above (that is what
# lets `run_with_cache` record them, as in TransformerLens). The class also has a second path, given:
# with `attn_impl="sdpa"`, `forward` hands over to `forward_fused` before your code runs. It computes
# the same layer with plain matmuls for the projections and PyTorch's fused attention kernel, which
# section 1.2 trains with; read it once you have written yours. The fused kernel never materialises
# the pattern, so on that path `hook_pattern` records nothing, and the model warns if you attach a
# hook to it: use the plain path for interpretability.
#
# One line concerns the KV cache you will build at the end of the section: right after computing `k`
# and `v`, write `if kv_cache is not None: k, v = kv_cache.update(k, v)`. Without a cache it does
# nothing; with one, it swaps in the keys and values of every position seen so far, so that a query
# for a new token can attend to the tokens of earlier calls. Copy it now; its purpose becomes clear later.

# %% exercise curriculum.solutions.chapter1.gpt2:Attention difficulty=4 importance=5 minutes=40
tests.check_attention(Attention)

# %% hint
# Three stages. Project the (already normalised) input to queries, keys and values, one set per head.
# Compare every query with every key to get scores `[batch, n_heads, query_pos, key_pos]`, scale,
# mask and softmax them into a pattern. Mix the values with the pattern, then project each head's
# result back to `d_model` with `W_O` and *sum over heads*. The KV-cache line goes between the
# projections and the scores, so that the scores use the `k` and `v` it returns.

# %% hint
# Write every step as an einsum with named axes. The projection to queries, for example, is
# `"b p d, h d e -> b p h e"`, plus `b_Q` (the bias is `[n_heads, d_head]`, which broadcasts over the
# leading batch and position axes), wrapped in `self.hook_q`. In the scores, give query and key
# positions different names so they stay two axes (`"b q h e, b k h e -> b h q k"`); the output
# projection sums over heads (an axis that appears on the left only), and `b_O` is added once after
# that, not once per head.

# %% hint
# The shape of the code:
# ```python
# q = self.hook_q(einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q)   # k, v alike
# if kv_cache is not None:
#     k, v = kv_cache.update(k, v)
# attn_scores = einops.einsum(q, k, ...) / ...
# pattern = self.hook_pattern(...)   # masked, softmaxed over the key axis
# z = self.hook_z(einops.einsum(pattern, v, ...))   # [batch, query_pos, n_heads, d_head]
# return einops.einsum(z, self.W_O, ...) + self.b_O
# ```
# If the check says something never passed through a hook, you computed the value but used it
# without wrapping it; if it names a shape, your hook holds `[batch, n_heads, pos, d_head]` where
# TransformerLens's layout puts positions first.

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
# `W_in` is `[d_model, d_mlp]`, so the input goes on the left: `x @ W_in`, which multiplies the last axis
# at every position (the same as `einops.einsum(x, W_in, "b p d, d m -> b p m")`).
# The GELU is `F.gelu(pre, approximate="tanh")`. The exact GELU (the default) differs from it by up to
# 5e-4, and `W_out` adds those differences up to errors well above the check's tolerance of 1e-4.

# %% [markdown]
# ### Exercise: the transformer block
#
# A block is *pre-norm*: LayerNorm before attention and before the MLP, each output added back into
# the residual stream. Route the three values of the stream through `hook_resid_pre`,
# `hook_resid_mid` and `hook_resid_post`, and what each sublayer adds through `hook_attn_out` and
# `hook_mlp_out` (before the addition), so that `run_with_cache` records them; hand the block's
# `kv_cache` to attention.

# %% exercise curriculum.solutions.chapter1.gpt2:TransformerBlock difficulty=2 importance=4 minutes=10
tests.check_transformer_block(TransformerBlock)

# %% hint
# LayerNorm is applied to what each sublayer *reads*, never to the stream itself: the stream is only
# ever added to. Attention reads the normalised stream and its output is added back; the MLP then
# does the same on the updated stream.

# %% hint
# Wrap each value in its hook as you compute it, e.g. `resid_pre = self.hook_resid_pre(resid_pre)` and
# `attn_out = self.hook_attn_out(self.attn(self.ln1(resid_pre), kv_cache))`. The usual bugs: adding the MLP's output to
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
# `tie_embeddings=True` there is no `Unembed` and the logits read `W_E` directly. Below your `forward`
# the class gives you `tied_readout`, which computes that tied read-out, `residual @ W_E.T`, with a
# faster path for one-token decoding steps (the KV cache section explains it). Call it, or write the
# product yourself: the logits are the same.
#
# The check builds a small Hugging Face GPT-2 with random weights, loads those weights (through
# TransformerLens) into your model and compares logits to 1e-4, with and without tied embeddings.
# It then feeds the same tokens in two calls with a KV cache, four tokens and then the
# rest: the logits of the later tokens must still match, which they only do if the second call's
# tokens get the position embeddings of positions 4, 5, 6 rather than 0, 1, 2. That is what `offset`
# is for. Route the two embeddings through `self.hook_embed` and `self.hook_pos_embed` before adding
# them: section 1.3 attributes the logits to each of them separately.

# %% exercise curriculum.solutions.chapter1.gpt2:GPT2 difficulty=3 importance=5 minutes=20
tests.check_gpt2(GPT2)

# %% hint
# Follow the residual stream: token embedding plus position embedding, every block in order, the
# final LayerNorm, then the read-out to logits. With a KV cache, each block gets its own layer's
# cache and the position embedding starts at `offset` (the given first lines of `forward` compute it).

# %% hint
# `for layer, block in enumerate(self.blocks)` gives you the index for `kv_cache[layer]`; pass `None`
# when there is no cache. Pass `offset` to `self.pos_embed`, or the cached call of the check sees its
# tokens at the wrong positions. In tied mode `self.unembed` is `None`, so calling it fails: read the
# logits off `self.embed.W_E`, minding its shape. It is `[d_vocab, d_model]`, the transpose of
# `Unembed`'s `W_U`. Keep the submodule names (`embed`, `pos_embed`, `blocks`, `ln_final`, `unembed`):
# the check loads the weights by name.

# %% hint
# ```python
# residual = ...  # embed + pos_embed(tokens, offset)
# for layer, block in enumerate(self.blocks):
#     residual = block(residual, ...)
# residual = self.ln_final(residual)
# if self.unembed is None:
#     return residual @ self.embed.W_E.T  # or self.tied_readout(residual, kv_cache): the same logits
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
# ### Exercise: the training loop
#
# Every model in this course is trained by the same few lines, repeated: take a batch, compute the
# loss, compute its gradient, take an optimizer step. Writing them once by hand is what makes the
# production trainer of section 1.2, and the RL loops of chapter 2, readable later.
#
# The corpus is one long stream of tokens. `random_batches(tokens, batch_size, seq_len, gen)` (given)
# cuts `batch_size` windows of `seq_len` tokens out of it at random starting points, the way nanoGPT
# reads its data. A window is both the input and the target: `lm_cross_entropy(model(batch), batch)`
# does the shift by one internally, so do not shift the batch yourself as well.
#
# Each step, in this order:
#
# 1. `optimizer.zero_grad()`. PyTorch *adds* each new gradient to `.grad`; without this line, step
#    `n` follows the sum of the gradients of steps `0..n`, a bug that often still lowers the loss, just
#    worse and erratically, which is why it survives unnoticed.
# 2. The forward pass and the loss, then `loss.backward()` to fill every parameter's `.grad`.
# 3. `optimizer.step()`: AdamW moves each parameter using its gradient and running averages of past
#    gradients (created for you, with `weight_decay=0.01`).
# 4. Record `loss.item()`: a plain float. Appending the tensor itself would keep each step's whole
#    computation graph alive.
#
# Every `eval_every` steps (and at the last step) measure the loss on the *validation* tokens, which the
# model never trains on: the mean over `eval_batches` random batches, under `torch.no_grad()` (no graph,
# less memory, and no accidental gradient). A training loss far below the validation loss means the
# model is memorising its training text rather than learning the language.
#
# The check runs your loop on a tiny model while recording what the model saw at each forward pass (the
# batch, the parameters, whether gradients were on), then replays the same batches with an independent
# AdamW loop. The first step at which the two disagree names the bug: a wrong first update, gradients
# that accumulate, a loss that does not match the batch, or validation batches drawn from the training set.

# %% exercise curriculum.solutions.chapter1.gpt2:train_lm difficulty=2 importance=5 minutes=20
tests.check_train_lm(train_lm)

# %% hint
# Two loops: the outer one over `steps`, and inside it, at evaluation steps only, a short loop over
# `eval_batches` validation batches. Training batches come from `train_tokens`, validation batches from
# `val_tokens`, both through `random_batches(..., gen)`, and both moved to `device`.

# %% hint
# The training step is four lines: `opt.zero_grad()`, `loss = lm_cross_entropy(model(batch), batch)`,
# `loss.backward()`, `opt.step()`. The evaluation condition is `step % eval_every == 0 or step == steps - 1`;
# append the mean validation loss to `history["val_loss"]` and `step` to `history["val_step"]`.

# %% hint
# ```python
# for step in tqdm(range(steps), desc="training"):
#     batch = ...
#     ...  # zero_grad, loss, backward, step
#     history["train_loss"].append(loss.item())
#     if ...:
#         with torch.no_grad():
#             val_losses = [...]
#         ...
# ```

# %% [markdown]
# Now train a small GPT-2 of your own on a text corpus, with your modules and your loop. Section 1.2
# turns this loop into a production trainer (learning-rate schedule, gradient clipping, mixed
# precision, checkpoints).
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
# last position, `[batch, d_vocab]`, and returns modified logits of the same shape. After the four
# filters you chain them into `sample_next_token`, and write `generate`, the loop that calls it.
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
# ### Exercise: choosing the next token
#
# The filters each change the logits; `sample_next_token` chains them into one decision per row. The
# order matters, and it is the order most libraries use:
#
# 1. **Greedy shortcut.** `temperature == 0` means "always the most likely token": return the argmax of
#    the raw logits and skip everything else (dividing by zero is not an option).
# 2. **Frequency penalty** (when non-zero), on the raw logits, so the penalty is in the same units
#    whatever the temperature.
# 3. **Temperature**, before any filter: top-p keeps "the tokens that make up `p` of the probability",
#    and that set depends on how sharp the distribution is, so it must see the tempered logits.
# 4. **Top-k**, then **top-p**, when set.
# 5. **Softmax and one draw per row**: `torch.multinomial(probs, 1, generator=generator)` returns a
#    `[batch, 1]` tensor; the function returns `[batch]`.
#
# The temperature must act on the *logits*. Dividing the probabilities after the softmax looks
# similar, but `torch.multinomial` renormalises its input, which undoes a constant factor: the model
# then samples at temperature 1 whatever you ask for. Passing `generator` through to `multinomial`
# is what makes a seed reproduce the same text.
#
# The check samples 20,000 rows from the same logits for each of four settings and compares the token
# frequencies with the probabilities that Hugging Face's warpers give, so it sees a wrong distribution
# even when every single draw looks plausible. When the frequencies match a known mistake (no
# temperature, no penalty, filters before temperature), it says which.

# %% exercise curriculum.solutions.chapter1.gpt2:sample_next_token difficulty=2 importance=4 minutes=15
tests.check_sample_next_token(sample_next_token)

# %% hint
# You have already written every transformation; this function only decides which ones run, in which
# order, and then samples. Each optional step is guarded by its setting: `cfg.freq_penalty` non-zero,
# `cfg.top_k` and `cfg.top_p` not `None`.

# %% hint
# Reassign `logits` at each step (`logits = apply_temperature(logits, cfg.temperature)`, and so on), then
# `probs = logits.softmax(dim=-1)` and `torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]`.
# Tokens removed by a filter have logit `-inf`, so probability exactly 0: they can never be drawn.

# %% [markdown]
# ### Exercise: the generation loop
#
# A language model predicts one token; text comes from a loop. Each step runs the model on the sequence
# so far, takes the logits of the **last** position (the prediction for the token that comes next),
# chooses a token with `sample_next_token`, and appends it, so that the next step sees it. After
# `max_new_tokens` steps, return the prompt and the continuation together.
#
# ![The generation loop: the tokens so far go into the model; the logits of the last position go through the frequency penalty, temperature, top-k and top-p into a softmax and one draw; the drawn token is appended to the sequence, which goes back into the model, max_new_tokens times](figures/1.1_sampling_loop.svg)
#
# Two details:
#
# - `sample_next_token` needs the *whole* sequence so far (prompt and generated tokens), because the
#   frequency penalty counts the tokens already used.
# - `use_cache=True` creates a KV cache before the loop (given). The model then remembers the keys and
#   values of every token it has processed, so feeding the whole sequence again would process the old
#   tokens twice. Feed the whole prompt at the first step (`cache.length == 0`), and from then on only
#   `tokens[:, -1:]`, the token just appended. Without a cache, feed everything every step.
#
# The check compares your greedy output, with and without the cache, against Hugging Face's
# `generate(do_sample=False)` on a model with the same weights, token for token. It then samples twice
# with one seed (the outputs must be equal) and once with another (they should differ at temperature 1).

# %% exercise curriculum.solutions.chapter1.gpt2:generate difficulty=2 importance=4 minutes=15
tests.check_generate(generate)

# %% hint
# The loop body is three steps: logits of the last position from one forward pass, the next token from
# `sample_next_token(tokens, logits, cfg, generator)`, and the longer sequence. The loop runs exactly
# `max_new_tokens` times; `tqdm(range(max_new_tokens), disable=not progress)` gives the progress bar.

# %% hint
# `model(new, kv_cache=cache)[:, -1]` is `[batch, d_vocab]`. The next token is `[batch]`; give it a
# position axis before concatenating: `torch.cat([tokens, next_token[:, None]], dim=1)`. With a cache,
# `new = tokens if cache is None or cache.length == 0 else tokens[:, -1:]`.

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
# seeing later tokens), so we can store them and feed the model only the newest token. Everything
# around the cache is already in place: your attention layer calls `kv_cache.update(k, v)`, your
# `GPT2.forward` hands each block its layer's cache and `PosEmbed` its offset, and your `generate`
# feeds only the newest token once the cache holds the prompt. What is missing is the cache itself.
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
# Keys and values are `[batch, pos, n_heads, d_head]` (the layout of `hook_k`), so the position axis is
# `dim=1`: `torch.cat([self.k, k], dim=1)`. Concatenating on another axis shows up in the check as a wrong
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
# ### Why a decoding step is limited by memory, not arithmetic
#
# With the cache, every step feeds one position, so each weight matrix multiplies a single vector
# (one per sequence in the batch). Each weight is then fetched from memory once and used for one
# multiply and one add: 2 floating-point operations per 4 bytes read in float32. This ratio of
# arithmetic to bytes, the *arithmetic intensity*, is the first thing to compute about any inference
# workload. Memory delivers a few tens of gigabytes per second; at 2 operations per 4 bytes, 20 GB/s
# feeds 10 billion operations per second, while one CPU core with vector instructions can do several
# times that. So the cores wait for memory, and a decoding step takes about as long as streaming
# every weight once: GPT-2 small's 124M parameters are 500 MB in float32. Three facts follow.
# Feeding several sequences at once reads the weights once for all of them, which is why inference
# servers batch requests. Storing weights in fewer bits (bfloat16, int8) leaves fewer bytes to stream,
# which speeds decoding almost in proportion where the library has fast kernels for that format (GPU
# libraries do; on a CPU it depends on the library and the layout, so measure). And the order in
# which a matrix's numbers lie in memory matters, because a matrix-vector product can only go as fast
# as the library streams that layout.
#
# The read-out is the largest matrix: `W_E` holds 50,257 × 768 = 38.6M of the 124M parameters. It is
# stored `[d_vocab, d_model]` (each row a token, which is what the embedding lookup wants), and the
# read-out multiplies by its transpose. The cell below times the same product on that transposed view
# and on a contiguous `[d_model, d_vocab]` copy, and prints the rate at which each streams the matrix.

# %%
readout_demo = torch.randn(50_257, 768)  # GPT-2 small's W_E: [d_vocab, d_model]
readout_copy = readout_demo.T.contiguous()  # the same numbers, d_model-major
one_position = torch.randn(1, 768)


def best_ms(fn, repeats: int = 15) -> float:
    fn()  # the first call pays for allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


gigabytes = readout_demo.numel() * 4 / 1e9
for name, matrix in [("W_E.T (a view of W_E)", readout_demo.T), ("contiguous copy", readout_copy)]:
    ms = best_ms(lambda: one_position @ matrix)
    print(f"{name:22s}: {ms:6.2f} ms per read-out, {gigabytes / ms * 1e3:5.1f} GB/s of weights streamed")
del readout_demo, readout_copy

# %% [markdown]
# On a 2-core x86 CPU with PyTorch's CPU build (which hands this product to Intel's MKL), the copy
# streams about 1.8 times faster; your machine prints its own figures above. That is why the given
# `GPT2.tied_readout` reads the logits off a contiguous `[d_model, d_vocab]` copy at a decoding step:
# one position, a KV cache, gradients off, on a CPU. `KVCache.readout_matrix` makes the copy at the
# first such step (154 MB at GPT-2 small's size) and keeps it for the rest of the generation, since
# `generate` starts a fresh cache for each call; it makes the copy again if `W_E` is replaced or changed
# in place. Every other call uses `W_E` itself. Training and the prompt step feed many positions, so
# the product is a matrix-matrix product with far more arithmetic per byte, and the layout stops
# mattering; on a GPU the copy is never made. Your model takes this path only if your `forward` calls
# `self.tied_readout`; `residual @ self.embed.W_E.T` gives the same logits at the view's speed. An
# untied model needs no copy: `Unembed` stores `W_U` as `[d_model, d_vocab]` already.
#
# `curriculum/benchmarks/kv_cache.py` times full generations on a GPT-2-small-shaped model against
# Hugging Face's `generate`. On a 2-core CPU, 256 new tokens after an 8-token prompt run about 8 to 9
# times faster with the cache than without, and slightly faster than `generate` (which reads its
# logits through the transposed layout).

# %% [markdown]
# ## Further reading
#
# - [Attention Is All You Need](https://arxiv.org/abs/1706.03762) (Vaswani et al., 2017): the
#   transformer itself; read section 3 for scaled dot-product attention, multi-head attention and why
#   the scores are divided by the square root of the key size.
# - [Language Models are Unsupervised Multitask Learners](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
#   (Radford et al., 2019): the GPT-2 report; section 2.2 explains why it tokenizes bytes rather than
#   Unicode characters, and section 2.3 lists the changes from the original transformer that you
#   implemented (pre-norm blocks, a final LayerNorm, the context and vocabulary sizes).
# - [Neural Machine Translation of Rare Words with Subword Units](https://arxiv.org/abs/1508.07909)
#   (Sennrich, Haddow and Birch, 2016): where byte-pair encoding for text comes from; section 3.2 gives
#   the merge-learning loop in a dozen lines of Python, worth reading next to the tokenizer cells above.
# - [Layer Normalization](https://arxiv.org/abs/1607.06450) (Ba, Kiros and Hinton, 2016): where
#   LayerNorm comes from and why normalising over features, not over the batch, suits sequence models.
# - [A Mathematical Framework for Transformer Circuits](https://transformer-circuits.pub/2021/framework/index.html)
#   (Elhage et al., 2021): the residual stream as a shared communication channel and attention heads
#   as independent read/write operations; the way of looking at your model that sections 1.3 and 1.4 build on.
# - [The Curious Case of Neural Text Degeneration](https://arxiv.org/abs/1904.09751) (Holtzman et al.,
#   2019): why greedy and beam search produce repetitive text and why top-k falls short; it introduces
#   the nucleus (top-p) sampling you wrote.
