"""Checks for section 1.4, toy models of superposition. Each compares with an independent formula
(explicit per-instance loops, hand-computed geometry) rather than with the reference solution."""

from __future__ import annotations

import math

import torch

from curriculum.solutions.chapter1 import superposition as ref
from curriculum.checking import assert_close, assert_finite, assert_shape, check, fail, module_instance
from curriculum.utils.device import torch_threads


@check
def check_toy_model(ToyModel) -> str:
    cfg = ref.ToyConfig(n_instances=3, n_features=5, n_hidden=2)
    torch.manual_seed(0)
    model = module_instance(ToyModel, cfg)
    params = dict(model.named_parameters())
    if set(params) != {"W", "b_final"}:
        fail(
            f"the model's parameters should be exactly W and b_final, got {sorted(params)}: the weights are tied, "
            "so the read-out uses W itself (transposed), not a second matrix"
        )
    assert_shape(params["W"], (3, 2, 5), "model.W", hint="W is (n_instances, n_hidden, n_features)")
    assert_shape(params["b_final"], (3, 5), "model.b_final")

    with torch.no_grad():
        model.W.copy_(torch.randn(3, 2, 5))
        # A negative bias makes many pre-activations negative, so a missing ReLU shows.
        model.b_final.copy_(torch.randn(3, 5) * 0.5 - 0.3)
    W, b = model.W.detach().clone(), model.b_final.detach().clone()
    x = torch.rand(7, 3, 5)
    # One plain matrix product per instance: x @ W^T is h, h @ W is the read-out.
    h_expected = torch.stack([x[:, i] @ W[i].T for i in range(3)], dim=1)
    out_expected = torch.stack([torch.relu(x[:, i] @ W[i].T @ W[i] + b[i]) for i in range(3)], dim=1)

    assert_close(
        model.hidden(x), h_expected, "model.hidden(x)",
        hint="h = W x for each instance separately: contract over the feats axis, keep the inst axis",
    )
    out = model(x)
    out = assert_shape(out, (7, 3, 5), "model(x)")
    if (out < 0).any():
        fail("model(x) has negative entries: apply the ReLU after adding b_final")
    pre_relu = torch.stack([x[:, i] @ W[i].T @ W[i] + b[i] for i in range(3)], dim=1)
    if torch.allclose(out, torch.relu(pre_relu - b) + b, atol=1e-5) and not torch.allclose(out, out_expected, atol=1e-5):
        fail("model(x) adds b_final after the ReLU: the bias goes inside, ReLU(W^T W x + b)")
    assert_close(
        out, out_expected, "model(x)",
        hint="x' = ReLU(W^T (W x) + b_final), with the same W in both products",
    )
    return "h = Wx and x' = ReLU(WᵀWx + b) match a per-instance matrix product"


