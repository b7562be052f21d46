# %% [markdown]
# # 4.3 CLIP, text conditioning and guidance
#
# A diffusion model trained as in 4.2 samples *some* digit. This section teaches it to draw the digit
# a caption names, three ways, and builds the model that makes two of them possible:
#
# 1. **CLIP** (Radford et al. 2021): an image encoder and a text encoder trained so that a matching
#    (image, caption) pair lands on nearby points of one embedding space. You build both encoders, a
#    small Vision Transformer and a small causal text Transformer, and the contrastive loss that
#    trains them. CLIP classifies images from text prompts with no classifier head, and its
#    similarity score can steer a sampler.
# 2. **Text conditioning**: a U-Net that *reads* the caption through **cross-attention**, each position
#    of its feature map attending to the caption's tokens. This is how Stable Diffusion and Imagen
#    take a prompt. Trained with the caption sometimes blanked out, the same network also predicts the
#    noise with no caption at all, and **classifier-free guidance** extrapolates between the two.
# 3. **Guidance with a separate judge**: classifier guidance (a classifier trained on noisy images
#    pushes the sample towards its class) and CLIP guidance (CLIP's similarity to the caption does).
#
# Everything runs on scikit-learn's handwritten digits upscaled to 16x16, each paired with captions
# like "a handwritten seven" or "the digit seven". You train small versions of every model yourself,
# but the guided sampling at the end runs on **shipped checkpoints** (each under 2 MB, in
# `data/chapter4/`), so that a laptop shows real digits within seconds. They are rebuilt by
#
#     nice -n 10 python -m curriculum.solutions.chapter4.text_conditioning
#
# in under half an hour on 2 CPU cores (the command prints each model's accuracy as it finishes).
# The references are `curriculum/solutions/chapter4/clip.py`, `text_conditioning.py` and `guidance.py`.

# %% setup
import math
import random

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter4.clip import (
    CLIP,
    CLIPConfig,
    CLIPTrainConfig,
    WordTokenizer,
    causal_mask,
    last_token_index,
    pretrained_zero_shot,
    tokenizer_for,
    train_clip,
    transformer_block,
    zero_shot_accuracy,
)
from curriculum.solutions.chapter4.guidance import judge_features
from curriculum.solutions.chapter4.text_conditioning import (
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    TextTrainConfig,
    TextUNet,
    TextUNetConfig,
    guided_sample,
    load_model,
    schedule,
    shipped_tokenizer,
)
from curriculum.solutions.chapter4.ddpm import ddim_sample  # noqa: F401 - 4.2's sampler, for your own experiments
from curriculum.solutions.chapter4.toy_diffusion import Schedule, _broadcast, diffusion_loss
from curriculum.checks.chapter4 import clip_guidance as tests
from curriculum.utils import full_or_quick, get_device
from curriculum.utils.image_data import ImageDataset, digits, load_image_dataset
from curriculum.utils.offline import use_real_resources
from curriculum.utils.plotting import image_grid, imshow, line

# %%
torch.manual_seed(0)
data = digits(16)
train, test = data.split(n_test=300)
tok = shipped_tokenizer()
print(f"{len(train.labels)} training and {len(test.labels)} test digits of shape {train.image_shape}")
print("captions:", train.captions(train.labels[:4], seed=0))
print("vocabulary:", tok.vocab)
print(tok(["a handwritten seven", ""]))

# %% [markdown]
# The tokenizer is word-level: our captions use 18 distinct words, so a learned byte-pair vocabulary
# would be overkill. Each caption becomes `<bos> words <eos>` followed by `<pad>` (id 0) up to a fixed
# length of 10. The empty caption `""` is just `<bos> <eos>`: you will use it as "no caption". Note
# where the `<eos>` of each row sits (index 4 for "a handwritten seven", index 1 for the empty
# caption): the text encoder will read its summary of the caption there.
#
# ## Part 1: CLIP, two encoders and one space
#
# ![CLIP: a ViT encodes the image from its class token, a causal text Transformer encodes the caption at its end-of-text token; both are projected and normalised into one space, and the N x N matrix of their cosine similarities is trained with cross-entropy along its rows and its columns, the diagonal being the right answers](figures/4.3_clip.svg)
#
# CLIP's idea is to learn from captions instead of labels. Take a batch of N images and their N
# captions. Encode every image and every caption, normalise each embedding to unit length, and form
# the N x N matrix of cosine similarities. The diagonal holds the true pairs; everything else is a
# mismatch. Training asks each row to pick its diagonal entry among N captions, and each column to
# pick its diagonal entry among N images. Every other caption in the batch is a free negative
# example: nobody had to label anything.
#
# Nothing forces the two encoders to have the same architecture or width. In the original CLIP the
# image side is a ResNet or a ViT and the text side a GPT-2-like Transformer; each ends in a linear
# projection to the shared space (d_embed). Here the ViT is 64 wide, the text Transformer 48 wide and
# the shared space 32-dimensional, so a shape mistake shows up at once.
#
# ### Exercise: patch embedding
#
# A Vision Transformer (Dosovitskiy et al. 2020) treats an image as a sequence of patches. Cut the
# 16x16 digit into a 4x4 grid of 4x4 patches, flatten each patch to 16 numbers, and map it linearly
# to a d_image vector: 16 "tokens", one per patch. A linear map applied to every non-overlapping
# patch is exactly a convolution whose kernel and stride are both the patch size: each output pixel
# of `nn.Conv2d(c, d, kernel_size=p, stride=p)` is the dot product of one patch with each of d
# filters. So `PatchEmbedding.proj` is that convolution, and you turn its output grid into a sequence.
#
# Worked example: a (2, 3, 8, 12) batch with patch size 4 gives a (2, d, 2, 3) grid, which becomes
# (2, 6, d): patch 0 is the top-left square, patch 2 the top-right, patch 3 the bottom-left. The
# order matters because position embedding i is learned for "the patch at index i": row-major, the
# order `flatten` and `F.unfold` use, is the convention. The check compares with an independent
# computation that cuts the patches with `F.unfold` and multiplies by the flattened conv weights,
# on a non-square grid, so a transposed grid shows.

