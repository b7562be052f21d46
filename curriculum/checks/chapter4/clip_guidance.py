"""Checks for 4.3: CLIP's two encoders against independent computations (an unfold-based patch
embedding; each encoder rebuilt here from the learner's own submodules), the loss against
F.cross_entropy in both directions, zero-shot with unnormalised embeddings, cross-attention against
F.scaled_dot_product_attention, the text-conditioned training loop with a spy model, the DDIM loop
against a reference loop on the exact noise prediction of Gaussian data, and the three guided noise
predictions against gradients derived by hand or by autograd here."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from curriculum.checking import (
    assert_close,
    assert_equal,
    assert_finite,
    assert_scalar_close,
    assert_shape,
    check,
    fail,
    module_instance,
    on_optimizer_steps,
    randomise_parameters,
)


@check
def check_clip_loss(clip_loss):
    g = torch.Generator().manual_seed(0)
    for batch, scale in [(8, math.log(1 / 0.07)), (5, math.log(300.0)), (6, 0.0)]:
        img = torch.randn(batch, 16, generator=g) * 3  # deliberately not unit length
        txt = torch.randn(batch, 16, generator=g) * 0.5
        txt[1] = img[1] * 0.2  # one strong match, so the two directions differ
        logit_scale = torch.tensor(scale, requires_grad=True)
        logits = min(math.exp(scale), 100.0) * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
        labels = torch.arange(batch)
        i2t, t2i = F.cross_entropy(logits, labels).item(), F.cross_entropy(logits.T, labels).item()
        got = clip_loss(img, txt, logit_scale)
        hint = (
            "normalise both embeddings, multiply cosine similarities by exp(logit_scale) clamped at 100, "
            "and average cross_entropy(logits, arange) with cross_entropy(logits.T, arange)"
        )
        divided = math.exp(-scale) * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
        wrong_temp = (F.cross_entropy(divided, labels).item() + F.cross_entropy(divided.T, labels).item()) / 2
        if scale != 0 and isinstance(got, torch.Tensor) and got.numel() == 1 and math.isclose(got.item(), wrong_temp, rel_tol=1e-4):
            fail("you divided the similarities by exp(logit_scale): logit_scale is log(1 / temperature), so "
                 "exp(logit_scale) = 1 / temperature multiplies them (about 14.3 at the start, sharpening the softmax)")
        if isinstance(got, torch.Tensor) and got.numel() == 1 and math.isclose(got.item(), i2t, rel_tol=1e-4):
            fail(f"the loss equals the image->text cross-entropy only ({i2t:.4f}); average it with the text->image direction")
        assert_scalar_close(got, (i2t + t2i) / 2, f"clip_loss (batch {batch}, exp(logit_scale) = {math.exp(scale):.3g})", rel=1e-4, hint=hint)
        if scale < math.log(100):
            if not got.requires_grad:
                fail("no gradient reaches logit_scale: the temperature must be learned (use logit_scale.exp(), don't .item() "
                     "or detach it)")
            got.backward()
            if logit_scale.grad is None or logit_scale.grad == 0:
                fail("no gradient reaches logit_scale: the temperature must be learned (use logit_scale.exp(), don't .item() it)")
    return "matches F.cross_entropy in both directions"


@check
def check_zero_shot_classify(zero_shot_classify):
    # Class 0's prompt embedding is long but points away; cosine similarity must ignore length.
    classes = torch.tensor([[10.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.5, 0.0, -0.1]])
    images = torch.tensor([[0.2, 1.0, 0.0], [1.0, 0.0, -0.3], [0.0, 0.1, 1.0], [3.0, 0.1, 0.5]])
    expected = (F.normalize(images, dim=-1) @ F.normalize(classes, dim=-1).T).argmax(-1)
    got = zero_shot_classify(images, classes)
    if isinstance(got, torch.Tensor) and torch.equal(got, (images @ classes.T).argmax(-1)) and not torch.equal(got, expected):
        fail("you ranked classes by raw dot products: normalise both embeddings first (cosine similarity)")
    assert_equal(got, expected, "predicted classes", hint="argmax over classes of the cosine similarity")


class _LinearClassifier(nn.Module):
    """logits = W flatten(x) + b + t-dependent bias: log p(y|x) has the closed-form gradient W_y - sum_k p_k W_k."""

    def __init__(self, d: int, n_classes: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.W = nn.Parameter(torch.randn(n_classes, d, generator=g))
        self.b = nn.Parameter(torch.randn(n_classes, generator=g))

    def forward(self, x, t):
        return x.flatten(1) @ self.W.T + self.b + t[:, None].float() / 1000


def _eps_model(x, t, y=None):
    """A stand-in noise predictor that depends on x, t and (optionally) the label."""
    shift = 0.0 if y is None else (y.float() - 2.0)[:, None, None, None] * 0.3
    return 0.5 * torch.tanh(x) + t[:, None, None, None].float() / 1000 + shift


@check
def check_classifier_guided_eps(classifier_guided_eps):
    torch.manual_seed(0)
    alpha_bars = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
    x = torch.randn(3, 1, 2, 2)
    t = torch.tensor([10, 500, 900])
    y = torch.tensor([0, 3, 1])
    clf = _LinearClassifier(4)
    with torch.no_grad():
        p = clf(x, t).softmax(-1)
        grad = (clf.W[y] - p @ clf.W).reshape(x.shape)
        expected = _eps_model(x, t) - 2.0 * (1 - alpha_bars[t]).sqrt()[:, None, None, None] * grad
        got = classifier_guided_eps(_eps_model, clf, x, t, y, 2.0, alpha_bars)  # samplers run under no_grad
    assert_close(
        got, expected, "guided eps", atol=1e-5,
        hint="eps - scale * sqrt(1 - alpha_bar_t) * grad of log_softmax(logits)[y] (not the raw logit) w.r.t. x_t; "
        "enable grad inside (torch.enable_grad()) since samplers run under no_grad",
    )
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in clf.parameters()):
        fail("the classifier's parameters received gradients: differentiate with torch.autograd.grad w.r.t. x only")
    return "matches the closed-form gradient of a linear classifier"


@check
def check_cfg_eps(cfg_eps):
    torch.manual_seed(0)
    x, t = torch.randn(4, 1, 2, 2), torch.tensor([1, 2, 3, 4])
    ids = torch.tensor([[1, 5, 2, 0], [1, 6, 7, 2], [1, 8, 2, 0], [1, 9, 2, 0]])  # captions
    null_ids = torch.tensor([[1, 2, 0, 0]]).expand(4, -1)  # the empty caption, one row per example
    calls = []

    def model(x_t, t_, ids_):
        calls.append(len(x_t))
        return _eps_model(x_t, t_, ids_.sum(-1) % 5)

    for scale in [3.5, 0.0, 1.0]:  # 3.5 first: there a swap and a wrong starting point give distinct outputs
        eps_c, eps_u = _eps_model(x, t, ids.sum(-1) % 5), _eps_model(x, t, null_ids.sum(-1) % 5)
        got = cfg_eps(model, x, t, ids, null_ids, scale)
        if scale > 1 and isinstance(got, torch.Tensor) and got.shape == x.shape:
            if torch.allclose(got, eps_c + scale * (eps_u - eps_c), atol=1e-5):
                fail(f"with scale {scale} you returned eps_cond + scale * (eps_uncond - eps_cond): the conditional and "
                     "unconditional predictions are swapped (check which half of the doubled batch got the captions)")
            if torch.allclose(got, eps_c + scale * (eps_c - eps_u), atol=1e-5):
                fail(f"with scale {scale} you started from eps_cond: guidance starts from the unconditional prediction, "
                     "eps_uncond + scale * (eps_cond - eps_uncond), so that scale 0 ignores the caption")
        assert_close(
            got, eps_u + scale * (eps_c - eps_u), f"cfg_eps with scale {scale}",
            hint="eps_uncond + scale * (eps_cond - eps_uncond); the unconditional call gets null_ids (the empty caption)",
        )
    if max(calls) != 2 * len(x):
        return "correct (tip: batch the conditional and unconditional inputs into one forward pass)"
    return None


class _TinyCLIP(nn.Module):
    """encode_image = normalised linear map: enough to give a non-trivial, known-differentiable score."""

    def __init__(self, d_in: int, d: int = 3):
        super().__init__()
        self.lin = nn.Linear(d_in, d)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(d, d_in, generator=torch.Generator().manual_seed(2)))

    def encode_image(self, images):
        return F.normalize(self.lin(images.flatten(1)), dim=-1)


@check
def check_clip_guided_eps(clip_guided_eps):
    torch.manual_seed(0)
    alpha_bars = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
    x, t = torch.randn(2, 1, 2, 2), torch.tensor([100, 700])
    clip = _TinyCLIP(4)
    text = F.normalize(torch.randn(2, 3), dim=-1)
    a = alpha_bars[t][:, None, None, None]

    def score(x_t):  # the objective, written out: cosine(encode_image(x0_hat(x_t)), text)
        x0_hat = (x_t - (1 - a).sqrt() * _eps_model(x_t, t)) / a.sqrt()
        return F.cosine_similarity(clip.encode_image(x0_hat), text, dim=-1).sum()

    grad = torch.func.grad(score)(x)
    expected = (_eps_model(x, t) - 1.5 * (1 - a).sqrt() * grad).detach()
    with torch.no_grad():
        got = clip_guided_eps(_eps_model, clip, text, x, t, 1.5, alpha_bars)
    assert_close(
        got, expected, "CLIP-guided eps", atol=1e-5,
        hint="differentiate w.r.t. x_t through eps_model and x0_hat = (x_t - sqrt(1-a) eps) / sqrt(a); "
        "return eps.detach() - scale * sqrt(1 - a) * grad",
    )
    if got.requires_grad:
        fail("the returned eps still requires grad: detach it (the sampler must not build a graph across steps)")


# ---------------------------------------------------------------------------------------------
# CLIP's encoders
# ---------------------------------------------------------------------------------------------
def _unfold_patches(images, conv: nn.Conv2d, p: int):
    """Patch embedding computed independently: F.unfold cuts the patches, then a matrix product."""
    cols = F.unfold(images, kernel_size=p, stride=p).transpose(1, 2)  # (b, n_patches, c*p*p), row-major
    return cols @ conv.weight.reshape(conv.out_channels, -1).T + conv.bias


@check
def check_patch_embedding(PatchEmbedding):
    pe = module_instance(PatchEmbedding, 3, 4, 24)
    randomise_parameters(pe, std=0.3)
    images = torch.randn(2, 3, 8, 12, generator=torch.Generator().manual_seed(0))  # a 2 x 3 grid of patches
    expected = _unfold_patches(images, pe.proj, 4)
    with torch.no_grad():
        got = pe(images)
        assert_shape(got, (2, 6, 24), "patch embeddings", hint="one d_model vector per patch: (batch, n_patches, d_model)")
        col_major = expected.reshape(2, 2, 3, 24).transpose(1, 2).reshape(2, 6, 24)
        if torch.allclose(got, col_major, atol=1e-5):
            fail("your patches are in column-major order (top to bottom first): flatten the grid as (gh gw), "
                 "row by row, the order F.unfold and every ViT use, so position embedding i means the same patch")
        assert_close(got, expected, "patch embeddings", atol=1e-5,
                     hint="apply self.proj (kernel = stride = patch size), then turn (b, d, gh, gw) into (b, gh*gw, d)")
    return "matches an unfold-and-matmul computation on a 2 x 3 grid of patches"


def _vit_reference(vit, images, p):
    x = _unfold_patches(images, vit.patch_embed.proj, p)
    x = torch.cat([vit.cls_token.expand(len(x), -1, -1), x], dim=1) + vit.pos_emb
    for block in vit.blocks:
        x = block(x)
    return vit.ln_final(x)


@check
def check_vit_encoder(ViTEncoder):
    from curriculum.solutions.chapter4.clip import CLIPConfig

    cfg = CLIPConfig(image_shape=(2, 8, 12), patch_size=4, d_image=32, n_image_layers=2, d_text=24, d_embed=16, n_heads=4)
    vit = module_instance(ViTEncoder, cfg).eval()
    randomise_parameters(vit, std=0.2)
    images = torch.randn(3, 2, 8, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = vit(images)
        assert_shape(got, (3, 16), "ViT output", hint="project the class token's final state (d_image = 32) to d_embed = 16")
        states = _vit_reference(vit, images, 4)
        expected = vit.proj(states[:, 0])
        if torch.allclose(got, vit.proj(states.mean(1)), atol=1e-4):
            fail("you averaged over all tokens: CLIP's ViT reads its summary from the class token, position 0")
        if torch.allclose(got, vit.proj(states[:, -1]), atol=1e-4):
            fail("you read the last token (a patch): prepend the class token and read position 0")
        no_pos = vit.patch_embed.proj(images).flatten(2).transpose(1, 2)
        no_pos = torch.cat([vit.cls_token.expand(3, -1, -1), no_pos], dim=1)
        for block in vit.blocks:
            no_pos = block(no_pos)
        if torch.allclose(got, vit.proj(vit.ln_final(no_pos)[:, 0]), atol=1e-4):
            fail("you forgot the position embeddings: without them the transformer sees a bag of patches")
        assert_close(got, expected, "ViT output", atol=1e-4,
                     hint="[class token, patches] + pos_emb -> every block -> ln_final -> proj of position 0")
    return "matches a ViT rebuilt from your submodules, with the class token at position 0"


def _text_reference(enc, ids, causal: bool = True):
    from curriculum.solutions.chapter4.clip import causal_mask

    x = enc.tok_emb(ids) + enc.pos_emb[: ids.shape[1]]
    mask = causal_mask(ids.shape[1]) if causal else None
    for block in enc.blocks:
        x = block(x, src_mask=mask, is_causal=causal)
    return enc.ln_final(x)


@check
def check_text_encoder(TextEncoder):
    from curriculum.solutions.chapter4.clip import CLIPConfig

    cfg = CLIPConfig(vocab_size=20, max_len=8, d_text=24, n_text_layers=2, n_heads=4, d_embed=16, d_image=32)
    enc = module_instance(TextEncoder, cfg).eval()
    randomise_parameters(enc, std=0.3)
    # <bos>=1 words <eos>=2 then <pad>=0: three captions of different lengths
    ids = torch.tensor([[1, 5, 9, 2, 0, 0, 0], [1, 7, 2, 0, 0, 0, 0], [1, 4, 6, 8, 11, 13, 2]])
    last = torch.tensor([3, 2, 6])
    with torch.no_grad():
        states = enc.token_states(ids)
        assert_shape(states, (3, 7, 24), "token_states", hint="one d_text vector per token (sequences shorter than max_len use the first pos_emb rows)")
        expected_states = _text_reference(enc, ids)
        if torch.allclose(states, _text_reference(enc, ids, causal=False), atol=1e-4):
            fail("token_states has no causal mask: every token sees later ones (and <eos> sees the pads); "
                 "pass src_mask=causal_mask(seq) (and is_causal=True) to every block")
        assert_close(states, expected_states, "token_states", atol=1e-4,
                     hint="tok_emb + pos_emb[:seq] -> every block with the causal mask -> ln_final")
        got = enc(ids)
        assert_shape(got, (3, 16), "TextEncoder output", hint="project the pooled d_text = 24 state to d_embed = 16")
        expected = enc.proj(expected_states[torch.arange(3), last])
        if torch.allclose(got, enc.proj(expected_states[:, 0]), atol=1e-4):
            fail("you pooled position 0 (<bos>): under a causal mask it has seen nothing of the caption; "
                 "read each caption's last real token (<eos>), at (ids != PAD).sum(1) - 1")
        if torch.allclose(got[:2], enc.proj(expected_states[:2, -1]), atol=1e-4):
            fail("you pooled the last position, which is a pad for the shorter captions: read each caption's "
                 "last real token (<eos>), at (ids != PAD).sum(1) - 1")
        if torch.allclose(got, enc.proj(expected_states.mean(1)), atol=1e-4):
            fail("you averaged over the tokens (pads included): read the last real token (<eos>)")
        assert_close(got, expected, "TextEncoder output", atol=1e-4, hint="proj(token_states[i, last real token of caption i])")
        # one more pad column must not change anything
        got_longer = enc(torch.cat([ids, torch.zeros(3, 1, dtype=torch.long)], dim=1))
        if not torch.allclose(got_longer, got, atol=1e-4):
            fail("one more <pad> at the end changed the embeddings: pool at the last real token, under the causal mask")
    return "causal token states and <eos> pooling match an independent computation; pads cannot leak in"


@check
def check_pool_last_token(pool_last_token):
    g = torch.Generator().manual_seed(6)
    states = torch.randn(3, 7, 5, generator=g)
    ids = torch.tensor([[1, 5, 9, 2, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0], [1, 4, 6, 8, 11, 13, 2]])  # <eos> = 2 at 3, 1, 6
    got = pool_last_token(states, ids)
    assert_shape(got, (3, 5), "pooled states", hint="one state per caption: index the batch and the sequence axes together")
    if torch.allclose(got, states[:, 0]):
        fail("you pooled position 0 (<bos>): under a causal mask it has seen nothing of the caption; "
             "read each caption's last real token (<eos>), at (ids != PAD).sum(1) - 1")
    if torch.allclose(got[:2], states[:2, -1]):
        fail("you pooled the last position, which is a pad for the shorter captions: read each caption's "
             "last real token (<eos>), at (ids != PAD).sum(1) - 1")
    if torch.allclose(got, states.mean(1)):
        fail("you averaged over the tokens, pads included: read the last real token (<eos>)")
    assert_close(got, states[torch.arange(3), torch.tensor([3, 1, 6])], "pooled states",
                 hint="states[torch.arange(b), last_token_index(ids)]: one (row, position) pair per caption")
    return "reads <eos> at positions 3, 1 and 6 of three differently padded captions"


# ---------------------------------------------------------------------------------------------
# Cross-attention
# ---------------------------------------------------------------------------------------------
def _cross_attention_reference(attn, x, context, mask, variant: str = "right"):
    b, ch, h, w = x.shape
    heads = attn.n_heads
    q = attn.to_q(attn.norm(x).flatten(2).transpose(1, 2)).reshape(b, h * w, heads, -1).transpose(1, 2)
    k = attn.to_k(context).reshape(b, context.shape[1], heads, -1).transpose(1, 2)
    v = attn.to_v(context).reshape(b, context.shape[1], heads, -1).transpose(1, 2)
    if variant == "right":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    elif variant == "no_mask":
        out = F.scaled_dot_product_attention(q, k, v)
    else:  # softmax over the queries (the image positions), which is also what swapping q and k gives
        scores = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).masked_fill(~mask[:, None, None, :], float("-inf"))
        out = torch.nan_to_num(scores.softmax(dim=-2)) @ v
    out = attn.to_out(out.transpose(1, 2).reshape(b, h * w, ch))
    return x + out.transpose(1, 2).reshape(b, ch, h, w)


@check
def check_cross_attention(CrossAttention):
    attn = module_instance(CrossAttention, 16, 12, 4).eval()
    randomise_parameters(attn, std=0.3)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 3, 5, generator=g)  # 15 image positions
    context = torch.randn(2, 6, 12, generator=g) * 2  # 6 tokens of width 12 (not 16): to_k, to_v change the width
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])  # the second caption ends in two pads
    with torch.no_grad():
        got = attn(x, context, mask)
        assert_shape(got, (2, 16, 3, 5), "cross-attention output",
                     hint="one output per image position (the queries), reshaped back to (b, ch, h, w); keys and values come from the tokens")
        expected = _cross_attention_reference(attn, x, context, mask)
        if torch.allclose(got, _cross_attention_reference(attn, x, context, mask, "no_mask"), atol=1e-4):
            fail("your image positions attend to the pad tokens of the second caption: set the scores of masked "
                 "tokens to -inf before the softmax (scores.masked_fill(~mask[:, None, None, :], -inf))")
        # (a softmax over the positions turns the padded caption's output into NaN: compare the first, unpadded one)
        if torch.allclose(got[0], _cross_attention_reference(attn, x, context, mask, "over_queries")[0], atol=1e-4):
            fail("your softmax normalises over the image positions: each query (position) must distribute its attention "
                 "over the tokens, softmax(dim=-1) of (b, heads, positions, tokens). Did you swap queries and keys?")
        assert_finite(got, "cross-attention output", hint="a masked score is -inf; a row of the softmax (one position, over the tokens) always keeps real tokens")
        if torch.allclose(got, expected - x, atol=1e-4):
            fail("you returned only the attention output: add the residual x")
        assert_close(got, expected, "cross-attention output", atol=1e-4,
                     hint="queries from the normalised feature map, keys/values from the context, per-head "
                          "softmax(q k^T / sqrt(d_head)) with pads masked, to_out, + x")
    return "matches F.scaled_dot_product_attention with a key padding mask"


# ---------------------------------------------------------------------------------------------
# Training with caption dropout
# ---------------------------------------------------------------------------------------------
class _SpyUNet(nn.Module):
    """Records the captions it is given; predicts eps with one learnable scale (so a step changes it) and
    a learnable offset that starts far off (so every raw gradient has norm above 1 and clipping shows)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))
        self.b = nn.Parameter(torch.tensor(2.0))
        # at each optimizer.step of an optimizer holding w: the total gradient norm and the learning rate
        self.step_norms: list[float] = []
        self.step_lrs: list[float] = []
        self.calls: list[torch.Tensor] = []
        # each backward's own gradient of w, and w.grad after it was accumulated: they differ when .grad was not zeroed
        self.incoming: list[float] = []
        self.accumulated: list[float] = []
        self.w.register_hook(lambda g: self.incoming.append(g.item()))
        self.w.register_post_accumulate_grad_hook(lambda p: self.accumulated.append(p.grad.item()))

    def forward(self, x, t, ids):
        self.calls.append(ids.detach().clone())
        return self.w * x + self.b

    def record_step(self, optimizer):
        """Called before every optimizer step: what the learner's optimizer is about to step with."""
        groups = [g for g in optimizer.param_groups if any(p is self.w for p in g["params"])]
        if groups:
            grads = [p.grad for p in self.parameters() if p.grad is not None]
            self.step_norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item() if grads else 0.0)
            self.step_lrs.append(float(groups[0]["lr"]))


