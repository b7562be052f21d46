# %% [markdown]
# # 4.3 CLIP and guidance
#
# A diffusion model trained as in 4.2 samples *some* digit. To ask for a particular one, or for an
# image that matches a caption, we **guide** the sampler. This section builds the two ingredients:
#
# 1. **CLIP** (Radford et al. 2021): an image encoder and a text encoder trained so that matching
#    (image, caption) pairs have similar embeddings. It classifies images "zero-shot" from text
#    prompts, and its similarity score can steer a diffusion model towards a caption.
# 2. **Guidance**: three ways to bend the noise prediction towards a condition:
#    classifier guidance (a classifier trained on noisy images), classifier-free guidance (one model
#    trained with and without labels) and CLIP guidance.
#
# Offline, CLIP is trained from scratch on the digits with captions such as "a handwritten seven";
# online, the same zero-shot recipe also runs on OpenAI's pretrained CLIP through `transformers`.
# The references are `curriculum/solutions/chapter4/clip.py` and `curriculum/solutions/chapter4/guidance.py`.

# %% setup
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from curriculum.solutions.chapter4.clip import (
    CLIP,
    CLIPConfig,
    CLIPTrainConfig,
    pretrained_zero_shot,
    tokenizer_for,
    train_clip,
)
from curriculum.solutions.chapter4.ddpm import TrainConfig, UNet, UNetConfig, ddim_sample, train_unet
from curriculum.solutions.chapter4.guidance import NoisyClassifier, judge_features, train_classifier
from curriculum.solutions.chapter4.toy_diffusion import Schedule, _broadcast, linear_betas
from curriculum.checks.chapter4 import clip_guidance as tests
from curriculum.utils import QUICK, full_or_quick, get_device
from curriculum.utils.image_data import load_image_dataset
from curriculum.utils.offline import describe, use_real_resources
from curriculum.utils.plotting import image_grid, imshow, line

# %%
torch.manual_seed(0)
loaded = load_image_dataset(online_name="mnist", offline_size=full_or_quick(16, 8), online_limit=20_000)
describe(loaded)
train, test = loaded.value.split(n_test=full_or_quick(500, 300))
c, h, _ = train.image_shape
n_classes = len(train.class_names)
print("captions:", train.captions(train.labels[:6], seed=0))

# %% [markdown]
# ## CLIP: two encoders, one space
#
# Both encoders end in a projection to the same `d_embed`-dimensional space (given: a small CNN for
# images, a small Transformer for the word-level captions). Training sees a batch of N matching
# pairs and forms the N x N matrix of cosine similarities, scaled by a **learned** temperature.
# Row i should pick column i (image -> text), and column j should pick row j (text -> image): two
# cross-entropies, averaged. Every other caption in the batch is a negative for free.
#
# The temperature is learned as logit_scale = log(1 / temperature), starting at 1/0.07, and CLIP
# clamps exp(logit_scale) at 100 to keep training stable.
#
# ### Exercise: CLIP's contrastive loss
#
# The check compares with a direct computation for three batch sizes and temperatures (one beyond
# the clamp), names the bug if you computed only one direction, and checks that a gradient reaches
# `logit_scale`.

# %% exercise curriculum.solutions.chapter4.clip:clip_loss difficulty=2 importance=5 minutes=15
tests.check_clip_loss(clip_loss)

# %% hint
# Cosine similarity is a dot product of unit vectors: normalise each row of both embedding matrices
# first. Then one matrix product gives all N x N similarities at once, and the "right answer" for
# row i is column i, so the targets are simply 0, 1, ..., N-1.

# %% hint
# `F.normalize(emb, dim=-1)`; `logits = logit_scale.exp().clamp(max=100) * image_emb @ text_emb.T`;
# the loss is the average of `F.cross_entropy(logits, targets)` and the same on `logits.T`. Calling
# `.item()` on the scale would cut the temperature out of the graph, and the check would notice.

