"""Mutants for the 4.2 checks, and properties of the reference samplers and U-Net."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from curriculum.solutions.chapter4 import ddpm as sol
from curriculum.solutions.chapter4.toy_diffusion import Schedule, ddpm_sample, gaussian_optimal_eps, linear_betas
from curriculum.checks.chapter4 import ddpm as checks
from tests.support import assert_check_fails


# --- ResBlock ----------------------------------------------------------------------------------
class ResTimeLate(sol.ResBlock):
    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h + self.time_proj(F.silu(emb))[:, :, None, None]


class ResNoTime(sol.ResBlock):
    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ResActBeforeNorm(sol.ResBlock):
    def forward(self, x, emb):
        h = self.conv1(self.norm1(F.silu(x)))
        h = h + self.time_proj(F.silu(emb))[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ResRenamed(sol.ResBlock):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.emb_proj = self.time_proj
        del self.time_proj

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))) + self.emb_proj(F.silu(emb))[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


def test_res_block_mutants():
    for bug in [ResTimeLate, ResNoTime, ResActBeforeNorm, ResRenamed]:
        assert_check_fails(checks.check_res_block, bug)


# --- AttentionBlock ----------------------------------------------------------------------------
def _attention(scale=True, softmax_dim=-1, residual=True, head_split="qkv_first"):
    class Attn(sol.AttentionBlock):
        def forward(self, x):
            b, c, h, w = x.shape
            pattern = "b (qkv heads d) h w -> qkv b heads (h w) d" if head_split == "qkv_first" else "b (heads qkv d) h w -> qkv b heads (h w) d"
            import einops

            q, k, v = einops.rearrange(self.qkv(self.norm(x)), pattern, qkv=3, heads=self.n_heads)
            scores = q @ k.transpose(-1, -2)
            if scale:
                scores = scores / q.shape[-1] ** 0.5
            out = einops.rearrange(scores.softmax(dim=softmax_dim) @ v, "b heads (h w) d -> b (heads d) h w", h=h)
            return x + self.proj(out) if residual else self.proj(out)

    return Attn


def test_attention_block_mutants():
    checks.check_attention_block(_attention())
    for bug in [_attention(scale=False), _attention(softmax_dim=-2), _attention(residual=False), _attention(head_split="heads_first")]:
        assert_check_fails(checks.check_attention_block, bug)


# --- UNet --------------------------------------------------------------------------------------
def _unet(skip_order="h_first", skip_after_resample=False):
    class Bug(sol.UNet):
        def forward(self, x, t, y=None):
            emb = self.embed(t, y)
            h = self.conv_in(x)
            skips = []
            for level in self.down:
                h = level["attn"](level["res"](h, emb))
                if not skip_after_resample:
                    skips.append(h)
                h = level["resample"](h)
                if skip_after_resample:
                    skips.append(h)
            h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)
            for level in self.up:
                s = skips.pop()
                h = torch.cat([h, s] if skip_order == "h_first" else [s, h], dim=1)
                h = level["resample"](level["attn"](level["res"](h, emb)))
            return self.conv_out(F.silu(self.norm_out(h)))

    return Bug


def test_unet_mutants():
    checks.check_unet(_unet())
    assert_check_fails(checks.check_unet, _unet(skip_order="skip_first"))
    assert_check_fails(checks.check_unet, _unet(skip_after_resample=True))


def test_unet_rejects_bad_config():
    with pytest.raises(ValueError, match="divisible"):
        sol.UNetConfig(image_size=28, channel_mults=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="n_groups"):
        sol.UNetConfig(base_channels=12, n_groups=8)


# --- EMA ---------------------------------------------------------------------------------------
class EMASwapped(sol.EMA):
    @torch.no_grad()
    def update(self, model):
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p, self.decay)


class EMAShared(sol.EMA):
    def __init__(self, model, decay=0.999):
        self.decay, self.model = decay, model


class EMAFromScratch(sol.EMA):
    """Averages with the *initial* weights every time instead of the running average."""

    def __init__(self, model, decay=0.999):
        super().__init__(model, decay)
        self.initial = copy.deepcopy(self.model)

    @torch.no_grad()
    def update(self, model):
        for p_ema, p0, p in zip(self.model.parameters(), self.initial.parameters(), model.parameters()):
            p_ema.copy_(self.decay * p0 + (1 - self.decay) * p)


def test_ema_mutants():
    for bug in [EMASwapped, EMAShared, EMAFromScratch]:
        assert_check_fails(checks.check_ema, bug)


def test_ema_rejects_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        sol.EMA(torch.nn.Linear(2, 2), decay=1.5)


# --- DDIM --------------------------------------------------------------------------------------
def test_ddim_timesteps_mutants():
    assert_check_fails(checks.check_ddim_timesteps, lambda T, n: torch.arange(n, 0, -1) * (T // n))  # off by one
    assert_check_fails(checks.check_ddim_timesteps, lambda T, n: torch.arange(n) * (T // n))  # ascending
    assert_check_fails(checks.check_ddim_timesteps, lambda T, n: torch.linspace(T - 1, 0, n).round().long())  # "linspace" spacing


def _ddim(wrap_index=False, sigma_sqrt=True, noise_always=False, alpha_not_bar=False, recompute_eps=True):
    def step(eps, t, t_prev, x_t, ab, eta=0.0, noise=None, clip_x0=None):
        if alpha_not_bar:
            ab = torch.cat([ab[:1], ab[1:] / ab[:-1]])
        a_t = ab[t]
        a_prev = ab[t_prev] if (t_prev >= 0 or wrap_index) else torch.tensor(1.0)
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            if recompute_eps:
                eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        ratio = (1 - a_t / a_prev)
        sigma = eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (ratio.sqrt() if sigma_sqrt else ratio)
        out = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).sqrt() * eps
        if noise is not None and (eta > 0 or noise_always):
            out = out + sigma * noise
        return out

    return step


def test_ddim_step_mutants():
    checks.check_ddim_step(_ddim())
    for bug in [_ddim(wrap_index=True), _ddim(sigma_sqrt=False), _ddim(alpha_not_bar=True), _ddim(recompute_eps=False)]:
        assert_check_fails(checks.check_ddim_step, bug)


def test_ddim_sample_matches_diffusers_loop():
    """eta = 0 is deterministic: from the same x_T our sampler and diffusers' loop agree."""
    ref = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    ref.set_timesteps(20)
    model = gaussian_optimal_eps(1.5, 0.5, ref.alphas_cumprod)
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    for t in ref.timesteps:
        x = ref.step(model(x, torch.full((256,), int(t))), int(t), x, eta=0.0).prev_sample
    got = sol.ddim_sample(model, (256, 2), ref.alphas_cumprod, 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, x, atol=1e-4, rtol=1e-4)
    # ... and the deterministic ODE roughly recovers the Gaussian (20 steps slightly under-disperse it).
    assert abs(got.mean() - 1.5) < 0.05 and abs(got.std() - 0.5) < 0.1


