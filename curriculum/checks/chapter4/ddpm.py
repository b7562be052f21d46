"""Checks for 4.2. Modules are compared with independent implementations on the learner's own weights
(so any initialisation passes): the residual block with diffusers' ResnetBlock2D, attention with
F.scaled_dot_product_attention, resampling with torch.nn.functional, the U-Net's levels with the
learner's own submodules composed in the documented order; DDIM with diffusers' DDIMScheduler.
Feature maps have unequal height, width and channel counts, so a transposed axis shows."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.models.resnet import ResnetBlock2D
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


_DIFFUSERS_RES_NAMES = {"time_proj": "time_emb_proj", "skip": "conv_shortcut"}


def _res_block_variants(block, x, emb) -> dict[str, torch.Tensor]:
    """Outputs of common wrong orderings, composed from the learner's own submodules, to name a bug."""
    t = block.time_proj(F.silu(emb))[:, :, None, None]
    out = {}
    h = block.conv1(F.silu(x)) + t
    out["conv1 without norm1 first: normalise before the activation, norm1 -> SiLU -> conv1"] = block.skip(x) + block.conv2(F.silu(block.norm2(h)))
    h = block.conv1(F.silu(block.norm1(x))) + t
    out["conv2 without norm2 first: norm2 -> SiLU -> conv2"] = block.skip(x) + block.conv2(F.silu(h))
    h = block.conv1(block.norm1(F.silu(x))) + t
    out["SiLU before GroupNorm: the order is norm -> SiLU -> conv"] = block.skip(x) + block.conv2(F.silu(block.norm2(h)))
    h = block.conv1(F.silu(block.norm1(x))) + block.time_proj(emb)[:, :, None, None]
    out["time_proj(emb) without the SiLU on emb: use time_proj(F.silu(emb))"] = block.skip(x) + block.conv2(F.silu(block.norm2(h)))
    return out


@check
def check_res_block(ResBlock):
    for in_ch, out_ch in [(16, 32), (16, 16)]:
        block = module_instance(ResBlock, in_ch, out_ch, 24, n_groups=4).eval()
        randomise_parameters(block, std=0.3, seed=in_ch + out_ch)
        names = {n.split(".")[0] for n, _ in block.named_parameters()}
        want = {"norm1", "conv1", "time_proj", "norm2", "conv2"} | ({"skip"} if in_ch != out_ch else set())
        if names != want:
            fail(f"ResBlock({in_ch}, {out_ch}) has submodules {sorted(names)}, expected {sorted(want)}: use the names in the docstring")
        # The oracle: diffusers' ResnetBlock2D (GroupNorm eps matched to torch's default) on the learner's weights.
        ref = ResnetBlock2D(in_channels=in_ch, out_channels=out_ch, temb_channels=24, groups=4, eps=1e-5).eval()
        ref.load_state_dict({".".join([_DIFFUSERS_RES_NAMES.get(k.split(".")[0], k.split(".")[0]), *k.split(".")[1:]]): v
                             for k, v in block.state_dict().items()})
        g = torch.Generator().manual_seed(0)
        x, emb = torch.randn(2, in_ch, 6, 10, generator=g), torch.randn(2, 24, generator=g)
        with torch.no_grad():
            try:
                got = block(x, emb)
            except RuntimeError as e:
                fail(f"ResBlock({in_ch}, {out_ch}) raised {type(e).__name__}: {str(e).rstrip('.')}. norm1 is built for the in_ch channels of x "
                     "and norm2 for the out_ch channels after conv1: normalise before each convolution, "
                     "norm1 -> SiLU -> conv1, then norm2 -> SiLU -> dropout -> conv2")
            assert_shape(got, (2, out_ch, 6, 10), f"ResBlock({in_ch}, {out_ch}) output",
                         hint="the block keeps H and W and maps in_ch to out_ch channels")
            if torch.allclose(block(x, emb + 1.0), got):
                fail("the output does not depend on the time embedding: add time_proj(SiLU(emb))[:, :, None, None] after conv1")
            # The time embedding must go through conv2: with conv2 zeroed it can no longer reach the output.
            saved = block.conv2.weight.clone()
            block.conv2.weight.zero_()
            late = not torch.allclose(block(x, emb + 1.0), block(x, emb), atol=1e-6)
            block.conv2.weight.copy_(saved)
            if late:
                fail("the time embedding reaches the output without passing through conv2: add it to h between conv1 and "
                     "norm2, not after conv2 or to the residual sum")
            for bug, out in _res_block_variants(block, x, emb).items():
                if torch.allclose(got, out, atol=1e-4):
                    fail(f"your ResBlock computes {bug}")
            assert_close(
                got, ref(x, emb), f"ResBlock({in_ch}, {out_ch}) output vs diffusers' ResnetBlock2D", atol=1e-4,
                hint="pre-activation order: GroupNorm -> SiLU -> conv, twice; add time_proj(SiLU(emb)) per channel after conv1; "
                "the skip (1x1 conv when the channel count changes) is applied to the block's input x and added at the end",
            )
    return "matches diffusers' ResnetBlock2D; the output depends on t through conv2"


