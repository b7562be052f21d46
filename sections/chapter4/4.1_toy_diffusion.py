# %% [markdown]
# # 4.1 Diffusion from scratch on toy data
#
# A diffusion model learns to undo a fixed, gradual corruption. The **forward process** adds a little
# Gaussian noise at each of T steps until the data is indistinguishable from N(0, I); a network is
# trained to predict the noise that was added; the **reverse process** starts from pure noise and
# removes the predicted noise step by step, producing new samples.
#
# Everything here is on 2-D points (a swiss roll and a ring of Gaussians), where a sample is a dot
# you can see and a model trains in seconds. The maths and most of the code carry over unchanged to
# images in 4.2: only the denoiser grows from an MLP to a U-Net.
#
# You will
# 1. write the linear and cosine noise schedules, and the closed form of q(x_t | x_0);
# 2. write the sinusoidal timestep embedding and the epsilon-prediction loss, and train an MLP;
# 3. write one DDPM reverse step and the sampling loop, and watch noise turn into a swiss roll.
#
# Checks compare your schedules, `add_noise` and sampling step numerically with Hugging Face
# `diffusers` (an independent implementation). The reference is `curriculum/solutions/chapter4/toy_diffusion.py`.

# %% setup
import math

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from plotly.subplots import make_subplots
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter4.toy_diffusion import (
    MLPDenoiser,
    Schedule,
    ToyTrainConfig,
    _broadcast,
    gaussian_mixture,
    swiss_roll,
    to_numpy,
    train_toy,
)
from curriculum.checks.chapter4 import toy_diffusion as tests
from curriculum.utils import full_or_quick
from curriculum.utils.plotting import line

# %% [markdown]
# ## The data
#
# Two 2-D datasets, scaled so each axis has roughly unit variance (the noise we add is N(0, I), so
# data on a wildly different scale would make the schedule meaningless).

# %%
def scatter_panels(point_sets, titles, size=2.5, lim=3.5):
    """One scatter plot per (n, 2) tensor, side by side with equal axes."""
    fig = make_subplots(rows=1, cols=len(point_sets), subplot_titles=titles, horizontal_spacing=0.03)
    for i, pts in enumerate(point_sets):
        xy = to_numpy(pts)
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", marker=dict(size=size, opacity=0.5)), row=1, col=i + 1)
    fig.update_xaxes(range=[-lim, lim], showticklabels=False)
    fig.update_yaxes(range=[-lim, lim], showticklabels=False, scaleanchor="x")
    fig.update_layout(showlegend=False, height=300, width=230 * len(point_sets) + 40, template="simple_white", margin=dict(t=40, b=10))
    fig.show()


roll, ring = swiss_roll(5000), gaussian_mixture(5000)
scatter_panels([roll, ring], ["swiss roll", "mixture of 8 Gaussians"])

# %% [markdown]
# ## Noise schedules
#
# The forward process is a Markov chain q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
# with small variances beta_0, ..., beta_{T-1}. Shrinking by sqrt(1 - beta_t) keeps the total
# variance at 1 for data of unit variance, and after enough steps x_t is close to N(0, I) whatever
# the data: the signal that survives is sqrt(alpha_bar_T) x_0, which is small but not zero.
#
# DDPM (Ho et al. 2020) uses betas rising **linearly** from 1e-4 to 0.02 over T = 1000 steps.
# Improved DDPM (Nichol & Dhariwal 2021) noticed that this destroys most of the signal long before
# the end: many steps are wasted on near-pure noise. Their **cosine** schedule is defined through the
# cumulative signal instead (formula in the docstring).
#
# ### Exercise: the linear schedule
#
# The warm-up: `n_steps` betas evenly spaced from `beta_start` to `beta_end`, both ends included.
# The check compares with diffusers' `DDPMScheduler(beta_schedule="linear")`.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:linear_betas difficulty=1 importance=3 minutes=5
tests.check_linear_betas(linear_betas)

# %% hint
# One torch function makes evenly spaced values with both end points included.

# %% hint
# `torch.linspace(beta_start, beta_end, n_steps)`; ask for `dtype=torch.float32` so the schedule
# matches the check's dtype.

