"""4.3 (part 2) Guidance: steering a diffusion model towards a class or a caption.

All three methods change only the noise prediction fed to the sampler. Since eps relates to the
score by grad_x log p_t(x) = -eps / sqrt(1 - alpha_bar_t), adding grad_x log p(y | x_t) to the
score means subtracting sqrt(1 - alpha_bar_t) * grad from eps:

- classifier guidance: the gradient of a classifier trained on *noisy* images x_t;
- classifier-free guidance: no classifier; extrapolate from the unconditional prediction towards
  the conditional one of a model trained with caption dropout (text_conditioning.py);
- CLIP guidance: the gradient of CLIP similarity between the predicted clean image and a caption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from scipy import linalg
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter4.clip import CLIP
from curriculum.solutions.chapter4.ddpm import Downsample, ResBlock
from curriculum.solutions.chapter4.toy_diffusion import (
    _broadcast,
    add_noise,
    sinusoidal_embedding,
)


# ---------------------------------------------------------------------------------------------
# A classifier that reads noisy images: p(y | x_t, t)
# ---------------------------------------------------------------------------------------------
class NoisyClassifier(nn.Module):
    """The U-Net's encoder half (ResBlocks with the time embedding, downsampling), pooled, then a linear head.

    Trained on clean images only (t = 0) it is also the "judge" that scores samples in the benchmark.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, base: int = 32, n_groups: int = 8):
        super().__init__()
        self.base, d_emb = base, 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(base, d_emb), nn.SiLU(), nn.Linear(d_emb, d_emb))
        self.conv_in = nn.Conv2d(in_channels, base, 3, padding=1)
        self.res1 = ResBlock(base, base, d_emb, n_groups)
        self.down1 = Downsample(base)
        self.res2 = ResBlock(base, 2 * base, d_emb, n_groups)
        self.down2 = Downsample(2 * base)
        self.res3 = ResBlock(2 * base, 2 * base, d_emb, n_groups)
        self.norm = nn.GroupNorm(n_groups, 2 * base)
        self.head = nn.Linear(2 * base, n_classes)

    def features(self, x: Float[Tensor, "b c h w"], t: Int[Tensor, "b"]) -> Float[Tensor, "b d"]:
        emb = self.time_mlp(sinusoidal_embedding(t, self.base))
        h = self.down1(self.res1(self.conv_in(x), emb))
        h = self.res3(self.down2(self.res2(h, emb)), emb)
        return F.silu(self.norm(h)).mean(dim=(-2, -1))

    def forward(self, x: Float[Tensor, "b c h w"], t: Int[Tensor, "b"]) -> Float[Tensor, "b n_classes"]:
        return self.head(self.features(x, t))


