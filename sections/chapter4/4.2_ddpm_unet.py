# %% [markdown]
# # 4.2 A U-Net for images; DDPM and DDIM sampling
#
# In 4.1 the denoiser was an MLP on 2-D points. For images it must see local structure at several
# scales at once: whether this pixel is part of a stroke (fine), and which digit the strokes make
# (coarse). The **U-Net** (Ronneberger et al. 2015, adapted for diffusion by Ho et al. 2020) does
# this: an encoder halves the resolution level by level, a decoder doubles it back, and **skip
# connections** hand each decoder level the encoder's features at the same resolution, so fine
# detail never has to squeeze through the bottleneck.
#
# You will
# 1. write the U-Net's parts: a residual block that takes the timestep, a self-attention block,
#    and the forward pass that wires them with skips;
# 2. write an exponential moving average (EMA) of the weights, and train on images;
# 3. sample with DDPM (1000 steps), then write **DDIM**, which samples the same model in 50 or fewer.
#
# Data: offline, scikit-learn's bundled 8x8 handwritten digits upscaled to 16x16 (no download);
# online, MNIST. The schedule, `add_noise`, the loss and `ddpm_sample` are 4.1's, unchanged.
# The reference is `curriculum/solutions/chapter4/ddpm.py`.

# %% setup
import copy
import time

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from curriculum.solutions.chapter4.ddpm import Downsample, TrainConfig, UNetConfig, Upsample, ddim_sample, train_unet
from curriculum.solutions.chapter4.toy_diffusion import Schedule, ddpm_sample, linear_betas, sinusoidal_embedding
from curriculum.checks.chapter4 import ddpm as tests
from curriculum.utils import QUICK, full_or_quick, get_device
from curriculum.utils.image_data import load_image_dataset
from curriculum.utils.offline import describe
from curriculum.utils.plotting import image_grid, line

# %%
device = get_device()
loaded = load_image_dataset(online_name="mnist", offline_size=full_or_quick(16, 8))
describe(loaded)
data = loaded.value
print("images:", tuple(data.images.shape), "range", (data.images.min().item(), data.images.max().item()))
image_grid(data.images[:32], nrow=16, value_range=(-1, 1), title="training images")

# %% [markdown]
# Images are scaled to [-1, 1], the same scale as the N(0, I) noise. (In quick mode the offline
# digits stay at their native 8x8 so the notebook runs in a couple of minutes on a CPU.)
#
# ## The residual block
#
# Every level of the U-Net is built from one block: two 3x3 convolutions with GroupNorm and SiLU
# before each (the "pre-activation" order), a residual connection, and the **timestep**: its
# embedding is projected to one number per channel and added to the feature map between the two
# convolutions. That is how one network behaves differently at t = 10 (sharpen details) and
# t = 900 (invent a layout).
#
# GroupNorm rather than BatchNorm: the statistics of x_t change enormously with t, and batch
# statistics would mix examples at different noise levels.
#
# ### Exercise: the residual block
#
# `__init__` is given; write `forward`. The check randomises your block's weights, loads them into
# the reference block, compares outputs for a block that changes the channel count and one that
# keeps it, then checks the output really depends on the time embedding.

# %% exercise curriculum.solutions.chapter4.ddpm:ResBlock difficulty=2 importance=4 minutes=15
tests.check_res_block(ResBlock)

# %% hint
# Two half-blocks, each "normalise, activate, convolve". Between them, the timestep enters: project
# the embedding to `out_ch` numbers and add one number per channel to every pixel of that channel.
# The input reaches the output through `self.skip`, which changes the channel count when needed.

# %% hint
# `self.time_proj(F.silu(emb))` has shape (b, out_ch); index it `[:, :, None, None]` to broadcast
# over (h, w). Dropout goes after the second SiLU, just before `conv2`. Forgetting the SiLU on `emb`,
# or adding the embedding after `conv2`, makes the outputs differ from diffusers'.

