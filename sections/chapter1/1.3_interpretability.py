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
# ![The induction circuit on the prompt "... A B ... A": in layer 0 a previous-token head at the
# position of B attends to A and writes "the token before me was A" into B's residual stream; in layer 1
# the induction head at the second A forms its query from the token A, matches the key written at B
# (K-composition), attends to B and copies B to the output through its OV circuit, so the model
# predicts B.](figures/1.3_induction_circuit.svg)
#
# Keep the picture in mind through the whole section. Each experiment below tests one arrow of it. The
# attention patterns test where each head looks. Ablation and patching test which heads the prediction
# depends on, and at which positions the information sits. The weight analyses test *why* the heads look
# where they do, from their matrices alone, with no input at all. No single experiment is convincing on
# its own: a head can attend to the right place and write nothing useful, and a head can matter for the
# loss for reasons unrelated to induction. Together they pin the mechanism down.
#
# **TransformerLens 4.** `HookedTransformer` is gone; models are wrapped in a `TransformerBridge`.
# We call `enable_compatibility_mode()` on it (done for you by the loader), which folds LayerNorm
# weights into the next layer and centres the weights the way HookedTransformer did, and gives the
# familiar hook names and shapes: `blocks.{l}.attn.hook_pattern` is `[batch, head, query, key]`,
# `blocks.{l}.attn.hook_z` is `[batch, pos, head, d_head]`, and `model.W_Q[l, h]` is a head's
# query matrix.
#
# **Your own model works too.** The GPT-2 you built in section 1.1 routes its activations through
# hooks with the same names and shapes (the table in 1.1's part on the residual stream) and exposes the
# same stacked weights (`model.W_O[l]`, `model.W_U`, ...), so every function you write here runs on it
# unchanged: try `induction_scores_with_hooks` on the model you trained in 1.1. One difference to
# keep in mind: TransformerLens's compatibility mode folds each LayerNorm's `w` into the next weight
# matrix, and your model does not, so direct logit attributions computed on your model read the
# unfolded weights. (A model built with `attn_impl="sdpa"` records no `hook_pattern`, since the fused
# kernel never forms the pattern; build it with the default `"manual"` for this section.)
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
from curriculum.solutions.chapter1.interp import stacked_patterns, current_token_detection
from curriculum.solutions.chapter1.sae import SAEConfig, SAEOutput, train_sae
from curriculum.checks.chapter1 import interp as tests
from curriculum.checks.chapter1 import sae as sae_tests
from curriculum.utils.interp_models import load_interp_model
from curriculum.utils.offline import describe, load_gpt2
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
# Why bother with detection patterns when you can look at the heatmaps? Because heatmaps do not scale.
# A model with a hundred heads and a thousand prompts gives you a hundred thousand heatmaps; a score per
# head, averaged over prompts, gives you a table you can sort. The price is that a score only finds the
# behaviour you thought of: a head that does something you had no pattern for scores low everywhere, so
# look at the patterns of the heads no score explains, too.
#
# Each function below takes the token ids of one prompt and returns a `[seq, seq]` float matrix, queries
# down and keys across, with a 1 wherever that kind of head should look. Worked example: for the tokens
# `[BOS, 5, 6, 5, 6]` (positions 0 to 4), the previous-token pattern has 1s at (1, 0), (2, 1), (3, 2), (4, 3);
# the duplicate-token pattern has 1s at (3, 1) and (4, 2), because position 3 holds 5, first seen at 1;
# the induction pattern has 1s at (3, 2) and (4, 3), the tokens right *after* those earlier copies. Every
# check compares with the patterns of `transformer_lens.head_detector` on a prompt with repeats.
#
# ### Exercise: the previous-token detection pattern
#
# Query `i` looks at key `i - 1`; the first query (BOS) has nothing before it and gets an empty row.

# %% exercise curriculum.solutions.chapter1.interp:previous_token_detection difficulty=1 importance=3 minutes=5
tests.check_previous_token_detection(previous_token_detection)

# %% hint
# The 1s lie on one diagonal of the matrix, just below the main one (row `i`, column `i - 1`).

# %% hint
# `torch.diag(vector, diagonal=k)` builds a matrix with `vector` on the `k`-th diagonal; `k < 0` is below
# the main diagonal. The vector is `seq - 1` ones long.

# %% [markdown]
# ### Exercise: the duplicate-token detection pattern
#
# Key `j` qualifies for query `i` when it holds the same token and comes strictly before it. A
# duplicate-token head tells later layers "this token has appeared before", which is one way (not the
# one our model uses) of starting an induction circuit.

# %% exercise curriculum.solutions.chapter1.interp:duplicate_token_detection difficulty=2 importance=3 minutes=5
tests.check_duplicate_token_detection(duplicate_token_detection)

# %% hint
# Compare every token with every other token at once by broadcasting a column against a row, then throw
# away the query itself and everything after it.

# %% hint
# `tokens[:, None] == tokens[None, :]` is the `[seq, seq]` table of equal pairs; `torch.tril(..., diagonal=-1)`
# keeps the keys strictly below the diagonal; finish with `.float()`.

# %% [markdown]
# ### Exercise: the induction detection pattern
#
# Key `j` qualifies when the token *before* it, at `j - 1`, equals the query's token and `j - 1 < i`.
# An induction head attends there because `tokens[j]` is what followed the query's token last time, which
# makes it a good guess for what comes next. Attention can only look back, so keep `j <= i`.

