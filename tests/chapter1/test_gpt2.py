"""Section 1.1: each check must catch the bugs learners actually write, and the model's own
guarantees (HF parity, cache == no cache, clear errors) must hold."""

from __future__ import annotations

import math

import einops
import pytest
import torch
import torch.nn.functional as F

from curriculum.solutions.chapter1 import gpt2 as ref
from curriculum.checks.chapter1 import gpt2 as checks
from tests.support import assert_check_fails, mutant


# --- LayerNorm ----------------------------------------------------------------------------------


class LayerNormUnbiased(ref.LayerNorm):
    def forward(self, x):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.var(-1, keepdim=True, unbiased=True) + self.cfg.layer_norm_eps).sqrt() * self.w + self.b


class LayerNormNoShift(ref.LayerNorm):
    def forward(self, x):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt() * self.w


class LayerNormWrongAxis(ref.LayerNorm):
    def forward(self, x):
        x = x - x.mean(1, keepdim=True)
        return x / (x.pow(2).mean(1, keepdim=True) + self.cfg.layer_norm_eps).sqrt() * self.w + self.b


@pytest.mark.parametrize("bug", [LayerNormUnbiased, LayerNormNoShift, LayerNormWrongAxis])
def test_layer_norm_check_catches(bug):
    assert_check_fails(checks.check_layer_norm, bug)


# --- embeddings ---------------------------------------------------------------------------------


class PosEmbedIgnoresOffset(ref.PosEmbed):
    def forward(self, tokens, offset=0):
        return super().forward(tokens, 0)


class PosEmbedByToken(ref.PosEmbed):
    def forward(self, tokens, offset=0):
        return self.W_pos[tokens % self.W_pos.shape[0]]


@pytest.mark.parametrize("bug", [PosEmbedIgnoresOffset, PosEmbedByToken])
def test_pos_embed_check_catches(bug):
    assert_check_fails(checks.check_pos_embed, bug)


# --- causal mask and attention ------------------------------------------------------------------


def mask_masks_diagonal(scores):
    n = scores.shape[-1]
    return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).tril().logical_not() | torch.eye(n, dtype=torch.bool), float("-inf"))


def mask_ignores_offset(scores):
    n_q, n_k = scores.shape[-2:]
    return scores.masked_fill(torch.ones(n_q, n_k, dtype=torch.bool).triu(1), float("-inf"))


def mask_upper_kept(scores):
    n_q, n_k = scores.shape[-2:]
    return scores.masked_fill(torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q - 1), float("-inf"))


def mask_uses_large_negative_then_zero(scores):
    n_q, n_k = scores.shape[-2:]
    return scores * torch.ones(n_q, n_k).tril(n_k - n_q)  # zeroes instead of -inf: still leaks softmax mass


@pytest.mark.parametrize("bug", [mask_masks_diagonal, mask_ignores_offset, mask_upper_kept, mask_uses_large_negative_then_zero])
def test_causal_mask_check_catches(bug):
    assert_check_fails(checks.check_apply_causal_mask, bug)


def _attention_with(*, scale: bool = True, softmax_dim: int = -1, mask: bool = True, hook: bool = True):
    class BuggyAttention(ref.Attention):
        def forward(self, x, kv_cache=None):
            q = einops.einsum(x, self.W_Q, "b p d, h d e -> b h p e") + self.b_Q[:, None]
            k = einops.einsum(x, self.W_K, "b p d, h d e -> b h p e") + self.b_K[:, None]
            v = einops.einsum(x, self.W_V, "b p d, h d e -> b h p e") + self.b_V[:, None]
            scores = einops.einsum(q, k, "b h q e, b h k e -> b h q k")
            if scale:
                scores = scores / math.sqrt(self.cfg.d_head)
            if mask:
                scores = ref.apply_causal_mask(scores)
            pattern = scores.softmax(dim=softmax_dim)
            pattern = self.hook_pattern(pattern) if hook else pattern
            z = einops.einsum(pattern.nan_to_num(), v, "b h q k, b h k e -> b h q e")
            return einops.einsum(z, self.W_O, "b h q e, h e d -> b q d") + self.b_O

    return BuggyAttention


