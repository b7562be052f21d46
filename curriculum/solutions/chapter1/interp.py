"""Section 1.3: mechanistic interpretability of a 2-layer attention-only transformer with TransformerLens 4.

Every function takes a `TransformerBridge` (TransformerLens 4's wrapper around a torch model; see
curriculum/utils/interp_models.py) in compatibility mode, so hook names and shapes are HookedTransformer's:
`blocks.{l}.attn.hook_pattern` is [batch, head, query_pos, key_pos], `blocks.{l}.attn.hook_z` is
[batch, pos, head, d_head], weights are `model.W_Q[l]` [head, d_model, d_head] and so on.

Order of the notebook: cache and hooks -> attention-head detectors -> induction on repeated
random tokens (from a cache, then from hooks) -> ablations, direct logit attribution, the logit lens
and activation patching -> FactoredMatrix norms and SVD, QK/OV circuits, composition scores against a
random baseline -> decomposed attention scores and the K-composition circuit -> features with a
sparse autoencoder (curriculum/solutions/chapter1/sae.py).
"""

from __future__ import annotations

from typing import Callable

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix
from tqdm.auto import tqdm

# ---------------------------------------------------------------------------------------------
# 1. The cache: recompute an attention pattern from the cached queries and keys
# ---------------------------------------------------------------------------------------------


def attention_pattern_from_qk(
    q: Float[Tensor, "batch q_pos head d_head"], k: Float[Tensor, "batch k_pos head d_head"]
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """The attention pattern a head computes from its queries and keys (causal, scaled by sqrt(d_head))."""
    # EXERCISE: scores = q.k / sqrt(d_head), mask keys after the query with -inf, softmax over keys
    scores = einops.einsum(q, k, "batch q_pos head d, batch k_pos head d -> batch head q_pos k_pos")
    scores = scores / q.shape[-1] ** 0.5
    n_q, n_k = q.shape[1], k.shape[1]
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=q.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# 2. Which heads do what: detection patterns and a score for each head
# ---------------------------------------------------------------------------------------------


def current_token_detection(tokens: Int[Tensor, "seq"]) -> Float[Tensor, "seq seq"]:
    """1 where a query attends to itself."""
    return torch.eye(len(tokens))


def previous_token_detection(tokens: Int[Tensor, "seq"]) -> Float[Tensor, "seq seq"]:
    """1 where query position i looks at key position i - 1."""
    # EXERCISE: ones on the diagonal just below the main one
    return torch.diag(torch.ones(len(tokens) - 1), diagonal=-1)
    # END EXERCISE


def duplicate_token_detection(tokens: Int[Tensor, "seq"]) -> Float[Tensor, "seq seq"]:
    """1 where an earlier key position holds the same token as the query (never the query itself)."""
    # EXERCISE: same token, key strictly before the query
    same = tokens[:, None] == tokens[None, :]
    return torch.tril(same, diagonal=-1).float()
    # END EXERCISE


def induction_detection(tokens: Int[Tensor, "seq"]) -> Float[Tensor, "seq seq"]:
    """1 where the key is the token AFTER an earlier occurrence of the query's token.

    Query i holds token t; if key j - 1 < i also holds t, an induction head attends to j (and then
    predicts tokens[j]). Keys must be before the query (j <= i), and key 0 never qualifies.
    """
    # EXERCISE: shift the duplicate-token pattern one key to the right, keep it causal
    dup = duplicate_token_detection(tokens)
    shifted = torch.zeros_like(dup)
    shifted[:, 1:] = dup[:, :-1]
    return torch.tril(shifted)
    # END EXERCISE


def head_detection_scores(
    patterns: Float[Tensor, "layer head seq seq"], detection: Float[Tensor, "seq seq"]
) -> Float[Tensor, "layer head"]:
    """The share of each head's attention that falls where `detection` is 1 (TransformerLens's "mul" score)."""
    # EXERCISE: sum of pattern * detection over (query, key), divided by the pattern's total
    hit = einops.einsum(patterns, detection, "layer head q k, q k -> layer head")
    return hit / patterns.sum(dim=(-2, -1))
    # END EXERCISE


def stacked_patterns(cache, n_layers: int, batch_index: int = 0) -> Float[Tensor, "layer head seq seq"]:
    """All layers' attention patterns for one prompt of a cache, stacked."""
    return torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][batch_index] for l in range(n_layers)])