# %% exercise curriculum.solutions.chapter1.interp:induction_detection difficulty=2 importance=3 minutes=10
tests.check_induction_detection(induction_detection)

# %% hint
# The induction pattern is the duplicate-token pattern moved one key to the right: where the duplicate
# head looks at the earlier A, the induction head looks at the token after it.

# %% hint
# Start from a zero matrix and copy the duplicate pattern into it shifted by one column
# (`shifted[:, 1:] = dup[:, :-1]`); `torch.tril` afterwards keeps the pattern causal when the earlier copy
# sits right before the query.

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
# What you should see: the first copy's loss sits near `ln(d_vocab)` (the model is guessing uniformly),
# and the second copy's loss drops after its first token or two. In the layer-1 heatmaps an induction head
# shows a stripe parallel to the main diagonal, `half_len - 1` positions below it, in the bottom half of
# the picture only. If your induction scores are high for a layer-0 head, suspect the offset of your
# diagonal before suspecting the model: layer 0 cannot know what followed an earlier token, since nothing
# has moved that information yet.
#
# ### Exercise: induction scores from hooks, without a cache
#
# `run_with_cache` stores every activation of the model. For a 2-layer toy model that is nothing; for
# GPT-2 small on a long batch it is gigabytes, almost all of which you never read. A hook can compute what
# you need *while* the activation flows past and keep only the result. Write `induction_scores_with_hooks`:
# one forward pass, a hook on every layer's `attn.hook_pattern` that scores the pattern with your
# `induction_scores` and writes the scores into its layer's row of a `[layer, head]` table.
#
# Two pieces of the hook API you need: `fwd_hooks` accepts, instead of a hook name, a *function* of the
# name that returns `True` for the hook points you want (so one entry covers every layer), and the `hook`
# object your function receives knows where it is: `hook.name` is its name and `hook.layer()` its layer.
# The check compares with the cached patterns scored one layer at a time.

# %% exercise curriculum.solutions.chapter1.interp:induction_scores_with_hooks difficulty=2 importance=4 minutes=15
tests.check_induction_scores_with_hooks(induction_scores_with_hooks)

# %% hint
# The hook only reads: it scores `pattern` and stores the result in the table, then returns the pattern
# unchanged. The table lives outside the hook, so the hook can write into it.

# %% hint
# `fwd_hooks=[(lambda name: name.endswith("attn.hook_pattern"), score)]` attaches `score` to every
# layer; inside it, `out[hook.layer()] = induction_scores(pattern, half_len)`. Run the model under
# `torch.no_grad()` and ignore its logits.

# %% [markdown]
# ### Induction heads in GPT-2 small
#
# The same test works on any model: feed it repeated random tokens and score every head. Online, the cell
# below loads GPT-2 small (12 layers, 12 heads each) through the project's loader and scores all 144 heads in
# one pass; offline it scores the shipped model again, so that the cell still runs. The analysis of GPT-2
# small's indirect-object circuit (Wang et al., in the further reading) names heads 5.5 and 6.9 among its
# induction heads; check whether they are in your top five. Induction heads in a large model are rarely
# alone: several heads share the work, and some score only moderately because they also do other things on
# text. Online, the table has 144 entries; the heatmap below it shows where in depth they sit.

# %%
gpt2_loaded = load_gpt2()
if gpt2_loaded.real:
    describe(gpt2_loaded)
    big_model = gpt2_loaded.value
    big_model.enable_compatibility_mode(disable_warnings=True)
else:
    print("offline: the GPT-2-shaped stand-in is untrained and has no induction heads; scoring the shipped model instead")
    big_model = model
big_tokens = generate_repeated_tokens(utils.full_or_quick(8, 2), HALF, big_model.cfg.d_vocab, big_model.tokenizer.bos_token_id,
                                      torch.Generator().manual_seed(1))
big_scores = induction_scores_with_hooks(big_model, big_tokens, HALF)
top = big_scores.flatten().topk(min(5, big_scores.numel()))
print("strongest induction heads:", ", ".join(f"L{int(i) // big_model.cfg.n_heads}H{int(i) % big_model.cfg.n_heads} ({v:.2f})"
                                              for v, i in zip(top.values, top.indices)))
imshow(big_scores, title="induction score of every head", xlabel="head", ylabel="layer")

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
# What you should see: in the second copy, the big positive entries sit in the rows of the layer-1
# induction heads; the embedding rows stay small (random tokens offer no bigram statistics to exploit), and
# the layer-0 heads get almost no direct credit although the circuit cannot work without them. That gap between
# "directly writes the answer" and "is needed for the answer" is exactly what the next two tools measure
# from different sides.
#
# ### Exercise: the logit lens
#
# Direct logit attribution splits the final residual stream by *component*. The logit lens splits it by
# *depth*: it takes the residual stream after each layer and decodes it as if the model stopped there,
# with the final LayerNorm and the unembedding. The residual stream is a running sum that every layer reads
# from and adds to, so a half-built answer is often already readable in it. In this model, the lens on
# `blocks.0.hook_resid_pre` (only the embeddings) can give a bigram guess; after layer 0 the previous-token
# information is there but nothing has been copied yet; only the final stream, after the induction heads,
# should predict the second copy of the random tokens.
#
# Write `logit_lens`: for each stage (every layer's `hook_resid_pre`, then the last layer's
# `hook_resid_post`), the log-probability of the correct next token at every position, `[n_layers + 1,
# seq - 1]`. The LayerNorm is folded into `W_U`, so decoding is: centre the vector, divide it by
# `sqrt(mean(x^2) + eps)`, multiply by `W_U`, add `b_U`, `log_softmax`. The one trap: the final
# LayerNorm's scale depends on the vector it normalises, so each stage needs its own; the cached
# `ln_final.hook_scale` belongs to the final stream only. The check compares with TransformerLens's
# `cache.accumulated_resid(apply_ln=True)`.

