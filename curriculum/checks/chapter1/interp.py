"""Checks for section 1.3 (curriculum/solutions/chapter1/interp.py).

All checks run on the shipped 2-layer attention-only model (curriculum.utils.interp_models), so their numbers
never depend on the network. Independent references: the model's own cached activations,
`torch.nn.functional.cross_entropy`, TransformerLens's `head_detector`, `patching` and
`all_composition_scores`/`utilities.composition_scores`, and hand-written index loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformer_lens import FactoredMatrix, patching
from transformer_lens import head_detector as hd
from transformer_lens.utilities import composition_scores as tl_composition_scores

from curriculum.checking import assert_close, assert_equal, assert_scalar_close, assert_shape, check, fail
from curriculum.utils.interp_models import load_shipped_induction_model

HALF = 12  # half length of the repeated random sequences used by the checks
TEXT = "The cat sat on the mat. The cat sat on the mat."


def _model():
    return load_shipped_induction_model()


def _repeated(batch: int = 4, half: int = HALF, seed: int = 0) -> torch.Tensor:
    model = _model()
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(1, model.cfg.d_vocab, (batch, half), generator=gen)
    return torch.cat([torch.full((batch, 1), model.tokenizer.bos_token_id), r, r], dim=1)


def _run(tokens):
    with torch.no_grad():
        return _model().run_with_cache(tokens)


# --- 1. cache -------------------------------------------------------------------------------


@check
def check_attention_pattern_from_qk(attention_pattern_from_qk) -> None:
    model = _model()
    _, cache = _run(_repeated())
    for layer in range(model.cfg.n_layers):
        q, k = cache[f"blocks.{layer}.attn.hook_q"], cache[f"blocks.{layer}.attn.hook_k"]
        got = attention_pattern_from_qk(q, k)
        assert_close(got, cache[f"blocks.{layer}.attn.hook_pattern"], f"pattern of layer {layer}", atol=1e-5,
                     hint="scores = q.k / sqrt(d_head) as [batch, head, q_pos, k_pos]; mask keys AFTER the query "
                     "(triu, diagonal=1) with -inf; softmax over the key axis (last)")


# --- 2. head detectors ----------------------------------------------------------------------


DETECTION_TOKENS = torch.tensor([0, 5, 6, 7, 5, 6, 9, 5, 6])  # repeats, so duplicate and induction patterns are not empty


def _check_detection(fn, ref, what: str, hint: str) -> None:
    got = fn(DETECTION_TOKENS)
    got = got.float() if isinstance(got, torch.Tensor) else got  # a bool mask is fine too
    want = ref(DETECTION_TOKENS[None]).float()
    assert_shape(got, tuple(want.shape), f"{what}(tokens)", hint="a [seq, seq] matrix: row = query position, column = key position")
    if isinstance(got, torch.Tensor) and torch.triu(got, diagonal=1).any():
        fail(f"{what} has 1s above the diagonal, on keys AFTER the query: a head can only attend to keys j <= i "
             "(row i = query, column j = key); keep the lower triangle")
    assert_close(got, want, f"{what}(tokens)", hint=f"{hint} (compared with transformer_lens.head_detector's pattern)")


@check
def check_previous_token_detection(previous_token_detection) -> None:
    _check_detection(previous_token_detection, hd.get_previous_token_head_detection_pattern, "previous_token_detection",
                     "query i looks at key i - 1: ones just BELOW the main diagonal")


@check
def check_duplicate_token_detection(duplicate_token_detection) -> None:
    _check_detection(duplicate_token_detection, hd.get_duplicate_token_head_detection_pattern, "duplicate_token_detection",
                     "same token at key j as at query i, with j strictly before i (the query itself does not count)")


@check
def check_induction_detection(induction_detection) -> None:
    _check_detection(induction_detection, hd.get_induction_head_detection_pattern, "induction_detection",
                     "key j qualifies when tokens[j - 1] equals the query's token and j - 1 < i: the duplicate pattern "
                     "moved one key to the RIGHT")


@check
def check_head_detection_scores(head_detection_scores) -> str:
    model = _model()
    tokens = model.to_tokens(TEXT)
    _, cache = _run(tokens)
    patterns = torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][0] for l in range(model.cfg.n_layers)])
    for name in ("previous_token_head", "duplicate_token_head", "induction_head"):
        detection = getattr(hd, f"get_{name}_detection_pattern")(tokens.cpu())
        want = hd.detect_head(model, TEXT, name)
        got = head_detection_scores(patterns, detection)
        assert_close(got, want.to(torch.float32), f"{name} scores", atol=1e-5,
                     hint="score = sum over (query, key) of pattern * detection, divided by the pattern's sum over (query, key)")
    return "matches transformer_lens.head_detector.detect_head"


# --- 3. induction ---------------------------------------------------------------------------


@check
def check_generate_repeated_tokens(generate_repeated_tokens) -> None:
    d_vocab, bos = 500, 0
    tokens = generate_repeated_tokens(64, 10, d_vocab, bos, torch.Generator().manual_seed(0))
    assert_shape(tokens, (64, 21), "tokens", hint="BOS plus two copies of half_len tokens")
    if tokens.is_floating_point():
        fail(f"tokens should be integer ids, got dtype {tokens.dtype}")
    assert_equal(tokens[:, 0], torch.full((64,), bos), "first column", hint="every row starts with BOS")
    assert_equal(tokens[:, 11:], tokens[:, 1:11], "second half", hint="the second half repeats the first exactly")
    body = tokens[:, 1:11]
    if body.min() < 1 or body.max() >= d_vocab:
        fail(f"random tokens should lie in [1, {d_vocab}), got min {int(body.min())} and max {int(body.max())}")
    if body.unique().numel() < 300:
        fail(f"only {body.unique().numel()} distinct tokens in 640 draws over {d_vocab - 1}: sample uniformly per position")
    again = generate_repeated_tokens(64, 10, d_vocab, bos, torch.Generator().manual_seed(0))
    assert_equal(again, tokens, "a second call with the same seed", hint="draw from the `generator` argument")


@check
def check_per_token_loss(per_token_loss) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=gen)
    tokens = torch.randint(0, 11, (3, 7), generator=gen)
    want = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    assert_close(per_token_loss(logits, tokens), want, "per_token_loss",
                 hint="position i predicts tokens[:, i + 1]: drop the last logit and the first token")


@check
def check_induction_scores(induction_scores) -> str:
    model = _model()
    tokens = _repeated()
    _, cache = _run(tokens)
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        want = torch.stack([pattern[:, :, q, q - HALF + 1] for q in range(HALF + 1, 2 * HALF + 1)], -1).mean(dim=(0, -1))
        assert_close(induction_scores(pattern, HALF), want, f"induction scores of layer {layer}", atol=1e-5,
                     hint="query n+i (second copy of r_i) should attend to key i+1; average over the second-half "
                     "queries n+1..2n and over the batch, keep the head axis")
    return "layer-1 induction scores: " + ", ".join(f"{s:.2f}" for s in induction_scores(cache["blocks.1.attn.hook_pattern"], HALF).tolist())


@check
def check_induction_scores_with_hooks(induction_scores_with_hooks) -> None:
    from curriculum.solutions.chapter1.interp import induction_scores

    model = _model()
    tokens = _repeated()
    _, cache = _run(tokens)
    want = torch.stack([induction_scores(cache[f"blocks.{l}.attn.hook_pattern"], HALF) for l in range(model.cfg.n_layers)])
    got = induction_scores_with_hooks(model, tokens, HALF)
    assert_shape(got, (model.cfg.n_layers, model.cfg.n_heads), "induction scores", hint="[layer, head]")
    for layer in range(model.cfg.n_layers):
        assert_close(got[layer], want[layer], f"induction scores of layer {layer}", atol=1e-5,
                     hint="the hook must run on EVERY layer's attn.hook_pattern (a filter function of the name) and store "
                     "into row hook.layer(); score the pattern it receives with induction_scores(pattern, half_len)")


# --- 4. hooks -------------------------------------------------------------------------------


def _loss(logits, tokens):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:])


@check
def check_head_ablation(head_ablation_loss_increase) -> None:
    model = _model()
    tokens = _repeated(batch=2)
    with torch.no_grad():
        clean = _loss(model(tokens), tokens)
        _, cache = model.run_with_cache(tokens)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    zero_ref, mean_ref = torch.zeros(n_layers, n_heads), torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        for head in range(n_heads):
            # Zero-ablating z equals zeroing the head's attention pattern (value biases are folded into b_O).
            def kill_pattern(p, hook, head=head):
                p[:, head] = 0.0
                return p

            mean_z = cache[f"blocks.{layer}.attn.hook_z"][:, :, head].mean(dim=(0, 1))

            def set_mean(z, hook, head=head, mean_z=mean_z):
                z[:, :, head] = mean_z
                return z

            with torch.no_grad():
                zero_ref[layer, head] = _loss(model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", kill_pattern)]), tokens) - clean
                mean_ref[layer, head] = _loss(model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", set_mean)]), tokens) - clean
    assert_close(head_ablation_loss_increase(model, tokens), zero_ref, "zero-ablation loss increase", atol=1e-4, rtol=1e-3,
                 hint="set z[:, :, head] = 0 for ONE head at a time and report ablated loss minus clean loss")
    assert_close(head_ablation_loss_increase(model, tokens, mean=True), mean_ref, "mean-ablation loss increase", atol=1e-4,
                 rtol=1e-3, hint="replace z[:, :, head] by its mean over batch AND positions (a d_head vector)")


@check
def check_direct_logit_attribution(direct_logit_attribution) -> str:
    model = _model()
    tokens = model.to_tokens(TEXT)
    logits, cache = _run(tokens)
    got = direct_logit_attribution(model, cache, tokens[0])
    n_comp = 2 + model.cfg.n_layers * model.cfg.n_heads
    seq = tokens.shape[1]
    assert_shape(got, (n_comp, seq - 1), "attributions", hint="components: embed, pos_embed, then every head; positions :-1")
    # Oracle 1: TransformerLens's own per-head residual stack with the final LayerNorm applied.
    heads = cache.stack_head_results(layer=-1, apply_ln=True)[:, 0, :-1]  # [head seq-1 d_model]
    want_heads = torch.einsum("hsd,ds->hs", heads, model.W_U[:, tokens[0, 1:]])
    assert_close(got[2:], want_heads, "head attributions", atol=1e-4, rtol=1e-3,
                 hint="head output = z @ W_O[layer, head]; divide by ln_final.hook_scale; dot with W_U[:, next token]")
    # Oracle 2: everything that enters the residual stream sums to the logit (up to b_U and centring).
    scale = cache["ln_final.hook_scale"][0, :-1]
    biases = sum(model.b_O[l] for l in range(model.cfg.n_layers)) / scale  # [seq-1 d_model]
    bias_part = (biases * model.W_U[:, tokens[0, 1:]].T).sum(-1)
    target = logits[0, :-1].gather(-1, tokens[0, 1:, None])[:, 0] - model.b_U[tokens[0, 1:]]
    centred = target - (logits[0, :-1] - model.b_U).mean(-1)
    assert_close(got.sum(0) + bias_part, centred, "sum of attributions + b_O terms", atol=1e-3, rtol=1e-3,
                 hint="include the embedding and positional embedding as the first two components, each scaled by ln_final's scale")
    return "matches ActivationCache.stack_head_results(apply_ln=True) @ W_U"


@check
def check_logit_lens(logit_lens) -> str:
    model = _model()
    tokens = _repeated(batch=2, half=8, seed=2)
    logits, cache = _run(tokens)
    got = logit_lens(model, cache, tokens[0])
    n_stages, seq = model.cfg.n_layers + 1, tokens.shape[1]
    assert_shape(got, (n_stages, seq - 1), "logit lens", hint="one row per residual stage (each resid_pre, then the final "
                 "resid_post), one column per position that has a next token")
    want_last = logits[0, :-1].log_softmax(-1).gather(-1, tokens[0, 1:, None])[:, 0]
    assert_close(got[-1], want_last, "last row (the final residual stream)", atol=1e-4,
                 hint="decoding the final resid_post must give the model's own log-probs: recompute the LayerNorm "
                 "(centre, divide by sqrt(mean square + eps)), then @ W_U + b_U, log_softmax, and pick tokens[i + 1] at position i")
    # Oracle: TransformerLens recomputes the final LayerNorm on every accumulated residual.
    stages = cache.accumulated_resid(apply_ln=True, incl_mid=False)[:, 0, :-1]
    want = (stages @ model.W_U + model.b_U).log_softmax(-1).gather(-1, tokens[0, 1:].expand(n_stages, -1)[..., None])[..., 0]
    assert_close(got, want, "logit lens of the earlier stages", atol=1e-4, rtol=1e-3,
                 hint="recompute the LayerNorm scale for EACH stage: reusing ln_final.hook_scale (the final residual's scale) "
                 "mis-scales the earlier ones (compared with ActivationCache.accumulated_resid(apply_ln=True))")
    return "matches ActivationCache.accumulated_resid(apply_ln=True) @ W_U"


def _patching_pair():
    """Clean: [BOS, r, r]. Corrupted: one token of the first copy changed, so the second copy's prediction of it breaks."""
    clean = _repeated(batch=1, half=8, seed=3)
    corrupted = clean.clone()
    corrupted[0, 4] = (clean[0, 4] + 7) % (_model().cfg.d_vocab - 1) + 1
    query = 8 + 3  # second copy of r_3 (position 3) predicts r_4 (position 4 in the first copy)
    right, wrong = int(clean[0, 4]), int(corrupted[0, 4])
    return clean, corrupted, lambda logits: logits[0, query, right] - logits[0, query, wrong]


