"""Mutants: plausible learner bugs each 4.1 check must catch, plus properties of the reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from curriculum.checks.chapter4 import toy_diffusion as checks
from curriculum.solutions.chapter4 import toy_diffusion as sol
from curriculum.solutions.chapter4.toy_diffusion import _broadcast
from tests.support import assert_check_fails, mutant


# --- schedules ---------------------------------------------------------------------------------
def test_linear_betas_mutants():
    assert_check_fails(checks.check_linear_betas, lambda n, s=1e-4, e=0.02: torch.linspace(s, e, n + 1)[:-1])  # endpoint dropped
    assert_check_fails(checks.check_linear_betas, lambda n, s=1e-4, e=0.02: torch.linspace(s, e, n, dtype=torch.float64))
    assert_check_fails(checks.check_linear_betas, lambda n, s=1e-4, e=0.02: torch.linspace(s**0.5, e**0.5, n) ** 2)  # scaled_linear


def _cosine(n, s=0.008, max_beta=0.999, shift=0, clamp=True, square=True):
    u = (torch.arange(n + 1, dtype=torch.float64) + shift) / n
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** (2 if square else 1)
    betas = 1 - f[1:] / f[:-1]
    return (betas.clamp(max=max_beta) if clamp else betas).float()


def test_cosine_betas_mutants():
    assert_check_fails(checks.check_cosine_betas, lambda n, s=0.008, m=0.999: _cosine(n, clamp=False))
    assert_check_fails(checks.check_cosine_betas, lambda n, s=0.008, m=0.999: _cosine(n, square=False))
    assert_check_fails(checks.check_cosine_betas, lambda n, s=0.008, m=0.999: _cosine(n, shift=1))  # off by one
    assert_check_fails(checks.check_cosine_betas, lambda n, s=0.008, m=0.999: 1 - _cosine(n))  # returned alphas


# --- add_noise ---------------------------------------------------------------------------------
def test_add_noise_mutants():
    assert_check_fails(checks.check_add_noise, lambda x0, n, t, ab: _broadcast(ab[t], x0) * x0 + (1 - _broadcast(ab[t], x0)) * n)  # sqrt missing
    assert_check_fails(checks.check_add_noise, lambda x0, n, t, ab: _broadcast(ab[t], x0).sqrt() * x0 + _broadcast(1 - ab[t], x0).sqrt() * x0)
    alphas = lambda ab: torch.cat([ab[:1], ab[1:] / ab[:-1]])  # noqa: E731  alpha instead of alpha_bar
    assert_check_fails(checks.check_add_noise, lambda x0, n, t, ab: _broadcast(alphas(ab)[t], x0).sqrt() * x0 + _broadcast(1 - alphas(ab)[t], x0).sqrt() * n)
    assert_check_fails(checks.check_add_noise, lambda x0, n, t, ab: _broadcast(ab[(t - 1).clamp(min=0)], x0).sqrt() * x0 + _broadcast(1 - ab[(t - 1).clamp(min=0)], x0).sqrt() * n)


def test_add_noise_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        sol.add_noise(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), torch.ones(10))


# --- embedding ---------------------------------------------------------------------------------
def test_sinusoidal_embedding_mutants():
    def interleaved(t, dim):
        e = sol.sinusoidal_embedding(t, dim)
        return torch.stack([e[:, : dim // 2], e[:, dim // 2 :]], dim=-1).flatten(1)

    def cos_first(t, dim):
        e = sol.sinusoidal_embedding(t, dim)
        return torch.cat([e[:, dim // 2 :], e[:, : dim // 2]], dim=-1)

    def shifted_denominator(t, dim):
        half = dim // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half) / (half - 1))
        a = t.float()[:, None] * freqs
        return torch.cat([a.sin(), a.cos()], -1)

    for bug in [interleaved, cos_first, shifted_denominator]:
        assert_check_fails(checks.check_sinusoidal_embedding, bug)


# --- loss --------------------------------------------------------------------------------------
def _loss(target="noise", alpha=False, sqrt=True, detach=False):
    def loss(model, x0, ab, t=None, noise=None, **kw):
        t = torch.randint(0, len(ab), (len(x0),)) if t is None else t
        noise = torch.randn_like(x0) if noise is None else noise
        a = torch.cat([ab[:1], ab[1:] / ab[:-1]]) if alpha else ab
        a = _broadcast(a[t], x0)
        x_t = (a.sqrt() * x0 + (1 - a).sqrt() * noise) if sqrt else (a * x0 + (1 - a) * noise)
        out = F.mse_loss(model(x_t, t, **kw), noise if target == "noise" else x0)
        return out.detach() if detach else out

    return loss


def test_diffusion_loss_mutants():
    checks.check_diffusion_loss(_loss())  # the harness itself is right
    for bug in [_loss(target="x0"), _loss(alpha=True), _loss(sqrt=False), _loss(detach=True)]:
        assert_check_fails(checks.check_diffusion_loss, bug)


# --- the forward-process posterior ---------------------------------------------------------------
def test_posterior_mean_variance_mutants():
    f = sol.posterior_mean_variance
    checks.check_posterior_mean_variance(f)
    cases = [
        (mutant(f, ("return coef_x0 * x0 + coef_xt * x_t", "return coef_xt * x0 + coef_x0 * x_t")), "swapped"),
        (mutant(f, ("coef_xt = alpha.sqrt()", "coef_xt = a_bar.sqrt()")), "sqrt\\(alpha_t\\)"),
        (mutant(f, ("coef_x0 = a_bar_prev.sqrt()", "coef_x0 = a_bar.sqrt()")), "x_0 coefficient"),
        (mutant(f, ("beta * (1 - a_bar_prev) / (1 - a_bar)", "beta")), "variance is beta_t"),
        (mutant(f, ("if t > 0 else torch.tensor(1.0)", "")), "last"),  # alpha_bars[-1] at t = 0
        (mutant(f, ("a_bar_prev = sched.alpha_bars[t - 1]", "a_bar_prev = sched.alpha_bars[t]")), "posterior"),  # off by one
    ]
    for bug, match in cases:
        assert_check_fails(checks.check_posterior_mean_variance, bug, match=match)
    per_element = mutant(f, ("beta * (1 - a_bar_prev) / (1 - a_bar)", "(beta * (1 - a_bar_prev) / (1 - a_bar)) * torch.ones_like(x_t)"))
    assert_check_fails(checks.check_posterior_mean_variance, per_element, match="one number")
    assert_check_fails(checks.check_posterior_mean_variance, lambda x0, x_t, t, sched: x0, match="tuple")


def test_posterior_matches_product_of_gaussians_in_float64():
    """The reference formula and the check's product of Gaussians agree to float64 precision."""
    betas = sol.linear_betas(1000).double()
    sched = sol.Schedule(betas)
    x0, x_t = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    for t in [0, 1, 10, 500, 999]:
        mean, var = sol.posterior_mean_variance(x0, x_t, t, sched)
        exp_mean, exp_var = checks._posterior_by_product(x0, x_t, t, betas)
        torch.testing.assert_close(mean, exp_mean, atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(var.double(), exp_var, atol=1e-12, rtol=1e-7)


# --- the training loop ------------------------------------------------------------------------
def test_train_toy_mutants():
    f = sol.train_toy
    checks.check_train_toy(f)
    cases = [
        (mutant(f, ("        opt.zero_grad()\n", "")), "zero_grad"),
        (mutant(f, ("        opt.step()\n", "")), "opt.step"),
        (mutant(f, ("losses.append(loss.item())", "losses.append(loss)")), "Python floats"),
        (mutant(f, ("lr=cfg.lr", "lr=1e-3")), "cfg.lr"),
        (mutant(f, ("    torch.manual_seed(cfg.seed)\n", "")), "manual_seed"),
        (mutant(f, ("(cfg.batch_size,)", "(cfg.batch_size // 2,)")), "batch_size"),
        (mutant(f, ("range(cfg.n_steps)", "range(cfg.n_steps - 1)")), "n_steps"),
        (mutant(f, ("torch.optim.Adam", "torch.optim.SGD")), "Adam"),
    ]
    for bug, match in cases:
        assert_check_fails(checks.check_train_toy, bug, match=match)


# --- ddpm_step ---------------------------------------------------------------------------------
def _step(variance="small", prev_offset=1, alpha_bar_coef=False, noise_at_zero=False, clip_after=False):
    def step(eps, t, x_t, sched, noise, clip_x0=None):
        ab = sched.alpha_bars
        a_bar = ab[t]
        tp = t - prev_offset
        a_prev = ab[tp] if tp >= 0 else torch.tensor(1.0)
        beta = sched.betas[t]
        alpha = a_bar if alpha_bar_coef else sched.alphas[t]
        x0 = (x_t - (1 - a_bar).sqrt() * eps) / a_bar.sqrt()
        if clip_x0 is not None and not clip_after:
            x0 = x0.clamp(-clip_x0, clip_x0)
        mean = a_prev.sqrt() * beta / (1 - a_bar) * x0 + alpha.sqrt() * (1 - a_prev) / (1 - a_bar) * x_t
        if clip_x0 is not None and clip_after:
            mean = mean.clamp(-clip_x0, clip_x0)
        var = beta if variance == "large" else beta * (1 - a_prev) / (1 - a_bar)
        if t == 0 and not noise_at_zero:
            return mean
        return mean + var.sqrt() * noise

    return step


def test_ddpm_step_mutants():
    checks.check_ddpm_step(_step())
    for bug, match in [
        (_step(variance="large"), r"scales the noise by .*sqrt\(beta_t\)"),  # the variance, reported as the variance
        (_step(prev_offset=0), "noise = 0"),  # off-by-one: alpha_bar_t used for alpha_bar_{t-1}
        (_step(alpha_bar_coef=True), "noise = 0"),  # alpha vs alpha_bar confusion
        (_step(noise_at_zero=True, variance="large"), "scales the noise|no noise is added"),
        (_step(clip_after=True), "clamp x0_hat"),  # clamps the sample rather than x0_hat
    ]:
        assert_check_fails(checks.check_ddpm_step, bug, match=match)


def test_ddpm_step_variance_instead_of_std_is_named():
    def step(eps, t, x_t, sched, noise, clip_x0=None):
        mean, var = sol.posterior_mean_variance((x_t - (1 - sched.alpha_bars[t]).sqrt() * eps) / sched.alpha_bars[t].sqrt(), x_t, t, sched)
        return mean if t == 0 else mean + var * noise

    assert_check_fails(checks.check_ddpm_step, step, match="the variance itself")


def test_ddpm_step_noise_free_at_zero_matches_epsilon_form():
    """Without clipping, the x0-form mean equals DDPM's epsilon form 1/sqrt(alpha) (x_t - beta / sqrt(1 - a_bar) eps)."""
    sched = sol.Schedule(sol.linear_betas(1000))
    x, eps = torch.randn(3, 2), torch.randn(3, 2)
    for t in [0, 10, 999]:
        b, a, ab = sched.betas[t], sched.alphas[t], sched.alpha_bars[t]
        expected = (x - b / (1 - ab).sqrt() * eps) / a.sqrt()
        got = sol.ddpm_step(eps, t, x, sched, torch.zeros_like(x))
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


# --- the sampler -------------------------------------------------------------------------------
def _sampler(skip_last=False, t_offset=0, no_noise=False, start_scale=1.0, record_after=False, no_final=False):
    def sample(model, shape, sched, generator=None, clip_x0=None, record=None, record_every=1, **kw):
        x = start_scale * torch.randn(shape, generator=generator)
        last = 1 if skip_last else 0
        for i, t in enumerate(range(sched.n_steps - 1, last - 1, -1)):
            if record is not None and not record_after and i % record_every == 0:
                record.append(x.clone())
            tb = torch.full((shape[0],), min(t + t_offset, sched.n_steps - 1), dtype=torch.long)
            noise = torch.zeros(shape) if no_noise else torch.randn(shape, generator=generator)
            x = sol.ddpm_step(model(x, tb), t, x, sched, noise, clip_x0)
            if record is not None and record_after and i % record_every == 0:
                record.append(x.clone())
        if record is not None and not no_final:
            record.append(x.clone())
        return x

    return sample


def test_ddpm_sample_mutants():
    checks.check_ddpm_sample(_sampler())
    for bug in [_sampler(no_noise=True), _sampler(skip_last=True), _sampler(t_offset=5), _sampler(start_scale=0.0)]:
        assert_check_fails(checks.check_ddpm_sample, bug)
    assert_check_fails(checks.check_ddpm_sample, _sampler(record_after=True), match="append x before")
    assert_check_fails(checks.check_ddpm_sample, _sampler(no_final=True), match="once more after the loop")


def test_cosine_schedule_keeps_more_signal_midway():
    lin, cos = sol.Schedule(sol.linear_betas(1000)), sol.Schedule(sol.cosine_betas(1000))
    assert cos.alpha_bars[500] > 5 * lin.alpha_bars[500]
    assert lin.alpha_bars[-1] < 1e-4 and cos.alpha_bars[-1] < 1e-6


def test_bad_schedule_inputs():
    with pytest.raises(ValueError, match="positive"):
        sol.linear_betas(0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        sol.Schedule(torch.tensor([0.5, 1.0]))


def test_toy_training_learns_mixture():
    """800 steps on the mixture: the loss falls well below 1 (predicting zero) and samples land near the ring."""
    torch.manual_seed(0)
    data = sol.gaussian_mixture(2000)
    sched = sol.Schedule(sol.linear_betas(100, 1e-3, 0.2))
    model = sol.MLPDenoiser(d_hidden=64)
    losses = sol.train_toy(model, data, sched, sol.ToyTrainConfig(n_steps=800, batch_size=256, lr=3e-3))
    assert sum(losses[-50:]) / 50 < 0.6
    x = sol.ddpm_sample(model, (500, 2), sched, generator=torch.Generator().manual_seed(0))
    radius = x.norm(dim=1)
    assert (radius - 2.0).abs().median() < 0.4, "samples should concentrate near the circle of radius 2"