@check
def check_attention_block(AttentionBlock):
    for n_heads in [1, 4]:
        block = module_instance(AttentionBlock, 16, n_heads=n_heads, n_groups=4).eval()
        randomise_parameters(block, std=0.3, seed=n_heads)
        params = dict(block.named_parameters())
        if set(params) != {"norm.weight", "norm.bias", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}:
            fail(f"AttentionBlock should have submodules norm, qkv, proj; got parameters {sorted(params)}")
        x = torch.randn(2, 16, 4, 6, generator=torch.Generator().manual_seed(1))  # h != w: a transposed axis shows
        # The oracle: torch's fused attention on q, k, v computed from the learner's own weights.
        h = F.group_norm(x, 4, params["norm.weight"], params["norm.bias"])
        qkv = F.conv2d(h, params["qkv.weight"], params["qkv.bias"])
        q, k, v = einops.rearrange(qkv, "b (n heads d) h w -> n b heads (h w) d", n=3, heads=n_heads)
        out = einops.rearrange(F.scaled_dot_product_attention(q, k, v), "b heads (h w) d -> b (heads d) h w", h=4)
        expected = x + F.conv2d(out, params["proj.weight"], params["proj.bias"])
        scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
        wrong_axis = x + F.conv2d(
            einops.rearrange(scores.softmax(-2) @ v, "b heads (h w) d -> b (heads d) h w", h=4), params["proj.weight"], params["proj.bias"]
        )
        with torch.no_grad():
            got = block(x)
            assert_shape(got, x.shape, f"AttentionBlock(16, n_heads={n_heads}) output", hint="attention keeps the shape (b, c, h, w)")
            if torch.allclose(got, wrong_axis, atol=1e-4):
                fail("your softmax normalises over the queries: each query's weights over the keys must sum to 1, softmax(dim=-1) "
                     "on scores of shape (b, heads, query, key)")
            assert_close(
                got, expected.detach(), f"AttentionBlock(16, n_heads={n_heads}) output", atol=1e-4,
                hint="split qkv channels as (q, k, v) then (heads, d_head); softmax over keys (the last axis of the scores); "
                "scale by 1/sqrt(d_head); rearrange back with (h w) in the same order; add the residual x",
            )
            # No positional information: permuting pixels permutes the output the same way.
            perm = torch.randperm(24, generator=torch.Generator().manual_seed(2))
            shuffled = einops.rearrange(x.flatten(2)[:, :, perm], "b c (h w) -> b c h w", h=4)
            assert_close(
                block(shuffled).flatten(2), got.flatten(2)[:, :, perm], "output on pixel-shuffled input", atol=1e-4,
                hint="attention must treat all h*w positions alike (did you attend over channels instead?)",
            )
    return "matches F.scaled_dot_product_attention and is permutation-equivariant over pixels"


def _resampler(cls, name):
    m = module_instance(cls, 6).eval()
    randomise_parameters(m, std=0.3, seed=1)
    if {n for n, _ in m.named_parameters()} != {"conv.weight", "conv.bias"}:
        fail(f"{name} should have exactly one submodule, conv (a 3x3 nn.Conv2d)")
    return m, torch.randn(2, 6, 10, 14, generator=torch.Generator().manual_seed(0))


@check
def check_downsample(Downsample):
    down, x = _resampler(Downsample, "Downsample")
    with torch.no_grad():
        got = down(x)
        assert_shape(got, (2, 6, 5, 7), "Downsample(6) on a (2, 6, 10, 14) input",
                     hint="a 3x3 convolution with stride=2 and padding=1 halves H and W and keeps the channels")
        assert_close(got, F.conv2d(x, down.conv.weight, down.conv.bias, stride=2, padding=1), "Downsample output",
                     hint="apply self.conv (stride 2, padding 1) to x; no pooling")
        odd = down(x[:, :, :9, :13])
        assert_shape(odd, (2, 6, 5, 7), "Downsample(6) on a (2, 6, 9, 13) input", hint="odd sizes round up")
    return "halves H and W (odd sizes round up); matches F.conv2d with stride 2"