@check
def check_generate_batch(generate_batch) -> str:
    torch.manual_seed(0)
    p = torch.tensor([[0.05, 0.5, 0.9, 1.0], [0.3, 0.1, 0.7, 0.95]])
    n = 20_000
    batch = assert_shape(generate_batch(n, p), (n, 2, 4), "generate_batch(20000, p)", hint="shape is (batch, inst, feats)")
    if not batch.is_floating_point():
        fail(f"the batch should hold floats, got dtype {batch.dtype}")
    assert_finite(batch, "generate_batch(20000, p)", hint="features are uniform draws in [0, 1] kept with probability p, else 0")
    if (batch < 0).any() or (batch > 1).any():
        fail(
            f"values should lie in [0, 1], got min {batch.min().item():.3g} and max {batch.max().item():.3g}: "
            "use torch.rand (uniform), not torch.randn"
        )
    present = (batch != 0).float()
    freq = present.mean(0)
    tol = 4 * (p * (1 - p) / n).sqrt() + 1e-3
    if ((freq - p).abs() > tol).any():
        if ((freq - (1 - p)).abs() <= tol).all():
            fail(
                "each feature is non-zero with probability 1 - p, not p: feature_probability is the chance a "
                "feature is present (keep the value where rand < p)"
            )
        i, j = ((freq - p).abs() > tol).nonzero()[0].tolist()
        fail(f"feature {j} of instance {i} should be non-zero with probability {p[i, j]:.2f}, but was in {freq[i, j]:.3f} of samples")

    for i in range(2):
        for j in range(4):
            values = batch[:, i, j][batch[:, i, j] != 0]
            mean_tol = 4 * math.sqrt(1 / 12 / len(values))
            if abs(values.mean().item() - 0.5) > mean_tol or abs((values < 0.25).float().mean().item() - 0.25) > 2 * mean_tol:
                fail(
                    f"the non-zero values of feature {j} (instance {i}) should be uniform in [0, 1] (mean 0.5, a quarter "
                    f"below 0.25); got mean {values.mean().item():.3f}. Draw the values and the on/off mask from two "
                    "independent torch.rand calls"
                )

    # Independence: two features with p = 0.5 and 0.9 should both be on in 0.45 of samples.
    pairs = [((0, 1), (0, 2)), ((0, 1), (1, 1)), ((1, 0), (1, 2))]
    for (i1, j1), (i2, j2) in pairs:
        both = (present[:, i1, j1] * present[:, i2, j2]).mean().item()
        indep = (p[i1, j1] * p[i2, j2]).item()
        if abs(both - indep) > 0.02:
            fail(
                f"features ({i1},{j1}) and ({i2},{j2}) are not independent: both are on in {both:.3f} of samples, "
                f"expected {indep:.3f}. Draw one random number per (sample, instance, feature), not one per sample"
            )
    return "frequencies, value distribution and independence look right over 20,000 samples"


