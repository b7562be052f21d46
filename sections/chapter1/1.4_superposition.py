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
# ![The toy model: five features x go through W into a two-dimensional hidden vector h, come back
# through the transpose of the same W, get a bias added and pass a ReLU to give the reconstruction x'.
# Shapes are written under each arrow.](figures/1.4_toy_model.svg)
#
# In this section you will
# 1. build the toy model, batched over many independent *instances* trained at once;
# 2. generate sparse data and train with an importance-weighted loss;
# 3. watch features get packed into superposition as sparsity grows (a phase change), and see the
#    geometry they take: antipodal pairs, pentagons, "sticky" fractions of a dimension per feature;
# 4. map the whole phase diagram of the smallest case, two features in one dimension, with a sweep
#    you write yourself;
# 5. see what the model does with features that fire together (correlated) or never together
#    (anticorrelated);
# 6. put a ReLU on the hidden layer, which gives the hidden units a *privileged basis* (neurons), and
#    watch neurons become polysemantic; then make the model *compute* (|x|) in superposition;
# 7. train a sparse autoencoder (from section 1.3) on the hidden activations and check that it
#    recovers the true feature directions, the idea behind using SAEs on real models; then build two
#    newer SAE variants, TopK and JumpReLU, and compare all three on sparsity and reconstruction.
#
# Sections 1 to 6 build the model and the two measurements everything else uses; after them, each
# later section stands on its own.
#
# The default sizes are the paper's; in quick mode everything runs on a CPU in seconds, with
# shorter training and rougher pictures.

# %% setup
import math
from dataclasses import dataclass
from collections.abc import Callable

import einops
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter1.sae import (
    SAE,
    SAEConfig,
    SAEOutput,
    fraction_variance_unexplained,
    l0_norm,
    rectangle,
    train_sae,
)
from curriculum.solutions.chapter1.superposition import (
    PHASE_NAMES,
    plot_feature_dimensionality,
    plot_features_in_2d,
    plot_norms_and_superposition,
)
from curriculum.checks.chapter1 import sae as sae_tests
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
# The weights are **tied**: the same W writes features into the hidden space and reads them out,
# exactly as in the paper's "ReLU output model", $x' = \mathrm{ReLU}(W^\top W x + b)$. Tying is what
# makes the geometry easy to read: $W^\top W$ is an n × n matrix whose diagonal $\|W_i\|^2$ says how
# well each feature is represented and whose off-diagonal $W_i \cdot W_j$ says how much feature j leaks
# into the read-out of feature i. An untied model (a separate read-out matrix) can learn the same
# solutions but needs two matrices to be read together; the paper keeps them tied and so do we.
#
# A worked example of why the ReLU matters. Put two features antipodally in one dimension,
# $W = (1, -1)$, and take $b = (0, 0)$. Input $x = (0.8, 0)$ gives $h = 0.8$ and
# $W^\top h = (0.8, -0.8)$: after the ReLU, $x' = (0.8, 0)$, a perfect reconstruction. The interference
# on feature 1 was negative, and the ReLU threw it away. Without the ReLU the model would output
# $-0.8$ for a feature that is off. Only when both features are on together does the trick fail
# ($x = (0.8, 0.5)$ gives $h = 0.3$ and $x' = (0.3, 0)$), which is rare when features are sparse.
# That asymmetry, cheap interference for sparse features, is the whole story of superposition.
#
# ### Exercise: the toy model's forward pass
#
# `hidden` (h = W x) is written for you, as a model of how `einops.einsum` keeps the `inst` axis
# separate: instance k's features only ever meet `W[k]`. Implement `forward`,
# x' = ReLU(Wᵀ h + b): read `self.hidden(features)` back out through the same W, add the bias, apply
# the ReLU. The check compares both methods with one plain matrix product per instance.

# %% exercise curriculum.solutions.chapter1.superposition:ToyConfig,per_instance,ToyModel difficulty=2 importance=5 minutes=15
tests.check_toy_model(ToyModel)

# %% hint
# Write out the shapes: features `(batch, inst, feats)`, `W` `(inst, hidden, feats)`, hidden
# `(batch, inst, hidden)`. `hidden` contracts the feats axis; `forward` contracts the hidden axis
# with the *same* `W`, giving back `(batch, inst, feats)`. The `inst` axis appears in every operand
# and in the output, so it is never summed over.

# %% hint
# In `einops.einsum` a name that appears in both inputs and in the output is a batch axis: write
# `inst` in all three, as `hidden` does; the read-out pattern is `"batch inst hidden, inst hidden feats -> batch inst feats"`. The bias goes inside the ReLU, `F.relu(out + self.b_final)`; the check tells
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
# dropped features. (In quick mode, 40 features in 4 dimensions trained briefly, the plateaus are
# rough; the default 200 features in 20 dimensions draws the paper's picture.)
#
# Where do these fractions come from? If k features share a d-dimensional subspace, no other feature
# leaks into it, and they are arranged symmetrically, each gets $D = d / k$:
#
# ![Four feature geometries with the dimensionality of each feature: a feature alone on its axis
# (D = 1), an antipodal pair in one dimension (D = 1/2), a triangle of three features in two
# dimensions (D = 2/3) and a pentagon of five features in two dimensions (D = 2/5).](figures/1.4_geometry.svg)
#
# - alone in its direction, 1 feature in 1 dimension: $D = 1$;
# - a tetrahedron, 4 features in 3 dimensions: $D = 3/4$;
# - a triangle, 3 features in 2 dimensions: $D = 2/3$ (not 1/3: three features *share* two dimensions);
# - an antipodal pair, 2 features in 1 dimension: $D = 1/2$;
# - a pentagon, 5 features in 2 dimensions: $D = 2/5$;
# - a square antiprism, 8 features in 3 dimensions: $D = 3/8$.
#
# You can check the triangle with the formula: three unit vectors 120° apart have
# $\sum_j (\hat W_i \cdot W_j)^2 = 1 + 2 \cos^2 120° = 3/2$, so $D_i = 1 / (3/2) = 2/3$. The cell after the
# plot counts how many features of your run sit within 0.03 of each fraction.
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

