"""Section 1.4 beyond the automatic solution/stub tests: plausible learner bugs each check must catch,
input validation, and the science (the SAE really recovers the toy model's features)."""

from __future__ import annotations

import re

import math

import einops
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from curriculum.solutions.chapter1 import superposition as ref
from curriculum.solutions.chapter1.sae import SAE, SAEConfig, train_sae
from curriculum.checks.chapter1 import superposition as checks
from tests.support import assert_check_fails, mutant


# ---------------------------------------------------------------- ToyModel


class NoReLU(ref.ToyModel):
    def forward(self, features):
        h = self.hidden(features)
        return einops.einsum(h, self.W, "batch inst hidden, inst hidden feats -> batch inst feats") + self.b_final


class Untied(ref.ToyModel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.W_out = nn.Parameter(self.W.detach().clone())

    def forward(self, features):
        h = self.hidden(features)
        return F.relu(einops.einsum(h, self.W_out, "batch inst hidden, inst hidden feats -> batch inst feats") + self.b_final)


class BiasAfterReLU(ref.ToyModel):
    def forward(self, features):
        h = self.hidden(features)
        return F.relu(einops.einsum(h, self.W, "batch inst hidden, inst hidden feats -> batch inst feats")) + self.b_final


class NoBias(ref.ToyModel):
    def forward(self, features):
        h = self.hidden(features)
        return F.relu(einops.einsum(h, self.W, "batch inst hidden, inst hidden feats -> batch inst feats"))


class MixesInstances(ref.ToyModel):
    """Contracts over every pair of instances: each instance's hidden state sees all instances' features."""

    def hidden(self, features):
        return einops.einsum(features, self.W, "batch i feats, j hidden feats -> batch j hidden")


class FirstInstanceOnly(ref.ToyModel):
    def hidden(self, features):
        return einops.einsum(features, self.W[0], "batch inst feats, hidden feats -> batch inst hidden")


@pytest.mark.parametrize(
    "mutant,expect",
    [(NoReLU, "ReLU"), (Untied, "tied"), (BiasAfterReLU, ""), (NoBias, ""), (MixesInstances, "inst"), (FirstInstanceOnly, "")],
)
def test_toy_model_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_toy_model, mutant, match=re.escape(expect))


def test_toy_model_check_rejects_an_instance():
    model = ref.ToyModel(ref.ToyConfig(3, 5, 2))
    assert_check_fails(checks.check_toy_model, model, match="class")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(feature_probability=0.0), "feature_probability must lie"),
        (dict(feature_probability=1.5), "feature_probability must lie"),
        (dict(feature_probability=torch.ones(4)), "does not broadcast"),
        (dict(importance=None), "importance is None"),
        (dict(importance=-torch.ones(5)), "non-negative"),
    ],
)
def test_toy_model_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ref.ToyModel(ref.ToyConfig(3, 5, 2), **kwargs)


def test_per_instance_broadcasts_scalars_vectors_and_matrices():
    cfg = ref.ToyConfig(3, 4, 2)
    assert ref.per_instance(0.5, cfg, "p").shape == (3, 4)
    assert torch.equal(ref.per_instance(torch.arange(4.0), cfg, "p")[2], torch.arange(4.0))
    assert torch.equal(ref.per_instance(torch.arange(3.0)[:, None], cfg, "p")[:, 1], torch.arange(3.0))


# ---------------------------------------------------------------- generate_batch


def inverted_probability(batch_size, p):
    shape = (batch_size, *p.shape)
    return torch.where(torch.rand(shape) < 1 - p, torch.rand(shape), 0.0)


def one_draw_for_mask_and_value(batch_size, p):
    u = torch.rand(batch_size, *p.shape)
    return torch.where(u < p, u, 0.0)


def gaussian_values(batch_size, p):
    shape = (batch_size, *p.shape)
    return torch.where(torch.rand(shape) < p, torch.randn(shape), 0.0)


def mask_shared_across_features(batch_size, p):
    shape = (batch_size, *p.shape)
    return torch.where(torch.rand(batch_size, p.shape[0], 1) < p, torch.rand(shape), 0.0)


def mask_shared_across_batch(batch_size, p):
    shape = (batch_size, *p.shape)
    return torch.where(torch.rand(1, *p.shape) < p, torch.rand(shape), 0.0)