@check
def check_patch_residual_by_position(patch_residual_by_position) -> None:
    model = _model()
    clean, corrupted, metric = _patching_pair()
    _, clean_cache = _run(clean)
    want = patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric)
    assert_close(patch_residual_by_position(model, corrupted, clean_cache, metric), want, "patched metric",
                 atol=1e-4, rtol=1e-3, hint="compare with transformer_lens.patching.get_act_patch_resid_pre: patch one "
                 "(layer, position) of blocks.{layer}.hook_resid_pre at a time")


@check
def check_patch_head_output(patch_head_output) -> None:
    model = _model()
    clean, corrupted, metric = _patching_pair()
    _, clean_cache = _run(clean)
    want = patching.get_act_patch_attn_head_out_all_pos(model, corrupted, clean_cache, metric)
    assert_close(patch_head_output(model, corrupted, clean_cache, metric), want, "patched metric per head",
                 atol=1e-4, rtol=1e-3, hint="compare with patching.get_act_patch_attn_head_out_all_pos: patch hook_z of one head at every position")
    want = patching.get_act_patch_attn_head_out_by_pos(model, corrupted, clean_cache, metric)
    assert_close(patch_head_output(model, corrupted, clean_cache, metric, by_position=True), want,
                 "patched metric per head and position", atol=1e-4, rtol=1e-3,
                 hint="compare with patching.get_act_patch_attn_head_out_by_pos: shape [layer, pos, head]")


