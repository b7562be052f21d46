"""A sparse autoencoder (SAE) for finding features in activations (sections 1.3 and 1.4).

Stable API (section 1.4 imports it to recover the toy model's features):

    from curriculum.solutions.chapter1.sae import SAE, SAEConfig, train_sae, l0_norm, fraction_variance_unexplained

    cfg = SAEConfig(d_in=5, d_sae=10, l1_coeff=0.2)          # plain dataclass, defaults that work
    sae = SAE(cfg)
    out = sae(x)                                              # x: [batch, d_in]
    out.loss, out.recon_loss, out.l1_loss                     # scalars (means over the batch)
    out.x_hat                                                 # [batch, d_in] reconstruction
    out.acts                                                  # [batch, d_sae] latent activations (>= 0)
    history = train_sae(sae, data)                            # data: Tensor [n, d_in] or a callable
                                                              #   batch_size -> Tensor [batch_size, d_in]
    history["loss"], history["l0"], history["fvu"], history["frac_dead"], history["n_resampled"]
    sae.W_dec                                                 # [d_sae, d_in], rows are unit-norm feature directions

The architecture is Anthropic's "Towards Monosemanticity" SAE:

    acts  = ReLU((x - b_dec) @ W_enc + b_enc)
    x_hat = acts @ W_dec + b_dec
    loss  = mean_batch( mean_d_in (x_hat - x)^2  +  l1_coeff * sum_d_sae |acts| )

with the decoder's rows kept at unit norm (otherwise the L1 penalty could be dodged by shrinking
`acts` and growing `W_dec`), and latents that stop firing ("dead latents") re-initialised towards
inputs the SAE currently reconstructs badly.

Section 1.4 adds two variants with the same interface, so `train_sae` trains them unchanged:
`TopKSAE` (keep the k largest pre-activations of each input; `cfg.k`) and `JumpReLUSAE` (a learned
threshold per latent and an L0 penalty, trained through straight-through estimators; `cfg.l0_coeff`,
`cfg.threshold_init`, `cfg.bandwidth`), and `compare_saes`, which trains several SAEs and measures L0,
FVU and dead latents on held-out data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm


@dataclass
class SAEConfig:
    d_in: int  # width of the activations the SAE reads (d_model, d_mlp, or the toy model's hidden dims)
    d_sae: int  # number of latents; > d_in is what lets an SAE undo superposition
    l1_coeff: float = 1e-3  # weight of the sparsity penalty; the knob for the L0 vs reconstruction trade-off
    lr: float = 1e-3
    batch_size: int = 1024
    n_steps: int = 2000
    dead_window: int = 200  # a latent that has not fired in this many steps counts as dead
    resample_every: int = 500  # steps between dead-latent resamplings; 0 turns resampling off
    resample_scale: float = 0.2  # new encoder columns get this times the mean norm of the alive ones
    seed: int = 0
    # The variants of section 1.4 (ignored by the plain SAE):
    k: int = 4  # TopKSAE: latents kept per input
    l0_coeff: float = 1e-2  # JumpReLUSAE: weight of the L0 penalty
    threshold_init: float = 0.1  # JumpReLUSAE: every latent's threshold at initialisation
    bandwidth: float = 0.05  # JumpReLUSAE: width of the window in which the threshold gets a gradient

    def __post_init__(self):
        for name in ("d_in", "d_sae", "batch_size", "n_steps", "dead_window"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"SAEConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if self.l1_coeff < 0:
            raise ValueError(f"SAEConfig.l1_coeff must be >= 0, got {self.l1_coeff}")
        if self.resample_every < 0:
            raise ValueError(f"SAEConfig.resample_every must be >= 0 (0 = never), got {self.resample_every}")
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"SAEConfig.k must be a positive int, got {self.k!r}")
        if self.threshold_init <= 0 or self.bandwidth <= 0 or self.l0_coeff < 0:
            raise ValueError("SAEConfig.threshold_init and bandwidth must be > 0 and l0_coeff >= 0")


class SAEOutput(NamedTuple):
    loss: Float[Tensor, ""]  # recon_loss + l1_coeff * l1_loss
    recon_loss: Float[Tensor, ""]  # mean over batch of the per-input MSE
    l1_loss: Float[Tensor, ""]  # mean over batch of the summed |acts|
    x_hat: Float[Tensor, "batch d_in"]
    acts: Float[Tensor, "batch d_sae"]


def sae_loss(
    x: Float[Tensor, "batch d_in"], acts: Float[Tensor, "batch d_sae"], x_hat: Float[Tensor, "batch d_in"], l1_coeff: float
) -> SAEOutput:
    """The SAE's training loss and its two terms, packed with x_hat and acts into an SAEOutput."""
    # EXERCISE: per-input MSE (mean over d_in) and per-input L1 (sum over d_sae), each averaged over the batch
    recon_loss = (x_hat - x).pow(2).mean(-1).mean()
    l1_loss = acts.abs().sum(-1).mean()
    loss = recon_loss + l1_coeff * l1_loss
    return SAEOutput(loss, recon_loss, l1_loss, x_hat, acts)
    # END EXERCISE