@pytest.mark.parametrize(
    "bug",
    [
        dict(scale=False),
        dict(softmax_dim=-2),
        dict(mask=False),
        dict(hook=False),
    ],
    ids=["missing 1/sqrt(d_head)", "softmax over queries", "no causal mask", "pattern bypasses hook"],
)
def test_attention_check_catches(bug):
    assert_check_fails(checks.check_attention, _attention_with(**bug))


def test_attention_check_passes_on_a_correct_rewrite():
    _attention_with()  # the mutant factory with no bug is a correct attention layer
    checks.check_attention(_attention_with())


# --- MLP, block, model --------------------------------------------------------------------------


class MLPExactGelu(ref.MLP):
    def forward(self, x):
        return F.gelu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class MLPRelu(ref.MLP):
    def forward(self, x):
        return F.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


@pytest.mark.parametrize("bug", [MLPExactGelu, MLPRelu])
def test_mlp_check_catches(bug):
    assert_check_fails(checks.check_mlp, bug)


class PostNormBlock(ref.TransformerBlock):
    def forward(self, x, kv_cache=None):
        x = self.ln1(x + self.attn(x, kv_cache))
        return self.ln2(x + self.mlp(x))


class BlockSharedNorm(ref.TransformerBlock):
    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln1(x), kv_cache)
        return x + self.mlp(self.ln1(x))


class BlockNoResidual(ref.TransformerBlock):
    def forward(self, x, kv_cache=None):
        x = self.attn(self.ln1(x), kv_cache)
        return x + self.mlp(self.ln2(x))


@pytest.mark.parametrize("bug", [PostNormBlock, BlockSharedNorm, BlockNoResidual])
def test_block_check_catches(bug):
    assert_check_fails(checks.check_transformer_block, bug)


class GPT2NoFinalNorm(ref.GPT2):
    def forward(self, tokens, kv_cache=None):
        x = self.embed(tokens) + self.pos_embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.unembed(x) if self.unembed is not None else x @ self.embed.W_E.T


class GPT2NoPositions(ref.GPT2):
    def forward(self, tokens, kv_cache=None):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        x = self.ln_final(x)
        return self.unembed(x) if self.unembed is not None else x @ self.embed.W_E.T


class GPT2IgnoresTying(ref.GPT2):
    def __init__(self, cfg):
        super().__init__(ref.Config(**{**cfg.__dict__, "tie_embeddings": False}))


@pytest.mark.parametrize("bug", [GPT2NoFinalNorm, GPT2NoPositions, GPT2IgnoresTying])
def test_gpt2_check_catches(bug):
    assert_check_fails(checks.check_gpt2, bug)


def load_weights_non_strict(model, params):
    model.load_state_dict(params, strict=False)
    return model


def test_load_weights_check_catches_silent_missing_keys():
    assert_check_fails(checks.check_load_gpt2_weights, load_weights_non_strict, match="silently")


def test_lm_loss_check_catches_unshifted_targets():
    assert_check_fails(checks.check_lm_cross_entropy, lambda logits, tokens: F.cross_entropy(logits.flatten(0, 1), tokens.flatten()))


# --- sampling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "check,bug",
    [
        (checks.check_apply_temperature, lambda logits, t: logits * t),
        (checks.check_apply_frequency_penalty,
         lambda ids, logits, p: logits - p * torch.bincount(ids.flatten(), minlength=logits.shape[-1])),  # counts over the whole batch
        (checks.check_apply_frequency_penalty,
         lambda ids, logits, p: logits.scatter(-1, ids, logits.gather(-1, ids) - p)),  # presence, not frequency
        (checks.check_top_k_filter, lambda logits, k: logits.masked_fill(logits <= logits.topk(k).values[..., -1:], float("-inf"))),
        (checks.check_top_p_filter,  # drops the token that crosses the threshold
         lambda logits, p: logits.masked_fill(
             (lambda s, o: (s.softmax(-1).cumsum(-1) > p).scatter(-1, o, s.softmax(-1).cumsum(-1) > p))(*logits.sort(-1, descending=True)),
             float("-inf"))),
        (checks.check_top_p_filter,  # forgets to map the mask back to vocabulary order
         lambda logits, p: logits.masked_fill(
             ((lambda s: s.softmax(-1).cumsum(-1) - s.softmax(-1))(logits.sort(-1, descending=True).values) >= p), float("-inf"))),
    ],
    ids=["temperature multiplies", "penalty counts whole batch", "presence penalty", "top-k drops k-th", "top-p drops crossing token", "top-p unsorted mask"],
)
def test_sampling_checks_catch(check, bug):
    assert_check_fails(check, bug)