@pytest.mark.parametrize("clip_x0", [None, 1.0])
def test_ddim_with_eta_one_and_every_step_is_ddpm(clip_x0):
    """Also with clamping: DDPM's posterior mean uses the clamped x0_hat, so DDIM must recompute eps from it."""
    sched = Schedule(linear_betas(100, 1e-3, 0.2))
    model = gaussian_optimal_eps(0.0, 1.0, sched.alpha_bars)  # x0 ~ N(0, 1): x0_hat often leaves [-1, 1]
    a = ddpm_sample(model, (64, 2), sched, generator=torch.Generator().manual_seed(3), clip_x0=clip_x0)
    b = sol.ddim_sample(model, (64, 2), sched.alpha_bars, 100, eta=1.0, generator=torch.Generator().manual_seed(3), clip_x0=clip_x0)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_ddim_step_requires_noise_when_stochastic():
    with pytest.raises(ValueError, match="noise"):
        sol.ddim_step(torch.zeros(1), 10, 5, torch.zeros(1), torch.linspace(0.99, 0.1, 20), eta=0.5)


def test_unet_overfits_one_batch():
    """A few Adam steps on a fixed batch and fixed noise drive the loss down: gradients reach every level."""
    torch.manual_seed(0)
    cfg = sol.UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=(4,), n_heads=1, dropout=0.0)
    model = sol.UNet(cfg)
    sched = Schedule(linear_betas(1000))
    x0, noise, t = torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8), torch.randint(0, 1000, (8,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    from curriculum.solutions.chapter4.toy_diffusion import diffusion_loss

    first = None
    for _ in range(40):
        loss = diffusion_loss(model, x0, sched.alpha_bars, t=t, noise=noise)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
