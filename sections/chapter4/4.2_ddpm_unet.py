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
# 1. build the U-Net from its parts: plan its levels, then write the residual block that takes the
#    timestep, the down- and upsampling layers, the self-attention block, one encoder level and one
#    decoder level with their skip connection, and finally the whole network;
# 2. write an exponential moving average (EMA) of the weights, and train on images;
# 3. sample a trained model with 4.1's DDPM loop (1000 network calls), then derive **DDIM** from
#    its non-Markovian forward process and write its step and its sampling loop, which come close
#    to DDPM's quality in 50 calls.
#
# Data: offline, scikit-learn's bundled 8x8 handwritten digits, upscaled to 16x16 (no download);
# online, MNIST, resized from 28x28 to 32x32 so that the levels run at powers of two (32, 16, 8)
# and the default attention resolution 8 exists (28x28 would run at 28, 14, 7). The
# schedule, `add_noise`, the loss and `ddpm_sample` are 4.1's, unchanged. The reference is
# `curriculum/solutions/chapter4/ddpm.py`.
#
# Training the default U-Net of this section (64 base channels, 20k steps) takes about 15 minutes on
# a GPU (an estimate) and hours on a laptop CPU. So that you see diffusion work without a GPU, the
# sampling half of the section uses a smaller U-Net, trained briefly on the offline 16x16 digits
# and shipped with the curriculum (`data/chapter4/ddpm_digits16.safetensors`, loaded by
# `load_checkpoint()`). To rebuild it yourself, run
# `python -m curriculum.solutions.chapter4.ddpm --build-checkpoint` (about 12 minutes on a shared
# 2-core CPU).

# %% setup
import copy
import time

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter4.ddpm import CHECKPOINT_T, CHECKPOINT_UNET, TrainConfig, checkpoint_split, UNetConfig, load_checkpoint, train_unet
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
# Images are scaled to [-1, 1], the same scale as the N(0, I) noise, so that at every t the signal
# and the noise in $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ are comparable in
# size. The printed shape is what your U-Net will see: (n, 1, 16, 16) for the offline digits,
# (n, 1, 32, 32) for MNIST, and (n, 1, 8, 8) in quick mode, where the offline digits stay at their
# native size so the notebook runs in a couple of minutes on a CPU.
#
# ## The plan of the network
#
# ![The default U-Net on the offline 16x16 digits: conv_in to 64 channels; level 0 at 16x16 (ResBlock 64 to 64, no attention), level 1 at 8x8 (ResBlock 64 to 128, attention), level 2 at 4x4 (ResBlock 128 to 128, attention); a middle block of ResBlock, attention, ResBlock at 4x4; three decoder levels mirroring them, each concatenating the skip of the same resolution; GroupNorm, SiLU and conv_out back to one channel. A note says MNIST at 32x32 runs the levels at 32, 16, 8 with attention only at 8x8](figures/4.2_unet.svg)
#
# Read the diagram from top left, down the encoder, along the bottom, and up the decoder. Three
# numbers describe every box: the resolution it works at, the channels that flow in, and the
# channels that flow out. The configuration decides them: `image_size`, `base_channels` (64 by
# default), `channel_mults` ((1, 2, 2): level i has `base_channels * channel_mults[i]` channels) and
# `attn_resolutions` ((8, 4): the feature-map sizes that get self-attention). The input convolution
# keeps the image size; every level except the last halves it for the next one.
#
# Why widen the channels as the resolution falls? Each halving divides the number of positions by 4,
# so doubling the channels still halves the activations' memory, while the features at coarse
# levels have more to describe (a whole digit's shape rather than one stroke's edge). Why attention
# only at the coarse levels? Its cost grows with the square of the number of positions: 256
# positions at 16x16 would give 65,536 attention weights per head and per image, 8x8 gives 4,096.
#
# Note what the resolutions mean for *your* data. The attention resolutions are sizes, not level
# numbers: on 16x16 digits the levels run at 16, 8 and 4, so levels 1 and 2 (and the middle block)
# attend; on MNIST at 32x32 the same configuration runs at 32, 16 and 8, and only level 2 and the
# middle block, both at 8x8, attend.
#
# ### Exercise: the U-Net's level plan
#
# Write `unet_levels(cfg)`, returning one `(resolution, in_channels, out_channels, attention)` tuple
# per encoder level. `UNet.__init__` builds its blocks from this plan, and the decoder mirrors it.
# The check compares with tables worked out by hand for 16x16 and 32x32 inputs and for a 4-level
# configuration with uneven multipliers.

# %% exercise curriculum.solutions.chapter4.ddpm:unet_levels difficulty=1 importance=3 minutes=10
tests.check_unet_levels(unet_levels)

# %% hint
# Keep two running values as you walk `cfg.channel_mults`: the channel count flowing into the level
# (it starts at `base_channels`, the output of `conv_in`) and the level's resolution.

