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


class ResNoNorm(sol.ResBlock):
    def forward(self, x, emb):
        h = self.conv1(F.silu(x)) + self.time_proj(F.silu(emb))[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ResTimeNoSiLU(sol.ResBlock):
    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))) + self.time_proj(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ResNoSkip(sol.ResBlock):
    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))) + self.time_proj(F.silu(emb))[:, :, None, None]
        return self.conv2(F.silu(self.norm2(h)))


def test_res_block_mutants():
    assert_check_fails(checks.check_res_block, ResTimeLate, match="without passing through conv2")
    assert_check_fails(checks.check_res_block, ResNoTime, match="does not depend on the time embedding")
    assert_check_fails(checks.check_res_block, ResActBeforeNorm, match="SiLU before GroupNorm")
    assert_check_fails(checks.check_res_block, ResRenamed, match="submodules")
    assert_check_fails(checks.check_res_block, ResNoNorm, match="without norm1")
    assert_check_fails(checks.check_res_block, ResTimeNoSiLU, match="without the SiLU")
    assert_check_fails(checks.check_res_block, ResNoSkip, match="skip")


# --- AttentionBlock ----------------------------------------------------------------------------
def _attention(scale=True, softmax_dim=-1, residual=True, head_split="qkv_first", back="(h w)"):
    class Attn(sol.AttentionBlock):
        def forward(self, x):
            b, c, h, w = x.shape
            pattern = "b (qkv heads d) h w -> qkv b heads (h w) d" if head_split == "qkv_first" else "b (heads qkv d) h w -> qkv b heads (h w) d"
            import einops

            q, k, v = einops.rearrange(self.qkv(self.norm(x)), pattern, qkv=3, heads=self.n_heads)
            scores = q @ k.transpose(-1, -2)
            if scale:
                scores = scores / q.shape[-1] ** 0.5
            out = einops.rearrange(scores.softmax(dim=softmax_dim) @ v, f"b heads {back} d -> b (heads d) h w", h=h)
            return x + self.proj(out) if residual else self.proj(out)

    return Attn


def test_attention_block_mutants():
    checks.check_attention_block(_attention())
    assert_check_fails(checks.check_attention_block, _attention(softmax_dim=-2), match="over the queries")
    for bug in [_attention(scale=False), _attention(residual=False), _attention(head_split="heads_first"), _attention(back="(w h)")]:
        assert_check_fails(checks.check_attention_block, bug, match="output")


class AttnOverChannels(sol.AttentionBlock):
    """Treats the channels as the sequence: not equivariant to shuffling pixels."""

    def forward(self, x):
        import einops

        b, c, h, w = x.shape
        q, k, v = einops.rearrange(self.qkv(self.norm(x)), "b (qkv c) h w -> qkv b c (h w)", qkv=3)
        out = (q @ k.transpose(-1, -2) / (h * w) ** 0.5).softmax(-1) @ v
        return x + self.proj(einops.rearrange(out, "b c (h w) -> b c h w", h=h))


def test_attention_over_channels_fails():
    assert_check_fails(checks.check_attention_block, AttnOverChannels)


# --- Down/Upsample, the level plan, the levels ----------------------------------------------
class DownPool(sol.Downsample):
    def forward(self, x):
        return F.avg_pool2d(x, 2)


class DownNoPad(sol.Downsample):
    def forward(self, x):
        return F.conv2d(x, self.conv.weight, self.conv.bias, stride=2)


class UpBilinear(sol.Upsample):
    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear"))


class UpConvFirst(sol.Upsample):
    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="nearest")


def test_resampling_mutants():
    assert_check_fails(checks.check_downsample, DownPool, match="Downsample output")
    assert_check_fails(checks.check_downsample, DownNoPad, match="padding")
    assert_check_fails(checks.check_upsample, UpBilinear, match="bilinear")
    assert_check_fails(checks.check_upsample, UpConvFirst, match="upsample first")