def binary_values(batch_size, p):
    return (torch.rand(batch_size, *p.shape) < p).float()


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (inverted_probability, "1 - p"),
        (one_draw_for_mask_and_value, "uniform"),
        (gaussian_values, "torch.rand"),
        (mask_shared_across_features, "independent"),
        (mask_shared_across_batch, "probability"),
        (binary_values, "uniform"),
    ],
)
def test_generate_batch_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_generate_batch, mutant, match=re.escape(expect))


# ---------------------------------------------------------------- importance_weighted_mse


def no_importance(out, batch, importance):
    return ((batch - out) ** 2).mean((0, 2)).sum()


def mean_over_instances(out, batch, importance):
    return (importance * (batch - out) ** 2).mean()


def importance_squared(out, batch, importance):
    return ((importance * (batch - out)) ** 2).mean((0, 2)).sum()


def sum_over_batch(out, batch, importance):
    return (importance * (batch - out) ** 2).sum(0).mean(-1).sum()


def returns_float(out, batch, importance):
    return (importance * (batch - out) ** 2).mean((0, 2)).sum().item()


def importance_transposed(out, batch, importance):
    return (importance.T * (batch - out) ** 2).mean((0, 2)).sum()


def detached(out, batch, importance):
    return (importance * (batch - out.detach()) ** 2).mean((0, 2)).sum()


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (no_importance, "importance weights are missing"),
        (mean_over_instances, "sum over them"),
        (importance_squared, "importance is squared"),
        (sum_over_batch, "mean over (batch, feats)"),
        (returns_float, "return a tensor"),
        (importance_transposed, "5.875"),
        (detached, "autograd"),
    ],
)
def test_importance_weighted_mse_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_importance_weighted_mse, mutant, match=re.escape(expect))


# ---------------------------------------------------------------- train_toy_model


def _training_mutant(step_fn):
    def train(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, log_every=100):
        torch.manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        for step in range(steps):
            loss = step_fn(model, optimizer, batch_size)
            if step % log_every == 0 or step == steps - 1:
                losses.append(loss.item())
        return losses

    return train


def _no_optimizer_step(model, optimizer, batch_size):
    batch = model.generate_batch(batch_size)
    loss = ref.importance_weighted_mse(model(batch), batch, model.importance)
    optimizer.zero_grad()
    loss.backward()
    return loss


def _gradient_ascent(model, optimizer, batch_size):
    batch = model.generate_batch(batch_size)
    loss = ref.importance_weighted_mse(model(batch), batch, model.importance)
    optimizer.zero_grad()
    (-loss).backward()
    optimizer.step()
    return loss


def _unweighted_loss(model, optimizer, batch_size):
    batch = model.generate_batch(batch_size)
    loss = ((model(batch) - batch) ** 2).mean((0, 2)).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


@pytest.mark.parametrize("step_fn", [_no_optimizer_step, _gradient_ascent, _unweighted_loss])
def test_train_toy_model_mutants_fail(step_fn):
    assert_check_fails(checks.check_train_toy_model, _training_mutant(step_fn))


def test_train_toy_model_rejects_bad_hyperparameters():
    model = ref.ToyModel(ref.ToyConfig(1, 3, 2))
    with pytest.raises(ValueError, match="lr > 0"):
        ref.train_toy_model(model, steps=10, lr=0.0)


# ---------------------------------------------------------------- superposition and dimensionality


def _overlaps(W, normalise_i=True, normalise_j=False, clamp=True):
    norms = W.norm(dim=1, keepdim=True)
    norms = norms.clamp_min(1e-8) if clamp else norms
    Wi = W / norms if normalise_i else W
    Wj = W / norms if normalise_j else W
    return einops.einsum(Wi, Wj, "inst hidden i, inst hidden j -> inst i j") ** 2


def sup_includes_diagonal(W):
    return _overlaps(W).sum(-1)


def sup_unnormalised(W):
    o = _overlaps(W, normalise_i=False)
    return o.sum(-1) - o.diagonal(dim1=-2, dim2=-1)


def sup_cosine_squared(W):
    o = _overlaps(W, normalise_j=True)
    return o.sum(-1) - o.diagonal(dim1=-2, dim2=-1)


def sup_no_clamp(W):
    o = _overlaps(W, clamp=False)
    return o.sum(-1) - o.diagonal(dim1=-2, dim2=-1)


