# %% [markdown]
# # 1.3 Mechanistic interpretability: induction heads, with TransformerLens 4
#
# A two-layer, attention-only transformer can do something no bigram model can: continue a
# sequence it has seen earlier in its context. It does so with an **induction circuit**: a
# *previous-token head* in layer 0 writes "the token before me was A" into each position, and an
# *induction head* in layer 1 uses that (K-composition) to find, for the current token A, the
# position right after an earlier A, and copies what it finds there. In this section you find that
# circuit yourself: first from attention patterns, then with ablations, attribution and activation
# patching, then directly in the weights. At the end you train a sparse autoencoder on the model's
# residual stream and look at what one of its features fires on.
#
# **TransformerLens 4.** `HookedTransformer` is gone; models are wrapped in a `TransformerBridge`.
# We call `enable_compatibility_mode()` on it (done for you by the loader), which folds LayerNorm
# weights into the next layer and centres the weights the way HookedTransformer did, and gives the
# familiar hook names and shapes: `blocks.{l}.attn.hook_pattern` is `[batch, head, query, key]`,
# `blocks.{l}.attn.hook_z` is `[batch, pos, head, d_head]`, and `model.W_Q[l, h]` is a head's
# query matrix.
#
# **Online or offline.** Online you get TransformerLens's pretrained 2-layer attention-only model
# (8 heads per layer, trained on web text and code). Offline you get the project's own 2-layer,
# 4-head model, trained in a few minutes on CPU by `python -m curriculum.solutions.chapter1.induction_model`
# on repeated random token sequences mixed with text. The checks always use the offline model, so
# they never depend on the network.

# %% setup
from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import FactoredMatrix
from tqdm.auto import tqdm

from curriculum import utils
from curriculum.solutions.chapter1.interp import stacked_patterns, current_token_detection, positional_qk_circuit
from curriculum.solutions.chapter1.sae import SAEConfig, SAEOutput, train_sae
from curriculum.checks.chapter1 import interp as tests
from curriculum.checks.chapter1 import sae as sae_tests
from curriculum.utils.interp_models import load_interp_model
from curriculum.utils.offline import describe
from curriculum.utils.plotting import attention_patterns, imshow, line

torch.manual_seed(0)

# %%
loaded = load_interp_model()
describe(loaded)
model = loaded.value
cfg = model.cfg
if not loaded.real:
    torch.set_num_threads(1)  # the offline model is tiny: a second CPU thread costs more in synchronisation than it saves
print(f"{cfg.n_layers} layers, {cfg.n_heads} heads of size {cfg.d_head}, d_model {cfg.d_model}, vocab {cfg.d_vocab}")

# %% [markdown]
# ## 1. Running with a cache
#
# `model.run_with_cache(tokens)` returns the logits and an `ActivationCache`: a dict from hook
# names to the activations that flowed through them. The names say where in the model each one
# lives; print them once and you will be able to predict them from then on.

# %%
text = "The cat sat on the mat. The cat sat on the mat."
tokens = model.to_tokens(text)
str_tokens = model.to_str_tokens(text)
logits, cache = model.run_with_cache(tokens)
for name in list(cache.keys())[:12]:
    print(f"{name:40s} {tuple(cache[name].shape)}")

# %% [markdown]
# ### Exercise: recompute an attention pattern from the cached queries and keys
#
# An attention head computes `scores = q · k / sqrt(d_head)` for every (query, key) pair, masks the
# keys that come after the query, and softmaxes over keys. `hook_q` and `hook_k` are
# `[batch, pos, head, d_head]`; the pattern is `[batch, head, query_pos, key_pos]`.

# %% exercise curriculum.solutions.chapter1.interp:attention_pattern_from_qk difficulty=2 importance=4 minutes=15
tests.check_attention_pattern_from_qk(attention_pattern_from_qk)

# %% hint
# This is the score-mask-softmax half of the attention layer you wrote in section 1.1, with one change:
# TransformerLens stores `q` and `k` with the position axis *before* the head axis. The output must
# put the head axis second.

# %% hint
# `einops.einsum(q, k, "batch q_pos head d, batch k_pos head d -> batch head q_pos k_pos")`, divided
# by `sqrt(d_head)` (the last axis of `q`). The future keys are `torch.triu(torch.ones(n_q, n_k, dtype=torch.bool), diagonal=1)`;
# fill them with `-inf`, then softmax over the last axis (keys). The check compares with the cached
# `hook_pattern`, so a missing scale or a softmax over queries shows up at once.

