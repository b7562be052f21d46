"""4.1 Diffusion from scratch on toy 2-D data.

Read top to bottom: noise schedules -> the closed-form forward process q(x_t | x_0) -> a small MLP
that predicts the noise -> the epsilon-prediction loss -> DDPM ancestral sampling.

Timesteps follow diffusers' convention: t runs over 0 .. T-1, `alpha_bars[t]` is the signal kept
after t+1 noising steps, and sampling walks t = T-1, ..., 0. The schedule, `add_noise` and
`ddpm_step` here are reused unchanged by the image models of 4.2 and the guidance of 4.3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from sklearn.datasets import make_swiss_roll
from torch import Tensor, nn
from tqdm.auto import tqdm


# ---------------------------------------------------------------------------------------------
# Toy data
# ---------------------------------------------------------------------------------------------
def swiss_roll(n: int, seed: int = 0) -> Float[Tensor, "n 2"]:
    """A 2-D swiss roll, scaled to roughly unit variance per axis (the noise is N(0, I))."""
    points, _ = make_swiss_roll(n, noise=0.3, random_state=seed)
    xy = torch.tensor(points[:, [0, 2]], dtype=torch.float32)
    return xy / 8.0


def gaussian_mixture(n: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.15, seed: int = 0) -> Float[Tensor, "n 2"]:
    """`n_modes` small Gaussians evenly spaced on a circle: easy to see when a sampler drops a mode."""
    g = torch.Generator().manual_seed(seed)
    mode = torch.randint(n_modes, (n,), generator=g)
    angle = 2 * math.pi * mode.float() / n_modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=g)


# ---------------------------------------------------------------------------------------------
# Noise schedules
# ---------------------------------------------------------------------------------------------
def linear_betas(n_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Float[Tensor, "n_steps"]:
    """DDPM's schedule (Ho et al. 2020): beta_t rises linearly from beta_start to beta_end, both included."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps}")
    # EXERCISE: n_steps evenly spaced betas from beta_start to beta_end inclusive (float32)
    return torch.linspace(beta_start, beta_end, n_steps, dtype=torch.float32)
    # END EXERCISE


def cosine_betas(n_steps: int, s: float = 0.008, max_beta: float = 0.999) -> Float[Tensor, "n_steps"]:
    """Improved DDPM's schedule (Nichol & Dhariwal 2021), defined through alpha_bar:

        f(u) = cos((u + s) / (1 + s) * pi / 2) ** 2,     beta_t = min(1 - f((t+1)/T) / f(t/T), max_beta)

    so alpha_bar_t = prod_{i<=t} (1 - beta_i) follows f, falling slowly at both ends instead of
    destroying most of the signal in the first few hundred steps as the linear schedule does.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps}")
    # EXERCISE: evaluate f at t/T and (t+1)/T, take 1 - ratio, clip at max_beta (compute in float64, return float32)
    u = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return betas.float()
    # END EXERCISE


@dataclass
class Schedule:
    """Everything the forward and reverse processes need, precomputed once from the betas."""

    betas: Float[Tensor, "T"]

    def __post_init__(self):
        if self.betas.ndim != 1 or not ((self.betas > 0) & (self.betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor with every entry in (0, 1)")
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    @property
    def n_steps(self) -> int:
        return len(self.betas)

    def to(self, device) -> "Schedule":
        return Schedule(self.betas.to(device))


def _broadcast(values: Float[Tensor, "batch"], like: Tensor) -> Tensor:
    """Reshape per-example scalars to (batch, 1, 1, ...) so they multiply a batch of any shape."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


