"""Checks for 4.2. Modules are compared with the reference after loading the learner's weights (so any
initialisation passes); attention also against F.scaled_dot_product_attention; DDIM against diffusers."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from torch import nn

from curriculum.checking import assert_close, assert_equal, assert_shape, check, fail, module_instance, randomise_parameters


def _load_reference(ref: nn.Module, learner: nn.Module, what: str) -> None:
    got, want = set(learner.state_dict()), set(ref.state_dict())
    if got != want:
        fail(
            f"{what}'s parameters are named differently from the spec: missing {sorted(want - got)}, "
            f"unexpected {sorted(got - want)}. Use the submodule names in the docstring"
        )
    for name, p in learner.state_dict().items():
        if p.shape != ref.state_dict()[name].shape:
            fail(f"{what}.{name} has shape {tuple(p.shape)}, expected {tuple(ref.state_dict()[name].shape)}")
    ref.load_state_dict(learner.state_dict())


@check
def check_res_block(ResBlock):
    from curriculum.solutions.chapter4.ddpm import ResBlock as Ref

    for in_ch, out_ch in [(16, 32), (16, 16)]:
        block = module_instance(ResBlock, in_ch, out_ch, 24, n_groups=4).eval()
        randomise_parameters(block, std=0.3, seed=in_ch + out_ch)
        ref = Ref(in_ch, out_ch, 24, n_groups=4).eval()
        _load_reference(ref, block, "ResBlock")
        g = torch.Generator().manual_seed(0)
        x, emb = torch.randn(2, in_ch, 8, 8, generator=g), torch.randn(2, 24, generator=g)
        with torch.no_grad():
            got = block(x, emb)
            assert_close(
                got, ref(x, emb), f"ResBlock({in_ch}, {out_ch}) output", atol=1e-4,
                hint="pre-activation order: norm -> SiLU -> conv; add time_proj(SiLU(emb)) per channel after conv1; "
                "the skip is applied to the block's input x",
            )
            if torch.allclose(block(x, emb + 1.0), got):
                fail("the output does not depend on the time embedding: add time_proj(SiLU(emb))[:, :, None, None]")
    return None


@check
def check_attention_block(AttentionBlock):
    for n_heads in [1, 4]:
        block = module_instance(AttentionBlock, 16, n_heads=n_heads, n_groups=4).eval()
        randomise_parameters(block, std=0.3, seed=n_heads)
        params = dict(block.named_parameters())
        if set(params) != {"norm.weight", "norm.bias", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}:
            fail(f"AttentionBlock should have submodules norm, qkv, proj; got parameters {sorted(params)}")
        x = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(1))
        # The oracle: torch's fused attention on q, k, v computed from the learner's own weights.
        h = F.group_norm(x, 4, params["norm.weight"], params["norm.bias"])
        qkv = F.conv2d(h, params["qkv.weight"], params["qkv.bias"])
        q, k, v = einops.rearrange(qkv, "b (n heads d) h w -> n b heads (h w) d", n=3, heads=n_heads)
        out = einops.rearrange(F.scaled_dot_product_attention(q, k, v), "b heads (h w) d -> b (heads d) h w", h=4)
        expected = x + F.conv2d(out, params["proj.weight"], params["proj.bias"])
        with torch.no_grad():
            got = block(x)
            assert_close(
                got, expected.detach(), f"AttentionBlock(16, n_heads={n_heads}) output", atol=1e-4,
                hint="split qkv channels as (q, k, v) then (heads, d_head); softmax over keys; scale by 1/sqrt(d_head); residual",
            )
            # No positional information: permuting pixels permutes the output the same way.
            perm = torch.randperm(16, generator=torch.Generator().manual_seed(2))
            shuffled = einops.rearrange(x.flatten(2)[:, :, perm], "b c (h w) -> b c h w", h=4)
            assert_close(
                block(shuffled).flatten(2), got.flatten(2)[:, :, perm], "output on pixel-shuffled input", atol=1e-4,
                hint="attention must treat all h*w positions alike (did you attend over channels instead?)",
            )
    return "matches F.scaled_dot_product_attention and is permutation-equivariant over pixels"


@check
def check_unet(UNet):
    from curriculum.solutions.chapter4.ddpm import UNet as Ref
    from curriculum.solutions.chapter4.ddpm import UNetConfig

    for cfg in [
        UNetConfig(image_size=16, base_channels=16, channel_mults=(1, 2, 2), attn_resolutions=(4,), n_heads=2, dropout=0.0),
        UNetConfig(image_size=8, in_channels=3, base_channels=8, channel_mults=(1, 2), attn_resolutions=(8,), n_heads=1, dropout=0.0, num_classes=10),
    ]:
        model = module_instance(UNet, cfg).eval()
        randomise_parameters(model, std=0.3, seed=cfg.base_channels)
        ref = Ref(cfg).eval()
        _load_reference(ref, model, "UNet")
        g = torch.Generator().manual_seed(0)
        x = torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
        t = torch.tensor([0, 400, 999])
        y = torch.tensor([1, 5, 10]) if cfg.num_classes else None
        with torch.no_grad():
            got = model(x, t, y)
            assert_shape(got, x.shape, "UNet output", hint="the U-Net predicts noise of the same shape as its input")
            assert_close(
                got, ref(x, t, y), "UNet output", atol=1e-3, rtol=1e-3,
                hint="push each down level's output (after attn, before resample) as the skip; pop them in reverse in the up path, "
                "concatenating on the channel axis (dim=1) before the ResBlock",
            )
    return None


@check
def check_ema(EMA):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    ema = EMA(model, decay=0.9)
    if ema.model is model or ema.model.weight is model.weight:
        fail("EMA.model must be a separate copy (copy.deepcopy), not the live model")
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert_close(ema.model.weight, start + 0.1, "EMA weight after one update", hint="w_ema = decay * w_ema + (1 - decay) * w")
    ema.update(model)
    assert_close(ema.model.weight, start + 0.19, "EMA weight after two updates", hint="update towards the live weights; don't reset")
    if any(p.requires_grad for p in ema.model.parameters()):
        fail("the EMA copy should not require grad (requires_grad_(False)): it is never trained directly")
    return None


@check
def check_ddim_timesteps(ddim_timesteps):
    for n_train, n in [(1000, 50), (1000, 20), (1000, 10), (100, 7), (1000, 1000)]:
        ref = DDIMScheduler(num_train_timesteps=n_train)
        ref.set_timesteps(n)
        got = ddim_timesteps(n_train, n)
        if isinstance(got, torch.Tensor) and got.is_floating_point():
            fail("timesteps should be integers (torch.long), they index alpha_bars")
        assert_equal(
            got, ref.timesteps.long(), f"ddim_timesteps({n_train}, {n})",
            hint="descending multiples of n_train // n ending at 0: [(n-1)*ratio, ..., ratio, 0]",
        )
    return "matches diffusers' DDIMScheduler.timesteps"


@check
def check_ddim_step(ddim_step):
    for clip in [False, True]:
        ref = DDIMScheduler(num_train_timesteps=1000, clip_sample=clip)
        ref.set_timesteps(50)
        for eta in [0.0, 0.5, 1.0]:
            for t in [980, 500, 20, 0]:
                g = torch.Generator().manual_seed(t)
                x_t = 1.5 * torch.randn(3, 1, 4, 4, generator=g)
                eps = torch.randn(3, 1, 4, 4, generator=g)
                noise = torch.randn(3, 1, 4, 4, generator=g)
                expected = ref.step(eps, t, x_t, eta=eta, variance_noise=noise, use_clipped_model_output=clip).prev_sample
                got = ddim_step(eps, t, t - 20, x_t, ref.alphas_cumprod, eta, noise if eta > 0 else None, 1.0 if clip else None)
                hint = "sigma = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev); direction sqrt(1 - a_prev - sigma^2) * eps"
                if t == 0:
                    hint = "at the last step t_prev < 0: use alpha_bar_prev = 1 (the clean sample), not alpha_bars[-1]"
                elif clip:
                    hint = "after clamping x0_hat, recompute eps = (x_t - sqrt(a_t) x0_hat) / sqrt(1 - a_t) so the two stay consistent"
                assert_close(got, expected, f"ddim_step(t={t}, t_prev={t - 20}, eta={eta}, clip={clip})", atol=1e-5, rtol=1e-4, hint=hint)
    return "matches diffusers' DDIMScheduler.step"