# %% [markdown]
# ### Looking at attention patterns
#
# Each heatmap is one head: queries down, keys across. Look for a head whose attention hugs the
# diagonal just below the main one (it looks at the previous token), and, in layer 1, a head that
# in the second sentence looks at the token *after* the same token's first occurrence.

# %%
for layer in range(cfg.n_layers):
    attention_patterns(str_tokens, cache[f"blocks.{layer}.attn.hook_pattern"][0],
                       head_names=[f"L{layer}H{h}" for h in range(cfg.n_heads)], title=f"layer {layer}")

# %% [markdown]
# ## 2. Telling heads apart
#
# A *detection pattern* is a 0/1 matrix of where a given kind of head should attend; a head's score
# is the share of its attention that lands on the 1s (TransformerLens's `head_detector` uses the same
# score, which is what the check compares against). Current-token detection is the identity; write
# the other three.
#
# ### Exercise: detection patterns
#
# Each function takes the token ids of one prompt and returns a `[seq, seq]` float matrix, queries down
# and keys across: previous-token (the key just before the query), duplicate-token (an earlier key
# holding the same token as the query) and induction (the key right *after* such an earlier
# duplicate). The check compares with the patterns of `transformer_lens.head_detector` on tokens that
# contain repeats.

# %% exercise curriculum.solutions.chapter1.interp:previous_token_detection,duplicate_token_detection,induction_detection difficulty=3 importance=3 minutes=20
tests.check_detection_patterns(previous_token_detection, duplicate_token_detection, induction_detection)

# %% hint
# Write each as a rule on (query `i`, key `j`). Previous: `j == i - 1`. Duplicate: `tokens[j] == tokens[i]`
# and `j < i`. Induction: `tokens[j - 1] == tokens[i]` with `j - 1 < i`, and `j <= i` so the head does
# not look into the future. The induction pattern is the duplicate pattern moved one key to the right.

# %% hint
# `torch.diag(torch.ones(seq - 1), diagonal=-1)` is the previous-token pattern. `tokens[:, None] == tokens[None, :]`
# compares every pair at once; `torch.tril(..., diagonal=-1)` keeps the keys strictly before the
# query; finish with `.float()`. For induction, copy the duplicate pattern into a zero matrix shifted
# by one column (`shifted[:, 1:] = dup[:, :-1]`) and apply `torch.tril` to keep it causal.

# %% [markdown]
# ### Exercise: a score per head
#
# Given every head's pattern on one prompt (`[layer, head, seq, seq]`) and a detection pattern,
# return the share of each head's attention that lands on the detection pattern's 1s.

# %% exercise curriculum.solutions.chapter1.interp:head_detection_scores difficulty=2 importance=3 minutes=10
tests.check_head_detection_scores(head_detection_scores)

# %% hint
# Multiply each head's pattern by the detection matrix, add up over queries and keys, and divide by the
# head's total attention (the sum of its pattern over the same two axes).

# %% hint
# `einops.einsum(patterns, detection, "layer head q k, q k -> layer head")` does the multiply-and-sum in
# one call; the denominator is `patterns.sum(dim=(-2, -1))`, which broadcasts against it.

# %%
patterns = stacked_patterns(cache, cfg.n_layers)
toks = tokens[0]
for name, fn in [("current", current_token_detection), ("previous", previous_token_detection),
                 ("duplicate", duplicate_token_detection), ("induction", induction_detection)]:
    scores = head_detection_scores(patterns, fn(toks))
    best = divmod(int(scores.argmax()), cfg.n_heads)
    print(f"{name:>9}-token heads: best L{best[0]}H{best[1]} ({scores.max():.2f}); "
          f"all scores {[[round(v, 2) for v in row] for row in scores.tolist()]}")

# %% [markdown]
# ## 3. Induction on repeated random tokens
#
# Text is a noisy test: a phrase can be predictable for many reasons. Random tokens are not. On
# `[BOS, r_1..r_n, r_1..r_n]` the first copy is unpredictable (loss near `ln(d_vocab)`), and the
# second copy is predictable only by induction. The gap between the two halves' losses measures
# the circuit; the *induction score* of a head is how much of its attention, from the second copy,
# goes to the token right after the first occurrence of the current one.
#
# ### Exercise: repeated random tokens
#
# Return `[BOS, r_1..r_n, r_1..r_n]` for each row of a batch, the `r_i` uniform over every id except
# BOS (id 0), drawn from the `generator` you are given.

# %% exercise curriculum.solutions.chapter1.interp:generate_repeated_tokens difficulty=1 importance=3 minutes=5
tests.check_generate_repeated_tokens(generate_repeated_tokens)