dims = feature_dimensionality(model.W.detach().cpu()).flatten()
for name, frac in [("alone", 1), ("tetrahedron", 3 / 4), ("triangle", 2 / 3), ("antipodal pair", 1 / 2),
                   ("pentagon", 2 / 5), ("square antiprism", 3 / 8)]:
    print(f"D near {frac:.3f} ({name:>16}): {int(((dims - frac).abs() < 0.03).sum()):4d} of {dims.numel()} features")

# %% [markdown]
# ## 9. The phase diagram: two features, one dimension
#
# Section 7 showed that sparsity pushes features into superposition. The paper makes this precise in the
# smallest possible setting: **two features, one hidden dimension**. With one dimension the model has
# exactly three sensible options, and which one wins depends on two numbers only, the relative
# importance $r$ of feature 1 (feature 0 has importance 1) and the feature probability $p$ (shared by
# both features):
#
# | phase | W (one row, two columns) | when it wins |
# |---|---|---|
# | 0: feature 1 dropped | $(1, 0)$ | feature 1 matters less and features are dense |
# | 1: feature 1 alone | $(0, 1)$ | feature 1 matters more and features are dense |
# | 2: both, antipodal | $(1, -1)$ | features are sparse: they are rarely on together |
#
# A back-of-the-envelope calculation tells you where the boundary should be. Dropping feature 1 costs
# its importance times its mean squared value on every sample where it is on: about $r \cdot p \cdot 1/3$
# per sample (for $x \sim U[0, 1]$, $E[x^2] = 1/3$; the bias can recover part of it by predicting the mean,
# so the true cost is a little smaller). Storing both antipodally costs nothing when at most one is on,
# and something on the fraction $p^2$ of samples where both are on. For small $p$ the cost $\propto p^2$ of
# superposition is far below the cost $\propto p$ of dropping a feature, so sparse features end up
# antipodal almost regardless of $r$; for $p$ near 1 the interference is paid on every sample and the
# model picks the more important feature. The boundary is sharp: that is why the paper calls it a
# *phase change*.
#
# You will map the diagram by training one instance per grid cell, all at once, exactly as section 7
# trained one instance per sparsity. Three pieces: build the grid, read each trained instance's phase off
# its weights, and put the loop together; then draw the picture.
#
# ### Exercise: the sweep's grid of instances
#
# Implement `phase_grid(importances, probabilities)`. Instance `i * n_prob + j` (row-major: the
# probability varies fastest) gets importance `(1, importances[i])` and feature probability
# `(probabilities[j], probabilities[j])`. Both returned tensors are `(n_imp * n_prob, 2)`, ready to pass
# to `ToyModel`. The check builds a 3 × 2 grid and compares every row.

# %% exercise curriculum.solutions.chapter1.superposition:phase_grid difficulty=1 importance=3 minutes=10
tests.check_phase_grid(phase_grid)

# %% hint
# Row-major means each importance repeats `n_prob` times in a row (0.1, 0.1, 1, 1, ...) while the
# probabilities cycle through the whole list `n_imp` times (1, 0.5, 1, 0.5, ...).

# %% hint
# `torch.repeat_interleave(importances, n_prob)` gives the first pattern and `probabilities.repeat(n_imp)`
# the second. Then `torch.stack([torch.ones_like(r), r], dim=-1)` and `torch.stack([p, p], dim=-1)`.

# %% [markdown]
# ### Exercise: reading the phase off the weights
#
# With one hidden dimension, `W[k]` is a 1 × 2 matrix: feature i is represented when $|W_{0i}|$ is
# large (the section uses $\|W_i\| > 0.5$; a trained feature has norm near 1, a dropped one near 0). Two
# represented features in one dimension can only be antipodal (same sign would make each the other's
# ghost on every sample), so the phase is decided by which norms pass the threshold. Implement
# `classify_phase(W)` returning 0, 1 or 2 per instance (the table above). Mind the sign: a feature at
# $-1$ is represented just as well as one at $+1$, and the check has one.

# %% exercise curriculum.solutions.chapter1.superposition:classify_phase difficulty=1 importance=3 minutes=10
tests.check_classify_phase(classify_phase)

# %% hint
# Compute `represented = W.norm(dim=1) > threshold`, a boolean `(inst, 2)`: norms, not raw values, so a
# negative weight counts. Everything else is a small truth table on its two columns.

# %% hint
# Feature 1 off → 0, whatever feature 0 does. Feature 1 on and feature 0 off → 1. Both on → 2. Nested
# `torch.where(~second, 0, torch.where(first, 2, 1))` writes that table in one line.

# %% [markdown]
# ### Exercise: the sweep
#
# Now the loop. `run_phase_sweep(importances, probabilities, steps, batch_size, lr, seed)` builds the grid,
# creates one `ToyModel` with an instance per cell (2 features, 1 hidden dimension), trains it with your
# `train_toy_model`, classifies the trained weights and returns the phases as an `(n_imp, n_prob)` grid
# (rows: importance), together with the model. Seed torch before you build the model, so that the
# initial weights, and hence the result, are the same every run.
#
# The check runs a 2 × 2 grid, (importance 0.1 or 10) × (probability 1 or 0.1), and reads the trained
# weights itself: dense and unimportant should drop feature 1, dense and important should keep it alone,
# sparse should keep both. Then it compares your grid with its own reading of your model.

# %% exercise curriculum.solutions.chapter1.superposition:run_phase_sweep difficulty=2 importance=4 minutes=15
tests.check_run_phase_sweep(run_phase_sweep)

# %% hint
# Everything is already written: `phase_grid` gives the importance and probability tensors, `ToyModel`
# takes them as they are (they are `(inst, feats)`), `train_toy_model` trains every instance at once,
# and `classify_phase` reads them. What is left is the order of the calls and one reshape.

