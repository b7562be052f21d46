"""Section 1.3 tests beyond the automatic stub/solution ones: the shipped model really has an
induction circuit, and each check catches plausible learner bugs (mutants)."""

from __future__ import annotations

import einops
import pytest
import torch

from curriculum.solutions.chapter1 import interp as sol
from curriculum.checks.chapter1 import interp as checks
from curriculum.utils.interp_models import load_shipped_induction_model
from tests.support import assert_check_fails


@pytest.fixture(scope="module")
def model():
    return load_shipped_induction_model()


# --- the shipped model ------------------------------------------------------------------------

INDUCTION_THRESHOLD = 0.5  # best layer-1 head's mean attention to the induction target on random tokens


def test_shipped_model_has_induction_heads(model):
    half = 24
    tokens = sol.generate_repeated_tokens(8, half, model.cfg.d_vocab, model.tokenizer.bos_token_id, torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    loss = sol.per_token_loss(logits, tokens)
    first, second = loss[:, :half].mean().item(), loss[:, half:].mean().item()
    scores = sol.induction_scores(cache["blocks.1.attn.hook_pattern"], half)
    assert scores.max() > INDUCTION_THRESHOLD, f"no induction head: layer-1 induction scores {scores}"
    assert first > 0.8 * torch.log(torch.tensor(float(model.cfg.d_vocab))), f"first copy should be unpredictable, loss {first}"
    assert second < 0.2 * first, f"repeated half loss {second:.2f} should be far below the first half's {first:.2f}"
    # The mechanism, not just the behaviour: a layer-0 previous-token head that K-composes into it.
    prev = sol.head_detection_scores(sol.stacked_patterns(cache, 2), sol.previous_token_detection(tokens[0]))[0]
    assert prev.max() > 0.5, f"no previous-token head in layer 0: {prev}"
    comp = sol.k_composition_scores(model)
    ind_head = int(scores.argmax())
    assert comp[int(prev.argmax()), ind_head] == comp[:, ind_head].max(), "the previous-token head should K-compose most with the induction head"


def test_shipped_model_matches_reference_native_forward(model):
    """The bridge in compatibility mode computes the same log-probs as the raw checkpoint."""
    raw = load_shipped_induction_model(compatibility_mode=False)
    tokens = torch.randint(1, model.cfg.d_vocab, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(tokens).log_softmax(-1), raw(tokens).log_softmax(-1)
    assert torch.allclose(a, b, atol=1e-4)


# --- mutants -------------------------------------------------------------------------------


def pattern_no_scale(q, k):
    scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k")
    mask = torch.triu(torch.ones(q.shape[1], k.shape[1], dtype=torch.bool), 1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def pattern_mask_diagonal(q, k):
    scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k") / q.shape[-1] ** 0.5
    mask = torch.triu(torch.ones(q.shape[1], k.shape[1], dtype=torch.bool), 0)
    mask[0, 0] = False
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def pattern_softmax_queries(q, k):
    scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k") / q.shape[-1] ** 0.5
    mask = torch.triu(torch.ones(q.shape[1], k.shape[1], dtype=torch.bool), 1)
    return scores.masked_fill(mask, -1e9).softmax(-2)


@pytest.mark.parametrize("mutant", [pattern_no_scale, pattern_mask_diagonal, pattern_softmax_queries])
def test_check_attention_pattern_catches(mutant):
    assert_check_fails(checks.check_attention_pattern_from_qk, mutant)


def prev_above_diagonal(tokens):
    return torch.diag(torch.ones(len(tokens) - 1), diagonal=1)


def dup_including_self(tokens):
    return torch.tril((tokens[:, None] == tokens[None, :]).float())


def induction_not_shifted(tokens):
    return sol.duplicate_token_detection(tokens)


def induction_shift_left(tokens):
    dup = sol.duplicate_token_detection(tokens)
    out = torch.zeros_like(dup)
    out[:, :-1] = dup[:, 1:]
    return out


def prev_full_lower_triangle(tokens):
    return torch.tril(torch.ones(len(tokens), len(tokens)), diagonal=-1)


def induction_not_causal(tokens):
    dup = (tokens[:, None] == tokens[None, :]).float() - torch.eye(len(tokens))
    out = torch.zeros_like(dup)
    out[:, 1:] = dup[:, :-1]
    return out


@pytest.mark.parametrize(
    "check,mutant,match",
    [
        (checks.check_previous_token_detection, prev_above_diagonal, "above the diagonal"),
        (checks.check_previous_token_detection, prev_full_lower_triangle, "just BELOW"),
        (checks.check_duplicate_token_detection, dup_including_self, "strictly before"),
        (checks.check_induction_detection, induction_not_shifted, "RIGHT"),
        (checks.check_induction_detection, induction_shift_left, "RIGHT"),
        (checks.check_induction_detection, induction_not_causal, "AFTER the query"),
    ],
)
def test_check_detection_patterns_catches(check, mutant, match):
    assert_check_fails(check, mutant, match=match)


def scores_mean_not_normalised(patterns, detection):
    return (patterns * detection).mean(dim=(-2, -1))


def scores_sum_only(patterns, detection):
    return (patterns * detection).sum(dim=(-2, -1))


@pytest.mark.parametrize("mutant", [scores_mean_not_normalised, scores_sum_only])
def test_check_head_detection_scores_catches(mutant):
    assert_check_fails(checks.check_head_detection_scores, mutant)


def repeated_without_bos(batch, half_len, d_vocab, bos, generator):
    r = torch.randint(1, d_vocab, (batch, half_len + 1), generator=generator)
    return torch.cat([r[:, :1], r[:, 1:], r[:, 1:]], dim=1)


def repeated_shuffled_second_half(batch, half_len, d_vocab, bos, generator):
    r = torch.randint(1, d_vocab, (batch, half_len), generator=generator)
    return torch.cat([torch.full((batch, 1), bos), r, r.flip(-1)], dim=1)


def repeated_including_bos_id(batch, half_len, d_vocab, bos, generator):
    r = torch.randint(0, d_vocab, (batch, half_len), generator=generator)
    r[0, 0] = 0
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1)


def repeated_global_rng(batch, half_len, d_vocab, bos, generator):
    r = torch.randint(1, d_vocab, (batch, half_len))
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1)


@pytest.mark.parametrize("mutant", [repeated_without_bos, repeated_shuffled_second_half, repeated_including_bos_id, repeated_global_rng])
def test_check_generate_repeated_tokens_catches(mutant):
    assert_check_fails(checks.check_generate_repeated_tokens, mutant)


def loss_not_shifted(logits, tokens):
    return -logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0][:, :-1]


