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
# The default sizes are the paper's; in quick mode everything runs on a CPU in seconds, with
# shorter training and rougher pictures.

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
# ### Exercise: the toy model's forward pass
#
# Implement `hidden` (h = W x) and `forward` (x' = ReLU(Wᵀ h + b)) with `einops.einsum`,
# keeping the `inst` axis separate: instance k's features only ever meet `W[k]`.

# %% exercise curriculum.solutions.chapter1.superposition:ToyConfig,per_instance,ToyModel difficulty=2 importance=5 minutes=15
tests.check_toy_model(ToyModel)

# %% hint
# Write out the shapes: features `(batch, inst, feats)`, `W` `(inst, hidden, feats)`, hidden
# `(batch, inst, hidden)`. `hidden` contracts the feats axis; `forward` contracts the hidden axis
# with the *same* `W`, giving back `(batch, inst, feats)`. The `inst` axis appears in every operand
# and in the output, so it is never summed over.

# %% hint
# In `einops.einsum` a name that appears in both inputs and in the output is a batch axis: write
# `inst` in all three. The bias goes inside the ReLU, `F.relu(out + self.b_final)`; the check tells
# apart a missing ReLU and a bias added after it.

# %% [markdown]
# ## 2. Sparse data
#
# Each feature $x_i$ is zero with probability $1 - p_i$ and otherwise uniform in $[0, 1]$, independently
# of all other features, samples and instances. With $p = 1$ every feature is on in every sample
# (dense); with $p = 0.01$ a feature is on in one sample in a hundred.
#
# ### Exercise: sparse feature batches
#
# Implement `generate_batch`. `feature_probability` has shape `(n_instances, n_features)`,
# so comparing a `(batch, inst, feats)` tensor of uniform draws with it broadcasts for you.

# %% exercise curriculum.solutions.chapter1.superposition:generate_batch difficulty=2 importance=4 minutes=10
tests.check_generate_batch(generate_batch)

# %% hint
# Each entry needs two independent random numbers: one decides whether the feature is on (on when it
# is below `p`), the other is its value if it is.

# %% hint
# Two `torch.rand` calls of shape `(batch_size, *feature_probability.shape)` on the probability's
# device; `torch.where(present, values, 0.0)`. Reusing one draw for both (e.g. keeping `u` where
# `u < p`) makes the kept values uniform in `[0, p]` instead of `[0, 1]`, and the check's
# distribution test catches it.

# %% [markdown]
# ## 3. The importance-weighted loss
#
# $$L = \sum_{\text{instances}} \; \frac{1}{B\,n} \sum_{b=1}^{B} \sum_{i=1}^{n} I_i \,\big(x_i^{(b)} - x_i'^{(b)}\big)^2$$
#
# Importance $I_i$ is how the paper makes some features matter more than others, so that with too few
# dimensions the model has a reason to prefer some features over others. We **sum** over instances
# rather than average: then each instance's gradient is exactly what it would be if it were trained alone.
#
# ### Exercise: the importance-weighted loss
#
# Implement the formula above: `out` and `batch` are `(batch, inst, feats)`, `importance` is
# `(inst, feats)`, and the result is a scalar tensor you can call `.backward()` on.

# %% exercise curriculum.solutions.chapter1.superposition:importance_weighted_mse difficulty=2 importance=4 minutes=10
tests.check_importance_weighted_mse(importance_weighted_mse)

# %% hint
# Weight each squared error, not each error: `I * (x - x')²`. Then two reductions of different kinds:
# a mean over the batch and feats axes, a sum over instances.

# %% hint
# `importance` broadcasts against `(batch, inst, feats)` as it is. `einops.reduce(error, "batch inst feats -> inst", "mean")`
# leaves one number per instance; `.sum()` them. The check's hand-computed example recognises a missing
# weight, a squared weight, and a mean or sum in the wrong place, and says which.

# %% [markdown]
# ## 4. Training
#
# A plain Adam loop on fresh batches: the data is free, so the model never sees the same batch twice.
# The check trains four instances on dense data with importances (1, 0.7, 0.1, 0.05) and two hidden
# dimensions. With dense features there is no room for superposition: the optimum keeps the two
# important features in orthogonal directions and replaces the other two by their mean, 0.5, through the bias.
#
# ### Exercise: the training step
#
# Fill in one step of the loop; the optimiser, the logging and the returned list of losses are written
# for you.

# %% exercise curriculum.solutions.chapter1.superposition:train_toy_model difficulty=1 importance=3 minutes=10
tests.check_train_toy_model(train_toy_model)

# %% hint
# A fresh batch every step, from `model.generate_batch(batch_size)`; the model's output on it; the loss
# you just wrote, with `model.importance`; then the usual three optimiser calls.