# %% hint
# `ToyConfig(n_instances=len(importance), n_features=2, n_hidden=1)`; after training,
# `classify_phase(model.W.detach()).reshape(len(importances), len(probabilities))`. The reshape is
# right because `phase_grid` is row-major; a `(n_prob, n_imp)` reshape followed by `.T` scrambles it.

# %% [markdown]
# ### Exercise: drawing the phase diagram
#
# A heatmap is the natural picture: one cell per (importance, probability), coloured by phase. Implement
# `plot_phase_diagram(phases, importances, probabilities)` returning a plotly figure with one `go.Heatmap`
# whose `z` is the phase grid as it is (rows = importances = y), `x = 1 / probabilities` (so sparser is
# further right, as in the paper), `y = importances`, both axes logarithmic and titled. `PHASE_NAMES`
# (imported in the setup cell) holds the three phase names for the colour bar's tick labels.

# %% exercise curriculum.solutions.chapter1.superposition:plot_phase_diagram difficulty=2 importance=3 minutes=15
tests.check_plot_phase_diagram(plot_phase_diagram)

# %% hint
# `go.Figure(go.Heatmap(z=..., x=..., y=..., zmin=0, zmax=2))`; plotly wants plain lists or numpy,
# so call `.tolist()` on the tensors. A three-colour `colorscale` and
# `colorbar=dict(tickvals=[0, 1, 2], ticktext=list(PHASE_NAMES))` name the phases.

# %% hint
# `fig.update_xaxes(type="log", title="1 / feature probability")` and the same for y with the importance.
# The function ends with `if show: fig.show()` and `return fig`, already written after the fence.

# %%
n_grid = full_or_quick(12, 6)
importances = 10 ** torch.linspace(-1, 1, n_grid)
probabilities = 10 ** -torch.linspace(0, 2, n_grid)
torch.manual_seed(0)
phases, phase_model = run_phase_sweep(importances, probabilities, steps=full_or_quick(5000, 1000),
                                      batch_size=full_or_quick(1024, 256), lr=1e-2, seed=0)
print("phases (rows: importance of feature 1, low to high; columns: feature probability, dense to sparse):")
print(phases.numpy())
plot_phase_diagram(phases, importances, probabilities);

# %% [markdown]
# **What to look for.** The left column (dense) should split by importance: phase 0 (feature 1 dropped)
# in the rows below importance 1 and phase 1 (feature 1 alone) above it. Moving right, the antipodal
# phase 2 takes over, first near importance 1, where the two features are worth about the same and
# neither wants to give up its dimension, then across the whole range. Compare with the paper's own
# phase diagram for this case, which it also works out analytically next to the trained one.
#
# Each cell is a single training run from one random start, and gradient descent can stop in a local
# optimum: a stray cell of the wrong phase, especially in the sparsest columns where the features are
# so rarely on that the gradient is weak, is that, not a bug. The paper trains several runs per cell and
# keeps the one with the lowest loss; `run_phase_sweep` with two or three seeds and a per-instance loss
# would do the same. If the *whole* picture looks like noise, check that the rows really are
# importances: a transposed grid mixes the two axes.

# %% [markdown]
# ## 10. Correlated and anticorrelated features
#
# So far every feature was independent of every other. Real features are not: "this token is inside a
# Python string" and "this token is inside a Python file" tend to fire together, while "the text is
# French" and "the text is German" almost never do. The paper asks what the model does with such
# structure. The answer follows from the interference argument of section 1: superposition is cheap
# only because two features sharing a direction are rarely on *together*.
#
# - **Anticorrelated** features are never on together, so superposing them is free. Expect the model to
#   put them antipodally even when it would not for independent features of the same sparsity.
# - **Correlated** features are on together whenever either is on. Putting them antipodally would make
#   each cancel the other every time; the model prefers to keep them orthogonal if it has the room, and
#   if it does not, to collapse them onto one shared direction that represents (roughly) their sum, a
#   PCA-style compression rather than superposition. The paper describes correlated features settling
#   into *local orthogonal bases*.
#
# To test this you need data with that structure. Features come in pairs, (0, 1), (2, 3), ...; each
# feature still fires with its probability p and takes a uniform value in [0, 1]; only the *joint*
# behaviour of a pair changes.
#
# ### Exercise: correlated pairs
#
# Implement `generate_correlated_batch(batch_size, feature_probability)`: one on/off draw per pair (with
# the probability of the pair's first feature, `feature_probability[:, ::2]`), used for both members; the
# two values are independent draws. So $P(\text{both on}) = p$, against $p^2$ for independent features.
# The check measures each feature's frequency, the pair's co-occurrence, that the two values differ,
# and that *different* pairs are independent.

# %% exercise curriculum.solutions.chapter1.superposition:generate_correlated_batch difficulty=2 importance=3 minutes=10
tests.check_generate_correlated_batch(generate_correlated_batch)

# %% hint
# Draw a `(batch, inst, n_feats // 2)` mask of pair switches, then expand it to every feature so that
# features 2k and 2k + 1 both read switch k. Values come from a separate `(batch, inst, feats)` draw.

# %% hint
# `pair_on.repeat_interleave(2, dim=-1)` turns switches (a, b, c) into (a, a, b, b, c, c). `repeat` would
# give (a, b, c, a, b, c), pairing feature 0 with feature 3: the check's co-occurrence test names that.

# %% [markdown]
# ### Exercise: anticorrelated pairs
#
# Implement `generate_anticorrelated_batch`: at most one member of a pair is on. To keep each feature's
# own probability at p, switch the *pair* on with probability 2p, then let a fair coin pick which member
# fires. (So p must be at most 1/2; the function checks that before the fence.) Check the arithmetic:
# $P(\text{feature } 2k \text{ on}) = 2p \cdot 1/2 = p$, and $P(\text{both on}) = 0$.

# %% exercise curriculum.solutions.chapter1.superposition:generate_anticorrelated_batch difficulty=2 importance=3 minutes=15
tests.check_generate_anticorrelated_batch(generate_anticorrelated_batch)