def train_classifier(
    clf: NoisyClassifier,
    images: Float[Tensor, "n c h w"],
    labels: Int[Tensor, "n"],
    alpha_bars: Float[Tensor, "T"] | None,
    n_steps: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Cross-entropy on x_t = add_noise(x0, eps, t) with t uniform; alpha_bars=None trains on clean images (t = 0)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    losses = []
    clf.train()
    for _ in tqdm(range(n_steps), desc="training classifier"):
        idx = torch.randint(len(images), (batch_size,))
        x0 = images[idx]
        if alpha_bars is None:
            t = torch.zeros(batch_size, dtype=torch.long)
            x = x0
        else:
            t = torch.randint(len(alpha_bars), (batch_size,))
            x = add_noise(x0, torch.randn_like(x0), t, alpha_bars)
        loss = F.cross_entropy(clf(x, t), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    clf.eval()
    return losses


# ---------------------------------------------------------------------------------------------
# The three guided noise predictions
# ---------------------------------------------------------------------------------------------
def classifier_guided_eps(
    eps_model,
    classifier: nn.Module,
    x_t: Float[Tensor, "b c h w"],
    t: Int[Tensor, "b"],
    y: Int[Tensor, "b"],
    scale: float,
    alpha_bars: Float[Tensor, "T"],
) -> Float[Tensor, "b c h w"]:
    """Dhariwal & Nichol's classifier guidance:  eps - scale * sqrt(1 - alpha_bar_t) * grad_{x_t} log p(y | x_t, t).

    log p(y | x_t, t) is the log-softmax of classifier(x_t, t) at each example's label y; sum over
    the batch before differentiating (examples don't interact, so each gets its own gradient).
    Works under torch.no_grad() (samplers run there): enable grad locally.
    """
    # EXERCISE: the model's eps without grad; with grad enabled, the gradient of the summed log-probabilities of y w.r.t. a detached copy of x_t; combine
    with torch.no_grad():
        eps = eps_model(x_t, t)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        log_probs = classifier(x, t).log_softmax(dim=-1)
        selected = log_probs[torch.arange(len(y)), y].sum()
        (grad,) = torch.autograd.grad(selected, x)
    a_bar = _broadcast(alpha_bars.to(x_t.device)[t], x_t)
    return eps - scale * (1 - a_bar).sqrt() * grad
    # END EXERCISE


def cfg_eps(
    model: nn.Module,
    x_t: Float[Tensor, "b c h w"],
    t: Int[Tensor, "b"],
    ids: Int[Tensor, "b seq"],
    null_ids: Int[Tensor, "b seq"],
    scale: float,
) -> Float[Tensor, "b c h w"]:
    """Classifier-free guidance (Ho & Salimans):  eps_uncond + scale * (eps_cond - eps_uncond),

    eps_cond = model(x_t, t, ids) with the captions, eps_uncond = model(x_t, t, null_ids) with the
    empty caption (tokenized, one row per example). scale = 1 is the plain conditional model,
    scale = 0 the unconditional one, scale > 1 over-emphasises the caption.
    Run both in ONE forward pass on a doubled batch (half the kernel launches).
    """
    # EXERCISE: concatenate the batch with itself, captions then empty captions; one forward; split; extrapolate
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([ids, null_ids]))
    eps_cond, eps_uncond = both.chunk(2)
    return eps_uncond + scale * (eps_cond - eps_uncond)
    # END EXERCISE


def clip_guided_eps(
    eps_model,
    clip: CLIP,
    text_emb: Float[Tensor, "b d"],
    x_t: Float[Tensor, "b c h w"],
    t: Int[Tensor, "b"],
    scale: float,
    alpha_bars: Float[Tensor, "T"],
) -> Float[Tensor, "b c h w"]:
    """CLIP guidance on the predicted clean image (our CLIP never saw noisy images):

        x0_hat = (x_t - sqrt(1 - a) eps) / sqrt(a),   s = sum_i cos(clip.encode_image(x0_hat)_i, text_emb_i)
        return eps - scale * sqrt(1 - a) * grad_{x_t} s          (a = alpha_bar_t; the gradient flows through eps too)
    """
    # EXERCISE: with grad enabled on a detached x_t, predict eps and x0_hat, score x0_hat against the text with cosine similarity, take the gradient w.r.t. x_t; return the detached eps shifted by it
    a_bar = _broadcast(alpha_bars.to(x_t.device)[t], x_t)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        eps = eps_model(x, t)
        x0_hat = (x - (1 - a_bar).sqrt() * eps) / a_bar.sqrt()
        sim = F.cosine_similarity(clip.encode_image(x0_hat), text_emb, dim=-1).sum()
        (grad,) = torch.autograd.grad(sim, x)
    return eps.detach() - scale * (1 - a_bar).sqrt() * grad
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# Measuring samples with a classifier trained on real data
# ---------------------------------------------------------------------------------------------
@dataclass
class SampleQuality:
    accuracy: float | None  # fraction classified as the intended class (None for unconditional samples)
    frechet: float  # Fréchet distance between judge features of samples and of real images


@torch.no_grad()
def judge_features(judge: NoisyClassifier, images: Tensor, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    feats, preds = [], []
    for chunk in images.split(batch_size):
        f = judge.features(chunk, torch.zeros(len(chunk), dtype=torch.long, device=chunk.device))
        feats.append(f.cpu())
        preds.append(judge.head(f).argmax(-1).cpu())
    return torch.cat(feats), torch.cat(preds)


def frechet_distance(a: Float[Tensor, "n d"], b: Float[Tensor, "m d"]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)): FID's formula, on our judge's features."""
    a, b = a.double().numpy(), b.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def sample_quality(judge: NoisyClassifier, samples: Tensor, real: Tensor, targets: Tensor | None = None) -> SampleQuality:
    f_s, pred = judge_features(judge, samples)
    f_r, _ = judge_features(judge, real)
    acc = None if targets is None else (pred == targets.cpu()).float().mean().item()
    return SampleQuality(acc, frechet_distance(f_s, f_r))
