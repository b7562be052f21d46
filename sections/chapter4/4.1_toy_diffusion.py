# %% [markdown]
# # 4.1 Diffusion from scratch on toy data
#
# A diffusion model learns to undo a fixed, gradual corruption. The **forward process** adds a little
# Gaussian noise at each of T steps, until what is left is very close to a sample of N(0, I) (close,
# not equal: a small fraction of the data survives, and you will print how small). A network is
# trained to predict the noise that was added; the **reverse process** starts from fresh noise and
# removes the predicted noise step by step, producing new samples.
#
# ![The forward chain x_0 -> x_1 -> ... -> x_T, each step q(x_t | x_{t-1}) shrinking and adding noise; the reverse chain p_theta(x_{t-1} | x_t) going back; a dashed arrow from x_0 straight to x_t for the closed form q(x_t | x_0)](figures/4.1_chains.svg)
#
# The picture above is the whole section. The red arrows are fixed: nothing is learned about how
# data is destroyed. The blue arrows are the model, one small Gaussian step each, and they all share
# one network that is told which step t it is at. The dashed arrow is what makes training cheap:
# you can jump from x_0 to any x_t in one draw, without walking the chain.
#
# Everything here is on 2-D points (a swiss roll and a ring of Gaussians), where a sample is a dot
# you can see and a model trains in seconds. The maths and most of the code carry over unchanged to
# images in 4.2: only the denoiser grows from an MLP to a U-Net.
#
# You will
# 1. write the linear and cosine noise schedules, and the closed form of q(x_t | x_0);
# 2. derive the training objective from the variational bound, write the forward-process posterior
#    q(x_{t-1} | x_t, x_0) that the derivation produces, and see why it becomes a plain noise-prediction MSE;
# 3. write the timestep embedding, the loss and the training loop, and train an MLP;
# 4. write one DDPM reverse step and the sampling loop, and watch noise turn into a swiss roll.
#
# Checks compare your schedules, `add_noise` and sampling step numerically with Hugging Face
# `diffusers` (an independent implementation), and your posterior with a product of two Gaussians
# worked out separately. The reference is `curriculum/solutions/chapter4/toy_diffusion.py`.

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
)
from curriculum.checks.chapter4 import toy_diffusion as tests
from curriculum.utils import full_or_quick
from curriculum.utils.plotting import line