# %% hint
# Three independent draws: the values `(batch, inst, feats)`, the pair switch `(batch, inst, pairs)` with
# threshold `2 * p`, and a coin `(batch, inst, pairs)` with threshold 0.5.

# %% hint
# Member 0 is on where `pair_on & coin`, member 1 where `pair_on & ~coin`. Interleave them back into
# feature order with `torch.stack([first, second], dim=-1).flatten(-2)`: stacking on the last axis then
# flattening gives (pair 0 member 0, pair 0 member 1, pair 1 member 0, ...).

# %% [markdown]
# ### Exercise: how are the pairs arranged?
#
# One number per pair summarises the geometry: the cosine between the pair's two directions,
# $\cos(W_{2k}, W_{2k+1})$. It is $-1$ for an antipodal pair, $0$ for an orthogonal one and $+1$ when both
# features share one direction. Implement `pair_cosines(W)`, one value per (instance, pair), with the
# same convention as `superposition`: a zero column has cosine 0 with everything, not NaN.

# %% exercise curriculum.solutions.chapter1.superposition:pair_cosines difficulty=1 importance=2 minutes=5
tests.check_pair_cosines(pair_cosines)

# %% hint
# Normalise every column over the hidden axis first (`dim=1` of `(inst, hidden, feats)`), clamping the
# norm away from zero. The even columns are `W_hat[:, :, 0::2]`, the odd ones `W_hat[:, :, 1::2]`.

# %% hint
# Multiply the two slices elementwise and sum over the hidden axis: `(a * b).sum(dim=1)`, shape
# `(inst, pairs)`.

# %% [markdown]
# Now the experiment. One pair of equally important features in **one** hidden dimension, with
# $p = 0.25$: sparse enough that independent features sometimes go antipodal, dense enough that it is a
# close call. We train four instances under each of the three kinds of data and print the pair's cosine
# and the two norms.

# %%
class CorrelatedToyModel(ToyModel):
    def generate_batch(self, batch_size):
        return generate_correlated_batch(batch_size, self.feature_probability)


class AnticorrelatedToyModel(ToyModel):
    def generate_batch(self, batch_size):
        return generate_anticorrelated_batch(batch_size, self.feature_probability)


pair_models = {}
for name, cls in [("independent", ToyModel), ("correlated", CorrelatedToyModel), ("anticorrelated", AnticorrelatedToyModel)]:
    torch.manual_seed(0)
    pair_models[name] = cls(ToyConfig(n_instances=4, n_features=2, n_hidden=1), 0.25, 1.0).to(device)
    train_toy_model(pair_models[name], steps=full_or_quick(5000, 1500), batch_size=512, lr=5e-3, seed=0)
    W = pair_models[name].W.detach().cpu()
    print(f"{name:>15}: cos per instance {pair_cosines(W)[:, 0].numpy().round(2)}, "
          f"norms {feature_norms(W).numpy().round(2).tolist()}")

# %% [markdown]
# **What to look for.** The anticorrelated pair should be antipodal (cosine $-1$) with both norms near 1
# in every instance: no sample ever has both features on, so the ReLU removes all the interference.
# Independent features at this sparsity are a close call; some instances go antipodal, others keep one
# feature and shrink the other. The correlated pair does something the other two never do: a cosine of
# $+1$, both features on the *same* side, with norms below 1. Since the two features are always on
# together, the model stores their sum along one direction and reads it back into both, which is the
# best a single dimension can do for two features that are on together, and exactly what PCA would give.
# If your correlated instances come out antipodal, look at `generate_correlated_batch` again: antipodal
# is what independent or anticorrelated data would produce.

# %% [markdown]
# ## 11. A privileged basis: neurons
#
# In the model so far, any rotation of the hidden space is as good as any other: replace W by RW for
# an orthogonal R and $W^\top W$ does not change, so neither does the output. Nothing singles out the
# hidden coordinates, and asking "what does hidden unit 3 represent" has no answer. Real networks are
# different where an elementwise nonlinearity acts: a ReLU applied coordinate by coordinate treats the
# coordinate axes specially (rotating before a ReLU changes the result). Such a basis is called
# **privileged**, and its coordinates are *neurons*. The residual stream of a transformer has no
# privileged basis; the MLP's hidden layer does.
#
# The paper's version is one line away from ours:
#
# $$h = \mathrm{ReLU}(W x), \qquad x' = \mathrm{ReLU}(W^\top h + b).$$
#
# Now we can ask per neuron how many features it reads. With dense features the paper finds each
# neuron dedicated to one feature (monosemantic) and the least important features dropped; as features
# get sparser, neurons start to read several features each (polysemantic): superposition now shows up
# in the neuron basis, which is what makes real neurons hard to interpret.
#
# ### Exercise: the neuron model
#
# Implement `NeuronModel`, a `ToyModel` whose `hidden` applies a ReLU after the projection. Overriding
# `hidden` is all it takes: `forward`, written in section 1, calls `self.hidden`, so the read-out is
# unchanged. The check compares `hidden` and `forward` with a per-instance matrix product on random
# weights.

# %% exercise curriculum.solutions.chapter1.superposition:NeuronModel difficulty=1 importance=3 minutes=5
tests.check_neuron_model(NeuronModel)

# %% hint
# Copy the einsum of `ToyModel.hidden` (or call `super().hidden(features)`) and wrap it in `F.relu`.

# %% hint
# Override only `hidden`. If you also rewrite `forward`, make sure it still reads out with the same `W`
# (tied) and puts the bias inside the output ReLU.

# %% [markdown]
# ### Exercise: how monosemantic is each neuron?
#
# Neuron n reads the features through row n of W. A monosemantic neuron has one large weight in that
# row and the rest near zero; a polysemantic one spreads its weight. Measure this with the share of the
# squared weight that goes to the neuron's top feature:
#
# $$\text{share}_n = \frac{\max_i W_{ni}^2}{\sum_i W_{ni}^2}.$$
#
# Worked example: a row $(3, -1, 0, 1)$ has squared weights $(9, 1, 0, 1)$, so its share is $9/11 \approx 0.82$.
# A row reading all four features equally gives $1/4$. Implement `neuron_top_feature_share(W)`, one
# value per (instance, neuron).