# --- 5. circuits ----------------------------------------------------------------------------


@check
def check_factored_frobenius_norm(factored_frobenius_norm) -> str:
    gen = torch.Generator().manual_seed(0)
    for m, r, n in [(40, 3, 30), (7, 5, 9)]:
        A, B = torch.randn(m, r, generator=gen), torch.randn(r, n, generator=gen)
        got = factored_frobenius_norm(A, B)
        want = FactoredMatrix(A, B).norm()
        assert_scalar_close(float(got), float(want), f"norm of a {m}x{r} @ {r}x{n} product", rel=1e-4,
                            hint="||AB||_F^2 = sum((A.T @ A) * (B @ B.T)); then the square root (compared with FactoredMatrix.norm())")
    return "matches FactoredMatrix.norm()"


@check
def check_factored_svd(factored_svd) -> str:
    gen = torch.Generator().manual_seed(0)
    A, B = torch.randn(40, 4, generator=gen), torch.randn(4, 30, generator=gen)
    U, S, V = factored_svd(A, B)
    assert_shape(U, (40, 4), "U", hint="U = Q_A @ U_middle: [m, r]")
    assert_shape(S, (4,), "S", hint="r singular values")
    assert_shape(V, (30, 4), "V", hint="V = Q_B @ V_middle, [n, r]; torch.linalg.svd returns Vh, the transpose")
    ref = FactoredMatrix(A, B)
    assert_close(S, ref.S, "singular values", atol=1e-4, rtol=1e-4,
                 hint="the SVD of the r x r middle R_A @ R_B.T has the same singular values as A @ B (compared with FactoredMatrix.S)")
    assert_close(U.T @ U, torch.eye(4), "U^T U", atol=1e-4, hint="U's columns must be orthonormal: rotate the middle's U by Q_A")
    assert_close(V.T @ V, torch.eye(4), "V^T V", atol=1e-4, hint="V's columns must be orthonormal: rotate the middle's V by Q_B")
    assert_close(U @ torch.diag(S) @ V.T, A @ B, "U diag(S) V^T", atol=1e-4, rtol=1e-4,
                 hint="torch.linalg.svd returns (U, S, Vh) with Vh = V^T: transpose it before multiplying by Q_B")
    return "matches FactoredMatrix.svd()"