# %% [markdown]
# Zero-shot classification: embed one prompt per class ("a handwritten zero", ..., "a handwritten
# nine"), embed the image, and pick the prompt with the highest cosine similarity. No classifier
# head, no labels beyond the captions.
#
# ### Exercise: zero-shot classification
#
# The check's embeddings have very different lengths, so ranking by raw dot products picks the wrong
# class for some images.

# %% exercise curriculum.solutions.chapter4.clip:zero_shot_classify difficulty=1 importance=4 minutes=5
tests.check_zero_shot_classify(zero_shot_classify)

# %% hint
# Same similarity matrix as in the loss, without the temperature (it does not change which entry is
# largest): images as rows, class prompts as columns.

# %% hint
# Normalise both, multiply `image_emb @ class_text_emb.T`, then `argmax(dim=-1)` over the classes.

# %% [markdown]
# **How long the next cells take.** At full size, training CLIP (3,000 steps) is still running after
# 5 minutes on a 2-core laptop CPU, and the class-conditional U-Net further down (20,000 steps) needs
# hours there; on a Colab GPU both take minutes (an estimate). Quick mode runs everything in a few
# minutes on a CPU, with weak models.

# %%
tok = tokenizer_for(train)
clip_cfg = CLIPConfig(image_shape=train.image_shape, vocab_size=len(tok.vocab), max_len=tok.max_len,
                      image_channels=full_or_quick(32, 16), d_text=full_or_quick(64, 32), n_text_layers=full_or_quick(2, 1))
clip = CLIP(clip_cfg)
clip_losses = train_clip(clip, train, tok, CLIPTrainConfig(n_steps=full_or_quick(3000, 100), batch_size=full_or_quick(256, 128), lr=3e-3))
line(clip_losses, smooth=20, title="CLIP contrastive loss", ylabel="loss")

# %%
prompts = [train.prompt(k) for k in range(n_classes)]
with torch.no_grad():
    img_emb, txt_emb = clip.encode_image(test.images), clip.encode_text(tok(prompts))
    pred = zero_shot_classify(img_emb, txt_emb)