# %% hint
# `optimizer.zero_grad()`, `loss.backward()`, `optimizer.step()`. Name the loss `loss`: the logging
# after the fence reads it. If the check says the loss did not fall five-fold, one of the three calls
# is missing or in the wrong order.

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
# (In quick mode the training is short, and the dense instance may still be splitting its second direction
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
# ### Exercise: superposition per feature
#
# Implement `superposition(W)`, one value per (instance, feature). Take $\hat W_i = 0$ when $W_i = 0$
# (clamp the norm before dividing) so dropped features give 0, not NaN. `feature_norms` comes with it,
# already written: the norm of each column.

# %% exercise curriculum.solutions.chapter1.superposition:feature_norms,superposition difficulty=3 importance=4 minutes=20
tests.check_superposition(superposition)

# %% hint
# Features are the *columns* of each `W[k]`, so norms are taken over the hidden axis (`dim=1` of
# `(inst, hidden, feats)`). Compute every dot product $\hat W_i \cdot W_j$ at once as an
# `(inst, feats, feats)` matrix, square it, and sum each row without its diagonal term.

# %% hint
# `W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)`; then
# `einops.einsum(W_hat, W, "inst hidden i, inst hidden j -> inst i j")`. After squaring, subtract the
# diagonal (`.diagonal(dim1=-2, dim2=-1)`) from the row sums. Normalising both factors gives cosines
# instead of projections, which the check rejects.

# %% [markdown]
# ### Exercise: feature dimensionality
#
# Implement `feature_dimensionality(W)`: $D_i = \|W_i\|^2 / \sum_j (\hat W_i \cdot W_j)^2$, the sum
# including $j = i$, and 0 for a dropped feature.

# %% exercise curriculum.solutions.chapter1.superposition:feature_dimensionality difficulty=2 importance=4 minutes=10
tests.check_feature_dimensionality(feature_dimensionality)

# %% hint
# The denominator is the same matrix of squared projections as in `superposition`, this time with the
# diagonal kept: for a feature alone in its direction it equals $\|W_i\|^2$ and $D_i = 1$.

# %% hint
# Divide `W.norm(dim=1) ** 2` by the row sums of the squared projections, clamped away from zero with
# `clamp_min`: a dropped feature then gives 0 / small = 0 rather than NaN. The check's hand-made
# examples: an antipodal pair of unequal lengths 2 and 1 (D = 4/5 and 1/5), a feature alone (1), a
# dropped one (0) and a pentagon (2/5 each).

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
# fall below 1/3. (In quick mode, 40 features in 4 dimensions trained briefly, the plateaus at 1/2 and 1/3
# show; the default 200 features in 20 dimensions draws the paper's picture.)
#
# **How long this takes.** At full size (20 instances of 200 features, 10,000 steps) the next cell is
# still running after 5 minutes on a 2-core laptop CPU (well over 10 in all, an estimate); a GPU makes it a minute
# or two (an estimate). Quick mode runs it in seconds.

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
# ### Exercise: how well are the features recovered?
#
# `feature_recovery(W, W_dec)`: for each true feature, the best (signed) cosine similarity
# with any decoder row.

# %% exercise curriculum.solutions.chapter1.superposition:feature_recovery difficulty=2 importance=4 minutes=10
tests.check_feature_recovery(feature_recovery)

# %% hint
# Normalise both sets of directions to unit length, take every (latent, feature) dot product, and keep
# the largest over latents for each feature. The true directions are the *columns* of `W`
# `(hidden, feats)`; the decoder directions are the *rows* of `W_dec` `(d_sae, hidden)`.

# %% hint
# `F.normalize(W_dec, dim=-1)` and `F.normalize(W, dim=0)`; an einsum
# `"d_sae hidden, hidden feats -> d_sae feats"`; `.max(dim=0).values`. Keep the sign: a latent pointing
# the opposite way reconstructs `-W_i`, and the check has one such latent to catch `abs()`.

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

# %% [markdown]
# ## Further reading
#
# - [Toy Models of Superposition](https://arxiv.org/abs/2209.10652) (Elhage et al., 2022; also on
#   [transformer-circuits.pub](https://transformer-circuits.pub/2022/toy_model/index.html)): the paper this
#   section reproduces; read it for the phase diagrams, the geometry of feature dimensionality, and the
#   sections on computation in superposition that go beyond this section.
# - [Superposition, Memorization, and Double Descent](https://transformer-circuits.pub/2023/toy-double-descent/index.html)
#   (Henighan et al., 2023): the same toy model trained on a finite dataset, where it stores data points
#   rather than features in superposition and shows double descent.
# - [Sparse Autoencoders Find Highly Interpretable Features in Language Models](https://arxiv.org/abs/2309.08600)
#   (Cunningham et al., 2023): the SAE of section 9 applied to a language model's activations, where no
#   ground truth exists and features are judged by how interpretable they are.
# - [Towards Monosemanticity: Decomposing Language Models With Dictionary Learning](https://transformer-circuits.pub/2023/monosemantic-features/index.html)
#   (Bricken et al., 2023): dictionary learning on a real transformer, to see what becomes of
#   superposition once the true features are unknown.