@check
def check_positional_qk_circuit(positional_qk_circuit) -> None:
    model = _model()
    n_pos = 12
    for head in range(model.cfg.n_heads):
        got = positional_qk_circuit(model, 0, head, n_pos)
        assert_shape(got, (n_pos, n_pos), f"positional pattern of L0H{head}", hint="[query position, key position]")
        got = got.detach()
        if torch.triu(got, diagonal=1).abs().max() > 1e-6:
            fail("attention lands on keys after the query: mask the upper triangle (diagonal=1) with -inf before the softmax")
        assert_close(got.sum(-1), torch.ones(n_pos), "row sums", atol=1e-5, hint="softmax over the KEY axis (the last)")
        W_pos = model.W_pos[:n_pos]
        scores = W_pos @ model.QK[0, head].AB @ W_pos.T / model.cfg.d_head**0.5  # oracle: TransformerLens's QK FactoredMatrix
        mask = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), diagonal=1)
        want = scores.masked_fill(mask, float("-inf")).softmax(-1).detach()
        assert_close(got, want, f"positional pattern of L0H{head}", atol=1e-5,
                     hint="queries from W_pos @ W_Q (rows), keys from W_pos @ W_K (columns), divided by sqrt(d_head) "
                     "(compared with model.QK, TransformerLens's W_Q W_K^T)")