# %% hint
# Level i works at `cfg.image_size // 2**i` and outputs `cfg.base_channels * mult` channels; after
# recording it, the next level's input channels are this level's output channels. Attention is the
# boolean `res in cfg.attn_resolutions`.

# %%
for size in [16, 32]:
    print(f"{size}x{size} images:", unet_levels(UNetConfig(image_size=size)))

# %% [markdown]
# The printout is the diagram in numbers. If your 32x32 row shows attention at 16x16, you indexed
# `attn_resolutions` by level number rather than by resolution.
#
# ## The residual block
#
# Every level of the U-Net is built from one block: two 3x3 convolutions with GroupNorm and SiLU
# before each (the "pre-activation" order), a residual connection, and the **timestep**: its
# embedding is projected to one number per channel and added to the feature map between the two
# convolutions. That is how one network behaves differently at t = 10 (sharpen details) and t = 900
# (invent a layout): each channel's activation is shifted by an amount that depends on t, and the
# second convolution and the later layers read the shifted features.
#
# A worked example of the broadcast: with 128 output channels, `time_proj(SiLU(emb))` has shape
# (b, 128). Indexed `[:, :, None, None]` it becomes (b, 128, 1, 1) and adds the same number to all
# H x W pixels of one channel of one example. Every pixel learns *when* it is, none learns *where*.
#
# Three design choices are worth knowing.
#
# - **GroupNorm, not BatchNorm.** The statistics of $x_t$ change enormously with t: a batch mixes
#   near-clean images with near-pure noise, so batch statistics would blur examples at different
#   noise levels together, and at sampling time every example of the batch shares one t anyway.
#   GroupNorm normalises each example on its own, over groups of channels.
# - **Normalise, then activate, then convolve.** With the normalisation first, the residual path
#   `skip(x)` carries the input unchanged and each block only adds a correction, which keeps deep
#   stacks trainable from the start.
# - **A 1x1 convolution on the skip** when the block changes the channel count (64 to 128), and the
#   identity otherwise: the sum needs equal shapes.
#
# ### Exercise: the residual block
#
# `__init__` is given; write `forward`. The check loads your block's weights into diffusers'
# `ResnetBlock2D` (the block behind Stable Diffusion's U-Net: an independent implementation of the
# same design) and compares outputs on a feature map with unequal height and width, for a block that
# changes the channel count and one that keeps it. It then checks that the output depends on the
# time embedding, and that the embedding reaches the output through `conv2`, not around it.

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
# ## Changing resolution
#
# The encoder halves the resolution between levels and the decoder doubles it back. Both are
# learned: **Downsample** is a 3x3 convolution with stride 2 and padding 1, which looks at every
# pixel (pooling would throw three quarters of them away before any weight sees them);
# **Upsample** repeats every pixel into a 2x2 block (nearest-neighbour interpolation) and then
# applies a 3x3 convolution that smooths the blocks. The obvious alternative, a transposed
# convolution with stride 2, overlaps its kernels unevenly and leaves a checkerboard pattern that a
# sampler then has to fight at every step.
#
# A shape example: a (2, 6, 10, 14) feature map becomes (2, 6, 5, 7) after Downsample and
# (2, 6, 20, 28) after Upsample; the channel count never changes here (the ResBlocks change it).
# With stride 2, padding 1 and a 3x3 kernel the output size is $\lfloor (n + 2 - 3)/2 \rfloor + 1$,
# which is $n/2$ for even $n$ and rounds up for odd $n$.
#
# ### Exercise: Downsample
#
# Write `forward`. The check compares with `F.conv2d` on your layer's weights, on inputs whose
# height and width differ (and are odd), so a transposed axis or a missing padding shows up.

# %% exercise curriculum.solutions.chapter4.ddpm:Downsample difficulty=1 importance=2 minutes=3
tests.check_downsample(Downsample)

# %% hint
# Everything the layer needs (kernel size, stride, padding) is already inside `self.conv`.

# %% hint
# No pooling and no extra padding: the learned convolution with stride 2 is the whole layer. If the
# output has the wrong size, print `self.conv` and compare its stride and padding with the docstring.

# %% [markdown]
# ### Exercise: Upsample
#
# Write `forward`. The check compares with repeating every pixel into a 2x2 block followed by
# `F.conv2d` on your layer's weights, and names the two usual slips: bilinear interpolation, and
# convolving before upsampling.

# %% exercise curriculum.solutions.chapter4.ddpm:Upsample difficulty=1 importance=2 minutes=5
tests.check_upsample(Upsample)

# %% hint
# First make the image bigger without inventing values, then let the convolution smooth the 2x2 blocks.

# %% hint
# `F.interpolate(x, scale_factor=2, mode="nearest")` repeats each pixel 2x2; apply `self.conv` to
# the result, not before.

