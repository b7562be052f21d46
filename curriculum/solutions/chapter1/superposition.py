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
        # EXERCISE: project each instance's features through its own W (einops.einsum over the feats axis)
        return einops.einsum(features, self.W, "batch inst feats, inst hidden feats -> batch inst hidden")
        # END EXERCISE

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