@check
def check_importance_weighted_mse(importance_weighted_mse) -> str:
    # Hand-computed: instance 0 gives (1*1 + 0.5*4 + 0 + 0.5*1) / 4 = 0.875,
    # instance 1 gives (2*9 + 0 + 2*1 + 0) / 4 = 5, so the loss is 5.875.
    batch = torch.tensor([[[1.0, 2.0], [3.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])
    out = torch.zeros(2, 2, 2, requires_grad=True)
    importance = torch.tensor([[1.0, 0.5], [2.0, 0.0]])
    loss = importance_weighted_mse(out, batch, importance)
    if not isinstance(loss, torch.Tensor):
        fail(f"return a tensor (you call .backward() on it), got {type(loss).__name__}")
    if loss.numel() != 1:
        fail(f"the loss should be a scalar, got shape {tuple(loss.shape)}: mean over batch and feats, then sum over instances")
    got = loss.item()
    guesses = {
        (1 * 1 + 4 + 0 + 1 + 9 + 0 + 1 + 1) / 4: "the importance weights are missing: multiply each squared error by importance",
        5.875 / 2: "you averaged over instances: sum over them, so each instance trains as if it were alone",
        (1 + 0.25 * 4 + 0.25 * 1) / 4 + (4 * 9 + 4 * 1) / 4: "importance is squared: weight the squared error, (I * (x - x')^2), not (I * (x - x'))^2",
        5.875 * 2: "you summed over the batch or the feats axis: take the mean over (batch, feats)",
        5.875 * 4: "you summed over the batch and feats axes: take the mean over (batch, feats)",
    }
    for value, why in guesses.items():
        if math.isclose(got, value, rel_tol=1e-5):
            fail(f"expected 5.875 on a hand-computed example, got {got:.6g}: {why}")
    if not math.isclose(got, 5.875, rel_tol=1e-5):
        fail(f"expected 5.875 on a hand-computed example, got {got:.6g}")
    if not loss.requires_grad:
        fail("the loss does not depend on `out` through autograd: avoid .item(), .detach() or numpy inside the loss")

    torch.manual_seed(0)
    batch, out, importance = torch.rand(16, 3, 4), torch.rand(16, 3, 4), torch.rand(3, 4)
    expected = sum(
        sum(importance[i, f] * (batch[b, i, f] - out[b, i, f]) ** 2 for b in range(16) for f in range(4)) / (16 * 4)
        for i in range(3)
    )
    assert_close(importance_weighted_mse(out, batch, importance).reshape(()), expected.reshape(()), "loss on random inputs")
    return "matches a hand-computed example and an explicit loop"


@check
def check_train_toy_model(train_toy_model) -> str:
    # Dense features, two dimensions, importances (1, 0.7, 0.1, 0.05): the optimum represents the two
    # important features orthogonally and replaces the others by their mean through the bias,
    # costing (0.1 + 0.05) * Var(U[0, 1]) / 4 per instance.
    torch.manual_seed(0)
    model = ref.ToyModel(ref.ToyConfig(n_instances=4, n_features=4, n_hidden=2), 1.0, torch.tensor([1.0, 0.7, 0.1, 0.05]))
    with torch_threads(1):  # a tiny model: one thread is faster than a pool, and much faster on a busy CPU
        losses = train_toy_model(model, steps=300, batch_size=256, lr=1e-2, seed=0, log_every=30)
    if not isinstance(losses, list) or len(losses) != 11:
        fail(f"train_toy_model should return the list of logged losses (11 for 300 steps, log_every=30), got {losses!r:.80}")
    if not losses[-1] < 0.2 * losses[0]:
        fail(
            f"the loss went from {losses[0]:.4g} to {losses[-1]:.4g}: it should fall at least five-fold. "
            "Check that you call loss.backward() and optimizer.step() after optimizer.zero_grad()"
        )
    optimum = 4 * (0.1 + 0.05) / 12 / 4
    norms = ref.feature_norms(model.W.detach())
    if not losses[-1] < 1.5 * optimum:
        fail(f"the final loss {losses[-1]:.4g} is far above the optimum {optimum:.4g}: is each step on a fresh batch, with the importance-weighted loss?")
    if not ((norms[:, :2] > 0.9).all() and (norms[:, 2:] < 0.2).all()):
        fail(
            f"after training, the two important features should have norm ~1 and the others ~0; got norms {norms.tolist()}"
        )
    return f"loss {losses[0]:.3g} → {losses[-1]:.3g} (optimum {optimum:.3g}), the two important features are kept"


def _geometry_examples() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two instances, 2 hidden dims, 5 features, with superposition and dimensionality worked out by hand.

    Instance 0: W_0 = (2, 0), W_1 = (-1, 0) antipodal with different norms, W_2 = (0, 1) alone, W_3 = W_4 = 0.
      Ŵ_0 · W_j = (2, -1, 0, 0, 0): superposition 1, D = 4 / 5.
      Ŵ_1 · W_j = (-2, 1, 0, 0, 0): superposition 4, D = 1 / 5.
      W_2 has a dimension to itself: superposition 0, D = 1. Zero features: 0 and 0.
    Instance 1: a regular pentagon of unit vectors; sum_j cos^2(72° k) = 1 + 2cos²72° + 2cos²144° = 5/2,
      so superposition 3/2 and D = 2/5 for every feature.
    """
    W = torch.zeros(2, 2, 5)
    W[0, :, 0] = torch.tensor([2.0, 0.0])
    W[0, :, 1] = torch.tensor([-1.0, 0.0])
    W[0, :, 2] = torch.tensor([0.0, 1.0])
    angles = torch.arange(5) * 2 * math.pi / 5
    W[1] = torch.stack([angles.cos(), angles.sin()])
    sup = torch.tensor([[1.0, 4.0, 0.0, 0.0, 0.0], [1.5] * 5])
    dim = torch.tensor([[0.8, 0.2, 1.0, 0.0, 0.0], [0.4] * 5])
    return W, sup, dim


def _loop_overlaps(W: torch.Tensor) -> torch.Tensor:
    """(Ŵ_i · W_j)^2 for every instance, i, j, with plain loops."""
    n_inst, _, n = W.shape
    out = torch.zeros(n_inst, n, n)
    for k in range(n_inst):
        for i in range(n):
            norm = W[k, :, i].norm()
            for j in range(n):
                out[k, i, j] = (W[k, :, i] @ W[k, :, j] / norm) ** 2 if norm > 0 else 0.0
    return out


@check
def check_superposition(superposition) -> str:
    W, sup, _ = _geometry_examples()
    got = assert_shape(superposition(W), (2, 5), "superposition(W)", hint="one value per (instance, feature)")
    if torch.isnan(got).any():
        fail("superposition(W) has NaN for a feature with W_i = 0: clamp the norm before dividing (Ŵ_i = 0 when W_i = 0)")
    assert_close(
        got, sup, "superposition(W) on hand-computed geometry", atol=1e-4,
        hint="use the normalised Ŵ_i = W_i / ||W_i||, dot it with the unnormalised W_j, square, and leave out j = i",
    )
    torch.manual_seed(0)
    W = torch.randn(3, 4, 6)
    overlaps = _loop_overlaps(W)
    expected = overlaps.sum(-1) - overlaps.diagonal(dim1=-2, dim2=-1)
    assert_close(superposition(W), expected, "superposition(W) on a random W", atol=1e-4)
    return "antipodal pair, lone feature, dropped features and the pentagon all match"


@check
def check_feature_dimensionality(feature_dimensionality) -> str:
    W, _, dim = _geometry_examples()
    got = assert_shape(feature_dimensionality(W), (2, 5), "feature_dimensionality(W)", hint="one value per (instance, feature)")
    if torch.isnan(got).any():
        fail("feature_dimensionality(W) has NaN for a feature with W_i = 0: clamp the denominator so that D_i = 0 there")
    assert_close(
        got, dim, "feature_dimensionality(W) on hand-computed geometry", atol=1e-4,
        hint="D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)², with j = i included in the sum (the pentagon gives 2/5)",
    )
    torch.manual_seed(0)
    W = torch.randn(3, 4, 6)
    expected = W.norm(dim=1) ** 2 / _loop_overlaps(W).sum(-1)
    assert_close(feature_dimensionality(W), expected, "feature_dimensionality(W) on a random W", atol=1e-4)
    return "D = 4/5, 1/5, 1, 0 on hand-made geometry and 2/5 on the pentagon"


@check
def check_feature_recovery(feature_recovery) -> str:
    # Three features in 2-D; four latents. Feature 0 is matched exactly (by a latent of norm 2, so the
    # answer needs normalising), feature 1 at 60° (cos 0.5), feature 2 only by a latent pointing the
    # opposite way (cos -1) and one at 90° (cos 0): its best signed match is 0.
    W = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5 * math.sqrt(3), 3.0]])
    W_dec = torch.tensor([[2.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [math.cos(-2.0), math.sin(-2.0)]])
    got = feature_recovery(W, W_dec)
    got = assert_shape(got, (3,), "feature_recovery(W, W_dec)", hint="one value per true feature: take the max over the latents axis")
    expected = torch.tensor([1.0, 0.5, 0.0])
    if math.isclose(got[2].item(), 1.0, abs_tol=1e-4):
        fail("feature 2 is only matched by a latent pointing the opposite way, yet you report 1: use the signed cosine, not its absolute value")
    if (got > 1 + 1e-4).any():
        fail(f"cosine similarities can't exceed 1, got {got.tolist()}: normalise both W_i and the decoder rows")
    assert_close(got, expected, "feature_recovery on a hand-made example", atol=1e-4)
    return "signed cosine, normalised, best latent per feature"


@check
def check_sae_recovers_features(W: torch.Tensor, W_dec: torch.Tensor, threshold: float = 0.9) -> str:
    """Not an exercise check: did a trained SAE find every true feature direction (cosine > threshold)?"""
    W, W_dec = W.detach().cpu(), W_dec.detach().cpu()
    if W.ndim != 2 or W_dec.ndim != 2 or W.shape[0] != W_dec.shape[1]:
        fail(f"expected W of shape (hidden, feats) and W_dec of shape (d_sae, hidden), got {tuple(W.shape)} and {tuple(W_dec.shape)}")
    cos = (W_dec / W_dec.norm(dim=1, keepdim=True)) @ (W / W.norm(dim=0, keepdim=True))
    best = cos.max(0).values
    missed = [(i, round(c, 3)) for i, c in enumerate(best.tolist()) if c <= threshold]
    if missed:
        fail(
            f"features (index, best cosine) {missed} have no SAE latent with cosine > {threshold}: train longer, "
            "use more latents, or raise l1_coeff so latents stop mixing features"
        )
    return f"every one of the {W.shape[1]} features has a latent with cosine ≥ {best.min().item():.3f}"