# %% [markdown]
# ## Self-attention at low resolution
#
# Convolutions see a 3x3 neighbourhood; after two downsamplings that is already most of a 16x16
# image, but global consistency (one digit, not two half-digits) is easier with attention, where
# every position reads every other. The block treats the H*W positions of a feature map as a
# sequence of C-dimensional tokens, exactly like a Transformer's attention without a mask, with 1x1
# convolutions as the linear maps: a 1x1 convolution is a linear layer applied to each pixel's
# channel vector.
#
# Shapes, for a (b, 128, 4, 6) feature map and 4 heads: `qkv` makes (b, 384, 4, 6); split into
# q, k, v, each (b, 128, 4, 6); into heads of 32 channels and 24 positions, (b, 4, 24, 32); the
# scores are (b, 4, 24, 24), one row per query position; after the softmax over keys and the
# weighted sum of v, fold back to (b, 128, 4, 6), project, and add the input.
#
# The check compares with `F.scaled_dot_product_attention` computed from your own weights, and also
# tests a property: there is no positional information in the block, so shuffling the pixels must
# shuffle the output the same way (permutation equivariance over positions). Attention over the
# channels instead of the positions breaks that property, and so does folding the positions back in
# the wrong order.
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
# softmax on the last axis, weighted sum of v, then rearrange back to (b, C, h, w) with `(h w)` in
# the same order, apply `self.proj`, and add the input `x`.

# %% [markdown]
# ## One level of the encoder, one of the decoder: the skip connections
#
# An encoder level runs its ResBlock and its attention (or `nn.Identity` where the plan says no),
# **keeps that result as the skip**, and only then downsamples. The skip therefore has the level's
# full resolution: at 16x16 a 64-channel map, at 8x8 a 128-channel one. A decoder level at the same
# resolution receives its input from below (already upsampled to that resolution) and the skip,
# **concatenates them on the channel axis**, and runs its own ResBlock, attention and upsampling.
# Concatenation rather than addition lets the decoder's ResBlock learn how much of each to use: on
# the 16x16 level the decoder's ResBlock maps 128 + 64 = 192 channels to 64.
#
# Why skips at all? At high noise the decoder needs the coarse layout from the bottleneck; at low
# noise almost everything the network must predict is fine detail that is still visible in $x_t$,
# and the skip at full resolution hands it over directly. Without skips every pixel's value would
# have to be reconstructed from a 4x4 summary.
#
# ### Exercise: an encoder level

# %% exercise curriculum.solutions.chapter4.ddpm:DownBlock difficulty=2 importance=4 minutes=10
tests.check_down_block(DownBlock)

# %% hint
# Return two tensors: the full-resolution output of the level (the skip) and what the next level
# gets (the skip after `self.resample`).

# %% hint
# The order is res (which takes `emb`), then attn; name that result, and return it twice: once
# through `self.resample`, once as it is. A skip taken after the downsampling has half the
# resolution the decoder expects.

# %% [markdown]
# ### Exercise: a decoder level
#
# The check feeds h with 16 channels and a skip with 8 on a 6x10 map: only `torch.cat` on `dim=1`
# gives the ResBlock the 24 channels it was built for. Concatenating on the batch axis or on a
# spatial axis fails, and the check says which. Put h first: the ResBlock's weights are laid out
# for (h, skip), so the other order computes something else.

# %% exercise curriculum.solutions.chapter4.ddpm:UpBlock difficulty=2 importance=4 minutes=10
tests.check_up_block(UpBlock)

# %% hint
# Join, then the same three submodules in the same order as the encoder level (ResBlock, attention,
# resampling).

# %% hint
# `torch.cat([h, skip], dim=1)` makes (b, c_in + c_skip, h, w), the shape `self.res` was built
# for; then the level's three submodules, each applied to the previous one's output.

# %% [markdown]
# ## The U-Net
#
# `__init__` builds everything from the plan (read it: the decoder's levels are created in reverse
# order, so `self.up[0]` is the lowest resolution). Write `forward`:
#
# - the time embedding `emb = self.embed(t, y)` (given: 4.1's sinusoidal embedding through an MLP,
#   plus a class embedding when the model is class-conditional, used in 4.3);
# - `conv_in`, then each down level, pushing its skip onto a stack;
# - the middle: ResBlock, attention, ResBlock at the lowest resolution;
# - each up level, popping the matching skip: the last skip pushed (lowest resolution) is the
#   first one the decoder needs;
# - GroupNorm, SiLU and the output convolution back to the image's channels.
#
# The output convolution starts at zero, so the untrained model predicts $\epsilon = 0$ and the
# loss starts at about 1 (the variance of the noise), and early training does not fight random
# outputs.
#
# ### Exercise: the U-Net's forward pass
#
# The check builds your U-Net with two configurations (one with three uneven levels, one with
# three input channels and class labels), compares its output with the reference network on the
# same weights, and checks that the output depends on t.

# %% exercise curriculum.solutions.chapter4.ddpm:UNet difficulty=3 importance=4 minutes=20
tests.check_unet(UNet)

# %% hint
# Print `self.down`, `self.up` and the `mid_*` modules first. Each down level returns (h, skip);
# each up level takes (h, skip, emb).