# %% exercise curriculum.solutions.chapter1.interp:logit_lens difficulty=2 importance=4 minutes=15
tests.check_logit_lens(logit_lens)

# %% hint
# Stack the stages into one `[stage, seq - 1, d_model]` tensor (positions `:-1`: the last position has no
# next token), normalise along the last axis, unembed, and read off one entry per (stage, position).

# %% hint
# `model.cfg.eps` is the LayerNorm's epsilon. After `log_softmax(-1)` you have `[stage, seq - 1, d_vocab]`;
# `gather(-1, index)` with `index = tokens[1:].expand(n_stages, -1)[..., None]` picks the next token at
# each position, and `[..., 0]` drops the trailing axis.

# %%
lens = logit_lens(model, rep_cache, rep_tokens[0])
stage_names = [f"resid_pre {l}" for l in range(cfg.n_layers)] + ["final"]
for name, row in zip(stage_names, lens):
    print(f"{name:>12}: mean probability of the next token, first copy {row[:HALF].exp().mean():.3f}, "
          f"second copy {row[HALF:].exp().mean():.3f}")
imshow(lens.exp().detach(), y=stage_names, title="logit lens: probability of the correct next token",
       xlabel="position", ylabel="stage")

# %% [markdown]
# Read the printout from top to bottom. If the second copy becomes predictable only in the last row, the
# copying happens in layer 1, as the circuit says. On real text, run the same lens: there the embedding
# row already predicts frequent continuations, because the direct path `W_E W_U` learns bigram statistics.
# The lens is a quick look, not a proof: an intermediate residual stream was never trained to be decoded,
# and in deeper models it can hold information in directions that the unembedding ignores (the "tuned lens"
# learns a correction per layer for that reason).

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
# Everything so far needed an input. The weights alone already say a lot, because an attention head is
# two bilinear maps. The **QK circuit** `W_Q W_K^T` (`d_model x d_model`) decides where a head looks: the
# score between a query residual `x_i` and a key residual `x_j` is `x_i W_Q W_K^T x_j^T`. The **OV circuit**
# `W_V W_O` (`d_model x d_model`) decides what it moves: a key residual `x_j` attended with weight 1
# adds `x_j W_V W_O` to the query's residual stream. Put the embedding on the inputs and the
# unembedding on the output, and you get matrices indexed by tokens.
#
# ![The QK and OV circuits as products of weight matrices, with shapes: the full QK circuit W_E W_Q W_K^T
# W_E^T is d_vocab x d_vocab, built from a d_vocab x d_head and a d_head x d_vocab factor; the full OV
# circuit W_E W_V W_O W_U is d_vocab x d_vocab with the same rank-d_head bottleneck.](figures/1.3_qk_ov_circuits.svg)
#
# Both token-by-token matrices are `d_vocab x d_vocab`, 2.5 billion entries for GPT-2's vocabulary, but
# their rank is at most `d_head`: every path runs through the head's `d_head`-dimensional bottleneck.
# TransformerLens's `FactoredMatrix` keeps such a product as its two thin factors `A @ B` and computes
# what you need (norms, singular values, a few rows) from them. Before you use it, build its two most
# used operations yourself, and check them against it.
#
# ### Exercise: the Frobenius norm of a low-rank product
#
# For `A` of shape `[m, r]` and `B` of shape `[r, n]` with `r` much smaller than `m` and `n`, compute
# `||A B||_F` without forming the `m x n` product. Derivation: `||M||_F^2 = trace(M^T M)`, and
# `trace((AB)^T AB) = trace(B^T A^T A B) = trace((A^T A)(B B^T))` by the cyclic property of the trace.
# Both `A^T A` and `B B^T` are `r x r`, and the trace of a product of two symmetric matrices is the sum of
# their elementwise product. The whole computation costs `O((m + n) r^2)` instead of `O(m n r)`. The check
# compares with `FactoredMatrix(A, B).norm()`.

# %% exercise curriculum.solutions.chapter1.interp:factored_frobenius_norm difficulty=2 importance=3 minutes=10
tests.check_factored_frobenius_norm(factored_frobenius_norm)

# %% hint
# Only `r x r` matrices should appear: the Gram matrix of `A`'s columns and the Gram matrix of `B`'s rows.

# %% hint
# `(A.T @ A) * (B @ B.T)` (elementwise), summed over both axes, is `||AB||_F^2`; do not forget the square
# root at the end.

# %% [markdown]
# ### Exercise: the SVD of a low-rank product
#
# The singular value decomposition `A B = U diag(S) V^T` tells you the directions a circuit reads (`V`),
# writes (`U`) and how strongly (`S`). For a copying OV circuit, for instance, `U` and `V` line up. Here
# is the trick `FactoredMatrix` uses to get it from thin factors. Take the reduced QR decompositions
# `A = Q_A R_A` and `B^T = Q_B R_B`: `Q_A` (`m x r`) and `Q_B` (`n x r`) have orthonormal columns, `R_A`
# and `R_B` are `r x r`. Then `A B = Q_A (R_A R_B^T) Q_B^T`. Decompose the small middle matrix,
# `R_A R_B^T = U_m diag(S) V_m^T`, and rotate its singular vectors back out: `U = Q_A U_m`, `V = Q_B V_m`.
# Products of matrices with orthonormal columns keep orthonormal columns, so this is a valid SVD of `A B`.
#
# Return `(U, S, V)` with `U` `[m, r]`, `S` `[r]`, `V` `[n, r]`, so that `U @ diag(S) @ V.T == A @ B`
# (the convention of `FactoredMatrix.svd()`, which the check compares with).

