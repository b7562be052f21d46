"""Checks for 4.1. The oracle is diffusers' DDPMScheduler, an independent implementation of the same maths."""

from __future__ import annotations

import math

import torch
from diffusers import DDPMScheduler
from diffusers.models.embeddings import get_timestep_embedding

from curriculum.checking import (
    as_tensor,
    assert_close,
    assert_scalar_close,
    assert_shape,
    check,
    fail,
)


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
            # First the mean (noise = 0), then the noise scale: a wrong variance is then never reported as a wrong mean.
            std = ref._get_variance(t).sqrt() if t > 0 else torch.tensor(0.0)
            mean = expected - std * noise
            mean_hint = {
                0: "at t = 0 return the posterior mean: alpha_bar_{t-1} is 1 there",
            }.get(t, "check x0_hat, both posterior-mean coefficients (alpha_t vs alpha_bar_t, square roots) and the index t - 1")
            if clip:
                mean_hint += "; with clip_x0 clamp x0_hat before computing the mean"
            # rtol 1e-3: near t = 0, 1 - alpha_bar_t ~ 1e-4 costs float32 a few digits, however the learner writes it
            got_mean = ddpm_step(eps, t, x_t, sched, torch.zeros_like(noise), clip)
            assert_close(got_mean, mean, f"ddpm_step at t={t}, clip_x0={clip}, with noise = 0 (the posterior mean)",
                         atol=1e-4, rtol=1e-3, hint=mean_hint)
            got = ddpm_step(eps, t, x_t, sched, noise, clip)
            if t == 0:
                assert_close(got, mean, "ddpm_step at t=0 with noise", atol=1e-4, rtol=1e-3,
                             hint="at t = 0 no noise is added: return the posterior mean itself")
                continue
            got_std = float(((got - got_mean) * noise).sum() / noise.pow(2).sum())  # least-squares scale of the noise
            beta = float(ref.betas[t])
            if abs(got_std - std.item()) > 1e-3 * std.item() + 1e-6:
                why = ""
                if abs(got_std - beta ** 0.5) < 1e-3 * beta ** 0.5:
                    why = (" That is sqrt(beta_t): the variance here is the posterior's, beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) "
                           "/ (1 - alpha_bar_t) (diffusers' 'fixed_small'); near t = 0 the two differ most")
                elif abs(got_std - std.item() ** 2) < 1e-3 * std.item() ** 2:
                    why = " That is the variance itself: multiply the noise by its square root"
                fail(f"ddpm_step at t={t} scales the noise by {got_std:.5g}, expected sqrt(beta_tilde_t) = {std.item():.5g}.{why}")
            assert_close(got, expected, f"ddpm_step at t={t}, clip_x0={clip}", atol=1e-4, rtol=1e-3,
                         hint="the mean and the noise scale are right on their own: return mean + std * noise")
    return "matches diffusers' DDPMScheduler.step"