# ---------------------------------------------------------------------------------------------
# 3. Induction on repeated random tokens
# ---------------------------------------------------------------------------------------------


def generate_repeated_tokens(
    batch: int, half_len: int, d_vocab: int, bos: int, generator: torch.Generator
) -> Int[Tensor, "batch 1+2*half_len"]:
    """[BOS, r_1..r_n, r_1..r_n] with r_i uniform over the vocabulary (never BOS, id 0)."""
    # EXERCISE: sample half_len random tokens per row (ids 1..d_vocab-1), prepend BOS, repeat them once
    r = torch.randint(1, d_vocab, (batch, half_len), generator=generator)
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1)
    # END EXERCISE


def per_token_loss(logits: Float[Tensor, "batch seq d_vocab"], tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq-1"]:
    """Cross-entropy of predicting tokens[:, i+1] from position i."""
    # EXERCISE: log_softmax, then pick out the log-prob of each NEXT token; negate
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]
    # END EXERCISE


def induction_scores(patterns: Float[Tensor, "batch head seq seq"], half_len: int) -> Float[Tensor, "head"]:
    """Mean attention from each second-half query to the key right after its token's first occurrence.

    With tokens [BOS, r_1..r_n, r_1..r_n], query n + i holds r_i, first seen at position i, so an
    induction head attends to key i + 1: the diagonal at offset -(n - 1). Averaged over the n queries
    of the second copy (n + 1 .. 2n) and over the batch; one score per head.
    """
    # EXERCISE: take the diagonal at offset -(half_len - 1), keep the second-copy queries, average
    stripe = patterns.diagonal(offset=-(half_len - 1), dim1=-2, dim2=-1)  # [batch head n+2], query n-1+j
    return stripe[..., 2:].mean(dim=(0, -1))  # j = 0, 1 are queries n-1 and n: still the first copy
    # END EXERCISE


def induction_scores_with_hooks(model, tokens: Int[Tensor, "batch seq"], half_len: int) -> Float[Tensor, "layer head"]:
    """induction_scores for every layer from ONE forward pass, without caching: a hook on every
    `hook_pattern` scores the pattern as it flows past and stores it in its layer's row."""
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    # EXERCISE: a hook that writes induction_scores(pattern, half_len) into out[hook.layer()]; run once with it on every hook_pattern
    def score(pattern: Float[Tensor, "batch head seq seq"], hook):
        out[hook.layer()] = induction_scores(pattern, half_len).detach().cpu()
        return pattern

    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("attn.hook_pattern"), score)])
    # END EXERCISE
    return out


# ---------------------------------------------------------------------------------------------
# 4. Hooks: ablations, direct logit attribution, activation patching
# ---------------------------------------------------------------------------------------------