# %% hint
# Draw one random half per row, then concatenate a BOS column, the half, and the same half again
# along the position axis.

# %% hint
# `torch.randint(1, d_vocab, (batch, half_len), generator=generator)` (the upper bound is exclusive,
# the lower bound 1 leaves out BOS); `torch.full((batch, 1), bos)`; `torch.cat([...], dim=1)`.

# %% [markdown]
# ### Exercise: loss per token
#
# The loss at every position rather than its mean: `[batch, seq - 1]`, entry `i` being the loss of
# predicting token `i + 1`. Plotted along the sequence, it shows where the model starts to predict.

# %% exercise curriculum.solutions.chapter1.interp:per_token_loss difficulty=2 importance=3 minutes=10
tests.check_per_token_loss(per_token_loss)

# %% hint
# It is section 1.1's next-token cross-entropy without the final mean: drop the last position's
# logits and the first token, then take the negative log-probability of each next token.

# %% hint
# `logits[:, :-1].log_softmax(dim=-1).gather(-1, tokens[:, 1:, None])` has a trailing axis of size 1;
# index it away with `[..., 0]` and negate.

# %%
HALF = 24
rep_tokens = generate_repeated_tokens(utils.full_or_quick(16, 4), HALF, cfg.d_vocab, model.tokenizer.bos_token_id,
                                      torch.Generator().manual_seed(0))
rep_logits, rep_cache = model.run_with_cache(rep_tokens)
rep_loss = per_token_loss(rep_logits, rep_tokens)
print(f"first copy: loss {rep_loss[:, :HALF].mean():.2f} (ln d_vocab = {torch.log(torch.tensor(float(cfg.d_vocab))):.2f}); "
      f"second copy: loss {rep_loss[:, HALF:].mean():.2f}")
line(rep_loss.mean(0).detach(), title="per-token loss on repeated random tokens", xlabel="position", ylabel="loss")

# %% [markdown]
# ### Exercise: induction scores
#
# For each head, the average attention that second-copy queries pay to the key right after the first
# occurrence of their token, averaged over the batch too: one number per head, near 1 for an
# induction head.

# %% exercise curriculum.solutions.chapter1.interp:induction_scores difficulty=3 importance=4 minutes=20
tests.check_induction_scores(induction_scores)

# %% hint
# Positions: BOS at 0, the first copy at `1..n`, the second at `n+1..2n`. Query `n + i` holds `r_i`,
# first seen at position `i`, so an induction head attends to key `i + 1`. The key is always
# `n - 1` positions before the query: every score you need lies on one diagonal of the pattern.

# %% hint
# `patterns.diagonal(offset=-(half_len - 1), dim1=-2, dim2=-1)` returns that diagonal as a last axis of
# length `n + 2`, for the queries `n - 1, n, ..., 2n`. Only the last `n` of them are second-copy tokens;
# drop the first two, then average over the batch and that axis.

# %% hint
# To debug a shift, take `half_len = 3`: query 4 is the second `r_1`, whose first occurrence is at
# position 1, so it should read key 2. Check which (query, key) pairs your code averages.

# %%
for layer in range(cfg.n_layers):
    scores = induction_scores(rep_cache[f"blocks.{layer}.attn.hook_pattern"], HALF)
    print(f"layer {layer} induction scores:", [round(v, 2) for v in scores.tolist()])
rep_str = [str(t) for t in rep_tokens[0].tolist()]
attention_patterns(rep_str, rep_cache["blocks.1.attn.hook_pattern"][0], head_names=[f"L1H{h}" for h in range(cfg.n_heads)],
                   title="layer 1 on repeated random tokens")

# %% [markdown]
# ## 4. Hooks: ablation, attribution, patching
#
# A hook is a function `hook_fn(activation, hook) -> activation` attached to a hook point with
# `model.run_with_hooks(tokens, fwd_hooks=[(name, hook_fn)])`. Replacing a head's output `z` with
# zeros (zero ablation) or with its average (mean ablation, which keeps the constant part of what
# it writes) shows how much the loss depends on it.

# %% [markdown]
# ### Exercise: ablate one head at a time
#
# Fill in the loop body: for one (layer, head), run the model with that head's `z` replaced (zeros, or
# its mean when `mean=True`) and store how much the mean per-token loss rises above the clean loss,
# which is computed for you, as is the cache of every `hook_z`.

# %% exercise curriculum.solutions.chapter1.interp:head_ablation_loss_increase difficulty=3 importance=5 minutes=25
tests.check_head_ablation(head_ablation_loss_increase)