def loss_softmax_not_log(logits, tokens):
    return -logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


@pytest.mark.parametrize("mutant", [loss_not_shifted, loss_softmax_not_log])
def test_check_per_token_loss_catches(mutant):
    assert_check_fails(checks.check_per_token_loss, mutant)


def induction_offset_by_half(patterns, half_len):
    return patterns.diagonal(offset=-half_len, dim1=-2, dim2=-1).mean(dim=(0, -1))


def induction_including_first_copy_queries(patterns, half_len):
    return patterns.diagonal(offset=-(half_len - 1), dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, -1))


def induction_mean_over_heads(patterns, half_len):
    s = patterns.diagonal(offset=-(half_len - 1), dim1=-2, dim2=-1)[..., 2:].mean(dim=(0, -1))
    return s.mean().expand_as(s)


@pytest.mark.parametrize("mutant", [induction_offset_by_half, induction_including_first_copy_queries, induction_mean_over_heads])
def test_check_induction_scores_catches(mutant):
    assert_check_fails(checks.check_induction_scores, mutant)


def _ablation(zap):
    """An ablation function whose hook is `zap(z, head, mean_z)`; everything else as the reference."""

    def fn(model, tokens, mean=False):
        n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
        with torch.no_grad():
            clean = sol.per_token_loss(model(tokens), tokens).mean()
            _, cache = model.run_with_cache(tokens)
        out = torch.zeros(n_layers, n_heads)
        for layer in range(n_layers):
            for head in range(n_heads):
                z_all = cache[f"blocks.{layer}.attn.hook_z"]

                def hook(z, hook, head=head, z_all=z_all):
                    return zap(z, head, z_all, mean)

                with torch.no_grad():
                    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
                out[layer, head] = sol.per_token_loss(logits, tokens).mean() - clean
        return out

    return fn