def head_ablation_loss_increase(model, tokens: Int[Tensor, "batch seq"], mean: bool = False) -> Float[Tensor, "layer head"]:
    """How much the average loss rises when one head's output (hook_z) is removed.

    mean=False: zero-ablate (z of that head = 0). mean=True: replace z of that head by its mean over
    batch and positions on `tokens`, which keeps the constant part of what the head writes.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    with torch.no_grad():
        clean_loss = per_token_loss(model(tokens), tokens).mean()
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_z"))
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        for head in range(n_heads):
            # EXERCISE: write a hook on blocks.{layer}.attn.hook_z that ablates `head`, run with it, store the loss increase
            mean_z = cache[f"blocks.{layer}.attn.hook_z"][:, :, head].mean(dim=(0, 1))

            def ablate(z: Float[Tensor, "batch seq head d_head"], hook, head=head, mean_z=mean_z):
                z[:, :, head] = mean_z if mean else 0.0
                return z

            with torch.no_grad():
                logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate)])
            out[layer, head] = per_token_loss(logits, tokens).mean() - clean_loss
            # END EXERCISE
    return out


def direct_logit_attribution(model, cache, tokens: Int[Tensor, "seq"]) -> Float[Tensor, "component seq-1"]:
    """How much each component writes, directly, to the logit of the correct next token.

    Components: the token embedding, the positional embedding, then each head of each layer
    (layer-major: L0H0, L0H1, ...). A head's output at a position is z @ W_O (per head, without b_O).
    Each component is divided by the final LayerNorm's scale (from `ln_final.hook_scale`) and
    projected onto W_U's column of the next token; with LayerNorm folded and the unembed centred,
    the components plus the attention output biases sum to the logit minus b_U and its mean.
    """
    # EXERCISE: stack the components at positions :-1, divide by ln_final's scale, dot with W_U[:, next tokens]
    embed = cache["hook_embed"][0, :-1]
    pos = cache["hook_pos_embed"][0, :-1]
    heads = [
        einops.einsum(cache[f"blocks.{l}.attn.hook_z"][0, :-1], model.W_O[l], "seq head d_head, head d_head d_model -> head seq d_model")
        for l in range(model.cfg.n_layers)
    ]
    stack = torch.cat([embed[None], pos[None], *heads])  # [component seq-1 d_model]
    stack = stack / cache["ln_final.hook_scale"][0, :-1]
    directions = model.W_U[:, tokens[1:]]  # [d_model seq-1]
    return einops.einsum(stack, directions, "component seq d_model, d_model seq -> component seq")
    # END EXERCISE


def logit_lens(model, cache, tokens: Int[Tensor, "seq"], batch_index: int = 0) -> Float[Tensor, "layer_plus_1 seq-1"]:
    """Log-probability of the correct next token when each stage of the residual stream is decoded as if
    it were the last: blocks.{l}.hook_resid_pre for every layer, then the final blocks.{L-1}.hook_resid_post.

    Decoding = the final LayerNorm recomputed on that residual (centre, divide by sqrt(mean square + eps);
    its weights are folded into W_U), then W_U and b_U, then log_softmax.
    """
    # EXERCISE: for each residual stage, recompute the LayerNorm, unembed, log_softmax, pick each next token
    names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)]
    names.append(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post")
    resid = torch.stack([cache[n][batch_index, :-1] for n in names])  # [stage seq-1 d_model]
    centred = resid - resid.mean(-1, keepdim=True)
    normed = centred / (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
    log_probs = (normed @ model.W_U + model.b_U).log_softmax(-1)
    return log_probs.gather(-1, tokens[1:].expand(len(names), -1)[..., None])[..., 0]
    # END EXERCISE


def patch_residual_by_position(
    model, corrupted_tokens: Int[Tensor, "batch seq"], clean_cache, metric: Callable[[Tensor], Tensor]
) -> Float[Tensor, "layer seq"]:
    """metric(logits) of the corrupted run with blocks.{l}.hook_resid_pre at one position replaced by the clean value."""
    n_layers, seq = model.cfg.n_layers, corrupted_tokens.shape[1]
    out = torch.zeros(n_layers, seq)
    for layer in tqdm(range(n_layers), desc="patching resid_pre", leave=False):
        for pos in range(seq):
            # EXERCISE: hook blocks.{layer}.hook_resid_pre, copy the clean activation at `pos`, record the metric
            name = f"blocks.{layer}.hook_resid_pre"

            def patch(resid: Float[Tensor, "batch seq d_model"], hook, pos=pos, name=name):
                resid[:, pos] = clean_cache[name][:, pos]
                return resid

            with torch.no_grad():
                out[layer, pos] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, patch)]))
            # END EXERCISE
    return out


def patch_head_output(
    model, corrupted_tokens: Int[Tensor, "batch seq"], clean_cache, metric: Callable[[Tensor], Tensor], by_position: bool = False
) -> Float[Tensor, "layer head"] | Float[Tensor, "layer seq head"]:
    """metric(logits) with one head's hook_z patched from the clean run: at every position, or
    (by_position=True) at one position at a time, giving [layer, seq, head]."""
    n_layers, n_heads, seq = model.cfg.n_layers, model.cfg.n_heads, corrupted_tokens.shape[1]
    positions: list = list(range(seq)) if by_position else [slice(None)]
    out = torch.zeros(n_layers, len(positions), n_heads)
    for layer in tqdm(range(n_layers), desc="patching heads", leave=False):
        name = f"blocks.{layer}.attn.hook_z"
        for i, pos in enumerate(positions):
            for head in range(n_heads):
                # EXERCISE: hook hook_z, copy the clean z of `head` at `pos`, record the metric
                def patch(z: Float[Tensor, "batch seq head d_head"], hook, pos=pos, head=head):
                    z[:, pos, head] = clean_cache[name][:, pos, head]
                    return z

                with torch.no_grad():
                    out[layer, i, head] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, patch)]))
                # END EXERCISE
    return out if by_position else out[:, 0]


# ---------------------------------------------------------------------------------------------
# 5. Circuits: FactoredMatrix from the inside, QK and OV circuits, composition scores
# ---------------------------------------------------------------------------------------------


def factored_frobenius_norm(A: Float[Tensor, "m r"], B: Float[Tensor, "r n"]) -> Float[Tensor, ""]:
    """||A B||_F without forming the m x n product: only r x r matrices are ever built."""
    # EXERCISE: ||AB||_F^2 = trace(B^T A^T A B) = sum of (A^T A) * (B B^T) elementwise; take the square root
    return ((A.T @ A) * (B @ B.T)).sum().sqrt()
    # END EXERCISE


def factored_svd(
    A: Float[Tensor, "m r"], B: Float[Tensor, "r n"]
) -> tuple[Float[Tensor, "m r"], Float[Tensor, "r"], Float[Tensor, "n r"]]:
    """The thin SVD of A B as (U, S, V) with U diag(S) V^T == A B, computed from r x r pieces.

    Write A = Q_A R_A and B^T = Q_B R_B (reduced QR). Then A B = Q_A (R_A R_B^T) Q_B^T, so the SVD of the
    small r x r middle, U_m S V_m^T, gives A B = (Q_A U_m) S (Q_B V_m)^T: orthonormal columns both sides.
    """
    # EXERCISE: QR of A and of B^T, SVD of the r x r middle, rotate its singular vectors back out
    Q_A, R_A = torch.linalg.qr(A)
    Q_B, R_B = torch.linalg.qr(B.T)
    U_m, S, Vh_m = torch.linalg.svd(R_A @ R_B.T)
    return Q_A @ U_m, S, Q_B @ Vh_m.T
    # END EXERCISE


def full_ov_circuit(model, layer: int, head: int) -> FactoredMatrix:
    """W_E W_V W_O W_U of one head as a FactoredMatrix [d_vocab, d_vocab]: the logits each source
    token pushes up when the head attends to it (a copying head has a big diagonal)."""
    # EXERCISE: chain W_E, W_V[layer, head], W_O[layer, head], W_U as a FactoredMatrix (never the full product)
    return FactoredMatrix(model.W_E @ model.W_V[layer, head], model.W_O[layer, head] @ model.W_U)
    # END EXERCISE


def top_1_accuracy(matrix: FactoredMatrix, batch_size: int = 1024) -> float:
    """Share of rows whose largest entry is on the diagonal (row i's argmax is i), computed in row batches."""
    # EXERCISE: materialise batch_size rows at a time (matrix[rows].AB), compare argmax with the row index
    n = matrix.shape[0]
    correct = 0
    for start in range(0, n, batch_size):
        rows = torch.arange(start, min(start + batch_size, n))
        correct += int((matrix[rows].AB.argmax(dim=-1) == rows).sum())
    return correct / n
    # END EXERCISE


def positional_qk_circuit(model, layer: int, head: int, n_pos: int) -> Float[Tensor, "q_pos k_pos"]:
    """Layer-0 attention from positional embeddings alone: W_pos W_Q W_K^T W_pos^T / sqrt(d_head) for the
    first n_pos positions, masked causally and softmaxed over keys. Row = query position, column = key."""
    # EXERCISE: the [n_pos, n_pos] score table from W_pos[:n_pos] through W_Q and W_K of the head, scaled, masked, softmaxed
    W_pos = model.W_pos[:n_pos]
    qk = FactoredMatrix(W_pos @ model.W_Q[layer, head], model.W_K[layer, head].T @ W_pos.T).AB
    future = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool, device=qk.device), diagonal=1)
    return (qk / model.cfg.d_head**0.5).masked_fill(future, float("-inf")).softmax(-1)
    # END EXERCISE