@check
def check_full_ov_circuit(full_ov_circuit) -> None:
    model = _model()
    for layer, head in [(0, 1), (1, 2)]:
        got = full_ov_circuit(model, layer, head)
        if not isinstance(got, FactoredMatrix):
            fail(f"full_ov_circuit should return a transformer_lens.FactoredMatrix, got {type(got).__name__}")
        assert_equal(tuple(got.shape), (model.cfg.d_vocab, model.cfg.d_vocab), "full OV circuit shape")
        rows = torch.arange(0, model.cfg.d_vocab, 97)
        want = model.W_E[rows] @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U
        assert_close(got[rows].AB, want, f"rows of the full OV circuit of L{layer}H{head}", atol=1e-4, rtol=1e-3,
                     hint="W_E @ W_V[layer, head] @ W_O[layer, head] @ W_U, in that order (source token -> output logits)")


@check
def check_top_1_accuracy(top_1_accuracy) -> None:
    gen = torch.Generator().manual_seed(0)
    A, B = torch.randn(50, 8, generator=gen), torch.randn(8, 50, generator=gen)
    M = A @ B + torch.diag(torch.linspace(0, 20, 50))
    want = (M.argmax(-1) == torch.arange(50)).float().mean().item()
    assert_scalar_close(top_1_accuracy(_fm_with_diag(A, B), batch_size=7),
                        want, "top-1 accuracy", hint="argmax along each ROW (dim -1), compared with the row index; "
                        "remember the last batch of rows is shorter")


