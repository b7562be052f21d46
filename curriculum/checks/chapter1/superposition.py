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


def _pair_statistics(generate, p: torch.Tensor, n: int):
    batch = assert_shape(generate(n, p), (n, *p.shape), f"{generate.__name__}({n}, p)", hint="shape is (batch, inst, feats)")
    assert_finite(batch, f"{generate.__name__}(...)")
    if (batch < 0).any() or (batch > 1).any():
        fail(f"values should lie in [0, 1], got min {batch.min().item():.3g} and max {batch.max().item():.3g}: use torch.rand")
    present = (batch != 0).float()
    freq = present.mean(0)
    tol = 4 * (p * (1 - p) / n).sqrt() + 2e-3
    if ((freq - p).abs() > tol).any():
        i, j = ((freq - p).abs() > tol).nonzero()[0].tolist()
        fail(
            f"feature {j} of instance {i} should be on with probability {p[i, j]:.2f}, but was on in {freq[i, j]:.3f} "
            "of samples: each feature keeps its own probability p, only the pairing changes. Pairs are neighbours "
            "(0, 1), (2, 3), ...: expand one switch per pair with repeat_interleave, not repeat"
        )
    both = (present[:, :, 0::2] * present[:, :, 1::2]).mean(0)
    return batch, present, both


@check
def check_generate_correlated_batch(generate_correlated_batch) -> str:
    torch.manual_seed(0)
    p = torch.tensor([[0.1, 0.1, 0.4, 0.4, 0.25, 0.25], [0.3, 0.3, 0.05, 0.05, 0.6, 0.6]])
    n = 20_000
    batch, present, both = _pair_statistics(generate_correlated_batch, p, n)
    pair_p = p[:, 0::2]
    if ((both - pair_p).abs() > 0.02).any():
        i, k = ((both - pair_p).abs() > 0.02).nonzero()[0].tolist()
        fail(
            f"features {2 * k} and {2 * k + 1} (instance {i}) should be on together, in {pair_p[i, k]:.2f} of samples, but "
            f"both were on in {both[i, k]:.3f}: the pairs are neighbours (0, 1), (2, 3), ..., one draw per pair "
            "(repeat_interleave, not repeat)"
        )
    on = (batch[:, :, 0::2] != 0) & (batch[:, :, 1::2] != 0)
    if torch.isclose(batch[:, :, 0::2][on], batch[:, :, 1::2][on]).float().mean() > 0.5:
        fail("the two features of a pair have the same value: only the on/off draw is shared, draw the values independently")
    # Different pairs stay independent.
    cross = (present[:, 0, 0] * present[:, 0, 2]).mean().item()
    if abs(cross - 0.1 * 0.4) > 0.01:
        fail(f"features 0 and 2 belong to different pairs but are on together in {cross:.3f} of samples, expected 0.04: one draw per pair, not per sample")
    return "each pair is on together, with independent values; different pairs are independent"


@check
def check_generate_anticorrelated_batch(generate_anticorrelated_batch) -> str:
    torch.manual_seed(0)
    p = torch.tensor([[0.1, 0.1, 0.4, 0.4, 0.25, 0.25], [0.3, 0.3, 0.05, 0.05, 0.5, 0.5]])
    n = 20_000
    batch, present, both = _pair_statistics(generate_anticorrelated_batch, p, n)
    if (both > 0).any():
        i, k = (both > 0).nonzero()[0].tolist()
        fail(
            f"features {2 * k} and {2 * k + 1} (instance {i}) are both on in {both[i, k]:.3f} of samples: in an "
            "anticorrelated pair at most one member is on (activate the pair with probability 2p, then pick one member)"
        )
    values = batch[batch != 0]
    if abs(values.mean().item() - 0.5) > 0.01:
        fail(f"the non-zero values should be uniform in [0, 1] (mean 0.5), got mean {values.mean().item():.3f}: draw them with torch.rand")
    first = present[:, 0, 2]
    if first.sum() > 0 and abs(present[:, 0, 3][first == 0].mean().item() - 0.4 / 0.6) > 0.03:
        fail("when feature 2 is off, feature 3 should be on with probability 0.4 / 0.6: pick the member with a fair coin per sample")
    return "pairs never fire together, and each feature keeps its probability"