# %% [markdown]
# ### Exercise: the cosine schedule
#
# Here you choose the curve of alpha_bar first and derive the betas from it: since
# alpha_bar_t = alpha_bar_{t-1} (1 - beta_t), each beta is one minus the ratio of consecutive values
# of f. Clipping at `max_beta` stops the last step from destroying the remaining signal in one go
# (f reaches 0 at u = 1, so the final ratio would be 0 and beta would be 1). The check compares
# with diffusers' `squaredcos_cap_v2` schedule.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:cosine_betas difficulty=2 importance=3 minutes=10
tests.check_cosine_betas(cosine_betas)

# %% hint
# You need f at the T + 1 points u = 0, 1/T, ..., 1; beta_t uses the pair f((t+1)/T) and f(t/T).

# %% hint
# Build `u = torch.arange(n_steps + 1) / n_steps` in float64, compute `f` on all of it at once, then
# `1 - f[1:] / f[:-1]` gives all T betas; `.clamp(max=max_beta)` and convert to float32 at the end.
# Computing in float32 instead drifts from the reference near the end of the schedule.

# %% [markdown]
# `Schedule` (already written) precomputes alpha_t = 1 - beta_t and the cumulative product
# alpha_bar_t = alpha_0 alpha_1 ... alpha_t: how much of the original signal survives to step t.
# Compare how quickly each schedule destroys it. The quantity that matters to the network is the
# signal-to-noise ratio alpha_bar / (1 - alpha_bar): the cosine schedule spends far more steps at
# moderate SNR, where there is still something to learn.

# %%
T = 1000
lin, cos = Schedule(linear_betas(T)), Schedule(cosine_betas(T))
line({"linear": lin.alpha_bars, "cosine": cos.alpha_bars}, xlabel="t", ylabel="alpha_bar_t", title="Signal kept after t steps")

# %% [markdown]
# ## The forward process in closed form
#
# Composing T Gaussian steps gives a Gaussian: q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).
# So we never simulate the chain: to get x_t, draw eps ~ N(0, I) once and set
#
#     x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.
#
# This is what makes training cheap: any timestep of any example in one line.
#
# ### Exercise: noising in closed form
#
# Write `add_noise` so it works for points (batch, 2) and images (batch, C, H, W) alike, with one t
# per example. The check compares with diffusers' `DDPMScheduler.add_noise` on both shapes, with a
# different t for every example.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:add_noise difficulty=2 importance=5 minutes=10
tests.check_add_noise(add_noise)

# %% hint
# `alpha_bars[t]` picks one alpha_bar per example, a tensor of shape (batch,). It has to multiply
# every element of that example, so it needs trailing singleton axes to broadcast against x0.

# %% hint
# The module's `_broadcast(values, like)` helper reshapes a (batch,) tensor to (batch, 1, ..., 1)
# with as many axes as `like`. Then the formula is one line: `sqrt(a_bar) * x0 + sqrt(1 - a_bar) * noise`.
# A common slip is `sqrt(beta)` or `(1 - a_bar)` without the square root: the check's images would
# then have the wrong variance.

# %%
shown_t = [0, 100, 250, 500, 999]
x0 = roll[:2000]
noisy = [add_noise(x0, torch.randn_like(x0), torch.full((len(x0),), t), lin.alpha_bars) for t in shown_t]
scatter_panels(noisy, [f"t = {t}" for t in shown_t])

# %% [markdown]
# ## The denoiser and its training objective
#
# The network eps_theta(x_t, t) sees a noisy point and the timestep, and predicts the noise. It
# needs t as *features*: a raw integer from 0 to 999 is a poor input to a linear layer. We use the
# Transformer's sinusoidal features: sines and cosines of t at geometrically spaced frequencies.
#
# ### Exercise: timestep features
#
# The layout matters because the check compares with diffusers' `get_timestep_embedding` (with
# `flip_sin_to_cos=False`, `downscale_freq_shift=0`): all the sines first, then all the cosines.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:sinusoidal_embedding difficulty=2 importance=3 minutes=10
tests.check_sinusoidal_embedding(sinusoidal_embedding)

# %% hint
# With h = dim // 2 there are h frequencies w_i = max_period^(-i / h) for i = 0..h-1. Each example's
# t is multiplied by every frequency: that is an outer product of shapes (batch,) and (h,).