def _fm_with_diag(A, B):
    """A FactoredMatrix equal to A @ B + diag(linspace(0, 20)): rank-limited plus a diagonal, via block factors."""
    n = A.shape[0]
    left = torch.cat([A, torch.diag(torch.linspace(0, 20, n))], dim=1)
    right = torch.cat([B, torch.eye(n)], dim=0)
    return FactoredMatrix(left, right)


@check
def check_composition_score(composition_score) -> None:
    gen = torch.Generator().manual_seed(0)
    W_A, W_B = torch.randn(6, 4, generator=gen), torch.randn(4, 5, generator=gen)
    want = tl_composition_scores(FactoredMatrix(W_A, torch.eye(4)), FactoredMatrix(torch.eye(4), W_B)).item()
    got = composition_score(W_A, W_B)
    if not isinstance(got, float):
        fail(f"composition_score should return a Python float, got {type(got).__name__}: finish with .item()")
    assert_scalar_close(got, want, "composition_score", rel=1e-4,
                        hint="||W_A W_B||_F / (||W_A||_F * ||W_B||_F), Frobenius norms, divided by BOTH factors' norms (compared with "
                        "transformer_lens.utilities.composition_scores)")


@check
def check_k_composition_scores(k_composition_scores) -> str:
    model = _model()
    want = model.all_composition_scores("K")[0, :, 1, :].detach()
    assert_close(k_composition_scores(model), want, "K-composition scores [layer-0 head, layer-1 head]", atol=1e-4,
                 hint="left: W_V[0, h0] @ W_O[0, h0]; right: the layer-1 head's W_QK transposed, W_K[1, h1] @ W_Q[1, h1].T "
                 "(compare with model.all_composition_scores('K'))")
    return "matches TransformerBridge.all_composition_scores('K')"


def _low_rank_scores(d_model: int, d_head: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, d_model, d_head, generator=gen) @ torch.randn(n, d_head, d_model, generator=gen)
    B = torch.randn(n, d_model, d_head, generator=gen) @ torch.randn(n, d_head, d_model, generator=gen)
    return (A @ B).norm(dim=(-2, -1)) / (A.norm(dim=(-2, -1)) * B.norm(dim=(-2, -1)))


@check
def check_random_composition_baseline(random_composition_baseline) -> str:
    d_model, d_head, n = 32, 4, 200
    got = random_composition_baseline(d_model, d_head, n, torch.Generator().manual_seed(0))
    got = torch.as_tensor(got, dtype=torch.float32)
    assert_shape(got, (n,), "baseline scores", hint="one composition score per sample")
    again = torch.as_tensor(random_composition_baseline(d_model, d_head, n, torch.Generator().manual_seed(0)), dtype=torch.float32)
    assert_equal(again, got, "a second call with the same seed", hint="draw every random matrix from the `generator` argument")
    if got.std() < 1e-6:
        fail("every sample has the same score: draw fresh random matrices for each sample, inside the loop")
    want = _low_rank_scores(d_model, d_head, 2000, seed=1)
    if abs(got.mean() - want.mean()) > 0.1 * want.mean():
        fail(f"mean baseline score {got.mean():.3f}, expected about {want.mean():.3f} for random d_model x d_model matrices of "
             f"rank d_head: build each as a [d_model, d_head] Gaussian times a [d_head, d_model] one (not d_head x d_head)")
    ratio = (got.std() / want.std()).item()
    if not 0.6 < ratio < 1.6:
        fail(f"the spread of your scores (std {got.std():.4f}) is {ratio:.1f}x that of random rank-d_head matrices "
             f"({want.std():.4f}): full-rank d_model x d_model Gaussians give the right mean but a much narrower spread; "
             "multiply a [d_model, d_head] by a [d_head, d_model] Gaussian")
    return f"baseline mean {got.mean():.3f}, std {got.std():.4f} (d_model {d_model}, d_head {d_head})"


