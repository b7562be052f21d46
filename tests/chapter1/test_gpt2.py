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


def _attention_with(*, scale: bool = True, softmax_dim: int = -1, mask: bool = True, hook: bool = True,
                    qkv_hooks: bool = True, head_major_hooks: bool = False, z_hook: bool = True):
    class BuggyAttention(ref.Attention):
        def forward(self, x, kv_cache=None):
            q = einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q
            k = einops.einsum(x, self.W_K, "b p d, h d e -> b p h e") + self.b_K
            v = einops.einsum(x, self.W_V, "b p d, h d e -> b p h e") + self.b_V
            if head_major_hooks:  # hooks fed the [batch, n_heads, pos, d_head] layout
                q, k, v = (h(t.transpose(1, 2)).transpose(1, 2) for h, t in ((self.hook_q, q), (self.hook_k, k), (self.hook_v, v)))
            elif qkv_hooks:
                q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
            scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k")
            if scale:
                scores = scores / math.sqrt(self.cfg.d_head)
            if mask:
                scores = ref.apply_causal_mask(scores)
            pattern = scores.softmax(dim=softmax_dim)
            pattern = self.hook_pattern(pattern) if hook else pattern
            z = einops.einsum(pattern.nan_to_num(), v, "b h q k, b k h e -> b q h e")
            z = self.hook_z(z) if z_hook else z
            return einops.einsum(z, self.W_O, "b q h e, h e d -> b q d") + self.b_O

    return BuggyAttention


@pytest.mark.parametrize(
    "bug,match",
    [
        (dict(scale=False), "sqrt"),
        (dict(softmax_dim=-2), "query axis"),
        (dict(mask=False), "causal mask"),
        (dict(hook=False), "hook_pattern"),
        (dict(qkv_hooks=False), "hook_q"),
        (dict(head_major_hooks=True), "n_heads, d_head"),
        (dict(z_hook=False), "hook_z"),
    ],
    ids=["missing 1/sqrt(d_head)", "softmax over queries", "no causal mask", "pattern bypasses hook", "no q/k/v hooks",
         "hooks in [batch, head, pos] layout", "z bypasses hook_z"],
)
def test_attention_check_catches(bug, match):
    assert_check_fails(checks.check_attention, _attention_with(**bug), match=match)


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


class MLPNoInputBias(ref.MLP):
    def forward(self, x):
        return F.gelu(x @ self.W_in, approximate="tanh") @ self.W_out + self.b_out


@pytest.mark.parametrize(
    "bug,message",
    [(MLPExactGelu, r"exact GELU.*approximate='tanh'"), (MLPRelu, r"tanh GELU"), (MLPNoInputBias, r"both biases")],
    ids=["exact-gelu", "relu", "no-input-bias"],
)
def test_mlp_check_names_the_bug(bug, message):
    assert_check_fails(checks.check_mlp, bug, match=message)
    if bug is not MLPExactGelu:  # only an exact-GELU output is blamed on the GELU
        with pytest.raises(AssertionError) as info:
            checks.check_mlp(bug)
        assert "exact GELU" not in str(info.value)


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


GPT2_POS = "self.hook_pos_embed(self.pos_embed(tokens, offset))"
GPT2_TIED = "return self.tied_readout(residual, kv_cache)"


@pytest.mark.parametrize(
    "old,new,message",
    [
        (GPT2_POS, "self.hook_pos_embed(self.pos_embed(tokens))", r"fed after a KV cache.*pass the offset"),
        ("block(residual, kv_cache[layer] if kv_cache is not None else None)", "block(residual)",
         r"cache holds 0 positions.*kv_cache\[layer\]"),
        (GPT2_TIED, "return self.unembed(residual)", r"tie_embeddings=True.*TypeError.*self.embed.W_E"),
        (GPT2_TIED, "return residual @ self.embed.W_E", r"tie_embeddings=True.*residual @ self.embed.W_E.T"),
    ],
    ids=["ignores-position-offset", "cache-not-passed-to-blocks", "tied-calls-missing-unembed", "tied-untransposed-W_E"],
)
def test_gpt2_check_names_the_bug(old, new, message):
    assert_check_fails(checks.check_gpt2, mutant(ref.GPT2, (old, new)), match=message)


def load_weights_non_strict(model, params):
    model.load_state_dict(params, strict=False)
    return model


def test_load_weights_check_catches_silent_missing_keys():
    assert_check_fails(checks.check_load_gpt2_weights, load_weights_non_strict, match="silently")