# %% exercise curriculum.solutions.chapter4.clip:PatchEmbedding difficulty=1 importance=3 minutes=5
tests.check_patch_embedding(PatchEmbedding)

# %% hint
# The convolution already does the arithmetic: `self.proj(images)` has shape (b, d_model, h/p, w/p).
# What is left is a reshape that puts the patches on the second axis and the features last.

# %% hint
# `einops.rearrange(grid, "b d gh gw -> b (gh gw) d")`, or `.flatten(2).transpose(1, 2)`. Writing
# `(gw gh)` would number the patches down the columns first.

# %% [markdown]
# ### Exercise: the ViT image encoder
#
# The patches alone are a bag of 16 vectors. The ViT adds three things:
#
# - a **class token**: one extra learned vector put in front of the patches (position 0). It carries
#   no pixels; through attention it gathers whatever the patches say, and its final state is the
#   image's summary. (Averaging all tokens also works; CLIP and the original ViT read the class token.)
# - **position embeddings**: one learned vector per position (17 here, the class token included),
#   added to the tokens. Attention itself is blind to order; without them, a digit and the same
#   patches shuffled would look identical.
# - **Transformer blocks** with no mask: every patch may attend to every other.
#
# Then a final LayerNorm and the projection of the class token's state to d_embed. Shapes for one
# 16x16 digit: (16, 64) patches -> (17, 64) with the class token -> blocks -> (17, 64) -> row 0 ->
# (64,) -> projection -> (32,).
#
# `__init__` is given (`patch_embed`, `cls_token` of shape (1, 1, d_image), `pos_emb`, `blocks`,
# `ln_final`, `proj`); write `forward`. The check rebuilds the same computation from your own
# submodules, with the patches cut independently, and names the usual slips: reading the last token,
# averaging the tokens, forgetting the position embeddings.

# %% exercise curriculum.solutions.chapter4.clip:ViTEncoder difficulty=2 importance=4 minutes=10
tests.check_vit_encoder(ViTEncoder)

# %% hint
# The class token is one parameter shared by all images: expand it to (b, 1, d_image) and
# concatenate it in front of the (b, n_patches, d_image) patches, along the sequence axis.

# %% hint
# `x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_emb`, then each
# block in turn, then `self.proj(self.ln_final(x)[:, 0])`.

# %% [markdown]
# ### Exercise: pooling at the last real token
#
# The text side is a small Transformer over word tokens: token embeddings plus learned position
# embeddings, blocks, a final LayerNorm. Two choices need thought.
#
# **Causal or not?** CLIP's text encoder is *causal*: token i attends only to tokens 0..i, as in a
# language model. Radford et al. chose it so the encoder could start from, or be trained alongside, a
# language model. For us it has a second benefit: padding always comes *after* `<eos>`, so under a
# causal mask no real token can ever attend to a pad, and no key-padding mask is needed. The price is
# that early tokens know nothing of later ones; only the last real token has read the whole caption.
#
# **Where to pool.** That last real token is `<eos>`, and its final state is the caption's summary.
# In a batch the captions have different lengths, so the position differs per row:
# `last_token_index(ids)` (given) computes (ids != PAD).sum(1) - 1. For the batch
# `["a handwritten seven", ""]` printed above it gives [4, 1]. Reading position 0 instead gives
# `<bos>`, which under the causal mask has seen nothing of the caption, so every caption would get
# the same embedding; reading the last column gives a pad for every caption shorter than the longest,
# a state that depends on how much padding the batch happened to need.
#
# Write `pool_last_token(states, ids)`: from (b, seq, d) states, the (b, d) states at each row's
# last real token. The check pools three differently padded captions and names each wrong position.

# %% exercise curriculum.solutions.chapter4.clip:pool_last_token difficulty=1 importance=4 minutes=5
tests.check_pool_last_token(pool_last_token)

# %% hint
# You need one (row, position) pair per caption: index the batch axis and the sequence axis
# together, with two index tensors of length b.

# %% hint
# `states[torch.arange(len(ids)), last_token_index(ids)]` has shape (b, d).