# %% hint
# `freqs = torch.exp(-math.log(max_period) * torch.arange(h) / h)`, `angles = t.float()[:, None] * freqs[None, :]`,
# then `torch.cat([angles.sin(), angles.cos()], dim=-1)`. Interleaving sin and cos, or dividing by
# `h - 1` instead of `h`, gives features the check reports as differing.

# %% [markdown]
# `MLPDenoiser` (given) concatenates [x_t, embedding(t)] and applies an MLP with two hidden layers.
#
# Why predict the noise? The ELBO of the model reduces (up to per-timestep weights, which Ho et al.
# simply drop) to regression: ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2
# with t uniform. Predicting eps keeps the target at unit scale at every t, which the network finds
# much easier than predicting x_0 directly at high noise.
#
# ### Exercise: the training loss
#
# Write the loss for one batch. The check passes its own t and noise (so your result is
# deterministic) and compares with a direct computation; it also calls it without them to make sure
# you draw both yourself when they are missing.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:diffusion_loss difficulty=2 importance=5 minutes=10
tests.check_diffusion_loss(diffusion_loss)

# %% hint
# Three steps: get a timestep per example and a noise tensor shaped like x0 (only if the caller
# gave none), make x_t with your `add_noise`, and compare the model's prediction with the noise.

# %% hint
# `t = torch.randint(0, len(alpha_bars), (batch,), device=x0.device)`, `noise = torch.randn_like(x0)`;
# the model is called as `model(x_t, t, **model_kwargs)`; `F.mse_loss(prediction, noise)` averages
# over every element. Comparing with x0 instead of the noise is the classic mix-up.

# %%
sched = Schedule(linear_betas(T))
model = MLPDenoiser(d_hidden=full_or_quick(256, 64))
losses = train_toy(model, roll, sched, ToyTrainConfig(n_steps=full_or_quick(8000, 300), batch_size=full_or_quick(1024, 256)))
line(losses, smooth=100, title="epsilon-prediction loss on the swiss roll", ylabel="MSE")

# %% [markdown]
# The loss never gets near 0: at large t the noise is nearly unpredictable from x_t, however good the
# model. What matters is that the loss at small and moderate t is low.
#
# ## Sampling: DDPM's reverse process
#
# Given x_t and the predicted noise, the reverse step needs q(x_{t-1} | x_t, x_0), the *posterior*
# of the forward process, which is Gaussian with a known mean and variance. We don't know x_0,
# so we plug in the model's estimate x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).
# This is exactly what `diffusers`' DDPMScheduler does; the docstring has all three formulas.
#
# Watch the indices: alpha_bar_{t-1} is the *previous* cumulative product (1 at t = 0), and the
# variance is the posterior variance beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), which
# vanishes at t = 0 (the last step adds no noise).
#
# ### Exercise: one reverse step
#
# The check runs your step against diffusers' `DDPMScheduler.step` at several t, including t = 0
# and with and without clamping x0_hat.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:ddpm_step difficulty=3 importance=5 minutes=20
tests.check_ddpm_step(ddpm_step)

# %% hint
# Work in the order of the docstring: x0_hat from x_t and eps, then the two coefficients of the
# posterior mean, then the variance. Get alpha_bar_t and alpha_bar_{t-1} first, with
# alpha_bar_{-1} = 1 as a special case at t = 0.

# %% hint
# alpha_t = alpha_bar_t / alpha_bar_{t-1} and beta_t = 1 - alpha_t. Clamp x0_hat *before* it enters
# the mean. At t = 0 return the mean alone; elsewhere add `sqrt(variance) * noise`. Using
# `beta_t` itself as the variance (the "fixed_large" choice) is a real option, but not the one the
# check expects.

# %% [markdown]
# Now the loop: x_{T-1} ~ N(0, I), then one step for each t = T-1, ..., 0 with fresh noise. The
# check feeds your sampler the *exact* noise predictor of a Gaussian dataset and replays the same
# random numbers through diffusers' loop.
#
# ### Exercise: the sampling loop

# %% exercise curriculum.solutions.chapter4.toy_diffusion:ddpm_sample difficulty=2 importance=5 minutes=15
tests.check_ddpm_sample(ddpm_sample)

# %% hint
# The order of random draws is part of the contract: first x from `generator`, then, inside the loop
# over t = T-1 down to 0, one fresh noise tensor per step, also from `generator`. Draw on the CPU and
# move to `device` afterwards, so the numbers do not depend on the device.