def sup_abs_not_square(W):
    o = _overlaps(W).sqrt()
    return o.sum(-1) - o.diagonal(dim1=-2, dim2=-1)


@pytest.mark.parametrize(
    "mutant,expect",
    [(sup_includes_diagonal, "leave out j = i"), (sup_unnormalised, "normalised"), (sup_cosine_squared, "unnormalised W_j"),
     (sup_no_clamp, "NaN"), (sup_abs_not_square, "square")],
)
def test_superposition_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_superposition, mutant, match=re.escape(expect))


def dim_numerator_not_squared(W):
    return W.norm(dim=1) / _overlaps(W).sum(-1).clamp_min(1e-8)


def dim_excludes_diagonal(W):
    o = _overlaps(W)
    return W.norm(dim=1) ** 2 / (o.sum(-1) - o.diagonal(dim1=-2, dim2=-1)).clamp_min(1e-8)


def dim_unnormalised(W):
    return W.norm(dim=1) ** 2 / _overlaps(W, normalise_i=False).sum(-1).clamp_min(1e-8)


def dim_no_clamp(W):
    return W.norm(dim=1) ** 2 / _overlaps(W, clamp=False).sum(-1)


@pytest.mark.parametrize(
    "mutant,expect",
    [(dim_numerator_not_squared, "||W_i||²"), (dim_excludes_diagonal, "j = i included"), (dim_unnormalised, "2/5"),
     (dim_no_clamp, "NaN")],
)
def test_feature_dimensionality_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_feature_dimensionality, mutant, match=re.escape(expect))


def test_dimensionality_of_known_geometries():
    """Independent of the check's examples: a triangle (3 in 2-D) gives 2/3, a square (4 in 2-D) 1/2,
    a tetrahedron (4 in 3-D) 3/4, orthogonal features 1. Each follows from sum_j cos^2 = n / m for a
    tight frame of n unit vectors in m dimensions."""
    def polygon(n):
        a = torch.arange(n) * 2 * math.pi / n
        return torch.stack([a.cos(), a.sin()])

    tetra = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]).T / math.sqrt(3)
    for W, d in [(polygon(3), 2 / 3), (polygon(4), 1 / 2), (tetra, 3 / 4), (torch.eye(3), 1.0)]:
        got = ref.feature_dimensionality(W[None])
        torch.testing.assert_close(got, torch.full_like(got, d))
        # dimensions per feature summed over features = number of dimensions for a tight frame
        assert math.isclose(got.sum().item(), W.shape[0], rel_tol=1e-5)


# ---------------------------------------------------------------- feature recovery and the SAE


def recovery_abs(W, W_dec):
    return (F.normalize(W_dec, dim=-1) @ F.normalize(W, dim=0)).abs().max(0).values


def recovery_wrong_axis(W, W_dec):
    return (F.normalize(W_dec, dim=-1) @ F.normalize(W, dim=0)).max(1).values


def recovery_unnormalised(W, W_dec):
    return (W_dec @ W).max(0).values


def recovery_decoder_not_normalised(W, W_dec):
    return (W_dec @ F.normalize(W, dim=0)).max(0).values


@pytest.mark.parametrize(
    "mutant,expect",
    [(recovery_abs, "signed"), (recovery_wrong_axis, "max over the latents"), (recovery_unnormalised, "normalise"),
     (recovery_decoder_not_normalised, "normalise")],
)
def test_feature_recovery_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_feature_recovery, mutant, match=re.escape(expect))


def test_sae_recovers_the_pentagon():
    """The end-to-end claim of the section: an SAE trained only on hidden activations of the pentagon
    toy model finds all five feature directions (cosine > 0.9), and an untrained SAE does not."""
    torch.manual_seed(0)
    toy = ref.ToyModel(ref.ToyConfig(1, 5, 2), 1 / 50, 0.9 ** torch.arange(5))
    ref.train_toy_model(toy, steps=1500, batch_size=512, lr=5e-3, seed=0)
    W = toy.W[0].detach()
    assert (ref.feature_dimensionality(toy.W.detach()) - 0.4).abs().max() < 0.05, "the toy model should form a pentagon"

    cfg = SAEConfig(d_in=2, d_sae=10, l1_coeff=0.1, lr=3e-3, n_steps=1000, batch_size=512)
    untrained = SAE(cfg)
    assert_check_fails(checks.check_sae_recovers_features, W, untrained.W_dec, match="no SAE latent")

    @torch.no_grad()
    def toy_activations(n):
        return toy.hidden(toy.generate_batch(n))[:, 0]

    sae = SAE(cfg)
    train_sae(sae, toy_activations, progress=False)
    checks.check_sae_recovers_features(W, sae.W_dec)
    assert (ref.feature_recovery(W, sae.W_dec.detach()) > 0.95).all()


