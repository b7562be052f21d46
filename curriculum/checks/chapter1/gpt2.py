"""Checks for section 1.1 (GPT-2 from scratch). Each compares the learner's code with an
independent implementation: torch.nn.functional, Hugging Face transformers (model, logits
processors, generate) or TransformerLens, never only with our own solution."""

from __future__ import annotations

import contextlib
import copy
import functools

import math

import einops
import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from curriculum.solutions.chapter1 import gpt2 as ref
from curriculum.checking import (
    as_tensor,
    assert_close,
    assert_equal,
    assert_finite,
    assert_scalar_close,
    assert_shape,
    check,
    fail,
    module_instance,
    randomise_parameters,
)
from curriculum.utils.offline import load_tokenizer, offline_gpt2_config

# small enough to run in milliseconds, big enough that every axis has a distinct length
CFG = ref.Config(d_model=48, n_layers=2, n_heads=3, d_head=16, d_mlp=96, d_vocab=101, n_ctx=40)
BATCH, SEQ = 2, 7


def _seed(s: int = 0) -> torch.Generator:
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


@contextlib.contextmanager
def _recording(module: torch.nn.Module, names: tuple[str, ...]):
    """Record what passes through each named HookPoint of `module` during the block (a missing hook: absent)."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:
        hook = getattr(module, name, None)
        if isinstance(hook, torch.nn.Module):
            handles.append(hook.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, o)))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def _expect_hooks(seen: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str, hint: str) -> None:
    """Every hook fired, with the right shape and value; the message says which one and how to route it."""
    for name, value in expected.items():
        if name not in seen:
            fail(f"nothing passed through {where}.{name}: {hint}")
        got = seen[name]
        if tuple(got.shape) != tuple(value.shape):
            fail(f"the value at {where}.{name} has shape {tuple(got.shape)}, expected {tuple(value.shape)}: {hint}")
        assert_close(got, value, f"the value at {where}.{name}", atol=1e-4, hint=hint)


def _params(module: torch.nn.Module, expected: dict[str, tuple[int, ...]]) -> None:
    got = dict(module.named_parameters(recurse=False))
    for name, shape in expected.items():
        if name not in got:
            fail(f"{type(module).__name__} has no parameter {name!r} (it has {sorted(got) or 'none'}); keep the names from the skeleton")
        if tuple(got[name].shape) != shape:
            fail(f"parameter {name} should have shape {shape}, got {tuple(got[name].shape)}")


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


@check
def check_layer_norm(LayerNorm) -> None:
    ln = module_instance(LayerNorm, CFG)
    _params(ln, {"w": (CFG.d_model,), "b": (CFG.d_model,)})
    randomise_parameters(ln)
    g = _seed()
    # one wide batch, then vectors whose variance (about 1e-6 to 1e-4) is comparable to eps = 1e-5: there
    # eps inside vs outside the square root, or std + eps, give visibly different outputs
    wide = torch.randn(BATCH, SEQ, CFG.d_model, generator=g) * 3 + 1
    scales = torch.logspace(-3, -2, SEQ)[None, :, None]
    narrow = torch.randn(BATCH, SEQ, CFG.d_model, generator=g) * scales + 0.5
    for x, what in [(wide, "LayerNorm output"), (narrow, "LayerNorm output on small-variance inputs")]:
        expected = F.layer_norm(x, (CFG.d_model,), ln.w, ln.b, CFG.layer_norm_eps)
        with torch.no_grad(), _recording(ln, ("hook_scale", "hook_normalized")) as seen:
            got = ln(x)
        assert_close(
            got, expected, what, atol=1e-4,
            hint="compare with torch.nn.functional.layer_norm: biased variance (unbiased=False / .pow(2).mean()), "
            "eps inside the square root ((var + eps).sqrt(), not std + eps), normalise over the last axis",
        )
    scale = (x.var(-1, unbiased=False, keepdim=True) + CFG.layer_norm_eps).sqrt()
    _expect_hooks(seen, {"hook_scale": scale, "hook_normalized": F.layer_norm(x, (CFG.d_model,), eps=CFG.layer_norm_eps)},
                  "LayerNorm", "route the divisor sqrt(var + eps), kept as [batch, pos, 1], through self.hook_scale, and the "
                  "normalised value (before w and b) through self.hook_normalized; section 1.3 divides by hook_scale")


@check
def check_embed(Embed) -> None:
    embed = module_instance(Embed, CFG)
    _params(embed, {"W_E": (CFG.d_vocab, CFG.d_model)})
    tokens = torch.randint(0, CFG.d_vocab, (BATCH, SEQ), generator=_seed())
    assert_close(embed(tokens), F.embedding(tokens, embed.W_E), "Embed output")


@check
def check_pos_embed(PosEmbed) -> None:
    pos = module_instance(PosEmbed, CFG)
    _params(pos, {"W_pos": (CFG.n_ctx, CFG.d_model)})
    tokens = torch.randint(0, CFG.d_vocab, (BATCH, SEQ), generator=_seed())
    expected = pos.W_pos[:SEQ].expand(BATCH, SEQ, CFG.d_model)
    assert_close(pos(tokens), expected, "PosEmbed output", hint="position embeddings depend on positions, not on token ids")
    assert_close(pos(tokens[:, :2], offset=5), pos.W_pos[5:7].expand(BATCH, 2, CFG.d_model),
                 "PosEmbed output with offset=5", hint="with a KV cache the first new token sits at position `offset`")


@check
def check_apply_causal_mask(apply_causal_mask) -> None:
    g = _seed()
    for n_q, n_k in [(SEQ, SEQ), (1, SEQ), (3, SEQ)]:
        scores = torch.randn(BATCH, CFG.n_heads, n_q, n_k, generator=g)
        got = assert_shape(apply_causal_mask(scores.clone()), scores.shape, f"masked scores ({n_q} queries, {n_k} keys)")
        # independent oracle: the boolean mask torch's scaled_dot_product_attention builds for is_causal, shifted to the bottom-right
        allowed = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=n_k - n_q)
        if not torch.equal(torch.isneginf(got), ~allowed.expand_as(got)):
            bad = tuple(int(i) for i in torch.nonzero(torch.isneginf(got) != ~allowed.expand_as(got))[0])
            q, k = bad[-2:]
            should = "masked (-inf)" if not allowed[q, k] else "kept"
            fail(f"with {n_q} {'query' if n_q == 1 else 'queries'} and {n_k} keys, query {q} / key {k} should be {should}. "
                 "Query i sits at absolute position n_keys - n_queries + i; it may attend to keys up to and including itself")
        assert_close(got[..., allowed], scores[..., allowed], "unmasked scores", hint="only masked entries should change")


def _project(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-head queries, keys or values from the learner's own weights: [batch, head, pos, d_head]."""
    return einops.einsum(x, W, "b p d, h d e -> b h p e") + b[:, None]


