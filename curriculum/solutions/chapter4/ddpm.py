"""4.2 A U-Net denoiser for images, EMA, DDPM and DDIM sampling.

The schedule, `add_noise`, `diffusion_loss`, `ddpm_step` and `ddpm_sample` come from 4.1 unchanged:
only the denoiser grows from an MLP on points to a U-Net on images. Then DDIM: the same trained
model, sampled deterministically (eta = 0) with a few dozen steps instead of a thousand.

The section samples from a small U-Net trained on the offline 16x16 digits, shipped as
data/chapter4/ddpm_digits16.safetensors (`load_checkpoint()`). Rebuild it (about 12 minutes on a
shared 2-core CPU, with one torch thread) with

    python -m curriculum.solutions.chapter4.ddpm --build-checkpoint
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter4.toy_diffusion import Schedule, diffusion_loss, sinusoidal_embedding


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """Pre-activation residual block with the timestep injected between its two convolutions.

        h = conv1(SiLU(norm1(x)))
        h = h + time_proj(SiLU(emb))          (one bias per channel, broadcast over H, W)
        h = conv2(dropout(SiLU(norm2(h))))
        return skip(x) + h                    (skip: 1x1 conv if the channel count changes, else identity)

    Submodule names matter (the check loads weights by name): norm1, conv1, time_proj, norm2, conv2, skip.
    """

    def __init__(self, in_ch: int, out_ch: int, d_emb: int, n_groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(n_groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_proj = nn.Linear(d_emb, out_ch)
        self.norm2 = nn.GroupNorm(n_groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Float[Tensor, "b c_in h w"], emb: Float[Tensor, "b d_emb"]) -> Float[Tensor, "b c_out h w"]:
        # EXERCISE: norm -> SiLU -> conv, add the projected embedding per channel, norm -> SiLU -> dropout -> conv, add the skip
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h
        # END EXERCISE


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, with a residual connection.

    norm (GroupNorm) -> qkv (1x1 conv to 3*C channels, split into q, k, v in that order, then into
    heads of C // n_heads channels) -> softmax(q k^T / sqrt(d_head)) v -> proj (1x1 conv) -> + x.
    Used only at low resolution: its cost grows with (H*W)^2.
    """

    def __init__(self, ch: int, n_heads: int = 1, n_groups: int = 8):
        super().__init__()
        if ch % n_heads:
            raise ValueError(f"channels {ch} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.norm = nn.GroupNorm(n_groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c h w"]:
        # EXERCISE: compute q, k, v from the normalised input, attend across the h*w positions per head, project, add x
        b, c, h, w = x.shape
        q, k, v = einops.rearrange(
            self.qkv(self.norm(x)), "b (qkv heads d) h w -> qkv b heads (h w) d", qkv=3, heads=self.n_heads
        )
        scores = einops.einsum(q, k, "b heads i d, b heads j d -> b heads i j") / q.shape[-1] ** 0.5
        out = einops.einsum(scores.softmax(dim=-1), v, "b heads i j, b heads j d -> b heads i d")
        out = einops.rearrange(out, "b heads (h w) d -> b (heads d) h w", h=h, w=w)
        return x + self.proj(out)
        # END EXERCISE


