"""Mutants for the 4.3 checks, and a short end-to-end CLIP training run on the offline digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from curriculum.solutions.chapter4 import clip as clip_sol
from curriculum.solutions.chapter4 import guidance as sol
from curriculum.checks.chapter4 import clip_guidance as checks
from curriculum.solutions.chapter4.toy_diffusion import _broadcast
from tests.support import assert_check_fails
from curriculum.utils.image_data import digits


def _clip_loss(normalise=True, exp=True, clamp=True, directions=2, detach_scale=False):
    def loss(img, txt, logit_scale):
        if normalise:
            img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
        scale = logit_scale.detach() if detach_scale else logit_scale
        scale = scale.exp() if exp else scale
        scale = scale.clamp(max=100) if clamp else scale
        logits = scale * img @ txt.T
        labels = torch.arange(len(img))
        if directions == 1:
            return F.cross_entropy(logits, labels)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    return loss


def test_clip_loss_mutants():
    checks.check_clip_loss(_clip_loss())
    for bug in [
        _clip_loss(normalise=False),
        _clip_loss(exp=False),  # logit_scale used as the temperature itself
        _clip_loss(clamp=False),
        _clip_loss(directions=1),
        _clip_loss(detach_scale=True),
    ]:
        assert_check_fails(checks.check_clip_loss, bug)


def test_clip_loss_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="must match"):
        clip_sol.clip_loss(torch.zeros(3, 4), torch.zeros(2, 4), torch.tensor(1.0))


def test_zero_shot_mutants():
    assert_check_fails(checks.check_zero_shot_classify, lambda img, cls: (img @ cls.T).argmax(-1))
    assert_check_fails(checks.check_zero_shot_classify, lambda img, cls: (F.normalize(img, dim=-1) @ F.normalize(cls, dim=-1).T).argmax(0))


def _classifier_guided(sign=1.0, use_sqrt=True, raw_logit=False, alpha_not_bar=False):
    def guided(eps_model, clf, x_t, t, y, scale, ab):
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            logits = clf(x, t)
            scores = logits if raw_logit else logits.log_softmax(-1)
            (grad,) = torch.autograd.grad(scores[torch.arange(len(y)), y].sum(), x)
        if alpha_not_bar:
            ab = torch.cat([ab[:1], ab[1:] / ab[:-1]])
        factor = (1 - _broadcast(ab[t], x_t)).sqrt() if use_sqrt else (1 - _broadcast(ab[t], x_t))
        return eps_model(x_t, t) - sign * scale * factor * grad

    return guided


def test_classifier_guidance_mutants():
    checks.check_classifier_guided_eps(_classifier_guided())
    for bug in [_classifier_guided(sign=-1.0), _classifier_guided(use_sqrt=False), _classifier_guided(raw_logit=True), _classifier_guided(alpha_not_bar=True)]:
        assert_check_fails(checks.check_classifier_guided_eps, bug)


def test_cfg_mutants():
    def swapped(model, x, t, y, s, null):
        c, u = model(x, t, y), model(x, t, torch.full_like(y, null))
        return c + s * (u - c)

    def plus_one(model, x, t, y, s, null):  # the (1 + w) convention with w passed as the scale
        c, u = model(x, t, y), model(x, t, torch.full_like(y, null))
        return u + (1 + s) * (c - u)

    def null_zero(model, x, t, y, s, null):  # "no label" encoded as class 0
        c, u = model(x, t, y), model(x, t, torch.zeros_like(y))
        return u + s * (c - u)

    for bug in [swapped, plus_one, null_zero]:
        assert_check_fails(checks.check_cfg_eps, bug)


def _clip_guided(through_eps=True, wrt_x0=False):
    def guided(eps_model, clip, text, x_t, t, scale, ab):
        a = _broadcast(ab[t], x_t)
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            eps = eps_model(x, t) if through_eps else eps_model(x_t, t)
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            target = x0 if wrt_x0 else x
            if wrt_x0:
                x0.retain_grad()
            sim = F.cosine_similarity(clip.encode_image(x0), text, dim=-1).sum()
            (grad,) = torch.autograd.grad(sim, target)
        return (eps - scale * (1 - a).sqrt() * grad).detach()

    return guided


def test_clip_guidance_mutants():
    checks.check_clip_guided_eps(_clip_guided())
    for bug in [_clip_guided(through_eps=False), _clip_guided(wrt_x0=True)]:
        assert_check_fails(checks.check_clip_guided_eps, bug)


def test_frechet_distance_properties():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 4, generator=g)
    b = torch.randn(2000, 4, generator=g)
    assert sol.frechet_distance(a, b) < 0.05
    # N(0, I) vs N(m, I): distance = ||m||^2.
    assert abs(sol.frechet_distance(a, b + 2.0) - 16.0) < 0.5


def test_clip_learns_digits_quickly():
    """A short run: loss falls and zero-shot accuracy on held-out digits is far above chance (10%)."""
    train, test = digits(8).split(n_test=300)
    tok = clip_sol.tokenizer_for(train)
    model = clip_sol.CLIP(clip_sol.CLIPConfig(image_shape=(1, 8, 8), vocab_size=len(tok.vocab), image_channels=16, d_text=32, n_text_layers=1))
    losses = clip_sol.train_clip(model, train, tok, clip_sol.CLIPTrainConfig(n_steps=150, batch_size=128, lr=3e-3))
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert clip_sol.zero_shot_accuracy(model, test, tok) > 0.5