# %% exercise curriculum.solutions.chapter1.superposition:neuron_top_feature_share difficulty=1 importance=2 minutes=5
tests.check_neuron_top_feature_share(neuron_top_feature_share)

# %% hint
# Rows are neurons, so the reductions are over the *last* axis (features) of `(inst, hidden, feats)`.
# Square first: a weight of −2 is as strong a connection as +2.

# %% hint
# `sq = W.pow(2)`; `sq.max(dim=-1).values / sq.sum(dim=-1).clamp_min(1e-12)`. Using `abs()` instead of
# squares gives 3/5 for the worked example, and the check names that.

# %%
torch.manual_seed(0)
neuron_p = torch.tensor([1.0, 0.1, 0.03, 0.01])
neuron_model = NeuronModel(ToyConfig(n_instances=4, n_features=10, n_hidden=5), neuron_p[:, None],
                           0.75 ** torch.arange(10)).to(device)
train_toy_model(neuron_model, steps=full_or_quick(10_000, 2500), batch_size=512, lr=5e-3, seed=0)
shares = neuron_top_feature_share(neuron_model.W.detach().cpu())
for p, s in zip(neuron_p.tolist(), shares):
    print(f"p = {p:<5}: top-feature share per neuron {s.numpy().round(2)}, mean {s.mean():.2f}")
imshow(neuron_model.W.detach().cpu(), title="W per instance: rows are neurons, columns features (most important first)",
       facet_labels=[f"p = {p}" for p in neuron_p.tolist()], xlabel="feature", ylabel="neuron");

# %% [markdown]
# **What to look for.** In the dense instance (p = 1) each row of W should be dominated by one entry
# (shares well above 1/2) and the last five columns, the least important features, near zero: five
# neurons, five features, one each. The mean share falls overall from the dense to the sparsest
# instance (not necessarily at every step in a short run): rows with two, three, four sizeable weights
# appear, and columns of less important features fill in. That is polysemanticity
# arising from superposition, in a basis where it could have been avoided (the model could have kept
# five monosemantic neurons) but was not, because packing more features in lowers the loss. The dense
# instance needs more steps than the others to settle; at quick-mode length its rows may still mix two
# features.
#
# Note that in the neuron model W has entries of both signs in one row, yet a neuron can only report
# positive values: a feature read with a negative weight *suppresses* the neuron rather than driving it.

# %% [markdown]
# ## 12. Computation in superposition: |x|
#
# Everything so far was *storage*: the model only had to carry features through a bottleneck. Real
# networks compute. The paper's next question is whether a network can compute a nonlinear function of
# many sparse features with fewer neurons than features, which would mean computation, not just
# representation, happens in superposition.
#
# The task is the absolute value. Features are sparse and now *signed*, uniform in $[-1, 1]$ when on, and
# the target is $y = |x|$ elementwise. A single ReLU layer is exactly the right tool, and the classic
# construction shows why: two neurons per feature,
#
# $$|x| = \mathrm{ReLU}(x) + \mathrm{ReLU}(-x).$$
#
# So a model with $2n$ hidden neurons computes all n absolute values exactly. With fewer neurons than
# that it must share neurons between features, and it can only get away with it because features are
# rarely on together. The model is untied this time (reading in and reading out are different jobs):
#
# $$h = \mathrm{ReLU}(W_{in} x + b_{in}), \qquad y = \mathrm{ReLU}(W_{out} h + b_{out}).$$
#
# ### Exercise: signed sparse data
#
# Implement `generate_signed_batch`: like `generate_batch`, but a feature that is on takes a value
# uniform in $[-1, 1]$. Half the time it is negative, so the ReLU cannot be relied on to clean up
# negative interference for free, and a model that simply copied its input would be wrong half the time.
# The check measures frequencies, the mean (0) and the mean absolute value (1/2) of the non-zero values.

# %% exercise curriculum.solutions.chapter1.superposition:generate_signed_batch difficulty=1 importance=2 minutes=5
tests.check_generate_signed_batch(generate_signed_batch)

# %% hint
# The same two independent draws as `generate_batch`: one for the on/off mask, one for the values.

# %% hint
# `2 * torch.rand(shape, device=...) - 1` is uniform in [-1, 1]; `torch.where(present, values, 0.0)`.

# %% [markdown]
# ### Exercise: the |x| model
#
# Implement `AbsModel.forward`. `W_in` is `(inst, hidden, feats)` and `W_out` is `(inst, feats, hidden)`.
# The check sets the weights to the two-neurons-per-feature construction above and expects exactly $|x|$,
# then compares with a per-instance matrix product on random weights.

# %% exercise curriculum.solutions.chapter1.superposition:AbsModel difficulty=2 importance=4 minutes=10
tests.check_abs_model(AbsModel)

# %% hint
# The forward pass is two einsums like the ones in `ToyModel`, each followed by a bias and a ReLU,
# with the inst axis in every operand.

# %% hint
# `einops.einsum(features, self.W_in, "batch inst feats, inst hidden feats -> batch inst hidden")` for
# the first layer and `"batch inst hidden, inst feats hidden -> batch inst feats"` with `self.W_out` for
# the second. If the check says you output ReLU(x), the hidden ReLU is missing: without it the two
# neurons of a feature cancel.

# %% [markdown]
# ### Exercise: training it
#
# Write the training loop for `train_abs_model`. It is `train_toy_model` with one change, and that
# change is the whole point: the target is not the input any more. Each step: a fresh signed batch, the
# model's output, `importance_weighted_mse` against `batch.abs()`, one Adam step. The check trains two
# features with four neurons (enough for the exact construction) and measures the error against $|x|$ on
# fresh data: always predicting the mean of $|x|$ gives $\mathrm{Var}(|x|) = 1/12 \approx 0.083$, a working loop
# gets well below that.

