"""Checks for the sparse autoencoder exercises (curriculum/solutions/chapter1/sae.py).

The references here are written out independently with plain torch ops, and the variance
metric is compared with scikit-learn's `r2_score`.
"""

from __future__ import annotations

import torch
from sklearn.metrics import r2_score

from curriculum.solutions.chapter1.sae import SAEConfig
from curriculum.checking import assert_close, assert_scalar_close, assert_shape, check, fail, module_instance

D_IN, D_SAE, BATCH = 6, 12, 32


def _sae_with_random_weights(SAE, l1_coeff: float = 0.3, seed: int = 0):
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coeff=l1_coeff, seed=seed)
    sae = module_instance(SAE, cfg)
    names = {n for n, _ in sae.named_parameters()}
    missing = {"W_enc", "W_dec", "b_enc", "b_dec"} - names
    if missing:
        fail(f"SAE should have parameters W_enc, W_dec, b_enc, b_dec; missing {sorted(missing)}")
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=gen))
        W_dec = torch.randn(D_SAE, D_IN, generator=gen)
        sae.W_dec.copy_(W_dec / W_dec.norm(dim=-1, keepdim=True))
        sae.b_enc.copy_(torch.randn(D_SAE, generator=gen) * 0.5)
        sae.b_dec.copy_(torch.randn(D_IN, generator=gen) * 0.5)
    x = torch.randn(BATCH, D_IN, generator=gen)
    return sae, x


@check
def check_sae(SAE) -> str:
    sae, x = _sae_with_random_weights(SAE)
    W_enc, W_dec, b_enc, b_dec = (p.detach() for p in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec))
    acts = torch.relu((x - b_dec) @ W_enc + b_enc)
    x_hat = acts @ W_dec + b_dec
    with torch.no_grad():
        got_acts = sae.encode(x)
        assert_close(got_acts, acts, "encode(x)", atol=1e-5,
                     hint="acts = ReLU((x - b_dec) @ W_enc + b_enc): subtract b_dec before encoding, and apply the ReLU")
        assert_close(sae.decode(acts), x_hat, "decode(acts)", atol=1e-5, hint="x_hat = acts @ W_dec + b_dec")
        out = sae(x)
    if not isinstance(out, tuple) or not hasattr(out, "recon_loss"):
        fail(f"forward should return an SAEOutput(loss, recon_loss, l1_loss, x_hat, acts), got {type(out).__name__}")
    assert_close(out.acts, acts, "forward(x).acts")
    assert_close(out.x_hat, x_hat, "forward(x).x_hat")
    recon = (x_hat - x).pow(2).mean(-1).mean()
    l1 = acts.sum(-1).mean()
    for got, want, what, hint in [
        (out.recon_loss, recon, "recon_loss", "mean over d_in of the squared error, then mean over the batch"),
        (out.l1_loss, l1, "l1_loss", "sum over latents of |acts|, then mean over the batch"),
        (out.loss, recon + 0.3 * l1, "loss", "loss = recon_loss + cfg.l1_coeff * l1_loss"),
    ]:
        assert_shape(got, (), what, hint="each loss term should be a scalar averaged over the batch")
        assert_scalar_close(got, want.item(), what, rel=1e-4, hint=hint)
    return f"{int((acts > 0).sum())}/{acts.numel()} latents active on random inputs"


@check
def check_metrics(l0_norm, fraction_variance_unexplained) -> None:
    gen = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(50, 20, generator=gen))
    acts[:, :5] = 0.0  # whole latents silent: L0 must not count them
    l0 = l0_norm(acts)
    want = torch.count_nonzero(acts, dim=-1).float().mean().item()
    assert_scalar_close(l0, want, "l0_norm(acts)",
                        hint="count the latents > 0 of each input (sum over d_sae), then average over the batch")
    x = torch.randn(64, 5, generator=gen) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0]) + 4.0
    x_hat = x + torch.randn(64, 5, generator=gen) * 0.7
    want = 1.0 - r2_score(x.numpy(), x_hat.numpy(), multioutput="variance_weighted")
    assert_scalar_close(fraction_variance_unexplained(x, x_hat), want, "fraction_variance_unexplained",
                        rel=1e-4, hint="residual sum of squares over the sum of squares around the per-dimension batch mean")
    assert_scalar_close(fraction_variance_unexplained(x, x.clone()), 0.0, "FVU of a perfect reconstruction", abs_=1e-6)
    mean_pred = x.mean(0, keepdim=True).expand_as(x)
    assert_scalar_close(fraction_variance_unexplained(x, mean_pred), 1.0, "FVU of predicting the mean",
                        hint="subtract the mean over the batch (dim 0), not over all entries")


@check
def check_resample_dead_latents(resample_dead_latents) -> str:
    from curriculum.solutions.chapter1.sae import SAE

    # An SAE that reconstructs exactly any input living in the first 5 dims (latent i reads +x_i,
    # latent 5+i reads -x_i), with 2 latents switched off. Only input 7 has a 6th-dim component, so it
    # is the only badly reconstructed input and every resampled latent must point along e_5.
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, resample_scale=0.2)
    sae = SAE(cfg)
    c = torch.linspace(0.5, 2.0, 5)  # alive encoder columns of different norms
    with torch.no_grad():
        sae.W_enc.zero_(), sae.W_dec.zero_(), sae.b_enc.zero_(), sae.b_dec.zero_()
        for i in range(5):
            sae.W_enc[i, i], sae.W_dec[i, i] = c[i], 1 / c[i]
            sae.W_enc[i, 5 + i], sae.W_dec[5 + i, i] = -c[i], -1 / c[i]
        sae.W_enc[:, 10:] = torch.randn(D_IN, 2)
        sae.b_enc[10:] = -100.0
    x = torch.randn(BATCH, D_IN, generator=torch.Generator().manual_seed(0))
    x[:, 5] = 0.0
    x[7, 5] = 3.0
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[[3, 10, 11]] = True
    before = {n: p.detach().clone() for n, p in sae.named_parameters()}
    n = resample_dead_latents(sae, x, dead)
    if n != 3:
        fail(f"resample_dead_latents should return the number of latents resampled (3), got {n!r}")
    for name, p in sae.named_parameters():
        if name == "b_dec":
            assert_close(p.detach(), before[name], "b_dec", hint="resampling must not touch b_dec")
            continue
        keep = (lambda t: t[:, ~dead]) if name == "W_enc" else (lambda t: t[~dead])
        assert_close(keep(p.detach()), keep(before[name]), f"{name} of the alive latents", hint="only the dead latents may change")
    direction = torch.zeros(D_IN)
    direction[5] = 1.0
    expected_dec = direction.expand(3, D_IN)
    assert_close(sae.W_dec.detach()[dead], expected_dec, "W_dec rows of the dead latents", atol=1e-4,
                 hint="sample inputs with probability proportional to their squared reconstruction error and use the "
                 "unit-normalised error (x - x_hat) as the new decoder row")
    alive_norm = before["W_enc"][:, ~dead].norm(dim=0).mean()
    assert_close(sae.W_enc.detach()[:, dead], expected_dec.T * alive_norm * 0.2, "W_enc columns of the dead latents",
                 atol=1e-4, hint="new encoder column = the same direction * resample_scale * mean norm of the alive encoder columns")
    assert_close(sae.b_enc.detach()[dead], torch.zeros(3), "b_enc of the dead latents", hint="reset their encoder bias to 0")
    return "dead latents now point at the worst-reconstructed input"