def _zap_whole_layer(z, head, z_all, mean):
    z[:] = z_all.mean(dim=(0, 1)) if mean else 0.0
    return z


def _zap_wrong_axis(z, head, z_all, mean):
    z[:, head] = z_all[:, head].mean(0) if mean else 0.0  # indexes positions, not heads
    return z


def _zap_mean_over_batch_only(z, head, z_all, mean):
    z[:, :, head] = z_all[:, :, head].mean(0) if mean else 0.0
    return z


@pytest.mark.parametrize("zap", [_zap_whole_layer, _zap_wrong_axis, _zap_mean_over_batch_only])
def test_check_head_ablation_catches(zap):
    assert_check_fails(checks.check_head_ablation, _ablation(zap))


def dla_without_ln_scale(model, cache, tokens):
    ref = sol.direct_logit_attribution(model, cache, tokens)
    return ref * cache["ln_final.hook_scale"][0, :-1, 0]


def dla_current_token(model, cache, tokens):
    shifted = torch.cat([tokens[:-1], tokens[-1:]])  # attributes to the token at the same position
    return sol.direct_logit_attribution(model, cache, torch.cat([tokens[:1], shifted[:-1]]))


def dla_head_major(model, cache, tokens):
    ref = sol.direct_logit_attribution(model, cache, tokens)
    heads = einops.rearrange(ref[2:], "(l h) s -> (h l) s", l=model.cfg.n_layers)
    return torch.cat([ref[:2], heads])


@pytest.mark.parametrize("mutant", [dla_without_ln_scale, dla_current_token, dla_head_major])
def test_check_dla_catches(mutant):
    assert_check_fails(checks.check_direct_logit_attribution, mutant)


def patch_resid_post(model, corrupted_tokens, clean_cache, metric):
    out = torch.zeros(model.cfg.n_layers, corrupted_tokens.shape[1])
    for layer in range(model.cfg.n_layers):
        for pos in range(corrupted_tokens.shape[1]):
            name = f"blocks.{layer}.hook_resid_post"

            def hook(r, hook, pos=pos, name=name):
                r[:, pos] = clean_cache[name][:, pos]
                return r

            with torch.no_grad():
                out[layer, pos] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)]))
    return out


def patch_resid_all_positions_up_to(model, corrupted_tokens, clean_cache, metric):
    out = torch.zeros(model.cfg.n_layers, corrupted_tokens.shape[1])
    for layer in range(model.cfg.n_layers):
        for pos in range(corrupted_tokens.shape[1]):
            name = f"blocks.{layer}.hook_resid_pre"

            def hook(r, hook, pos=pos, name=name):
                r[:, : pos + 1] = clean_cache[name][:, : pos + 1]
                return r

            with torch.no_grad():
                out[layer, pos] = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)]))
    return out


@pytest.mark.parametrize("mutant", [patch_resid_post, patch_resid_all_positions_up_to])
def test_check_patch_residual_catches(mutant):
    assert_check_fails(checks.check_patch_residual_by_position, mutant)


def patch_head_from_corrupted_cache(model, corrupted_tokens, clean_cache, metric, by_position=False):
    _, corrupted_cache = model.run_with_cache(corrupted_tokens)
    return sol.patch_head_output(model, corrupted_tokens, corrupted_cache, metric, by_position)


def patch_head_transposed_by_pos(model, corrupted_tokens, clean_cache, metric, by_position=False):
    out = sol.patch_head_output(model, corrupted_tokens, clean_cache, metric, by_position)
    return out.transpose(1, 2).reshape(out.shape) if by_position else out


@pytest.mark.parametrize("mutant", [patch_head_from_corrupted_cache, patch_head_transposed_by_pos])
def test_check_patch_head_catches(mutant):
    assert_check_fails(checks.check_patch_head_output, mutant)


def ov_without_unembed_order(model, layer, head):
    return sol.FactoredMatrix(model.W_E @ model.W_O[layer, head].T, model.W_V[layer, head].T @ model.W_U)


def ov_wrong_head_layer(model, layer, head):
    return sol.full_ov_circuit(model, 1 - layer, head)