# %% [markdown]
# ## The data
#
# Two 2-D datasets, scaled so each axis has a standard deviation of order 1: about 0.85 for the
# swiss roll, and about 1.4 for the eight Gaussians on a circle of radius 2 (each axis of a point on
# that circle has variance 2²/2 = 2). That scaling is not cosmetic: the noise added is N(0, I), so the
# schedule's notion of "a little noise" and "mostly noise" is measured against data of size about 1. Data ten times larger would still be clearly visible
# after the step where unit-size data has faded, and the last step would not be close to N(0, I).

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
# The forward process is a Markov chain
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\, x_{t-1},\ \beta_t I\big),\qquad t = 1, \dots, T,$$
#
# with small variances $\beta_1, \dots, \beta_T$ (the **schedule**). Each step shrinks the point a
# little and adds a little noise. Why shrink? Track the variance of one coordinate: if
# $\operatorname{Var}(x_{t-1}) = v$, then $\operatorname{Var}(x_t) = (1-\beta_t) v + \beta_t$. For
# $v = 1$ this is again 1, so unit-variance data keeps unit variance at every step and the last step
# has the same scale as the N(0, I) it is supposed to resemble. That is a property of unit-variance
# data only. For data of variance $s^2$, the variance after t steps is
# $\bar\alpha_t s^2 + (1 - \bar\alpha_t)$ (with $\bar\alpha_t$ defined below): it slides from $s^2$
# towards 1, and for $s = 3$ it is still above 1 long after unit-variance data has become noise. The
# code cell after the schedules prints both cases.
#
# Without the shrinking factor the variance would grow as $1 + \sum \beta_t$ and never approach a
# fixed distribution; with it, the signal decays geometrically and the noise takes its place.
#
# DDPM (Ho et al. 2020) uses betas rising **linearly** from 1e-4 to 0.02 over T = 1000 steps.
# Improved DDPM (Nichol & Dhariwal 2021) noticed that this destroys most of the signal long before
# the end: many steps are spent on near-pure noise. Their **cosine** schedule is defined through the
# cumulative signal instead (formula in the docstring).
#
# A word on indices. The maths numbers the noising steps $t = 1, \dots, T$ with $x_0$ the data, as
# in the papers. The code follows diffusers and numbers them from 0: `betas[0]` is $\beta_1$,
# `alpha_bars[t]` is $\bar\alpha_{t+1}$, and "step `t` = 0" in a loop is the paper's $t = 1$, the
# last step of sampling. The code's convention "$\bar\alpha_{t-1} = 1$ at t = 0" is the paper's
# $\bar\alpha_0 = 1$: nothing has been destroyed before the first step.
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
# of f. Near the end, f falls towards 0 (it reaches 0 at u = 1), so the last ratios approach 0 and
# the last betas approach 1. A beta of exactly 1 makes alpha_t = 1 - beta_t = 0, and the reverse step
# divides by sqrt(alpha_t) (and by sqrt(alpha_bar_t) to estimate x_0): the sampler's first step would
# divide by zero. Clipping at `max_beta` = 0.999 keeps every alpha_t at least 0.001, a singularity
# avoided at no cost, since so little signal is left at that point that the exact value hardly matters. The check compares
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
# `Schedule` (already written) precomputes $\alpha_t = 1 - \beta_t$ and the cumulative product
# $\bar\alpha_t = \alpha_1 \alpha_2 \cdots \alpha_t$: the fraction of the original signal's
# variance that survives to step t. Compare how quickly each schedule destroys it.

# %%
T = 1000
lin, cos = Schedule(linear_betas(T)), Schedule(cosine_betas(T))
line({"linear": lin.alpha_bars, "cosine": cos.alpha_bars}, xlabel="t", ylabel="alpha_bar_t", title="Signal kept after t steps")

# %% [markdown]
# The same two curves, drawn by hand next to the quantity that matters more to the network, the
# **signal-to-noise ratio** $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$ on a log scale:
#
# ![Left: alpha_bar_t against t for the linear schedule (solid, reaching about 0 by t = 750) and the cosine schedule (dashed, a slow S-curve reaching 0 at t = 1000). Right: the SNR on a log scale from 10^4 down; the linear curve crosses SNR = 1 near t = 250 and ends near 4e-5, the cosine one crosses near t = 500 and plunges below 1e-8 in the last steps](figures/4.1_schedules.svg)
#
# What to read off it. SNR = 1 (the dotted line) is where signal and noise have equal variance:
# below it the network mostly sees noise. The linear schedule crosses it about a quarter of the way
# in, so three quarters of its steps are spent at SNR below 1, and the last few hundred below 0.01,
# where a 2-D point carries almost no information about where it came from. The cosine schedule
# crosses near the middle and falls roughly linearly in log-SNR, spreading the steps more evenly over
# the noise levels where there is something to learn.
#
# Neither reaches SNR = 0. The last step is **only approximately** N(0, I): $x_T = \sqrt{\bar\alpha_T}\, x_0 +
# \sqrt{1-\bar\alpha_T}\, \varepsilon$ still contains a sliver of the data. Sampling starts from an
# exact N(0, I) anyway, a mismatch that is negligible when $\bar\alpha_T$ is this small (the next
# cell prints it) but that matters for schedules that stop earlier. The cell also prints the variance
# of $x_t$ for unit-variance data and for data with standard deviation 3, from the formula
# $\bar\alpha_t s^2 + 1 - \bar\alpha_t$.