def test_unet_levels_mutants():
    def halve_every_level(cfg):  # counts the bottom level as halved too
        return [(cfg.image_size // 2 ** (i + 1), r[1], r[2], cfg.image_size // 2 ** (i + 1) in cfg.attn_resolutions)
                for i, r in enumerate(sol.unet_levels(cfg))]

    def in_is_out(cfg):
        return [(r[0], r[2], r[2], r[3]) for r in sol.unet_levels(cfg)]

    def attn_by_index(cfg):
        return [(r[0], r[1], r[2], i in cfg.attn_resolutions) for i, r in enumerate(sol.unet_levels(cfg))]

    assert_check_fails(checks.check_unet_levels, halve_every_level, match="resolution")
    assert_check_fails(checks.check_unet_levels, in_is_out, match="channels in/out")
    assert_check_fails(checks.check_unet_levels, attn_by_index, match="attention")


class DownSkipAfterResample(sol.DownBlock):
    def forward(self, h, emb):
        h = self.resample(self.attn(self.res(h, emb)))
        return h, h


class DownSkipBeforeAttn(sol.DownBlock):
    def forward(self, h, emb):
        skip = self.res(h, emb)
        return self.resample(self.attn(skip)), skip


def test_down_block_mutants():
    assert_check_fails(checks.check_down_block, DownSkipAfterResample, match="before downsampling")
    assert_check_fails(checks.check_down_block, DownSkipBeforeAttn, match="before the attention")


def _up_block(dim=1, order="h_first"):
    class Bug(sol.UpBlock):
        def forward(self, h, skip, emb):
            h = torch.cat([h, skip] if order == "h_first" else [skip, h], dim=dim)
            return self.resample(self.attn(self.res(h, emb)))

    return Bug


def test_up_block_mutants():
    checks.check_up_block(_up_block())
    for dim in [0, 2, 3]:
        assert_check_fails(checks.check_up_block, _up_block(dim=dim), match="channel axis")
    assert_check_fails(checks.check_up_block, _up_block(order="skip_first"), match=r"\[skip, h\]")


# --- UNet --------------------------------------------------------------------------------------
def _unet(skips="stack", no_time=False, no_mid_attn=False):
    class Bug(sol.UNet):
        def forward(self, x, t, y=None):
            emb = self.embed(t, y)
            if no_time:
                emb = self.embed(torch.zeros_like(t), y)
            h = self.conv_in(x)
            stack = []
            for level in self.down:
                h, skip = level(h, emb)
                stack.append(skip)
            h = self.mid_res1(h, emb)
            h = h if no_mid_attn else self.mid_attn(h)
            h = self.mid_res2(h, emb)
            if skips == "queue":  # first in, first out: resolutions no longer match
                stack.reverse()
            for level in self.up:
                h = level(h, stack.pop(), emb)
            return self.conv_out(F.silu(self.norm_out(h)))

    return Bug


def test_unet_mutants():
    checks.check_unet(_unet())
    assert_check_fails(checks.check_unet, _unet(skips="queue"))
    assert_check_fails(checks.check_unet, _unet(no_time=True), match="does not depend on t")
    assert_check_fails(checks.check_unet, _unet(no_mid_attn=True), match="UNet output")


def test_unet_keeps_the_api_4_3_imports():
    """guidance.py (4.3) builds its classifier from ResBlock and Downsample with these signatures."""
    block = sol.ResBlock(8, 16, 32, 4)
    assert block(torch.randn(2, 8, 6, 4), torch.randn(2, 32)).shape == (2, 16, 6, 4)
    assert sol.Downsample(16)(torch.randn(2, 16, 6, 4)).shape == (2, 16, 3, 2)


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
    assert_check_fails(checks.check_ddim_step, _ddim(wrap_index=True), match="alpha_bar_prev = 1")
    assert_check_fails(checks.check_ddim_step, _ddim(recompute_eps=False), match="recompute eps")
    for bug in [_ddim(sigma_sqrt=False), _ddim(alpha_not_bar=True)]:
        assert_check_fails(checks.check_ddim_step, bug)


def test_ddim_sigma_mutants():
    assert_check_fails(checks.check_ddim_sigma, lambda a_t, a_prev, eta: eta * ((1 - a_prev) / (1 - a_t)) * (1 - a_t / a_prev), match="variance")
    assert_check_fails(checks.check_ddim_sigma, lambda a_t, a_prev, eta: eta * ((1 - a_t) / (1 - a_prev)).sqrt() * (1 - a_t / a_prev).sqrt())
    assert_check_fails(checks.check_ddim_sigma, lambda a_t, a_prev, eta: eta * (1 - a_t / a_prev).sqrt())
    assert_check_fails(checks.check_ddim_sigma, lambda a_t, a_prev, eta: eta**2 * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt())


def _ddim_sample(t_prev="ratio", own_noise=False, ascending=False, drop_clip=False):
    @torch.no_grad()
    def sample(model, shape, alpha_bars, n_steps=50, eta=0.0, generator=None, clip_x0=None, device="cpu"):
        ts = sol.ddim_timesteps(len(alpha_bars), n_steps).tolist()
        ratio = len(alpha_bars) // n_steps
        x = torch.randn(shape, generator=generator)
        for t in (ts[::-1] if ascending else ts):
            eps = model(x, torch.full((shape[0],), t, dtype=torch.long))
            noise = None
            if eta > 0:
                noise = torch.randn_like(x) if own_noise else torch.randn(shape, generator=generator)
            x = sol.ddim_step(eps, t, t - (ratio if t_prev == "ratio" else 1), x, alpha_bars, eta, noise, None if drop_clip else clip_x0)
        return x

    return sample


def test_ddim_sample_mutants():
    checks.check_ddim_sample(_ddim_sample())
    assert_check_fails(checks.check_ddim_sample, _ddim_sample(t_prev="one"), match="diffusers")
    assert_check_fails(checks.check_ddim_sample, _ddim_sample(ascending=True), match="descending")
    assert_check_fails(checks.check_ddim_sample, _ddim_sample(own_noise=True), match="generator")
    assert_check_fails(checks.check_ddim_sample, _ddim_sample(drop_clip=True), match="clip_x0")


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


def test_shipped_checkpoint_loads_and_is_small():
    """The sampling cells load it; the samplers' checks never do."""
    assert sol.CHECKPOINT_PATH.stat().st_size <= 5_000_000
    net = sol.load_checkpoint()
    assert net.cfg == sol.CHECKPOINT_UNET
    with torch.no_grad():
        eps = net(torch.randn(2, 1, 16, 16), torch.tensor([999, 10]))
    assert eps.shape == (2, 1, 16, 16) and torch.isfinite(eps).all() and eps.abs().mean() > 0.1  # trained: not the zero init


def test_load_checkpoint_names_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="--build-checkpoint"):
        sol.load_checkpoint(tmp_path / "missing.safetensors")