# ---------------------------------------------------------------------------------------------
# The forward process in closed form
# ---------------------------------------------------------------------------------------------
def add_noise(
    x0: Float[Tensor, "batch *shape"],
    noise: Float[Tensor, "batch *shape"],
    t: Int[Tensor, "batch"],
    alpha_bars: Float[Tensor, "T"],
) -> Float[Tensor, "batch *shape"]:
    """Sample x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) using the given noise.

    `t` holds one timestep per example; x0 may be (batch, 2) points or (batch, C, H, W) images.
    """
    if x0.shape != noise.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must have the same shape")
    # EXERCISE: gather alpha_bar at each example's t, broadcast it over the data dims (see _broadcast), mix x0 and noise
    a_bar = _broadcast(alpha_bars.to(x0.device)[t], x0)
    return a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * noise
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# The denoiser
# ---------------------------------------------------------------------------------------------
def sinusoidal_embedding(t: Int[Tensor, "batch"], dim: int, max_period: float = 10_000.0) -> Float[Tensor, "batch dim"]:
    """Transformer-style timestep features: [sin(t * w_0), ..., sin(t * w_{h-1}), cos(t * w_0), ..., cos(t * w_{h-1})]

    with h = dim // 2 and w_i = max_period ** (-i / h). Low i vary fast with t, high i slowly, so
    the network can tell t = 3 from t = 4 and t = 300 from t = 700.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    # EXERCISE: frequencies w_i = exp(-ln(max_period) * i / half); outer product with t; concatenate sin then cos
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
    # END EXERCISE


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t) for 2-D points: an MLP on [x_t, embedding(t)] with two hidden layers."""

    def __init__(self, d_data: int = 2, d_hidden: int = 128, d_time: int = 32):
        super().__init__()
        self.d_time = d_time
        self.net = nn.Sequential(
            nn.Linear(d_data + d_time, d_hidden),
            nn.SiLU(),
            nn.Linear(d_hidden, d_hidden),
            nn.SiLU(),
            nn.Linear(d_hidden, d_data),
        )

    def forward(self, x: Float[Tensor, "batch d_data"], t: Int[Tensor, "batch"]) -> Float[Tensor, "batch d_data"]:
        return self.net(torch.cat([x, sinusoidal_embedding(t, self.d_time)], dim=-1))


# ---------------------------------------------------------------------------------------------
# Training objective
# ---------------------------------------------------------------------------------------------
def diffusion_loss(
    model: nn.Module,
    x0: Float[Tensor, "batch *shape"],
    alpha_bars: Float[Tensor, "T"],
    t: Int[Tensor, "batch"] | None = None,
    noise: Float[Tensor, "batch *shape"] | None = None,
    **model_kwargs,
) -> Float[Tensor, ""]:
    """The simplified DDPM loss: E_{t, eps} || eps - eps_theta(x_t, t) ||^2 (mean over every element).

    t ~ Uniform{0..T-1} and eps ~ N(0, I) are drawn here unless given (the check passes them in).
    Extra keyword arguments (e.g. class labels) go to the model.
    """
    # EXERCISE: draw t and noise if missing, noise x0 with add_noise, return the MSE between the model's prediction and the noise
    if t is None:
        t = torch.randint(0, len(alpha_bars), (x0.shape[0],), device=x0.device)
    if noise is None:
        noise = torch.randn_like(x0)
    x_t = add_noise(x0, noise, t, alpha_bars)
    return F.mse_loss(model(x_t, t, **model_kwargs), noise)
    # END EXERCISE


@dataclass
class ToyTrainConfig:
    n_steps: int = 5000
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0


def train_toy(model: nn.Module, data: Float[Tensor, "n 2"], sched: Schedule, cfg: ToyTrainConfig) -> list[float]:
    """Minibatch Adam (learning rate cfg.lr) on `diffusion_loss` for cfg.n_steps steps; returns the loss curve.

    Seed torch with cfg.seed first, so two runs give the same curve. Each step draws cfg.batch_size
    rows of `data` at random (with replacement), computes the loss once, and takes one optimiser
    step. The returned list holds one Python float per step.
    """
    # EXERCISE: seed, make an Adam optimiser, then loop: sample a batch, loss, zero_grad, backward, step, record loss.item()
    torch.manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    for _ in tqdm(range(cfg.n_steps), desc="training denoiser"):
        batch = data[torch.randint(len(data), (cfg.batch_size,))]
        loss = diffusion_loss(model, batch, sched.alpha_bars)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# Reverse process: DDPM ancestral sampling