# %%
for name, sch in [("linear", lin), ("cosine", cos)]:
    a_T = sch.alpha_bars[-1].item()
    print(f"{name:6s}: alpha_bar_T = {a_T:.3g}, so x_T keeps sqrt(alpha_bar_T) = {a_T ** 0.5:.3g} of x_0")
print("\nvariance of x_t (linear schedule) for data of std s:")
for t in [0, 99, 249, 499, 999]:
    a = lin.alpha_bars[t].item()
    print(f"  paper t = {t + 1:4d}: alpha_bar = {a:.4f}   s = 1: {a * 1 + (1 - a):.3f}   s = 3: {a * 9 + (1 - a):.3f}")

# %% [markdown]
# ## The forward process in closed form
#
# Two steps of the chain, written with independent standard normals $\varepsilon_1, \varepsilon_2$:
# $x_1 = \sqrt{\alpha_1} x_0 + \sqrt{1-\alpha_1}\, \varepsilon_1$ and
# $x_2 = \sqrt{\alpha_2} x_1 + \sqrt{1-\alpha_2}\, \varepsilon_2
#      = \sqrt{\alpha_1\alpha_2}\, x_0 + \sqrt{\alpha_2(1-\alpha_1)}\, \varepsilon_1 + \sqrt{1-\alpha_2}\, \varepsilon_2.$
# The two noise terms are independent Gaussians, so their sum is one Gaussian whose variance is the
# sum of theirs, $\alpha_2 - \alpha_1\alpha_2 + 1 - \alpha_2 = 1 - \alpha_1\alpha_2$. The same
# argument, repeated, gives for every t
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, x_0,\ (1-\bar\alpha_t) I\big),
# \qquad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,\quad \varepsilon \sim \mathcal N(0, I).$$
#
# So you never simulate the chain: to get $x_t$, draw one $\varepsilon$ and mix. This is what makes
# training cheap: any timestep of any example in one line. It also hands you the pair
# $(x_t, \varepsilon)$ that the loss below needs: the noise is not a by-product, it is the target.
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
# `MLPDenoiser` (given) concatenates $[x_t, \mathrm{embedding}(t)]$ and applies an MLP with two
# hidden layers. Before you write its loss, here is where the loss comes from.
#
# ## Where the loss comes from
#
# ### The variational bound
#
# The model is the reverse chain: $p(x_T) = \mathcal N(0, I)$ and learned Gaussian steps
# $p_\theta(x_{t-1} \mid x_t)$, so $p_\theta(x_{0:T}) = p(x_T) \prod_{t=1}^T p_\theta(x_{t-1} \mid x_t)$.
# The probability it gives to a data point, $p_\theta(x_0) = \int p_\theta(x_{0:T})\, dx_{1:T}$, is an
# integral over every path, which nobody can compute. As in a VAE, bound it instead, using the
# forward chain as the "encoder": for any distribution over paths, Jensen's inequality gives
#
# $$\log p_\theta(x_0) = \log \mathbb E_{q(x_{1:T} \mid x_0)}\Big[\frac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)}\Big]
# \ \ge\ \mathbb E_{q}\Big[\log \frac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)}\Big] =: -L.$$
#
# Minimising $L$ pushes up a lower bound on the log-likelihood. Here the encoder $q$ is fixed, so
# only the decoder learns.
#
# ### From the bound to a sum of KL terms
#
# Write both chains as products, $q(x_{1:T} \mid x_0) = \prod_t q(x_t \mid x_{t-1})$. The ratio
# inside the log is then a sum over steps, and each term compares a *backward* model step with a
# *forward* noising step, which is awkward: they go in opposite directions. The trick is to turn the
# forward step around with Bayes' rule. Because the chain is Markov, $q(x_t \mid x_{t-1}) = q(x_t \mid x_{t-1}, x_0)$, and
#
# $$q(x_t \mid x_{t-1}, x_0) = \frac{q(x_{t-1} \mid x_t, x_0)\, q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)}.$$
#
# Substitute this for every step with $t \ge 2$. The factors $q(x_t \mid x_0) / q(x_{t-1} \mid x_0)$
# multiply to $q(x_T \mid x_0) / q(x_1 \mid x_0)$ (a telescoping product), and the leftover
# $q(x_1 \mid x_0)$ cancels the $t = 1$ step's denominator. What remains, with the expectation taken
# term by term, is
#
# $$L = \underbrace{D_{\mathrm{KL}}\big(q(x_T \mid x_0)\,\|\,p(x_T)\big)}_{L_T} +
# \sum_{t=2}^{T} \underbrace{\mathbb E_{q(x_t \mid x_0)}\, D_{\mathrm{KL}}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t)\big)}_{L_{t-1}}
# \ \underbrace{-\ \mathbb E_{q(x_1 \mid x_0)} \log p_\theta(x_0 \mid x_1)}_{L_0}.$$
#
# Read it term by term. $L_T$ has no parameters: it measures how far the last noisy step is from the
# prior, and it is tiny because $\bar\alpha_T$ is tiny. $L_0$ is a reconstruction term for the very
# last denoising step. The bulk of the bound is the middle sum: at every step, the model's reverse
# step should match $q(x_{t-1} \mid x_t, x_0)$, the reverse step *you could take if you knew where
# the path started*. That distribution is the **forward-process posterior**, and it is Gaussian.
#
# ### The forward-process posterior
#
# By Bayes, $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)$: a product of
# two Gaussians in the variable $x_{t-1}$ (each coordinate separately, since all covariances are
# multiples of $I$).
#
# - The prior $q(x_{t-1} \mid x_0)$ has mean $\sqrt{\bar\alpha_{t-1}}\, x_0$ and variance $1 - \bar\alpha_{t-1}$: where
#   the closed form says $x_{t-1}$ should be.
# - The likelihood $q(x_t \mid x_{t-1}) \propto \exp\!\big(-(x_t - \sqrt{\alpha_t}\, x_{t-1})^2 / 2\beta_t\big)$, read as a function of
#   $x_{t-1}$, is a Gaussian with mean $x_t / \sqrt{\alpha_t}$ and variance $\beta_t / \alpha_t$: where the one
#   observed step says $x_{t-1}$ should be.
#
# The product of two Gaussians is a Gaussian whose precision (inverse variance) is the sum of the
# precisions and whose mean is the precision-weighted average of the means:
#
# $$\frac{1}{\tilde\beta_t} = \frac{\alpha_t}{\beta_t} + \frac{1}{1 - \bar\alpha_{t-1}}
# = \frac{\alpha_t (1 - \bar\alpha_{t-1}) + \beta_t}{\beta_t (1 - \bar\alpha_{t-1})}
# = \frac{1 - \bar\alpha_t}{\beta_t (1 - \bar\alpha_{t-1})},$$
#
# using $\alpha_t(1 - \bar\alpha_{t-1}) + 1 - \alpha_t = 1 - \bar\alpha_t$. So
#
# $$\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t, \qquad
# \tilde\mu_t(x_t, x_0) = \tilde\beta_t\Big(\frac{\sqrt{\alpha_t}}{\beta_t}\, x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1 - \bar\alpha_{t-1}}\, x_0\Big)
# = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\, x_0 + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\, x_t.$$
#
# Sanity checks you can do in your head. The variance $\tilde\beta_t$ is smaller than $\beta_t$
# (knowing $x_0$ removes uncertainty), and at $t = 1$ it is 0, because $x_0$ is then the answer.
# The $x_0$ coefficient carries $\beta_t$, the $x_t$ coefficient carries $1 - \bar\alpha_{t-1}$: when the
# step is small compared with the noise already accumulated, trust $x_t$; near the data, trust $x_0$.
# The next cell prints the numbers for the linear schedule, computed in float64.

