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

# %% exercise curriculum.solutions.chapter1.interp:attention_pattern_from_qk
tests.check_attention_pattern_from_qk(attention_pattern_from_qk)

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

# %% exercise curriculum.solutions.chapter1.interp:previous_token_detection,duplicate_token_detection,induction_detection
tests.check_detection_patterns(previous_token_detection, duplicate_token_detection, induction_detection)

# %% exercise curriculum.solutions.chapter1.interp:head_detection_scores
tests.check_head_detection_scores(head_detection_scores)

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

# %% exercise curriculum.solutions.chapter1.interp:generate_repeated_tokens
tests.check_generate_repeated_tokens(generate_repeated_tokens)

# %% exercise curriculum.solutions.chapter1.interp:per_token_loss
tests.check_per_token_loss(per_token_loss)

# %%
HALF = 24
rep_tokens = generate_repeated_tokens(utils.full_or_quick(16, 4), HALF, cfg.d_vocab, model.tokenizer.bos_token_id,
                                      torch.Generator().manual_seed(0))
rep_logits, rep_cache = model.run_with_cache(rep_tokens)
rep_loss = per_token_loss(rep_logits, rep_tokens)
print(f"first copy: loss {rep_loss[:, :HALF].mean():.2f} (ln d_vocab = {torch.log(torch.tensor(float(cfg.d_vocab))):.2f}); "
      f"second copy: loss {rep_loss[:, HALF:].mean():.2f}")
line(rep_loss.mean(0).detach(), title="per-token loss on repeated random tokens", xlabel="position", ylabel="loss")

# %% exercise curriculum.solutions.chapter1.interp:induction_scores
tests.check_induction_scores(induction_scores)

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

# %% exercise curriculum.solutions.chapter1.interp:head_ablation_loss_increase
tests.check_head_ablation(head_ablation_loss_increase)

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

# %% exercise curriculum.solutions.chapter1.interp:direct_logit_attribution
tests.check_direct_logit_attribution(direct_logit_attribution)

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

# %% exercise curriculum.solutions.chapter1.interp:patch_residual_by_position
tests.check_patch_residual_by_position(patch_residual_by_position)

# %% exercise curriculum.solutions.chapter1.interp:patch_head_output
tests.check_patch_head_output(patch_head_output)

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

# %% exercise curriculum.solutions.chapter1.interp:full_ov_circuit
tests.check_full_ov_circuit(full_ov_circuit)

# %% exercise curriculum.solutions.chapter1.interp:top_1_accuracy
tests.check_top_1_accuracy(top_1_accuracy)

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

# %% exercise curriculum.solutions.chapter1.interp:composition_score,k_composition_scores
tests.check_composition_scores(composition_score, k_composition_scores)

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

# %% exercise curriculum.solutions.chapter1.sae:SAE
sae_tests.check_sae(SAE)

# %% exercise curriculum.solutions.chapter1.sae:l0_norm,fraction_variance_unexplained
sae_tests.check_metrics(l0_norm, fraction_variance_unexplained)

# %% exercise curriculum.solutions.chapter1.sae:resample_dead_latents
sae_tests.check_resample_dead_latents(resample_dead_latents)

# %% exercise curriculum.solutions.chapter1.interp:collect_activations
tests.check_collect_activations(collect_activations)

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

# %% exercise curriculum.solutions.chapter1.interp:top_activating_tokens
tests.check_top_activating_tokens(top_activating_tokens)

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