def _reference_attention(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Multi-head causal attention from the learner's own weights via torch's fused kernel."""
    q, k, v = (_project(x, W, b) for W, b in ((attn.W_Q, attn.b_Q), (attn.W_K, attn.b_K), (attn.W_V, attn.b_V)))
    z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return einops.einsum(z, attn.W_O, "b h p e, h e d -> b p d") + attn.b_O


def _reference_pattern(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The causal attention pattern of the learner's weights, computed independently: [batch, head, q, k]."""
    q, k = _project(x, attn.W_Q, attn.b_Q), _project(x, attn.W_K, attn.b_K)
    scores = einops.einsum(q, k, "b h q e, b h k e -> b h q k") / math.sqrt(attn.W_Q.shape[-1])
    future = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1)


def _diagnose_pattern(pattern: torch.Tensor, expected: torch.Tensor, d_head: int) -> None:
    """Name the bug from the recorded pattern: softmax axis, mask, or scale."""
    sums = pattern.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        col_sums = pattern.sum(-2)
        axis = " (its columns sum to 1: you took the softmax over the query axis)" if torch.allclose(col_sums, torch.ones_like(col_sums), atol=1e-4) else ""
        fail(f"rows of your attention pattern should sum to 1, but row sums range over "
             f"[{sums.min().item():.3g}, {sums.max().item():.3g}]{axis}: softmax over the key (last) axis")
    future = torch.ones(pattern.shape[-2:], dtype=torch.bool).triu(1)
    if pattern[..., future].abs().max() > 1e-6:
        fail(f"your pattern puts weight {pattern[..., future].sum(-1).max().item():.3g} above the diagonal: queries attend "
             "to later positions. Apply the causal mask (scores of keys after the query set to -inf) before the softmax")
    diagonal = pattern.diagonal(dim1=-2, dim2=-1)
    if diagonal[..., 0].min() < 1 - 1e-4:
        fail("the first query does not put all its weight on itself (it is the only key it may see): the mask is "
             "off by one, a query must be allowed to attend to its own position")
    if torch.allclose(pattern, expected, atol=1e-5):
        return
    # same shape of preference, different sharpness? then log p = c * log p_ref + per-row constant
    # fit on entries both patterns resolve (a sharper softmax underflows to exactly 0 in float32)
    valid = ~future & (pattern > 1e-12) & (expected > 1e-12)
    lp, lr = pattern.clamp_min(1e-30).log(), expected.clamp_min(1e-30).log()
    rows = valid.sum(-1, keepdim=True).clamp_min(1)
    centre = lambda a: torch.where(valid, a - torch.where(valid, a, 0).sum(-1, keepdim=True) / rows, 0)  # noqa: E731
    a, b = centre(lp), centre(lr)
    c = float((a * b).sum() / (b * b).sum())
    if (a - c * b).pow(2).sum() < 1e-6 * (a * a).sum() and abs(c - 1) > 1e-3:
        fail(f"your pattern is the expected one made {'sharper' if c > 1 else 'flatter'} by a factor {c:.3g} in log space: "
             f"the scale is off. Divide the scores by sqrt(d_head) = {math.sqrt(d_head):.3g}"
             + (" (you did not scale at all)" if abs(c - math.sqrt(d_head)) < 1e-2 else "")
             + (" (you divided by d_head instead of its square root)" if abs(c - 1 / math.sqrt(d_head)) < 1e-2 else ""))
    row = tuple(int(i) for i in torch.nonzero((pattern - expected).abs() > 1e-5)[0][:3])
    fail(f"your attention pattern differs from the expected one (first at batch, head, query = {row}): check q, k "
         "(weights and biases b_Q, b_K) and the 1/sqrt(d_head) scale")