# %% [markdown]
# ### Exercise: the causal text encoder
#
# Now the encoder itself. Write `token_states`: one d_text vector per token, which you will need
# again for cross-attention in Part 2. `forward` (given) pools with your function and projects to
# d_embed. Pass the mask to each block as `block(x, src_mask=causal_mask(seq), is_causal=True)`;
# `causal_mask` (given) is True where attention is forbidden, torch's convention. Slice `pos_emb` to
# the batch's sequence length, which may be shorter than max_len. The check compares both methods
# with an independent computation from your submodules, tells a missing causal mask apart, and adds
# a `<pad>` column to confirm that nothing changes.

# %% exercise curriculum.solutions.chapter4.clip:TextEncoder difficulty=2 importance=4 minutes=10
tests.check_text_encoder(TextEncoder)

# %% hint
# `x = self.tok_emb(ids) + self.pos_emb[: ids.shape[1]]` adds the same position vectors to every
# caption of the batch (broadcast over the batch axis).

# %% hint
# Then `for block in self.blocks: x = block(x, src_mask=mask, is_causal=True)` with
# `mask = causal_mask(ids.shape[1], ids.device)`, and return `self.ln_final(x)`.

# %% [markdown]
# ### Exercise: CLIP's contrastive loss
#
# With both embeddings normalised, logits[i, j] = exp(logit_scale) * cos(image_i, text_j). The
# temperature is learned through logit_scale = log(1 / temperature), so exp(logit_scale) = 1 /
# temperature *multiplies* the cosines. CLIP initialises the temperature at 0.07: logit_scale starts
# at log(1 / 0.07) = 2.66, and exp(logit_scale) at 14.3. Cosines lie in [-1, 1], so without the
# scale the softmax over a row could never be confident (the largest possible gap between two logits
# would be 2); multiplied by 14.3 the gap reaches 28.6. Training tends to raise the scale, and CLIP
# clamps exp(logit_scale) at 100 to keep it from running away. Learning the log keeps the scale
# positive and makes its steps multiplicative.
#
# The loss is the mean of two cross-entropies with targets 0, 1, ..., N - 1: rows of the logits
# (each image picks its caption) and rows of the transposed logits (each caption picks its image).
# Worked example with N = 2: cosines [[0.9, 0.1], [0.3, 0.8]] times 14.3 give [[12.9, 1.4], [4.3,
# 11.4]]; each row's softmax puts almost all its mass on the diagonal, so both cross-entropies are
# tiny. One direction alone would let all images crowd around one caption region as long as each
# caption's row still ranks its own image first; the symmetric loss asks for both.
#
# In our data many images in a batch share a digit, and their captions may even be identical: those
# off-diagonal "negatives" are really positives, so the loss cannot reach zero (with 128 pairs and 10
# digits, its floor is near log(128 / 10) = 2.5). The check compares with a direct computation at
# three batch sizes and temperatures (one beyond the clamp), names a loss in one direction only and a
# temperature that divides instead of multiplies, and checks that a gradient reaches logit_scale.

# %% exercise curriculum.solutions.chapter4.clip:clip_loss difficulty=2 importance=5 minutes=15
tests.check_clip_loss(clip_loss)

# %% hint
# Normalise each row of both embedding matrices; then one matrix product gives all N x N cosines,
# and the right answer for row i is column i, so the targets are `torch.arange(N)`.

# %% hint
# `logits = logit_scale.exp().clamp(max=100) * image_emb @ text_emb.T`; average
# `F.cross_entropy(logits, targets)` and `F.cross_entropy(logits.T, targets)`. Calling `.item()` on
# the scale would cut the temperature out of the graph.

# %% [markdown]
# ### Exercise: zero-shot classification
#
# With a trained CLIP, classification needs no classifier: embed one prompt per class ("a handwritten
# zero", ..., "a handwritten nine"), embed the image, and pick the prompt with the highest cosine
# similarity. Adding a class is writing a sentence. The check's embeddings have very different
# lengths, so ranking by raw dot products picks the wrong class for some images.

# %% exercise curriculum.solutions.chapter4.clip:zero_shot_classify difficulty=1 importance=4 minutes=5
tests.check_zero_shot_classify(zero_shot_classify)

# %% hint
# The same similarity matrix as in the loss, without the temperature (a positive scale does not
# change which entry is largest): images as rows, class prompts as columns.

# %% hint
# Normalise both, multiply `image_emb @ class_text_emb.T`, then `argmax(dim=-1)` over the classes.

# %% [markdown]
# Now train your CLIP. At full size (1,000 steps of 128 pairs, the recipe of the shipped CLIP) this
# takes a few minutes on a laptop CPU; quick mode runs 100 steps. The loss curve should fall from
# about log(128) = 4.9 (random embeddings) towards the floor of about 2.5 discussed above.

# %%
clip_cfg = CLIPConfig(vocab_size=len(tok.vocab), max_len=tok.max_len)
my_clip = CLIP(clip_cfg)
clip_losses = train_clip(my_clip, train, tok, CLIPTrainConfig(n_steps=full_or_quick(1000, 100), batch_size=128, lr=1e-3))
line(clip_losses, smooth=20, title="CLIP contrastive loss", ylabel="loss")