# %%
lin64 = Schedule(linear_betas(T).double())  # float64: see the note below the table
print("paper t   coef of x_0   coef of x_t   beta_t      beta_tilde_t")
for t in [1, 2, 10, 100, 500, 1000]:
    i = t - 1  # code index
    a_bar, a_prev = lin64.alpha_bars[i].item(), (lin64.alpha_bars[i - 1].item() if i > 0 else 1.0)
    beta = lin64.betas[i].item()
    c0 = a_prev**0.5 * beta / (1 - a_bar)
    ct = (1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_bar)
    print(f"{t:7d}   {c0:11.4f}   {ct:11.4f}   {beta:.3e}   {beta * (1 - a_prev) / (1 - a_bar):.3e}")

# %% [markdown]
# At t = 1 the mean is $x_0$ exactly (coefficients 1 and 0) and the variance vanishes; at t = 2 the
# two are weighted about equally; from t around 100 on, the mean is almost all $x_t$ (a coefficient
# just under 1) with a small pull towards $x_0$, and $\tilde\beta_t$ is within a few percent of $\beta_t$.
# So the interesting part of the reverse step is a small, precise correction, which is why the
# network is asked for a correction (the noise) rather than a whole new point.
#
# A precision note: in float32 the t = 1 coefficient of $x_0$ comes out as 0.9998 instead of 1,
# because $1 - \bar\alpha_1 = 10^{-4}$ is computed from a number near 1 and keeps only about three
# significant digits. The same happens in your code below if you read `sched.betas`; deriving
# $\alpha_t$ and $\beta_t$ from `alpha_bars` gives exactly 1. The check accepts both.
#
# ### Exercise: the forward-process posterior
#
# Write `posterior_mean_variance(x0, x_t, t, sched)`, returning $\tilde\mu_t$ (shaped like `x_t`) and
# $\tilde\beta_t$ (a 0-d tensor), with the code's 0-based `t`. Sampling uses it with a *predicted*
# $x_0$, so get it right here, where the check can tell you exactly what is wrong. The check compares
# against the product of the two Gaussians computed separately in float64, on DDPM's schedule and on a
# coarse 20-step one where $\alpha_t$ is far from 1, and the variance with diffusers' scheduler. It
# recognises the usual mix-ups (swapped coefficients, $\bar\alpha_t$ where $\alpha_t$ belongs, $\beta_t$ as
# the variance, the t = 0 edge) and names them.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:posterior_mean_variance difficulty=2 importance=5 minutes=15
tests.check_posterior_mean_variance(posterior_mean_variance)