@check
def check_pair_cosines(pair_cosines) -> str:
    W = torch.zeros(2, 2, 6)
    W[0, :, 0], W[0, :, 1] = torch.tensor([2.0, 0.0]), torch.tensor([-0.5, 0.0])  # antipodal, unequal norms: -1
    W[0, :, 2], W[0, :, 3] = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0])  # orthogonal: 0
    W[0, :, 4], W[0, :, 5] = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])  # a dropped member: 0, not NaN
    W[1, :, 0], W[1, :, 1] = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5 * math.sqrt(3)])  # 60 degrees
    W[1, :, 2], W[1, :, 3] = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 4.0])  # same direction: 1
    W[1, :, 4], W[1, :, 5] = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])  # orthogonal
    expected = torch.tensor([[-1.0, 0.0, 0.0], [0.5, 1.0, 0.0]])
    got = assert_shape(pair_cosines(W), (2, 3), "pair_cosines(W)", hint="one value per (instance, pair): pairs are features (0, 1), (2, 3), ...")
    if torch.isnan(got).any():
        fail("pair_cosines gives NaN for a pair with a zero column: clamp the norm before dividing")
    if (got.abs() > 1 + 1e-4).any():
        fail(f"cosines can't exceed 1 in size, got {got.tolist()}: normalise both columns, over the hidden axis (dim=1)")
    assert_close(got, expected, "pair_cosines on hand-made pairs", atol=1e-4,
                 hint="cos(W_2k, W_2k+1): columns 0::2 against columns 1::2, each normalised over the hidden axis")
    return "antipodal -1, orthogonal 0, 60 degrees 0.5, same direction 1"


@check
def check_phase_grid(phase_grid) -> str:
    importances, probabilities = torch.tensor([0.1, 1.0, 10.0]), torch.tensor([1.0, 0.5])
    out = phase_grid(importances, probabilities)
    if not isinstance(out, tuple) or len(out) != 2:
        fail(f"phase_grid should return (importance, feature_probability), got {type(out).__name__}")
    importance, feature_probability = out
    assert_shape(importance, (6, 2), "importance", hint="one row per (importance, probability) pair: n_imp * n_prob instances, 2 features")
    assert_shape(feature_probability, (6, 2), "feature_probability")
    expected_imp = torch.tensor([[1.0, r] for r in (0.1, 1.0, 10.0) for _ in range(2)])
    expected_p = torch.tensor([[p, p] for _ in range(3) for p in (1.0, 0.5)])
    if torch.allclose(importance[:, 1], torch.tensor([0.1, 1.0, 10.0, 0.1, 1.0, 10.0])):
        fail("the instances are in column-major order: instance i * n_prob + j has importances[i], so each importance repeats n_prob times in a row (repeat_interleave)")
    assert_close(importance, expected_imp, "importance", hint="feature 0 has importance 1, feature 1 the grid's importance")
    if torch.allclose(feature_probability, 1 - expected_p):
        fail("feature_probability holds 1 - p: these are the chances a feature is on, use the probabilities as they are")
    assert_close(feature_probability, expected_p, "feature_probability", hint="both features share the grid's probability; it varies fastest (repeat)")
    return "row-major grid: importance (1, r_i), probability (p_j, p_j)"


@check
def check_classify_phase(classify_phase) -> str:
    W = torch.tensor([
        [[1.0, 0.0]],   # feature 1 dropped
        [[0.0, 1.0]],   # feature 1 alone
        [[0.0, -1.0]],  # feature 1 alone, negative direction
        [[1.0, -1.0]],  # antipodal
        [[-0.9, 1.1]],  # antipodal the other way round
        [[0.1, 0.2]],   # nothing represented: feature 1 dropped
        [[-1.0, 0.3]],  # feature 1 too small
    ])
    got = classify_phase(W)
    got = assert_shape(got, (7,), "classify_phase(W)", hint="one phase number per instance")
    expected = torch.tensor([0, 1, 1, 2, 2, 0, 0])
    if got[2] == 0 or got[4] != 2:
        fail(f"got {got.tolist()}, expected {expected.tolist()}: a feature with a negative weight is still represented, compare the norm (or |W|) with the threshold")
    if not torch.equal(got.long(), expected):
        fail(f"got {got.tolist()}, expected {expected.tolist()}: 0 = feature 1 dropped, 1 = feature 1 alone (feature 0 dropped), 2 = both represented")
    return "dropped, alone and antipodal told apart"