@check
def check_attention(Attention) -> None:
    attn = module_instance(Attention, CFG)
    _params(attn, {"W_Q": (CFG.n_heads, CFG.d_model, CFG.d_head), "W_O": (CFG.n_heads, CFG.d_head, CFG.d_model),
                   "b_Q": (CFG.n_heads, CFG.d_head), "b_O": (CFG.d_model,)})
    randomise_parameters(attn, std=0.3)
    x = torch.randn(BATCH, SEQ, CFG.d_model, generator=_seed())
    # the pattern must flow through hook_pattern, so that run_with_cache and interpretability tools see it;
    # recording it first lets the check name the bug (axis, mask, scale) before comparing outputs
    seen = []
    handle = attn.hook_pattern.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            got = attn(x)
    finally:
        handle.remove()
    if not seen:
        fail("the attention pattern never passed through self.hook_pattern: wrap the softmax output in it")
    with torch.no_grad(), _recording(attn, ("hook_q", "hook_k", "hook_v", "hook_z")) as hooks:
        attn(x)
    pattern = assert_shape(seen[0], (BATCH, CFG.n_heads, SEQ, SEQ), "pattern at hook_pattern",
                           hint="one pattern per head: [batch, n_heads, query_pos, key_pos]")
    assert_finite(pattern, "pattern at hook_pattern", hint="a row with every key masked gives NaN: is the mask off by one (a query may attend to itself)? And mask with -inf *before* the softmax")
    with torch.no_grad():
        _diagnose_pattern(pattern, _reference_pattern(attn, x), CFG.d_head)
        expected = _reference_attention(attn, x)
        tl = {name: einops.rearrange(_project(x, W, b), "b h p e -> b p h e")
              for name, W, b in (("hook_q", attn.W_Q, attn.b_Q), ("hook_k", attn.W_K, attn.b_K), ("hook_v", attn.W_V, attn.b_V))}
        tl["hook_z"] = einops.einsum(pattern, tl["hook_v"], "b h q k, b k h e -> b q h e")
    _expect_hooks(hooks, tl, "Attention",
                  "each of q, k, v and z should pass through its hook as [batch, pos, n_heads, d_head], TransformerLens's "
                  "layout (project with 'b p d, h d e -> b p h e'); section 1.3 reads hook_z[:, pos, head]")
    assert_close(
        got, expected, "Attention output", atol=1e-4,
        hint="your pattern is right: check the weighted sum of v (over the key axis), W_O (summed over heads) and that b_O is added once",
    )


@check
def check_mlp(MLP) -> None:
    mlp = module_instance(MLP, CFG)
    _params(mlp, {"W_in": (CFG.d_model, CFG.d_mlp), "W_out": (CFG.d_mlp, CFG.d_model), "b_in": (CFG.d_mlp,), "b_out": (CFG.d_model,)})
    randomise_parameters(mlp)
    x = torch.randn(BATCH, SEQ, CFG.d_model, generator=_seed())
    expected = F.linear(F.gelu(F.linear(x, mlp.W_in.T, mlp.b_in), approximate="tanh"), mlp.W_out.T, mlp.b_out)
    got = mlp(x)
    exact_gelu = F.linear(F.gelu(F.linear(x, mlp.W_in.T, mlp.b_in)), mlp.W_out.T, mlp.b_out)
    if got.shape == expected.shape and torch.allclose(got, exact_gelu, atol=1e-5) and not torch.allclose(got, expected, atol=1e-4):
        fail("your MLP uses the exact GELU; GPT-2 uses its tanh approximation: F.gelu(pre, approximate='tanh')")
    assert_close(got, expected, "MLP output", atol=1e-4,
                 hint="x @ W_in + b_in, the tanh GELU, then @ W_out + b_out (both biases added after their matrix product)")


@check
def check_transformer_block(TransformerBlock) -> None:
    block = module_instance(TransformerBlock, CFG)
    randomise_parameters(block, std=0.3)
    x = torch.randn(BATCH, SEQ, CFG.d_model, generator=_seed())
    eps = CFG.layer_norm_eps

    def ln(m, t):
        return F.layer_norm(t, (CFG.d_model,), m.w, m.b, eps)

    with torch.no_grad():
        mid = x + _reference_attention(block.attn, ln(block.ln1, x))
        m = block.mlp
        expected = mid + F.linear(F.gelu(F.linear(ln(block.ln2, mid), m.W_in.T, m.b_in), approximate="tanh"), m.W_out.T, m.b_out)
        seen: dict[str, torch.Tensor] = {}
        names = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
        with _recording(block, names) as seen:
            got = block(x)
    assert_close(got, expected, "TransformerBlock output", atol=1e-4,
                 hint="pre-norm: resid_mid = resid_pre + attn(ln1(resid_pre)); resid_post = resid_mid + mlp(ln2(resid_mid))")
    for name, value in zip(names, (x, mid - x, mid, expected - mid, expected)):
        if name not in seen:
            what = "the residual stream" if "resid" in name else f"the {name[5:9]} sublayer's output"
            fail(f"{what} never passed through self.{name}: route the three stream values and the two sublayer "
                 "outputs through their hook points, so run_with_cache (and section 1.3) can read them")
        assert_close(seen[name], value, f"the value at {name}", atol=1e-4,
                     hint="hook_attn_out and hook_mlp_out hold what each sublayer adds to the stream, before the addition"
                     if "out" in name else "")