@check
def check_ddpm_sample(ddpm_sample):
    """Replays the same generator through diffusers' DDPMScheduler loop: x_T first, then one noise draw per step."""
    from curriculum.solutions.chapter4.toy_diffusion import (
        Schedule,
        gaussian_optimal_eps,
    )

    ref = DDPMScheduler(num_train_timesteps=100, beta_start=1e-3, beta_end=0.2, clip_sample=False)
    ref.set_timesteps(100)
    sched = Schedule(ref.betas.clone())
    model = gaussian_optimal_eps(1.5, 0.5, sched.alpha_bars)  # the exact noise predictor for N(1.5, 0.5^2) data
    shape = (512, 2)
    g = torch.Generator().manual_seed(0)
    expected = torch.randn(shape, generator=g)
    every = 30  # 100 steps: x_t recorded before the steps t = 99, 69, 39, 9, then the final sample
    trajectory = []
    for i, t in enumerate(ref.timesteps):
        if i % every == 0:
            trajectory.append(expected)
        expected = ref.step(model(expected, torch.full((shape[0],), int(t))), int(t), expected, generator=g).prev_sample
    trajectory.append(expected)
    record: list = []
    x = ddpm_sample(model, shape, sched, generator=torch.Generator().manual_seed(0), record=record, record_every=every)
    assert_close(
        x, expected, "samples", atol=1e-4, rtol=1e-3,
        hint="draw x_{T-1} from the generator first, then loop t = T-1, ..., 0, calling the model with that t "
        "and drawing fresh noise from the generator for every step",
    )
    if len(record) != len(trajectory):
        fail(f"with record_every={every} over 100 steps, `record` should hold {len(trajectory)} tensors (x_t before "
             f"the steps t = 99, 69, 39, 9, then the final sample), got {len(record)}: append x every record_every "
             f"steps counting from the first step, and once more after the loop")
    for i, (got, want) in enumerate(zip(record, trajectory)):
        what = "the final sample" if i == len(record) - 1 else f"record[{i}] (x_t before step t = {99 - i * every})"
        assert_close(got, want, what, atol=1e-4, rtol=1e-3,
                     hint="append x before applying the step (record[0] is the starting noise), as a CPU copy")
    return f"matches diffusers' sampling loop; samples of N(1.5, 0.5^2) have mean {x.mean():.3f}, std {x.std():.3f}"


def _posterior_by_product(x0, x_t, t, betas):
    """q(x_{t-1} | x_t, x_0) as the product of two Gaussians in x_{t-1}, in float64: the prior
    q(x_{t-1} | x_0) = N(sqrt(a_prev) x_0, 1 - a_prev) times the likelihood q(x_t | x_{t-1}), which as a
    function of x_{t-1} is proportional to N(x_t / sqrt(alpha_t), beta_t / alpha_t). Precisions add."""
    betas = betas.double()
    a_prev = torch.prod(1 - betas[:t])  # alpha_bar_{t-1}; the empty product at t = 0 is 1
    beta, alpha = betas[t], 1 - betas[t]
    if t == 0:  # the prior is a point mass at x_0
        return x0.double(), torch.tensor(0.0, dtype=torch.float64)
    var = 1 / (1 / (1 - a_prev) + alpha / beta)
    mean = var * (a_prev.sqrt() * x0.double() / (1 - a_prev) + alpha.sqrt() * x_t.double() / beta)
    return mean, var