def composition_score(W_A: Float[Tensor, "a b"], W_B: Float[Tensor, "b c"]) -> float:
    """||W_A W_B||_F / (||W_A||_F ||W_B||_F): how much of what W_A writes W_B reads."""
    # EXERCISE: Frobenius norm of the product over the product of the norms
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()
    # END EXERCISE


def k_composition_scores(model) -> Float[Tensor, "head0 head1"]:
    """K-composition of each layer-0 head (its OV, W_V W_O) into each layer-1 head's keys (W_K W_Q^T).

    Layer 1's QK matrix is W_Q W_K^T (query side on the left); keys read the residual through W_K,
    so the right-hand factor for K-composition is its transpose, W_K W_Q^T.
    """
    n = model.cfg.n_heads
    out = torch.zeros(n, n)
    # EXERCISE: for each pair, composition_score(W_OV of layer-0 head, W_QK^T of layer-1 head)
    for h0 in range(n):
        W_OV = (model.W_V[0, h0] @ model.W_O[0, h0]).detach()
        for h1 in range(n):
            W_QK_T = (model.W_K[1, h1] @ model.W_Q[1, h1].T).detach()
            out[h0, h1] = composition_score(W_OV, W_QK_T)
    # END EXERCISE
    return out


def random_composition_baseline(d_model: int, d_head: int, n_samples: int, generator: torch.Generator) -> Float[Tensor, "n_samples"]:
    """Composition scores of n_samples pairs of independent random rank-d_head matrices, d_model x d_model each.

    Each matrix is the product of a Gaussian [d_model, d_head] and a Gaussian [d_head, d_model], the shape
    of a real head's W_V W_O or W_K W_Q^T; the score does not depend on the Gaussians' scale.
    """
    # EXERCISE: for each sample, draw two random low-rank d_model x d_model matrices from `generator` and score the pair
    scores = torch.zeros(n_samples)
    for i in range(n_samples):
        W_A = torch.randn(d_model, d_head, generator=generator) @ torch.randn(d_head, d_model, generator=generator)
        W_B = torch.randn(d_model, d_head, generator=generator) @ torch.randn(d_head, d_model, generator=generator)
        scores[i] = composition_score(W_A, W_B)
    return scores
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# 5b. Decomposed attention: what the induction head's queries and keys read
# ---------------------------------------------------------------------------------------------