@check
def check_unembed(Unembed) -> None:
    unembed = module_instance(Unembed, CFG)
    _params(unembed, {"W_U": (CFG.d_model, CFG.d_vocab), "b_U": (CFG.d_vocab,)})
    randomise_parameters(unembed)
    x = torch.randn(BATCH, SEQ, CFG.d_model, generator=_seed())
    assert_close(unembed(x), F.linear(x, unembed.W_U.T, unembed.b_U), "Unembed output", atol=1e-4,
                 hint="logits = x @ W_U + b_U: a matrix product over d_model, plus the bias")


# ---------------------------------------------------------------------------------------------
# The whole model, against Hugging Face through TransformerLens
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def hf_reference(init_range: float = 0.1, seed: int = 0):
    """A GPT2LMHeadModel of CFG's shape with random weights (std init_range, large enough that
    greedy choices are not near-ties), and its weights in TransformerLens naming, read through a
    TransformerBridge. The bridge wraps a *copy*: a wrapped model's own `generate` misbehaves."""
    from transformer_lens.model_bridge import TransformerBridge

    torch.manual_seed(seed)
    hf_cfg = offline_gpt2_config(CFG.d_vocab, n_layer=CFG.n_layers, n_embd=CFG.d_model, n_head=CFG.n_heads,
                                 n_positions=CFG.n_ctx, eos_token_id=None)
    hf_cfg.initializer_range = init_range
    hf_cfg.n_inner = CFG.d_mlp
    hf = GPT2LMHeadModel(hf_cfg).eval()
    bridge = TransformerBridge.boot_transformers("gpt2", hf_model=copy.deepcopy(hf), tokenizer=load_tokenizer().value)
    bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    tl_params = {k: v.detach().clone() for k, v in bridge.tl_parameters().items()}
    return hf, tl_params


def reference_model(tie_embeddings: bool = False, attn_impl: str = "manual") -> ref.GPT2:
    """Our reference GPT2 holding the HF reference weights (for checks of sampling code)."""
    cfg = ref.Config(**{**CFG.__dict__, "tie_embeddings": tie_embeddings, "attn_impl": attn_impl})
    model = ref.GPT2(cfg)
    model.load_state_dict({k: v for k, v in hf_reference()[1].items() if k in model.state_dict()})
    return model.eval()


def _tokens(batch: int = BATCH, seq: int = SEQ, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, CFG.d_vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


@check
def check_gpt2(GPT2) -> str:
    hf, tl_params = hf_reference()
    tokens = _tokens()
    with torch.no_grad():
        expected = hf(tokens).logits
    for tied in (False, True):
        cfg = ref.Config(**{**CFG.__dict__, "tie_embeddings": tied})
        model = module_instance(GPT2, cfg)
        ours = model.state_dict()
        if tied and any(k.startswith("unembed.") for k in ours):
            fail("with cfg.tie_embeddings=True the model should have no Unembed: the logits read embed.W_E (transposed)")
        missing = [k for k in ours if k not in tl_params]
        if missing:
            fail(f"(tie_embeddings={tied}) your model has parameters TransformerLens does not: {missing[:3]}. "
                 "Keep the submodule names embed, pos_embed, blocks, ln_final, unembed")
        model.load_state_dict({k: tl_params[k] for k in ours})
        try:
            with torch.no_grad():
                got = model.eval()(tokens)
        except (TypeError, RuntimeError) as e:
            if not tied:
                raise
            fix = ("residual @ self.embed.W_E.T (as an einsum, 'b p d, v d -> b p v'; the given "
                   "self.tied_readout(residual, kv_cache) computes the same)")
            if "NoneType" in str(e):
                fail(f"with tie_embeddings=True your forward raised {type(e).__name__}: {e}. In tied mode self.unembed is "
                     f"None, so it cannot be called: read the logits from self.embed.W_E instead, which is [d_vocab, d_model]: {fix}")
            fail(f"with tie_embeddings=True your forward raised {type(e).__name__}: {e}. The tied read-out multiplies the "
                 f"[batch, pos, d_model] residual by W_E transposed (W_E is [d_vocab, d_model]): {fix}")
        assert_close(got, expected, f"logits (tie_embeddings={tied}) vs Hugging Face GPT-2", atol=1e-4, rtol=1e-4,
                     hint="embed + pos_embed, every block in order, ln_final, then unembed (or W_E^T when tied)")
    with torch.no_grad(), _recording(model, ("hook_embed", "hook_pos_embed")) as seen:
        model(tokens)
    n_batch, n_pos = tokens.shape
    _expect_hooks(seen, {"hook_embed": model.embed.W_E[tokens], "hook_pos_embed": model.pos_embed.W_pos[:n_pos].expand(n_batch, -1, -1)},
                  "GPT2", "route the token embeddings through self.hook_embed and the position embeddings through "
                  "self.hook_pos_embed before adding them (section 1.3 attributes logits to each)")
    _check_cached_forward(model, tokens, expected)
    return "logits match Hugging Face's GPT-2 implementation on the same weights, to 1e-4, with and without a KV cache"


def _check_cached_forward(model: torch.nn.Module, tokens: torch.Tensor, expected: torch.Tensor, split: int = 4) -> None:
    """Feed the first `split` tokens, then the rest with the cache holding the first ones: the logits of
    the later tokens must be those of one uncached pass. This is where the position offset matters."""
    cache = ref.KVCache.empty(CFG.n_layers)
    with torch.no_grad():
        first = model(tokens[:, :split], kv_cache=cache)
        if cache.length != split:
            fail(f"after a forward pass over {split} tokens with a KV cache, the cache holds {cache.length} positions: "
                 "hand each block its own layer's cache, block(residual, kv_cache[layer]) (and in Attention, "
                 "k, v = kv_cache.update(k, v))")
        second = model(tokens[:, split:], kv_cache=cache)
    assert_close(first, expected[:, :split], f"logits of the first {split} tokens, fed with an empty KV cache", atol=1e-4, rtol=1e-4)
    n = tokens.shape[1]
    assert_close(second, expected[:, split:], f"logits of tokens {split}..{n - 1} fed after a KV cache holding {split} positions",
                 atol=1e-4, rtol=1e-4,
                 hint=f"those tokens sit at positions {split}..{n - 1}, not 0..{n - split - 1}: pass the offset to "
                 "self.pos_embed(tokens, offset)")


@check
def check_load_gpt2_weights(load_gpt2_weights) -> None:
    hf, tl_params = hf_reference()
    model = ref.GPT2(CFG)
    returned = load_gpt2_weights(model, dict(tl_params))
    if not isinstance(returned, torch.nn.Module):
        fail(f"load_gpt2_weights should return the model, got {type(returned).__name__}")
    tokens = _tokens()
    with torch.no_grad():
        assert_close(returned.eval()(tokens), hf(tokens).logits, "logits after loading", atol=1e-4)
    broken = {k: v for k, v in tl_params.items() if k != "blocks.0.attn.W_Q"}
    try:
        load_gpt2_weights(ref.GPT2(CFG), broken)
    except (KeyError, RuntimeError, ValueError):
        return
    fail("loading weights with blocks.0.attn.W_Q missing should raise (KeyError/RuntimeError), not silently keep random weights")


@check
def check_lm_cross_entropy(lm_cross_entropy) -> None:
    g = _seed()
    logits = torch.randn(BATCH, SEQ, CFG.d_vocab, generator=g)
    tokens = _tokens()
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, CFG.d_vocab), tokens[:, 1:].reshape(-1))
    assert_scalar_close(lm_cross_entropy(logits, tokens), expected.item(), "loss", rel=1e-5,
                        hint="position i predicts token i+1: drop the last logit and the first token")