def _posterior_bugs(x0, x_t, t, alpha_bars):
    """What the likely mistakes return, in float64, each with the message that names it."""
    ab = alpha_bars.double()
    x0, x_t = x0.double(), x_t.double()
    a_bar = ab[t]
    a_prev = ab[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
    alpha = a_bar / a_prev
    beta = 1 - alpha
    c0 = a_prev.sqrt() * beta / (1 - a_bar)
    ct = alpha.sqrt() * (1 - a_prev) / (1 - a_bar)
    wrap = ab[t - 1]  # at t = 0, Python's ab[-1] is the *last* alpha_bar, not 1
    wrap_beta = 1 - a_bar / wrap
    wrap_mean = wrap.sqrt() * wrap_beta / (1 - a_bar) * x0 + (a_bar / wrap).sqrt() * (1 - wrap) / (1 - a_bar) * x_t
    wrap_message = "at t = 0 alpha_bar_{t-1} must be 1: indexing alpha_bars[t - 1] with t = 0 picks the *last* entry"
    swapped = ("the two mean coefficients are swapped: the one with beta_t multiplies x_0, "
               "the one with (1 - alpha_bar_{t-1}) multiplies x_t")
    xt_coef = ("the x_t coefficient uses sqrt(alpha_bar_t); it should be sqrt(alpha_t) = sqrt(alpha_bar_t / alpha_bar_{t-1}), "
               "a single step's alpha, because x_t comes from x_{t-1} in one step")
    x0_coef = "the x_0 coefficient uses sqrt(alpha_bar_t); it should be sqrt(alpha_bar_{t-1}), the signal x_{t-1} keeps"
    beta_var = ("the variance is beta_t (the forward step's variance); the posterior's is "
                "beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), smaller, and 0 at t = 0")
    return [
        ("mean", ct * x0 + c0 * x_t, swapped),
        ("mean", c0 * x0 + a_bar.sqrt() * (1 - a_prev) / (1 - a_bar) * x_t, xt_coef),
        ("mean", a_bar.sqrt() * beta / (1 - a_bar) * x0 + ct * x_t, x0_coef),
        ("variance", beta, beta_var),
        ("mean", wrap_mean, wrap_message),
        ("variance", wrap_beta * (1 - wrap) / (1 - a_bar), wrap_message),
    ]


@check
def check_posterior_mean_variance(posterior_mean_variance):
    """Compares with the posterior computed independently as a product of two Gaussians, and the
    variance with diffusers' DDPMScheduler._get_variance; names the usual mix-ups when they match."""
    from curriculum.solutions.chapter4.toy_diffusion import Schedule

    g = torch.Generator().manual_seed(0)
    # DDPM's schedule, and a coarse one whose steps are big enough that alpha_t is far from 1
    for (n_steps, beta_end, ts), shape in zip([(1000, 0.02, [999, 500, 10, 1, 0]), (20, 0.5, [19, 7, 1, 0])], [(5, 2), (2, 1, 3, 3)]):
        ref = DDPMScheduler(num_train_timesteps=n_steps, beta_start=1e-4 if n_steps == 1000 else 0.05, beta_end=beta_end)
        sched = Schedule(ref.betas.clone())
        x0 = torch.randn(shape, generator=g)
        x_t = 1.3 * torch.randn(shape, generator=g)
        for t in ts:
            out = posterior_mean_variance(x0, x_t, t, sched)
            if not (isinstance(out, tuple) and len(out) == 2):
                fail(f"posterior_mean_variance should return a tuple (mean, variance), got {type(out).__name__}")
            mean, var = out
            mean = assert_shape(mean, x0.shape, f"the mean at t={t} for x0 of shape {shape}", hint="the same shape as x_t")
            var = as_tensor(var, f"the variance at t={t}")
            if var.numel() != 1:
                fail(f"the variance at t={t} should be one number (a 0-d tensor), got shape {tuple(var.shape)}: "
                     "beta_tilde_t does not depend on the data")
            exp_mean, exp_var = _posterior_by_product(x0, x_t, t, ref.betas)
            # float32 loses about three digits in 1 - alpha_bar near t = 0, however the formula is written
            mean_ok = torch.allclose(mean.double(), exp_mean, atol=1e-3, rtol=1e-3)
            var_ok = math.isclose(float(var), float(exp_var), rel_tol=2e-3, abs_tol=1e-9)
            if not (mean_ok and var_ok):
                for which, wrong, message in _posterior_bugs(x0, x_t, t, sched.alpha_bars):
                    got = mean.double() if which == "mean" else var.double().reshape(())
                    atol = 1e-3 if which == "mean" else 1e-9
                    if torch.allclose(got, wrong, atol=atol, rtol=2e-3) and not torch.allclose(
                        wrong, exp_mean if which == "mean" else exp_var, atol=atol, rtol=2e-3
                    ):
                        fail(f"posterior at t={t}: {message}")
            assert_close(mean, exp_mean.float(), f"the posterior mean at t={t}", atol=1e-3, rtol=1e-3,
                         hint="mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 "
                         "+ sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t")
            assert_scalar_close(var.reshape(()), float(exp_var), f"the posterior variance at t={t}", rel=2e-3, abs_=1e-9,
                                hint="beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)")
            if t > 0:  # diffusers clamps its variance at 1e-20, which only matters at t = 0
                assert_scalar_close(var.reshape(()), float(ref._get_variance(t)), f"the posterior variance at t={t} "
                                    "against diffusers", rel=2e-3, abs_=1e-9)
    return "matches the product of two Gaussians and diffusers' posterior variance"


class _Recorder(torch.nn.Module):
    """Wraps a denoiser and keeps a copy of every (x_t, t) it is called with."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t):
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return self.inner(x, t)


def _replay(model, calls, centre, alpha_bars, lr, zero_grad=True, step=True):
    """Re-run Adam on the recorded inputs. The data is one point repeated, so the noise behind each
    x_t is known: eps = (x_t - sqrt(a) x0) / sqrt(1 - a)."""
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for x_t, t in calls:
        a = alpha_bars[t][:, None]
        eps = (x_t - a.sqrt() * centre) / (1 - a).sqrt()
        loss = F.mse_loss(model(x_t, t), eps)
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        if step:
            opt.step()
        losses.append(loss.item())
    return losses


@check
def check_train_toy(train_toy):
    """Trains a small MLP for a few steps on data that is one repeated point, records what the model
    saw, and replays Adam on exactly those inputs: the losses and final weights must agree."""
    import copy

    from curriculum.solutions.chapter4.toy_diffusion import (
        MLPDenoiser,
        Schedule,
        ToyTrainConfig,
        linear_betas,
    )

    sched = Schedule(linear_betas(100, 1e-3, 0.2))
    centre = torch.tensor([0.7, -0.4])
    data = centre.expand(64, 2).clone()
    cfg = ToyTrainConfig(n_steps=6, batch_size=16, lr=0.02, seed=3)
    torch.manual_seed(0)
    init = MLPDenoiser(d_hidden=16, d_time=8)
    spy = _Recorder(copy.deepcopy(init))
    losses = train_toy(spy, data, sched, cfg)
    if losses is None:
        fail("train_toy returned None: return the list of losses")
    if not isinstance(losses, list) or not all(isinstance(v, float) for v in losses):
        fail("train_toy should return a list of Python floats: append loss.item() (a tensor keeps its whole graph alive)")
    if len(losses) != cfg.n_steps:
        fail(f"train_toy ran {len(losses)} steps (losses recorded), expected cfg.n_steps = {cfg.n_steps}")
    if len(spy.calls) != cfg.n_steps:
        fail(f"the model was called {len(spy.calls)} times in {cfg.n_steps} steps: compute the loss once per step")
    sizes = {len(x) for x, _ in spy.calls}
    if sizes != {cfg.batch_size}:
        fail(f"the model saw batches of size {sorted(sizes)}, expected cfg.batch_size = {cfg.batch_size}")
    replays = {}
    for name, kw in [("right", {}), ("no_zero_grad", {"zero_grad": False}), ("no_step", {"step": False})]:
        twin = copy.deepcopy(init)
        replays[name] = (_replay(twin, spy.calls, centre, sched.alpha_bars, cfg.lr, **kw), twin)
    messages = {
        "no_zero_grad": "gradients accumulate across steps: call opt.zero_grad() before loss.backward() in every step",
        "no_step": "the weights never change: call opt.step() after loss.backward()",
    }

    def same(a, b):
        return all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6) for x, y in zip(a, b))

    right_losses, right_model = replays["right"]
    if not same(losses, right_losses):
        for name, msg in messages.items():
            if same(losses, replays[name][0]):
                fail(msg)
        first = "matches" if same(losses[:1], right_losses[:1]) else "differs too"
        fail(f"the losses differ from Adam replayed on the same inputs: expected {[round(v, 4) for v in right_losses]}, "
             f"got {[round(v, 4) for v in losses]} (the first {first}). Use torch.optim.Adam(model.parameters(), lr=cfg.lr), "
             "and in each step: loss, opt.zero_grad(), loss.backward(), opt.step(), then record loss.item()")
    for (name, p), q in zip(spy.inner.named_parameters(), right_model.parameters()):
        assert_close(p, q, f"parameter {name} after training", atol=1e-5, rtol=1e-4,
                     hint="the weights should be those after the last opt.step()")
    spy2 = _Recorder(copy.deepcopy(init))
    again = train_toy(spy2, data, sched, cfg)
    if not same(again, losses):
        fail("two runs with the same cfg.seed gave different losses: call torch.manual_seed(cfg.seed) at the start")
    return f"losses and weights match Adam replayed on your batches; first loss {losses[0]:.3f}, last {losses[-1]:.3f}"