def test_sparsity_buys_superposition():
    """The phase change in two numbers: dense, 5 hidden dims hold about 5 of 20 features; at S = 0.99
    far more are represented, in superposition."""
    torch.manual_seed(0)
    sparsity = torch.tensor([0.0, 0.99])
    model = ref.ToyModel(ref.ToyConfig(2, 20, 5), (1 - sparsity)[:, None], 0.7 ** torch.arange(20))
    ref.train_toy_model(model, steps=1000, batch_size=512, lr=5e-3, seed=0)
    W = model.W.detach()
    represented = (ref.feature_norms(W) > 0.5).sum(-1)
    assert 4 <= represented[0] <= 6, f"dense: expected about 5 features represented, got {represented[0]}"
    assert represented[1] >= 9, f"S = 0.99: expected many more than 5 features represented, got {represented[1]}"
    sup = ref.superposition(W)
    assert (sup[0, :4] < 0.1).all(), f"dense: the most important features should not overlap, got {sup[0, :4]}"
    assert sup[1, :10].mean() > 0.5, f"S = 0.99: the represented features should overlap, got {sup[1, :10]}"


def test_generate_batch_check_rejects_nan():
    nan_batch = lambda n, p: torch.full((n, *p.shape), float("nan"))  # noqa: E731
    assert_check_fails(checks.check_generate_batch, nan_batch, match="contains NaN")


# ---------------------------------------------------------------- correlated / anticorrelated data


def correlated_repeat_not_interleave(batch_size, p):
    shape = (batch_size, *p.shape)
    on = torch.rand(batch_size, p.shape[0], p.shape[1] // 2) < p[:, ::2]
    return torch.where(on.repeat(1, 1, 2), torch.rand(shape), 0.0)


def correlated_shared_values(batch_size, p):
    on = torch.rand(batch_size, p.shape[0], p.shape[1] // 2) < p[:, ::2]
    v = torch.rand(batch_size, p.shape[0], p.shape[1] // 2)
    return torch.where(on, v, 0.0).repeat_interleave(2, dim=-1)


def correlated_one_switch_per_sample(batch_size, p):
    shape = (batch_size, *p.shape)
    on = torch.rand(batch_size, p.shape[0], 1) < p[:, :1]
    return torch.where(on, torch.rand(shape), 0.0)


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (correlated_repeat_not_interleave, "repeat_interleave"),
        (correlated_shared_values, "same value"),
        (ref.generate_batch, "on together"),
        (correlated_one_switch_per_sample, "probability"),
    ],
)
def test_generate_correlated_batch_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_generate_correlated_batch, mutant, match=re.escape(expect))


def anticorrelated_pair_prob_p(batch_size, p):
    shape = (batch_size, *p.shape)
    pair_on = torch.rand(batch_size, p.shape[0], p.shape[1] // 2) < p[:, ::2]
    first = torch.rand(pair_on.shape) < 0.5
    present = torch.stack([pair_on & first, pair_on & ~first], dim=-1).flatten(-2)
    return torch.where(present, torch.rand(shape), 0.0)


def anticorrelated_always_first(batch_size, p):
    shape = (batch_size, *p.shape)
    pair_on = torch.rand(batch_size, p.shape[0], p.shape[1] // 2) < 2 * p[:, ::2]
    present = torch.stack([pair_on, torch.zeros_like(pair_on)], dim=-1).flatten(-2)
    return torch.where(present, torch.rand(shape), 0.0)


def anticorrelated_independent_members(batch_size, p):
    return ref.generate_batch(batch_size, p)


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (anticorrelated_pair_prob_p, "probability"),
        (anticorrelated_always_first, "probability"),
        (anticorrelated_independent_members, "both on"),
    ],
)
def test_generate_anticorrelated_batch_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_generate_anticorrelated_batch, mutant, match=re.escape(expect))


def pair_cosines_unnormalised(W):
    return (W[:, :, 0::2] * W[:, :, 1::2]).sum(dim=1)