# %% hint
# A Python list is the stack: `skips.append(skip)` on the way down, `level(h, skips.pop(), emb)` on
# the way up. Every ResBlock (including both in the middle) takes `emb`.

# %%
model = UNet(UNetConfig(image_size=16))
with torch.no_grad():
    out = model(torch.randn(2, 1, 16, 16), torch.tensor([10, 900]))
print(f"default U-Net for 16x16: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
      f"output {tuple(out.shape)}, all zero at initialisation: {bool((out == 0).all())}")

# %% [markdown]
# ## EMA of the weights
#
# The loss is very noisy (a random t per example), so the weights after the last step are a noisy
# point estimate. Diffusion models are almost always sampled from an exponential moving average of
# the weights instead: $w_{ema} \leftarrow d\, w_{ema} + (1 - d)\, w$ after every optimiser step.
# A weight from k steps ago contributes with factor $(1-d)\,d^k$, so the EMA averages over roughly
# the last $1/(1-d)$ steps: 1000 for d = 0.999, 200 for the 0.995 the shipped checkpoint uses
# (its run is short, and an average over 1000 steps would still remember the untrained start).
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

# %% [markdown]
# ## Training your U-Net
#
# The loop (`train_unet`, given) is 4.1's: random images, random t, `diffusion_loss`, Adam, gradient
# clipping, then `ema.update(model)`. The learner default is the 3-level U-Net with 64 base channels
# for 20k steps: about 15 minutes on a GPU (an estimate); on a 2-core laptop CPU the next cell needs
# hours. In quick mode the model is tiny and trained for a few dozen steps; the code path is the
# same.

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
print(f"U-Net: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; plan {unet_levels(cfg)}")
train_cfg = TrainConfig(n_steps=full_or_quick(20_000, 60), batch_size=full_or_quick(128, 32), device=str(device))
ema, losses = train_unet(model, data.images, sched, train_cfg)
line(losses, smooth=100, title="U-Net epsilon loss", ylabel="MSE")

# %% [markdown]
# What to look for in the loss: it starts at 1 (the zero-initialised output), falls steeply in the
# first few hundred steps, then slowly. The average hides a strong dependence on t: at small t the noise
# is a tiny perturbation of a clean image and predicting it is hard relative to its size, at large t
# the best guess of $\epsilon$ is nearly $x_t$ itself and the loss is small. A loss that stays at 1
# means the output convolution never learns (check the optimiser sees the parameters).
#
# What a short run gives you: samples that look like noise, or like grey blobs. The reason is
# arithmetic more than anything else. The sampler calls the network T times, and each call's error
# in $\epsilon$ is removed with a coefficient around $\beta_t / \sqrt{1-\bar\alpha_t}$; an
# undertrained network is roughly right only at large t, where predicting "$\epsilon \approx x_t$"
# is easy, and wrong at small t, where the details are made. The early steps therefore produce
# the average image (a blurred blob), and the late steps, instead of removing the remaining noise,
# add their own errors. Only once the network is accurate at small t do strokes appear. That is
# why the sampling below uses the shipped checkpoint.
#
# ## The shipped checkpoint and DDPM samples
#
# `load_checkpoint()` returns a U-Net with 24 base channels, levels at 16, 8 and 4 with attention at
# 8x8 and 4x4, trained for 1500 Adam steps (batch 64, learning rate 2e-3, EMA decay 0.995) on the
# offline 16x16 digits with DDPM's linear schedule of T = 1000 steps. It was trained on a fixed
# split of the digits (printed below); the held-out part lets a quality score compare samples with
# images the model never saw. It works whatever data you trained on above, in quick mode too.
#
# `ddpm_sample` from 4.1 works as it is: it only needs a function from (x_t, t) to $\epsilon$. With
# images we clamp $\hat x_0$ to [-1, 1] at every step (`clip_x0=1.0`), which the data range
# guarantees and which keeps early, wild predictions from derailing the chain.

# %%
net = load_checkpoint().to(device)
ck_sched = Schedule(linear_betas(CHECKPOINT_T))
ck_shape = (CHECKPOINT_UNET.in_channels, CHECKPOINT_UNET.image_size, CHECKPOINT_UNET.image_size)
ck_train, ck_test = checkpoint_split()
print(f"checkpoint U-Net: {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M parameters, plan {unet_levels(CHECKPOINT_UNET)}")
print(f"trained on {len(ck_train.labels)} digits; {len(ck_test.labels)} held out")
n_show = full_or_quick(32, 8)
start = time.perf_counter()
ddpm_images = ddpm_sample(net, (n_show, *ck_shape), ck_sched, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device)
ddpm_seconds = time.perf_counter() - start
print(f"DDPM: {CHECKPOINT_T} network calls, {ddpm_seconds:.1f}s for {n_show} images")
image_grid(ddpm_images, nrow=8, value_range=(-1, 1), title=f"DDPM, {CHECKPOINT_T} steps, shipped checkpoint")