@check
def check_upsample(Upsample):
    up, x = _resampler(Upsample, "Upsample")
    with torch.no_grad():
        got = up(x)
        assert_shape(got, (2, 6, 20, 28), "Upsample(6) on a (2, 6, 10, 14) input",
                     hint="double H and W: F.interpolate(x, scale_factor=2, mode='nearest'), then self.conv")
        if torch.allclose(got, up.conv(F.interpolate(x, scale_factor=2, mode="bilinear")), atol=1e-5):
            fail("Upsample uses bilinear interpolation: the spec is nearest-neighbour (mode='nearest') then the 3x3 conv")
        blocks = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # each pixel becomes a 2x2 block
        assert_close(got, F.conv2d(blocks, up.conv.weight, up.conv.bias, padding=1), "Upsample output",
                     hint="upsample first (each pixel repeated into a 2x2 block, mode='nearest'), then convolve; "
                     "convolving first and upsampling after leaves visible 2x2 blocks")
    return "doubles H and W; matches 2x2 pixel repetition followed by F.conv2d"


@check
def check_unet_levels(unet_levels):
    from curriculum.solutions.chapter4.ddpm import UNetConfig

    cases = [
        (UNetConfig(image_size=16), [(16, 64, 64, False), (8, 64, 128, True), (4, 128, 128, True)]),
        (UNetConfig(image_size=32), [(32, 64, 64, False), (16, 64, 128, False), (8, 128, 128, True)]),
        (UNetConfig(image_size=24, base_channels=8, channel_mults=(1, 2, 3, 4), attn_resolutions=(12, 3)),
         [(24, 8, 8, False), (12, 8, 16, True), (6, 16, 24, False), (3, 24, 32, True)]),
    ]
    for cfg, want in cases:
        got = unet_levels(cfg)
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            fail(f"unet_levels should return one tuple per level ({len(want)} for channel_mults={cfg.channel_mults}), got {got!r}")
        got = [tuple(int(v) if not isinstance(v, bool) else v for v in row) for row in got]
        for i, (g, w) in enumerate(zip(got, want)):
            if g[0] != w[0]:
                fail(f"level {i} of a {cfg.image_size}x{cfg.image_size} U-Net: resolution {g[0]}, expected {w[0]} "
                     "(image_size // 2**i: the input conv keeps the size, each level halves it for the next)")
            if g[1:3] != w[1:3]:
                fail(f"level {i} (image_size={cfg.image_size}, base={cfg.base_channels}, mults={cfg.channel_mults}): channels in/out "
                     f"{g[1:3]}, expected {w[1:3]} (in = the previous level's out, base_channels for level 0)")
            if bool(g[3]) != w[3]:
                fail(f"level {i} at {w[0]}x{w[0]}: attention {g[3]}, expected {w[3]} (attention iff the resolution is in "
                     f"attn_resolutions={cfg.attn_resolutions})")
    return "16x16 images get attention at 8x8 and 4x4; 32x32 images only at 8x8"


def _blocks_cfg():
    return {"n_heads": 2, "n_groups": 4, "dropout": 0.0}


@check
def check_down_block(DownBlock):
    g = torch.Generator().manual_seed(0)
    x, emb = torch.randn(2, 8, 12, 16, generator=g), torch.randn(2, 24, generator=g)
    for attn, downsample in [(True, True), (False, False)]:
        block = module_instance(DownBlock, 8, 16, 24, attn=attn, downsample=downsample, **_blocks_cfg()).eval()
        randomise_parameters(block, std=0.3, seed=3)
        if not {"res", "attn", "resample"} <= {n for n, _ in block.named_children()}:
            fail("DownBlock should keep its submodules res, attn and resample (as given in __init__)")
        with torch.no_grad():
            out = block(x, emb)
            if not isinstance(out, tuple) or len(out) != 2:
                fail("DownBlock.forward should return a pair (output for the next level, skip for the decoder)")
            h, skip = out
            size = (6, 8) if downsample else (12, 16)
            assert_shape(skip, (2, 16, 12, 16), f"DownBlock skip (downsample={downsample})",
                         hint="the skip is taken before downsampling, at the level's full resolution")
            assert_shape(h, (2, 16, *size), f"DownBlock output (downsample={downsample})",
                         hint="the output for the next level is the skip passed through resample")
            want_skip = block.attn(block.res(x, emb))
            if attn and torch.allclose(skip, block.res(x, emb), atol=1e-5):
                fail("your skip is taken before the attention block: the skip is attn(res(h, emb))")
            assert_close(skip, want_skip, "DownBlock skip", atol=1e-4, hint="skip = attn(res(h, emb)): the residual block gets the time embedding")
            assert_close(h, block.resample(want_skip), "DownBlock output", atol=1e-4, hint="output = resample(skip)")
    return "returns (resample(skip), skip) with skip = attn(res(h, emb))"