class Downsample(nn.Module):
    """Halve H and W with a learned 3x3 convolution of stride 2 (padding 1), keeping the channel count.

    Submodule name: conv. An odd size rounds up: (h + 1) // 2.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c h/2 w/2"]:
        # EXERCISE: one strided convolution
        return self.conv(x)
        # END EXERCISE


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour x2, then a 3x3 convolution (padding 1) that smooths the blocks.

    Submodule name: conv. Nearest-then-conv avoids the checkerboard artefacts of a stride-2 transposed conv.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Float[Tensor, "b c h w"]) -> Float[Tensor, "b c 2h 2w"]:
        # EXERCISE: repeat every pixel 2x2 (F.interpolate, nearest), then convolve
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        # END EXERCISE


# ---------------------------------------------------------------------------------------------
# The U-Net
# ---------------------------------------------------------------------------------------------
@dataclass
class UNetConfig:
    image_size: int = 16
    in_channels: int = 1
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    attn_resolutions: tuple[int, ...] = (8, 4)  # feature-map sizes that get self-attention
    n_heads: int = 4
    n_groups: int = 8
    dropout: float = 0.1
    num_classes: int | None = None  # set for class-conditional models (4.3); label num_classes = "no label"

    def __post_init__(self):
        factor = 2 ** (len(self.channel_mults) - 1)
        if self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**(levels-1) = {factor}: "
                "resize or pad the images, or use fewer channel_mults"
            )
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.n_groups:
                raise ValueError(f"base_channels * {mult} must be divisible by n_groups = {self.n_groups}")


def unet_levels(cfg: UNetConfig) -> list[tuple[int, int, int, bool]]:
    """The encoder's plan, one (resolution, in_channels, out_channels, attention) per level.

    Level i works at image_size / 2**i (the input convolution keeps the size, each level but the
    last halves it afterwards), has base_channels * channel_mults[i] output channels, takes the
    previous level's output channels (base_channels for level 0, after conv_in), and gets
    self-attention iff its resolution is in attn_resolutions. The decoder mirrors this plan.
    """
    # EXERCISE: walk the levels, tracking the resolution and the channel count that flows in
    plan, ch = [], cfg.base_channels
    for i, mult in enumerate(cfg.channel_mults):
        res, out_ch = cfg.image_size // 2**i, cfg.base_channels * mult
        plan.append((res, ch, out_ch, res in cfg.attn_resolutions))
        ch = out_ch
    return plan
    # END EXERCISE


class DownBlock(nn.Module):
    """One encoder level: ResBlock -> attention (or Identity) -> [remember as the skip] -> Downsample (or Identity).

    forward returns (output for the next level, skip for the decoder). Submodule names: res, attn, resample.
    """

    def __init__(self, in_ch: int, out_ch: int, d_emb: int, attn: bool = False, downsample: bool = True,
                 n_heads: int = 1, n_groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, d_emb, n_groups, dropout)
        self.attn = AttentionBlock(out_ch, n_heads, n_groups) if attn else nn.Identity()
        self.resample = Downsample(out_ch) if downsample else nn.Identity()

    def forward(self, h: Float[Tensor, "b c_in h w"], emb: Float[Tensor, "b d_emb"]):
        # EXERCISE: residual block, attention, keep the full-resolution result as the skip, then downsample
        skip = self.attn(self.res(h, emb))
        return self.resample(skip), skip
        # END EXERCISE


class UpBlock(nn.Module):
    """One decoder level: concatenate the skip on the channel axis -> ResBlock -> attention (or Identity)
    -> Upsample (or Identity). Submodule names: res, attn, resample.
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, d_emb: int, attn: bool = False, upsample: bool = True,
                 n_heads: int = 1, n_groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.res = ResBlock(in_ch + skip_ch, out_ch, d_emb, n_groups, dropout)
        self.attn = AttentionBlock(out_ch, n_heads, n_groups) if attn else nn.Identity()
        self.resample = Upsample(out_ch) if upsample else nn.Identity()

    def forward(self, h: Float[Tensor, "b c_in h w"], skip: Float[Tensor, "b c_skip h w"], emb: Float[Tensor, "b d_emb"]):
        # EXERCISE: join h and the skip (h first), then residual block, attention, upsample
        h = torch.cat([h, skip], dim=1)
        return self.resample(self.attn(self.res(h, emb)))
        # END EXERCISE