def decompose_qk_input(model, cache, batch_index: int = 0) -> Float[Tensor, "component seq d_model"]:
    """What enters layer 1's attention, split by source: token embedding, positional embedding, then each
    layer-0 head's output (z @ W_O, without b_O), each divided by layer 1's LayerNorm scale
    (`blocks.1.ln1.hook_scale`) so that, with b_O[0] / scale added, they sum to `blocks.1.ln1.hook_normalized`."""
    # EXERCISE: stack hook_embed, hook_pos_embed and each layer-0 head's z @ W_O; divide by blocks.1.ln1.hook_scale
    embed = cache["hook_embed"][batch_index]
    pos = cache["hook_pos_embed"][batch_index]
    heads = einops.einsum(cache["blocks.0.attn.hook_z"][batch_index], model.W_O[0], "seq head d_head, head d_head d_model -> head seq d_model")
    stack = torch.cat([embed[None], pos[None], heads])
    return stack / cache["blocks.1.ln1.hook_scale"][batch_index]
    # END EXERCISE


def decompose_qk(
    model, decomposed: Float[Tensor, "component seq d_model"], head: int
) -> tuple[Float[Tensor, "component seq d_head"], Float[Tensor, "component seq d_head"]]:
    """Each component's contribution to layer-1 head `head`'s queries and keys (no biases)."""
    # EXERCISE: project every component with W_Q[1, head] and with W_K[1, head]
    q = einops.einsum(decomposed, model.W_Q[1, head], "component seq d_model, d_model d_head -> component seq d_head")
    k = einops.einsum(decomposed, model.W_K[1, head], "component seq d_model, d_model d_head -> component seq d_head")
    return q, k
    # END EXERCISE