print(f"zero-shot accuracy on {len(test.labels)} held-out images: {(pred == test.labels).float().mean():.3f} (chance 0.1)")
print(f"learned temperature: {1 / clip.logit_scale.exp().item():.4f}")
order = test.labels.argsort()[:: max(1, len(test.labels) // 40)]
imshow(img_emb[order] @ txt_emb.T, x=prompts, title="cosine similarity: test images (rows, sorted by label) x prompts", zmid=None)

# %% [markdown]
# The similarity matrix should show a staircase: each block of images lights up its own prompt.
#
# Online, the same recipe with OpenAI's CLIP (ViT-B/32, trained on 400M web image-text pairs), which
# never saw our prompts or our images during training:

# %%
if use_real_resources():
    print(f"pretrained CLIP zero-shot accuracy on {test.name}: {pretrained_zero_shot(test, n_images=200):.3f}")
else:
    print("offline: skipping the pretrained CLIP (it needs a download from the Hugging Face Hub)")

# %% [markdown]
# ## Models to guide
#
# We need a diffusion model and, for classifier guidance, a classifier that reads *noisy* images.
#
# The U-Net is 4.2's, made class-conditional: a learned class embedding is added to the time
# embedding. During training each label is replaced by an extra "no label" class (index 10) with
# probability 0.1, so the same network also learns the unconditional eps(x_t, t). That is all
# classifier-free guidance needs.
#
# The noisy classifier is the U-Net's encoder half with a linear head, trained with cross-entropy on
# x_t = add_noise(x_0, eps, t) at random t. (A classifier trained on clean images is useless for
# guidance: at high noise its gradients point nowhere in particular.)

# %%
T = full_or_quick(1000, 200)
sched = Schedule(linear_betas(T, 1e-4 * 1000 / T, 0.02 * 1000 / T))
ucfg = (
    UNetConfig(image_size=h, in_channels=c, base_channels=16, channel_mults=(1, 2), attn_resolutions=(4,), n_heads=2, dropout=0.0, num_classes=n_classes)
    if QUICK
    else UNetConfig(image_size=h, in_channels=c, num_classes=n_classes)
)
device = get_device()
unet_cfg = TrainConfig(n_steps=full_or_quick(20_000, 60), batch_size=full_or_quick(128, 32), p_uncond=0.1, device=str(device))
ema, _ = train_unet(UNet(ucfg), train.images, sched, unet_cfg, labels=train.labels)
net = ema.model
noisy_clf = NoisyClassifier(c, n_classes, base=full_or_quick(32, 16))
train_classifier(noisy_clf, train.images, train.labels, sched.alpha_bars, n_steps=full_or_quick(5000, 100))
# Sampling runs on the device: move the guiding models there too.
noisy_clf, clip = noisy_clf.to(device), clip.to(device).eval()
null = torch.tensor(n_classes, device=device)
uncond = lambda x, t: net(x, t, null.expand(len(x)))  # noqa: E731

# %% [markdown]
# ## Classifier guidance
#
# Bayes: p(x_t | y) is proportional to p(x_t) p(y | x_t), so the conditional score is the
# unconditional score plus grad log p(y | x_t). The model's eps is a scaled score,
# eps = -sqrt(1 - alpha_bar_t) grad log p(x_t), so guidance subtracts sqrt(1 - alpha_bar_t) times the
# classifier's gradient from eps. A scale s > 1 sharpens p(y | x_t) to p(y | x_t)^s: more
# recognisable, less diverse samples (Dhariwal & Nichol 2021).
#
# The sampler runs under `torch.no_grad()`; compute the gradient with `torch.enable_grad()` and
# `torch.autograd.grad` on a detached copy of x_t.
#
# ### Exercise: classifier guidance

# %% exercise curriculum.solutions.chapter4.guidance:classifier_guided_eps difficulty=3 importance=4 minutes=20
tests.check_classifier_guided_eps(classifier_guided_eps)

# %% hint
# Two separate computations: the diffusion model's eps (no gradient needed), and the gradient of
# log p(y | x_t, t) with respect to x_t. For the second, make a leaf copy of x_t that requires grad,
# inside `torch.enable_grad()`, since the sampler has switched gradients off.

# %% hint
# `x = x_t.detach().requires_grad_(True)`; `log_probs = classifier(x, t).log_softmax(-1)`; pick each
# example's own label with `log_probs[torch.arange(len(y)), y]`, `.sum()` it, and
# `(grad,) = torch.autograd.grad(total, x)`. Then `eps - scale * sqrt(1 - alpha_bar_t) * grad` with
# alpha_bar broadcast per example. Using the raw logit instead of the log-softmax, or calling
# `.backward()` (which also fills the classifier's `.grad`), are the two bugs the check names.

# %%
per_class = full_or_quick(8, 2)
targets = torch.arange(n_classes, device=device).repeat_interleave(per_class)
steps = full_or_quick(50, 20)
shape = (len(targets), c, h, h)


def show_per_class(images, title):
    titles = [train.class_names[int(y)] if i % per_class == 0 else "" for i, y in enumerate(targets)]
    image_grid(images, nrow=per_class * 2, titles=titles, value_range=(-1, 1), title=title)


clf_samples = ddim_sample(
    lambda x, t: classifier_guided_eps(uncond, noisy_clf, x, t, targets, 4.0, sched.alpha_bars),
    shape, sched.alpha_bars, steps, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device,
)
show_per_class(clf_samples, "classifier guidance, scale 4")

# %% [markdown]
# Each run of images under a label should show that digit, mostly recognisable. Try scales 0
# (unguided), 1 and 8: at 1 the samples are only nudged (about 70% land on their class, see the
# table below); larger scales trade diversity for fidelity.

# %% [markdown]
# ## Classifier-free guidance
#
# Ho & Salimans (2021): no classifier at all. The implicit classifier's gradient is the difference
# between the conditional and unconditional noise predictions, so
#
#     eps_guided = eps(x_t, t, null) + s * (eps(x_t, t, y) - eps(x_t, t, null)).
#
# s = 1 is the conditional model; s > 1 extrapolates past it. It is what Stable Diffusion and most
# text-to-image models use. Run the two predictions as one forward pass on a doubled batch.
#
# ### Exercise: classifier-free guidance

# %% exercise curriculum.solutions.chapter4.guidance:cfg_eps difficulty=2 importance=5 minutes=10
tests.check_cfg_eps(cfg_eps)

# %% hint
# Stack the batch on itself: the first half gets the real labels, the second half the null label.
# One call of the model, then split the output back into its two halves.

# %% hint
# `torch.cat([x_t, x_t])`, `torch.cat([t, t])`, `torch.cat([y, torch.full_like(y, null_label)])`;
# `eps_cond, eps_uncond = out.chunk(2)`; return `eps_uncond + scale * (eps_cond - eps_uncond)`.
# Swapping the halves turns guidance into anti-guidance, which the check exposes at scales 0 and 3.5.

# %%
cfg_samples = ddim_sample(lambda x, t: cfg_eps(net, x, t, targets, 2.0, n_classes), shape, sched.alpha_bars, steps,
                          generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device)
show_per_class(cfg_samples, "classifier-free guidance, scale 2")

# %% [markdown]
# ## CLIP guidance
#
# Our CLIP only ever saw clean images, so we score the model's current guess of the clean image,
# x0_hat, against the caption, and differentiate through the U-Net back to x_t. The rest is
# classifier guidance with CLIP similarity in place of log p(y | x_t).
#
# ### Exercise: CLIP guidance

# %% exercise curriculum.solutions.chapter4.guidance:clip_guided_eps difficulty=3 importance=4 minutes=20
tests.check_clip_guided_eps(clip_guided_eps)

# %% hint
# Unlike classifier guidance, the model's eps must be computed *with* gradients this time: x0_hat
# depends on x_t both directly and through eps, and the gradient should flow through both paths.

# %% hint
# Inside `torch.enable_grad()`: a leaf `x` from `x_t.detach()`, `eps = eps_model(x, t)`,
# `x0_hat = (x - sqrt(1 - a) * eps) / sqrt(a)`, the summed `F.cosine_similarity` of
# `clip.encode_image(x0_hat)` with `text_emb`, then `torch.autograd.grad` w.r.t. `x`. Return
# `eps.detach() - scale * sqrt(1 - a) * grad`: without the detach the sampler would build a graph
# across all its steps, and the check says so.

# %%
captions = [train.prompt(int(y)) for y in targets]
with torch.no_grad():
    text_targets = clip.encode_text(tok(captions).to(device))
clip_samples = ddim_sample(
    lambda x, t: clip_guided_eps(uncond, clip, text_targets, x, t, 100.0, sched.alpha_bars),
    shape, sched.alpha_bars, steps, generator=torch.Generator().manual_seed(0), clip_x0=1.0, device=device,
)
show_per_class(clip_samples, "CLIP guidance towards 'a handwritten <digit>'")

# %% [markdown]
# ## Did it work? Ask a judge
#
# A classifier trained on clean real images (never used for guidance) says which digit each sample
# shows. In quick mode the models are barely trained and the numbers the next cell prints mean
# little. The table is what `python -m curriculum.benchmarks.diffusion_sampling --quick` gives on a
# 2-core CPU (8x8 digits, a U-Net trained for 2000 steps, DDIM-50, 200 samples; unguided samples
# land on each class about 10% of the time):
#
# | guidance | scale | on target | FD to real |
# |---|---|---|---|
# | none (the U-Net's null label) | - | - | 1.38 |
# | classifier-free | 1 / 2 / 4 | 0.955 / 1.00 / 1.00 | 0.32 / 0.16 / 0.18 |
# | classifier (1500-step noisy classifier) | 1 / 2 / 4 | 0.70 / 0.875 / 0.965 | 0.92 / 0.60 / 0.32 |
# | CLIP (on x0_hat) | 10 / 30 / 100 | 0.81 / 0.94 / 0.965 | 0.72 / 0.37 / 0.16 |
#
# All three reach 90% on target. Classifier-free guidance gets there at the smallest scale with the
# cleanest samples, which is why text-to-image models use it. Notice the FD column: guided samples sit
# *closer* to the real data than unguided ones. The unconditional model saw the null label on only
# 10% of its training batches, and guidance pulls its half-formed digits towards a definite class.
#
# Look closely at the CLIP-guided grid: grey speckle in the backgrounds. Our CLIP only ever saw
# clean digits, and early in sampling x0_hat is a blur it has never seen, so part of its gradient
# is an adversarial perturbation rather than "more seven". GLIDE (Nichol et al. 2021) trained a
# *noise-aware* CLIP on x_t instead. Try it: train the image encoder on `add_noise(images, noise, t)`
# with the timestep as an extra input, and guide on x_t directly, as classifier guidance does.
#
# These numbers depend on the detail from 4.2: `ddim_step` recomputes eps after clamping x0_hat.
# Drop that line and rerun the benchmark: classifier guidance peaks near 55% on target and CLIP
# guidance stays at chance, because the guidance term that pushed x0_hat out of [-1, 1] survives,
# unclamped, in the eps term.

# %%
judge = NoisyClassifier(c, n_classes, base=full_or_quick(32, 16))
train_classifier(judge, train.images, train.labels, None, n_steps=full_or_quick(2000, 100))
_, judged = judge_features(judge, test.images)
print(f"judge accuracy on real test images: {(judged == test.labels).float().mean():.3f}")
for name, samples in [("classifier", clf_samples), ("classifier-free", cfg_samples), ("CLIP", clip_samples)]:
    _, judged = judge_features(judge, samples.cpu())
    print(f"{name:>16} guidance: {(judged == targets.cpu()).float().mean():.2f} of samples judged as their target class")

# %% [markdown]
# ## Summary
#
# - CLIP: symmetric contrastive loss with a learned temperature; zero-shot classification is a
#   nearest-prompt lookup in the shared space.
# - Guidance adds a scaled gradient of log p(condition | x_t) to the score, i.e. subtracts
#   sqrt(1 - alpha_bar_t) times it from eps: from a noisy classifier, from the difference of
#   conditional and unconditional predictions (classifier-free), or from CLIP similarity.
# - `python -m curriculum.benchmarks.diffusion_sampling` measures guided-sample accuracy and sampler speed/quality.

# %% [markdown]
# ## Further reading
#
# - [Radford et al. (2021), *Learning Transferable Visual Models From Natural Language Supervision*](https://arxiv.org/abs/2103.00020):
#   CLIP; its pseudocode for the symmetric loss is the one you wrote.
# - [Dhariwal & Nichol (2021), *Diffusion Models Beat GANs on Image Synthesis*](https://arxiv.org/abs/2105.05233):
#   classifier guidance with a noise-aware classifier, and the scale's fidelity/diversity trade-off.
# - [Ho & Salimans (2022), *Classifier-Free Diffusion Guidance*](https://arxiv.org/abs/2207.12598):
#   dropping the label during training so one network gives both predictions.
# - [Nichol et al. (2021), *GLIDE*](https://arxiv.org/abs/2112.10741): text-conditional diffusion,
#   comparing CLIP guidance (with a noise-aware CLIP) against classifier-free guidance.