# --- 5b. decomposed attention -----------------------------------------------------------------


def _decomposition_case():
    model = _model()
    tokens = _repeated(batch=2, half=8, seed=5)
    _, cache = _run(tokens)
    return model, tokens, cache


@check
def check_decompose_qk_input(decompose_qk_input) -> None:
    model, tokens, cache = _decomposition_case()
    got = decompose_qk_input(model, cache)
    n_comp, seq = 2 + model.cfg.n_heads, tokens.shape[1]
    assert_shape(got, (n_comp, seq, model.cfg.d_model), "decomposed input",
                 hint="components: embed, pos_embed, then each layer-0 head; for prompt 0 of the batch")
    scale = cache["blocks.1.ln1.hook_scale"][0]
    assert_close(got[0], cache["hook_embed"][0] / scale, "component 0 (token embedding)", atol=1e-5,
                 hint="hook_embed of prompt 0, divided by blocks.1.ln1.hook_scale (the LayerNorm layer 1 applies)")
    assert_close(got[1], cache["hook_pos_embed"][0] / scale, "component 1 (positional embedding)", atol=1e-5,
                 hint="hook_pos_embed of prompt 0, divided by blocks.1.ln1.hook_scale")
    heads = cache.stack_head_results(layer=1)[:, 0]  # oracle: TransformerLens's per-head results (z @ W_O, no b_O)
    assert_close(got[2:], heads / scale, "head components", atol=1e-4, rtol=1e-3,
                 hint="layer-0 head h writes z[:, h] @ W_O[0, h] (no b_O), in head order; divide by blocks.1.ln1.hook_scale")
    assert_close(got.sum(0) + model.b_O[0] / scale, cache["blocks.1.ln1.hook_normalized"][0], "sum of components + b_O[0] / scale",
                 atol=1e-4, hint="the components plus layer 0's output bias should rebuild what layer 1's attention reads")


@check
def check_decompose_qk(decompose_qk) -> None:
    from curriculum.solutions.chapter1.interp import decompose_qk_input

    model, tokens, cache = _decomposition_case()
    parts = decompose_qk_input(model, cache)
    bias_in = model.b_O[0] / cache["blocks.1.ln1.hook_scale"][0]
    for head in range(model.cfg.n_heads):
        q, k = decompose_qk(model, parts, head)
        assert_shape(q, (parts.shape[0], parts.shape[1], model.cfg.d_head), "q parts", hint="[component, seq, d_head]")
        for got, W, b, name in [(q, model.W_Q, model.b_Q, "q"), (k, model.W_K, model.b_K, "k")]:
            rebuilt = got.sum(0) + bias_in @ W[1, head] + b[1, head]
            assert_close(rebuilt, cache[f"blocks.1.attn.hook_{name}"][0, :, head], f"sum of the {name} parts of L1H{head} (+ biases)",
                         atol=1e-4, rtol=1e-3, hint=f"project each component with W_{name.upper()}[1, head] (layer 1, this head), "
                         f"d_model -> d_head; queries use W_Q, keys W_K")