TRAIN_CFG = ref.Config(d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64, d_vocab=40, n_ctx=16, tie_embeddings=True)


@check
def check_train_lm(train_lm) -> str:
    """Run the learner's loop on a tiny model, recording what the model saw (its inputs, its parameters at
    each forward pass, whether gradients were on), then replay the same batches with an independent AdamW
    loop: the first step where the two disagree names the bug."""
    g = torch.Generator().manual_seed(0)
    # training tokens are 0..19 and validation tokens 20..39, so every batch says where it came from
    train_tokens = torch.randint(0, 20, (400,), generator=g)
    val_tokens = torch.randint(20, TRAIN_CFG.d_vocab, (400,), generator=g)
    steps, batch_size, seq_len, lr, eval_every, eval_batches = 6, 4, 12, 1e-2, 4, 2
    torch.manual_seed(0)
    model = ref.GPT2(TRAIN_CFG)
    init = copy.deepcopy(model.state_dict())
    seen: list[tuple[torch.Tensor, bool, dict[str, torch.Tensor]]] = []

    def record(module, args):
        params = {k: v.detach().clone() for k, v in module.named_parameters()}
        seen.append((args[0].detach().clone(), torch.is_grad_enabled(), params))

    handle = model.register_forward_pre_hook(record)
    try:
        history = train_lm(model, train_tokens, val_tokens, steps=steps, batch_size=batch_size, seq_len=seq_len,
                           lr=lr, eval_every=eval_every, eval_batches=eval_batches, seed=0)
    finally:
        handle.remove()

    if not isinstance(history, dict) or not {"train_loss", "val_loss", "val_step"} <= set(history):
        fail("train_lm should return the history dict with keys 'train_loss', 'val_loss' and 'val_step'")
    for key, values in history.items():
        if any(isinstance(v, torch.Tensor) for v in values):
            fail(f"history[{key!r}] holds tensors: append loss.item(), a float (a tensor keeps its whole graph alive)")
    train = [(x, p) for x, grad, p in seen if grad]
    evals = [(x, p) for x, grad, p in seen if not grad]
    if len(train) != steps:
        fail(f"your model ran {len(train)} forward passes with gradients enabled, expected one per training step ({steps}). "
             "Run the validation batches under torch.no_grad()")
    if len(history["train_loss"]) != steps:
        fail(f"history['train_loss'] has {len(history['train_loss'])} entries, expected one per step ({steps})")
    expected_evals = [s for s in range(steps) if s % eval_every == 0 or s == steps - 1]
    assert_equal(list(history["val_step"]), expected_evals, f"history['val_step'] (steps={steps}, eval_every={eval_every})",
                 hint="evaluate when step % eval_every == 0, and at the last step")
    for x, _ in train:
        if tuple(x.shape) == (batch_size, seq_len - 1):
            fail(f"your model saw training inputs of shape {tuple(x.shape)}, one position short of seq_len={seq_len}: "
                 "lm_cross_entropy already shifts targets by one, so give it the same batch as inputs and targets, "
                 "lm_cross_entropy(model(batch), batch)")
        assert_shape(x, (batch_size, seq_len), "a training batch", hint="random_batches(train_tokens, batch_size, seq_len, gen)")
        if x.max() >= 20:
            fail("your training batches contain validation tokens: draw them from train_tokens")
    if len(evals) != eval_batches * len(expected_evals):
        fail(f"your model ran {len(evals)} forward passes without gradients, expected eval_batches={eval_batches} at each "
             f"of the {len(expected_evals)} evaluations")
    if any(x.min() < 20 for x, _ in evals):
        fail("your validation batches contain training tokens: draw them from val_tokens")

    replay = ref.GPT2(TRAIN_CFG)
    replay.load_state_dict(init)
    opt = torch.optim.AdamW(replay.parameters(), lr=lr, weight_decay=0.01)
    for step, (x, params) in enumerate(train):
        for name, value in replay.named_parameters():
            if not torch.allclose(params[name], value.detach(), atol=1e-6, rtol=1e-5):
                if step == 1:
                    fail(f"after the first step, {name} differs from one AdamW step (lr={lr}, weight_decay=0.01) on "
                         "lm_cross_entropy(model(batch), batch): each step is zero_grad, loss.backward(), then "
                         "optimizer.step(), in that order")
                fail(f"steps 0..{step - 2} match, but after step {step - 1} {name} differs: the gradients of earlier "
                     "steps are accumulating. Call optimizer.zero_grad() at every step, before loss.backward()")
        loss = ref.lm_cross_entropy(replay(x), x)
        assert_scalar_close(history["train_loss"][step], loss.item(), f"history['train_loss'][{step}]", rel=1e-4,
                            hint="record loss.item() of lm_cross_entropy(model(batch), batch), the loss you step on; "
                            "lm_cross_entropy does the shift between inputs and targets")
        opt.zero_grad()
        loss.backward()
        opt.step()
    for i, start in enumerate(range(0, len(evals), eval_batches)):
        chunk = evals[start : start + eval_batches]
        probe = ref.GPT2(TRAIN_CFG)
        probe.load_state_dict(chunk[0][1])
        with torch.no_grad():
            expected_val = sum(ref.lm_cross_entropy(probe(x), x).item() for x, _ in chunk) / eval_batches
        assert_scalar_close(history["val_loss"][i], expected_val, f"history['val_loss'][{i}]", rel=1e-4,
                            hint="the mean of lm_cross_entropy over the eval_batches validation batches")
    return "every step equals an independent AdamW replay on the batches your model saw"