# %% [markdown]
# What you should see: 16x16 digits, white strokes on black, most of them recognisable (zeros,
# sixes, fives, twos), some malformed or ambiguous: a small network trained briefly on a
# thousand-odd images. The strokes are soft, like the training images at the top, which are 8x8
# scans upscaled with bilinear interpolation. A grid of uniform grey means the sampler never
# removed the noise (look at `clip_x0` and the schedule); a grid of identical digits means the
# generator was reseeded inside the loop.
#
# ## DDIM: deriving a sampler with fewer steps
#
# DDPM needs T network calls because each reverse step is a small Gaussian move, and its Gaussian
# form is only accurate when the step is small. Song, Meng & Ermon (2021) noticed something about
# the training objective: the loss only ever uses the **marginals**
# $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I)$, one timestep at a
# time. It never uses how consecutive $x_t$ are linked. So any forward process with the same
# marginals trains the same network, and may have a reverse process that takes bigger steps.
#
# **The family of processes.** Fix two noise levels, $t$ and an earlier $s$ (in code `t_prev`), and
# write $a_t = \bar\alpha_t$, $a_s = \bar\alpha_s$ (so $a_s > a_t$: less noise at $s$). Given $x_0$,
# write $x_t = \sqrt{a_t}\,x_0 + \sqrt{1-a_t}\,\epsilon$. We look for a conditional
# $q_\sigma(x_s \mid x_t, x_0)$ that is Gaussian, linear in $x_t$, and such that drawing $x_t$ from its
# marginal and then $x_s$ from it gives $x_s$ the right marginal $\mathcal N(\sqrt{a_s}\,x_0,\ (1-a_s) I)$.
# Try
#
# $$x_s = \sqrt{a_s}\,x_0 + k\,\epsilon + \sigma z, \qquad z \sim \mathcal N(0, I) \text{ independent of } \epsilon.$$
#
# The mean is $\sqrt{a_s}\,x_0$, as required. The variance is $k^2 + \sigma^2$, and it must equal
# $1 - a_s$, so $k = \sqrt{1 - a_s - \sigma^2}$. Nothing else is constrained: **any**
# $0 \le \sigma \le \sqrt{1-a_s}$ gives a valid process with DDPM's marginals. Since
# $\epsilon = (x_t - \sqrt{a_t}\,x_0)/\sqrt{1-a_t}$ is a function of $x_t$ and $x_0$, this is
#
# $$q_\sigma(x_s \mid x_t, x_0) = \mathcal N\Big(\sqrt{a_s}\,x_0 + \sqrt{1-a_s-\sigma^2}\;\frac{x_t - \sqrt{a_t}\,x_0}{\sqrt{1-a_t}},\ \sigma^2 I\Big).$$
#
# The second term is what the DDIM paper calls the **direction pointing to $x_t$**: the unit of
# noise that takes $x_0$ to $x_t$, kept with a smaller weight. The process is non-Markovian
# (going forward, $x_t$ depends on both $x_s$ and $x_0$), but that does not matter: we only ever
# run it backwards.
#
# **Which sigma is DDPM?** DDPM's forward process is Markovian: from level $s$ to level $t$ it
# shrinks by $\sqrt{a_t/a_s}$ and adds noise of variance $1 - a_t/a_s$. Its posterior
# $q(x_s \mid x_t, x_0)$ is the product of two Gaussians in $x_s$: the prior
# $\mathcal N(\sqrt{a_s}\,x_0, 1-a_s)$ and the likelihood of $x_t$, which has precision
# $(a_t/a_s)/(1-a_t/a_s)$ in $x_s$. Precisions add:
#
# $$\frac{1}{\sigma^2_{DDPM}} = \frac{1}{1-a_s} + \frac{a_t/a_s}{1-a_t/a_s}
#   = \frac{(1-a_t/a_s) + (1-a_s)\,a_t/a_s}{(1-a_s)(1-a_t/a_s)} = \frac{1-a_t}{(1-a_s)(1-a_t/a_s)},$$
#
# so $\sigma^2_{DDPM} = \frac{1-a_s}{1-a_t}\,\big(1 - \frac{a_t}{a_s}\big)$. With $s = t-1$ this is
# 4.1's $\tilde\beta_t$, because $1 - a_t/a_{t-1} = \beta_t$. A Gaussian with this variance and the
# right marginals *is* DDPM's posterior, so DDIM with $\sigma = \sigma_{DDPM}$ is DDPM. The paper
# scales it by one knob:
#
# $$\sigma = \eta\,\sqrt{\frac{1-a_s}{1-a_t}}\,\sqrt{1-\frac{a_t}{a_s}},\qquad \eta \in [0, 1].$$
#
# $\eta = 1$ is DDPM's noise (for any gap between $t$ and $s$); $\eta = 0$ is no fresh noise at
# all: the whole reverse process becomes deterministic, a function of $x_T$.
#
# **Sampling.** Replace the unknown $x_0$ by the network's estimate
# $\hat x_0 = (x_t - \sqrt{1-a_t}\,\epsilon_\theta)/\sqrt{a_t}$. Then the direction pointing to $x_t$,
# $(x_t - \sqrt{a_t}\,\hat x_0)/\sqrt{1-a_t}$, is exactly $\epsilon_\theta$, and a step is
#
# $$x_s = \sqrt{a_s}\,\hat x_0 + \sqrt{1-a_s-\sigma^2}\;\epsilon_\theta + \sigma z.$$
#
# ![One DDIM step drawn in the plane of the coefficients of x0_hat (horizontal) and eps (vertical): noise levels lie on a quarter circle; x_t sits high on the circle; a dashed blue line predicts x0_hat on the horizontal axis; a red arc moves along the circle to x_prev at eta = 0, whose components are sqrt(a_prev) x0_hat and sqrt(1 - a_prev) eps; a hollow point below it shows eta > 0, with a shorter eps component plus noise out of the plane](figures/4.2_ddim_geometry.svg)
#
# The figure shows why big steps work. Because $(\sqrt{a})^2 + (\sqrt{1-a})^2 = 1$, every noise level
# of the same $\hat x_0$ and $\epsilon$ lies on a quarter circle in the plane of their coefficients.
# An $\eta = 0$ step slides along that circle from $x_t$ towards $\hat x_0$, keeping the *same*
# $\epsilon$: if the prediction is good, the point lands exactly where the forward process would
# have put $x_0$ at level $s$, however far $s$ is from $t$. The error of a big step comes only from
# $\hat x_0$ changing along the way, which it does slowly. (In the rescaled variable
# $\bar x = x/\sqrt{a}$ the step reads $\bar x_s = \bar x_t + (\gamma_s - \gamma_t)\,\epsilon_\theta$
# with $\gamma = \sqrt{(1-a)/a}$: one Euler step of an ODE, the view Karras et al. (2022) build on.)
# With $\eta > 0$ part of the noise is replaced by fresh noise: the chain forgets some of its past
# at every step, which corrects errors but needs more steps to average out.
#
# Some numbers, for the jump from t = 980 to 960 (50 DDIM steps) and from 980 to 979 (one DDPM step):