# %% exercise curriculum.solutions.chapter1.interp:factored_svd difficulty=3 importance=3 minutes=15
tests.check_factored_svd(factored_svd)

# %% hint
# Two QR decompositions (of `A` and of `B.T`), one small SVD, two matrix products. `torch.linalg.qr` is
# reduced by default: for a tall `m x r` input it returns `Q` `[m, r]` and `R` `[r, r]`.

# %% hint
# `torch.linalg.svd(M)` returns `(U, S, Vh)` with `Vh = V^T`: the right singular vectors are the *rows*
# of `Vh`. So `V = Q_B @ Vh.T`, not `Q_B @ Vh`.

# %%
demo = FactoredMatrix(model.W_E @ model.W_V[1, 0], model.W_O[1, 0] @ model.W_U)
_, S_demo, _ = factored_svd(demo.A.detach(), demo.B.detach())
print(f"W_E W_V W_O W_U of L1H0: shape {tuple(demo.shape)}, rank at most {cfg.d_head}")
print(f"your norm {factored_frobenius_norm(demo.A, demo.B):.3f}, FactoredMatrix.norm() {demo.norm():.3f}")
print("top singular values:", [round(v, 2) for v in S_demo[:6].tolist()])

# %% [markdown]
# ### Exercise: the full OV circuit
#
# Return `W_E W_V W_O W_U` of one head as a `FactoredMatrix` of shape `[d_vocab, d_vocab]`: row `s` holds
# the logits that go up when the head attends to source token `s`. A head that copies (the induction heads,
# whose job is to move the attended token to the output) should have its largest entry of most rows on the
# diagonal: attending to token `s` raises the logit of `s` itself.

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

# %% [markdown]
# A random `d_vocab x d_vocab` matrix would put the row maximum on the diagonal for about `1 / d_vocab` of
# the rows, so anything far above that is deliberate. Expect the layer-1 induction heads to copy. The
# layer-0 previous-token heads need not: what they write is read by layer 1's *keys*, not by the
# unembedding, so their OV circuit only has to be readable by `W_K` of the induction head, which the
# composition scores below measure.
#
# ### Exercise: the positional QK circuit of the previous-token head
#
# How does a layer-0 head know to attend to the previous token? Not from the token contents: "the token
# before me" is a statement about positions. So the pattern should already be visible in the QK circuit
# applied to positional embeddings alone, `W_pos W_Q W_K^T W_pos^T`, a `[n_pos, n_pos]` table of scores
# between query position `i` and key position `j`. Scale it by `1 / sqrt(d_head)`, mask the keys after
# the query and softmax over keys, and you get the attention pattern the head would have if every token
# were the same.
#
# Write `positional_qk_circuit(model, layer, head, n_pos)` for the first `n_pos` positions. This ignores
# the token embeddings and layer 0's LayerNorm (which divides each residual vector by its norm), so expect
# a sharp but not perfect picture. The check compares with TransformerLens's `model.QK[layer, head]`, the
# head's `W_Q W_K^T` as a `FactoredMatrix`.

# %% exercise curriculum.solutions.chapter1.interp:positional_qk_circuit difficulty=2 importance=4 minutes=15
tests.check_positional_qk_circuit(positional_qk_circuit)

# %% hint
# Rows are queries: the query side is `W_pos @ W_Q[layer, head]` (`[n_pos, d_head]`), the key side
# `W_pos @ W_K[layer, head]`, and the score table is the first times the transpose of the second.

# %% hint
# After the scores, it is the same scale-mask-softmax as in your `attention_pattern_from_qk`:
# `torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), diagonal=1)` marks the future keys, which get
# `-inf`, and the softmax runs over the last axis. `model.W_pos[:n_pos]` are the first positions.

# %%
prev_scores = head_detection_scores(patterns, previous_token_detection(toks))[0]
prev_head = int(prev_scores.argmax())
imshow(positional_qk_circuit(model, 0, prev_head, 20).detach(),
       title=f"L0H{prev_head}: attention from positional embeddings alone", xlabel="key position", ylabel="query position")

# %% [markdown]
# What you should see: nearly all the weight of each row just left of the diagonal. If instead you see
# the diagonal itself, or a smooth smear over all earlier positions, the head you picked is not a
# previous-token head (check the detection scores printed in part 2), or your queries and keys are swapped.
#
# ### Composition
#
# Heads in different layers work together by **composition**: a later head reads, through its query,
# key or value matrix, what an earlier head wrote. Q-composition means the later head's queries read the
# earlier head's output, K-composition its keys, V-composition its values. The induction circuit is
# K-composition: the induction head's key at position `j` must be built from "the token before `j` was
# A", which only the previous-token head writes.
#
# The composition score `||W_A W_B||_F / (||W_A||_F ||W_B||_F)` measures how much of what one matrix
# writes (`W_A`, here `W_V W_O` of a layer-0 head) the other reads (`W_B`, the layer-1 head's key side).
# It is 1 when `W_B` reads exactly the subspace `W_A` writes, and small when they use unrelated
# directions. The score is invariant to rescaling either matrix, which matters because weight norms differ a
# lot between heads.
#
# ### Exercise: the composition score
#
# Write `composition_score` for two plain matrices, returning a Python float. The check compares with
# `transformer_lens.utilities.composition_scores`.