@check
def check_run_phase_sweep(run_phase_sweep) -> str:
    importances, probabilities = torch.tensor([0.1, 10.0]), torch.tensor([1.0, 0.1])
    with torch_threads(1):
        out = run_phase_sweep(importances, probabilities, steps=800, batch_size=256, lr=1e-2, seed=0)
    if not isinstance(out, tuple) or len(out) != 2:
        fail(f"run_phase_sweep should return (phases, model), got {type(out).__name__}")
    phases, model = out
    phases = assert_shape(phases, (2, 2), "phases", hint="an (n_imp, n_prob) grid: rows are importances, columns probabilities")
    W = model.W.detach()
    if W.shape != (4, 1, 2):
        fail(f"the model should have 4 instances of 2 features in 1 dimension, W of shape (4, 1, 2); got {tuple(W.shape)}")
    imp = model.importance[:, 1]
    if not torch.allclose(imp, torch.tensor([0.1, 0.1, 10.0, 10.0])):
        fail(f"the model's importances of feature 1 are {imp.tolist()}, expected the phase_grid order [0.1, 0.1, 10, 10]: build the model from phase_grid")
    if (model.b_final.detach() == 0).all():
        fail("the model looks untrained (b_final is still all zeros): call train_toy_model on it before classifying")
    norms = W.norm(dim=1)
    # Independent reading of the trained weights: dense + unimportant drops feature 1; dense + important keeps
    # feature 1 alone; sparse keeps both, antipodally.
    if not (norms[0, 1] < 0.5 and norms[2, 1] > 0.5 and norms[2, 0] < 0.5 and (norms[[1, 3]] > 0.5).all()):
        fail(f"after training, the feature norms per instance are {norms.tolist()}: expected feature 1 dropped (instance 0), alone (2), and both kept when sparse (1, 3). Train with the given steps, lr and seed")
    expected = torch.tensor([[0, 2], [1, 2]])
    if torch.equal(phases.long(), expected.T):
        fail(f"phases {phases.tolist()} are transposed: rows are importances, columns probabilities (reshape to (n_imp, n_prob))")
    if not torch.equal(phases.long(), expected):
        fail(f"phases {phases.tolist()}, expected {expected.tolist()} from the trained weights: classify model.W with classify_phase, then reshape")
    return "dense: dropped or alone depending on importance; sparse: antipodal"


@check
def check_plot_phase_diagram(plot_phase_diagram) -> str:
    import plotly.graph_objects as go

    phases = torch.tensor([[0, 0, 2], [1, 2, 2]])
    importances, probabilities = torch.tensor([0.5, 2.0]), torch.tensor([1.0, 0.1, 0.01])
    fig = plot_phase_diagram(phases, importances, probabilities, show=False)
    if not isinstance(fig, go.Figure):
        fail(f"return the plotly figure, got {type(fig).__name__}")
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    if len(heatmaps) != 1:
        fail(f"the figure should hold one go.Heatmap, got traces {[type(t).__name__ for t in fig.data]}")
    hm = heatmaps[0]
    z = torch.tensor(hm.z, dtype=torch.float32)
    if z.shape == (3, 2):
        fail("z is transposed: its rows should be importances (y) and its columns probabilities (x)")
    assert_close(z, phases.float(), "heatmap z", hint="z = the phases grid as it is, rows = importances")
    x, y = torch.tensor(hm.x, dtype=torch.float32), torch.tensor(hm.y, dtype=torch.float32)
    if torch.allclose(x, probabilities):
        fail("x holds the probabilities: plot 1 / feature probability, so sparser is further right")
    assert_close(x, 1 / probabilities, "heatmap x", hint="x = 1 / probabilities")
    assert_close(y, importances, "heatmap y", hint="y = the importances of feature 1")
    layout = fig.layout
    if layout.xaxis.type != "log" or layout.yaxis.type != "log":
        fail("both axes should be logarithmic (fig.update_xaxes(type='log'), same for y): the grids are geometric")
    if not (layout.xaxis.title.text and layout.yaxis.title.text):
        fail("give both axes a title, saying what x and y are")
    return "one heatmap, rows = importance, x = 1/p, log axes with titles"