# %% exercise curriculum.solutions.chapter1.superposition:train_abs_model difficulty=2 importance=3 minutes=10
tests.check_train_abs_model(train_abs_model)

# %% hint
# The structure is that of `train_toy_model`: sample, forward, loss, `zero_grad`, `backward`, `step`.
# Name the loss `loss`: the logging after the fence reads it.

# %% hint
# `loss = importance_weighted_mse(model(batch), batch.abs(), model.importance)`. Comparing with `batch`
# trains the model to copy its input, which the check recognises.

# %%
torch.manual_seed(0)
abs_p = torch.tensor([1.0, 0.1, 0.01])
abs_model = AbsModel(ToyConfig(n_instances=3, n_features=10, n_hidden=5), abs_p[:, None], 0.85 ** torch.arange(10)).to(device)
abs_losses = train_abs_model(abs_model, steps=full_or_quick(10_000, 3000), batch_size=512, lr=3e-3, seed=0)
W_in = abs_model.W_in.detach().cpu()
for p, s, n in zip(abs_p.tolist(), neuron_top_feature_share(W_in), (W_in.abs() > 0.3).sum(-1)):
    print(f"p = {p:<5}: top-feature share per neuron {s.numpy().round(2)}; features read (|w| > 0.3) {n.tolist()}")
imshow(W_in, title="W_in of the |x| model: rows are neurons, columns features", facet_labels=[f"p = {p}" for p in abs_p.tolist()],
       xlabel="feature", ylabel="neuron");

# %% [markdown]
# **What to look for.** Ten features, five neurons: the exact construction would need twenty. Dense
# (p = 1), the model cannot share, so it spends its neurons on the most important features: each row
# has a single large weight (share near 1, one feature read per neuron) in the first columns, and the
# remaining features are left to the output bias. As features get sparser, rows read several features,
# often with opposite signs (a neuron that fires for $x_a > 0$ and for $x_b < 0$), and more columns are
# used: several absolute values are computed by shared neurons, and the output layer sorts out which
# feature caused a firing because usually only one is on. That is computation in superposition. The
# paper's section on computation describes the weight patterns it finds for this task; it is worth
# reading with this heatmap next to it.

# %% [markdown]
# ## 13. A sparse autoencoder recovers the features
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

# %% [markdown]
# ## 14. Better sparsity: TopK and JumpReLU SAEs
#
# The SAE above buys sparsity with an L1 penalty on the latents. L1 is a convenient stand-in for what
# we actually want, the **L0** (how many latents fire), but it has a well-known side effect,
# *shrinkage*: the penalty pulls every active latent's value towards zero, so the reconstruction
# systematically undershoots and the encoder learns to fire weakly. Lower the coefficient and shrinkage
# shrinks, but so does sparsity. Two later designs replace the L1 with something closer to L0:
#
# ![Three SAE encoders side by side. The standard SAE applies a ReLU to the pre-activations and adds an
# L1 penalty; TopK keeps the k largest pre-activations of each input and zeros the rest; JumpReLU zeros
# every pre-activation below a learned per-latent threshold θ and passes the rest unchanged, and is
# trained with an L0 penalty.](figures/1.4_sae_variants.svg)
#
# - **TopK** (Gao et al., 2024): keep the k largest pre-activations of each input and zero the rest.
#   Sparsity is not a penalty here but a hard constraint, L0 ≤ k for every input, so the loss is just
#   the reconstruction error and there is nothing to shrink the kept values. The knob is k itself,
#   which is easier to choose than an L1 coefficient: you say how many latents you want.
# - **JumpReLU** (Rajamanoharan et al., 2024): each latent has a threshold θ; below it the latent is 0,
#   above it the latent passes its pre-activation *unchanged*: $\mathrm{JumpReLU}_\theta(z) = z \cdot H(z - \theta)$,
#   H the step function. Values are not shrunk (a latent that fires, fires at full size), and the
#   sparsity penalty is the L0 itself, $\sum_i H(z_i - \theta_i)$. The price: H has zero gradient almost
#   everywhere, so θ cannot learn by plain backpropagation, and the paper uses *straight-through
#   estimators*, explained below.
#
# (The same authors' Gated SAE, a third design, separates "does this latent fire" from "how strongly"
# with two encoder paths; JumpReLU is its simpler successor, so we build that one.)
#
# ### Exercise: the TopK encoder
#
# Implement `TopKSAE.encode`: the same pre-activations as the standard SAE,
# $(x - b_{dec}) W_{enc} + b_{enc}$, then keep the `cfg.k` largest per input, ReLU'd (a kept value may be
# negative when few latents are positive), zeros elsewhere. `forward` is written for you: it calls
# `encode`, decodes, and returns the reconstruction error as the loss. The check compares with an
# independent ranking (argsort) and makes sure gradients still flow to the encoder.

# %% exercise curriculum.solutions.chapter1.sae:TopKSAE difficulty=2 importance=4 minutes=15
sae_tests.check_topk_sae(TopKSAE)

# %% hint
# `pre.topk(k, dim=-1)` returns the k largest values of each row and their indices. You need a tensor
# of the full `(batch, d_sae)` shape that holds those values at those indices and zero everywhere else.

# %% hint
# `torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))`. `scatter` (not the in-place
# `scatter_` on a leaf) keeps the result connected to the graph, so `W_enc` still gets gradients through
# the kept values.