@check
def check_up_block(UpBlock):
    g = torch.Generator().manual_seed(0)
    h, skip, emb = torch.randn(2, 16, 6, 10, generator=g), torch.randn(2, 8, 6, 10, generator=g), torch.randn(2, 24, generator=g)
    for attn, upsample in [(True, True), (False, False)]:
        block = module_instance(UpBlock, 16, 8, 12, 24, attn=attn, upsample=upsample, **_blocks_cfg()).eval()
        randomise_parameters(block, std=0.3, seed=4)
        seen = []
        handle = block.res.register_forward_pre_hook(lambda _m, args, seen=seen: seen.append(tuple(args[0].shape)))
        with torch.no_grad():
            try:
                got = block(h, skip, emb)
            except RuntimeError as e:
                fail(f"UpBlock raised {type(e).__name__}: {str(e).rstrip('.')}. With h of shape {tuple(h.shape)} and a skip of shape "
                     f"{tuple(skip.shape)}, join them on the channel axis, torch.cat([h, skip], dim=1), so the ResBlock "
                     "sees 16 + 8 channels; dim=0 stacks examples and dim=2, 3 stack pixels")
            finally:
                handle.remove()
            if seen and seen[0] != (2, 24, 6, 10):
                fail(f"the ResBlock received a tensor of shape {seen[0]}, expected (2, 24, 6, 10): concatenate h and the skip "
                     "on the channel axis (dim=1), before the ResBlock")
            assert_shape(got, (2, 12, 12, 20) if upsample else (2, 12, 6, 10), f"UpBlock output (upsample={upsample})",
                         hint="concat -> res -> attn -> resample; resample doubles H and W")
            want = block.resample(block.attn(block.res(torch.cat([h, skip], dim=1), emb)))
            if torch.allclose(got, block.resample(block.attn(block.res(torch.cat([skip, h], dim=1), emb))), atol=1e-5):
                fail("you concatenate [skip, h]: the ResBlock's weights expect h first, torch.cat([h, skip], dim=1)")
            assert_close(got, want, "UpBlock output", atol=1e-4, hint="resample(attn(res(torch.cat([h, skip], dim=1), emb)))")
    return "joins h and the skip on channels, then res, attn, resample"