def pair_cosines_nan(W):
    W_hat = W / W.norm(dim=1, keepdim=True)
    return (W_hat[:, :, 0::2] * W_hat[:, :, 1::2]).sum(dim=1)


def pair_cosines_wrong_pairs(W):
    n = W.shape[-1] // 2
    W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return (W_hat[:, :, :n] * W_hat[:, :, n:]).sum(dim=1)


def pair_cosines_norm_over_features(W):
    W_hat = W / W.norm(dim=2, keepdim=True).clamp_min(1e-8)
    return (W_hat[:, :, 0::2] * W_hat[:, :, 1::2]).sum(dim=1)


@pytest.mark.parametrize(
    "mutant,expect",
    [(pair_cosines_unnormalised, "exceed 1"), (pair_cosines_nan, "NaN"), (pair_cosines_wrong_pairs, "pair_cosines"),
     (pair_cosines_norm_over_features, "pair_cosines")],
)
def test_pair_cosines_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_pair_cosines, mutant, match=re.escape(expect))


# ---------------------------------------------------------------- phase diagram


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (mutant(ref.phase_grid, ("importances.repeat_interleave(n_prob)", "importances.repeat(n_prob)"),
                ("probabilities.repeat(n_imp)", "probabilities.repeat_interleave(n_imp)")), "column-major"),
        (mutant(ref.phase_grid, ("torch.stack([p, p], dim=-1)", "torch.stack([1 - p, 1 - p], dim=-1)")), "1 - p"),
        (mutant(ref.phase_grid, ("torch.stack([torch.ones_like(r), r], dim=-1)", "torch.stack([r, torch.ones_like(r)], dim=-1)")), "importance"),
        (mutant(ref.phase_grid, ("return importance, feature_probability", "return feature_probability, importance")), "importance"),
    ],
)
def test_phase_grid_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_phase_grid, mutant, match=re.escape(expect))


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (mutant(ref.classify_phase, ("W.norm(dim=1) > threshold", "W[:, 0] > threshold")), "negative weight"),
        (mutant(ref.classify_phase, ("torch.where(~second, 0, torch.where(first, 2, 1))", "torch.where(~second, 1, torch.where(first, 2, 0))")), "expected"),
        (mutant(ref.classify_phase, ("torch.where(~second, 0, torch.where(first, 2, 1))", "torch.where(~first, 0, torch.where(second, 2, 1))")), "expected"),
    ],
)
def test_classify_phase_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_classify_phase, mutant, match=re.escape(expect))


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (mutant(ref.run_phase_sweep, (".reshape(len(importances), len(probabilities))", ".reshape(len(probabilities), len(importances)).T")), "transposed"),
        (mutant(ref.run_phase_sweep, ("    train_toy_model(model,", "    0 and train_toy_model(model,")), "untrained"),
        (mutant(ref.run_phase_sweep, ("ToyModel(cfg, feature_probability, importance)", "ToyModel(cfg, importance.clamp(max=1), feature_probability)")), "importances"),
    ],
)
def test_run_phase_sweep_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_run_phase_sweep, mutant, match=re.escape(expect))


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (mutant(ref.plot_phase_diagram, ("z=phases.tolist()", "z=phases.T.tolist()")), "transposed"),
        (mutant(ref.plot_phase_diagram, ("x=(1 / probabilities).tolist()", "x=probabilities.tolist()")), "1 / feature probability"),
        (mutant(ref.plot_phase_diagram, ('fig.update_xaxes(type="log", title="1 / feature probability")', 'fig.update_xaxes(title="1 / feature probability")')), "logarithmic"),
        (mutant(ref.plot_phase_diagram, ('fig.update_yaxes(type="log", title="relative importance of feature 1")', 'fig.update_yaxes(type="log")')), "title"),
        (mutant(ref.plot_phase_diagram, ("y=importances.tolist()", "y=(1 / importances).tolist()")), "heatmap y"),
    ],
)
def test_plot_phase_diagram_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_plot_phase_diagram, mutant, match=re.escape(expect))


# ---------------------------------------------------------------- privileged basis and |x|


class NeuronNoReLU(ref.ToyModel):
    pass


class NeuronReLUOnOutputOnly(ref.ToyModel):
    def forward(self, features):
        h = self.hidden(features)
        return F.relu(einops.einsum(F.relu(h), self.W, "batch inst hidden, inst hidden feats -> batch inst feats") + self.b_final)