class UNet(nn.Module):
    """eps_theta(x_t, t[, y]): conv_in, the encoder levels (DownBlocks), a middle block with attention
    at the lowest resolution, the decoder levels (UpBlocks, each joined by the skip of the encoder level
    at its resolution), then GroupNorm -> SiLU -> conv_out.
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        base, d_emb = cfg.base_channels, 4 * cfg.base_channels
        plan = unet_levels(cfg)
        n_levels = len(plan)
        block = {"n_heads": cfg.n_heads, "n_groups": cfg.n_groups, "dropout": cfg.dropout}

        self.time_mlp = nn.Sequential(nn.Linear(base, d_emb), nn.SiLU(), nn.Linear(d_emb, d_emb))
        # One extra row: the "no label" class used for classifier-free guidance.
        self.class_emb = nn.Embedding(cfg.num_classes + 1, d_emb) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(cfg.in_channels, base, 3, padding=1)
        self.down = nn.ModuleList(
            DownBlock(in_ch, out_ch, d_emb, attn, downsample=i < n_levels - 1, **block)
            for i, (_, in_ch, out_ch, attn) in enumerate(plan)
        )
        ch = plan[-1][2]
        self.mid_res1 = ResBlock(ch, ch, d_emb, cfg.n_groups, cfg.dropout)
        self.mid_attn = AttentionBlock(ch, cfg.n_heads, cfg.n_groups)
        self.mid_res2 = ResBlock(ch, ch, d_emb, cfg.n_groups, cfg.dropout)
        self.up = nn.ModuleList()
        for i in reversed(range(n_levels)):
            _, _, skip_ch, attn = plan[i]
            self.up.append(UpBlock(ch, skip_ch, skip_ch, d_emb, attn, upsample=i > 0, **block))
            ch = skip_ch
        self.norm_out = nn.GroupNorm(cfg.n_groups, ch)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)
        # Start as a zero predictor: the loss begins at 1 and early steps don't fight random outputs.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: Int[Tensor, "b"], y: Int[Tensor, "b"] | None) -> Float[Tensor, "b d_emb"]:
        emb = self.time_mlp(sinusoidal_embedding(t, self.cfg.base_channels))
        if self.class_emb is not None:
            if y is None:  # unconditional: every example gets the "no label" embedding
                y = torch.full_like(t, self.cfg.num_classes)
            emb = emb + self.class_emb(y)
        return emb

    def forward(
        self, x: Float[Tensor, "b c h w"], t: Int[Tensor, "b"], y: Int[Tensor, "b"] | None = None
    ) -> Float[Tensor, "b c h w"]:
        emb = self.embed(t, y)
        # EXERCISE: conv_in; the down blocks (stack their skips); mid (res, attn, res); the up blocks (pop the skips); norm_out -> SiLU -> conv_out
        h = self.conv_in(x)
        skips = []
        for level in self.down:
            h, skip = level(h, emb)
            skips.append(skip)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)
        for level in self.up:
            h = level(h, skips.pop(), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
        # END EXERCISE


# ---------------------------------------------------------------------------------------------
# Exponential moving average of the weights
# ---------------------------------------------------------------------------------------------
class EMA:
    """A frozen copy of a model whose weights trail the trained ones: w_ema <- decay * w_ema + (1 - decay) * w.

    Diffusion samples from the EMA weights are markedly better than from the raw weights, which
    jitter with every minibatch. Buffers (none in our U-Net, but e.g. BatchNorm statistics) are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}: 0.999 is typical")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # EXERCISE: move every EMA parameter towards the live parameter by (1 - decay); copy buffers
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p, 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        # END EXERCISE


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    n_steps: int = 20_000
    batch_size: int = 128
    lr: float = 2e-4
    ema_decay: float = 0.999
    p_uncond: float = 0.0  # label dropout for classifier-free guidance (4.3); 0 = ignore labels
    seed: int = 0
    device: str = "cpu"


def train_unet(
    model: UNet,
    images: Float[Tensor, "n c h w"],
    sched: Schedule,
    cfg: TrainConfig,
    labels: Int[Tensor, "n"] | None = None,
) -> tuple[EMA, list[float]]:
    """Adam on the epsilon loss, gradient clipping at norm 1, an EMA updated after every step.

    With labels and a class-conditional model, each label is replaced by the "no label" class with
    probability p_uncond, so one network learns both eps(x_t, t, y) and eps(x_t, t).
    Returns the EMA (sample from ema.model) and the loss curve.
    """
    torch.manual_seed(cfg.seed)
    model.to(cfg.device).train()
    ema = EMA(model, cfg.ema_decay)
    losses = []
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    alpha_bars = sched.alpha_bars.to(cfg.device)
    for _ in tqdm(range(cfg.n_steps), desc="training U-Net"):
        idx = torch.randint(len(images), (cfg.batch_size,))
        x0 = images[idx].to(cfg.device)
        kwargs = {}
        if labels is not None and model.cfg.num_classes:
            y = labels[idx].to(cfg.device)
            drop = torch.rand(len(y), device=cfg.device) < cfg.p_uncond
            kwargs["y"] = y.masked_fill(drop, model.cfg.num_classes)
        loss = diffusion_loss(model, x0, alpha_bars, **kwargs)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        losses.append(loss.item())
    model.eval()
    return ema, losses


