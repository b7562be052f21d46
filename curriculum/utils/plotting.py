"""Plotly helpers every chapter uses. Each returns the figure and shows it unless show=False."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def smooth_series(y: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over `window` points (shorter at the start, so no points are lost)."""
    y = to_numpy(y).astype(float)
    if window <= 1 or len(y) == 0:
        return y
    cum = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (cum[idx] - cum[lo]) / (idx - lo)


def _show(fig: go.Figure, show: bool) -> go.Figure | None:
    """Show the figure and return None, or return it unshown (show=False) to edit it first.

    Returning a shown figure would make Jupyter draw it twice when the call ends a cell."""
    if show:
        fig.show()
        return None
    return fig


def line(
    y: Any,
    x: Any = None,
    smooth: int = 0,
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "",
    log_y: bool = False,
    show: bool = True,
) -> go.Figure | None:
    """Plot one series, or a dict of named series (losses, rewards, ...).

    With `smooth=k` the raw curve is drawn faintly and a k-point moving average on top.
    """
    series: Mapping[str, Any] = y if isinstance(y, Mapping) else {ylabel or "value": y}
    if not series:
        raise ValueError("line() got an empty dict: nothing to plot (pass {name: values, ...})")
    fig = go.Figure()
    colours = px.colors.qualitative.Plotly
    for i, (name, values) in enumerate(series.items()):
        values = to_numpy(values)
        if values.ndim != 1:
            raise ValueError(f"series {name!r} should be 1-D, got shape {values.shape}: plot one curve per key of a dict")
        xs = to_numpy(x[name] if isinstance(x, Mapping) else x) if x is not None else np.arange(len(values))
        if len(xs) != len(values):
            raise ValueError(f"series {name!r} has {len(values)} values but x has {len(xs)}")
        colour = colours[i % len(colours)]
        if smooth > 1:
            fig.add_scatter(x=xs, y=values, name=f"{name} (raw)", line=dict(color=colour, width=1), opacity=0.3, showlegend=False)
            values = smooth_series(values, smooth)
        fig.add_scatter(x=xs, y=values, name=name, line=dict(color=colour))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, template="simple_white", height=400)
    if log_y:
        fig.update_yaxes(type="log")
    return _show(fig, show)


def imshow(
    z: Any,
    x: Sequence[str] | None = None,
    y: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    facet_labels: Sequence[str] | None = None,
    zmid: float | None = 0.0,
    show: bool = True,
    **kwargs,
) -> go.Figure | None:
    """Heatmap of a 2-D array, or one facet per leading index of a 3-D array. Diverging colours around zmid."""
    z = to_numpy(z)
    if z.ndim not in (2, 3):
        raise ValueError(f"imshow takes a 2-D array (or 3-D for facets), got shape {z.shape}")
    if z.size == 0:
        raise ValueError(f"imshow got an empty array (shape {z.shape}): nothing to draw")
    if np.isnan(z).all():
        raise ValueError(f"imshow got an array of shape {z.shape} that is NaN everywhere: the values were never "
                         f"computed or a computation produced NaN (check what fills it)")
    if facet_labels is not None and (z.ndim != 3 or len(facet_labels) != z.shape[0]):
        facets = f"{z.shape[0]} facets (the first axis of shape {z.shape})" if z.ndim == 3 else "a 2-D array, which has no facets"
        raise ValueError(f"got {len(facet_labels)} facet_labels for {facets}: pass one label per facet")
    colour = dict(color_continuous_scale="RdBu", color_continuous_midpoint=zmid) if zmid is not None else {}
    fig = px.imshow(
        z,
        x=list(x) if x is not None else None,
        y=list(y) if y is not None else None,
        facet_col=0 if z.ndim == 3 else None,
        facet_col_wrap=min(4, z.shape[0]) if z.ndim == 3 else None,
        labels=dict(x=xlabel, y=ylabel),
        title=title,
        aspect="auto",
        **colour,
        **kwargs,
    )
    if z.ndim == 3 and facet_labels is not None:
        for i, label in enumerate(facet_labels):
            fig.layout.annotations[i]["text"] = label
    return _show(fig, show)


