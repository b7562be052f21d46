"""Toy models of superposition (Elhage et al., 2022, "Toy Models of Superposition").

n sparse features are squeezed through m < n hidden dimensions and read back out:

    h  = W x                      W: [m, n], the columns W_i are the feature directions
    x' = ReLU(W^T h + b)          the same W reads back out (tied weights)

Every tensor carries a leading `inst` axis: one model holds many independent instances, each with
its own feature probability and importance, trained in one batched pass. Comparing instances is
how we see the phase change as sparsity grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import plotly.express as px
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor, nn
from tqdm.auto import tqdm


@dataclass
class ToyConfig:
    n_instances: int = 8
    n_features: int = 5
    n_hidden: int = 2


def per_instance(value: float | Tensor, cfg: ToyConfig, what: str) -> Float[Tensor, "inst feats"]:
    """Broadcast a scalar, a [feats] vector or an [inst, feats] tensor to [inst, feats]."""
    if value is None:
        raise ValueError(f"{what} is None: pass a float, a tensor of shape (n_features,) or (n_instances, n_features)")
    t = torch.as_tensor(value, dtype=torch.float32)
    shape = (cfg.n_instances, cfg.n_features)
    try:
        return torch.broadcast_to(t, shape).clone()
    except RuntimeError:
        raise ValueError(
            f"{what} has shape {tuple(t.shape)}, which does not broadcast to (n_instances, n_features) = {shape}: "
            f"use a float, a tensor of shape ({cfg.n_features},) or {shape}"
        ) from None


class ToyModel(nn.Module):
    """`n_instances` independent toy models x -> ReLU(W^T W x + b), with tied weights."""

    W: Float[Tensor, "inst hidden feats"]
    b_final: Float[Tensor, "inst feats"]

    def __init__(
        self,
        cfg: ToyConfig,
        feature_probability: float | Tensor = 1.0,
        importance: float | Tensor = 1.0,
    ):
        super().__init__()
        if cfg.n_hidden < 1 or cfg.n_features < 1 or cfg.n_instances < 1:
            raise ValueError(f"every size in {cfg} must be at least 1")
        self.cfg = cfg
        p = per_instance(feature_probability, cfg, "feature_probability")
        if not ((p > 0) & (p <= 1)).all():
            raise ValueError("feature_probability must lie in (0, 1]: it is the chance a feature is non-zero (1 - sparsity)")
        imp = per_instance(importance, cfg, "importance")
        if (imp < 0).any():
            raise ValueError("importance must be non-negative: it weights each feature's squared error")
        # Buffers, not parameters: they move with .to(device) but the optimiser never touches them.
        self.register_buffer("feature_probability", p)
        self.register_buffer("importance", imp)
        self.W = nn.Parameter(nn.init.xavier_normal_(torch.empty(cfg.n_instances, cfg.n_hidden, cfg.n_features)))
        self.b_final = nn.Parameter(torch.zeros(cfg.n_instances, cfg.n_features))

    def hidden(self, features: Float[Tensor, "batch inst feats"]) -> Float[Tensor, "batch inst hidden"]:
        """h = W x for each instance: the compressed representation."""
        return einops.einsum(features, self.W, "batch inst feats, inst hidden feats -> batch inst hidden")

    def forward(self, features: Float[Tensor, "batch inst feats"]) -> Float[Tensor, "batch inst feats"]:
        """x' = ReLU(W^T h + b): read back out with the same W (tied), add the bias, then ReLU."""
        # EXERCISE: read self.hidden(features) back out through the same W, add b_final, apply ReLU
        h = self.hidden(features)
        out = einops.einsum(h, self.W, "batch inst hidden, inst hidden feats -> batch inst feats")
        return F.relu(out + self.b_final)
        # END EXERCISE

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        return generate_batch(batch_size, self.feature_probability)