@check
def check_neuron_model(NeuronModel) -> str:
    cfg = ref.ToyConfig(n_instances=2, n_features=4, n_hidden=3)
    model = module_instance(NeuronModel, cfg)
    if set(dict(model.named_parameters())) != {"W", "b_final"}:
        fail("NeuronModel should keep ToyModel's parameters, W and b_final (still tied)")
    torch.manual_seed(0)
    with torch.no_grad():
        model.W.copy_(torch.randn(2, 3, 4))
        model.b_final.copy_(torch.randn(2, 4) * 0.3)
    W, b = model.W.detach(), model.b_final.detach()
    x = torch.rand(9, 2, 4)
    h = torch.stack([torch.relu(x[:, i] @ W[i].T) for i in range(2)], dim=1)
    got_h = model.hidden(x)
    if (got_h < 0).any():
        fail("model.hidden(x) has negative entries: the hidden layer now has a ReLU, h = ReLU(W x)")
    assert_close(got_h, h, "model.hidden(x)", hint="h = ReLU(W x), per instance")
    out = torch.stack([torch.relu(h[:, i] @ W[i] + b[i]) for i in range(2)], dim=1)
    assert_close(model(x), out, "model(x)", hint="the forward pass reads h back out as before: x' = ReLU(Wᵀ h + b); override hidden only")
    return "h = ReLU(Wx), x' = ReLU(Wᵀh + b)"


@check
def check_neuron_top_feature_share(neuron_top_feature_share) -> str:
    W = torch.zeros(1, 3, 4)
    W[0, 0] = torch.tensor([0.0, -2.0, 0.0, 0.0])  # monosemantic, negative weight: 1
    W[0, 1] = torch.tensor([1.0, 1.0, 1.0, 1.0])  # reads everything equally: 1/4
    W[0, 2] = torch.tensor([3.0, -1.0, 0.0, 1.0])  # 9 / 11
    got = assert_shape(neuron_top_feature_share(W), (1, 3), "neuron_top_feature_share(W)", hint="one value per (instance, neuron)")
    expected = torch.tensor([[1.0, 0.25, 9 / 11]])
    if math.isclose(got[0, 2].item(), 3 / 5, abs_tol=1e-4):
        fail("neuron 2 gives 3/5: share of the *squared* weights, max w² / Σ w², not of the absolute values")
    if got[0, 0].item() < 0.5:
        fail(f"a neuron whose only weight is -2 gives {got[0, 0].item():.3g}: square the weights before taking the max, so a negative weight counts")
    assert_close(got, expected, "neuron_top_feature_share on hand-made neurons", atol=1e-4,
                 hint="max over features of W² divided by the sum over features of W², per neuron (row)")
    return "monosemantic 1, uniform 1/4, mixed 9/11"


@check
def check_generate_signed_batch(generate_signed_batch) -> str:
    torch.manual_seed(0)
    p = torch.tensor([[0.05, 0.5, 1.0], [0.3, 0.9, 0.2]])
    batch = assert_shape(generate_signed_batch(20_000, p), (20_000, 2, 3), "generate_signed_batch(20000, p)")
    freq = (batch != 0).float().mean(0)
    if ((freq - p).abs() > 0.02).any():
        fail(f"features should be non-zero with probability p = {p.tolist()}, got {freq.numpy().round(3).tolist()}")
    values = batch[batch != 0]
    if values.min() >= 0:
        fail("generate_signed_batch gives no negative values: draw them uniform in [-1, 1] (2 * rand - 1)")
    if abs(values.mean().item()) > 0.02 or abs(values.abs().mean().item() - 0.5) > 0.02:
        fail(f"non-zero values should be uniform in [-1, 1] (mean 0, mean |x| 0.5), got {values.mean().item():.3f} and {values.abs().mean().item():.3f}")
    if (values.abs() > 1).any():
        fail("values outside [-1, 1]: use 2 * torch.rand(...) - 1, not torch.randn")
    return "sparse, signed, uniform in [-1, 1]"


