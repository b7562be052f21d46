# %% [markdown]
# # 1.4 Toy models of superposition
#
# A neural network often has to represent more *features* (properties of its input that it cares
# about) than it has dimensions. Anthropic's [Toy Models of Superposition](https://transformer-circuits.pub/2022/toy_model/index.html)
# (Elhage et al., 2022) shows this happening in the smallest model where it can: n features squeezed
# through m < n hidden dimensions and read back out,
#
# $$h = W x, \qquad x' = \mathrm{ReLU}(W^\top h + b), \qquad W \in \mathbb{R}^{m \times n}.$$
#
# The column $W_i$ is the direction feature $i$ gets in the hidden space. If every feature got its own
# orthogonal direction, only m of them would fit. The paper's finding: when features are **sparse**
# (rarely non-zero), the model packs many more than m features into the m dimensions, at the cost of a
# little interference, which the ReLU and a negative bias filter out. That is *superposition*, and it is
# why single neurons of real models are so often polysemantic.
#
# In this section you will
# 1. build the toy model, batched over many independent *instances* trained at once;
# 2. generate sparse data and train with an importance-weighted loss;
# 3. watch features get packed into superposition as sparsity grows (a phase change), and see the
#    geometry they take: antipodal pairs, pentagons, "sticky" fractions of a dimension per feature;
# 4. train a sparse autoencoder (from section 1.3) on the hidden activations and check that it
#    recovers the true feature directions, the idea behind using SAEs on real models.
#
# Everything runs on a CPU in seconds at the sizes used in CI; the defaults are the paper's sizes.

# %% setup
from dataclasses import dataclass

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter1.sae import SAE, SAEConfig, train_sae
from curriculum.solutions.chapter1.superposition import (
    plot_feature_dimensionality,
    plot_features_in_2d,
    plot_norms_and_superposition,
)
from curriculum.checks.chapter1 import superposition as tests
from curriculum.utils import full_or_quick, get_device
from curriculum.utils.plotting import imshow, line

device = get_device()

# %%
# Most tensors here hold under a million numbers: on a CPU, PyTorch's thread pool costs more than it saves.
if device.type == "cpu":
    torch.set_num_threads(1)

# %% [markdown]
# ## 1. The toy model
#
# One `ToyModel` holds `n_instances` independent models side by side. Instance `k` has its own
# weights `W[k]` (shape `(n_hidden, n_features)`), its own bias, and its own **feature probability**
# (the chance each feature is non-zero; the paper's *sparsity* is $S = 1 - p$) and **importance**
# (how much each feature's error counts in the loss). Training all instances in one batched pass is
# much faster than training them one by one, and it lets us lay instances side by side in a plot,
# e.g. one instance per sparsity.
#
# The weights are **tied**: the same W writes features into the hidden space and reads them out.
# That is a simplification of the paper's model that makes the geometry easy to see: $W^\top W$ is
# an n × n matrix whose diagonal says how well each feature is represented and whose off-diagonal
# says how much features interfere.
#
# **Exercise.** Implement `hidden` (h = W x) and `forward` (x' = ReLU(Wᵀ h + b)) with `einops.einsum`,
# keeping the `inst` axis separate: instance k's features only ever meet `W[k]`.

# %% exercise curriculum.solutions.chapter1.superposition:ToyConfig,per_instance,ToyModel
tests.check_toy_model(ToyModel)

# %% [markdown]
# ## 2. Sparse data
#
# Each feature $x_i$ is zero with probability $1 - p_i$ and otherwise uniform in $[0, 1]$, independently
# of all other features, samples and instances. With $p = 1$ every feature is on in every sample
# (dense); with $p = 0.01$ a feature is on in one sample in a hundred.
#
# **Exercise.** Implement `generate_batch`. `feature_probability` has shape `(n_instances, n_features)`,
# so comparing a `(batch, inst, feats)` tensor of uniform draws with it broadcasts for you.