def test_lm_loss_check_catches_unshifted_targets():
    assert_check_fails(checks.check_lm_cross_entropy, lambda logits, tokens: F.cross_entropy(logits.flatten(0, 1), tokens.flatten()))


TRAIN_LOSS = "loss = lm_cross_entropy(model(batch), batch)"


@pytest.mark.parametrize(
    "replacements,message",
    [
        ([("        opt.zero_grad(set_to_none=True)\n", "")], r"accumulating.*zero_grad"),
        ([("opt.zero_grad(set_to_none=True)\n        loss.backward()", "loss.backward()\n        opt.zero_grad()")],
         r"after the first step.*zero_grad, loss.backward\(\), then optimizer.step\(\)"),
        ([(TRAIN_LOSS, "loss = lm_cross_entropy(model(batch[:, :-1]), batch[:, 1:])")], r"one position short.*already shifts"),
        ([(TRAIN_LOSS, "loss = F.cross_entropy(model(batch).flatten(0, 1), batch.flatten())")], r"train_loss'\]\[0\].*shift"),
        ([("random_batches(val_tokens", "random_batches(train_tokens")], r"validation batches contain training tokens"),
        ([("history[\"train_loss\"].append(loss.item())", "history[\"train_loss\"].append(loss)")], r"holds tensors.*item"),
        ([("step % eval_every == 0 or step == steps - 1", "step % eval_every == 0")], r"val_step.*last step"),
        ([("with torch.no_grad():  # a few batches", "if True:  # a few batches")], r"forward passes with gradients.*no_grad"),
    ],
    ids=["no-zero-grad", "zero-grad-after-backward", "double-shift", "no-shift", "eval-on-train", "tensor-history",
         "no-final-eval", "eval-with-grad"],
)
def test_train_lm_check_names_the_bug(replacements, message):
    assert_check_fails(checks.check_train_lm, mutant(ref.train_lm, *replacements), match=message)


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


SAMPLE_SOFTMAX = "return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]"
SAMPLE_TEMP = "    logits = apply_temperature(logits, cfg.temperature)\n"


@pytest.mark.parametrize(
    "replacements,message",
    [
        ([(SAMPLE_TEMP, ""), (SAMPLE_SOFTMAX, SAMPLE_SOFTMAX.replace("logits.softmax(dim=-1)", "logits.softmax(dim=-1) / cfg.temperature"))], r"temperature has no effect.*before the softmax"),
        ([(SAMPLE_SOFTMAX, SAMPLE_SOFTMAX.replace(", generator=generator", ""))], r"generator=generator"),
        ([(SAMPLE_SOFTMAX, SAMPLE_SOFTMAX.replace("[:, 0]", ""))], r"\[:, 0\]"),
        ([("    logits = apply_frequency_penalty(input_ids, logits, cfg.freq_penalty) if cfg.freq_penalty else logits\n", "")],
         r"frequency penalty is missing"),
        ([(SAMPLE_TEMP, ""), (SAMPLE_SOFTMAX, SAMPLE_TEMP.strip() + "\n    " + SAMPLE_SOFTMAX)],
         r"filters ran before the temperature"),
        ([("if cfg.temperature == 0:\n        return logits.argmax(dim=-1)\n", "if cfg.temperature == 0:\n        cfg = SamplingConfig()\n")],
         r"temperature 0.*argmax"),
        ([(SAMPLE_SOFTMAX, "return torch.multinomial(torch.ones_like(logits), 1, generator=generator)[:, 0]")],
         r"probability 0|differ from the expected"),
    ],
    ids=["temperature-after-softmax", "ignores-generator", "returns-batch-by-1", "no-penalty", "filters-before-temperature",
         "samples-at-temperature-0", "samples-uniformly"],
)
def test_sample_next_token_check_names_the_bug(replacements, message):
    assert_check_fails(checks.check_sample_next_token, mutant(ref.sample_next_token, *replacements), match=message)


GEN_FEED = "new = tokens if cache is None or cache.length == 0 else tokens[:, -1:]"
GEN_APPEND = "tokens = torch.cat([tokens, next_token[:, None]], dim=1)"