@pytest.mark.parametrize("mutant", [ov_without_unembed_order, ov_wrong_head_layer])
def test_check_full_ov_catches(mutant):
    assert_check_fails(checks.check_full_ov_circuit, mutant)


def top1_columns(matrix, batch_size=1024):
    full = matrix.AB
    return (full.argmax(0) == torch.arange(full.shape[0])).float().mean().item()


def top1_drops_last_batch(matrix, batch_size=1024):
    n, correct = matrix.shape[0], 0
    for start in range(0, n - batch_size + 1, batch_size):
        rows = torch.arange(start, start + batch_size)
        correct += int((matrix[rows].AB.argmax(-1) == rows).sum())
    return correct / n


@pytest.mark.parametrize("mutant", [top1_columns, top1_drops_last_batch])
def test_check_top_1_catches(mutant):
    assert_check_fails(checks.check_top_1_accuracy, mutant)


def comp_no_normalisation(W_A, W_B):
    return (W_A @ W_B).norm().item()


def k_comp_using_qk_not_transposed(model):
    n = model.cfg.n_heads
    out = torch.zeros(n, n)
    for h0 in range(n):
        for h1 in range(n):
            out[h0, h1] = sol.composition_score(
                (model.W_V[0, h0] @ model.W_O[0, h0]).detach(), (model.W_Q[1, h1] @ model.W_K[1, h1].T).detach()
            )
    return out


def k_comp_q_composition(model):
    n = model.cfg.n_heads
    out = torch.zeros(n, n)
    for h0 in range(n):
        for h1 in range(n):
            out[h0, h1] = sol.composition_score(
                (model.W_V[0, h0] @ model.W_O[0, h0]).detach(), (model.W_V[1, h1] @ model.W_O[1, h1]).detach()
            )
    return out


def comp_one_norm(W_A, W_B):
    return ((W_A @ W_B).norm() / W_A.norm()).item()


def comp_tensor(W_A, W_B):
    return (W_A @ W_B).norm() / (W_A.norm() * W_B.norm())


@pytest.mark.parametrize("mutant,match", [(comp_no_normalisation, "Frobenius"), (comp_one_norm, "BOTH factors"), (comp_tensor, "float")])
def test_check_composition_score_catches(mutant, match):
    assert_check_fails(checks.check_composition_score, mutant, match=match)


@pytest.mark.parametrize("mutant", [k_comp_using_qk_not_transposed, k_comp_q_composition])
def test_check_k_composition_scores_catches(mutant):
    assert_check_fails(checks.check_k_composition_scores, mutant, match="transposed")


def baseline_full_rank(d_model, d_head, n_samples, generator):
    return torch.tensor([sol.composition_score(torch.randn(d_model, d_model, generator=generator),
                                               torch.randn(d_model, d_model, generator=generator)) for _ in range(n_samples)])


def baseline_head_sized(d_model, d_head, n_samples, generator):
    return torch.tensor([sol.composition_score(torch.randn(d_head, d_head, generator=generator),
                                               torch.randn(d_head, d_head, generator=generator)) for _ in range(n_samples)])


def baseline_one_pair(d_model, d_head, n_samples, generator):
    return sol.random_composition_baseline(d_model, d_head, 1, generator).expand(n_samples).clone()


def baseline_global_rng(d_model, d_head, n_samples, generator):
    return sol.random_composition_baseline(d_model, d_head, n_samples, torch.Generator().manual_seed(torch.seed() % 2**31))


@pytest.mark.parametrize("mutant,match", [(baseline_full_rank, "spread"), (baseline_head_sized, "rank d_head"),
                                          (baseline_one_pair, "same score"), (baseline_global_rng, "generator")])
def test_check_random_baseline_catches(mutant, match):
    assert_check_fails(checks.check_random_composition_baseline, mutant, match=match)


def qk_input_no_scale(model, cache, batch_index=0):
    return sol.decompose_qk_input(model, cache, batch_index) * cache["blocks.1.ln1.hook_scale"][batch_index]


def qk_input_final_scale(model, cache, batch_index=0):
    scale = cache["blocks.1.ln1.hook_scale"][batch_index] / cache["ln_final.hook_scale"][batch_index]
    return sol.decompose_qk_input(model, cache, batch_index) * scale


