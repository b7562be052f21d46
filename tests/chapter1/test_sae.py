"""SAE tests beyond the automatic stub/solution ones: mutants each check must catch, and properties
of the reference (it recovers planted sparse features; resampling revives dead latents)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from curriculum.solutions.chapter1 import sae as sol
from curriculum.checks.chapter1 import sae as checks
from tests.support import assert_check_fails


# --- SAE mutants -----------------------------------------------------------------------------


class NoDecBiasSubtraction(sol.SAE):
    def encode(self, x):
        return F.relu(x @ self.W_enc + self.b_enc)


class NoReLU(sol.SAE):
    def encode(self, x):
        return (x - self.b_dec) @ self.W_enc + self.b_enc


class DecodeWithoutBias(sol.SAE):
    def decode(self, acts):
        return acts @ self.W_dec


def _forward(recon_reduce, l1_reduce, use_coeff=True):
    def forward(self, x):
        acts = self.encode(x)
        x_hat = self.decode(acts)
        recon = recon_reduce((x_hat - x).pow(2))
        l1 = l1_reduce(acts.abs())
        loss = recon + (self.cfg.l1_coeff if use_coeff else 1.0) * l1
        return sol.SAEOutput(loss, recon, l1, x_hat, acts)

    return forward


ReconSummed = type("ReconSummed", (sol.SAE,), {"forward": _forward(lambda e: e.sum(-1).mean(), lambda a: a.sum(-1).mean())})
L1Meaned = type("L1Meaned", (sol.SAE,), {"forward": _forward(lambda e: e.mean(-1).mean(), lambda a: a.mean())})
NoL1Coeff = type("NoL1Coeff", (sol.SAE,), {"forward": _forward(lambda e: e.mean(-1).mean(), lambda a: a.sum(-1).mean(), False)})


@pytest.mark.parametrize("mutant", [NoDecBiasSubtraction, NoReLU, DecodeWithoutBias, ReconSummed, L1Meaned, NoL1Coeff])
def test_check_sae_catches(mutant):
    assert_check_fails(checks.check_sae, mutant)


def test_check_sae_rejects_instance():
    assert_check_fails(checks.check_sae, sol.SAE(sol.SAEConfig(d_in=6, d_sae=12)), match="class")


# --- metric mutants ---------------------------------------------------------------------------


def l0_mean_over_everything(acts):
    return (acts > 0).float().mean().item()


def fvu_global_mean(x, x_hat):
    return ((x - x_hat).pow(2).sum() / (x - x.mean()).pow(2).sum()).item()


def fvu_no_centering(x, x_hat):
    return ((x - x_hat).pow(2).sum() / x.pow(2).sum()).item()


@pytest.mark.parametrize(
    "l0,fvu",
    [
        (l0_mean_over_everything, sol.fraction_variance_unexplained),
        (sol.l0_norm, fvu_global_mean),
        (sol.l0_norm, fvu_no_centering),
    ],
)
def test_check_metrics_catches(l0, fvu):
    assert_check_fails(checks.check_metrics, l0, fvu)


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