# %% hint
# The model takes a batch of timesteps: `torch.full((batch,), t, dtype=torch.long)`. Each iteration is
# `x = ddpm_step(model(x, t_batch), t, x, sched, noise, clip_x0)`. For the plots, append `x.cpu()` to
# `record` every `record_every` steps and once more at the end.

# %%
frames: list[torch.Tensor] = []
samples = ddpm_sample(model, (2000, 2), sched, generator=torch.Generator().manual_seed(0), record=frames, record_every=T // 5)
scatter_panels(frames, [f"t = {T - 1 - i * (T // 5)}" if i < len(frames) - 1 else "sample" for i in range(len(frames))])

# %% [markdown]
# Most of the structure appears in the last fifth of the steps: at high noise the model can only
# move points towards the data's overall mean; the fine detail (the roll's spiral arms) is decided
# when little noise is left. In quick mode the model is tiny and trained briefly, so the spiral is
# blurry; at the default full size (a few minutes on a CPU) it should come out sharp.
#
# ## Trajectories
#
# Follow individual points through the reverse process: each path wanders at high noise and then
# commits to a place on the data manifold.

# %%
traj: list[torch.Tensor] = []
ddpm_sample(model, (12, 2), sched, generator=torch.Generator().manual_seed(1), record=traj, record_every=10)
paths = to_numpy(torch.stack(traj))  # (frames, 12, 2)
fig = go.Figure()
bg = to_numpy(roll[:1500])
fig.add_scattergl(x=bg[:, 0], y=bg[:, 1], mode="markers", marker=dict(size=2, color="lightgrey"), name="data")
for i in range(paths.shape[1]):
    fig.add_scatter(x=paths[:, i, 0], y=paths[:, i, 1], mode="lines", line=dict(width=1), showlegend=False)
    fig.add_scatter(x=paths[-1:, i, 0], y=paths[-1:, i, 1], mode="markers", marker=dict(size=7), showlegend=False)
fig.update_yaxes(scaleanchor="x")
fig.update_layout(title="Denoising trajectories (dots: final samples)", height=450, width=500, template="simple_white")
fig.show()

# %% [markdown]
# ## Your turn: the mixture of Gaussians, and the cosine schedule
#
# Train the same model on `ring` with the cosine schedule. Modes are a good test of a sampler: a
# model that under-fits blurs the eight blobs into a ring, and a sampler with the wrong variance
# either shrinks each blob (too little noise) or smears it (too much).

# %%
cos_sched = Schedule(cosine_betas(T))
ring_model = MLPDenoiser(d_hidden=full_or_quick(256, 64))
train_toy(ring_model, ring, cos_sched, ToyTrainConfig(n_steps=full_or_quick(8000, 300), batch_size=full_or_quick(1024, 256)))
ring_samples = ddpm_sample(ring_model, (2000, 2), cos_sched, generator=torch.Generator().manual_seed(0))
scatter_panels([ring[:2000], ring_samples], ["data", "samples (cosine schedule)"])

# %% [markdown]
# ## Summary
#
# - The forward process has a closed form, so training is regression on (x_t, t) -> eps at random t.
# - The schedule decides how the T steps are spent; cosine wastes fewer on pure noise than linear.
# - DDPM sampling is T network calls: next, in 4.2, a U-Net on images, and DDIM, which needs 20x fewer.

# %% [markdown]
# ## Further reading
#
# - [Ho, Jain & Abbeel (2020), *Denoising Diffusion Probabilistic Models*](https://arxiv.org/abs/2006.11239):
#   the paper this section implements; section 3 derives the noise-prediction loss from the variational bound.
# - [Sohl-Dickstein et al. (2015), *Deep Unsupervised Learning using Nonequilibrium Thermodynamics*](https://arxiv.org/abs/1503.03585):
#   where the forward/reverse diffusion idea comes from.
# - [Nichol & Dhariwal (2021), *Improved Denoising Diffusion Probabilistic Models*](https://arxiv.org/abs/2102.09672):
#   the cosine schedule, and why the linear one wastes steps.
# - [Lilian Weng, *What are Diffusion Models?*](https://lilianweng.github.io/posts/2021-07-11-diffusion-models/):
#   one careful walk through all the algebra of the forward process and its posterior.