# %%
ab = ck_sched.alpha_bars
for t, s in [(980, 960), (980, 979), (500, 480), (20, 0)]:
    a_t, a_s = ab[t], ab[s]
    for eta in [0.0, 1.0]:
        sigma = eta * ((1 - a_s) / (1 - a_t)).sqrt() * (1 - a_t / a_s).sqrt()
        print(f"t={t:3d} -> s={s:3d}  eta={eta}:  sqrt(a_s)={a_s.sqrt():.4f}  direction sqrt(1-a_s-sigma^2)={(1 - a_s - sigma**2).sqrt():.4f}  sigma={sigma:.4f}")

# %% [markdown]
# Read the table: near t = 1000 almost nothing of $x_0$ is left ($\sqrt{a_s}$ is about 0.01). At
# $\eta = 1$ the 20-step jump replaces a large share of the noise with fresh noise ($\sigma$ about 0.57,
# while the kept direction drops to about 0.82), where one DDPM step draws only about 0.14; $\eta = 0$
# keeps the whole direction. Near t = 0 the coefficient of $\hat x_0$ is within $10^{-4}$ of 1 and the
# direction term is about 0.01: the last steps return the prediction.
#
# ### Exercise: the timesteps DDIM visits
#
# diffusers' "leading" spacing: with 1000 training steps and 50 sampling steps, every 20th timestep,
# from 980 down to 0. The step after t is t - 20; after 0 comes "t = -20", which stands for clean
# data ($\bar\alpha = 1$). The check compares with `DDIMScheduler.set_timesteps`.

# %% exercise curriculum.solutions.chapter4.ddpm:ddim_timesteps difficulty=1 importance=2 minutes=5
tests.check_ddim_timesteps(ddim_timesteps)

# %% hint
# The step ratio is `n_train_steps // n_sample_steps` (integer division); the timesteps are that ratio
# times n_sample_steps - 1, n_sample_steps - 2, ..., 0.

# %% hint
# `torch.arange(n_sample_steps - 1, -1, -1, dtype=torch.long) * ratio`. The dtype matters: the
# timesteps index `alpha_bars`.

# %% [markdown]
# ### Exercise: sigma from eta
#
# Write `ddim_sigma(a_t, a_prev, eta)` from the derivation above, using only the two cumulative
# products. The check compares with the variance diffusers' `DDIMScheduler` computes, and checks
# that at $\eta = 1$ with consecutive steps $\sigma^2$ is 4.1's $\tilde\beta_t$.

# %% exercise curriculum.solutions.chapter4.ddpm:ddim_sigma difficulty=2 importance=4 minutes=10
tests.check_ddim_sigma(ddim_sigma)

# %% hint
# The derivation gives the *variance* of DDPM's posterior between the two levels; the function
# returns a standard deviation, scaled by eta.