# %% exercise curriculum.solutions.chapter1.superposition:generate_batch
tests.check_generate_batch(generate_batch)

# %% [markdown]
# ## 3. The importance-weighted loss
#
# $$L = \sum_{\text{instances}} \; \frac{1}{B\,n} \sum_{b=1}^{B} \sum_{i=1}^{n} I_i \,\big(x_i^{(b)} - x_i'^{(b)}\big)^2$$
#
# Importance $I_i$ is how the paper makes some features matter more than others, so that with too few
# dimensions the model has a reason to prefer some features over others. We **sum** over instances
# rather than average: then each instance's gradient is exactly what it would be if it were trained alone.

# %% exercise curriculum.solutions.chapter1.superposition:importance_weighted_mse
tests.check_importance_weighted_mse(importance_weighted_mse)

# %% [markdown]
# ## 4. Training
#
# A plain Adam loop on fresh batches: the data is free, so the model never sees the same batch twice.
# The check trains four instances on dense data with importances (1, 0.7, 0.1, 0.05) and two hidden
# dimensions. With dense features there is no room for superposition: the optimum keeps the two
# important features in orthogonal directions and replaces the other two by their mean, 0.5, through the bias.

# %% exercise curriculum.solutions.chapter1.superposition:train_toy_model
tests.check_train_toy_model(train_toy_model)

# %% [markdown]
# ## 5. Five features in two dimensions
#
# Now the paper's first picture. Five features, two hidden dimensions, importance $0.9^i$ (feature 0
# matters most), and eight instances whose feature probability falls from 1 (dense) to 1/50 (very sparse).
# Watch what each instance does with its two dimensions.

# %%
N_STEPS = full_or_quick(10_000, 1500)
BATCH = full_or_quick(1024, 512)

torch.manual_seed(0)
cfg = ToyConfig(n_instances=8, n_features=5, n_hidden=2)
importance = 0.9 ** torch.arange(cfg.n_features)
feature_probability = 50 ** -torch.linspace(0, 1, cfg.n_instances)
model = ToyModel(cfg, feature_probability[:, None], importance).to(device)
losses = train_toy_model(model, steps=N_STEPS, batch_size=BATCH, lr=5e-3, seed=0)
line(torch.tensor(losses) / cfg.n_instances, title="loss per instance", xlabel="step / 100", log_y=True)

titles = [f"p = {p:.3f}" for p in feature_probability]
plot_features_in_2d(model.W, colour_by=importance, titles=titles);

# %% [markdown]
# Reading the picture (colour = importance, yellow = most important):
# - **dense** (p = 1): two features get the two orthogonal directions, the rest are dropped (length 0).
#   This is what PCA would do: there is no room for more without interference on every sample.
# - as p falls, features squeeze in as **antipodal pairs** (W_j = -W_i): two pairs at right angles hold
#   four features in two dimensions. When the two features of a pair are rarely on together, the ReLU
#   with a negative bias cleans up their (negative) interference.
# - **very sparse** (p ≲ 0.06): all five features sit on a **regular pentagon**. Five features in two dimensions!
#
# (At CI size the training is short, and the dense instance may still be splitting its second direction
# between two features; the default 10,000 steps settle it.)
#
# $W^\top W$ shows the same thing as a matrix: the diagonal is $\|W_i\|^2$, the off-diagonal the
# interference $W_i \cdot W_j$. Dense instances are diagonal with zeros for dropped features; the
# pentagon has the cos 72° / cos 144° pattern off the diagonal.

# %%
WtW = einops.einsum(model.W, model.W, "inst hidden i, inst hidden j -> inst i j")
imshow(WtW, title="WᵀW per instance", facet_labels=titles, xlabel="feature j", ylabel="feature i");