# %% exercise curriculum.solutions.chapter1.interp:composition_score difficulty=1 importance=4 minutes=5
tests.check_composition_score(composition_score)

# %% hint
# Three Frobenius norms: of the product, and of each factor; the score is the first divided by the
# product of the other two.

# %% hint
# `tensor.norm()` with no arguments is the Frobenius norm; return a Python float with `.item()`.

# %% [markdown]
# ### Exercise: K-composition scores between the two layers
#
# Write `k_composition_scores`: a `[layer-0 head, layer-1 head]` table of how strongly each layer-0 head's
# output feeds each layer-1 head's keys. The writer is the layer-0 head's OV matrix, `W_V W_O`
# (`d_model x d_model`). The reader must *start* in the residual space the writer ends in. The layer-1
# QK matrix `W_Q W_K^T` has its query side on the left, so for keys use its transpose, `W_K W_Q^T`.
# The check compares with the bridge's `all_composition_scores("K")`.

# %% exercise curriculum.solutions.chapter1.interp:k_composition_scores difficulty=2 importance=4 minutes=15
tests.check_k_composition_scores(k_composition_scores)

# %% hint
# Two loops, over the layer-0 head `h0` and the layer-1 head `h1`, calling your `composition_score` on the
# writer matrix of `h0` and the key-side reader of `h1`.

# %% hint
# `W_OV = W_V[0, h0] @ W_O[0, h0]` and `W_K[1, h1] @ W_Q[1, h1].T`. `.detach()` them before scoring, since
# the model's weights carry gradients.

# %% [markdown]
# ### Exercise: a baseline from random matrices
#
# The table you just made has no zero anywhere: two unrelated matrices still share some directions by
# chance. So what counts as "high"? Answer it the way a statistician would: draw many pairs of random
# matrices of the same shapes and look at the distribution of their scores. "Same shapes" includes the
# rank: `W_V W_O` is `d_model x d_model` but has rank `d_head`, so each random matrix should be a
# Gaussian `[d_model, d_head]` times a Gaussian `[d_head, d_model]`. A real head pair whose score sits many
# standard deviations above the random ones is composing on purpose.
#
# Write `random_composition_baseline(d_model, d_head, n_samples, generator)`, returning a tensor of
# `n_samples` scores, each from a fresh pair of random matrices drawn from `generator`. The check compares
# the mean and the spread of your scores with its own samples; full-rank random matrices give about the
# same mean but a much narrower spread, so it tells the two apart.

# %% exercise curriculum.solutions.chapter1.interp:random_composition_baseline difficulty=2 importance=3 minutes=10
tests.check_random_composition_baseline(random_composition_baseline)

# %% hint
# A loop over samples; in each, four Gaussian draws (two factors per matrix), two products, one call to
# `composition_score`.

# %% hint
# `torch.randn(d_model, d_head, generator=generator) @ torch.randn(d_head, d_model, generator=generator)`
# is one random rank-`d_head` matrix. Do the draws inside the loop, so every sample is new.

# %%
baseline = random_composition_baseline(cfg.d_model, cfg.d_head, utils.full_or_quick(1000, 200), torch.Generator().manual_seed(0))
k_comp = k_composition_scores(model)
z_scores = (k_comp - baseline.mean()) / baseline.std()
print(f"random baseline: mean {baseline.mean():.3f}, std {baseline.std():.4f}; "
      f"95th percentile {baseline.quantile(0.95):.3f}")
print(f"K-composition into layer 1, in baseline standard deviations (rows: layer-0 heads):\n{z_scores.round(decimals=1)}")
imshow(z_scores, title="K-composition above the random baseline (std units)", xlabel="layer-1 head", ylabel="layer-0 head")

# %% [markdown]
# What you should see: the rows of the previous-token heads far above the rest, for every induction
# head. Rows of other layer-0 heads can also sit above the baseline: composition scores measure how much
# of the *subspace* is shared, not whether the information in it is used, and trained heads share
# directions for many reasons. That is why the next part looks at actual attention scores on actual inputs.
#
# ## 5b. Decomposed attention scores
#
# Composition scores say layer 1 *could* read the previous-token head through its keys. To see that it
# *does*, split an induction head's attention scores by where their inputs come from. The input to layer
# 1's attention is a sum: the token embedding, the positional embedding, each layer-0 head's output, and
# the bias `b_O` of layer 0, all divided by layer 1's LayerNorm scale. The query and key are linear in that
# input (with LayerNorm's scale held fixed), so each is a sum of one term per component, and each
# score `q . k` is a sum over every (query component, key component) pair. With 2 + `n_heads` components,
# that is a small table, and for an induction head it should be dominated by one entry: query from the
# token embedding (what the current token is), key from the previous-token head (what the token before the
# key was).
#
# ### Exercise: split layer 1's input into components
#
# Return a `[component, seq, d_model]` tensor for one prompt of the cache: the token embedding, the
# positional embedding, then each layer-0 head's output `z @ W_O` (no `b_O`), all divided by
# `blocks.1.ln1.hook_scale`. The check compares the head rows with TransformerLens's
# `cache.stack_head_results`, and checks that all the rows plus `b_O[0] / scale` rebuild
# `blocks.1.ln1.hook_normalized`, what layer 1's attention actually reads.