# %% hint
# A hook receives the activation and returns the (modified) activation. `hook_z` is
# `[batch, seq, head, d_head]`, so ablating head `h` means overwriting the slice `z[:, :, h]` and
# leaving the other heads alone.

# %% hint
# For mean ablation the replacement is `cache[f"blocks.{layer}.attn.hook_z"][:, :, head].mean(dim=(0, 1))`,
# a `[d_head]` vector that broadcasts into the slice: a mean over batch *and* positions. Run with
# `model.run_with_hooks(tokens, fwd_hooks=[(name, hook_fn)])` inside `torch.no_grad()` and reuse
# `per_token_loss(...).mean()` for the loss. Binding loop variables as default arguments
# (`def ablate(z, hook, head=head)`) is a good habit: a hook that runs later would otherwise see the
# loop's last value.

# %% hint
# ```python
# def ablate(z, hook, head=head, mean_z=mean_z):
#     z[:, :, head] = ...
#     return z
#
# logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate)])
# out[layer, head] = ...
# ```

# %%
abl_tokens = rep_tokens[:4]
imshow(head_ablation_loss_increase(model, abl_tokens, mean=True),
       title="loss increase when a head is mean-ablated (repeated tokens)", xlabel="head", ylabel="layer")

# %% [markdown]
# ### Direct logit attribution
#
# The residual stream at the last layer is a sum: embedding + positional embedding + each head's
# output (+ biases). With LayerNorm folded, the logit of a token is (almost) linear in that sum, so
# each component's *direct* contribution to the correct token's logit is its output, divided by the
# final LayerNorm's scale, dotted with that token's column of `W_U`. Direct attribution misses
# indirect effects: a layer-0 head that matters only through layer 1 gets little credit here.
#
# ### Exercise: direct logit attribution
#
# Return a `[component, seq - 1]` tensor: rows are the token embedding, the positional embedding, then
# every head in the order L0H0, L0H1, ..., L1H0, ...; column `i` is that component's direct
# contribution to the logit of token `i + 1` at position `i`. The check compares the head rows with
# TransformerLens's own per-head decomposition and checks that all rows, with the output biases, add
# up to the actual (centred) logit.

# %% exercise curriculum.solutions.chapter1.interp:direct_logit_attribution difficulty=4 importance=5 minutes=35
tests.check_direct_logit_attribution(direct_logit_attribution)

# %% hint
# Three steps. Stack what each component writes into the final residual stream at positions `:-1`
# (the last position has no next token): `[component, seq - 1, d_model]`. Divide by the final
# LayerNorm's scale at each position (the same divisor for every component, which keeps the sum
# additive). Dot each position's vectors with the unembedding column of the token that comes next.

# %% hint
# Cache names: `hook_embed`, `hook_pos_embed`, `blocks.{l}.attn.hook_z` (`[batch, seq, head, d_head]`) and
# `ln_final.hook_scale` (`[batch, seq, 1]`). A head's output is its `z` times its own `W_O`:
# `einops.einsum(z, model.W_O[l], "seq head d_head, head d_head d_model -> head seq d_model")`, without
# `b_O`. `torch.cat` the embeddings (each with a leading axis of 1) and the heads of each layer.

# %% hint
# `model.W_U[:, tokens[1:]]` is `[d_model, seq - 1]`: one unembedding column per position. Pair each
# position with its own column, `"component seq d_model, d_model seq -> component seq"`, rather than
# taking a full matrix product (which would score every position against every target). If the check's
# sum test fails but the head rows pass, look at the two embedding rows and their scaling.