@torch.no_grad()
def beam_search_per_beam_topk(model, input_ids, num_beams, max_new_tokens):
    """A common bug: each beam keeps its own best token instead of competing across beams."""
    beams, scores = input_ids.repeat(num_beams, 1), torch.zeros(num_beams)
    for step in range(max_new_tokens):
        log_probs = model(beams)[:, -1].log_softmax(-1)
        if step == 0:
            top = log_probs[0].topk(num_beams)
            beams, scores = torch.cat([beams, top.indices[:, None]], 1), top.values
        else:
            best = log_probs.max(-1)
            beams, scores = torch.cat([beams, best.indices[:, None]], 1), scores + best.values
    order = scores.argsort(descending=True)
    return beams[order], scores[order]


def test_beam_search_check_catches_per_beam_selection():
    assert_check_fails(checks.check_beam_search, beam_search_per_beam_topk)


class CachePrepends(ref.LayerKVCache):
    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([k, self.k], dim=-2)
        self.v = v if self.v is None else torch.cat([v, self.v], dim=-2)
        return self.k, self.v


class CacheForgets(ref.LayerKVCache):
    def update(self, k, v):
        self.k, self.v = k, v
        return k, v


@pytest.mark.parametrize("bug", [CachePrepends, CacheForgets])
def test_kv_cache_check_catches(bug):
    assert_check_fails(checks.check_layer_kv_cache, bug)


# --- the reference model's guarantees -----------------------------------------------------------


def test_cached_sampling_equals_uncached_with_sdpa_and_filters():
    model = checks.reference_model(tie_embeddings=True, attn_impl="sdpa")
    prompt = checks._tokens(2, 4)
    sampling = ref.SamplingConfig(temperature=0.8, top_k=20, top_p=0.9, freq_penalty=0.3)
    plain = ref.generate(model, prompt, 15, sampling, seed=7)
    cached = ref.generate(model, prompt, 15, sampling, seed=7, use_cache=True)
    assert torch.equal(plain, cached)


def test_greedy_generation_matches_hugging_face_generate():
    hf, _ = checks.hf_reference()
    model = checks.reference_model()
    prompt = checks._tokens(1, 5, seed=11)
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False,
                           pad_token_id=0, eos_token_id=None)
    assert torch.equal(ref.generate(model, prompt, 20, use_cache=True), expected)


