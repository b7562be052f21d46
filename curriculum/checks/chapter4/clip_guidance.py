"""Checks for 4.3: CLIP's loss against F.cross_entropy in both directions, zero-shot with unnormalised
embeddings, and the three guided noise predictions against gradients derived by hand or by autograd here."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from curriculum.checking import assert_close, assert_equal, assert_scalar_close, check, fail


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
        if isinstance(got, torch.Tensor) and got.numel() == 1 and math.isclose(got.item(), i2t, rel_tol=1e-4):
            fail(f"the loss equals the image->text cross-entropy only ({i2t:.4f}); average it with the text->image direction")
        assert_scalar_close(got, (i2t + t2i) / 2, f"clip_loss (batch {batch}, exp(logit_scale) = {math.exp(scale):.3g})", rel=1e-4, hint=hint)
        if scale < math.log(100):
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
    return None


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
    x, t, y = torch.randn(4, 1, 2, 2), torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, 2, 3])
    null = 4
    calls = []

    def model(x_t, t_, y_):
        calls.append(len(x_t))
        return _eps_model(x_t, t_, torch.where(y_ == null, torch.full_like(y_, 2), y_))

    for scale in [0.0, 1.0, 3.5]:
        eps_c, eps_u = _eps_model(x, t, y), _eps_model(x, t, torch.full_like(y, 2))
        assert_close(
            cfg_eps(model, x, t, y, scale, null), eps_u + scale * (eps_c - eps_u), f"cfg_eps with scale {scale}",
            hint="eps_uncond + scale * (eps_cond - eps_uncond); the unconditional call uses label null_label",
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
    return None