# %% [markdown]
# ### JumpReLU and its straight-through gradients
#
# The forward passes are easy: $\mathrm{JumpReLU}_\theta(z) = z \cdot H(z - \theta)$ and $H(z - \theta)$.
# The gradients are the interesting part. For z the answer is exact: $\partial\, \mathrm{JumpReLU} / \partial z = H(z - \theta)$
# (the step does not depend on z except at the jump), and the step gets no gradient in z at all. For θ
# the true derivative is zero except at $z = \theta$, where it is infinite: a Dirac delta. The paper
# replaces the delta by a narrow rectangle of width ε (the *bandwidth*) centred on θ, $\frac{1}{\varepsilon} K\big(\frac{z - \theta}{\varepsilon}\big)$
# with $K(u) = 1$ for $|u| < 1/2$, which gives these *pseudo-derivatives*:
#
# $$\frac{\partial}{\partial \theta} \mathrm{JumpReLU}_\theta(z) := -\frac{\theta}{\varepsilon} K\Big(\frac{z - \theta}{\varepsilon}\Big), \qquad
# \frac{\partial}{\partial \theta} H(z - \theta) := -\frac{1}{\varepsilon} K\Big(\frac{z - \theta}{\varepsilon}\Big).$$
#
# Where do the signs and the θ come from? Raising θ past a pre-activation z switches the latent off, so
# the step drops by 1 (sign minus) and the JumpReLU drops from $z \approx \theta$ to 0 (a drop of size θ).
# Only pre-activations within ε/2 of the threshold feel anything: those are the inputs for which a small
# move of θ would change whether the latent fires. Worked example with θ = 0.5, ε = 0.1, upstream
# gradient 1: a pre-activation of 0.52 is inside the window, so it contributes $-0.5 / 0.1 = -5$ to θ's
# JumpReLU gradient and $-1 / 0.1 = -10$ to its step gradient; a pre-activation of 0.7 is outside and
# contributes nothing.
#
# Both are `torch.autograd.Function`s whose `forward` is written (and saves `pre`, `threshold` and the
# bandwidth); you write the `backward`s. `backward` gets the upstream gradient `grad_out` (shaped like
# `pre`, `(batch, d_sae)`) and returns one gradient per input of `forward`: for `pre`, for `threshold`
# (shape `(d_sae,)`, so sum over the batch) and `None` for the bandwidth. `rectangle(u)` (imported in
# the setup cell) is K. The checks compare values and gradients with the formulas on a small example
# in which some pre-activations sit inside the window and some outside, and with an upstream gradient
# that differs per entry, so a forgotten chain-rule factor shows.
#
# ### Exercise: JumpReLU's backward pass

# %% exercise curriculum.solutions.chapter1.sae:JumpReLUFunction difficulty=3 importance=4 minutes=15
sae_tests.check_jumprelu_function(JumpReLUFunction)

# %% hint
# Two gradients. For `pre`: the output is z where the latent fires and a constant 0 elsewhere, so the
# upstream gradient passes where z > θ and is blocked elsewhere. For `threshold`: the pseudo-derivative
# above, times `grad_out` (chain rule), then reduced to θ's shape.

# %% hint
# `grad_pre = grad_out * (pre > threshold)`; the window is `rectangle((pre - threshold) / eps)`;
# `grad_threshold = (-(threshold / eps) * window * grad_out).sum(0)`. The threshold `(d_sae,)` broadcasts
# against `(batch, d_sae)`.

# %% [markdown]
# ### Exercise: the step function's backward pass
#
# The same recipe for $H(z - \theta)$, which is what makes the L0 trainable: the L0 of an input is
# $\sum_i H(z_i - \theta_i)$, so its gradient reaches θ only through this pseudo-derivative.

# %% exercise curriculum.solutions.chapter1.sae:StepFunction difficulty=2 importance=4 minutes=10
sae_tests.check_step_function(StepFunction)

# %% hint
# The step is flat in z on both sides of the jump: the gradient for `pre` is zero everywhere (return a
# zero tensor of `pre`'s shape, not `None`, so callers can add it to others).

# %% hint
# `(-(1.0 / eps) * rectangle((pre - threshold) / eps) * grad_out).sum(0)` for the threshold and
# `torch.zeros_like(pre)` for `pre`. Copying JumpReLU's factor θ here is a common slip; the check names it.

# %% [markdown]
# ### Exercise: the JumpReLU SAE
#
# Now assemble the SAE. `JumpReLUSAE` stores `log_threshold` (one per latent, written in `__init__`), so
# $\theta = \exp(\text{log\_threshold})$ stays positive however the optimiser moves it; `pre_acts(x)` and
# `encode` (JumpReLU of the pre-activations) are written. Implement `forward`, whose loss is
#
# $$\mathcal{L} = \underbrace{\tfrac{1}{d_{in}}\|x - \hat x\|^2}_{\text{recon\_loss}} + \lambda_0 \underbrace{\textstyle\sum_i H(z_i - \theta_i)}_{L_0},$$
#
# both averaged over the batch, with $\lambda_0$ = `cfg.l0_coeff`. Return the L0 in the `l1_loss` slot of
# `SAEOutput` (the slot holds each variant's sparsity term; the names are shared with section 1.3).
# Compute the L0 through `StepFunction`: it is the only path by which the sparsity penalty reaches θ,
# and the check looks for that gradient.

# %% exercise curriculum.solutions.chapter1.sae:JumpReLUSAE difficulty=3 importance=4 minutes=20
sae_tests.check_jumprelu_sae(JumpReLUSAE)

# %% hint
# Compute `pre = self.pre_acts(x)` and `threshold = self.log_threshold.exp()` once and feed both to
# `JumpReLUFunction.apply(pre, threshold, self.cfg.bandwidth)` for the latents and to
# `StepFunction.apply(...)` for the L0.

# %% hint
# `l0 = StepFunction.apply(pre, threshold, bw).sum(-1).mean()`; `recon_loss` exactly as in `SAE.forward`;
# `SAEOutput(recon_loss + self.cfg.l0_coeff * l0, recon_loss, l0, x_hat, acts)`. Counting with
# `(acts > 0).sum()` gives the right number but no gradient, so θ would never move.