def decompose_attn_scores(
    q_parts: Float[Tensor, "q_comp q_pos d_head"], k_parts: Float[Tensor, "k_comp k_pos d_head"]
) -> Float[Tensor, "q_comp k_comp q_pos k_pos"]:
    """The attention score (q . k / sqrt(d_head), unmasked) split over every (query component, key component) pair."""
    # EXERCISE: one einsum over d_head for every pair of components and positions, scaled by sqrt(d_head)
    scores = einops.einsum(q_parts, k_parts, "q_comp q_pos d, k_comp k_pos d -> q_comp k_comp q_pos k_pos")
    return scores / q_parts.shape[-1] ** 0.5
    # END EXERCISE


def k_composition_circuit(model, prev_head: int, ind_head: int) -> FactoredMatrix:
    """The token-to-token QK circuit of layer-1 head `ind_head` when its keys read layer-0 head `prev_head`:
    W_E W_Q^1 (W_E W_V^0 W_O^0 W_K^1)^T, [d_vocab (query token), d_vocab (token the previous-token head moved)]."""
    # EXERCISE: query side W_E @ W_Q[1, ind_head]; key side W_E @ W_V[0, prev_head] @ W_O[0, prev_head] @ W_K[1, ind_head], transposed
    query_side = model.W_E @ model.W_Q[1, ind_head]
    key_side = model.W_E @ model.W_V[0, prev_head] @ model.W_O[0, prev_head] @ model.W_K[1, ind_head]
    return FactoredMatrix(query_side, key_side.T)
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# 6. Features: residual-stream activations for an SAE, and what a latent fires on
# ---------------------------------------------------------------------------------------------


def collect_activations(
    model, tokens: Int[Tensor, "batch seq"], hook_name: str, batch_size: int = 32
) -> Float[Tensor, "batch*seq d"]:
    """Activations at `hook_name` for every token of `tokens`, flattened to rows, run in batches."""
    # EXERCISE: run_with_cache with names_filter=hook_name on each batch, flatten batch and position
    chunks = []
    for start in tqdm(range(0, len(tokens), batch_size), desc=f"collecting {hook_name}", leave=False):
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=hook_name)
        chunks.append(einops.rearrange(cache[hook_name], "batch seq d -> (batch seq) d"))
    return torch.cat(chunks)
    # END EXERCISE


def top_activating_tokens(latent_acts: Float[Tensor, "batch seq"], k: int) -> list[tuple[int, int, float]]:
    """The k (batch_index, position, activation) with the largest activation of one latent, largest first."""
    # EXERCISE: topk over the flattened activations, then unravel the flat index into (batch, position)
    values, flat = latent_acts.flatten().topk(k)
    seq = latent_acts.shape[1]
    return [(int(i) // seq, int(i) % seq, float(v)) for v, i in zip(values, flat)]
    # END EXERCISE
