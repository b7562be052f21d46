"""SAE tests beyond the automatic stub/solution ones: mutants each check must catch, and properties
of the reference (it recovers planted sparse features; resampling revives dead latents)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from curriculum.solutions.chapter1 import sae as sol
from curriculum.checks.chapter1 import sae as checks
from tests.support import assert_check_fails, mutant


# --- SAE mutants -----------------------------------------------------------------------------


class NoDecBiasSubtraction(sol.SAE):
    def encode(self, x):
        return F.relu(x @ self.W_enc + self.b_enc)


class NoReLU(sol.SAE):
    def encode(self, x):
        return (x - self.b_dec) @ self.W_enc + self.b_enc


@pytest.mark.parametrize("mutant,match", [(NoDecBiasSubtraction, "subtract b_dec"), (NoReLU, "ReLU")])
def test_check_sae_catches(mutant, match):
    assert_check_fails(checks.check_sae, mutant, match=match)


def test_check_sae_rejects_instance():
    assert_check_fails(checks.check_sae, sol.SAE(sol.SAEConfig(d_in=6, d_sae=12)), match="class")


def _loss(recon_reduce, l1_reduce, use_coeff=True):
    def sae_loss(x, acts, x_hat, l1_coeff):
        recon = recon_reduce((x_hat - x).pow(2))
        l1 = l1_reduce(acts.abs())
        return sol.SAEOutput(recon + (l1_coeff if use_coeff else 1.0) * l1, recon, l1, x_hat, acts)

    return sae_loss


@pytest.mark.parametrize(
    "mutant,match",
    [
        (_loss(lambda e: e.sum(-1).mean(), lambda a: a.sum(-1).mean()), "recon_loss"),
        (_loss(lambda e: e.mean(), lambda a: a.mean()), "l1_loss"),
        (_loss(lambda e: e.mean(-1).mean(), lambda a: a.sum(-1).mean(), use_coeff=False), "loss = recon_loss"),
        (_loss(lambda e: e.mean(-1).mean(), lambda a: a.sum()), "l1_loss"),
        (_loss(lambda e: e.mean(-1), lambda a: a.sum(-1).mean()), "scalar"),
    ],
)
def test_check_sae_loss_catches(mutant, match):
    assert_check_fails(checks.check_sae_loss, mutant, match=match)


def test_sae_forward_uses_the_loss():
    sae = sol.SAE(sol.SAEConfig(d_in=6, d_sae=12, l1_coeff=0.1))
    x = torch.randn(8, 6)
    out = sae(x)
    assert torch.allclose(out.loss, sol.sae_loss(x, out.acts, out.x_hat, 0.1).loss)


# --- metric mutants ---------------------------------------------------------------------------


def l0_mean_over_everything(acts):
    return (acts > 0).float().mean().item()


def l0_sum_of_magnitudes(acts):
    return acts.sum(-1).mean().item()


def fvu_global_mean(x, x_hat):
    return ((x - x_hat).pow(2).sum() / (x - x.mean()).pow(2).sum()).item()


def fvu_no_centering(x, x_hat):
    return ((x - x_hat).pow(2).sum() / x.pow(2).sum()).item()


def fvu_per_dimension_average(x, x_hat):
    return ((x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean().item()


@pytest.mark.parametrize("mutant,match", [(l0_mean_over_everything, "fraction of latents"), (l0_sum_of_magnitudes, "l0_norm")])
def test_check_l0_norm_catches(mutant, match):
    assert_check_fails(checks.check_l0_norm, mutant, match=match)


@pytest.mark.parametrize("mutant", [fvu_global_mean, fvu_no_centering, fvu_per_dimension_average])
def test_check_fvu_catches(mutant):
    assert_check_fails(checks.check_fraction_variance_unexplained, mutant, match="FVU|fraction_variance")


# --- resampling mutants -----------------------------------------------------------------------


@torch.no_grad()
def resample_uniform(sae, x, dead, generator=None):
    errors = x - sae(x).x_hat
    idx = torch.randint(len(x), (int(dead.sum()),))
    d = errors[idx] / errors[idx].norm(dim=-1, keepdim=True).clamp_min(1e-8)
    sae.W_dec.data[dead] = d
    sae.W_enc.data[:, dead] = d.T * sae.W_enc[:, ~dead].norm(dim=0).mean() * sae.cfg.resample_scale
    sae.b_enc.data[dead] = 0.0
    return int(dead.sum())


@torch.no_grad()
def resample_keep_bias(sae, x, dead, generator=None):
    b = sae.b_enc.data.clone()
    n = sol.resample_dead_latents(sae, x, dead, generator)
    sae.b_enc.data.copy_(b)
    return n


@torch.no_grad()
def resample_unit_encoder(sae, x, dead, generator=None):
    n = sol.resample_dead_latents(sae, x, dead, generator)
    sae.W_enc.data[:, dead] = sae.W_dec.data[dead].T
    return n


@torch.no_grad()
def resample_everything(sae, x, dead, generator=None):
    return sol.resample_dead_latents(sae, x, torch.ones_like(dead), generator) and int(dead.sum())


@torch.no_grad()
def resample_input_not_error(sae, x, dead, generator=None):
    x_hat = sae(x).x_hat
    idx = torch.multinomial((x - x_hat).pow(2).sum(-1), int(dead.sum()), replacement=True)
    d = x[idx] / x[idx].norm(dim=-1, keepdim=True)
    sae.W_dec.data[dead] = d
    sae.W_enc.data[:, dead] = d.T * sae.W_enc[:, ~dead].norm(dim=0).mean() * sae.cfg.resample_scale
    sae.b_enc.data[dead] = 0.0
    return int(dead.sum())


@pytest.mark.parametrize(
    "mutant", [resample_uniform, resample_keep_bias, resample_unit_encoder, resample_everything, resample_input_not_error]
)
def test_check_resample_catches(mutant):
    assert_check_fails(checks.check_resample_dead_latents, mutant)


# --- properties of the reference --------------------------------------------------------------


def _planted_features(n_feat=12, d=8, p=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_feat, d, generator=gen)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)

    def sample(b):
        mask = (torch.rand(b, n_feat, generator=gen) < p).float()
        return (mask * torch.rand(b, n_feat, generator=gen)) @ dirs

    return dirs, sample


def test_sae_recovers_planted_features():
    """12 sparse features squeezed into 8 dims (superposition): each should get its own latent."""
    dirs, sample = _planted_features()
    cfg = sol.SAEConfig(d_in=8, d_sae=24, l1_coeff=0.05, lr=3e-3, batch_size=256, n_steps=800,
                        resample_every=200, dead_window=100)
    sae = sol.SAE(cfg)
    hist = sol.train_sae(sae, sample, progress=False)
    best_cos = (dirs @ sae.W_dec.detach().T).max(dim=1).values
    assert best_cos.min() > 0.9, f"features not recovered: best cosine per feature {best_cos}"
    assert hist["l0"][-1] < 3, "the SAE should be sparse: ~0.6 features are active per input"
    assert hist["fvu"][-1] < 0.4
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(24), atol=1e-5), "decoder rows must stay unit-norm"


def test_resampling_revives_dead_latents():
    dirs, sample = _planted_features()
    results = {}
    for resample_every in (0, 100):
        cfg = sol.SAEConfig(d_in=8, d_sae=24, l1_coeff=0.05, lr=3e-3, batch_size=256, n_steps=300,
                            resample_every=resample_every, dead_window=50)
        sae = sol.SAE(cfg)
        with torch.no_grad():
            sae.b_enc[:16] = -10.0  # 16 latents start dead
        hist = sol.train_sae(sae, sample, progress=False)
        results[resample_every] = hist
    assert results[0]["frac_dead"][-1] >= 16 / 24 - 1e-6, "without resampling, the killed latents stay dead"
    assert sum(results[100]["n_resampled"]) >= 16
    assert results[100]["frac_dead"][-1] < results[0]["frac_dead"][-1]


def test_sae_rejects_bad_input():
    with pytest.raises(ValueError, match="d_sae"):
        sol.SAEConfig(d_in=4, d_sae=0)
    with pytest.raises(ValueError, match="l1_coeff"):
        sol.SAEConfig(d_in=4, d_sae=8, l1_coeff=-1.0)
    sae = sol.SAE(sol.SAEConfig(d_in=4, d_sae=8))
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        sae(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        sol.train_sae(sae, torch.randn(10, 3), progress=False)


# --- variants (section 1.4) ---------------------------------------------------------------------


class TopKNoReLU(sol.TopKSAE):
    def encode(self, x):
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        top = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)


class TopKOverBatch(sol.TopKSAE):
    def encode(self, x):
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        top = pre.topk(self.cfg.k, dim=0)
        return torch.zeros_like(pre).scatter(0, top.indices, F.relu(top.values))


class TopKDetached(sol.TopKSAE):
    def encode(self, x):
        return sol.TopKSAE.encode(self, x).detach()


class TopKNoDecBias(sol.TopKSAE):
    def encode(self, x):
        pre = x @ self.W_enc + self.b_enc
        top = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))


class TopKPlainReLU(sol.TopKSAE):
    def encode(self, x):
        return F.relu((x - self.b_dec) @ self.W_enc + self.b_enc)


@pytest.mark.parametrize(
    "mutant_cls,expect",
    [(TopKNoReLU, "negative"), (TopKOverBatch, "non-zero latents|batch axis"), (TopKDetached, "detached"),
     (TopKNoDecBias, "encode"), (TopKPlainReLU, "top k")],
)
def test_check_topk_catches(mutant_cls, expect):
    assert_check_fails(checks.check_topk_sae, mutant_cls, match=expect)


def _jump_mutant(cls, old, new):
    return mutant(cls, (old, new))


@pytest.mark.parametrize(
    "bad,expect",
    [
        (_jump_mutant(sol.JumpReLUFunction, "-(threshold / eps)", "-(1.0 / eps)"), "missing the factor"),
        (_jump_mutant(sol.JumpReLUFunction, "-(threshold / eps)", "(threshold / eps)"), "wrong sign"),
        (_jump_mutant(sol.JumpReLUFunction, "-(threshold / eps)", "-threshold"), "bandwidth"),
        (_jump_mutant(sol.JumpReLUFunction, " * grad_out).sum(0)", ").sum(0)"), "grad_out"),
        (_jump_mutant(sol.JumpReLUFunction, "grad_pre = grad_out * (pre > threshold)", "grad_pre = grad_out"), "H\\(z - θ\\)"),
        (_jump_mutant(sol.JumpReLUFunction, "rectangle((pre - threshold) / eps)", "rectangle(pre - threshold)"), "threshold"),
    ],
)
def test_check_jumprelu_function_catches(bad, expect):
    assert_check_fails(checks.check_jumprelu_function, bad, match=expect)


@pytest.mark.parametrize(
    "bad,expect",
    [
        (_jump_mutant(sol.StepFunction, "-(1.0 / eps)", "(1.0 / eps)"), "wrong sign"),
        (_jump_mutant(sol.StepFunction, "-(1.0 / eps)", "-(threshold / eps)"), "factor θ"),
        (_jump_mutant(sol.StepFunction, "torch.zeros_like(pre), grad_threshold", "grad_out, grad_threshold"), "flat in z"),
        (_jump_mutant(sol.StepFunction, " * grad_out).sum(0)", " * grad_out).mean(0)"), "threshold"),
    ],
)
def test_check_step_function_catches(bad, expect):
    assert_check_fails(checks.check_step_function, bad, match=expect)


@pytest.mark.parametrize(
    "bad,expect",
    [
        (mutant(sol.JumpReLUSAE, ("l0 = StepFunction.apply(pre, threshold, self.cfg.bandwidth).sum(-1).mean()", "l0 = (acts > 0).float().sum(-1).mean()")), "no gradient reaches"),
        (mutant(sol.JumpReLUSAE, ("l0 = StepFunction.apply(pre, threshold, self.cfg.bandwidth).sum(-1).mean()", "l0 = acts.abs().sum(-1).mean()")), "L1"),
        (mutant(sol.JumpReLUSAE, ("recon_loss + self.cfg.l0_coeff * l0, recon_loss", "recon_loss + l0, recon_loss")), "l0_coeff"),
        (mutant(sol.JumpReLUSAE, ("        threshold = self.log_threshold.exp()\n        acts", "        threshold = self.log_threshold\n        acts")), "x_hat|loss|sparsity"),
        (mutant(sol.JumpReLUSAE, ("recon_loss = (x_hat - x).pow(2).mean(-1).mean()\n        l0", "recon_loss = (x_hat - x).pow(2).sum(-1).mean()\n        l0")), "recon_loss"),
    ],
)
def test_check_jumprelu_sae_catches(bad, expect):
    assert_check_fails(checks.check_jumprelu_sae, bad, match=expect)


@pytest.mark.parametrize(
    "bad,expect",
    [
        (mutant(sol.compare_saes, ('fraction_variance_unexplained(eval_x, out.x_hat)', 'fraction_variance_unexplained(out.x_hat, eval_x)')), "swapped"),
        (mutant(sol.compare_saes, ("        train_sae(sae, train_data, progress=False)\n", "")), "not trained"),
        (mutant(sol.compare_saes, ('"frac_dead": (out.acts > 0).any(0).logical_not().float().mean().item()', '"frac_dead": (out.acts > 0).any(0).float().mean().item()')), "frac_dead"),
        (mutant(sol.compare_saes, ("out = sae(eval_x)", "out = sae(train_data[:len(eval_x)])"), ("eval_x, out.x_hat", "train_data[:len(eval_x)], out.x_hat")), "held-out"),
        (mutant(sol.compare_saes, ('"l0": l0_norm(out.acts)', '"l0": (out.acts > 0).float().mean().item()')), "l0"),
    ],
)
def test_check_compare_saes_catches(bad, expect):
    assert_check_fails(checks.check_compare_saes, bad, match=expect)


def test_sae_config_stays_compatible():
    """Section 1.3 builds SAEConfig with its original fields only and small d_sae; the variant fields have defaults."""
    cfg = sol.SAEConfig(d_in=2, d_sae=2, l1_coeff=0.1)
    sae = sol.SAE(cfg)
    out = sae(torch.randn(5, 2))
    assert isinstance(out, sol.SAEOutput) and out.l1_loss.shape == ()
    with pytest.raises(ValueError, match="k = 4"):
        sol.TopKSAE(cfg)


def test_variants_train_with_train_sae():
    """TopK and JumpReLU go through the same train_sae and recover planted features."""
    dirs, sample = _planted_features()
    for sae in (sol.TopKSAE(sol.SAEConfig(d_in=8, d_sae=24, k=2, lr=3e-3, batch_size=256, n_steps=600, resample_every=200, dead_window=100)),
                sol.JumpReLUSAE(sol.SAEConfig(d_in=8, d_sae=24, l0_coeff=3e-3, threshold_init=0.05, lr=3e-3, batch_size=256, n_steps=600,
                                              resample_every=200, dead_window=100))):
        hist = sol.train_sae(sae, sample, progress=False)
        assert hist["fvu"][-1] < 0.3, (type(sae).__name__, hist["fvu"][-1])
        best_cos = (dirs @ sae.W_dec.detach().T).max(dim=1).values
        assert best_cos.min() > 0.8, (type(sae).__name__, best_cos)