# %% hint
# Everything comes from two numbers: $\bar\alpha_t$ = `alpha_bars[t]` and $\bar\alpha_{t-1}$, the entry
# before it, which is 1 when t = 0. From them, $\alpha_t = \bar\alpha_t / \bar\alpha_{t-1}$ and
# $\beta_t = 1 - \alpha_t$.

# %% hint
# Python's `alpha_bars[t - 1]` at t = 0 is `alpha_bars[-1]`, the *last* entry: test `t > 0` and use
# `torch.tensor(1.0)` otherwise. Then compute the two coefficients of the mean from the formula above
# (the $\beta_t$ one goes with `x0`), and $\tilde\beta_t$ from the same ingredients.

# %% hint
# The shape of the code: `a_bar`, `a_bar_prev`, `alpha`, `beta`; then
# `coef_x0 = ...`, `coef_xt = ...`; return `coef_x0 * x0 + coef_xt * x_t, beta * (...) / (...)`. All the
# factors are 0-d tensors, so they broadcast over any batch shape without `_broadcast`.

# %% [markdown]
# ### From the posterior to predicting noise
#
# The model's reverse step is a Gaussian too, $p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)$,
# with a fixed variance $\sigma_t^2$ (DDPM tries $\beta_t$ and $\tilde\beta_t$ and finds both work). The
# KL divergence from $\mathcal N(\tilde\mu_t, \tilde\beta_t I)$ to $\mathcal N(\mu_\theta, \sigma_t^2 I)$ is a
# scaled squared distance between the means plus terms that involve only $\tilde\beta_t$ and $\sigma_t^2$,
# which do not depend on $\theta$ (the "const" below),
#
# $$L_{t-1} = \mathbb E_q\Big[\frac{1}{2\sigma_t^2}\big\|\tilde\mu_t(x_t, x_0) - \mu_\theta(x_t, t)\big\|^2\Big] + \text{const}.$$
#
# So the network's job is to output the posterior mean. That mean depends on $x_0$, which the
# network does not see; but $x_t$ and $x_0$ are tied together by the noise: $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$.
# Substitute into $\tilde\mu_t$. The coefficient of $x_t$ becomes
# $\frac{\alpha_t(1-\bar\alpha_{t-1}) + \beta_t}{(1-\bar\alpha_t)\sqrt{\alpha_t}} = \frac{1}{\sqrt{\alpha_t}}$ (the same identity as
# before, and $\sqrt{\bar\alpha_{t-1}/\bar\alpha_t} = 1/\sqrt{\alpha_t}$), and the coefficient of
# $\varepsilon$ becomes $-\beta_t / (\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t})$:
#
# $$\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,\varepsilon\Big).$$
#
# The network sees $x_t$, so the only unknown is $\varepsilon$. Give $\mu_\theta$ the same form with
# a learned $\varepsilon_\theta(x_t, t)$ in place of $\varepsilon$; the difference of means is then a
# multiple of $\varepsilon - \varepsilon_\theta$, and
#
# $$L_{t-1} = \mathbb E_{x_0, \varepsilon}\Big[\underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1 - \bar\alpha_t)}}_{\lambda_t}
# \big\|\varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t\big)\big\|^2\Big] + \text{const}.$$
#
# Predicting $x_0$ or $\tilde\mu_t$ directly would be equivalent on paper: all three are linear in
# each other given $x_t$. They differ in what the network finds easy. The noise has unit variance at
# every t, so the regression target is on one scale everywhere, while a direct $x_0$ prediction at
# high noise asks for the whole data point from almost nothing.
#
# ### Dropping the weights
#
# The bound is a sum over t of $\lambda_t$ times a noise-prediction error. Ho et al. drop the
# $\lambda_t$ and sample t uniformly (a sum over t is T times an average over uniform t):
#
# $$L_{\text{simple}} = \mathbb E_{t \sim \mathcal U\{1..T\},\ x_0,\ \varepsilon}\ \big\|\varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t\big)\big\|^2.$$
#
# Why is that allowed, and why is it better? Look at the weights, printed below for $\sigma_t^2 = \beta_t$:
# $\lambda_t = \beta_t / (2\alpha_t(1-\bar\alpha_t))$ is 0.5 at t = 1, falls fifty-fold by t = 100, and
# stays between about 0.005 and 0.01 from there to t = T. (With $\sigma_t^2 = \tilde\beta_t$ the picture is similar, and the t = 1 term needs separate
# treatment because $\tilde\beta_1 = 0$.) The exact bound therefore spends most of its weight on the
# smallest t, where denoising is easy and barely affects what samples look like. Dropping the weights
# shifts the effort towards larger t, the harder denoising problems that decide the global shape of a
# sample. It is not the log-likelihood bound any more, so you trade likelihood for sample quality;
# DDPM reports better samples with $L_{\text{simple}}$, and Improved DDPM later recovered good
# likelihoods by learning the variances. Every optimum is the same, though: a perfect
# $\varepsilon_\theta$ minimises each term separately, whatever its weight.