@check
def check_decompose_attn_scores(decompose_attn_scores) -> str:
    from curriculum.solutions.chapter1.interp import decompose_qk, decompose_qk_input

    model, tokens, cache = _decomposition_case()
    parts = decompose_qk_input(model, cache)
    bias_in = model.b_O[0] / cache["blocks.1.ln1.hook_scale"][0]
    seq = tokens.shape[1]
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    head = 1
    q, k = decompose_qk(model, parts, head)
    # Append the biases as one more component each, so the decomposed scores must add up to the real ones.
    q = torch.cat([q, (bias_in @ model.W_Q[1, head] + model.b_Q[1, head])[None]])
    k = torch.cat([k, (bias_in @ model.W_K[1, head] + model.b_K[1, head])[None]])
    got = decompose_attn_scores(q, k)
    assert_shape(got, (len(q), len(k), seq, seq), "decomposed scores", hint="[q_comp, k_comp, q_pos, k_pos]")
    one = q[2] @ k[3].T / model.cfg.d_head**0.5
    if torch.allclose(got[2, 3], one.T, atol=1e-4) and not torch.allclose(got[2, 3], one, atol=1e-4):
        fail("the positions of your scores are transposed: the third axis is the query position, the fourth the key position")
    assert_close(got[2, 3], one, "scores of query component 2 with key component 3", atol=1e-4, rtol=1e-3,
                 hint="scores[i, j] = q_parts[i] @ k_parts[j].T / sqrt(d_head), no mask")
    total = got.sum(dim=(0, 1)).masked_fill(~causal, float("-inf")).softmax(-1)
    assert_close(total, cache["blocks.1.attn.hook_pattern"][0, head], "softmax of the summed decomposed scores", atol=1e-4,
                 hint="the scores summed over every component pair, masked and softmaxed, must give the head's pattern: "
                 "divide by sqrt(d_head)")
    return f"the {len(q)} x {len(k)} component pairs of L1H{head} add up to its attention pattern"


@check
def check_k_composition_circuit(k_composition_circuit) -> None:
    model = _model()
    rows = torch.arange(0, model.cfg.d_vocab, 41)
    for h0, h1 in [(0, 1), (2, 3)]:
        got = k_composition_circuit(model, h0, h1)
        if not isinstance(got, FactoredMatrix):
            fail(f"k_composition_circuit should return a transformer_lens.FactoredMatrix, got {type(got).__name__}")
        assert_equal(tuple(got.shape), (model.cfg.d_vocab, model.cfg.d_vocab), "circuit shape")
        ov0 = model.OV[0, h0]  # oracle: TransformerLens's own FactoredMatrix for the layer-0 head
        qk1 = model.QK[1, h1]
        want = (model.W_E[rows] @ qk1.AB @ (model.W_E @ ov0.AB).T).detach()
        assert_close(got[rows].AB.detach(), want, f"rows of the K-composition circuit L0H{h0} -> L1H{h1}", atol=1e-3, rtol=1e-3,
                     hint="query side W_E @ W_Q[1, h1]; key side W_E @ W_V[0, h0] @ W_O[0, h0] @ W_K[1, h1]; "
                     "the circuit is query_side @ key_side.T (rows: query token, columns: the token the previous-token head moved)")


# --- 6. features ----------------------------------------------------------------------------


@check
def check_collect_activations(collect_activations) -> None:
    model = _model()
    tokens = _repeated(batch=5, half=6)
    _, cache = _run(tokens)
    name = "blocks.1.hook_resid_pre"
    got = collect_activations(model, tokens, name, batch_size=2)
    assert_close(got, cache[name].reshape(-1, model.cfg.d_model), "collected activations", atol=1e-5,
                 hint="rows in (batch, position) order: einops.rearrange(acts, 'batch seq d -> (batch seq) d'); "
                 "include the last, shorter batch")


@check
def check_top_activating_tokens(top_activating_tokens) -> None:
    gen = torch.Generator().manual_seed(0)
    acts = torch.rand(6, 9, generator=gen)
    got = top_activating_tokens(acts, 5)
    if not isinstance(got, list) or len(got) != 5:
        fail(f"expected a list of 5 (batch, position, activation) tuples, got {got!r}")
    order = sorted(((b, p) for b in range(6) for p in range(9)), key=lambda bp: -acts[bp].item())[:5]
    for i, ((b, p), item) in enumerate(zip(order, got)):
        if tuple(item[:2]) != (b, p):
            fail(f"entry {i} should be (batch {b}, position {p}) with activation {acts[b, p]:.4f}, got {item}: "
                 "unravel the flat index with // seq_len and % seq_len, largest activation first")
        assert_scalar_close(item[2], acts[b, p].item(), f"activation of entry {i}")