# %% exercise curriculum.solutions.chapter1.interp:decompose_qk_input difficulty=2 importance=4 minutes=15
tests.check_decompose_qk_input(decompose_qk_input)

# %% hint
# This is the first half of your direct logit attribution, with layer 1's LayerNorm scale in place of the
# final one and only layer 0's heads.

# %% hint
# `hook_embed` and `hook_pos_embed` are `[batch, seq, d_model]`; take `[batch_index]` and add a leading axis.
# The heads: `einops.einsum(z, model.W_O[0], "seq head d_head, head d_head d_model -> head seq d_model")`
# with `z = cache["blocks.0.attn.hook_z"][batch_index]`. `torch.cat` the three, then divide by
# `cache["blocks.1.ln1.hook_scale"][batch_index]` (`[seq, 1]`, broadcasts).

# %% [markdown]
# ### Exercise: each component's share of a query and a key
#
# Project every component with the layer-1 head's `W_Q` and `W_K`: two `[component, seq, d_head]` tensors.
# Summed over components, plus the bias terms, they must give the cached `hook_q` and `hook_k` of that
# head, which is what the check tests.

# %% exercise curriculum.solutions.chapter1.interp:decompose_qk difficulty=1 importance=3 minutes=5
tests.check_decompose_qk(decompose_qk)

# %% hint
# A matrix product over `d_model`, once with `model.W_Q[1, head]` and once with `model.W_K[1, head]`
# (layer 1: the induction heads live there).

# %% hint
# `einops.einsum(decomposed, model.W_Q[1, head], "component seq d_model, d_model d_head -> component seq d_head")`,
# and the same with `W_K`; return `(q, k)` in that order.

# %% [markdown]
# ### Exercise: decomposed attention scores
#
# Given the query parts `[q_comp, q_pos, d_head]` and the key parts `[k_comp, k_pos, d_head]`, return every
# pair's contribution to the scores, `[q_comp, k_comp, q_pos, k_pos]`, scaled by `1 / sqrt(d_head)` and
# not masked (a mask would add `-inf` to every pair, and sums of them would mean nothing). The check adds the
# bias terms as one more component on each side and verifies that the sum over all pairs, masked and
# softmaxed, is the head's real attention pattern.

# %% exercise curriculum.solutions.chapter1.interp:decompose_attn_scores difficulty=2 importance=4 minutes=10
tests.check_decompose_attn_scores(decompose_attn_scores)

# %% hint
# One contraction over `d_head`, keeping both component axes and both position axes; then the scale.

# %% hint
# `einops.einsum(q_parts, k_parts, "q_comp q_pos d, k_comp k_pos d -> q_comp k_comp q_pos k_pos")`,
# divided by `q_parts.shape[-1] ** 0.5`.

# %%
ind_head = int(induction_scores(rep_cache["blocks.1.attn.hook_pattern"], HALF).argmax())
parts = decompose_qk_input(model, rep_cache)
q_parts, k_parts = decompose_qk(model, parts, ind_head)
decomposed = decompose_attn_scores(q_parts, k_parts).detach()
seq_len = rep_tokens.shape[1]
causal = torch.tril(torch.ones(seq_len, seq_len, dtype=torch.bool))
spread = decomposed[..., causal].std(dim=-1)  # how much each pair moves the scores across (query, key) pairs
comp_names = ["embed", "pos"] + [f"L0H{h}" for h in range(cfg.n_heads)]
qi, ki = divmod(int(spread.argmax()), len(comp_names))
print(f"L1H{ind_head}: the largest term has queries from {comp_names[qi]} and keys from {comp_names[ki]}")
imshow(spread, x=comp_names, y=comp_names, title=f"L1H{ind_head}: std of each decomposed score term",
       xlabel="key component", ylabel="query component")

# %% [markdown]
# Why the standard deviation, not the mean? A term that adds the same amount to every score of a row
# changes nothing after the softmax. What decides where the head looks is how much a term *varies* across
# keys. What you should see: the largest entry at query component `embed`, key component = a previous-token
# head; positional terms come next (they keep the head away from BOS and roughly local). If the biggest term
# were `embed` with `embed`, the head would be matching tokens with themselves: a duplicate-token head.
#
# ### Exercise: the K-composition circuit, token by token
#
# Now follow the winning term back to the weights. Query token `s` enters through `W_E` and the
# induction head's `W_Q`. On the key side, the previous-token head attended to token `t` (the token
# *before* the key position), moved it with its OV circuit `W_V^0 W_O^0`, and the induction head read the
# result with `W_K`. The scores between the two form a `[d_vocab, d_vocab]` matrix:
#
# `W_E W_Q^1 (W_E W_V^0 W_O^0 W_K^1)^T`
#
# Row `s` says how much a query holding `s` wants a key whose previous token was `t`. For an induction
# circuit it should be largest on the diagonal: "attend where the token before was *my* token". Return it
# as a `FactoredMatrix` (it has rank at most `d_head`). Like the positional circuit, this leaves out both
# LayerNorm scales and assumes the previous-token head attends with weight 1, so it is an idealisation. The
# check compares with TransformerLens's `model.QK` and `model.OV` factored matrices.