# %%
print("paper t   lambda_t (sigma^2 = beta_t)")
for t in [1, 2, 10, 100, 500, 1000]:
    i = t - 1
    beta, a_bar = lin64.betas[i].item(), lin64.alpha_bars[i].item()
    print(f"{t:7d}   {beta / (2 * (1 - beta) * (1 - a_bar)):.4f}")

# %% [markdown]
# ### Exercise: the training loss
#
# Write $L_{\text{simple}}$ for one batch, with the code's 0-based t drawn uniformly from 0 to T - 1.
# The check passes its own t and noise (so your result is deterministic) and compares with a direct
# computation; it also calls it without them to make sure you draw both yourself when they are missing.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:diffusion_loss difficulty=2 importance=5 minutes=10
tests.check_diffusion_loss(diffusion_loss)

# %% hint
# Three steps: get a timestep per example and a noise tensor shaped like x0 (only if the caller
# gave none), make x_t with your `add_noise`, and compare the model's prediction with the noise.

# %% hint
# `t = torch.randint(0, len(alpha_bars), (batch,), device=x0.device)`, `noise = torch.randn_like(x0)`;
# the model is called as `model(x_t, t, **model_kwargs)`; `F.mse_loss(prediction, noise)` averages
# over every element. Comparing with x0 instead of the noise is the classic mix-up.