def qk_input_with_bias(model, cache, batch_index=0):
    out = sol.decompose_qk_input(model, cache, batch_index)
    out[2:] = out[2:] + model.b_O[0] / cache["blocks.1.ln1.hook_scale"][batch_index] / model.cfg.n_heads
    return out


def qk_input_heads_reversed(model, cache, batch_index=0):
    out = sol.decompose_qk_input(model, cache, batch_index)
    return torch.cat([out[:2], out[2:].flip(0)])


@pytest.mark.parametrize("mutant,match", [(qk_input_no_scale, "embedding"), (qk_input_final_scale, "ln1.hook_scale"),
                                          (qk_input_with_bias, "no b_O"), (qk_input_heads_reversed, "head order")])
def test_check_decompose_qk_input_catches(mutant, match):
    assert_check_fails(checks.check_decompose_qk_input, mutant, match=match)


def qk_swapped(model, decomposed, head):
    q, k = sol.decompose_qk(model, decomposed, head)
    return k, q


def qk_layer0(model, decomposed, head):
    return decomposed @ model.W_Q[0, head], decomposed @ model.W_K[0, head]


@pytest.mark.parametrize("mutant", [qk_swapped, qk_layer0])
def test_check_decompose_qk_catches(mutant):
    assert_check_fails(checks.check_decompose_qk, mutant, match="W_Q")


def attn_scores_no_scale(q_parts, k_parts):
    return sol.decompose_attn_scores(q_parts, k_parts) * q_parts.shape[-1] ** 0.5


def attn_scores_positions_transposed(q_parts, k_parts):
    return sol.decompose_attn_scores(q_parts, k_parts).transpose(-2, -1)


@pytest.mark.parametrize("mutant,match", [(attn_scores_no_scale, "sqrt"), (attn_scores_positions_transposed, "transposed")])
def test_check_decompose_attn_scores_catches(mutant, match):
    assert_check_fails(checks.check_decompose_attn_scores, mutant, match=match)


def kcirc_not_transposed(model, prev_head, ind_head):
    key_side = model.W_E @ model.W_V[0, prev_head] @ model.W_O[0, prev_head] @ model.W_K[1, ind_head]
    return sol.FactoredMatrix(key_side, (model.W_E @ model.W_Q[1, ind_head]).T)


def kcirc_without_ov(model, prev_head, ind_head):
    return sol.FactoredMatrix(model.W_E @ model.W_Q[1, ind_head], (model.W_E @ model.W_K[1, ind_head]).T)


@pytest.mark.parametrize("mutant", [kcirc_not_transposed, kcirc_without_ov])
def test_check_k_composition_circuit_catches(mutant):
    assert_check_fails(checks.check_k_composition_circuit, mutant, match="query side")


def norm_product_of_norms(A, B):
    return A.norm() * B.norm()


def norm_squared(A, B):
    return ((A.T @ A) * (B @ B.T)).sum()


@pytest.mark.parametrize("mutant", [norm_product_of_norms, norm_squared])
def test_check_factored_norm_catches(mutant):
    assert_check_fails(checks.check_factored_frobenius_norm, mutant, match="square root")


def svd_vh_not_transposed(A, B):
    Q_A, R_A = torch.linalg.qr(A)
    Q_B, R_B = torch.linalg.qr(B.T)
    U_m, S, Vh_m = torch.linalg.svd(R_A @ R_B.T)
    return Q_A @ U_m, S, Q_B @ Vh_m


def svd_not_rotated(A, B):
    U, S, V = sol.factored_svd(A, B)
    Q_A, _ = torch.linalg.qr(A)
    return Q_A.T @ U, S, V


def svd_of_a_only(A, B):
    Q_B, _ = torch.linalg.qr(B.T)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    return U, S, Q_B @ Vh.T


@pytest.mark.parametrize("mutant,match", [(svd_vh_not_transposed, "Vh"), (svd_not_rotated, "Q_A"), (svd_of_a_only, "singular values")])
def test_check_factored_svd_catches(mutant, match):
    assert_check_fails(checks.check_factored_svd, mutant, match=match)