# %% [markdown]
# ### Exercise: comparing the variants
#
# The fair way to compare SAEs is on data none of them trained on, with the two numbers that trade off
# against each other: **L0** (latents firing per input; lower is sparser, easier to interpret) and the
# **fraction of variance unexplained** (FVU; lower is a more faithful reconstruction). A third, the
# fraction of **dead** latents (firing on no held-out input), says how much of the dictionary is wasted.
# Implement `compare_saes(variants, train_data, eval_x)`: for each named SAE, train it with
# `train_sae(sae, train_data, progress=False)` (each uses its own config), then, without gradients, run
# it on `eval_x` and record `{"l0": ..., "fvu": ..., "frac_dead": ...}` under its name, using `l0_norm`
# and `fraction_variance_unexplained` from section 1.3. The check trains two small SAEs through your
# function and recomputes all three numbers on the held-out data from the SAEs you return.

# %% exercise curriculum.solutions.chapter1.sae:compare_saes difficulty=2 importance=4 minutes=15
sae_tests.check_compare_saes(compare_saes)

# %% hint
# A loop over `variants.items()`. Train first; then `with torch.no_grad(): out = sae(eval_x)` gives
# `out.acts` and `out.x_hat` for the metrics.

# %% hint
# `fraction_variance_unexplained(eval_x, out.x_hat)`: the data first, the reconstruction second (the
# denominator is the data's own variance). Dead: `(out.acts > 0).any(0)` is True for each latent that
# fired on some input; the fraction of False is what you want.

# %% [markdown]
# Now train the three variants on the pentagon's activations from section 13 and compare them on a fresh
# held-out batch. The sparsity knobs are set so that all three aim at the same regime: the data has on
# average $5 \times 0.02 = 0.1$ features on per input, so TopK keeps k = 1 (rarely are two on at once) and
# the JumpReLU threshold starts low enough for every latent to fire.

# %%
torch.manual_seed(0)
base = {"d_in": cfg.n_hidden, "d_sae": 10, "lr": 3e-3, "n_steps": full_or_quick(5000, 1000), "batch_size": BATCH}
variants = {
    "L1 (ReLU)": SAE(SAEConfig(**base, l1_coeff=0.1)),
    "TopK, k = 1": TopKSAE(SAEConfig(**base, k=1)),
    "JumpReLU": JumpReLUSAE(SAEConfig(**base, l0_coeff=3e-3, threshold_init=0.05)),
}
variants = {name: v.to(device) for name, v in variants.items()}
eval_x = toy_activations(8192)
results = compare_saes(variants, toy_activations, eval_x)
print(f"{'variant':>12} | {'L0':>6} | {'FVU':>6} | {'dead':>5} | best cosine per true feature")
for name, r in results.items():
    cos = feature_recovery(W_toy, variants[name].W_dec.detach().cpu()).numpy().round(2)
    print(f"{name:>12} | {r['l0']:6.3f} | {r['fvu']:6.3f} | {r['frac_dead']:5.2f} | {cos}")
fig = go.Figure([go.Scatter(x=[r["l0"]], y=[r["fvu"]], mode="markers+text", text=[name], textposition="top center",
                            marker={"size": 12}, name=name) for name, r in results.items()])
fig.update_layout(xaxis_title="L0 (latents firing per input)", yaxis_title="fraction of variance unexplained",
                  template="simple_white", width=650, height=400, title="SAE variants on the toy model: lower-left is better")
fig.show()

# %% [markdown]
# **Reading the table.** Most inputs here are all-zero (no feature on), which keeps every L0 small. The
# L1 SAE should reach a low L0 but pay in FVU: its active latents are shrunk, so even a perfectly
# aligned latent undershoots. TopK with k = 1 has L0 exactly 1 on *every* input, including the empty ones
# (it always keeps one latent, and a small positive pre-activation survives), yet the lowest FVU,
# because nothing shrinks what it keeps. JumpReLU should sit between them or beat both: it can output
# exactly zero on empty inputs (L0 well below 1) and full-size values on the rest. Compare the FVU columns
# at similar L0: that is the comparison the TopK and JumpReLU papers make, as a whole curve (a Pareto
# frontier) traced by sweeping k or $\lambda_0$. The last column checks that all three still find the
# five true directions; on a real model, where nothing tells us the directions, L0 and FVU are what is
# left to compare.
#
# In quick mode the runs are short and the numbers move between runs on different hardware; the order
# of the FVU column is the robust part. Two things to try: sweep k ∈ {1, 2, 3} and $\lambda_0$ over a
# decade each and plot the curves; and measure shrinkage directly, as the mean of
# $\langle \hat x, x \rangle / \|x\|^2$ over non-zero inputs (1 means no shrinkage).
#
# **Going further**
# - Untie the weights of the toy model (a separate read-out matrix) and compare the geometry.
# - Lower the SAE's `l1_coeff` until latents start mixing features, and watch `feature_recovery` fall.
# - Build the Gated SAE (Rajamanoharan et al., 2024): a gate path decides which latents fire and gets the
#   L1 penalty, a magnitude path sharing its encoder directions decides how strongly.

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
#   (Cunningham et al., 2023): the SAE of section 13 applied to a language model's activations, where no
#   ground truth exists and features are judged by how interpretable they are.
# - [Towards Monosemanticity: Decomposing Language Models With Dictionary Learning](https://transformer-circuits.pub/2023/monosemantic-features/index.html)
#   (Bricken et al., 2023): dictionary learning on a real transformer, to see what becomes of
#   superposition once the true features are unknown.
# - [Improving Dictionary Learning with Gated Sparse Autoencoders](https://arxiv.org/abs/2404.16014)
#   (Rajamanoharan et al., 2024): where shrinkage is measured and the L1 penalty moved onto a separate gate
#   path; read it for the diagnosis that motivates both variants of section 14.
# - [Scaling and evaluating sparse autoencoders](https://arxiv.org/abs/2406.04093) (Gao et al., 2024):
#   TopK SAEs trained up to millions of latents, with scaling laws and new ways to evaluate features;
#   read it for how k is chosen and how dead latents are kept alive at scale.
# - [Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse Autoencoders](https://arxiv.org/abs/2407.14435)
#   (Rajamanoharan et al., 2024): the JumpReLU SAE and its straight-through estimators; read its derivation
#   of the pseudo-derivatives and its L0-versus-fidelity comparison with Gated and TopK SAEs.
