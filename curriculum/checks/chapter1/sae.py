"""Checks for the sparse autoencoder exercises (curriculum/solutions/chapter1/sae.py).

The references here are written out independently with plain torch ops, and the variance
metric is compared with scikit-learn's `r2_score`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.metrics import r2_score

from curriculum.solutions.chapter1.sae import SAEConfig
from curriculum.checking import assert_close, assert_scalar_close, assert_shape, check, fail, module_instance
from curriculum.utils.device import torch_threads

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
    W_enc, b_enc, b_dec = (p.detach() for p in (sae.W_enc, sae.b_enc, sae.b_dec))
    pre = (x - b_dec) @ W_enc + b_enc
    acts = torch.relu(pre)
    with torch.no_grad():
        got = sae.encode(x)
    assert_shape(got, (BATCH, D_SAE), "encode(x)", hint="one activation per latent: x [batch, d_in] @ W_enc [d_in, d_sae]")
    if torch.allclose(got, pre, atol=1e-5):
        fail("encode(x) returns the pre-activations, negative values included: apply a ReLU so latents are >= 0")
    if torch.allclose(got, torch.relu(x @ W_enc + b_enc), atol=1e-5):
        fail("encode(x) matches ReLU(x @ W_enc + b_enc): subtract b_dec from x before projecting, "
             "so the encoder reads the input relative to the point the decoder reconstructs around")
    assert_close(got, acts, "encode(x)", atol=1e-5,
                 hint="acts = ReLU((x - b_dec) @ W_enc + b_enc): subtract b_dec before encoding, and apply the ReLU")
    return f"{int((acts > 0).sum())}/{acts.numel()} latents active on random inputs"


@check
def check_sae_loss(sae_loss) -> str:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(BATCH, D_IN, generator=gen) * torch.linspace(0.5, 2.0, D_IN) + 1.0
    x_hat = x + torch.randn(BATCH, D_IN, generator=gen) * 0.4
    acts = torch.relu(torch.randn(BATCH, D_SAE, generator=gen) - 0.3)
    l1_coeff = 0.3
    out = sae_loss(x, acts, x_hat, l1_coeff)
    if not isinstance(out, tuple) or not hasattr(out, "recon_loss"):
        fail(f"sae_loss should return an SAEOutput(loss, recon_loss, l1_loss, x_hat, acts), got {type(out).__name__}")
    recon = F.mse_loss(x_hat, x, reduction="none").mean(dim=1).mean()
    l1 = acts.abs().sum(dim=1).mean()
    for got, want, what, hint in [
        (out.recon_loss, recon, "recon_loss",
         "mean over d_in of the squared error, then mean over the batch (summing over d_in makes it d_in times too big)"),
        (out.l1_loss, l1, "l1_loss",
         "sum over latents of |acts|, then mean over the batch (a mean over latents makes it d_sae times too small)"),
        (out.loss, recon + l1_coeff * l1, "loss", "loss = recon_loss + l1_coeff * l1_loss"),
    ]:
        assert_shape(got, (), what, hint="each loss term should be a scalar averaged over the batch")
        assert_scalar_close(got, want.item(), what, rel=1e-4, hint=hint)
    assert_close(out.x_hat, x_hat, "sae_loss(...).x_hat", hint="pass x_hat through unchanged")
    assert_close(out.acts, acts, "sae_loss(...).acts", hint="pass acts through unchanged")
    return f"recon {out.recon_loss.item():.3f}, l1 {out.l1_loss.item():.3f}, loss {out.loss.item():.3f}"


@check
def check_l0_norm(l0_norm) -> str:
    gen = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(50, 20, generator=gen))
    acts[:, :5] = 0.0  # whole latents silent: L0 must not count them
    want = torch.count_nonzero(acts, dim=-1).float().mean().item()
    got = l0_norm(acts)
    if isinstance(got, (int, float)) and abs(got - want / acts.shape[1]) < 1e-6:
        fail(f"l0_norm gave {got:.4f}, the fraction of latents that fire; L0 is their number per input ({want:.2f}): "
             "sum over d_sae, then average over the batch")
    assert_scalar_close(got, want, "l0_norm(acts)",
                        hint="count the latents > 0 of each input (sum over d_sae), then average over the batch")
    if abs(l0_norm(acts * 5.0) - want) > 1e-6:
        fail("l0_norm changed when every activation was multiplied by 5: count firing latents (> 0), do not add magnitudes")
    return f"L0 = {want:.2f} of 20 latents"


@check
def check_fraction_variance_unexplained(fraction_variance_unexplained) -> str:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0]) + 4.0
    x_hat = x + torch.randn(64, 5, generator=gen) * 0.7
    want = 1.0 - r2_score(x.numpy(), x_hat.numpy(), multioutput="variance_weighted")
    mean_pred = x.mean(0, keepdim=True).expand_as(x)
    assert_scalar_close(fraction_variance_unexplained(x, x.clone()), 0.0, "FVU of a perfect reconstruction", abs_=1e-6)
    assert_scalar_close(fraction_variance_unexplained(x, mean_pred), 1.0, "FVU of predicting the per-dimension mean",
                        hint="the denominator is x minus its mean over the batch (dim 0, keepdim), not over all entries, "
                             "and not x itself uncentred")
    got = fraction_variance_unexplained(x, x_hat)
    assert_scalar_close(got, want, "fraction_variance_unexplained", rel=1e-4,
                        hint="residual sum of squares over the sum of squares around the per-dimension batch mean")
    return f"FVU = {want:.3f} (sklearn's 1 - r2_score, variance-weighted)"


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


@check
def check_topk_sae(TopKSAE) -> str:
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, k=3)
    sae = module_instance(TopKSAE, cfg)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=gen))
        sae.b_enc.copy_(torch.randn(D_SAE, generator=gen) - 0.5)
        sae.b_dec.copy_(torch.randn(D_IN, generator=gen) * 0.5)
    x = torch.randn(BATCH, D_IN, generator=gen)
    pre = (x - sae.b_dec.detach()) @ sae.W_enc.detach() + sae.b_enc.detach()
    # Independent: rank each row with argsort, keep the 3 largest, then ReLU.
    order = pre.argsort(dim=-1, descending=True)
    keep = torch.zeros_like(pre, dtype=torch.bool)
    keep.scatter_(-1, order[:, :3], True)
    expected = torch.where(keep, pre.clamp_min(0), 0.0)
    with torch.no_grad():
        acts = assert_shape(sae.encode(x), (BATCH, D_SAE), "encode(x)")
    if (acts < 0).any():
        fail("encode(x) has negative latents: apply a ReLU to the k kept values (a top pre-activation can be negative)")
    l0 = (acts != 0).sum(-1)
    if (l0 > 3).any():
        fail(f"some inputs have {int(l0.max())} non-zero latents with k = 3: keep only the top k per input (topk over the last axis)")
    if torch.allclose(acts, torch.where(keep, pre, 0.0).clamp_min(0)) is False and torch.allclose(acts, torch.relu(pre) * keep.any(0)):
        fail("you kept the top k over the batch axis: take topk over the latents of each input (dim=-1)")
    assert_close(acts, expected, "encode(x)", atol=1e-5,
                 hint="pre = (x - b_dec) @ W_enc + b_enc; keep the k largest of each row (topk, dim=-1), ReLU them, zeros elsewhere (scatter)")
    acts_grad = sae(x).acts
    if not acts_grad.requires_grad:
        fail("the latents are detached: build them with scatter (or a mask) so gradients reach W_enc")
    return "top-k per input, ReLU'd, gradients flow"


def _jump_inputs():
    pre = torch.tensor([[0.30, -0.10, 0.52, 0.02], [0.12, 0.48, 0.55, 0.00], [0.70, 0.24, 0.49, -0.3]], requires_grad=True)
    threshold = torch.tensor([0.25, 0.20, 0.50, 0.01], requires_grad=True)
    return pre, threshold, 0.1


def _jump_setup():
    pre, threshold, eps = _jump_inputs()
    z, t = pre.detach(), threshold.detach()
    fires = (z > t).float()
    window = ((z - t).abs() < eps / 2).float()  # rectangle((z - θ) / ε), written independently
    g = torch.arange(1.0, 13.0).reshape(3, 4)  # an upstream gradient that differs per entry
    return pre, threshold, eps, z, t, fires, window, g


@check
def check_jumprelu_function(JumpReLUFunction) -> str:
    pre, threshold, eps, z, t, fires, window, g = _jump_setup()
    out = JumpReLUFunction.apply(pre, threshold, eps)
    assert_close(out.detach(), z * fires, "JumpReLUFunction forward", hint="z where z > θ, else 0 (the value z itself, not 1)")
    out.backward(g)
    if pre.grad is None or threshold.grad is None:
        fail("JumpReLUFunction.backward must return a gradient for pre and for threshold (and None for the bandwidth)")
    if torch.allclose(pre.grad, g):
        fail("the gradient w.r.t. pre passes grad_out everywhere: a latent below its threshold outputs 0, so multiply by H(z - θ)")
    assert_close(pre.grad, g * fires, "gradient of JumpReLU w.r.t. pre", hint="grad_out * H(z - θ): the jump does not change dz")
    expected_t = (-(t / eps) * window * g).sum(0)
    if torch.allclose(threshold.grad, (-(1 / eps) * window * g).sum(0)):
        fail("JumpReLU's threshold gradient is missing the factor θ: -(θ / ε) K((z - θ) / ε) · grad_out")
    if torch.allclose(threshold.grad, -expected_t):
        fail("JumpReLU's threshold gradient has the wrong sign: raising θ switches latents off, so it is -(θ / ε) K(...)")
    if torch.allclose(threshold.grad, (-t * window * g).sum(0)):
        fail("JumpReLU's threshold gradient is not divided by the bandwidth ε")
    if torch.allclose(threshold.grad, (-(t / eps) * window).sum(0)):
        fail("JumpReLU's threshold gradient ignores grad_out: multiply the pseudo-derivative by the upstream gradient (chain rule)")
    assert_close(threshold.grad, expected_t, "gradient of JumpReLU w.r.t. threshold", atol=1e-4,
                 hint="-(θ / ε) · rectangle((z - θ) / ε) · grad_out, summed over the batch axis; rectangle is 1 on (-1/2, 1/2)")
    return "forward values, the exact gradient for z and the pseudo-derivative for θ match"


@check
def check_step_function(StepFunction) -> str:
    pre, threshold, eps, _, t, fires, window, g = _jump_setup()
    out = StepFunction.apply(pre, threshold, eps)
    assert_close(out.detach(), fires, "StepFunction forward", hint="1.0 where z > θ, else 0.0")
    out.backward(g)
    if pre.grad is not None and pre.grad.abs().sum() > 0:
        fail("StepFunction passes a gradient to pre: the step is flat in z, return zeros for it")
    expected_t = (-(1 / eps) * window * g).sum(0)
    if threshold.grad is None:
        fail("StepFunction.backward must return a gradient for the threshold")
    if torch.allclose(threshold.grad, -expected_t):
        fail("StepFunction's threshold gradient has the wrong sign: raising θ lowers the L0")
    if torch.allclose(threshold.grad, (-(t / eps) * window * g).sum(0)):
        fail("StepFunction's threshold gradient has JumpReLU's factor θ: the step drops by 1, so it is -(1 / ε) K(...)")
    assert_close(threshold.grad, expected_t, "gradient of the step w.r.t. threshold", atol=1e-4,
                 hint="-(1 / ε) · rectangle((z - θ) / ε) · grad_out, summed over the batch axis")
    return "forward values and the pseudo-derivative for θ match"


@check
def check_jumprelu_sae(JumpReLUSAE) -> str:
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, l0_coeff=0.2, threshold_init=0.3, bandwidth=0.5)
    sae = module_instance(JumpReLUSAE, cfg)
    if not hasattr(sae, "log_threshold"):
        fail("JumpReLUSAE needs its log_threshold parameter (written in __init__)")
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=gen))
        sae.b_enc.copy_(torch.randn(D_SAE, generator=gen) * 0.5)
        sae.b_dec.copy_(torch.randn(D_IN, generator=gen) * 0.5)
        sae.log_threshold.copy_(torch.log(torch.rand(D_SAE, generator=gen) + 0.1))
    x = torch.randn(BATCH, D_IN, generator=gen)
    theta = sae.log_threshold.detach().exp()
    pre = (x - sae.b_dec.detach()) @ sae.W_enc.detach() + sae.b_enc.detach()
    acts = pre * (pre > theta)
    with torch.no_grad():
        got = sae.encode(x)
    if torch.allclose(got, pre * (pre > sae.log_threshold.detach())):
        fail("encode compares with log_threshold itself: the threshold is θ = exp(log_threshold)")
    assert_close(got, acts, "encode(x)", atol=1e-5, hint="JumpReLUFunction.apply(pre, exp(log_threshold), bandwidth)")
    out = sae(x)
    x_hat = acts @ sae.W_dec.detach() + sae.b_dec.detach()
    recon = (x_hat - x).pow(2).mean(-1).mean()
    l0 = (pre > theta).float().sum(-1).mean()
    assert_close(out.x_hat.detach(), x_hat, "forward(x).x_hat", atol=1e-5)
    assert_scalar_close(out.recon_loss, recon.item(), "recon_loss", hint="mean over d_in of the squared error, then mean over the batch")
    if abs(out.l1_loss.item() - acts.abs().sum(-1).mean().item()) < 1e-4 and abs(l0.item() - acts.abs().sum(-1).mean().item()) > 1e-3:
        fail("the sparsity term is the L1 of the latents: JumpReLU penalises the L0, the number of latents that fire")
    assert_scalar_close(out.l1_loss, l0.item(), "the sparsity term (out.l1_loss)", hint="the L0: StepFunction(pre, θ) summed over latents, mean over the batch")
    assert_scalar_close(out.loss, (recon + 0.2 * l0).item(), "loss", hint="loss = recon_loss + cfg.l0_coeff * L0")
    # The L0 term on its own must reach log_threshold, through StepFunction's pseudo-derivative and the
    # chain rule through exp: d L0 / d log θ = θ · mean_batch Σ -(1/ε) K((z - θ) / ε).
    if not out.l1_loss.requires_grad:
        fail("no gradient reaches log_threshold from the L0: compute it with StepFunction.apply(pre, θ, bandwidth), not by counting acts > 0")
    (g,) = torch.autograd.grad(out.l1_loss, sae.log_threshold, allow_unused=True)
    window = ((pre - theta).abs() < 0.5 / 2).float()
    expected = theta * (-(1 / 0.5) * window).sum(0) / BATCH
    if g is None or g.abs().sum() == 0:
        fail("no gradient reaches log_threshold from the L0: compute it with StepFunction and θ = exp(log_threshold)")
    assert_close(g, expected, "gradient of the L0 w.r.t. log_threshold", atol=1e-4,
                 hint="L0 = StepFunction.apply(pre, exp(log_threshold), bandwidth).sum(-1).mean()")
    return f"L0 {l0.item():.2f}, loss = recon + l0_coeff · L0, and the threshold learns"


@check
def check_compare_saes(compare_saes) -> str:
    from curriculum.solutions.chapter1.sae import SAE, fraction_variance_unexplained, l0_norm

    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(6, 4, generator=gen)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    data = (torch.rand(2048, 6, generator=gen) < 0.15).float() * torch.rand(2048, 6, generator=gen) @ dirs
    eval_x = (torch.rand(512, 6, generator=gen) < 0.15).float() * torch.rand(512, 6, generator=gen) @ dirs
    cfgs = {"a": SAEConfig(d_in=4, d_sae=8, l1_coeff=0.01, lr=1e-2, n_steps=60, batch_size=128, seed=1),
            "b": SAEConfig(d_in=4, d_sae=8, l1_coeff=0.3, lr=1e-2, n_steps=60, batch_size=128, seed=2)}
    variants = {name: SAE(c) for name, c in cfgs.items()}
    untrained = {name: SAE(c) for name, c in cfgs.items()}
    with torch_threads(1):  # tiny SAEs: one thread beats a pool, and much more so on a busy CPU
        results = compare_saes(variants, data, eval_x)
    if not isinstance(results, dict) or set(results) != {"a", "b"}:
        fail(f"compare_saes should return a dict keyed by the variant names ['a', 'b'], got {results!r:.100}")
    for name, sae in variants.items():
        if torch.allclose(sae.W_enc.detach(), untrained[name].W_enc):
            fail(f"variant {name!r} was not trained: call train_sae(sae, train_data) for each variant first")
        r = results[name]
        if not isinstance(r, dict) or not {"l0", "fvu", "frac_dead"} <= set(r):
            fail(f"results[{name!r}] should be a dict with keys l0, fvu, frac_dead; got {r!r:.100}")
        with torch.no_grad():
            out = sae(eval_x)
        want = {"l0": l0_norm(out.acts), "fvu": fraction_variance_unexplained(eval_x, out.x_hat),
                "frac_dead": float((out.acts.amax(0) <= 0).float().mean())}
        if abs(float(r["fvu"]) - want["fvu"]) > 1e-4:
            swapped = fraction_variance_unexplained(out.x_hat, eval_x)
            hint = ("the arguments of fraction_variance_unexplained are swapped: (x, x_hat)" if abs(float(r["fvu"]) - swapped) < 1e-4
                    else "measure on the held-out eval_x after training, not on a training batch")
            fail(f"variant {name!r}: fvu {float(r['fvu']):.4g}, expected {want['fvu']:.4g} on eval_x: {hint}")
        for key in ("l0", "frac_dead"):
            if abs(float(r[key]) - want[key]) > 1e-4:
                fail(f"variant {name!r}: {key} {float(r[key]):.4g}, expected {want[key]:.4g} on eval_x "
                     "(frac_dead: the fraction of latents that fire on no input of eval_x)")
    return "each variant trained, then measured on held-out data"
