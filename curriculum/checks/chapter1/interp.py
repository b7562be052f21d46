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


@check
def check_detection_patterns(previous_token_detection, duplicate_token_detection, induction_detection) -> None:
    tokens = torch.tensor([0, 5, 6, 7, 5, 6, 9, 5, 6])
    for fn, ref, what in [
        (previous_token_detection, hd.get_previous_token_head_detection_pattern, "previous_token_detection"),
        (duplicate_token_detection, hd.get_duplicate_token_head_detection_pattern, "duplicate_token_detection"),
        (induction_detection, hd.get_induction_head_detection_pattern, "induction_detection"),
    ]:
        got = fn(tokens)
        got = got.float() if isinstance(got, torch.Tensor) else got  # a bool mask is fine too
        assert_close(got, ref(tokens[None]).float(),
                     f"{what}(tokens)", hint="compare with transformer_lens.head_detector's pattern for the same tokens: "
                     "row = query position, column = key position, never a key after the query")


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
def check_composition_scores(composition_score, k_composition_scores) -> str:
    gen = torch.Generator().manual_seed(0)
    W_A, W_B = torch.randn(6, 4, generator=gen), torch.randn(4, 5, generator=gen)
    want = tl_composition_scores(FactoredMatrix(W_A, torch.eye(4)), FactoredMatrix(torch.eye(4), W_B)).item()
    assert_scalar_close(composition_score(W_A, W_B), want, "composition_score", rel=1e-4,
                        hint="||W_A W_B||_F / (||W_A||_F * ||W_B||_F), Frobenius norms")
    model = _model()
    want = model.all_composition_scores("K")[0, :, 1, :].detach()
    assert_close(k_composition_scores(model), want, "K-composition scores [layer-0 head, layer-1 head]", atol=1e-4,
                 hint="left: W_V[0, h0] @ W_O[0, h0]; right: the layer-1 head's W_QK transposed, W_K[1, h1] @ W_Q[1, h1].T "
                 "(compare with model.all_composition_scores('K'))")
    return "matches TransformerBridge.all_composition_scores('K')"


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