# %% [markdown]
# ## Self-attention at low resolution
#
# Convolutions see a 3x3 neighbourhood; after two downsamplings that is already most of a 16x16
# image, but global consistency (one digit, not two half-digits) is easier with attention, where
# every position reads every other. The block treats the H*W positions of a feature map as a
# sequence of C-dimensional tokens, exactly like a Transformer's attention, with 1x1 convolutions as
# the linear maps. Its cost is quadratic in H*W, so the U-Net only uses it at 8x8 and 4x4.
#
# The check compares with `F.scaled_dot_product_attention`, and also tests a property: with no
# positional information, shuffling the pixels must shuffle the output the same way.
#
# ### Exercise: the attention block

# %% exercise curriculum.solutions.chapter4.ddpm:AttentionBlock difficulty=3 importance=3 minutes=20
tests.check_attention_block(AttentionBlock)

# %% hint
# One 1x1 convolution (`self.qkv`) produces q, k and v stacked on the channel axis: 3 * C channels.
# Split them in the order (q, k, v), then each into heads, and flatten the h*w pixels into one
# sequence axis. From there it is 1.1's attention without a causal mask.

# %% hint
# `einops.rearrange(qkv, "b (qkv heads d) h w -> qkv b heads (h w) d", qkv=3, heads=self.n_heads)`
# gives q, k, v of shape (b, heads, h*w, d_head). Scores over keys, scaled by `1 / sqrt(d_head)`,
# softmax on the last axis, weighted sum of v, then rearrange back to (b, C, h, w), apply
# `self.proj`, and add the input `x`. If the permutation test fails you are attending over channels.

# %% [markdown]
# ## The U-Net
#
# `Downsample` (a stride-2 convolution) and `Upsample` (nearest-neighbour x2 then a convolution) are
# given. `__init__` below builds the levels; write `forward`:
#
# - **down**: for each level, ResBlock then attention (or Identity); keep that output as the level's
#   skip; then downsample (Identity at the bottom level);
# - **middle**: ResBlock, attention, ResBlock at the lowest resolution;
# - **up**: for each level (in reverse), concatenate the matching skip on the channel axis, then
#   ResBlock, attention, upsample (Identity at the top level);
# - **out**: GroupNorm, SiLU, a 3x3 convolution back to the image's channels.
#
# The output convolution starts at zero, so the untrained model predicts eps = 0 and the loss starts
# at exactly 1 (the variance of the noise).
#
# ### Exercise: the U-Net's forward pass
#
# The check builds your U-Net with two configurations, compares its output with the reference
# network on the same weights, and checks shapes with and without class labels.

# %% exercise curriculum.solutions.chapter4.ddpm:UNet difficulty=3 importance=4 minutes=25
tests.check_unet(UNet)

# %% hint
# Print `self.down`, `self.up` and the `mid_*` modules first: each level is a `ModuleDict` with
# `res`, `attn` and `resample`. The skips form a stack: what the down path pushes last (the lowest
# resolution), the up path pops first.

# %% hint
# Down: `h = level["attn"](level["res"](h, emb))`, push `h`, then `h = level["resample"](h)`. Middle:
# res, attn, res (both res blocks take `emb`). Up: `h = torch.cat([h, skips.pop()], dim=1)` before
# the level's res block. Pushing the skip *after* downsampling, or concatenating on the batch axis,
# gives shape errors the check reports.

# %% [markdown]
# ## EMA of the weights
#
# The loss is very noisy (a random t per example), so the weights after the last step are a noisy
# point estimate. Diffusion models are almost always sampled from an exponential moving average of
# the weights instead: w_ema <- decay * w_ema + (1 - decay) * w after every optimiser step. With
# decay 0.999 the EMA averages over roughly the last 1000 steps.
#
# ### Exercise: the EMA update

# %% exercise curriculum.solutions.chapter4.ddpm:EMA difficulty=1 importance=3 minutes=5
tests.check_ema(EMA)

# %% hint
# Walk the parameters of the EMA copy and of the live model side by side (`zip` of the two
# `.parameters()`), and move each EMA value a fraction `1 - decay` of the way towards the live value.

# %% hint
# In place, under the method's `no_grad`: `p_ema.lerp_(p, 1 - self.decay)` or
# `p_ema.mul_(self.decay).add_(p, alpha=1 - self.decay)`. Copy buffers with `b_ema.copy_(b)`.
# Swapping `decay` and `1 - decay` makes the EMA jump to the live weights, which the check catches.