# ---------------------------------------------------------------------------------------------
# Sampling, against Hugging Face's logits processors and generate
# ---------------------------------------------------------------------------------------------


def _logits(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, CFG.d_vocab, generator=torch.Generator().manual_seed(seed)) * 3


@check
def check_apply_temperature(apply_temperature) -> None:
    logits = _logits()
    for t in (0.5, 2.0):
        expected = TemperatureLogitsWarper(t)(None, logits.clone())
        assert_close(apply_temperature(logits.clone(), t), expected, f"logits at temperature {t}", hint="divide, don't multiply")


@check
def check_apply_frequency_penalty(apply_frequency_penalty) -> None:
    input_ids = torch.tensor([[5, 5, 7, 5, 2], [1, 2, 3, 4, 4]])
    logits = torch.zeros(2, 10)
    expected = torch.zeros(2, 10)
    expected[0, 5], expected[0, 7], expected[0, 2] = -1.5, -0.5, -0.5
    expected[1, 1], expected[1, 2], expected[1, 3], expected[1, 4] = -0.5, -0.5, -0.5, -1.0
    assert_close(apply_frequency_penalty(input_ids, logits.clone(), 0.5), expected, "penalised logits",
                 hint="subtract penalty * (number of times the token already appears in *that row*)")


def _compare_filtered(got, expected: torch.Tensor, what: str, which_hint: str) -> None:
    """A filtered copy of the logits: dropped entries are -inf (never NaN), the same ones as Hugging
    Face's warper drops, and the kept ones are unchanged."""
    assert_shape(got, expected.shape, what)
    assert_finite(got, what, allow_neg_inf=True,
                  hint="set the logits you drop to float('-inf') (softmax gives them probability 0); NaN poisons sampling")
    kept, should = torch.isfinite(got), torch.isfinite(expected)
    if not torch.equal(kept, should):
        row = int(torch.nonzero((kept != should).any(-1))[0])
        fail(f"{what}: row {row} kept {int(kept[row].sum())} tokens, expected {int(should[row].sum())}. {which_hint}")
    assert_close(got[kept], expected[should], f"kept {what}", hint="don't change the logits you keep")


@check
def check_top_k_filter(top_k_filter) -> None:
    logits = _logits()
    for k in (1, 5):
        expected = TopKLogitsWarper(top_k=k)(None, logits.clone())
        _compare_filtered(top_k_filter(logits.clone(), k), expected, f"top-{k} logits",
                          "Keep the k largest logits of each row (ties with the k-th included)")