# %%
prompts = [train.prompt(k) for k in range(10)]
my_clip.eval()
with torch.no_grad():
    img_emb, txt_emb = my_clip.encode_image(test.images), my_clip.encode_text(tok(prompts))
    pred = zero_shot_classify(img_emb, txt_emb)
print(f"your CLIP: zero-shot accuracy on {len(test.labels)} held-out digits {(pred == test.labels).float().mean():.3f} (chance 0.1)")
print(f"learned temperature {1 / my_clip.logit_scale.exp().item():.4f} (started at 0.07)")
shipped_clip = load_model("clip")
print(f"shipped CLIP: zero-shot accuracy {zero_shot_accuracy(shipped_clip, test, tok):.3f}")
order = test.labels.argsort()[:: max(1, len(test.labels) // 40)]
imshow(img_emb[order] @ txt_emb.T, x=prompts, title="cosine similarity: test images (rows, sorted by label) x prompts", zmid=None)

# %% [markdown]
# What to look for: the similarity matrix should show a staircase, each block of rows (images of one
# digit) lighting up its own prompt's column. Blocks that light up two columns are digits your CLIP
# confuses (3 and 8, 1 and 7 are the usual pairs). A uniform matrix means the encoders have not
# learned yet. Quick mode's 100 steps already give a faint staircase (about 0.8 zero-shot accuracy,
# its loss still near 3.3); the shipped CLIP shows what the full recipe gives.
#
# Online, the same zero-shot recipe runs on OpenAI's CLIP (ViT-B/32, trained on 400 million web
# image-text pairs), applied to MNIST, images and prompts it never trained on:

# %%
if use_real_resources():
    mnist = load_image_dataset(online_name="mnist", online_limit=200).value
    print(f"pretrained CLIP zero-shot accuracy on {mnist.name}: {pretrained_zero_shot(mnist, n_images=200):.3f}")
else:
    print("offline: skipping the pretrained CLIP (it needs a download from the Hugging Face Hub)")

# %% [markdown]
# ## Part 2: text conditioning with cross-attention
#
# CLIP scores how well an image fits a caption. To *generate* from a caption, the denoiser itself
# must read it. The 4.2 U-Net took a class label by adding a learned vector to the timestep
# embedding: one vector per class, one number per channel. A caption is a sequence of tokens whose
# meaning depends on which words are there and where; squeezing it into one vector works for our
# ten digits but not for "a red cube on a blue sphere". Latent diffusion (Rombach et al. 2021, the
# model behind Stable Diffusion) and Imagen (Saharia et al. 2022) instead let the U-Net **attend to
# the caption's token states** at several resolutions.
#
# ![The text-conditioned U-Net: the caption goes through a causal text encoder; its token states are the keys and values of cross-attention blocks at the 8x8 level of the U-Net, where every feature-map position is a query; its pooled end-of-text state is added to the timestep embedding that every ResBlock receives](figures/4.3_text_unet.svg)
#
# Cross-attention is attention with the two roles split between two sequences. The **queries** come
# from the image: each of the h*w positions of a feature map asks "what do I need to know?". The
# **keys and values** come from the caption's token states: each token says what it is about (key)
# and what it offers (value). Each position takes a softmax-weighted mix of the token values and adds
# it, projected, to its features. With an 8x8 feature map of 48 channels and a 10-token caption of
# width 48: queries (64, 48), keys and values (10, 48), scores (64, 10), softmax over the 10 tokens
# for each of the 64 positions, output (64, 48), reshaped back to (48, 8, 8). The feature map and the
# caption may have different widths: `to_k` and `to_v` map d_context to the U-Net's channel count.
#
# **Padding matters here.** Unlike in the causal text encoder, every position attends to every token,
# pads included, unless you mask them: set the scores of pad tokens to -inf before the softmax. An
# unmasked model still trains, but its output then depends on how much padding a caption happened to
# get, and the pad states (which the text encoder computed from the caption anyway) become a
# hidden channel the model learns to rely on.
#
# ### Exercise: cross-attention
#
# `__init__` is given: a GroupNorm for the feature map, `to_q` (ch -> ch), `to_k` and `to_v`
# (d_context -> ch), `to_out` (ch -> ch), and `n_heads` heads of ch / n_heads channels each. Write
# `forward(x, context, context_mask)`, where `context_mask` is True at real tokens. The check builds
# the same attention with `F.scaled_dot_product_attention` (torch's fused kernel, with the mask as
# `attn_mask`) from your own projections, on a 3x5 feature map and two captions, the second ending in
# two pads. It names three bugs: pad tokens not masked; a softmax over the image positions instead of
# over the tokens (what swapping queries and keys amounts to); a missing residual.

# %% exercise curriculum.solutions.chapter4.text_conditioning:CrossAttention difficulty=3 importance=5 minutes=20
tests.check_cross_attention(CrossAttention)

# %% hint
# Flatten the normalised feature map to (b, h*w, ch) before `to_q`. Split every projection into heads
# as (b, heads, length, d_head); the scores are (b, heads, h*w, seq), and the softmax runs over the
# last axis, the tokens.

# %% hint
# `scores.masked_fill(~context_mask[:, None, None, :], float("-inf"))` broadcasts the mask over heads
# and positions. Scale by 1 / sqrt(d_head) before the softmax. Merge the heads back to (b, h*w, ch),
# apply `to_out`, reshape to (b, ch, h, w) and add `x`.

# %% [markdown]
# ### The text-conditioned U-Net, and why captions are dropped
#
# `TextUNet` (given, in `text_conditioning.py`) is a two-level U-Net for 16x16 images: a ResBlock at
# 16x16 (24 channels), a downsample, then a ResBlock and a CrossAttention at 8x8 (48 channels), a
# middle of ResBlock, CrossAttention, ResBlock, and the mirror image on the way up, with skip
# connections. It owns a causal `TextEncoder` like CLIP's (trained from scratch with the U-Net, as
# latent diffusion's was). Its token states feed every CrossAttention; its pooled `<eos>` state,
# projected, is added to the timestep embedding, as Imagen does, so the caption also reaches every
# ResBlock. `forward(x_t, t, ids)` takes token ids. About 370,000 parameters: 1.5 MB in float32.
#
# Training is 4.2's diffusion loss with one change. With probability p_uncond = 0.1 a caption is
# replaced by the **empty caption** "", so the same network learns eps(x_t, t, caption) and
# eps(x_t, t, nothing). Classifier-free guidance needs both. Using "" rather than a special token
# means the unconditional input is an ordinary caption the text encoder already handles.
#
# One phrasing, "a picture of the number {}", is **held out**: training draws only from the other
# four templates ("a handwritten {}", "a drawing of a {}", "the digit {}" and the bare "{}"). If the
# model generates the right digit for a held-out caption, it has learned to find the digit word
# rather than memorise four strings per digit. The words "picture" and "number" are in the
# vocabulary, but their embeddings stay where initialisation left them, so they are noise the model
# must learn to look past. (Only the U-Net is denied this phrasing: CLIP in Part 1 trained on all
# five, which is why it showed up among the captions printed at the start.)
#
# ### Exercise: training with caption dropout
#
# Write the body of the training loop of `train_text_unet`: draw a random batch of `cfg.batch_size`
# images (indices into `dataset.images` and `dataset.labels`, drawn with torch); build one
# caption per image, a random template from `templates` with the image's digit word
# (`dataset.class_names[label]`), replaced by "" with probability `cfg.p_uncond`, independently per
# caption; tokenize; compute `diffusion_loss(model, x0, sched.alpha_bars, ids=ids)` (4.1's loss
# passes extra keywords to the model); step the optimiser with the gradient norm clipped at 1, then
# the learning-rate schedule. The check runs your loop on a spy model that records every batch of
# token ids: it looks for the right fraction of empty captions, dropped per caption, no held-out
# phrasing, a digit word in every other caption, a parameter that moved, a gradient norm of at
# most 1 whenever the optimiser steps, and a learning rate that follows the cosine step by step.

# %% exercise curriculum.solutions.chapter4.text_conditioning:train_text_unet difficulty=2 importance=4 minutes=15
tests.check_train_text_unet(train_text_unet)

# %% hint
# Use the `rng = random.Random(cfg.seed)` already made: `rng.random() < cfg.p_uncond` for the
# dropout and `rng.choice(templates).format(word)` for the caption, in a list comprehension over
# `dataset.labels[idx]`.

# %% hint
# `loss = diffusion_loss(model, dataset.images[idx], sched.alpha_bars, ids=tokenizer(captions))`;
# then `opt.zero_grad()`, `loss.backward()`, `nn.utils.clip_grad_norm_(model.parameters(), 1.0)`,
# `opt.step()`, `lr_at.step()`.

# %% [markdown]
# Train your own text-conditioned U-Net. The full recipe (3,000 steps of 64 images, what the shipped
# model used) takes several minutes on a 2-core laptop CPU and about a minute on a Colab GPU (an
# estimate); quick mode runs 50 steps, enough to see the loss fall but not to draw digits. The loss
# starts at 1 (the U-Net starts as a zero predictor and the noise has unit variance) and should
# settle well below 0.1 at full size.

# %%
device = get_device()
sched = schedule()  # linear betas over 1000 steps, shared by every 4.3 model
my_unet = TextUNet(TextUNetConfig(vocab_size=len(tok.vocab), max_len=tok.max_len))
unet_losses = train_text_unet(my_unet, train, tok, sched, TextTrainConfig(n_steps=full_or_quick(3000, 50)))
line(unet_losses, smooth=50, title="text-conditioned U-Net: diffusion loss", ylabel="loss")

# %% [markdown]
# ## Classifier-free guidance
#
# Ho & Salimans (2022) observed that a model trained with and without its condition contains an
# implicit classifier. By Bayes, grad log p(c | x_t) = grad log p(x_t | c) - grad log p(x_t), and the
# noise prediction is a scaled score, eps = -sqrt(1 - alpha_bar_t) grad log p(x_t). So the
# *difference* eps(x_t, t, c) - eps(x_t, t, "") points along -grad log p(c | x_t): towards images
# that fit the caption better. Guidance walks further along it:
#
#     eps_guided = eps(x_t, t, "") + s * (eps(x_t, t, c) - eps(x_t, t, "")).
#
# s = 0 is the unconditional model, s = 1 the plain conditional model, and s > 1 extrapolates past
# it, sampling from something like p(x) p(c | x)^s: sharper, more recognisable, less varied. It is
# what Stable Diffusion, Imagen and most text-to-image models use, with s between 3 and 10. A
# worked example for one pixel: eps("") = 0.2, eps(c) = 0.5, s = 3 gives 0.2 + 3 * 0.3 = 1.1.
#
# ### Exercise: classifier-free guidance
#
# `cfg_eps(model, x_t, t, ids, null_ids, scale)`: `null_ids` holds the tokenized empty caption, one
# row per example. Run the two predictions as one forward pass on a doubled batch: for a network this
# small, one call on 2b images costs much less than two calls on b. The check runs a stand-in model
# whose output depends on the caption and names the bug if you swap the two halves.

# %% exercise curriculum.solutions.chapter4.guidance:cfg_eps difficulty=2 importance=5 minutes=10
tests.check_cfg_eps(cfg_eps)

# %% hint
# Stack the batch on itself: the first half gets the captions, the second half the empty captions.
# One call of the model, then split the output back into its two halves.

# %% hint
# `torch.cat([x_t, x_t])`, `torch.cat([t, t])`, `torch.cat([ids, null_ids])`;
# `eps_cond, eps_uncond = out.chunk(2)`; return `eps_uncond + scale * (eps_cond - eps_uncond)`.

# %% [markdown]
# ### Sampling with a guided noise prediction
#
# Guidance changes only the noise prediction; the sampler stays 4.2's deterministic DDIM. 4.2's
# `ddim_sample` already calls its `model` as `model(x_t, t_batch)` and never looks inside, so any
# function with that signature can stand in for the U-Net: `lambda x, t: cfg_eps(unet, x, t, ids,
# null_ids, scale)` samples with classifier-free guidance, and the classifier and CLIP guidance
# below plug in the same way. `guided_sample(eps_fn, shape, alpha_bars, n_steps, generator)` is
# exactly `ddim_sample(eps_fn, ..., eta=0.0, clip_x0=1.0)`, with the defaults this section uses.
#
# One line of 4.2's step earns its keep here. Each step computes
#
#     x0_hat = clamp((x_t - sqrt(1 - a) eps) / sqrt(a), -1, 1)
#     eps    = (x_t - sqrt(a) x0_hat) / sqrt(1 - a)
#     x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev) eps
#
# A large guidance term pushes x0_hat far outside the pixel range. Clamping alone fixes x0_hat, but
# the same push would survive in eps and throw the next step off; recomputing eps from the clamped
# x0_hat keeps the two consistent. Try it once the samples below work: sample at scale 5 with
# `clip_x0=None` passed to `ddim_sample`, and compare.

# %% [markdown]
# Now ask the **shipped** text-conditioned U-Net for each digit in the held-out phrasing, at guidance
# scales 0, 1 and 3, from the same starting noise. A judge (a classifier trained on clean real
# digits, also shipped, never used for guidance) reads each sample.

# %%
unet, judge = load_model("unet", device), load_model("judge", device)
per_digit = full_or_quick(4, 2)
targets = torch.arange(10, device=device).repeat_interleave(per_digit)
held_out = [HELD_OUT_TEMPLATES[0].format(data.class_names[int(y)]) for y in targets]
ids, null_ids = tok(held_out).to(device), tok([""]).to(device).expand(len(targets), -1)
shape, steps = (len(targets), 1, 16, 16), full_or_quick(50, 20)


def show_per_digit(images, title):
    titles = [data.class_names[int(y)] if i % per_digit == 0 else "" for i, y in enumerate(targets)]
    image_grid(images.cpu(), nrow=per_digit * 5, titles=titles, value_range=(-1, 1), title=title)


def on_target(samples):
    return (judge_features(judge, samples)[1] == targets.cpu()).float().mean().item()


for scale in [0.0, 1.0, 3.0]:
    samples = guided_sample(lambda x, t: cfg_eps(unet, x, t, ids, null_ids, scale), shape, sched.alpha_bars, steps,
                            generator=torch.Generator().manual_seed(0), device=device)
    show_per_digit(samples, f'"{HELD_OUT_TEMPLATES[0]}", classifier-free guidance scale {scale}')
    print(f"scale {scale}: {on_target(samples):.2f} of samples judged as the digit their caption names")

# %% [markdown]
# What to look for. At scale 0 the captions are ignored: you get a mix of digits, and about one in ten
# lands on its caption by chance. At scale 1 most samples are the named digit, a few are not. At scale
# 3 nearly all are, drawn with thicker, more prototypical strokes: the diversity you lose is the
# price of fidelity. The benchmark named at the end of the section measures this on 200 samples per
# scale.
#
# Now type your own caption. Any phrasing built from the vocabulary works; words outside it become
# `<unk>`, and a caption without a digit word gets whatever the model makes of it.

# %%
my_caption = "a picture of the number three"
my_ids = tok([my_caption] * 8).to(device)
mine = guided_sample(lambda x, t: cfg_eps(unet, x, t, my_ids, null_ids[:8], 3.0), (8, 1, 16, 16), sched.alpha_bars, steps,
                     generator=torch.Generator().manual_seed(1), device=device)
image_grid(mine.cpu(), nrow=8, value_range=(-1, 1), title=f'"{my_caption}"')

# %% [markdown]
# And your own model from the training cell above, same captions, scale 3. At full size it draws
# digits like the shipped one (it is the same recipe); after quick mode's 50 steps it draws speckled
# noise and blurred strokes that rarely match the caption (about one in twenty on target), because
# 50 steps teach the network the average image and not yet the caption.

# %%
my_unet = my_unet.to(device).eval()
yours = guided_sample(lambda x, t: cfg_eps(my_unet, x, t, ids, null_ids, 3.0), shape, sched.alpha_bars, steps,
                      generator=torch.Generator().manual_seed(0), device=device)
show_per_digit(yours, "your text-conditioned U-Net, scale 3")
print(f"your U-Net: {on_target(yours):.2f} on target")

# %% [markdown]
# ## Part 3: guidance with a separate model
#
# Classifier-free guidance needs the condition inside the denoiser. The older alternative keeps the
# denoiser unconditional and lets a second model steer it. Here the unconditional denoiser is the
# same shipped U-Net given the empty caption.
#
# ### Classifier guidance
#
# Bayes again: p(x_t | y) is proportional to p(x_t) p(y | x_t), so the conditional score is the
# unconditional score plus grad log p(y | x_t). Since eps = -sqrt(1 - alpha_bar_t) times the score,
# adding the classifier's gradient to the score means *subtracting* sqrt(1 - alpha_bar_t) times it
# from eps. A scale s > 1 sharpens p(y | x_t) to p(y | x_t)^s (Dhariwal & Nichol 2021).
#
# The classifier must read **noisy** images: it is trained with cross-entropy on x_t = add_noise(x_0,
# eps, t) at random t, with t as an input. A classifier trained only on clean digits gives arbitrary
# gradients at high noise, where guidance matters most. The shipped `NoisyClassifier` is the U-Net's
# encoder half with a linear head.
#
# ### Exercise: classifier guidance
#
# The sampler runs under `torch.no_grad()`; compute the gradient inside `torch.enable_grad()` with
# `torch.autograd.grad` on a detached copy of x_t. The check uses a linear classifier, whose gradient
# of log p(y | x) has a closed form, and notices gradients leaking into the classifier's parameters.

# %% exercise curriculum.solutions.chapter4.guidance:classifier_guided_eps difficulty=3 importance=4 minutes=20
tests.check_classifier_guided_eps(classifier_guided_eps)

# %% hint
# Two separate computations: the diffusion model's eps (no gradient needed), and the gradient of
# log p(y | x_t, t) with respect to x_t. For the second, make a leaf copy of x_t that requires grad,
# inside `torch.enable_grad()`.

# %% hint
# `x = x_t.detach().requires_grad_(True)`; `log_probs = classifier(x, t).log_softmax(-1)`; pick each
# example's own label with `log_probs[torch.arange(len(y)), y]`, `.sum()` it, and
# `(grad,) = torch.autograd.grad(total, x)`. Then `eps - scale * sqrt(1 - alpha_bar_t) * grad` with
# alpha_bar broadcast per example. The raw logit instead of the log-softmax is the classic slip.

# %%
noisy_clf = load_model("classifier", device)
uncond = lambda x, t: unet(x, t, null_ids[: len(x)])  # noqa: E731  (the empty caption: no conditioning)
clf_samples = guided_sample(lambda x, t: classifier_guided_eps(uncond, noisy_clf, x, t, targets, 3.0, sched.alpha_bars),
                            shape, sched.alpha_bars, steps, generator=torch.Generator().manual_seed(0), device=device)
show_per_digit(clf_samples, "classifier guidance, scale 3")
print(f"classifier guidance: {on_target(clf_samples):.2f} on target")

# %% [markdown]
# ### CLIP guidance
#
# CLIP can play the classifier's part with a caption instead of a label: push the sample towards
# higher cosine similarity between its image embedding and the caption's. Our CLIP only saw clean
# digits, so it scores the model's current guess of the clean image, x0_hat = (x_t - sqrt(1 - a) eps)
# / sqrt(a), and the gradient flows back to x_t through both paths: directly and through the U-Net's
# eps. GLIDE (Nichol et al. 2021) instead trained a noise-aware CLIP on x_t, which avoids
# differentiating through the denoiser.
#
# ### Exercise: CLIP guidance
#
# The check uses a stand-in CLIP (a linear image encoder) and a stand-in noise predictor, and
# compares with the gradient of the score written out and differentiated by `torch.func.grad`; a
# gradient that skips the path through eps, or that scores x_t instead of x0_hat, shows up there.

# %% exercise curriculum.solutions.chapter4.guidance:clip_guided_eps difficulty=3 importance=4 minutes=20
tests.check_clip_guided_eps(clip_guided_eps)

# %% hint
# Unlike classifier guidance, eps must be computed *with* gradients this time: x0_hat depends on x_t
# both directly and through eps, and the gradient should flow through both.

# %% hint
# Inside `torch.enable_grad()`: a leaf `x` from `x_t.detach()`, `eps = eps_model(x, t)`,
# `x0_hat = (x - sqrt(1 - a) * eps) / sqrt(a)`, the summed `F.cosine_similarity` of
# `clip.encode_image(x0_hat)` with `text_emb`, then `torch.autograd.grad` w.r.t. `x`. Return
# `eps.detach() - scale * sqrt(1 - a) * grad`, so the sampler does not build a graph across steps.

# %%
shipped_clip = shipped_clip.to(device)
with torch.no_grad():
    text_targets = shipped_clip.encode_text(ids)  # the same captions (held out from the U-Net's training, not CLIP's)
clip_samples = guided_sample(lambda x, t: clip_guided_eps(uncond, shipped_clip, text_targets, x, t, 50.0, sched.alpha_bars),
                             shape, sched.alpha_bars, steps, generator=torch.Generator().manual_seed(0), device=device)
show_per_digit(clip_samples, "CLIP guidance on x0_hat, scale 50")
print(f"CLIP guidance: {on_target(clip_samples):.2f} on target")

# %% [markdown]
# ## Did it work? Ask the judge, at scale
#
# The cells above drew a few samples per digit, so their rates move by a tenth from one seed to the
# next. At full size (4 per digit, the held-out phrasing, seed 0; DDIM-50, and DDIM-20 gives the
# same) the shipped U-Net scores 0.075, 0.875 and 1.00 on target at scales 0, 1 and 3: chance, then
# most, then all (quick mode's 2 per digit give 0.05, 0.95 and 1.00). Looking at the full-size grid, the scale-0 rows are a
# mixture of well-formed digits of every kind; at scale 1 a few columns still hold a stray digit
# (a 5 among the nines); at scale 3 every column shows its own digit, with less variety in slant and
# thickness. `python -m curriculum.benchmarks.text_conditioning` repeats the measurement with 200
# samples per setting, at scales 0, 1, 3 and 5, for the held-out phrasing and a training phrasing,
# and also for classifier guidance and CLIP guidance, so you can compare all three methods on the
# same models.
#
# Three things to look for in those numbers. The held-out phrasing and the training phrasing should
# score alike: the model reads the digit word, not the whole caption. Classifier-free guidance needs
# no extra model and saturates at small scales, which is why text-to-image systems use it. CLIP
# guidance on x0_hat is the most fragile: early in sampling x0_hat is a blur CLIP never saw, and part
# of its gradient is an adversarial nudge rather than "more seven", which can show as grey speckle
# in the background; GLIDE's noise-aware CLIP is the fix.
#
# ## Summary
#
# - CLIP: a ViT (patches, class token, position embeddings) and a causal text Transformer (pooled at
#   `<eos>`), each projected into one space; a symmetric contrastive loss with a learned temperature
#   that multiplies the cosines (exp(logit_scale) starts at 14.3). Zero-shot classification is a
#   nearest-prompt lookup.
# - Text conditioning: cross-attention with image positions as queries and caption tokens as keys
#   and values, pads masked; caption dropout teaches the same network the unconditional prediction.
# - Guidance changes only eps: classifier-free extrapolates from eps("") towards eps(caption);
#   classifier and CLIP guidance subtract sqrt(1 - alpha_bar_t) times the gradient of a judge's score.
# - `python -m curriculum.benchmarks.text_conditioning` measures the on-target rate by guidance scale.

# %% [markdown]
# ## Further reading
#
# - [Radford et al. (2021), *Learning Transferable Visual Models From Natural Language Supervision*](https://arxiv.org/abs/2103.00020):
#   CLIP. Read section 2 for the contrastive objective (its numpy-like pseudocode is the loss you
#   wrote) and the text encoder's masked self-attention and end-of-text pooling.
# - [Dosovitskiy et al. (2020), *An Image is Worth 16x16 Words*](https://arxiv.org/abs/2010.11929):
#   the Vision Transformer: patch embeddings, the class token, position embeddings, and when ViTs
#   beat convolutional networks (with enough data).
# - [Rombach et al. (2021), *High-Resolution Image Synthesis with Latent Diffusion Models*](https://arxiv.org/abs/2112.10752):
#   Stable Diffusion's architecture; section 3.3 conditions the U-Net on text through cross-attention,
#   exactly the block you wrote.
# - [Saharia et al. (2022), *Photorealistic Text-to-Image Diffusion Models with Deep Language Understanding* (Imagen)](https://arxiv.org/abs/2205.11487):
#   a frozen language model as text encoder, pooled embedding plus cross-attention, and how large
#   guidance scales need dynamic thresholding of x0_hat.
# - [Ho & Salimans (2022), *Classifier-Free Diffusion Guidance*](https://arxiv.org/abs/2207.12598):
#   dropping the condition during training so one network gives both predictions, and the
#   fidelity/diversity trade-off of the scale.
# - [Dhariwal & Nichol (2021), *Diffusion Models Beat GANs on Image Synthesis*](https://arxiv.org/abs/2105.05233):
#   classifier guidance with a noise-aware classifier, derived in section 4.
# - [Nichol et al. (2021), *GLIDE*](https://arxiv.org/abs/2112.10741): text-conditional diffusion
#   comparing CLIP guidance (with a noise-aware CLIP) against classifier-free guidance.