# %% exercise curriculum.solutions.chapter1.interp:k_composition_circuit difficulty=3 importance=4 minutes=15
tests.check_k_composition_circuit(k_composition_circuit)

# %% hint
# Two sides, each `[d_vocab, d_head]`: the query side is what a token's embedding becomes as a query of
# the layer-1 head; the key side is what a token's embedding becomes after the layer-0 head's OV circuit
# and the layer-1 head's key matrix. The circuit is the first times the transpose of the second.

# %% hint
# `FactoredMatrix(W_E @ W_Q[1, ind_head], (W_E @ W_V[0, prev_head] @ W_O[0, prev_head] @ W_K[1, ind_head]).T)`
# has the right shape, `[d_vocab, d_head] @ [d_head, d_vocab]`; check that you read the layer-0 head from
# layer 0 and the induction head from layer 1.

# %%
for h0 in range(cfg.n_heads):
    accs = [top_1_accuracy(k_composition_circuit(model, h0, h1)) for h1 in range(cfg.n_heads)]
    print(f"K-composition circuit via L0H{h0}: top-1 diagonal accuracy into each layer-1 head", [round(a, 2) for a in accs])

# %% [markdown]
# The rows through the previous-token heads should reach a high diagonal accuracy for every induction
# head (the stronger the previous-token head, the higher), and the other layer-0 heads a low one. That closes the loop of the diagram at the top of the section, from
# the weights alone: a layer-0 head that attends to the previous position (its positional QK circuit), whose
# output the induction heads' keys read (composition scores, decomposed scores) so that a query for `A` finds
# the key after an earlier `A` (the K-composition circuit), and induction heads whose OV circuit copies
# (top-1 accuracy of the full OV circuit).

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
# ### Exercise: the SAE's encoder
#
# Why it matters: everything an SAE tells you about a model comes from `encode`. A latent's activation on
# a token is the evidence that "this feature is present here"; get the encoder subtly wrong and every
# dashboard you build later shows the wrong tokens.
#
# The encoder reads the input *relative to `b_dec`*. Think of `b_dec` as the average point the SAE
# reconstructs around: the decoder adds it back, so the encoder should take it away first, and the
# latents then only describe how this input differs from that centre. A small worked example with
# `d_in = 2`, `d_sae = 3`: if `b_dec = (1, 1)` and an input is `x = (1, 1)` (exactly the centre),
# `x - b_dec = 0` and every latent's pre-activation is just its `b_enc`; with `b_enc <= 0` nothing fires,
# and `decode` returns `b_dec`, a perfect reconstruction at no L1 cost. Forget the subtraction and the
# same input pushes `(1, 1) @ W_enc` into every latent.
#
# The ReLU makes activations non-negative, so "how much of this feature" is a magnitude and 0 means
# absent. `decode` is given (`acts @ W_dec + b_dec`); `forward` is given and calls `sae_loss`, the next
# exercise. Write `encode`. The check sets random weights and biases (non-zero `b_dec` and `b_enc`) and
# compares with its own computation, naming a missing ReLU or a missing `- b_dec`.

# %% exercise curriculum.solutions.chapter1.sae:SAE difficulty=1 importance=5 minutes=8
sae_tests.check_sae(SAE)

# %% hint
# The encoder centres the input on the decoder bias before projecting: `(x - b_dec) W_enc + b_enc`,
# then a ReLU so the latents are non-negative.

# %% hint
# `W_enc` is `[d_in, d_sae]`, so `(x - self.b_dec) @ self.W_enc` is `[batch, d_sae]`; add `self.b_enc`
# and wrap the result in `F.relu`. (`einops.einsum(..., "batch d_in, d_in d_sae -> batch d_sae")` spells
# out the same product with its shapes.)

# %% [markdown]
# ### Exercise: the SAE loss
#
# Why it matters: the loss is the whole definition of what the SAE is for. Its two terms pull in opposite
# directions: the reconstruction term wants every latent used freely, the L1 term wants as few and as
# small activations as possible. `l1_coeff` sets the exchange rate between them, and that rate only means
# something if each term has the reduction you think it has.
#
# - `recon_loss`: the squared error of each input, **averaged over `d_in`**, then averaged over the batch.
#   Averaging over `d_in` makes the number independent of the model's width: an error of 0.1 per
#   coordinate gives `recon_loss = 0.01` whether `d_in` is 64 or 768.
# - `l1_loss`: each input's `|acts|` **summed over the latents**, then averaged over the batch. Summing is
#   the point: the penalty must grow with every extra latent that fires. With `d_sae = 3` and activations
#   `(0, 2, 0)` vs `(1, 1, 0)` the sums are equal (2), but `(0.5, 0.5, 1)` costs 2 as well: L1 prices total
#   activation, and only a sum makes that price the same however many latents the SAE has. A mean over
#   latents would divide the penalty by `d_sae` and quietly weaken your `l1_coeff` as you widen the SAE.
# - `loss = recon_loss + l1_coeff * l1_loss`.
#
# Write `sae_loss(x, acts, x_hat, l1_coeff)`, returning `SAEOutput(loss, recon_loss, l1_loss, x_hat, acts)`
# with scalar (0-dimensional) losses. The check compares each term with `F.mse_loss` and a plain sum, on
# inputs whose dimensions have different scales, and names the term that differs.

# %% exercise curriculum.solutions.chapter1.sae:sae_loss difficulty=2 importance=5 minutes=10
sae_tests.check_sae_loss(sae_loss)