@pytest.mark.parametrize(
    "replacements,message",
    [
        ([(GEN_APPEND, "continuation = torch.cat([tokens, next_token[:, None]], dim=1)")], r"returned 0 new tokens.*append"),
        ([(GEN_FEED, "new = input_ids")], r"every new token of a row is the same"),
        ([("range(max_new_tokens)", "range(max_new_tokens + 1)")], r"returned 13 new tokens.*exactly max_new_tokens"),
        ([("logits = model(new, kv_cache=cache)[:, -1]", "logits = model(new, kv_cache=cache)[:, 0]")], r"same.*logits of the last position"),
        ([(GEN_FEED, "new = tokens")], r"context length|with the cache, feed the whole prompt once"),
        ([("next_token = sample_next_token(tokens, logits, cfg, generator)", "next_token = logits.argmax(dim=-1)")],
         r"seeds 0 and 1 gave the same tokens"),
        ([("next_token = sample_next_token(tokens, logits, cfg, generator)", "next_token = sample_next_token(tokens, logits, cfg)")],
         r"seed=0 gave different tokens"),
    ],
    ids=["never-appends", "feeds-the-prompt-every-step", "one-token-too-many", "first-position-logits",
         "cache-fed-whole-sequence", "ignores-sampling-config", "ignores-generator"],
)
def test_generate_check_names_the_bug(replacements, message):
    assert_check_fails(checks.check_generate, mutant(ref.generate, *replacements), match=message)


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
        self.k = k if self.k is None else torch.cat([k, self.k], dim=1)
        self.v = v if self.v is None else torch.cat([v, self.v], dim=1)
        return self.k, self.v


class CacheForgets(ref.LayerKVCache):
    def update(self, k, v):
        self.k, self.v = k, v
        return k, v


class CacheHeadAxis(ref.LayerKVCache):
    """Appends along dim=-2, right for a [batch, n_heads, pos, d_head] cache but here that is the head axis."""

    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v


@pytest.mark.parametrize("bug", [CachePrepends, CacheForgets, CacheHeadAxis])
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


@pytest.mark.parametrize("chunks", [(9,), (5, 3, 1), (4, 1, 1, 3)])
def test_fused_attention_matches_the_plain_path_with_a_chunked_cache(chunks):
    """forward_fused has three mask cases: as many queries as keys (is_causal), one query (no mask) and
    a few queries after a cache (the offset mask). Fed in chunks, it must give the plain path's logits
    and the same q, k, v and z at every hook."""
    plain, fused = checks.reference_model(), checks.reference_model(attn_impl="sdpa")
    tokens = checks._tokens(2, sum(chunks), seed=3)
    names = [f"blocks.{layer}.attn.hook_{x}" for layer in range(plain.cfg.n_layers) for x in "qkvz"]
    caches = ref.KVCache.empty(plain.cfg.n_layers), ref.KVCache.empty(fused.cfg.n_layers)
    start = 0
    with torch.no_grad():
        for n in chunks:
            part = tokens[:, start : start + n]
            (want, want_acts), (got, got_acts) = (
                model.run_with_cache(part, kv_cache=cache, names_filter=names) for model, cache in zip((plain, fused), caches)
            )
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=f"logits of the chunk of {n} after {start} cached")
            for name in names:
                torch.testing.assert_close(got_acts[name], want_acts[name], atol=1e-5, rtol=1e-5, msg=name)
            start += n


def test_tied_readout_copy_gives_the_same_logits_and_follows_the_weights():
    """A cached decoding step reads the logits off a d_model-major copy of W_E kept in the KV cache. It
    must give W_E^T's numbers, be made once per cache, be remade when W_E changes in place or is
    replaced, and never be used where gradients flow or for more than one position."""
    model = checks.reference_model(tie_embeddings=True)
    prompt = checks._tokens(2, 6, seed=5)
    cache = ref.KVCache.empty(model.cfg.n_layers)
    with torch.no_grad():
        model(prompt[:, :5], kv_cache=cache)
        assert cache._readout is None, "the prompt (several positions) should use W_E itself"
        stepped = model(prompt[:, 5:], kv_cache=cache)  # a decoding step through forward takes the copy
        assert cache._readout is not None, "GPT2.forward should hand its kv_cache to tied_readout"
        torch.testing.assert_close(stepped, model(prompt)[:, 5:], atol=1e-5, rtol=1e-5)
        residual = torch.randn(2, 1, model.cfg.d_model)
        torch.testing.assert_close(model.tied_readout(residual, cache), residual @ model.embed.W_E.T)
        copy = cache._readout[2]
        assert copy.is_contiguous() and copy.shape == (model.cfg.d_model, model.cfg.d_vocab)
        model.tied_readout(residual, cache)
        assert cache._readout[2] is copy, "the copy should be made once per generation, not per step"
        model.embed.W_E.mul_(1.5)  # an in-place change (as an optimizer step makes)
        torch.testing.assert_close(model.tied_readout(residual, cache), residual @ model.embed.W_E.T)
        model.embed.W_E = torch.nn.Parameter(torch.randn_like(model.embed.W_E))
        torch.testing.assert_close(model.tied_readout(residual, cache), residual @ model.embed.W_E.T)
    residual.requires_grad_(True)
    model.tied_readout(residual, cache).sum().backward()
    assert model.embed.W_E.grad is not None, "with gradients on, the read-out must use W_E itself"


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