def test_model_rejects_bad_input_clearly():
    model = checks.reference_model()
    with pytest.raises(ValueError, match="add a batch axis"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="context length"):
        model(torch.zeros(1, checks.CFG.n_ctx + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        ref.apply_temperature(torch.zeros(1, 3), 0.0)
    with pytest.raises(ValueError, match="n_heads \\* d_head"):
        ref.Config(d_model=64, n_heads=3, d_head=16)
    with pytest.raises(ValueError, match="one prompt"):
        ref.beam_search(model, torch.zeros(2, 3, dtype=torch.long), 2, 2)


def test_training_lowers_loss():
    torch.manual_seed(0)
    text_tokens = torch.arange(2000) % 37  # a periodic stream: easy to learn, so 60 steps suffice
    cfg = ref.Config(d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64, d_vocab=37, n_ctx=32, tie_embeddings=True)
    history = ref.train_lm(ref.GPT2(cfg), text_tokens, text_tokens, steps=60, batch_size=8, seq_len=24, lr=3e-3, eval_every=20)
    assert history["val_loss"][-1] < 0.5 * math.log(37), history["val_loss"]


# --- the checks name the bug (softmax axis, mask, scale, eps, NaN) -------------------------------

SCORES = "einops.einsum(q, k, \"b h q e, b h k e -> b h q k\") / math.sqrt(self.cfg.d_head)"
PATTERN = "self.hook_pattern(apply_causal_mask(attn_scores).softmax(dim=-1))"


@pytest.mark.parametrize(
    "old,new,message",
    [
        (PATTERN, "self.hook_pattern(apply_causal_mask(attn_scores).softmax(dim=-2))", r"softmax over the query axis"),
        (PATTERN, "self.hook_pattern(attn_scores.softmax(dim=-1))", r"above the diagonal.*causal mask"),
        (PATTERN, "self.hook_pattern(attn_scores.masked_fill(torch.ones(attn_scores.shape[-2:], dtype=torch.bool)"
                  ".triu(2), float('-inf')).softmax(dim=-1))", r"above the diagonal"),
        (PATTERN, "self.hook_pattern(attn_scores.masked_fill(torch.ones(attn_scores.shape[-2:], dtype=torch.bool)"
                  ".triu(0), float('-inf')).softmax(dim=-1))", r"off by one"),
        (SCORES, SCORES.replace(" / math.sqrt(self.cfg.d_head)", ""), r"sharper .*scale is off.*did not scale at all"),
        (SCORES, SCORES.replace("math.sqrt(self.cfg.d_head)", "self.cfg.d_head"), r"flatter .*divided by d_head instead"),
    ],
    ids=["softmax-over-queries", "no-mask", "next-token-visible", "diagonal-hidden", "no-scale", "scale-by-d_head"],
)
def test_attention_check_diagnoses_the_bug_from_the_pattern(old, new, message):
    assert_check_fails(checks.check_attention, mutant(ref.Attention, (old, new)), match=message)


LN_SCALE = "scale = (residual.pow(2).mean(dim=-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt()"


@pytest.mark.parametrize(
    "new",
    [
        "scale = residual.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.cfg.layer_norm_eps",  # eps outside the root
        "scale = residual.std(dim=-1, keepdim=True, unbiased=False) + self.cfg.layer_norm_eps",  # std + eps
        "scale = (residual.var(dim=-1, keepdim=True, unbiased=True) + self.cfg.layer_norm_eps).sqrt()",  # unbiased variance
    ],
    ids=["eps-outside-sqrt", "std-plus-eps", "unbiased-variance"],
)
def test_layer_norm_check_catches_eps_and_variance_bugs(new):
    assert_check_fails(checks.check_layer_norm, mutant(ref.LayerNorm, (LN_SCALE, new)), match="LayerNorm output")


def test_eps_outside_the_root_fails_only_on_small_variance_inputs():
    """The wide inputs alone would let this bug through: the small-variance case is what catches it."""
    bug = mutant(ref.LayerNorm, (LN_SCALE, "scale = residual.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.cfg.layer_norm_eps"))
    assert_check_fails(checks.check_layer_norm, bug, match="small-variance inputs")


def test_top_k_check_rejects_nan_for_dropped_logits():
    nan_fill = mutant(ref.top_k_filter, ('float("-inf")', 'float("nan")'))
    assert_check_fails(checks.check_top_k_filter, nan_fill, match=r"contains NaN.*-inf")
    nan_fill_p = mutant(ref.top_p_filter, ('float("-inf")', 'float("nan")'))
    assert_check_fails(checks.check_top_p_filter, nan_fill_p, match=r"contains NaN")


def test_block_check_insists_on_the_residual_hooks():
    no_mid_hook = mutant(ref.TransformerBlock, ("resid_mid = self.hook_resid_mid(resid_pre + ", "resid_mid = (resid_pre + "))
    assert_check_fails(checks.check_transformer_block, no_mid_hook, match=r"never passed through self.hook_resid_mid")