# %% hint
# Write the variance as the product of two ratios, `(1 - a_prev) / (1 - a_t)` and `1 - a_t / a_prev`,
# then take the square root before scaling by eta (scaling the variance by eta would give eta^2).

# %% [markdown]
# ### Exercise: one DDIM step
#
# Put the step together. One subtlety with `clip_x0`: after clamping $\hat x_0$ to [-1, 1],
# recompute $\epsilon = (x_t - \sqrt{a_t}\,\hat x_0)/\sqrt{1-a_t}$. The derivation replaced $x_0$ by
# $\hat x_0$ in *both* terms; if you clamp $\hat x_0$ but keep the network's $\epsilon$, the two
# terms disagree about $x_t$, and whatever pushed $\hat x_0$ out of range survives unclamped in the
# direction term. DDPM's posterior mean never has this problem (it is written with $\hat x_0$ and
# $x_t$, not $\epsilon$). In 4.3, where guidance adds large terms to $\epsilon$, forgetting this
# costs most of the guidance's effect.
#
# The check compares with diffusers' `DDIMScheduler.step` for $\eta$ = 0, 0.5 and 1, with and
# without clamping, including the last step to t_prev < 0.

# %% exercise curriculum.solutions.chapter4.ddpm:ddim_step difficulty=3 importance=5 minutes=20
tests.check_ddim_step(ddim_step)

# %% hint
# Start from the two cumulative products: a_t = alpha_bars[t], and a_prev = alpha_bars[t_prev], or 1
# when t_prev < 0 (the step that lands on clean data). Everything else is written in terms of them.

# %% hint
# x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t). If `clip_x0` is set, clamp it and then recompute
# eps from the clamped x0_hat and x_t. Get sigma from your `ddim_sigma`, and add `sigma * noise`
# only when eta > 0.

# %% [markdown]
# ### Exercise: the DDIM sampling loop
#
# Now the loop: draw $x_T$, visit `ddim_timesteps`, call the model once per step with a batch of
# timesteps, and step to the next visited timestep. Draw all randomness from the generator on the
# CPU in the order the docstring gives (first $x_T$, then one noise tensor per step only when
# $\eta > 0$), so that a seed fixes the samples. The check runs your loop on the exact noise
# predictor of a Gaussian (4.1's `gaussian_optimal_eps`, no training needed) and compares with a
# loop over diffusers' `DDIMScheduler` for $\eta$ = 0, 0.5 and 1, with and without clamping; it also
# counts the network calls and their timesteps.

# %% exercise curriculum.solutions.chapter4.ddpm:ddim_sample difficulty=2 importance=5 minutes=15
tests.check_ddim_sample(ddim_sample)

# %% hint
# The gap between visited timesteps is the step ratio `len(alpha_bars) // n_steps`; from t you
# step to t minus that ratio, which is negative at the last step (your `ddim_step` handles that).

# %% hint
# `x = torch.randn(shape, generator=generator).to(device)`; for each t: build
# `torch.full((shape[0],), t, dtype=torch.long, device=device)`, call the model, draw `noise` (or
# None at eta = 0), then `x = ddim_step(eps, t, t - ratio, x, alpha_bars, eta, noise, clip_x0)`.

# %% [markdown]
# Because $\eta = 0$ is deterministic, the same starting noise gives nearly the same image whatever
# the step count. The rows below start from the same $x_T$ and are sampled with 50, 20 and 10 steps
# from the shipped checkpoint; the printout gives the time per row.

# %%
grids, titles = [], []
for n_steps in [50, 20, 10]:
    start = time.perf_counter()
    x = ddim_sample(net, (8, *ck_shape), ck_sched.alpha_bars, n_steps, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device)
    grids.append(x)
    titles += [f"DDIM-{n_steps}"] + [""] * 7
    print(f"DDIM-{n_steps}: {n_steps} network calls, {time.perf_counter() - start:.2f}s for 8 images")
image_grid(torch.cat(grids), nrow=8, titles=titles, value_range=(-1, 1))

# %% [markdown]
# What you should see: the same eight digits in each row (same $x_T$, same deterministic path),
# with small differences in stroke shape; at 10 steps some digits pick up a grainy, speckled
# texture. Each DDIM step is a move along the quarter circle with a frozen $\hat x_0$; with fewer
# steps $\hat x_0$ stays frozen for longer, and the noise that a better $\hat x_0$ would have
# explained is not fully removed. The DDPM grid above is not comparable image by image: its noise
# enters at every step.
#
# For contrast, your own model from the training cell above, sampled the same way (DDIM-20), where
# quick mode or a short run gives the noise-like samples explained earlier:

# %%
own = ddim_sample(ema.model.to(device), (8, c, h, h), sched.alpha_bars, 20, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device)
image_grid(own, nrow=8, value_range=(-1, 1), title="your U-Net, DDIM-20")

# %% [markdown]
# ## eta: from deterministic to stochastic
#
# With $\eta > 0$ fresh noise enters at each step. Same $x_T$, 20 steps, increasing $\eta$:

