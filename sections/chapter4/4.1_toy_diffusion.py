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
# variance at 1, so after enough steps x_t is exactly N(0, I) whatever the data.
#
# DDPM (Ho et al. 2020) uses betas rising **linearly** from 1e-4 to 0.02 over T = 1000 steps.
# Improved DDPM (Nichol & Dhariwal 2021) noticed that this destroys most of the signal long before
# the end: many steps are wasted on near-pure noise. Their **cosine** schedule is defined through the
# cumulative signal instead (formula in the docstring). Write both.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:linear_betas,cosine_betas
tests.check_linear_betas(linear_betas)
tests.check_cosine_betas(cosine_betas)

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
# This is what makes training cheap: any timestep of any example in one line. Write `add_noise` so it
# works for points (batch, 2) and images (batch, C, H, W) alike, with one t per example.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:add_noise
tests.check_add_noise(add_noise)

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

# %% exercise curriculum.solutions.chapter4.toy_diffusion:sinusoidal_embedding
tests.check_sinusoidal_embedding(sinusoidal_embedding)

# %% [markdown]
# `MLPDenoiser` (given) concatenates [x_t, embedding(t)] and applies an MLP with two hidden layers.
#
# Why predict the noise? The ELBO of the model reduces (up to per-timestep weights, which Ho et al.
# simply drop) to regression: ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2
# with t uniform. Predicting eps keeps the target at unit scale at every t, which the network finds
# much easier than predicting x_0 directly at high noise. Write the loss.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:diffusion_loss
tests.check_diffusion_loss(diffusion_loss)

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

# %% exercise curriculum.solutions.chapter4.toy_diffusion:ddpm_step
tests.check_ddpm_step(ddpm_step)

# %% [markdown]
# Now the loop: x_{T-1} ~ N(0, I), then one step for each t = T-1, ..., 0 with fresh noise. The
# check feeds your sampler the *exact* noise predictor of a Gaussian dataset and replays the same
# random numbers through diffusers' loop.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:ddpm_sample
tests.check_ddpm_sample(ddpm_sample)

# %%
frames: list[torch.Tensor] = []
samples = ddpm_sample(model, (2000, 2), sched, generator=torch.Generator().manual_seed(0), record=frames, record_every=T // 5)
scatter_panels(frames, [f"t = {T - 1 - i * (T // 5)}" if i < len(frames) - 1 else "sample" for i in range(len(frames))])

# %% [markdown]
# Most of the structure appears in the last fifth of the steps: at high noise the model can only
# move points towards the data's overall mean; the fine detail (the roll's spiral arms) is decided
# when little noise is left. At CI size the model is tiny and trained briefly, so the spiral is
# blurry; at the learner default (a few minutes on CPU) it is sharp.
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