# %% hint
# Two different reductions: the reconstruction term is a *mean* over `d_in`, the L1 term a *sum* over
# `d_sae`; each is then averaged over the batch. The check names the term that differs.

# %% hint
# `(x_hat - x).pow(2).mean(-1)` is one number per input; `.mean()` of that is the scalar. For L1,
# `acts.abs().sum(-1).mean()`. If the check says a term is not a scalar, you stopped one reduction short.

# %% [markdown]
# ### Exercise: L0, the sparsity you watch
#
# Why it matters: the L1 penalty is what you optimise, but it is not what you care about. L1 can fall
# because activations shrink while just as many latents fire. L0, the *number* of latents active per
# input, is the quantity interpretability cares about: a token explained by 5 latents can be read; one
# explained by 300 cannot. Typical residual-stream SAEs on real models aim for an L0 of tens.
#
# Worked example: for two inputs with activations `[[0, 3, 0, 1], [0.2, 0, 0, 0]]`, the first has 2
# latents firing and the second 1, so L0 = 1.5. Multiply every activation by 10 and L0 stays 1.5, while
# L1 grows tenfold: L0 counts, it does not weigh.
#
# Write `l0_norm(acts)`, returning a Python float. The check uses activations where a quarter of the
# latents never fire, and rescales them to make sure you count rather than add.

# %% exercise curriculum.solutions.chapter1.sae:l0_norm difficulty=1 importance=4 minutes=5
sae_tests.check_l0_norm(l0_norm)

# %% hint
# A latent is firing when its activation is `> 0`. Count those per input, then average over the batch.

# %% hint
# `(acts > 0)` is a boolean tensor; `.float().sum(-1)` counts per input and `.mean().item()` averages
# over the batch. A result below 1 on the check's data means you averaged over the latents too.

# %% [markdown]
# ### Exercise: fraction of variance unexplained
#
# Why it matters: `recon_loss` has units (squared activation), so "0.02" says nothing until you know how
# spread out the activations are. The fraction of variance unexplained (FVU) divides the residual sum of
# squares by the total sum of squares around the mean:
#
# $$\mathrm{FVU} = \frac{\sum_{b,i} (x_{bi} - \hat x_{bi})^2}{\sum_{b,i} (x_{bi} - \bar x_i)^2}, \qquad \bar x_i = \frac{1}{B} \sum_b x_{bi}.$$
#
# It reads as a percentage: 0 is a perfect reconstruction, 1 is no better than always predicting the
# mean activation, which is exactly what an SAE with every latent dead does (it outputs `b_dec`). Note
# the mean is per dimension, over the batch: residual-stream activations often have a large constant
# offset in a few dimensions, and centring on the mean of *all* entries would count that offset as
# "variance" the SAE gets credit for explaining. (FVU is `1 - R²` with the variance-weighted average
# over dimensions, which is what the check compares against with scikit-learn.)
#
# Write `fraction_variance_unexplained(x, x_hat)`, returning a Python float.

# %% exercise curriculum.solutions.chapter1.sae:fraction_variance_unexplained difficulty=2 importance=4 minutes=8
sae_tests.check_fraction_variance_unexplained(fraction_variance_unexplained)

# %% hint
# A ratio of two sums of squares over the whole batch: the residual `x - x_hat` on top, `x` minus its
# per-dimension batch mean below.

# %% hint
# The mean is `x.mean(0, keepdim=True)`: subtracting `x.mean()` (all entries) is the mistake the check
# names. Guard the denominator with `.clamp_min(1e-12)` and return `.item()`.

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
# - Run the same analyses on the online model (8 heads per layer) and find its induction heads; then
#   repeat the decomposed attention scores on GPT-2 small's heads 5.5 and 6.9, where the key side reads a
#   previous-token head of an *earlier* layer, not necessarily layer 0.
# - Q-composition and V-composition: adapt `k_composition_scores` to the other two reading sides and
#   compare each with your random baseline.
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
# - [interpreting GPT: the logit lens](https://www.lesswrong.com/posts/AcKRB8wDpdaN6v6ru/interpreting-gpt-the-logit-lens)
#   (nostalgebraist, 2020): the original logit-lens post, with GPT-2 examples of predictions that form
#   gradually over the layers.
# - [Eliciting Latent Predictions from Transformers with the Tuned Lens](https://arxiv.org/abs/2303.08112)
#   (Belrose et al., 2023): why the plain logit lens is unreliable in early layers, and a learned affine
#   correction per layer that fixes much of it.
# - [Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small](https://arxiv.org/abs/2211.00593)
#   (Wang et al., 2022): a whole circuit in GPT-2 small, with its induction and duplicate-token heads, found
#   with the patching and attribution tools of part 4.
# - [How to use and interpret activation patching](https://arxiv.org/abs/2404.15255) (Heimersheim and
#   Nanda, 2024): clean and corrupted prompts, noising versus denoising, and how the choice of metric
#   changes what a patching experiment tells you.
# - [Sparse Autoencoders Find Highly Interpretable Features in Language Models](https://arxiv.org/abs/2309.08600)
#   (Cunningham et al., 2023): sparse autoencoders on a language model's residual stream, and how
#   interpretable their features are compared with neurons.
# - [Towards Monosemanticity: Decomposing Language Models With Dictionary Learning](https://transformer-circuits.pub/2023/monosemantic-features/index.html)
#   (Bricken et al., 2023): a careful study of one SAE on a one-layer transformer, including dead
#   latents and resampling them, and how to judge whether a feature is real.