@check
def check_train_text_unet(train_text_unet):
    from curriculum.solutions.chapter4.clip import tokenizer_for
    from curriculum.solutions.chapter4.text_conditioning import (
        TRAIN_TEMPLATES,
        TextTrainConfig,
    )
    from curriculum.solutions.chapter4.toy_diffusion import Schedule, linear_betas
    from curriculum.utils.image_data import DIGIT_TEMPLATES, DIGIT_WORDS, ImageDataset

    g = torch.Generator().manual_seed(4)
    data = ImageDataset(torch.randn(40, 1, 4, 4, generator=g), torch.arange(40) % 10, DIGIT_WORDS, DIGIT_TEMPLATES, "spy digits")
    tok = tokenizer_for(data)
    sched = Schedule(linear_betas(100))
    spy = _SpyUNet()
    cfg = TextTrainConfig(n_steps=30, batch_size=32, lr=1e-2, p_uncond=0.3)
    with on_optimizer_steps(before=spy.record_step):
        losses = train_text_unet(spy, data, tok, sched, cfg)
    if not spy.calls:
        fail("the model was never called: pass the tokenized captions to it as ids=... (diffusion_loss forwards keyword arguments)")
    if len(losses) != 30:
        fail(f"expected one loss per step (30), got {len(losses)}")
    ids = torch.cat(spy.calls)
    assert_shape(spy.calls[0], (32, tok.max_len), "the ids of one batch", hint="tokenize the batch's captions: tokenizer(list_of_strings)")
    empty = (ids[:, 1] == tok.EOS)
    per_step = torch.stack([(c[:, 1] == tok.EOS).float().mean() for c in spy.calls])
    if empty.float().mean() < 0.15:
        fail(f"only {empty.float().mean():.0%} of captions were empty with p_uncond = 0.3: replace each caption by \"\" "
             "with probability p_uncond, or the model never learns the unconditional prediction guidance needs")
    if ((per_step == 0) | (per_step == 1)).all():
        fail("whole batches are either all empty or all captioned: drop each caption independently")
    if empty.float().mean() > 0.45:
        fail(f"{empty.float().mean():.0%} of captions were empty with p_uncond = 0.3: drop with probability p_uncond, not 1 - p_uncond")
    held_out = {tok.index[w] for t in set(DIGIT_TEMPLATES) - set(TRAIN_TEMPLATES) for w in tok.split(t.format(""))} - {
        tok.index[w] for t in TRAIN_TEMPLATES for w in tok.split(t.format(""))}
    if torch.isin(ids, torch.tensor(sorted(held_out))).any():
        fail("a held-out phrasing appeared in training: draw templates from `templates` (TRAIN_TEMPLATES by default)")
    digit_ids = torch.tensor([tok.index[w] for w in DIGIT_WORDS])
    if not torch.isin(ids[~empty], digit_ids).any(dim=1).all():
        fail("a non-empty caption names no digit: format the template with dataset.class_names[label]")
    if spy.w.item() == 0.5:
        fail("the model's parameters never changed: zero_grad, backward, optimiser step")
    if any(not math.isclose(acc, inc, rel_tol=1e-5, abs_tol=1e-8) for acc, inc in zip(spy.accumulated, spy.incoming)):
        fail("gradients accumulate from one step to the next: call opt.zero_grad() every step, before loss.backward()")
    if spy.step_norms and max(spy.step_norms) > 1.0 + 1e-3:
        fail(f"the optimiser stepped with gradient norms up to {max(spy.step_norms):.2f} (the spy's raw gradients all "
             "have norm above 1): clip them after loss.backward() and before opt.step(), with "
             "nn.utils.clip_grad_norm_(model.parameters(), 1.0)")
    cosine = [cfg.lr * 0.5 * (1 + math.cos(math.pi * k / cfg.n_steps)) for k in range(cfg.n_steps)]
    lrs = spy.step_lrs
    if lrs and all(lr == lrs[0] for lr in lrs):
        fail(f"the learning rate stayed at {lrs[0]:g} for all {len(lrs)} optimiser steps: call lr_at.step() once per "
             "step, after opt.step(), so the learning rate decays along the cosine")
    if len(lrs) == cfg.n_steps and math.isclose(lrs[0], cosine[1], rel_tol=1e-6):
        fail("the first optimiser step already used the second step's learning rate: call lr_at.step() after "
             "opt.step(), not before")
    if len(lrs) != cfg.n_steps or any(not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for a, b in zip(lrs, cosine)):
        fail(f"the learning rates of the {len(lrs)} optimiser steps do not follow the cosine schedule (expected "
             f"{cosine[0]:g}, {cosine[1]:g}, ..., {cosine[-1]:g}; got {', '.join(f'{lr:g}' for lr in lrs[:2])}, ..., "
             f"{lrs[-1]:g}): one opt.step() then one lr_at.step() per training step")
    return "captions dropped per caption, training phrasings only, gradients zeroed and clipped, cosine learning rate"