# %% [markdown]
# ## 6. Measuring superposition
#
# Two numbers per feature make the pictures quantitative (for any number of hidden dimensions):
#
# - **superposition** $\sum_{j \ne i} (\hat W_i \cdot W_j)^2$ with $\hat W_i = W_i / \|W_i\|$: how much the
#   other features project onto feature i's direction. 0 means feature i has a dimension to itself.
# - **feature dimensionality** $D_i = \dfrac{\|W_i\|^2}{\sum_j (\hat W_i \cdot W_j)^2}$ (the sum includes
#   $j = i$): the fraction of a dimension feature i gets. 1 for a feature alone in its direction,
#   1/2 for each of an antipodal pair, 2/5 on the pentagon, 0 for a dropped feature.
#
# **Exercise.** Implement both. Take $\hat W_i = 0$ when $W_i = 0$ (clamp the norm before dividing) so
# dropped features give 0, not NaN.

# %% exercise curriculum.solutions.chapter1.superposition:feature_norms,superposition
tests.check_superposition(superposition)

# %% exercise curriculum.solutions.chapter1.superposition:feature_dimensionality
tests.check_feature_dimensionality(feature_dimensionality)

# %%
print("feature dimensionality D_i, one row per instance (dense first):")
print(feature_dimensionality(model.W.detach().cpu()).numpy().round(2))
plot_norms_and_superposition(model.W, titles=titles);

# %% [markdown]
# ## 7. The phase change
#
# The paper's second experiment: 20 features, 5 hidden dimensions, importance $0.7^i$, sparsity
# $S \in \{0, 0.7, 0.9, 0.97, 0.99, 0.997, 0.999\}$. Dense, the model keeps the 5 most important features
# and drops the rest (dark bars). As features get sparser, more and more features are represented, in
# superposition (yellow). The change is not gradual per feature: a feature is either dropped or packed in.

# %%
N_STEPS = full_or_quick(10_000, 1500)
torch.manual_seed(0)
sparsity = torch.tensor([0.0, 0.7, 0.9, 0.97, 0.99, 0.997, 0.999])
cfg = ToyConfig(n_instances=len(sparsity), n_features=20, n_hidden=5)
importance = 0.7 ** torch.arange(cfg.n_features)
model = ToyModel(cfg, (1 - sparsity)[:, None], importance).to(device)
train_toy_model(model, steps=N_STEPS, batch_size=BATCH, lr=5e-3, seed=0)
plot_norms_and_superposition(model.W, titles=[f"S = {s:.3g}" for s in sparsity]);

# %%
W = model.W.detach().cpu()
represented = feature_norms(W) > 0.5
in_superposition = represented & (superposition(W) > 0.1)
fig = line(
    {"features represented (‖W_i‖ > 0.5)": represented.sum(-1), "of which in superposition": in_superposition.sum(-1)},
    x=1 / (1 - sparsity),
    title=f"{cfg.n_features} features, {cfg.n_hidden} dimensions: how many fit",
    xlabel="1 / feature probability = 1 / (1 - S)",
    show=False,
)
fig.update_xaxes(type="log").show()

# %% [markdown]
# ## 8. Feature dimensionality: sticky fractions
#
# The last experiment of the paper's geometry section: many features of equal importance, many
# sparsities, and for each feature its dimensionality $D_i$. The black line is
# $m / \|W\|_F^2$, the number of hidden dimensions per represented feature (it falls as more features
# are packed in). The dots, one per feature, do not follow the line smoothly: they cluster on tidy
# fractions such as **1, 1/2, 2/5, 1/3**, the fractions of a dimension a feature gets alone in its
# direction, in an antipodal pair, on a pentagon, or in a triangle. The model prefers these geometric
# configurations and stays on one over a range of sparsities before jumping to the next. Dots at 0 are
# dropped features; in the sparsest instances many features share higher-dimensional arrangements and
# fall below 1/3. (At CI size, 40 features in 4 dimensions trained briefly, the plateaus at 1/2 and 1/3
# show; the default 200 features in 20 dimensions draws the paper's picture.)