@check
def check_top_p_filter(top_p_filter) -> None:
    logits = _logits()
    for p in (0.5, 0.9):
        expected = TopPLogitsWarper(top_p=p)(None, logits.clone())
        _compare_filtered(top_p_filter(logits.clone(), p), expected, f"top-p={p} logits",
                          "Keep the smallest set of most likely tokens whose total probability reaches top_p, "
                          "including the token that crosses the threshold, and scatter the mask back to vocabulary order")


SAMPLE_VOCAB, SAMPLE_ROWS = 12, 20_000


def _sampling_distribution(logits: torch.Tensor, cfg, ids: torch.Tensor, *, temperature: bool = True, penalty: bool = True,
                           filters_first: bool = False) -> torch.Tensor:
    """Next-token probabilities for one row of logits, from Hugging Face's warpers (the penalty from
    torch.bincount). The keyword switches build the distributions of common bugs, to name them."""
    logits = logits[None].clone()
    if penalty and cfg.freq_penalty:
        counts = torch.bincount(ids, minlength=logits.shape[-1]).to(logits.dtype)
        logits = logits - cfg.freq_penalty * counts
    warpers = []
    if cfg.top_k is not None:
        warpers.append(TopKLogitsWarper(top_k=cfg.top_k))
    if cfg.top_p is not None:
        warpers.append(TopPLogitsWarper(top_p=cfg.top_p))
    temp = [TemperatureLogitsWarper(cfg.temperature)] if temperature else []
    for w in (warpers + temp if filters_first else temp + warpers):
        logits = w(None, logits)
    return logits.softmax(-1)[0]


@check
def check_sample_next_token(sample_next_token) -> str:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, CFG.d_vocab, generator=g) * 3
    ids = _tokens(4, 5)
    greedy = sample_next_token(ids, logits.clone(), ref.SamplingConfig(temperature=0.0), torch.Generator().manual_seed(0))
    assert_equal(greedy, logits.argmax(-1), "tokens at temperature 0",
                 hint="temperature 0 means greedy: the argmax of each row's logits, no sampling")

    base = torch.randn(SAMPLE_VOCAB, generator=g) * 2
    rows = base.expand(SAMPLE_ROWS, SAMPLE_VOCAB).contiguous()
    # the penalty lands on the likeliest tokens (the first three times), where it visibly moves probability
    ranked = base.argsort(descending=True)
    ids = torch.cat([ranked[:1].repeat(3), ranked[1:3]])
    input_ids = ids[None].expand(SAMPLE_ROWS, -1)
    cases = [ref.SamplingConfig(temperature=0.5), ref.SamplingConfig(temperature=1.5, top_k=4),
             ref.SamplingConfig(temperature=1.5, top_p=0.6), ref.SamplingConfig(temperature=0.7, freq_penalty=0.8)]
    for cfg in cases:
        what = f"tokens sampled with {cfg}"
        got = sample_next_token(input_ids, rows.clone(), cfg, torch.Generator().manual_seed(1))
        got = assert_shape(got, (SAMPLE_ROWS,), what, hint="one token id per row: torch.multinomial(probs, 1) is "
                           "[batch, 1], index it with [:, 0]")
        if got.is_floating_point():
            fail(f"{what} should be integer token ids, got dtype {got.dtype}")
        again = sample_next_token(input_ids, rows.clone(), cfg, torch.Generator().manual_seed(1))
        if not torch.equal(got, again):
            fail(f"{what}: two calls with identically seeded generators gave different tokens: pass "
                 "generator=generator to torch.multinomial, so a seed makes sampling reproducible")
        freq = torch.bincount(got, minlength=SAMPLE_VOCAB).double() / SAMPLE_ROWS
        expected = _sampling_distribution(base, cfg, ids).double()
        never = (expected == 0) & (freq > 0)
        if never.any():
            t = int(torch.nonzero(never)[0])
            fail(f"{what}: token {t} is removed by the filters (probability 0) but was sampled "
                 f"{int(freq[t] * SAMPLE_ROWS)} times out of {SAMPLE_ROWS}: sample from the softmax of the filtered logits")
        tv = 0.5 * (freq - expected).abs().sum().item()
        if tv > 0.03:
            suspects = {
                "the filters ran before the temperature: apply the temperature first, then top-k and top-p":
                    _sampling_distribution(base, cfg, ids, filters_first=True),
                "the temperature has no effect: divide the logits by the temperature before the softmax (dividing "
                "the probabilities after it is undone when torch.multinomial renormalises them)":
                    _sampling_distribution(base, cfg, ids, temperature=False),
                "the frequency penalty is missing: subtract freq_penalty * count from the logits first":
                    _sampling_distribution(base, cfg, ids, penalty=False),
            }
            for bug, dist in suspects.items():
                if 0.5 * (freq - dist.double()).abs().sum().item() < 0.03 and 0.5 * (dist.double() - expected).abs().sum() > 0.06:
                    fail(f"{what}: the token frequencies match a sampler in which {bug}")
            fail(f"{what}: token frequencies {[round(f, 3) for f in freq.tolist()]} differ from the expected "
                 f"probabilities {[round(p, 3) for p in expected.tolist()]} (total variation {tv:.3f}): the order is "
                 "frequency penalty, temperature, top-k, top-p, then softmax and torch.multinomial")
    return f"greedy picks the argmax; {SAMPLE_ROWS:,} draws per setting match Hugging Face's warpers"