# ---------------------------------------------------------------------------------------------
def posterior_mean_variance(
    x0: Float[Tensor, "batch *shape"],
    x_t: Float[Tensor, "batch *shape"],
    t: int,
    sched: Schedule,
) -> tuple[Float[Tensor, "batch *shape"], Float[Tensor, ""]]:
    """Mean and variance of the forward-process posterior q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde_t I),
    derived in the notebook: mu_tilde is a weighted sum of x_0 and x_t, beta_tilde_t a number.

    Take alpha_bar_{-1} = 1 (at t = 0 the mean is x_0 itself and the variance 0). The variance is
    the same for every example and every coordinate: return it as a 0-d tensor.
    """
    # EXERCISE: look up alpha_bar_t and alpha_bar_{t-1} (1 at t = 0), derive alpha_t and beta_t from them, then the two coefficients and beta_tilde
    a_bar = sched.alpha_bars[t]
    a_bar_prev = sched.alpha_bars[t - 1] if t > 0 else torch.tensor(1.0)
    alpha = a_bar / a_bar_prev  # = sched.alphas[t]; written this way it also serves strided schedules
    beta = 1 - alpha
    coef_x0 = a_bar_prev.sqrt() * beta / (1 - a_bar)
    coef_xt = alpha.sqrt() * (1 - a_bar_prev) / (1 - a_bar)
    return coef_x0 * x0 + coef_xt * x_t, beta * (1 - a_bar_prev) / (1 - a_bar)
    # END EXERCISE


def ddpm_step(
    eps: Float[Tensor, "batch *shape"],
    t: int,
    x_t: Float[Tensor, "batch *shape"],
    sched: Schedule,
    noise: Float[Tensor, "batch *shape"],
    clip_x0: float | None = None,
) -> Float[Tensor, "batch *shape"]:
    """One ancestral step x_t -> x_{t-1} ~ p_theta(x_{t-1} | x_t), the way diffusers' DDPMScheduler does it:

    1. predicted clean sample  x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), clamped to
       [-clip_x0, clip_x0] if clip_x0 is set (images live in [-1, 1]);
    2. the posterior q(x_{t-1} | x_t, x0_hat): mean and variance from `posterior_mean_variance`
       (the variance beta_tilde_t is diffusers' "fixed_small" choice);
    3. return mean + sqrt(variance) * noise, except at t = 0, where no noise is added.
    """
    # EXERCISE: predict x0 (and clamp it), take the posterior of q(x_{t-1} | x_t, x0_hat), add noise unless t == 0
    a_bar = sched.alpha_bars[t]
    x0_hat = (x_t - (1 - a_bar).sqrt() * eps) / a_bar.sqrt()
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
    mean, var = posterior_mean_variance(x0_hat, x_t, t, sched)
    if t == 0:
        return mean
    return mean + var.clamp(min=1e-20).sqrt() * noise
    # END EXERCISE


@torch.no_grad()
def ddpm_sample(
    model,
    shape: tuple[int, ...],
    sched: Schedule,
    generator: torch.Generator | None = None,
    clip_x0: float | None = None,
    record: list[Tensor] | None = None,
    record_every: int = 1,
    device: torch.device | str = "cpu",
) -> Float[Tensor, "batch *shape"]:
    """Start from x_{T-1} ~ N(0, I) and apply ddpm_step for t = T-1, ..., 0.

    `model(x_t, t_batch)` returns the predicted noise. All randomness comes from `generator`
    (a CPU generator keeps CPU and GPU runs comparable). If `record` is a list, x_t is appended to
    it every `record_every` steps (and the final sample at the end) for trajectory plots.
    """
    # EXERCISE: draw x from the generator, loop t downwards calling the model and ddpm_step with fresh noise each step
    x = torch.randn(shape, generator=generator).to(device)
    for t in tqdm(range(sched.n_steps - 1, -1, -1), desc="DDPM sampling", leave=False):
        if record is not None and (sched.n_steps - 1 - t) % record_every == 0:
            record.append(x.cpu())
        t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
        noise = torch.randn(shape, generator=generator).to(device)
        x = ddpm_step(model(x, t_batch), t, x, sched, noise, clip_x0)
    if record is not None:
        record.append(x.cpu())
    return x
    # END EXERCISE


def gaussian_optimal_eps(mean: float, std: float, alpha_bars: Float[Tensor, "T"]):
    """The exact noise predictor for data x0 ~ N(mean, std^2 I): E[eps | x_t].

    With x_t = sqrt(a) x0 + sqrt(1-a) eps, x_t is Gaussian with mean sqrt(a) mean and variance
    a std^2 + 1 - a, and E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mean) / (a std^2 + 1 - a).
    A perfect model of a Gaussian: a sampler fed with it must return samples with that mean and std.
    """

    def eps_fn(x_t: Tensor, t: Tensor) -> Tensor:
        a = _broadcast(alpha_bars.to(x_t.device)[t], x_t)
        return (1 - a).sqrt() * (x_t - a.sqrt() * mean) / (a * std**2 + 1 - a)

    return eps_fn


def to_numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