class NeuronReLUAfterBias(ref.ToyModel):
    def forward(self, features):
        h = self.hidden(features)
        out = einops.einsum(h, self.W, "batch inst hidden, inst hidden feats -> batch inst feats")
        return F.relu(F.relu(out) + self.b_final)


@pytest.mark.parametrize("mutant,expect", [(NeuronNoReLU, "ReLU"), (NeuronReLUOnOutputOnly, "hidden"), (NeuronReLUAfterBias, "ReLU")])
def test_neuron_model_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_neuron_model, mutant, match=re.escape(expect))


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (mutant(ref.neuron_top_feature_share, ("sq = W.pow(2)", "sq = W.abs()")), "squared"),
        (mutant(ref.neuron_top_feature_share, ("sq = W.pow(2)", "sq = W")), "negative weight"),
        (mutant(ref.neuron_top_feature_share, ("sq.max(dim=-1).values / sq.sum(dim=-1)", "sq.max(dim=-2).values / sq.sum(dim=-2)")), "neuron_top_feature_share"),
    ],
)
def test_neuron_top_feature_share_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_neuron_top_feature_share, mutant, match=re.escape(expect))


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (mutant(ref.generate_signed_batch, ("2 * torch.rand(shape, device=feature_probability.device) - 1", "torch.rand(shape, device=feature_probability.device)")), "negative"),
        (mutant(ref.generate_signed_batch, ("2 * torch.rand(shape, device=feature_probability.device) - 1", "torch.randn(shape, device=feature_probability.device)")), "uniform"),
        (mutant(ref.generate_signed_batch, ("< feature_probability", "> feature_probability")), "probability"),
    ],
)
def test_generate_signed_batch_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_generate_signed_batch, mutant, match=re.escape(expect))


class AbsNoHiddenReLU(ref.AbsModel):
    def forward(self, features):
        h = einops.einsum(features, self.W_in, "batch inst feats, inst hidden feats -> batch inst hidden") + self.b_in
        return F.relu(einops.einsum(h, self.W_out, "batch inst hidden, inst feats hidden -> batch inst feats") + self.b_out)


class AbsNoOutputBias(ref.AbsModel):
    def forward(self, features):
        h = F.relu(einops.einsum(features, self.W_in, "batch inst feats, inst hidden feats -> batch inst hidden") + self.b_in)
        return F.relu(einops.einsum(h, self.W_out, "batch inst hidden, inst feats hidden -> batch inst feats"))


class AbsTiedReadOut(ref.AbsModel):
    def forward(self, features):
        h = F.relu(einops.einsum(features, self.W_in, "batch inst feats, inst hidden feats -> batch inst hidden") + self.b_in)
        return F.relu(einops.einsum(h, self.W_in, "batch inst hidden, inst hidden feats -> batch inst feats") + self.b_out)


@pytest.mark.parametrize("mutant,expect", [(AbsNoHiddenReLU, "hidden layer has its own ReLU"), (AbsNoOutputBias, "random weights"), (AbsTiedReadOut, "model(x)")])
def test_abs_model_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_abs_model, mutant, match=re.escape(expect))


@pytest.mark.parametrize(
    "mutant,expect",
    [
        (mutant(ref.train_abs_model, ("model(batch), batch.abs(), model.importance", "model(batch), batch, model.importance")), "rather than |x|"),
        (mutant(ref.train_abs_model, ("        optimizer.step()\n        # END", "        # END")), "error against |x|"),
        (mutant(ref.train_abs_model, ("        batch = model.generate_batch(batch_size)\n", ""),
                ("    for step in progress:\n", "    batch = model.generate_batch(8)\n    for step in progress:\n")), "error against |x|"),
    ],
)
def test_train_abs_model_mutants_fail(mutant, expect):
    assert_check_fails(checks.check_train_abs_model, mutant, match=re.escape(expect))


def test_phase_sweep_corners_are_robust_to_the_seed():
    """The check's 2 x 2 grid must give the same phases for other seeds, so a learner whose random calls
    happen in a different order still passes."""
    for seed in (1, 2):
        phases, _ = ref.run_phase_sweep(torch.tensor([0.1, 10.0]), torch.tensor([1.0, 0.1]), steps=800, batch_size=256, lr=1e-2, seed=seed)
        assert phases.tolist() == [[0, 2], [1, 2]], (seed, phases)
