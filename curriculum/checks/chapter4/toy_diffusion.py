"""Checks for 4.1. The oracle is diffusers' DDPMScheduler, an independent implementation of the same maths."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler
from diffusers.models.embeddings import get_timestep_embedding

from curriculum.checking import assert_close, assert_scalar_close, assert_shape, check, fail


def _betas_close(got, expected, what: str) -> None:
    got = assert_shape(got, expected.shape, what, hint="one beta per timestep")
    if got.dtype != torch.float32:
        fail(f"{what} should be float32 (like diffusers), got {got.dtype}")
    assert_close(got, expected, what, atol=1e-7, rtol=1e-5)


@check
def check_linear_betas(linear_betas):
    for n, start, end in [(1000, 1e-4, 0.02), (50, 1e-3, 0.3)]:
        ref = DDPMScheduler(num_train_timesteps=n, beta_start=start, beta_end=end, beta_schedule="linear").betas
        _betas_close(linear_betas(n, start, end), ref, f"linear_betas({n}, {start}, {end})")
    return "matches diffusers' DDPMScheduler(beta_schedule='linear')"


@check
def check_cosine_betas(cosine_betas):
    for n in [1000, 100]:
        ref = DDPMScheduler(num_train_timesteps=n, beta_schedule="squaredcos_cap_v2").betas
        got = cosine_betas(n)
        if isinstance(got, torch.Tensor) and got.shape == ref.shape and got.max() > 0.9991:
            fail("some betas exceed max_beta = 0.999: clamp them (the last step would otherwise have beta = 1)")
        _betas_close(
            got, ref, f"cosine_betas({n})",
        )
    return "matches diffusers' DDPMScheduler(beta_schedule='squaredcos_cap_v2')"


@check
def check_add_noise(add_noise):
    sched = DDPMScheduler(num_train_timesteps=1000)
    g = torch.Generator().manual_seed(0)
    for shape in [(6, 2), (4, 1, 8, 8)]:
        x0 = torch.randn(shape, generator=g)
        noise = torch.randn(shape, generator=g)
        t = torch.tensor([0, 1, 10, 500, 998, 999][: shape[0]])
        expected = sched.add_noise(x0, noise, t)
        assert_close(
            add_noise(x0, noise, t, sched.alphas_cumprod), expected, f"add_noise on shape {shape}",
            hint="x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise, with alpha_bar indexed at each example's t",
        )
    return "matches diffusers' DDPMScheduler.add_noise"


@check
def check_sinusoidal_embedding(sinusoidal_embedding):
    t = torch.tensor([0, 1, 7, 250, 999])
    for dim in [32, 128]:
        ref = get_timestep_embedding(t, dim, flip_sin_to_cos=False, downscale_freq_shift=0)
        assert_close(
            sinusoidal_embedding(t, dim), ref, f"sinusoidal_embedding(t, {dim})", atol=1e-4,
            hint="first half sin, second half cos; frequency i is max_period ** (-i / (dim // 2))",
        )
    return "matches diffusers' get_timestep_embedding"


@check
def check_diffusion_loss(diffusion_loss):
    from curriculum.solutions.chapter4.toy_diffusion import MLPDenoiser

    torch.manual_seed(0)
    model = MLPDenoiser(d_hidden=32)
    sched = DDPMScheduler(num_train_timesteps=1000)
    x0 = torch.randn(16, 2)
    noise = torch.randn(16, 2)
    t = torch.randint(0, 1000, (16,))
    with torch.no_grad():
        expected = ((model(sched.add_noise(x0, noise, t), t) - noise) ** 2).mean()
        got = diffusion_loss(model, x0, sched.alphas_cumprod, t=t, noise=noise)
    assert_scalar_close(
        got, expected.item(), "loss with given t and noise", rel=1e-4,
        hint="noise x0 to x_t with add_noise, then mean((model(x_t, t) - noise) ** 2): the target is the noise, not x0",
    )
    torch.manual_seed(1)
    random_loss = diffusion_loss(model, x0, sched.alphas_cumprod)
    if not (isinstance(random_loss, torch.Tensor) and random_loss.requires_grad):
        fail("without no_grad the loss must be a tensor that requires grad (don't call .item() or detach)")
    return None


@check
def check_ddpm_step(ddpm_step):
    from curriculum.solutions.chapter4.toy_diffusion import Schedule

    for clip in [None, 1.0]:
        ref = DDPMScheduler(num_train_timesteps=1000, clip_sample=clip is not None)
        ref.set_timesteps(1000)
        sched = Schedule(ref.betas.clone())
        for t in [999, 600, 50, 1, 0]:
            g = torch.Generator().manual_seed(t)
            x_t = 1.5 * torch.randn(4, 1, 4, 4, generator=g)
            eps = torch.randn(4, 1, 4, 4, generator=g)
            expected = ref.step(eps, t, x_t, generator=torch.Generator().manual_seed(123)).prev_sample
            noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(123))
            hint = {
                0: "at t = 0 return the posterior mean: alpha_bar_{t-1} is 1 there and no noise is added",
                1: "near t = 0 the variance is beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), not beta_t",
            }.get(t, "check x0_hat, both mean coefficients (alpha_t vs alpha_bar_t, square roots) and the index t - 1")
            if clip:
                hint += "; with clip_x0 clamp x0_hat before computing the mean"
            # rtol 1e-3: near t = 0, 1 - alpha_bar_t ~ 1e-4 costs float32 a few digits, however the learner writes it
            got = ddpm_step(eps, t, x_t, sched, noise, clip)
            assert_close(got, expected, f"ddpm_step at t={t}, clip_x0={clip}", atol=1e-4, rtol=1e-3, hint=hint)
    return "matches diffusers' DDPMScheduler.step"


@check
def check_ddpm_sample(ddpm_sample):
    """Replays the same generator through diffusers' DDPMScheduler loop: x_T first, then one noise draw per step."""
    from curriculum.solutions.chapter4.toy_diffusion import Schedule, gaussian_optimal_eps

    ref = DDPMScheduler(num_train_timesteps=100, beta_start=1e-3, beta_end=0.2, clip_sample=False)
    ref.set_timesteps(100)
    sched = Schedule(ref.betas.clone())
    model = gaussian_optimal_eps(1.5, 0.5, sched.alpha_bars)  # the exact noise predictor for N(1.5, 0.5^2) data
    shape = (512, 2)
    g = torch.Generator().manual_seed(0)
    expected = torch.randn(shape, generator=g)
    for t in ref.timesteps:
        expected = ref.step(model(expected, torch.full((shape[0],), int(t))), int(t), expected, generator=g).prev_sample
    x = ddpm_sample(model, shape, sched, generator=torch.Generator().manual_seed(0))
    assert_close(
        x, expected, "samples", atol=1e-4, rtol=1e-3,
        hint="draw x_{T-1} from the generator first, then loop t = T-1, ..., 0, calling the model with that t "
        "and drawing fresh noise from the generator for every step",
    )
    return f"matches diffusers' sampling loop; samples of N(1.5, 0.5^2) have mean {x.mean():.3f}, std {x.std():.3f}"