# %%
dla = direct_logit_attribution(model, rep_cache, rep_tokens[0])
labels = ["embed", "pos"] + [f"L{l}H{h}" for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
imshow(dla.detach(), y=labels, title="direct logit attribution on repeated tokens (columns: positions)",
       xlabel="position", ylabel="component")

# %% [markdown]
# ### Activation patching
#
# Take a *clean* prompt and a *corrupted* one that differs in one token, run the corrupted one, and
# paste in one clean activation at a time: the activations that restore the clean behaviour are the
# ones that carry the information. Here the clean prompt is `[BOS, r, r]` and the corrupted one has
# `r_4` changed in the first copy; the metric is the logit difference, at the second copy of `r_3`,
# between the clean next token `r_4` and the corrupted one. Before running it, predict where the
# information sits before layer 1: the induction head at the second `r_3` finds position 4 through
# its *keys* ("the previous token was r_3", written by the previous-token head and unchanged by the
# corruption) and copies the token at position 4 through its *values* (changed). So patching position
# 4 should restore the metric at both layers, while position 5 matters little for this query. The
# checks compare with `transformer_lens.patching`.
#
# ### Exercise: patch the residual stream, one position at a time
#
# Fill in the loop body: run the corrupted tokens with `blocks.{layer}.hook_resid_pre` at one position
# replaced by its value in the clean cache, and record the metric of the logits.

# %% exercise curriculum.solutions.chapter1.interp:patch_residual_by_position difficulty=3 importance=5 minutes=25
tests.check_patch_residual_by_position(patch_residual_by_position)

# %% hint
# One forward pass per (layer, position), each with a hook that changes exactly one position of one
# layer's residual stream and leaves everything else as the corrupted run computes it.

# %% hint
# The residual is `[batch, seq, d_model]`; the hook sets `resid[:, pos] = clean_cache[name][:, pos]`
# and returns `resid`. Run `model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, patch)])` under
# `torch.no_grad()` and store `metric(logits)`. Bind `pos` as a default argument of the hook.

# %% [markdown]
# ### Exercise: patch one head's output
#
# The same experiment one level finer: replace one head's `z` with its clean value, at every position at
# once (`[layer, head]`), or with `by_position=True` at one position at a time (`[layer, seq, head]`).
# The loops and the reshaping are written for you; `pos` is either a position or `slice(None)`.

# %% exercise curriculum.solutions.chapter1.interp:patch_head_output difficulty=3 importance=4 minutes=20
tests.check_patch_head_output(patch_head_output)

# %% hint
# Because `pos` may be `slice(None)`, one indexing expression covers both modes: `z[:, pos, head]` is
# either one position of one head or all positions of it.

# %% hint
# The hook on `hook_z` (`[batch, seq, head, d_head]`) sets `z[:, pos, head] = clean_cache[name][:, pos, head]`
# and returns `z`; record `metric(...)` in `out[layer, i, head]`. Bind `pos` and `head` as default
# arguments of the hook.

# %%
clean_tokens = generate_repeated_tokens(1, 8, cfg.d_vocab, model.tokenizer.bos_token_id, torch.Generator().manual_seed(3))
corrupted_tokens = clean_tokens.clone()
corrupted_tokens[0, 4] = (clean_tokens[0, 4] + 7) % (cfg.d_vocab - 1) + 1
right, wrong, query = int(clean_tokens[0, 4]), int(corrupted_tokens[0, 4]), 8 + 3


def logit_diff(logits: Float[Tensor, "batch seq d_vocab"]) -> Float[Tensor, ""]:
    return logits[0, query, right] - logits[0, query, wrong]


clean_logits, clean_cache = model.run_with_cache(clean_tokens)
print(f"logit diff: clean {logit_diff(clean_logits):.2f}, corrupted {logit_diff(model(corrupted_tokens)):.2f}")
imshow(patch_residual_by_position(model, corrupted_tokens, clean_cache, logit_diff),
       title="logit diff after patching resid_pre (layer, position)", xlabel="position", ylabel="layer")
imshow(patch_head_output(model, corrupted_tokens, clean_cache, logit_diff),
       title="logit diff after patching one head's output", xlabel="head", ylabel="layer")

# %% [markdown]
# ## 5. The circuit in the weights
#
# A head's behaviour factors into two low-rank matrices. The **OV circuit** `W_E W_V W_O W_U`
# (`d_vocab x d_vocab`) says which logits go up for each token attended to; a copying head has a
# dominant diagonal. The **QK circuit** says which (query, key) pairs attend. These matrices are
# huge but have rank `d_head`: `FactoredMatrix` keeps them as `A @ B` and computes norms,
# eigenvalues and row slices without ever forming the product.
#
# ### Exercise: the full OV circuit
#
# Return `W_E W_V W_O W_U` of one head as a `FactoredMatrix` of shape `[d_vocab, d_vocab]`: row `s` holds
# the logits that go up when the head attends to source token `s`.

# %% exercise curriculum.solutions.chapter1.interp:full_ov_circuit difficulty=2 importance=4 minutes=15
tests.check_full_ov_circuit(full_ov_circuit)

# %% hint
# Follow a source token through the head: embedded by `W_E`, read by the head's `W_V`, written back by
# its `W_O`, read out by `W_U`. A `FactoredMatrix(A, B)` stands for `A @ B`; split the chain so that
# neither factor is `d_vocab x d_vocab`.

# %% hint
# `FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head] @ model.W_U)`: a
# `[d_vocab, d_head]` factor times a `[d_head, d_vocab]` one. The order matters: the check compares
# rows of your matrix with the explicit product.

# %% [markdown]
# ### Exercise: how often does a head copy?
#
# For a `[d_vocab, d_vocab]` `FactoredMatrix`, return the share of rows whose largest entry is on the
# diagonal. Materialise it a batch of rows at a time: the full matrix of a real model would not fit
# in memory.

# %% exercise curriculum.solutions.chapter1.interp:top_1_accuracy difficulty=2 importance=3 minutes=10
tests.check_top_1_accuracy(top_1_accuracy)

# %% hint
# Indexing a `FactoredMatrix` with row indices gives a smaller `FactoredMatrix`; its `.AB` is the
# dense block. For row `i`, "copying" means the argmax along the row is `i` itself.

# %% hint
# Loop `start` over `range(0, n, batch_size)`, with `rows = torch.arange(start, min(start + batch_size, n))`
# (the last batch is shorter: the check uses a batch size that does not divide the size); count
# `(matrix[rows].AB.argmax(dim=-1) == rows).sum()` and divide the total by `n`.

# %%
for layer in range(cfg.n_layers):
    accs = [top_1_accuracy(full_ov_circuit(model, layer, h)) for h in range(cfg.n_heads)]
    print(f"layer {layer}: OV top-1 copying accuracy per head", [round(a, 2) for a in accs])
prev_head = int(head_detection_scores(patterns, previous_token_detection(toks))[0].argmax())
imshow(positional_qk_circuit(model, 0, prev_head, 20).detach(),
       title=f"L0H{prev_head}: attention from positional embeddings alone", xlabel="key position", ylabel="query position")

# %% [markdown]
# ### K-composition
#
# The induction head's *keys* must be computed from what the previous-token head wrote. The
# composition score `||W_A W_B||_F / (||W_A||_F ||W_B||_F)` measures how much of what one head
# writes (`W_A = W_V W_O` of a layer-0 head) another reads (`W_B = W_K W_Q^T` of a layer-1 head,
# for keys). Unrelated heads still score well above 0 (random low-rank matrices do); for each induction head,
# the layer-0 previous-token head should be the one it composes with most.
#
# ### Exercise: composition scores
#
# Write `composition_score` for two plain matrices, then `k_composition_scores`: a
# `[layer-0 head, layer-1 head]` table of how strongly each layer-0 head's output feeds each
# layer-1 head's keys. The check compares with the bridge's `all_composition_scores("K")`.

# %% exercise curriculum.solutions.chapter1.interp:composition_score,k_composition_scores difficulty=3 importance=4 minutes=20
tests.check_composition_scores(composition_score, k_composition_scores)

# %% hint
# The score is three Frobenius norms: of the product, and of each factor. For K-composition the
# writer is the layer-0 head's OV matrix, `d_model x d_model`, and the reader is the layer-1 head's key
# side, written so that it *starts* in the residual space the writer ends in.

# %% hint
# `tensor.norm()` with no arguments is the Frobenius norm; return a Python float with `.item()`.
# For the pairs: `W_OV = W_V[0, h0] @ W_O[0, h0]` and `W_K[1, h1] @ W_Q[1, h1].T` (the transpose of the
# layer-1 head's QK matrix, so its key side comes first). `.detach()` them before filling the table.

# %%
imshow(k_composition_scores(model), title="K-composition: layer-0 head (rows) into layer-1 head (cols)",
       xlabel="layer-1 head", ylabel="layer-0 head")

# %% [markdown]
# ## 6. Features with a sparse autoencoder
#
# The residual stream has `d_model` dimensions but may represent many more features, each a
# direction, active on few tokens. A sparse autoencoder (SAE) learns an overcomplete dictionary of
# such directions: `acts = ReLU((x - b_dec) W_enc + b_enc)`, `x_hat = acts W_dec + b_dec`, trained to
# reconstruct `x` with an L1 penalty on `acts`. The L1 coefficient trades reconstruction (fraction of
# variance unexplained, FVU) against sparsity (L0: latents active per token). Latents that stop
# firing are *dead*; we re-initialise them towards inputs the SAE reconstructs badly.
#
# ### Exercise: the sparse autoencoder
#
# Write `encode`, `decode` and `forward`. `forward` returns an `SAEOutput` with the total loss, the
# reconstruction loss (per-input mean squared error, averaged over the batch), the L1 loss (per-input
# sum of `|acts|`, averaged over the batch), `x_hat` and `acts`.

# %% exercise curriculum.solutions.chapter1.sae:SAE difficulty=2 importance=5 minutes=20
sae_tests.check_sae(SAE)

# %% hint
# The encoder centres the input on the decoder bias before projecting: `(x - b_dec) W_enc + b_enc`,
# then a ReLU so the latents are non-negative. The decoder is linear: `acts W_dec + b_dec`.

# %% hint
# Mind the two different reductions in the losses: the reconstruction term is a *mean* over `d_in`,
# the L1 term a *sum* over `d_sae`, each then averaged over the batch. The total is
# `recon_loss + self.cfg.l1_coeff * l1_loss`. The check names the term that differs.

# %% [markdown]
# ### Exercise: sparsity and reconstruction metrics
#
# The two numbers you watch while training an SAE: `l0_norm`, the average number of latents that fire
# per input, and `fraction_variance_unexplained`, the reconstruction error relative to the spread of
# the inputs around their mean. Both return Python floats.

# %% exercise curriculum.solutions.chapter1.sae:l0_norm,fraction_variance_unexplained difficulty=2 importance=4 minutes=10
sae_tests.check_metrics(l0_norm, fraction_variance_unexplained)

# %% hint
# L0 counts, it does not add magnitudes: a latent is firing when it is `> 0`. FVU is a ratio of two
# sums of squares over the whole batch: the residual `x - x_hat` on top, `x` minus its batch mean below.

# %% hint
# For L0, a comparison gives a boolean tensor; turn it into floats, count along the latent axis, then
# average over the batch and return `.item()`. For FVU the mean is
# per dimension, over the batch: `x.mean(0, keepdim=True)`; subtracting the mean of all entries is the
# mistake the check names. Guard the denominator with `clamp_min`.

# %% [markdown]
# ### Exercise: resample dead latents
#
# Give each dead latent a fresh start pointing at something the SAE gets wrong: for each one, sample an
# input with probability proportional to its squared reconstruction error, and point the latent's
# decoder row along that input's error direction (unit length). Its encoder column is the same direction
# scaled to `resample_scale` times the mean norm of the alive latents' encoder columns, and its encoder
# bias is 0. Alive latents and `b_dec` must not change.

# %% exercise curriculum.solutions.chapter1.sae:resample_dead_latents difficulty=4 importance=3 minutes=30
sae_tests.check_resample_dead_latents(resample_dead_latents)

# %% hint
# Compute the errors `x - sae(x).x_hat` once. Their squared norms are the sampling weights
# (`torch.multinomial(weights, n_dead, replacement=True, generator=generator)`); if every error is
# zero, fall back to uniform weights.

# %% hint
# `W_dec` is `[d_sae, d_in]` (a row per latent) but `W_enc` is `[d_in, d_sae]` (a column per latent): write
# the directions into `sae.W_dec.data[dead]` and their transpose, scaled, into `sae.W_enc.data[:, dead]`.
# The mean alive norm is `sae.W_enc[:, ~dead].norm(dim=0).mean()`, measured *before* you overwrite
# anything. The function runs under `torch.no_grad()`, so writing into `.data` is fine.

# %% hint
# In the check only one input is badly reconstructed, so every resampled decoder row must come out as
# the same unit vector. If yours do not, you are probably sampling inputs uniformly or forgot to
# normalise the error.

# %% [markdown]
# ### Exercise: collect activations
#
# Run the model over many prompts in batches, keep only the activation at `hook_name`, and return
# them as one `[batch * seq, d]` tensor of rows, one per token, in (prompt, position) order.

# %% exercise curriculum.solutions.chapter1.interp:collect_activations difficulty=2 importance=3 minutes=10
tests.check_collect_activations(collect_activations)

# %% hint
# `model.run_with_cache(batch, names_filter=hook_name)` stores only that one activation, which keeps
# memory low. Loop over the prompts `batch_size` at a time; the last batch may be shorter.

# %% hint
# Flatten each batch's `[batch, seq, d]` activation with
# `einops.rearrange(acts, "batch seq d -> (batch seq) d")`, collect the pieces in a list, and
# `torch.cat` them at the end. Wrap the forward passes in `torch.no_grad()`.

# %%
from curriculum.utils.offline import load_text_corpus

corpus = load_text_corpus().value
ids = model.tokenizer(corpus[: utils.full_or_quick(400_000, 40_000)])["input_ids"]
SEQ = 48  # the offline model was trained on 49-token contexts (BOS + 48)
n_seq = len(ids) // (SEQ - 1)
text_tokens = torch.tensor(ids[: n_seq * (SEQ - 1)]).reshape(n_seq, SEQ - 1)
text_tokens = torch.cat([torch.full((n_seq, 1), model.tokenizer.bos_token_id), text_tokens], dim=1)
HOOK = "blocks.1.hook_resid_pre"
acts = collect_activations(model, text_tokens, HOOK)
print(f"{acts.shape[0]:,} activations of size {acts.shape[1]} from {HOOK}")

sae_cfg = SAEConfig(d_in=cfg.d_model, d_sae=4 * cfg.d_model, l1_coeff=3e-3, lr=1e-3,
                    batch_size=512, n_steps=utils.full_or_quick(3000, 200), resample_every=utils.full_or_quick(750, 100), dead_window=100)
sae = SAE(sae_cfg)
acts_scaled = acts / acts.norm(dim=-1).mean() * cfg.d_model**0.5  # unit average per-dimension scale: l1_coeff transfers between models
history = train_sae(sae, acts_scaled)
print(f"final L0 {history['l0'][-1]:.1f} latents per token, FVU {history['fvu'][-1]:.3f}, dead {history['frac_dead'][-1]:.0%}")
line({"L0": history["l0"], "FVU x 100": [100 * f for f in history["fvu"]], "dead %": [100 * d for d in history["frac_dead"]]},
     smooth=20, title="SAE training", xlabel="step")

# %% [markdown]
# ### Exercise: what does a latent fire on?
#
# Encode every token, pick a latent, and list the tokens where it is most active (with a little
# context). Many latents of a residual-stream SAE fire on one token or a family of similar tokens;
# a few fire on a position or on something about the previous token.

# %% exercise curriculum.solutions.chapter1.interp:top_activating_tokens difficulty=2 importance=3 minutes=10
tests.check_top_activating_tokens(top_activating_tokens)

# %% hint
# `latent_acts` is `[batch, seq]`: one latent's activation at every token. Find the `k` largest entries
# of the whole table and report where each sits, largest first, as `(batch_index, position, value)`
# with plain Python numbers.

# %% hint
# `latent_acts.flatten().topk(k)` gives values and flat indices, already sorted. With `seq` columns, flat
# index `f` is row `f // seq`, column `f % seq`. Convert with `int(...)` and `float(...)`.

# %%
with torch.no_grad():
    latent_acts = sae.encode(acts_scaled).reshape(n_seq, SEQ, -1)
freq = (latent_acts > 0).float().mean(dim=(0, 1))
alive = torch.nonzero(freq > 0).flatten()
latent = int(alive[freq[alive].argsort()[len(alive) // 2]])  # a latent of median firing frequency
print(f"latent {latent} fires on {freq[latent]:.2%} of tokens; top activations:")
for b, p, v in top_activating_tokens(latent_acts[..., latent], 10):
    context = model.tokenizer.decode(text_tokens[b, max(p - 5, 1) : p])
    print(f"  {v:6.2f}  ...{context!r} -> [{model.tokenizer.decode(text_tokens[b, p:p + 1])!r}]")

# %% [markdown]
# ## Where next
#
# - Run the same analyses on the online model (8 heads per layer) and find its induction heads.
# - Sweep the SAE's `l1_coeff` and plot L0 against FVU: the Pareto frontier of sparsity vs reconstruction.
# - Section 1.4 uses the same SAE to recover the features of a toy model of superposition, where the
#   true features are known.

# %% [markdown]
# ## Further reading
#
# - [A Mathematical Framework for Transformer Circuits](https://transformer-circuits.pub/2021/framework/index.html)
#   (Elhage et al., 2021): the QK and OV circuits, composition scores and the induction circuit in
#   two-layer attention-only models, the analysis this section reproduces.
# - [In-context Learning and Induction Heads](https://arxiv.org/abs/2209.11895) (Olsson et al., 2022):
#   induction heads in larger models, the sudden phase during training in which they form, and the
#   evidence that they drive in-context learning.
# - [How to use and interpret activation patching](https://arxiv.org/abs/2404.15255) (Heimersheim and
#   Nanda, 2024): clean and corrupted prompts, noising versus denoising, and how the choice of metric
#   changes what a patching experiment tells you.
# - [Sparse Autoencoders Find Highly Interpretable Features in Language Models](https://arxiv.org/abs/2309.08600)
#   (Cunningham et al., 2023): sparse autoencoders on a language model's residual stream, and how
#   interpretable their features are compared with neurons.
# - [Towards Monosemanticity: Decomposing Language Models With Dictionary Learning](https://transformer-circuits.pub/2023/monosemantic-features/index.html)
#   (Bricken et al., 2023): a careful study of one SAE on a one-layer transformer, including dead
#   latents and resampling them, and how to judge whether a feature is real.