# %%
N_STEPS = full_or_quick(10_000, 1500)
torch.manual_seed(0)
n_inst = full_or_quick(20, 10)
cfg = ToyConfig(n_instances=n_inst, n_features=full_or_quick(200, 40), n_hidden=full_or_quick(20, 4))
feature_probability = 30 ** -torch.linspace(0, 1, n_inst)  # from dense to 1 in 30
model = ToyModel(cfg, feature_probability[:, None], 1.0).to(device)
train_toy_model(model, steps=N_STEPS, batch_size=full_or_quick(1024, 256), lr=full_or_quick(1e-3, 5e-3), seed=0)
plot_feature_dimensionality(model.W, feature_probability);

# %% [markdown]
# ## 9. A sparse autoencoder recovers the features
#
# In a real model we do not know $W$: we only see hidden activations $h$, each a superposition of a
# few active features. A **sparse autoencoder** (section 1.3) is trained to reconstruct $h$ from
# a few non-negative latents, $h \approx \sum_k a_k d_k + b$, with an L1 penalty keeping most $a_k$ at zero.
# If the data really is a sparse sum of feature directions, the cheapest sparse explanation is the true
# one, so the decoder rows $d_k$ should line up with the columns $W_i$. The toy model is the perfect test
# bed: here we *know* the answer.
#
# We take the pentagon (the sparsest instance of section 5's model), feed fresh sparse batches through
# `hidden`, and train an SAE with 10 latents on the 2-D activations.
#
# **Exercise.** `feature_recovery(W, W_dec)`: for each true feature, the best (signed) cosine similarity
# with any decoder row.

# %% exercise curriculum.solutions.chapter1.superposition:feature_recovery
tests.check_feature_recovery(feature_recovery)

# %%
torch.manual_seed(0)
cfg = ToyConfig(n_instances=1, n_features=5, n_hidden=2)
toy = ToyModel(cfg, 1 / 50, 0.9 ** torch.arange(cfg.n_features)).to(device)
train_toy_model(toy, steps=full_or_quick(10_000, 1500), batch_size=BATCH, lr=5e-3, seed=0)


@torch.no_grad()
def toy_activations(batch_size: int) -> torch.Tensor:
    """Fresh sparse features through the toy model's W: the only thing an SAE gets to see."""
    return toy.hidden(toy.generate_batch(batch_size))[:, 0]


sae_cfg = SAEConfig(d_in=cfg.n_hidden, d_sae=10, l1_coeff=0.1, lr=3e-3, n_steps=full_or_quick(5000, 1000), batch_size=BATCH)
sae = SAE(sae_cfg).to(device)
history = train_sae(sae, toy_activations)
line({"L0 (latents firing per input)": history["l0"], "fraction of variance unexplained": history["fvu"]},
     smooth=50, title="SAE training on the toy model's hidden activations");

# %%
W_toy = toy.W[0].detach().cpu()
print("best cosine per true feature:", feature_recovery(W_toy, sae.W_dec.detach().cpu()).numpy().round(3))
plot_features_in_2d(toy.W, titles=["true features (colour) and SAE decoder rows (dotted)"],
                    overlay=sae.W_dec[None], overlay_name="SAE decoder rows")
tests.check_sae_recovers_features(W_toy, sae.W_dec)

# %% [markdown]
# Every one of the five pentagon directions has an SAE latent within a few degrees of it: from
# activations alone, the SAE undid the superposition. Extra latents either die or duplicate a feature.
# On a real model (section 1.3) nothing tells us the true features, so we have to judge latents by what
# they fire on; the toy model is where we can check that the method works at all.
#
# **Going further**
# - Untie the weights (a separate read-out matrix) and compare the geometry.
# - The paper's phase diagram: 2 features into 1 dimension, vary the second feature's importance and
#   both features' sparsity on a grid of instances, and colour each cell by whether feature 2 is dropped,
#   given its own dimension, or stored antipodally.
# - Lower the SAE's `l1_coeff` until latents start mixing features, and watch `feature_recovery` fall.