SCORES = "einops.einsum(q, k, \"b q h e, b k h e -> b h q k\") / math.sqrt(self.cfg.d_head)"
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


LN_SCALE = "scale = self.hook_scale((residual.pow(2).mean(dim=-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt())"


@pytest.mark.parametrize(
    "new",
    [
        "scale = self.hook_scale(residual.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.cfg.layer_norm_eps)",  # eps outside the root
        "scale = self.hook_scale(residual.std(dim=-1, keepdim=True, unbiased=False) + self.cfg.layer_norm_eps)",  # std + eps
        "scale = self.hook_scale((residual.var(dim=-1, keepdim=True, unbiased=True) + self.cfg.layer_norm_eps).sqrt())",  # unbiased variance
    ],
    ids=["eps-outside-sqrt", "std-plus-eps", "unbiased-variance"],
)
def test_layer_norm_check_catches_eps_and_variance_bugs(new):
    assert_check_fails(checks.check_layer_norm, mutant(ref.LayerNorm, (LN_SCALE, new)), match="LayerNorm output")


def test_eps_outside_the_root_fails_only_on_small_variance_inputs():
    """The wide inputs alone would let this bug through: the small-variance case is what catches it."""
    bug = mutant(ref.LayerNorm, (LN_SCALE, "scale = self.hook_scale(residual.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.cfg.layer_norm_eps)"))
    assert_check_fails(checks.check_layer_norm, bug, match="small-variance inputs")


def test_top_k_check_rejects_nan_for_dropped_logits():
    nan_fill = mutant(ref.top_k_filter, ('float("-inf")', 'float("nan")'))
    assert_check_fails(checks.check_top_k_filter, nan_fill, match=r"contains NaN.*-inf")
    nan_fill_p = mutant(ref.top_p_filter, ('float("-inf")', 'float("nan")'))
    assert_check_fails(checks.check_top_p_filter, nan_fill_p, match=r"contains NaN")


def test_block_check_insists_on_the_residual_hooks():
    no_mid_hook = mutant(ref.TransformerBlock, ("resid_mid = self.hook_resid_mid(resid_pre + ", "resid_mid = (resid_pre + "))
    assert_check_fails(checks.check_transformer_block, no_mid_hook, match=r"never passed through self.hook_resid_mid")


# --- the hooks section 1.3 reads ------------------------------------------------------------------


def test_layer_norm_check_insists_on_hook_scale():
    no_hook = mutant(ref.LayerNorm, (LN_SCALE, LN_SCALE.replace("self.hook_scale(", "(")))
    assert_check_fails(checks.check_layer_norm, no_hook, match=r"LayerNorm.hook_scale")
    no_norm_hook = mutant(ref.LayerNorm, ("self.hook_normalized(residual / scale)", "(residual / scale)"))
    assert_check_fails(checks.check_layer_norm, no_norm_hook, match=r"LayerNorm.hook_normalized")


def test_block_check_insists_on_the_sublayer_output_hooks():
    no_attn_out = mutant(ref.TransformerBlock, ("attn_out = self.hook_attn_out(", "attn_out = ("))
    assert_check_fails(checks.check_transformer_block, no_attn_out, match=r"attn sublayer's output never passed")
    mlp_out_after_add = mutant(ref.TransformerBlock, ("return self.hook_resid_post(resid_mid + mlp_out)",
                                                      "return self.hook_resid_post(self.hook_mlp_out(resid_mid + mlp_out))"))
    assert_check_fails(checks.check_transformer_block, mlp_out_after_add, match=r"hook_mlp_out")


def test_gpt2_check_insists_on_the_embedding_hooks():
    summed = mutant(ref.GPT2, ("self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens, offset))",
                               "self.hook_embed(self.embed(tokens) + self.pos_embed(tokens, offset))"))
    assert_check_fails(checks.check_gpt2, summed, match=r"hook_embed|hook_pos_embed")


def test_sdpa_warns_that_it_records_no_pattern():
    model = checks.reference_model(attn_impl="sdpa")
    with pytest.warns(UserWarning, match="hook_pattern records nothing"):
        _, cache = model.run_with_cache(checks._tokens(1, 5))
    assert "blocks.0.attn.hook_pattern" not in cache and "blocks.0.attn.hook_z" in cache