# %% [markdown]
# ### Exercise: the training loop
#
# Now the loop that uses it: minibatch Adam on `diffusion_loss`. Each step picks `batch_size` random
# rows of the data (with replacement), computes the loss once, and takes one optimiser step; the
# function returns the loss of every step as a Python float. Seed torch with `cfg.seed` at the start,
# so that a rerun gives the same curve.
#
# The check trains a small MLP for a few steps on data that is a single repeated point. With that
# data the noise behind each $x_t$ the model saw can be recovered exactly, so the check can replay
# Adam on exactly your batches and compare the losses and the final weights. If they differ, it also
# replays the two classic bugs (no `zero_grad`, so gradients pile up across steps; no `step`, so the
# weights never move) and tells you if yours is one of them.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:train_toy difficulty=2 importance=4 minutes=10
tests.check_train_toy(train_toy)

# %% hint
# One step is: sample a batch, compute the loss, clear the old gradients, backpropagate, update. The
# optimiser has to be created once, before the loop, or Adam forgets its running averages every step.

# %% hint
# `torch.randint(len(data), (cfg.batch_size,))` gives row indices. `opt.zero_grad()` must come before
# `loss.backward()`: PyTorch adds new gradients to whatever is in `.grad`. Record `loss.item()`, not
# `loss`, or every step's graph stays in memory.

# %% hint
# The shape: `torch.manual_seed(...)`, `opt = torch.optim.Adam(model.parameters(), lr=...)`, an empty
# list, then `for _ in tqdm(range(cfg.n_steps)):` with five lines inside, and `return` the list.

# %% [markdown]
# Train on the swiss roll. At the full size (8,000 steps on batches of 1,024 points) this cell
# takes about a minute on a recent laptop CPU (an estimate) and about ten on 2 slow, shared CPU cores; the
# progress bar shows the estimate. Quick mode takes seconds.

# %%
sched = Schedule(linear_betas(T))
model = MLPDenoiser(d_hidden=full_or_quick(256, 64))
losses = train_toy(model, roll, sched, ToyTrainConfig(n_steps=full_or_quick(8000, 300), batch_size=full_or_quick(1024, 256)))
line(losses, smooth=100, title="epsilon-prediction loss on the swiss roll", ylabel="MSE")