def image_grid(
    images: Any,
    nrow: int = 8,
    titles: Sequence[str] | None = None,
    title: str = "",
    value_range: tuple[float, float] | None = None,
    show: bool = True,
) -> go.Figure | None:
    """A grid of images: [N, H, W] (grey) or [N, C, H, W] with C in {1, 3}; values rescaled to [0, 1].

    `value_range` (e.g. (-1, 1) for diffusion samples) fixes the scaling; by default it is the data's min/max.
    """
    imgs = to_numpy(images)
    if imgs.ndim == 3:
        imgs = imgs[:, None]
    if imgs.ndim != 4 or imgs.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects [N, H, W] or [N, C, H, W] with C in (1, 3), got shape {imgs.shape}")
    if len(imgs) == 0:
        raise ValueError(f"image_grid got no images (shape {imgs.shape}): pass at least one")
    if titles is not None and len(titles) != len(imgs):
        raise ValueError(f"got {len(titles)} titles for {len(imgs)} images")
    if not np.isfinite(imgs).all():
        bad = [i for i in range(len(imgs)) if not np.isfinite(imgs[i]).all()]
        blank = [i for i in bad if np.isnan(imgs[i]).all()]
        raise ValueError(
            f"{len(bad)} of {len(imgs)} images contain NaN or inf (indices {bad[:10]}{'...' if len(bad) > 10 else ''}"
            f"{f'; entirely NaN: {blank[:10]}' if blank else ''}); they would draw as black. The model or sampler "
            f"produced non-finite values: look for a division by a near-zero variance or a diverging loss."
        )
    lo, hi = value_range if value_range is not None else (float(imgs.min()), float(imgs.max()))
    imgs = np.clip((imgs - lo) / max(hi - lo, 1e-8), 0, 1)
    n = len(imgs)
    cols = min(nrow, n)
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.01, vertical_spacing=0.06 if titles else 0.01)
    for i, img in enumerate(imgs):
        rgb = (np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img).transpose(1, 2, 0) * 255
        fig.add_trace(go.Image(z=rgb.astype(np.uint8)), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=max(200, 110 * rows + 60), width=max(300, 100 * cols + 40), margin=dict(l=10, r=10, t=60, b=10))
    return _show(fig, show)


def _circuitsvis_renders() -> bool:
    """circuitsvis draws in a live notebook and fetches its JavaScript from a CDN: online only."""
    from curriculum.utils.offline import use_real_resources

    try:
        from IPython import get_ipython

        in_kernel = get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except ImportError:
        in_kernel = False
    return in_kernel and use_real_resources()


def attention_patterns(
    tokens: Sequence[str],
    pattern: Any,
    head_names: Sequence[str] | None = None,
    title: str = "attention patterns",
    backend: str = "auto",
    show: bool = True,
):
    """Attention patterns [n_heads, query, key] over string tokens: circuitsvis where it renders
    (a notebook, online), otherwise a plotly heatmap per head (query down, key across)."""
    pat = to_numpy(pattern)
    if pat.ndim == 2:
        pat = pat[None]
    if pat.ndim != 3 or pat.shape[1] != pat.shape[2]:
        raise ValueError(f"pattern should be [n_heads, query_pos, key_pos] (or one head's [q, k]), got shape {pat.shape}")
    if len(tokens) != pat.shape[-1]:
        raise ValueError(f"{len(tokens)} tokens for a pattern over {pat.shape[-1]} positions: pass model.to_str_tokens(...) of the same prompt")
    names = list(head_names) if head_names is not None else [f"head {h}" for h in range(pat.shape[0])]
    if backend == "circuitsvis" or (backend == "auto" and _circuitsvis_renders()):
        import circuitsvis as cv

        # attention_heads takes head names (attention_patterns does not): one panel per head, plus all heads
        html = cv.attention.attention_heads(attention=torch.tensor(pat), tokens=list(tokens), attention_head_names=names)
        if show:
            from IPython.display import display

            display(html)
            return None  # returned too, Jupyter would draw it a second time
        return html
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]  # positions keep repeated tokens apart
    return imshow(pat, x=labels, y=labels, title=title, facet_labels=names, zmid=None,
                  xlabel="key", ylabel="query", color_continuous_scale="Blues", show=show)