# %%
rows, titles = [], []
for eta in [0.0, 0.5, 1.0]:
    rows.append(ddim_sample(net, (8, *ck_shape), ck_sched.alpha_bars, 20, eta=eta, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device))
    titles += [f"eta={eta}"] + [""] * 7
image_grid(torch.cat(rows), nrow=8, titles=titles, value_range=(-1, 1))

# %% [markdown]
# What you should see: at $\eta = 0.5$ some digits keep their class and shape and others turn into a
# different digit; at $\eta = 1$ most of them change. Twenty large steps at $\eta = 1$ inject a lot of
# fresh noise (the table above: $\sigma$ is a large share of the noise at each jump), so the final
# image depends less and less on $x_T$. That is what makes the sampler stochastic, and also why
# DDPM-style noise needs many small steps to be removed accurately; with few steps, DDIM is normally
# run at $\eta = 0$.
#
# ## Summary and measurements
#
# - The U-Net: residual blocks with the timestep added per channel, learned down- and upsampling,
#   attention at the low resolutions (8x8 and 4x4 for 16x16 digits, 8x8 only for 32x32 MNIST),
#   skips concatenated on the channel axis between matching resolutions.
# - EMA weights are what you sample from.
# - DDIM: the training loss only fixes the marginals, so a family of reverse processes, indexed by
#   $\eta$, samples the same model; $\eta = 0$ is deterministic and accurate with big steps.
#
# `python -m curriculum.benchmarks.diffusion_sampling` measures DDPM-1000 against DDIM-50/20/10 on
# the shipped checkpoint: wall time, network calls, and a Fréchet distance computed on the features
# of a digit classifier trained on the real training digits and compared with the held-out ones
# (FID's formula with a small judge instead of Inception). Its docstring records a run on a 2-core
# CPU in which every sampler drew three batches of 300 samples from the same three seeds. DDIM-50 took
# 22x less time than DDPM-1000 per batch (it makes 20x fewer network calls, and the time per call moves
# by about 10% from run to run on a shared machine), but on the 900 samples
# pooled its Fréchet distance was 26% higher (0.73 against 0.58). Two lessons come out of that table.
# First, a Fréchet distance from a few hundred samples is noisy: DDPM-1000's three batches scored
# 0.67, 0.94 and 0.52, a spread wider than any gap between samplers, so compare samplers on the same
# seeds and on pooled samples, never on one batch each. Second, on a small model "more steps" and
# "more like DDPM" do not automatically help: pooled, DDIM with 10, 20 and 50 steps scored 0.76, 0.72
# and 0.73, all well above DDPM-1000, and adding noise to DDIM (`eta=0.3` at 50 steps) made one batch
# worse (0.95 against 0.78). Nor do more DDIM steps close the gap: on the first batch, DDIM with all
# 1000 steps scored 0.81, against 0.78 for DDIM-50 and 0.67 for DDPM-1000. Fifty steps already follow
# the deterministic path closely; the gap lies between that path and DDPM's noisy one, both driven by
# the same network. Split into the formula's two terms, DDIM's gap is all in the covariance
# term: its digits have a little less contrast and vary less from one sample to the next, while the
# mean term and the mix of digits match DDPM's. The deterministic path settles on smoother, more alike
# digits; DDPM's fresh noise at every step keeps more of the data's spread. Measure the sampler you
# ship on the model you ship.
# Next, in 4.3, the same samplers are steered towards a chosen class or caption.

# %% [markdown]
# ## Further reading
#
# - [Ronneberger, Fischer & Brox (2015), *U-Net: Convolutional Networks for Biomedical Image Segmentation*](https://arxiv.org/abs/1505.04597):
#   the architecture's origin in segmentation, and why skip connections between matching resolutions help.
# - [Ho, Jain & Abbeel (2020), *Denoising Diffusion Probabilistic Models*](https://arxiv.org/abs/2006.11239):
#   appendix B describes the U-Net this section scales down (GroupNorm, attention at 16x16 feature
#   maps of 32x32 images, the time embedding in every residual block).
# - [Song, Meng & Ermon (2021), *Denoising Diffusion Implicit Models*](https://arxiv.org/abs/2010.02502):
#   section 4 is the non-Markovian family derived above, with eta; its tables compare step counts.
# - [Nichol & Dhariwal (2021), *Improved Denoising Diffusion Probabilistic Models*](https://arxiv.org/abs/2102.09672):
#   the cosine schedule, learned variances, and why fewer sampling steps work better with them.
# - [Karras, Aittala, Aila & Laine (2022), *Elucidating the Design Space of Diffusion-Based Generative Models*](https://arxiv.org/abs/2206.00364):
#   the ODE view of the deterministic sampler, and which choices (noise levels, step placement,
#   higher-order steps) matter for few-step sampling.
# - [Wu & He (2018), *Group Normalization*](https://arxiv.org/abs/1803.08494): why normalising over
#   channel groups works where batch statistics fail.