class SAE(nn.Module):
    """acts = ReLU((x - b_dec) W_enc + b_enc); x_hat = acts W_dec + b_dec. See the module docstring."""

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        W_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=gen)
        W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        # Tied initialisation: encoder starts as the decoder's transpose, so each latent initially
        # reads the direction it writes.
        self.W_enc = nn.Parameter(W_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    def encode(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        # EXERCISE: subtract b_dec, project with W_enc, add b_enc, then ReLU
        pre = einops.einsum(x - self.b_dec, self.W_enc, "batch d_in, d_in d_sae -> batch d_sae") + self.b_enc
        return F.relu(pre)
        # END EXERCISE

    def decode(self, acts: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_in"]:
        return einops.einsum(acts, self.W_dec, "batch d_sae, d_sae d_in -> batch d_in") + self.b_dec

    def forward(self, x: Float[Tensor, "batch d_in"]) -> SAEOutput:
        if x.ndim != 2 or x.shape[-1] != self.cfg.d_in:
            raise ValueError(f"SAE expects input of shape (batch, {self.cfg.d_in}), got {tuple(x.shape)}")
        acts = self.encode(x)
        return sae_loss(x, acts, self.decode(acts), self.cfg.l1_coeff)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale W_dec's rows to unit norm (call after every optimiser step)."""
        self.W_dec.data /= self.W_dec.data.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the part of W_dec's gradient that would only change its rows' norms (before each step)."""
        if self.W_dec.grad is None:
            return
        W = self.W_dec.data / self.W_dec.data.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        parallel = (self.W_dec.grad * W).sum(-1, keepdim=True) * W
        self.W_dec.grad -= parallel


def l0_norm(acts: Float[Tensor, "batch d_sae"]) -> float:
    """Average number of latents that fire (are > 0) per input."""
    # EXERCISE: count the nonzero latents of each input, then average over the batch
    return (acts > 0).float().sum(-1).mean().item()
    # END EXERCISE


def fraction_variance_unexplained(x: Float[Tensor, "batch d_in"], x_hat: Float[Tensor, "batch d_in"]) -> float:
    """||x - x_hat||^2 / ||x - mean(x)||^2 summed over the batch: 0 is perfect, 1 is no better than the mean."""
    # EXERCISE: residual sum of squares over the total sum of squares around the batch mean
    residual = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0, keepdim=True)).pow(2).sum()
    return (residual / total.clamp_min(1e-12)).item()
    # END EXERCISE


@torch.no_grad()
def resample_dead_latents(
    sae: SAE,
    x: Float[Tensor, "batch d_in"],
    dead: torch.Tensor,
    generator: torch.Generator | None = None,
) -> int:
    """Re-initialise the dead latents (a bool mask over d_sae) towards badly reconstructed inputs.

    For each dead latent, pick an input from `x` with probability proportional to its squared
    reconstruction error; the latent's decoder row becomes that input's unit-normalised error
    direction (x - x_hat) and its encoder column the same direction scaled to `resample_scale` times
    the mean encoder-column norm of the alive latents (or `resample_scale` if none are alive); its
    encoder bias becomes 0. Alive latents are untouched. Returns the number of latents resampled.
    """
    if dead.dtype != torch.bool or dead.shape != (sae.cfg.d_sae,):
        raise ValueError(f"`dead` must be a bool mask of shape ({sae.cfg.d_sae},), got {dead.dtype} {tuple(dead.shape)}")
    n_dead = int(dead.sum())
    if n_dead == 0:
        return 0
    # EXERCISE: sample inputs by squared error, set W_dec rows, W_enc columns and b_enc of the dead latents
    errors = x - sae(x).x_hat
    weights = errors.pow(2).sum(-1)
    if weights.sum() <= 0:  # perfect reconstruction: any input is as good as any other
        weights = torch.ones_like(weights)
    idx = torch.multinomial(weights, n_dead, replacement=True, generator=generator)
    directions = errors[idx] / errors[idx].norm(dim=-1, keepdim=True).clamp_min(1e-8)
    alive = ~dead
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
    sae.W_dec.data[dead] = directions
    sae.W_enc.data[:, dead] = directions.T * enc_norm * sae.cfg.resample_scale
    sae.b_enc.data[dead] = 0.0
    # END EXERCISE
    return n_dead


# Variants (section 1.4). Each is an SAE with a different way of making latents sparse; all return an
# SAEOutput, so train_sae trains them unchanged. `l1_loss` holds whatever sparsity penalty the variant
# uses (the L0 for JumpReLU), or a zero for TopK, which needs none.


class TopKSAE(SAE):
    """Gao et al. (2024): keep the k largest pre-activations of each input (then ReLU), zero the rest.
    Sparsity is fixed at L0 <= k by construction, so the loss is the reconstruction error alone."""

    def __init__(self, cfg: SAEConfig):
        if cfg.k > cfg.d_sae:
            raise ValueError(f"TopKSAE keeps k = {cfg.k} latents but has only d_sae = {cfg.d_sae}")
        super().__init__(cfg)

    def encode(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        # EXERCISE: the usual pre-activations; keep the top k per input (ReLU'd), zeros elsewhere
        pre = einops.einsum(x - self.b_dec, self.W_enc, "batch d_in, d_in d_sae -> batch d_sae") + self.b_enc
        top = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))
        # END EXERCISE

    def forward(self, x: Float[Tensor, "batch d_in"]) -> SAEOutput:
        if x.ndim != 2 or x.shape[-1] != self.cfg.d_in:
            raise ValueError(f"SAE expects input of shape (batch, {self.cfg.d_in}), got {tuple(x.shape)}")
        acts = self.encode(x)
        x_hat = self.decode(acts)
        recon_loss = (x_hat - x).pow(2).mean(-1).mean()
        return SAEOutput(recon_loss, recon_loss, recon_loss.new_zeros(()), x_hat, acts)


def rectangle(u: Tensor) -> Tensor:
    """The kernel of the straight-through estimators: 1 on (-1/2, 1/2), else 0."""
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLUFunction(torch.autograd.Function):
    """JumpReLU_θ(z) = z · H(z - θ). Forward: exact. Backward: dz gets H(z - θ); θ gets the
    pseudo-derivative -(θ / ε) K((z - θ) / ε) (Rajamanoharan et al., 2024), K = rectangle."""

    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        # EXERCISE: the gradients for pre (exact) and threshold (pseudo-derivative, summed over the batch)
        grad_pre = grad_out * (pre > threshold)
        grad_threshold = (-(threshold / eps) * rectangle((pre - threshold) / eps) * grad_out).sum(0)
        # END EXERCISE
        return grad_pre, grad_threshold, None


class StepFunction(torch.autograd.Function):
    """H(z - θ), the indicator that a latent fires. Backward: nothing to z; θ gets the
    pseudo-derivative -(1 / ε) K((z - θ) / ε)."""

    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        # EXERCISE: zero for pre; the pseudo-derivative for threshold, summed over the batch
        grad_threshold = (-(1.0 / eps) * rectangle((pre - threshold) / eps) * grad_out).sum(0)
        return torch.zeros_like(pre), grad_threshold, None
        # END EXERCISE


class JumpReLUSAE(SAE):
    """Rajamanoharan et al. (2024): acts = JumpReLU_θ(pre) with a learned threshold θ per latent
    (stored as log θ, so it stays positive), trained on recon + l0_coeff * L0."""

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), math.log(cfg.threshold_init)))

    def pre_acts(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        return einops.einsum(x - self.b_dec, self.W_enc, "batch d_in, d_in d_sae -> batch d_sae") + self.b_enc

    def encode(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        return JumpReLUFunction.apply(self.pre_acts(x), self.log_threshold.exp(), self.cfg.bandwidth)

    def forward(self, x: Float[Tensor, "batch d_in"]) -> SAEOutput:
        if x.ndim != 2 or x.shape[-1] != self.cfg.d_in:
            raise ValueError(f"SAE expects input of shape (batch, {self.cfg.d_in}), got {tuple(x.shape)}")
        # EXERCISE: encode, decode, recon_loss as in SAE; the L0 through StepFunction; loss = recon + l0_coeff * L0
        pre = self.pre_acts(x)
        threshold = self.log_threshold.exp()
        acts = JumpReLUFunction.apply(pre, threshold, self.cfg.bandwidth)
        x_hat = self.decode(acts)
        recon_loss = (x_hat - x).pow(2).mean(-1).mean()
        l0 = StepFunction.apply(pre, threshold, self.cfg.bandwidth).sum(-1).mean()
        return SAEOutput(recon_loss + self.cfg.l0_coeff * l0, recon_loss, l0, x_hat, acts)
        # END EXERCISE


def _tensor_sampler(pool: Tensor, d_in: int, seed: int) -> Callable[[int], Tensor]:
    """Batches drawn with replacement from a fixed tensor of activations."""
    if pool.ndim != 2 or pool.shape[-1] != d_in:
        raise ValueError(f"data should have shape (n, {d_in}), got {tuple(pool.shape)}")
    gen = torch.Generator(device=pool.device).manual_seed(seed)
    return lambda batch_size: pool[torch.randint(len(pool), (batch_size,), generator=gen, device=pool.device)]


def train_sae(
    sae: SAE,
    data: Float[Tensor, "n d_in"] | Callable[[int], Float[Tensor, "batch d_in"]],
    cfg: SAEConfig | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train `sae` with Adam on batches from `data`; returns per-step metrics.

    `data` is either a tensor of activations (batches are sampled from it with replacement) or a
    function `batch_size -> tensor`, e.g. a toy model generating fresh features each call.
    History keys: loss, recon_loss, l1_loss, l0, fvu (fraction of variance unexplained), frac_dead,
    and n_resampled (how many latents each resampling touched; one entry per resampling).
    """
    cfg = cfg or sae.cfg
    sample = _tensor_sampler(data, sae.cfg.d_in, cfg.seed) if isinstance(data, Tensor) else data
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    steps_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=sae.W_dec.device)
    history: dict[str, list[float]] = {k: [] for k in ("loss", "recon_loss", "l1_loss", "l0", "fvu", "frac_dead", "n_resampled")}
    bar = tqdm(range(cfg.n_steps), desc="training SAE", disable=not progress)
    for step in bar:
        x = sample(cfg.batch_size)
        out = sae(x)
        optimizer.zero_grad()
        out.loss.backward()
        sae.remove_parallel_grad()
        optimizer.step()
        sae.normalize_decoder()

        fired = (out.acts > 0).any(0)
        steps_since_fired = torch.where(fired, 0, steps_since_fired + 1)
        dead = steps_since_fired >= cfg.dead_window
        if cfg.resample_every and (step + 1) % cfg.resample_every == 0 and step + 1 < cfg.n_steps:
            n = resample_dead_latents(sae, x, dead)
            history["n_resampled"].append(n)
            if n:
                # Adam's running moments for the resampled latents belong to their old directions.
                for p in (sae.W_enc, sae.W_dec, sae.b_enc):
                    state = optimizer.state.get(p, {})
                    for key in ("exp_avg", "exp_avg_sq"):
                        if key in state:
                            if p is sae.W_enc:
                                state[key][:, dead] = 0.0
                            else:
                                state[key][dead] = 0.0
                steps_since_fired[dead] = 0

        history["loss"].append(out.loss.item())
        history["recon_loss"].append(out.recon_loss.item())
        history["l1_loss"].append(out.l1_loss.item())
        history["l0"].append(l0_norm(out.acts))
        history["fvu"].append(fraction_variance_unexplained(x, out.x_hat.detach()))
        history["frac_dead"].append(dead.float().mean().item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{out.loss.item():.4f}", l0=f"{history['l0'][-1]:.1f}", dead=f"{history['frac_dead'][-1]:.2f}")
    return history


def compare_saes(
    variants: dict[str, SAE],
    train_data: Float[Tensor, "n d_in"] | Callable[[int], Float[Tensor, "batch d_in"]],
    eval_x: Float[Tensor, "n_eval d_in"],
) -> dict[str, dict[str, float]]:
    """Train each SAE of `variants` (in place, with its own config) on `train_data`, then measure it on
    the held-out `eval_x`: {name: {"l0": ..., "fvu": ..., "frac_dead": ...}}, frac_dead being the fraction
    of latents that fire on no input of eval_x."""
    results = {}
    # EXERCISE: for each variant, train_sae; then, without gradients, L0, FVU and dead fraction on eval_x
    for name, sae in variants.items():
        train_sae(sae, train_data, progress=False)
        with torch.no_grad():
            out = sae(eval_x)
        results[name] = {
            "l0": l0_norm(out.acts),
            "fvu": fraction_variance_unexplained(eval_x, out.x_hat),
            "frac_dead": (out.acts > 0).any(0).logical_not().float().mean().item(),
        }
    # END EXERCISE
    return results