# %% [markdown]
# The loss never gets near 0, and it should not: at large t, $x_t$ is almost pure noise, so the noise
# is almost exactly $x_t / \sqrt{1-\bar\alpha_t}$ and easy; at small t the point is nearly clean and the
# tiny noise on it cannot be told apart from the data's own spread, so part of it is unpredictable
# however good the model. The average over t settles at a level set by the data, not at 0. What to
# look for is a curve that falls quickly and then flattens; a curve that stays at 1 (what predicting
# zero gives) means the model ignores its input.
#
# ## Sampling: DDPM's reverse process
#
# The derivation says what a reverse step should be: the posterior $q(x_{t-1} \mid x_t, x_0)$, with the
# unknown $x_0$ replaced by the model's estimate
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$. Plugging $\hat x_0$ into
# $\tilde\mu_t$ is exactly the $\varepsilon$-form of the mean derived above; going through $\hat x_0$ has
# one practical advantage: you can clamp $\hat x_0$ to the range the data lives in (images in [-1, 1])
# before it enters the mean, which stops early, very noisy predictions from throwing samples far away.
# This is how diffusers' `DDPMScheduler` works, and the variance it uses by default is $\tilde\beta_t$.
#
# At the last step (code t = 0) the posterior variance is 0: return the mean, with no noise added.
#
# ### Exercise: one reverse step
#
# Combine the pieces: the $\hat x_0$ estimate (clamped if `clip_x0` is set), your
# `posterior_mean_variance`, and the noise: `mean + sqrt(variance) * noise`. The check runs your step
# against diffusers' `DDPMScheduler.step` at several t, including t = 0, with and without clamping, in
# two stages: first with `noise` all zeros, which isolates the posterior mean, then with real noise,
# which measures the scale you put on it. So a message about the mean points at $\hat x_0$ or the
# mean's coefficients, and a message about the noise scale at the variance ($\tilde\beta_t$, not
# $\beta_t$) or a forgotten square root.

# %% exercise curriculum.solutions.chapter4.toy_diffusion:ddpm_step difficulty=2 importance=5 minutes=10
tests.check_ddpm_step(ddpm_step)

# %% hint
# Invert the closed form $x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\varepsilon$ for $x_0$, with
# the predicted `eps` in place of the true noise. Then the posterior you wrote does the rest.

# %% hint
# Clamp $\hat x_0$ *before* it enters the mean (clamping the returned sample instead is a different,
# wrong algorithm). At t = 0 return the mean alone; elsewhere add `variance.sqrt() * noise`. Using
# $\beta_t$ itself as the variance (the "fixed_large" choice) is a real option, but not the one the
# check expects.

# %% [markdown]
# Now the loop: draw $x$ from N(0, I) (standing in for $x_T$, which is only approximately that, as
# printed earlier), then one step for each code t = T-1, ..., 0, with fresh noise each time. The
# check feeds your sampler the *exact* noise predictor of a Gaussian dataset and replays the same
# random numbers through diffusers' loop.
#
# ### Exercise: the sampling loop
#
# The trajectory plots below need the intermediate states: when `record` is a list, append a CPU copy
# of x *before* the step, at the first step and then every `record_every` steps, and the final sample
# after the loop. With T = 100 and `record_every=30` that is x before t = 99, 69, 39 and 9, then the
# result: 5 tensors. The check compares each one with diffusers' trajectory.

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
# when little noise is left. In quick mode the model is tiny and trained briefly: it learns little more
# than a Gaussian fit of the data, so expect a round blob with no spiral at all. At the default full
# size the spiral should come out sharp.
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
# - The forward process has a closed form, so training is regression on $(x_t, t) \to \varepsilon$ at random t.
# - The variational bound is a sum of KL terms between the forward-process posterior and the model's
#   reverse steps; both are Gaussian, so each term is a weighted squared error, and rewriting the
#   posterior mean in terms of the noise turns it into noise prediction. Dropping the weights gives
#   the simple loss, which trades likelihood for samples.
# - $x_T$ is only approximately N(0, I), and the variance stays 1 only for unit-variance data: scale
#   your data, and check $\bar\alpha_T$ when you choose a schedule.
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
# - [Kingma, Salimans, Poole & Ho (2021), *Variational Diffusion Models*](https://arxiv.org/abs/2107.00630):
#   rewrites the bound in terms of the signal-to-noise ratio plotted above; read it to see why only the
#   SNR at the two ends of a schedule changes the continuous-time bound.
# - [Luo (2022), *Understanding Diffusion Models: A Unified Perspective*](https://arxiv.org/abs/2208.11970):
#   the ELBO-to-KL derivation of this section in full detail, plus the three equivalent targets
#   (x_0, noise, score) and how they relate.
# - [Lilian Weng, *What are Diffusion Models?*](https://lilianweng.github.io/posts/2021-07-11-diffusion-models/):
#   one careful walk through all the algebra of the forward process and its posterior.