@check
def check_abs_model(AbsModel) -> str:
    cfg = ref.ToyConfig(n_instances=2, n_features=2, n_hidden=4)
    model = module_instance(AbsModel, cfg)
    names = set(dict(model.named_parameters()))
    if names != {"W_in", "b_in", "W_out", "b_out"}:
        fail(f"AbsModel's parameters should be W_in, b_in, W_out, b_out, got {sorted(names)}")
    # By hand: neurons ReLU(x_0), ReLU(-x_0), ReLU(x_1), ReLU(-x_1); |x_i| is the sum of its two neurons.
    with torch.no_grad():
        model.W_in.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]).expand(2, 4, 2))
        model.W_out.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]).expand(2, 2, 4))
        model.b_in.zero_(), model.b_out.zero_()
    x = 2 * torch.rand(11, 2, 2) - 1
    got = assert_shape(model(x), (11, 2, 2), "model(x)")
    if torch.allclose(got, torch.zeros_like(got)):
        fail("model(x) is 0 everywhere with weights that compute |x|: the neurons x and -x cancel unless the hidden layer has its own ReLU, h = ReLU(W_in x + b_in)")
    if torch.allclose(got, x.clamp_min(0), atol=1e-5):
        fail("model(x) gives ReLU(x) with weights that compute |x|: the hidden layer needs its own ReLU before W_out")
    assert_close(got, x.abs(), "model(x) with hand-set weights that compute |x|",
                 hint="h = ReLU(W_in x + b_in) with W_in (inst, hidden, feats); y = ReLU(W_out h + b_out) with W_out (inst, feats, hidden)")
    torch.manual_seed(1)
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(torch.randn_like(prm))
    W_in, b_in, W_out, b_out = (t.detach() for t in (model.W_in, model.b_in, model.W_out, model.b_out))
    expected = torch.stack([torch.relu(torch.relu(x[:, i] @ W_in[i].T + b_in[i]) @ W_out[i].T + b_out[i]) for i in range(2)], dim=1)
    assert_close(model(x), expected, "model(x) with random weights", hint="each instance uses only its own W_in[i], b_in[i], W_out[i], b_out[i]")
    return "the hand-made |x| network and random weights match"


@check
def check_train_abs_model(train_abs_model) -> str:
    # Two features, four neurons, dense: enough neurons to compute both |x_i| exactly, so the error should
    # fall far below Var(|x|) = 1/12, what always predicting the mean |x| gives.
    torch.manual_seed(0)
    model = ref.AbsModel(ref.ToyConfig(n_instances=2, n_features=2, n_hidden=4), 1.0, 1.0)
    with torch_threads(1):
        losses = train_abs_model(model, steps=600, batch_size=256, lr=1e-2, seed=0, log_every=60)
    if not isinstance(losses, list) or len(losses) != 11:
        fail(f"train_abs_model should return the logged losses (11 for 600 steps, log_every=60), got {losses!r:.80}")
    x = 2 * torch.rand(4096, 2, 2) - 1
    with torch.no_grad():
        err = (model(x) - x.abs()).pow(2).mean().item()
        err_identity = (model(x) - x.clamp_min(0)).pow(2).mean().item()
        out = model(x)
    on_neg, on_pos = out[x < -0.5].mean().item(), out[x > 0.5].mean().item()
    if (err_identity < 0.035 and err_identity < err) or (on_pos > 0.5 and on_neg < 0.3):
        fail(
            f"the trained model outputs about ReLU(x) rather than |x|: mean output {on_pos:.2f} where x > 0.5 but {on_neg:.2f} "
            "where x < -0.5 (|x| would give about 0.75 for both): the target is batch.abs()"
        )
    if not err < 0.035:
        fail(
            f"after 600 steps the mean squared error against |x| is {err:.3g} (a working loop gets below 0.035; always "
            "predicting the mean |x| gives 1/12 = 0.083): sample a fresh "
            "signed batch each step, compare the output with |x| using importance_weighted_mse, and zero_grad/backward/step"
        )
    return f"loss {losses[0]:.3g} → {losses[-1]:.3g}; MSE against |x| on fresh data {err:.2g}"