@check
def check_generate(generate) -> str:
    hf, _ = hf_reference()
    model = reference_model()
    prompt = _tokens(2, 5, seed=11)
    n_new = 12
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n_new, do_sample=False,
                           pad_token_id=0, eos_token_id=None)
    for use_cache in (False, True):
        what = f"greedy generate(..., max_new_tokens={n_new}, use_cache={use_cache})"
        got = generate(model, prompt.clone(), n_new, ref.SamplingConfig(temperature=0.0), use_cache=use_cache)
        got = as_tensor(got, what)
        if got.ndim == 2 and got.shape[0] == prompt.shape[0] and got.shape[1] != prompt.shape[1] + n_new:
            more = got.shape[1] - prompt.shape[1]
            fail(f"{what} returned {more} new tokens after the {prompt.shape[1]}-token prompt, expected {n_new}: "
                 + ("loop exactly max_new_tokens times" if more > n_new else
                    "append every sampled token to the sequence (tokens = torch.cat([tokens, next_token[:, None]], dim=1)) "
                    "and return prompt and continuation together"))
        assert_shape(got, expected.shape, what)
        assert_equal(got[:, : prompt.shape[1]], prompt, f"the prompt at the start of {what}",
                     hint="return the prompt followed by the new tokens")
        new, want = got[:, prompt.shape[1] :], expected[:, prompt.shape[1] :]
        if (new == new[:, :1]).all() and not (want == want[:, :1]).all():
            fail(f"{what}: every new token of a row is the same, {new[:, 0].tolist()}: the model keeps seeing the same "
                 "input. Feed it the growing sequence, with each sampled token appended, and read the logits of the last position")
        assert_equal(got, expected, f"{what} vs Hugging Face generate(do_sample=False)",
                     hint="each step: logits of the *last* position, the argmax, appended to the sequence"
                     + ("; with the cache, feed the whole prompt once, then only the newest token" if use_cache else ""))
    sampling = ref.SamplingConfig(temperature=1.0)
    runs = [generate(model, prompt.clone(), 8, sampling, seed=s) for s in (0, 0, 1)]
    if not torch.equal(runs[0], runs[1]):
        fail("two runs with seed=0 gave different tokens: pass the seeded generator to sample_next_token")
    if torch.equal(runs[0], runs[2]):
        fail("at temperature 1, seeds 0 and 1 gave the same tokens: pass cfg (and the generator) to sample_next_token "
             "rather than taking the argmax")
    return "greedy generation equals Hugging Face's generate, with and without the cache; sampling follows the seed"


@check
def check_beam_search(beam_search) -> str:
    hf, _ = hf_reference()
    model = reference_model()
    prompt = _tokens(1, 4, seed=3)
    beams, new_tokens = 3, 6
    out = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens, num_beams=beams,
                      num_return_sequences=beams, do_sample=False, length_penalty=0.0, early_stopping=True,
                      pad_token_id=0, eos_token_id=None, output_scores=True, return_dict_in_generate=True)
    result = beam_search(model, prompt, beams, new_tokens)
    if not isinstance(result, tuple) or len(result) != 2:
        fail("beam_search should return (beams, scores)")
    got_beams, got_scores = result
    assert_equal(got_beams, out.sequences, "beams (best first) vs Hugging Face generate(num_beams=3)",
                 hint="score = total log-prob; take the top num_beams over all (beam, next token) pairs, not per beam")
    assert_close(got_scores, out.sequences_scores, "beam scores (total log-probabilities)", atol=1e-4)
    return "same beams and scores as Hugging Face's beam search"


@check
def check_layer_kv_cache(LayerKVCache) -> str:
    model = reference_model()
    tokens = _tokens(2, 9, seed=4)
    with torch.no_grad():
        full = model(tokens)
        cache = ref.KVCache([LayerKVCache() for _ in range(CFG.n_layers)])
        if cache.length != 0:
            fail(f"a new LayerKVCache should have length 0, got {cache.length}")
        # a 5-token prompt, then a 2-token chunk (the mask needs keys in position order), then single tokens
        steps = [model(tokens[:, a:b], kv_cache=cache) for a, b in [(0, 5), (5, 7), (7, 8), (8, 9)]]
    if cache.length != 9:
        fail(f"after 9 tokens the cache should hold 9 positions, got {cache.length}: append along the position axis (dim=1: keys are [batch, pos, n_heads, d_head])")
    assert_close(torch.cat(steps, dim=1), full, "logits computed with the cache vs without", atol=1e-4,
                 hint="update() must return *all* keys/values so far (old then new), in position order")
    greedy = ref.SamplingConfig(temperature=0.0)
    plain = ref.generate(model, tokens[:1, :3], 12, greedy)
    with torch.no_grad():
        cache, out = ref.KVCache([LayerKVCache() for _ in range(CFG.n_layers)]), tokens[:1, :3]
        new = out
        for _ in range(12):
            nxt = model(new, kv_cache=cache)[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], 1)
            new = nxt
    assert_equal(out, plain, "cached greedy generation vs uncached", hint="the cached run must produce the same tokens")
    return "cached generation equals uncached, token for token"