# ---------------------------------------------------------------------------------------------
# DDIM: deterministic, few-step sampling from the same model
# ---------------------------------------------------------------------------------------------
def ddim_timesteps(n_train_steps: int, n_sample_steps: int) -> Int[Tensor, "n_sample_steps"]:
    """The timesteps DDIM visits, descending, evenly spaced from 0 (diffusers' "leading" spacing):

        ratio = n_train_steps // n_sample_steps;   [ (n_sample_steps - 1) * ratio, ..., 2 * ratio, ratio, 0 ]
    """
    if not 1 <= n_sample_steps <= n_train_steps:
        raise ValueError(f"n_sample_steps must be in [1, {n_train_steps}], got {n_sample_steps}")
    # EXERCISE: multiples of the step ratio, from the largest below n_train_steps down to 0 (int64)
    ratio = n_train_steps // n_sample_steps
    return torch.arange(n_sample_steps - 1, -1, -1, dtype=torch.long) * ratio
    # END EXERCISE


def ddim_sigma(a_t: Float[Tensor, ""], a_prev: Float[Tensor, ""], eta: float) -> Float[Tensor, ""]:
    """The standard deviation of the fresh noise in a DDIM step from level a_t to the less noisy a_prev
    (a = alpha_bar):  sigma = eta * sigma_DDPM, where sigma_DDPM^2 is the variance of q(x_prev | x_t, x_0),
    the one choice for which the family's forward process is DDPM's Markovian one.
    eta = 0: deterministic; eta = 1: DDPM's posterior noise (for any gap between t and t_prev).
    """
    # EXERCISE: eta times the posterior standard deviation, written with the two alpha_bars only
    return eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()
    # END EXERCISE


def ddim_step(
    eps: Float[Tensor, "batch *shape"],
    t: int,
    t_prev: int,
    x_t: Float[Tensor, "batch *shape"],
    alpha_bars: Float[Tensor, "T"],
    eta: float = 0.0,
    noise: Float[Tensor, "batch *shape"] | None = None,
    clip_x0: float | None = None,
) -> Float[Tensor, "batch *shape"]:
    """One DDIM step from timestep t to the earlier t_prev (t_prev < 0 means "to the clean sample", alpha_bar = 1).

    Predict x0_hat from (x_t, eps); clamp it to [-clip_x0, clip_x0] if clip_x0 is set and then
    recompute eps so that x_t = sqrt(a_t) x0_hat + sqrt(1 - a_t) eps still holds (diffusers'
    `use_clipped_model_output=True`); re-noise x0_hat to level a_prev with the kept direction
    sqrt(1 - a_prev - sigma^2) eps plus fresh noise sigma * noise, sigma = ddim_sigma(a_t, a_prev, eta).
    eta = 0 is deterministic; eta = 1 with t_prev = t - 1 is DDPM.
    """
    if eta > 0 and noise is None:
        raise ValueError("eta > 0 adds noise: pass `noise` (e.g. torch.randn_like(x_t))")
    # EXERCISE: look up a_t and a_prev, predict x0 (clamp it and recompute eps if clip_x0), then sigma and the direction pointing to x_t
    a_t = alpha_bars[t]
    a_prev = alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps = (x_t - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()  # the noise consistent with the clamped x0_hat
    sigma = ddim_sigma(a_t, a_prev, eta)
    x_prev = a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).sqrt() * eps
    if eta > 0:
        x_prev = x_prev + sigma * noise
    return x_prev
    # END EXERCISE