# %% [markdown]
# ## Training
#
# The loop (`train_unet`, given) is 4.1's: random images, random t, `diffusion_loss`, Adam, then
# `ema.update(model)`. Learner default: a 3-level U-Net with 64 base channels for 20k steps: about
# 15 minutes on a GPU (an estimate), much longer on a CPU: on a 2-core laptop CPU the next cell is
# still training after 5 minutes and needs hours in all. In quick mode the model is tiny and barely
# trained, so its samples are blobs; the code path is the same.

# %%
T = full_or_quick(1000, 200)
sched = Schedule(linear_betas(T, 1e-4 * 1000 / T, 0.02 * 1000 / T))  # the same noise levels with fewer steps
c, h, _ = data.image_shape
cfg = (
    UNetConfig(image_size=h, in_channels=c, base_channels=16, channel_mults=(1, 2), attn_resolutions=(4,), n_heads=2, dropout=0.0)
    if QUICK
    else UNetConfig(image_size=h, in_channels=c)
)
model = UNet(cfg)
print(f"U-Net: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
train_cfg = TrainConfig(n_steps=full_or_quick(20_000, 60), batch_size=full_or_quick(128, 32), device=str(device))
ema, losses = train_unet(model, data.images, sched, train_cfg)
line(losses, smooth=100, title="U-Net epsilon loss", ylabel="MSE")

# %% [markdown]
# ## DDPM samples
#
# `ddpm_sample` from 4.1 works as it is: it only needs a function from (x_t, t) to eps. With images
# we clamp x0_hat to [-1, 1] at every step (`clip_x0=1.0`), which the data range guarantees and which
# keeps early, wild predictions from derailing the chain.

# %%
n_show = full_or_quick(64, 16)
net = ema.model.to(device)
start = time.perf_counter()
ddpm_images = ddpm_sample(net, (n_show, c, h, h), sched, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device)
ddpm_seconds = time.perf_counter() - start
image_grid(ddpm_images, nrow=16, value_range=(-1, 1), title=f"DDPM, {T} steps ({ddpm_seconds:.1f}s)")

# %% [markdown]
# ## DDIM: the same model, 20x fewer steps
#
# DDPM needs T network calls because each step is a small Gaussian move. Song et al. (2021)
# noticed that the training loss only involves the marginals q(x_t | x_0), so there is a whole
# family of reverse processes with the same marginals, indexed by eta. At eta = 0 the process is
# **deterministic**: predict x0_hat, then jump to timestep t_prev by re-noising x0_hat with the
# *same* eps direction,
#
#     x_{t_prev} = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev) eps,
#
# which stays accurate with big jumps: t_prev = t - 20 with 50 steps instead of 1000. eta = 1 brings
# back DDPM's noise (and with every step visited, DDPM exactly).
#
# One subtlety with `clip_x0`: after clamping x0_hat, recompute eps from it,
# eps = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 - alpha_bar_t). Otherwise the two terms above
# disagree about x_t, and whatever pushed x0_hat out of range survives unclamped in the eps term.
# DDPM's posterior mean never has this problem (it uses x0_hat and x_t, not eps). In 4.3, where
# guidance adds large terms to eps, forgetting this costs most of the guidance's effect.
#
# ### Exercise: the timesteps DDIM visits
#
# diffusers' "leading" spacing: with 1000 training steps and 50 sampling steps, every 20th timestep,
# from 980 down to 0. The check compares with `DDIMScheduler.set_timesteps`.

# %% exercise curriculum.solutions.chapter4.ddpm:ddim_timesteps difficulty=1 importance=2 minutes=5
tests.check_ddim_timesteps(ddim_timesteps)

# %% hint
# The step ratio is `n_train_steps // n_sample_steps` (integer division); the timesteps are that ratio
# times n_sample_steps - 1, n_sample_steps - 2, ..., 0.

# %% hint
# `torch.arange(n_sample_steps - 1, -1, -1, dtype=torch.long) * ratio`. The dtype matters: the
# timesteps index `alpha_bars`.

# %% [markdown]
# ### Exercise: one DDIM step
#
# With sigma = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev) (from the DDIM paper),
# x_prev is x0_hat re-noised to level a_prev: the part of the old noise that is kept,
# `sqrt(1 - a_prev - sigma^2) * eps`, plus fresh noise `sigma * noise`. Note that
# (1 - a_prev - sigma^2) + sigma^2 = 1 - a_prev: the total noise variance is exactly what level
# a_prev needs, whatever eta is. The check compares with diffusers' `DDIMScheduler.step` for
# eta = 0, 0.5 and 1, with and without clamping, including the last step to t_prev < 0.

# %% exercise curriculum.solutions.chapter4.ddpm:ddim_step difficulty=3 importance=5 minutes=20
tests.check_ddim_step(ddim_step)

# %% hint
# Start from the two cumulative products: a_t = alpha_bars[t], and a_prev = alpha_bars[t_prev], or 1
# when t_prev < 0 (the step that lands on clean data). Everything else is written in terms of them.

# %% hint
# x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t). If `clip_x0` is set, clamp it and then recompute
# eps = (x_t - sqrt(a_t) x0_hat) / sqrt(1 - a_t), as the text above explains; the check has a case
# that fails if you keep the model's eps. Add `sigma * noise` only when eta > 0.

# %% [markdown]
# `ddim_sample` (given) loops `ddim_step` over `ddim_timesteps`. Because eta = 0 is deterministic,
# the same starting noise gives (nearly) the same image whatever the step count: the images below
# are the same x_T sampled with 50, 20 and 10 steps. Look at what degrades as the steps shrink.

# %%
grids, titles = [], []
for n_steps in [50, 20, 10]:
    start = time.perf_counter()
    x = ddim_sample(net, (8, c, h, h), sched.alpha_bars, n_steps, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device)
    grids.append(x)
    titles += [f"DDIM-{n_steps}"] + [""] * 7
    print(f"DDIM-{n_steps}: {time.perf_counter() - start:.2f}s for 8 images")
image_grid(torch.cat(grids), nrow=8, titles=titles, value_range=(-1, 1))

# %% [markdown]
# ## eta: from deterministic to stochastic
#
# With eta > 0 fresh noise enters at each step. Same x_T, increasing eta:

# %%
rows, titles = [], []
for eta in [0.0, 0.5, 1.0]:
    rows.append(ddim_sample(net, (8, c, h, h), sched.alpha_bars, 20, eta=eta, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device))
    titles += [f"eta={eta}"] + [""] * 7
image_grid(torch.cat(rows), nrow=8, titles=titles, value_range=(-1, 1))

# %% [markdown]
# ## Summary and measurements
#
# - The U-Net: residual blocks with the timestep added per channel, attention at low resolution,
#   skips between matching resolutions.
# - EMA weights are what you sample from.
# - DDIM samples the same trained model deterministically in 50 or fewer steps.
#
# `python -m curriculum.benchmarks.diffusion_sampling` measures DDPM-1000 against DDIM-50/20/10: time, and a
# Fréchet distance computed on the features of a digit classifier trained on real data. Next, in 4.3,
# the same samplers steered towards a chosen class or caption.

# %% [markdown]
# ## Further reading
#
# - [Ronneberger, Fischer & Brox (2015), *U-Net*](https://arxiv.org/abs/1505.04597): the architecture's
#   origin in segmentation, and why skip connections between matching resolutions help.
# - [Ho, Jain & Abbeel (2020), *Denoising Diffusion Probabilistic Models*](https://arxiv.org/abs/2006.11239):
#   appendix B describes the U-Net this section scales down (GroupNorm, attention at 16x16, time embedding).
# - [Song, Meng & Ermon (2021), *Denoising Diffusion Implicit Models*](https://arxiv.org/abs/2010.02502):
#   the non-Markovian family behind DDIM and the eta parameter.
# - [Wu & He (2018), *Group Normalization*](https://arxiv.org/abs/1803.08494): why normalising over
#   channel groups works where batch statistics fail.