@check
def check_unet(UNet):
    from curriculum.solutions.chapter4.ddpm import UNet as Ref
    from curriculum.solutions.chapter4.ddpm import UNetConfig

    for cfg in [
        UNetConfig(image_size=16, base_channels=16, channel_mults=(1, 2, 3), attn_resolutions=(4,), n_heads=2, dropout=0.0),
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
            try:
                got = model(x, t, y)
            except RuntimeError as e:
                fail(f"UNet (channel_mults={cfg.channel_mults}) raised {type(e).__name__}: {str(e).rstrip('.')}. If an up block's torch.cat fails on the "
                     "spatial size, it got the skip of another resolution: push each down block's skip onto a list and "
                     "pop from its end (skips.pop()), so the lowest-resolution skip goes to self.up[0]")
            assert_shape(got, x.shape, "UNet output", hint="the U-Net predicts noise of the same shape as its input")
            if torch.allclose(got, model(x, t.flip(0), y), atol=1e-5):
                fail("the U-Net's output does not depend on t: pass emb = self.embed(t, y) to every down, middle and up block")
            assert_close(
                got, ref(x, t, y), "UNet output", atol=1e-3, rtol=1e-3,
                hint="stack each down block's skip; the up path pops them (last in, first out); middle = res, attn, res; "
                "finish with norm_out -> SiLU -> conv_out",
            )
    return "matches the reference U-Net on the same weights (3 uneven levels; RGB with class labels); the output depends on t"


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
def check_ddim_sigma(ddim_sigma):
    ref = DDIMScheduler(num_train_timesteps=1000)
    ref.set_timesteps(50)
    ab = ref.alphas_cumprod
    for t, t_prev in [(980, 960), (500, 480), (40, 20)]:
        a_t, a_prev = ab[t], ab[t_prev]
        for eta in [0.0, 0.3, 1.0]:
            got = ddim_sigma(a_t, a_prev, eta)
            want = eta * ref._get_variance(t, t_prev).sqrt()
            if eta == 1.0 and torch.allclose(torch.as_tensor(got), ref._get_variance(t, t_prev), rtol=1e-4):
                fail("you return the variance sigma^2: return the standard deviation (take the square root)")
            assert_close(
                torch.as_tensor(got, dtype=torch.float32), want, f"ddim_sigma(a_t=alpha_bar[{t}], a_prev=alpha_bar[{t_prev}], eta={eta})",
                rtol=1e-4, atol=1e-7,
                hint="sigma^2 = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev) at eta = 1, the variance of q(x_prev | x_t, x_0); "
                "multiply the standard deviation by eta",
            )
    # eta = 1 on consecutive steps is DDPM's posterior variance beta_tilde_t = (1 - a_prev) / (1 - a_t) * beta_t.
    t = 300
    beta_tilde = (1 - ab[t - 1]) / (1 - ab[t]) * (1 - ab[t] / ab[t - 1])
    assert_close(torch.as_tensor(ddim_sigma(ab[t], ab[t - 1], 1.0)) ** 2, beta_tilde, "ddim_sigma(eta=1, t_prev = t - 1)^2",
                 rtol=1e-4, hint="at eta = 1 with consecutive steps sigma^2 must be DDPM's beta_tilde_t")
    return "matches diffusers' DDIM variance; eta = 1 gives DDPM's posterior variance"


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


def _ddim_reference_loop(model, shape, n_steps, eta, seed, clip):
    """diffusers' DDIMScheduler driven with our sampler's documented random-number order."""
    ref = DDIMScheduler(num_train_timesteps=1000, clip_sample=clip)
    ref.set_timesteps(n_steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    for t in ref.timesteps:
        eps = model(x, torch.full((shape[0],), int(t)))
        noise = torch.randn(shape, generator=g) if eta > 0 else None
        x = ref.step(eps, int(t), x, eta=eta, variance_noise=noise, use_clipped_model_output=clip).prev_sample
    return x, ref.alphas_cumprod


@check
def check_ddim_sample(ddim_sample):
    from curriculum.solutions.chapter4.toy_diffusion import gaussian_optimal_eps

    ab = DDIMScheduler(num_train_timesteps=1000).alphas_cumprod
    exact = gaussian_optimal_eps(0.5, 0.8, ab)  # the true noise predictor for x0 ~ N(0.5, 0.8^2): no training needed
    calls = []

    def model(x, t):
        if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],) or t.is_floating_point():
            fail(f"call the model with a long tensor of timesteps of shape ({x.shape[0]},), got {t!r}")
        calls.append(int(t[0]))
        return exact(x, t)

    for n_steps, eta, clip in [(20, 0.0, False), (10, 0.5, True), (50, 1.0, False)]:
        calls.clear()
        want, _ = _ddim_reference_loop(exact, (64, 2), n_steps, eta, seed=1, clip=clip)
        got = ddim_sample(model, (64, 2), ab, n_steps, eta=eta, generator=torch.Generator().manual_seed(1), clip_x0=1.0 if clip else None)
        expected_calls = [int(t) for t in ddim_timesteps_reference(n_steps)]
        if calls != expected_calls:
            fail(f"DDIM-{n_steps} called the model at t = {calls[:5]}{'...' if len(calls) > 5 else ''} ({len(calls)} calls), "
                 f"expected {expected_calls[:5]}... ({n_steps} calls): loop over ddim_timesteps(len(alpha_bars), n_steps), descending")
        assert_shape(got, (64, 2), f"ddim_sample(n_steps={n_steps}) output")
        assert_close(
            got, want, f"ddim_sample(n_steps={n_steps}, eta={eta}, clip_x0={1.0 if clip else None}) vs diffusers' DDIMScheduler loop",
            atol=1e-4, rtol=1e-4,
            hint="step from t to t - n_train // n_steps (below 0 at the last step); x_T = randn(shape, generator) first, then, "
            "only when eta > 0, one randn(shape, generator) per step after the model call; pass clip_x0 on to ddim_step",
        )
    return "matches diffusers' DDIMScheduler loop (eta = 0, 0.5, 1; with and without clamping); one model call per step"


def ddim_timesteps_reference(n_steps: int) -> torch.Tensor:
    ref = DDIMScheduler(num_train_timesteps=1000)
    ref.set_timesteps(n_steps)
    return ref.timesteps