def _pos_qk(transform):
    def fn(model, layer, head, n_pos):
        W_pos = model.W_pos[:n_pos]
        return transform(W_pos @ model.W_Q[layer, head] @ model.W_K[layer, head].T @ W_pos.T, model.cfg.d_head, n_pos)
    return fn


def _causal(x, n):
    return x.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))


@pytest.mark.parametrize(
    "mutant,match",
    [
        (_pos_qk(lambda s, d, n: _causal(s, n).softmax(-1)), "sqrt"),
        (_pos_qk(lambda s, d, n: (s / d**0.5).softmax(-1)), "mask the upper triangle"),
        (_pos_qk(lambda s, d, n: _causal(s.T / d**0.5, n).softmax(-1)), "W_pos @ W_Q"),
        (_pos_qk(lambda s, d, n: _causal(s / d**0.5, n).softmax(-2)), "KEY axis"),
    ],
)
def test_check_positional_qk_catches(mutant, match):
    assert_check_fails(checks.check_positional_qk_circuit, mutant, match=match)


def lens_stale_scale(model, cache, tokens, batch_index=0):
    names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)] + [f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    resid = torch.stack([cache[n][batch_index, :-1] for n in names])
    normed = (resid - resid.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][batch_index, :-1]
    lp = (normed @ model.W_U + model.b_U).log_softmax(-1)
    return lp.gather(-1, tokens[1:].expand(len(names), -1)[..., None])[..., 0]


def lens_current_token(model, cache, tokens, batch_index=0):
    return sol.logit_lens(model, cache, torch.cat([tokens[:1], tokens[:-1]]), batch_index)


def lens_no_layernorm(model, cache, tokens, batch_index=0):
    names = [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)] + [f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    resid = torch.stack([cache[n][batch_index, :-1] for n in names])
    lp = (resid @ model.W_U + model.b_U).log_softmax(-1)
    return lp.gather(-1, tokens[1:].expand(len(names), -1)[..., None])[..., 0]


@pytest.mark.parametrize("mutant,match", [(lens_stale_scale, "EACH stage"), (lens_current_token, "tokens\\[i \\+ 1\\]"),
                                          (lens_no_layernorm, "LayerNorm")])
def test_check_logit_lens_catches(mutant, match):
    assert_check_fails(checks.check_logit_lens, mutant, match=match)


def hooks_last_layer_only(model, tokens, half_len):
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)

    def score(pattern, hook):
        out[hook.layer()] = sol.induction_scores(pattern, half_len)
        return pattern

    model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern", score)])
    return out


def hooks_overwrite_row0(model, tokens, half_len):
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)

    def score(pattern, hook):
        out[0] = sol.induction_scores(pattern, half_len)
        return pattern

    model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), score)])
    return out


@pytest.mark.parametrize("mutant", [hooks_last_layer_only, hooks_overwrite_row0])
def test_check_induction_hooks_catches(mutant):
    assert_check_fails(checks.check_induction_scores_with_hooks, mutant, match="EVERY layer")


def collect_drops_last_batch(model, tokens, hook_name, batch_size=32):
    return sol.collect_activations(model, tokens[: len(tokens) // batch_size * batch_size], hook_name, batch_size)


def collect_position_major(model, tokens, hook_name, batch_size=32):
    _, cache = model.run_with_cache(tokens)
    return einops.rearrange(cache[hook_name], "b s d -> (s b) d")


@pytest.mark.parametrize("mutant", [collect_drops_last_batch, collect_position_major])
def test_check_collect_catches(mutant):
    assert_check_fails(checks.check_collect_activations, mutant)


def top_tokens_ascending(latent_acts, k):
    return list(reversed(sol.top_activating_tokens(latent_acts, k)))


def top_tokens_wrong_unravel(latent_acts, k):
    values, flat = latent_acts.flatten().topk(k)
    b = latent_acts.shape[0]
    return [(int(i) % b, int(i) // b, float(v)) for v, i in zip(values, flat)]


@pytest.mark.parametrize("mutant", [top_tokens_ascending, top_tokens_wrong_unravel])
def test_check_top_tokens_catches(mutant):
    assert_check_fails(checks.check_top_activating_tokens, mutant)