@torch.no_grad()
def ddim_sample(
    model,
    shape: tuple[int, ...],
    alpha_bars: Float[Tensor, "T"],
    n_steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip_x0: float | None = None,
    device: torch.device | str = "cpu",
) -> Float[Tensor, "batch *shape"]:
    """x ~ N(0, I), then one ddim_step per timestep of ddim_timesteps(len(alpha_bars), n_steps), each
    to the next visited timestep (t - ratio, below 0 at the last step); `model(x_t, t_batch)` predicts
    the noise, with t_batch a long tensor of shape (batch,).

    All randomness comes from `generator` on the CPU, in this order (a seed then fixes the samples):
    x_T = torch.randn(shape, generator=generator), then, only if eta > 0, one
    torch.randn(shape, generator=generator) per step, drawn after the model call.
    """
    # EXERCISE: draw x_T, then loop over the timesteps: model call, fresh noise if eta > 0, ddim_step
    timesteps = ddim_timesteps(len(alpha_bars), n_steps).tolist()
    ratio = len(alpha_bars) // n_steps
    x = torch.randn(shape, generator=generator).to(device)
    alpha_bars = alpha_bars.to(device)
    for t in tqdm(timesteps, desc=f"DDIM-{n_steps} sampling", leave=False):
        eps = model(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
        noise = torch.randn(shape, generator=generator).to(device) if eta > 0 else None
        x = ddim_step(eps, t, t - ratio, x, alpha_bars, eta, noise, clip_x0)
    return x
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# The shipped checkpoint: a small U-Net trained on the offline 16x16 digits
# ---------------------------------------------------------------------------------------------
CHECKPOINT_PATH = Path(__file__).resolve().parents[3] / "data" / "chapter4" / "ddpm_digits16.safetensors"
CHECKPOINT_UNET = UNetConfig(
    image_size=16, in_channels=1, base_channels=24, channel_mults=(1, 2, 2), attn_resolutions=(8, 4), n_heads=4, dropout=0.0
)
CHECKPOINT_TRAIN = TrainConfig(n_steps=1500, batch_size=64, lr=2e-3, ema_decay=0.995, seed=0)
CHECKPOINT_T = 1000  # linear_betas(1000): the schedule the checkpoint was trained with
CHECKPOINT_SPLIT_SEED = 0  # trained on digits(16).split(n_test=449, seed=0)[0]; the 449 test images stay unseen


def checkpoint_split():
    """The offline 16x16 digits split the checkpoint was trained on: (train, held-out test)."""
    from curriculum.utils.image_data import digits

    ds = digits(16)
    return ds.split(n_test=min(500, len(ds.labels) // 4), seed=CHECKPOINT_SPLIT_SEED)


def build_checkpoint(path: Path = CHECKPOINT_PATH) -> Path:
    """Train CHECKPOINT_UNET on the offline digits with CHECKPOINT_TRAIN and save the EMA weights.

    About 12 minutes on a shared 2-core CPU (one torch thread is faster than two on a busy machine).
    """
    from safetensors.torch import save

    from curriculum.solutions.chapter4.toy_diffusion import linear_betas
    from curriculum.utils.files import atomic_write_bytes

    train, _ = checkpoint_split()
    torch.manual_seed(CHECKPOINT_TRAIN.seed)
    start = time.perf_counter()
    ema, losses = train_unet(UNet(CHECKPOINT_UNET), train.images, Schedule(linear_betas(CHECKPOINT_T)), CHECKPOINT_TRAIN)
    minutes = (time.perf_counter() - start) / 60
    final = sum(losses[-200:]) / 200
    metadata = {
        "unet_config": json.dumps(asdict(CHECKPOINT_UNET)),
        "train_config": json.dumps(asdict(CHECKPOINT_TRAIN)),
        "T": str(CHECKPOINT_T),
        "final_loss": f"{final:.4f}",
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in ema.model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB) after {minutes:.1f} min; final loss {final:.4f}")
    return path


def load_checkpoint(path: Path = CHECKPOINT_PATH) -> UNet:
    """The shipped U-Net (EMA weights), in eval mode on the CPU. Rebuild the file with
    `python -m curriculum.solutions.chapter4.ddpm --build-checkpoint`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: rebuild it with `python -m curriculum.solutions.chapter4.ddpm --build-checkpoint` "
            "(about 12 minutes on 2 CPU cores)"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["unet_config"])
    cfg["channel_mults"], cfg["attn_resolutions"] = tuple(cfg["channel_mults"]), tuple(cfg["attn_resolutions"])
    model = UNet(UNetConfig(**cfg))
    model.load_state_dict(load_file(str(path)))
    return model.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="4.2 reference: rebuild the shipped 16x16-digits U-Net checkpoint")
    p.add_argument("--build-checkpoint", action="store_true", help=f"train and write {CHECKPOINT_PATH.name}")
    args = p.parse_args(argv)
    if args.build_checkpoint:
        torch.set_num_threads(1)
        build_checkpoint()
    else:
        p.print_help()


if __name__ == "__main__":
    main()