def generate_batch(batch_size: int, feature_probability: Float[Tensor, "inst feats"]) -> Float[Tensor, "batch inst feats"]:
    """Sparse synthetic features: each x_i is 0 with probability 1 - p_i, else uniform in [0, 1].

    Each (sample, instance, feature) entry is drawn independently; p has one value per instance and feature.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    # EXERCISE: draw uniform values and keep each one where an independent uniform draw is below p
    shape = (batch_size, *feature_probability.shape)
    values = torch.rand(shape, device=feature_probability.device)
    present = torch.rand(shape, device=feature_probability.device) < feature_probability
    return torch.where(present, values, 0.0)
    # END EXERCISE


def importance_weighted_mse(
    out: Float[Tensor, "batch inst feats"],
    batch: Float[Tensor, "batch inst feats"],
    importance: Float[Tensor, "inst feats"],
) -> Float[Tensor, ""]:
    """L = sum over instances of mean over (batch, feats) of I_i (x_i - x'_i)^2.

    Summing (not averaging) over instances keeps each instance's gradient independent of how many
    instances share the model, so the instances train exactly as separate models would.
    """
    # EXERCISE: weight each squared error by its feature's importance, mean over batch and feats, sum over instances
    error = importance * (batch - out) ** 2
    return einops.reduce(error, "batch inst feats -> inst", "mean").sum()
    # END EXERCISE


def train_toy_model(
    model: ToyModel,
    steps: int = 10_000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    log_every: int = 100,
) -> list[float]:
    """Adam on fresh batches from `model.generate_batch`; returns the loss every `log_every` steps."""
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1, batch_size >= 1 and lr > 0; got steps={steps}, batch_size={batch_size}, lr={lr}")
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    progress = tqdm(range(steps), desc="training toy model")
    for step in progress:
        # EXERCISE: sample a fresh batch, run the model, compute importance_weighted_mse, take one Adam step
        batch = model.generate_batch(batch_size)
        out = model(batch)
        loss = importance_weighted_mse(out, batch, model.importance)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # END EXERCISE
        if step % log_every == 0 or step == steps - 1:
            losses.append(loss.item())
            progress.set_postfix(loss=f"{loss.item() / model.cfg.n_instances:.4g} per instance")
    return losses


def feature_norms(W: Float[Tensor, "inst hidden feats"]) -> Float[Tensor, "inst feats"]:
    """||W_i||: near 1 when feature i is represented, near 0 when the model drops it."""
    return W.norm(dim=1)


def superposition(W: Float[Tensor, "inst hidden feats"]) -> Float[Tensor, "inst feats"]:
    """sum_{j != i} (Ŵ_i · W_j)^2: how much the other features project onto feature i's direction.

    Ŵ_i = W_i / ||W_i|| (take Ŵ_i = 0 when W_i = 0). 0 means feature i has a dimension to itself.
    """
    # EXERCISE: normalise the columns, take all dot products Ŵ_i · W_j, square, sum over j != i
    W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    overlaps = einops.einsum(W_hat, W, "inst hidden i, inst hidden j -> inst i j") ** 2
    return overlaps.sum(-1) - overlaps.diagonal(dim1=-2, dim2=-1)
    # END EXERCISE


def feature_dimensionality(W: Float[Tensor, "inst hidden feats"]) -> Float[Tensor, "inst feats"]:
    """D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2: the fraction of a dimension feature i gets (0 when W_i = 0)."""
    # EXERCISE: the numerator is ||W_i||^2; the sum in the denominator includes j = i
    W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    overlaps = einops.einsum(W_hat, W, "inst hidden i, inst hidden j -> inst i j") ** 2
    return W.norm(dim=1) ** 2 / overlaps.sum(-1).clamp_min(1e-8)
    # END EXERCISE


def feature_recovery(
    W: Float[Tensor, "hidden feats"], W_dec: Float[Tensor, "d_sae hidden"]
) -> Float[Tensor, "feats"]:
    """For each true feature direction W_i, the best cosine similarity with any SAE decoder row.

    Signed, not absolute: a latent pointing the opposite way (cos = -1) reconstructs -W_i, not W_i.
    """
    # EXERCISE: cosine similarity of every (latent, feature) pair, then the max over latents
    cos = einops.einsum(F.normalize(W_dec, dim=-1), F.normalize(W, dim=0), "d_sae hidden, hidden feats -> d_sae feats")
    return cos.max(dim=0).values
    # END EXERCISE


# Correlated and anticorrelated features. Features come in pairs (0, 1), (2, 3), ...


def generate_correlated_batch(batch_size: int, feature_probability: Float[Tensor, "inst feats"]) -> Float[Tensor, "batch inst feats"]:
    """Like `generate_batch`, but the two features of each pair (0, 1), (2, 3), ... are on together or
    off together: one draw per pair, with the probability of the pair's first feature. The two values
    are still independent uniform draws in [0, 1]."""
    if feature_probability.shape[-1] % 2:
        raise ValueError(f"features come in pairs: n_features must be even, got {feature_probability.shape[-1]}")
    # EXERCISE: one on/off draw per pair, repeated for both members; independent values per feature
    shape = (batch_size, *feature_probability.shape)
    values = torch.rand(shape, device=feature_probability.device)
    pair_p = feature_probability[:, ::2]
    pair_on = torch.rand(batch_size, *pair_p.shape, device=feature_probability.device) < pair_p
    present = pair_on.repeat_interleave(2, dim=-1)
    return torch.where(present, values, 0.0)
    # END EXERCISE


def generate_anticorrelated_batch(batch_size: int, feature_probability: Float[Tensor, "inst feats"]) -> Float[Tensor, "batch inst feats"]:
    """The two features of each pair are never on together: a pair is active with probability 2p
    (p: its first feature's probability, at most 1/2) and then exactly one member, chosen by a fair
    coin, is on. Each feature is still on with probability p; values uniform in [0, 1]."""
    if feature_probability.shape[-1] % 2:
        raise ValueError(f"features come in pairs: n_features must be even, got {feature_probability.shape[-1]}")
    if (feature_probability > 0.5).any():
        raise ValueError("anticorrelated pairs need feature_probability <= 0.5: the pair is active with probability 2p")
    # EXERCISE: a pair is active with probability 2p; a fair coin picks which member; values uniform
    shape = (batch_size, *feature_probability.shape)
    device = feature_probability.device
    values = torch.rand(shape, device=device)
    pair_p = feature_probability[:, ::2]
    pair_on = torch.rand(batch_size, *pair_p.shape, device=device) < 2 * pair_p
    first = torch.rand(batch_size, *pair_p.shape, device=device) < 0.5
    present = torch.stack([pair_on & first, pair_on & ~first], dim=-1).flatten(-2)
    return torch.where(present, values, 0.0)
    # END EXERCISE


def pair_cosines(W: Float[Tensor, "inst hidden feats"]) -> Float[Tensor, "inst pairs"]:
    """cos(W_{2k}, W_{2k+1}) for each pair k: +1 same direction, 0 orthogonal, -1 antipodal."""
    # EXERCISE: normalise the columns (clamp the norm), then the dot product of each even column with the next
    W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return (W_hat[:, :, 0::2] * W_hat[:, :, 1::2]).sum(dim=1)
    # END EXERCISE


# The phase diagram: 2 features in 1 hidden dimension, one instance per (importance, probability).

PHASE_NAMES = ("feature 1 dropped", "feature 1 alone", "both, antipodal")


def phase_grid(
    importances: Float[Tensor, "n_imp"], probabilities: Float[Tensor, "n_prob"]
) -> tuple[Float[Tensor, "inst 2"], Float[Tensor, "inst 2"]]:
    """One instance per (importance r, probability p), row-major: instance i * n_prob + j has
    importance (1, importances[i]) and feature probability (probabilities[j], probabilities[j])."""
    # EXERCISE: build the (inst, 2) importance and feature-probability tensors of the grid, row-major
    n_imp, n_prob = len(importances), len(probabilities)
    r = importances.repeat_interleave(n_prob)
    p = probabilities.repeat(n_imp)
    importance = torch.stack([torch.ones_like(r), r], dim=-1)
    feature_probability = torch.stack([p, p], dim=-1)
    return importance, feature_probability
    # END EXERCISE


def classify_phase(W: Float[Tensor, "inst 1 2"], threshold: float = 0.5) -> Tensor:
    """0 if feature 1 is dropped (||W_1|| < threshold), 1 if it has the dimension to itself (feature 0
    dropped), 2 if both are represented (in one dimension that means antipodal: superposition)."""
    # EXERCISE: which of the two features have a norm above the threshold, then the phase number
    represented = W.norm(dim=1) > threshold
    first, second = represented[:, 0], represented[:, 1]
    return torch.where(~second, 0, torch.where(first, 2, 1))
    # END EXERCISE


def run_phase_sweep(
    importances: Float[Tensor, "n_imp"],
    probabilities: Float[Tensor, "n_prob"],
    steps: int = 5000,
    batch_size: int = 1024,
    lr: float = 1e-2,
    seed: int = 0,
) -> tuple[Tensor, ToyModel]:
    """Train one 2-feature, 1-dimension toy model per grid point (as instances of one ToyModel) and
    return the phases as an (n_imp, n_prob) grid (rows: importance) and the trained model."""
    # EXERCISE: build the grid, train one ToyModel with an instance per cell, classify, reshape to (n_imp, n_prob)
    importance, feature_probability = phase_grid(importances, probabilities)
    torch.manual_seed(seed)
    cfg = ToyConfig(n_instances=len(importance), n_features=2, n_hidden=1)
    model = ToyModel(cfg, feature_probability, importance)
    train_toy_model(model, steps=steps, batch_size=batch_size, lr=lr, seed=seed, log_every=steps)
    phases = classify_phase(model.W.detach()).reshape(len(importances), len(probabilities))
    return phases, model
    # END EXERCISE


def plot_phase_diagram(
    phases: Tensor, importances: Float[Tensor, "n_imp"], probabilities: Float[Tensor, "n_prob"], show: bool = True
) -> go.Figure:
    """A heatmap of the phases: x = 1 / feature probability (log axis), y = relative importance of
    feature 1 (log axis), z = the phase number, with axis titles and the phase names in the colour bar."""
    # EXERCISE: one go.Heatmap with z = phases, x = 1 / probabilities, y = importances; log axes with titles
    fig = go.Figure(go.Heatmap(
        z=phases.tolist(), x=(1 / probabilities).tolist(), y=importances.tolist(), zmin=0, zmax=2,
        colorscale=[[0, "#440154"], [0.5, "#21918c"], [1, "#fde725"]],
        colorbar={"tickvals": [0, 1, 2], "ticktext": list(PHASE_NAMES)},
    ))
    fig.update_xaxes(type="log", title="1 / feature probability")
    fig.update_yaxes(type="log", title="relative importance of feature 1")
    fig.update_layout(width=700, height=450, template="simple_white", title="2 features in 1 dimension: phase diagram")
    # END EXERCISE
    if show:
        fig.show()
    return fig


# A privileged basis: a ReLU on the hidden layer.


class NeuronModel(ToyModel):
    """h = ReLU(W x), x' = ReLU(W^T h + b): the hidden units are now neurons."""

    def hidden(self, features: Float[Tensor, "batch inst feats"]) -> Float[Tensor, "batch inst hidden"]:
        # EXERCISE: the same projection as ToyModel.hidden, followed by a ReLU
        return F.relu(einops.einsum(features, self.W, "batch inst feats, inst hidden feats -> batch inst hidden"))
        # END EXERCISE


def neuron_top_feature_share(W: Float[Tensor, "inst hidden feats"]) -> Float[Tensor, "inst hidden"]:
    """For each neuron (row of W), the share of its squared input weights that goes to its largest
    feature: 1 for a monosemantic neuron, 1/n_features for one that reads every feature equally."""
    # EXERCISE: square the weights, take the largest over features, divide by the sum over features
    sq = W.pow(2)
    return sq.max(dim=-1).values / sq.sum(dim=-1).clamp_min(1e-12)
    # END EXERCISE


# Computation in superposition: y = |x| through a ReLU hidden layer.


def generate_signed_batch(batch_size: int, feature_probability: Float[Tensor, "inst feats"]) -> Float[Tensor, "batch inst feats"]:
    """Sparse features with a sign: 0 with probability 1 - p, else uniform in [-1, 1]."""
    # EXERCISE: like generate_batch, but the values are uniform in [-1, 1]
    shape = (batch_size, *feature_probability.shape)
    values = 2 * torch.rand(shape, device=feature_probability.device) - 1
    present = torch.rand(shape, device=feature_probability.device) < feature_probability
    return torch.where(present, values, 0.0)
    # END EXERCISE


class AbsModel(nn.Module):
    """y = ReLU(W_out ReLU(W_in x + b_in) + b_out), trained so that y ≈ |x|: n_hidden ReLU neurons
    compute n_features absolute values. Untied: W_in (inst, hidden, feats), W_out (inst, feats, hidden)."""

    def __init__(self, cfg: ToyConfig, feature_probability: float | Tensor = 1.0, importance: float | Tensor = 1.0):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("feature_probability", per_instance(feature_probability, cfg, "feature_probability"))
        self.register_buffer("importance", per_instance(importance, cfg, "importance"))
        self.W_in = nn.Parameter(nn.init.xavier_normal_(torch.empty(cfg.n_instances, cfg.n_hidden, cfg.n_features)))
        self.b_in = nn.Parameter(torch.zeros(cfg.n_instances, cfg.n_hidden))
        self.W_out = nn.Parameter(nn.init.xavier_normal_(torch.empty(cfg.n_instances, cfg.n_features, cfg.n_hidden)))
        self.b_out = nn.Parameter(torch.zeros(cfg.n_instances, cfg.n_features))

    def forward(self, features: Float[Tensor, "batch inst feats"]) -> Float[Tensor, "batch inst feats"]:
        # EXERCISE: ReLU(W_in x + b_in), then ReLU(W_out h + b_out), each instance with its own weights
        h = F.relu(einops.einsum(features, self.W_in, "batch inst feats, inst hidden feats -> batch inst hidden") + self.b_in)
        return F.relu(einops.einsum(h, self.W_out, "batch inst hidden, inst feats hidden -> batch inst feats") + self.b_out)
        # END EXERCISE

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        return generate_signed_batch(batch_size, self.feature_probability)


def train_abs_model(
    model: AbsModel, steps: int = 10_000, batch_size: int = 1024, lr: float = 1e-3, seed: int = 0, log_every: int = 100
) -> list[float]:
    """Adam on fresh signed batches, target |x|, importance-weighted MSE; returns the logged losses."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    progress = tqdm(range(steps), desc="training |x| model")
    for step in progress:
        # EXERCISE: a fresh signed batch, the model's output, the weighted MSE against |x|, one Adam step
        batch = model.generate_batch(batch_size)
        loss = importance_weighted_mse(model(batch), batch.abs(), model.importance)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # END EXERCISE
        if step % log_every == 0 or step == steps - 1:
            losses.append(loss.item())
            progress.set_postfix(loss=f"{loss.item() / model.cfg.n_instances:.4g} per instance")
    return losses


# Plots. Not exercises: they take W (and what to colour it by) and return a plotly figure.


def _subplot_grid(n: int, titles: list[str] | None, cols: int = 4, **kwargs) -> go.Figure:
    rows = (n + cols - 1) // cols
    return make_subplots(rows=rows, cols=min(cols, n), subplot_titles=titles, **kwargs)


def plot_features_in_2d(
    W: Float[Tensor, "inst 2 feats"],
    colour_by: Float[Tensor, "feats"] | None = None,
    titles: list[str] | None = None,
    overlay: Float[Tensor, "inst n 2"] | None = None,
    overlay_name: str = "SAE latents",
    show: bool = True,
) -> go.Figure:
    """Each feature's direction W_i in the 2-D hidden space, one panel per instance (lines from 0, coloured)."""
    W = W.detach().cpu()
    if W.ndim != 3 or W.shape[1] != 2:
        raise ValueError(f"W should be (n_instances, 2, n_features) for a 2-D picture, got {tuple(W.shape)}")
    n_inst, _, n_feats = W.shape
    values = colour_by.detach().cpu() if colour_by is not None else torch.arange(n_feats, dtype=torch.float32)
    colours = px.colors.sample_colorscale("Viridis", ((values - values.min()) / (values.max() - values.min() + 1e-8)).tolist())
    fig = _subplot_grid(n_inst, titles, horizontal_spacing=0.03, vertical_spacing=0.12)
    for k in range(n_inst):
        row, col = k // 4 + 1, k % 4 + 1
        for i in range(n_feats):
            x, y = W[k, :, i].tolist()
            fig.add_scatter(x=[0, x], y=[0, y], mode="lines+markers", line=dict(color=colours[i], width=2),
                            marker=dict(size=[0, 8]), name=f"feature {i}", legendgroup=f"f{i}", showlegend=k == 0,
                            row=row, col=col)
        if overlay is not None:
            for j, (x, y) in enumerate(overlay[k].detach().cpu().tolist()):
                fig.add_scatter(x=[0, x], y=[0, y], mode="lines", line=dict(color="black", dash="dot", width=1),
                                name=overlay_name, legendgroup="overlay", showlegend=k == 0 and j == 0, row=row, col=col)
    fig.update_xaxes(range=[-1.5, 1.5], showticklabels=False, zeroline=False)
    fig.update_yaxes(range=[-1.5, 1.5], showticklabels=False, zeroline=False, scaleanchor="x")
    rows = (n_inst + 3) // 4
    fig.update_layout(height=260 * rows + 60, width=1000, template="simple_white", title="feature directions W_i in the hidden space")
    if show:
        fig.show()
    return fig


def plot_norms_and_superposition(
    W: Float[Tensor, "inst hidden feats"], titles: list[str] | None = None, show: bool = True
) -> go.Figure:
    """Bars of ||W_i|| per feature, coloured by superposition: dark = own dimension, yellow = shared."""
    W = W.detach().cpu()
    norms, sup = feature_norms(W), superposition(W).clamp(max=1.0)
    n_inst, _, n_feats = W.shape
    fig = _subplot_grid(n_inst, titles, horizontal_spacing=0.04, vertical_spacing=0.15)
    for k in range(n_inst):
        fig.add_bar(x=list(range(n_feats)), y=norms[k].tolist(), showlegend=False, row=k // 4 + 1, col=k % 4 + 1,
                    marker=dict(color=sup[k].tolist(), colorscale="Viridis", cmin=0, cmax=1,
                                colorbar=dict(title="superposition") if k == 0 else None, showscale=k == 0),
                    hovertemplate="feature %{x}<br>||W_i|| %{y:.2f}<extra></extra>")
    fig.update_yaxes(range=[0, 1.3])
    fig.update_layout(height=240 * ((n_inst + 3) // 4) + 80, width=1000, template="simple_white",
                      title="||W_i|| per feature (x: feature, most important first), colour: superposition Σ_j≠i (Ŵ_i·W_j)²")
    if show:
        fig.show()
    return fig


def plot_feature_dimensionality(
    W: Float[Tensor, "inst hidden feats"], feature_probability: Float[Tensor, "inst"], show: bool = True
) -> go.Figure:
    """D_i for every feature against 1 / (feature probability), with the model's dimensions per feature."""
    W = W.detach().cpu()
    density = (1 / feature_probability.detach().cpu()).tolist()
    dims = feature_dimensionality(W)
    n_inst, n_hidden, n_feats = W.shape
    per_feature = n_hidden / (W.norm(dim=(1, 2)) ** 2)  # m / ||W||_F^2: hidden dims per represented feature
    fig = go.Figure()
    for frac in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 1 / 3):
        fig.add_hline(y=frac, line=dict(color="grey", dash="dot", width=1), annotation_text=f"{frac:.2g}",
                      annotation_position="right")
    jitter = torch.exp(0.04 * torch.randn(n_inst, n_feats, generator=torch.Generator().manual_seed(0)))
    fig.add_scatter(x=(torch.tensor(density)[:, None] * jitter).flatten().tolist(), y=dims.flatten().tolist(),
                    mode="markers", marker=dict(size=4, opacity=0.4, color="#1f77b4"), name="D_i of each feature")
    fig.add_scatter(x=density, y=per_feature.tolist(), mode="lines+markers", line=dict(color="black"),
                    name="m / ||W||²_F (dimensions per feature)")
    fig.update_xaxes(type="log", title="1 / feature probability")
    fig.update_yaxes(title="dimensions per feature", range=[0, 1.1])
    fig.update_layout(height=450, width=900, template="simple_white", title="feature dimensionality: sticky fractions")
    if show:
        fig.show()
    return fig
