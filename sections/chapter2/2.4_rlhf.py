# %% [markdown]
# # 2.4 RLHF: PPO on a language model
#
# Reinforcement learning from human feedback (Christiano et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022)
# fine-tunes a pretrained language model to maximise a reward, usually a *reward model* trained on human
# preferences, while a KL penalty keeps it close to the model it started from. The RL algorithm is the PPO you
# wrote in section 2.3, with a change of vocabulary:
#
# | RL | language model |
# |---|---|
# | state | the prompt plus the tokens generated so far |
# | action | the next token (the policy is the LM's softmax) |
# | episode | one completion of `gen_len` tokens |
# | reward | the reward model's score of the completion, on its last token, minus a KL penalty on every token |
# | critic | a *value head* reading the transformer's residual stream |
#
# You will
# 1. attach a value head to a TransformerLens `TransformerBridge` with a hook;
# 2. sample completions with section 1.1's `sample_next_token`;
# 3. compute the log-probs of generated tokens, per-token rewards with a KL penalty to a frozen reference,
#    and per-token advantages (with section 2.3's GAE);
# 4. write the PPO loss on generated tokens, then train against a programmatic reward (count of a target
#    token) and watch the reward rise while the KL stays bounded;
# 5. switch the KL penalty off and watch the policy **hack the reward**;
# 6. train a small reward model (a linear probe on a frozen LM) and optimise the LM against it.
#
# **Online or offline.** Online the LM is GPT-2 small. Offline (no internet, or `CURRICULUM_OFFLINE=1`) it is
# the project's own small LM (2 layers, d_model 128) trained on CPython's documentation and shipped in
# `data/rlhf/base`: its text is not pretty, but every effect below shows up in it within a minute on a CPU.

# %% setup
from typing import Any

import einops
import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from curriculum import utils
from curriculum.solutions.chapter1.gpt2 import SamplingConfig, sample_next_token
from curriculum.solutions.chapter2.ppo import compute_advantages, kl_and_clipfrac, policy_loss, value_loss
from curriculum.solutions.chapter2.rlhf import (
    VALUE_HOOK,
    RewardFn,
    RewardModel,
    RLHFArgs,
    RLHFBatch,
    RLHFResult,
    learned_reward,
    lexicon_sentiment,
    load_base_model,
    sentiment_dataset,
    target_token_reward,
    token_advantages,
    train_reward_model,
)
from curriculum.checks.chapter2 import rlhf as tests
from curriculum.utils import full_or_quick
from curriculum.utils.logging import wandb_run
from curriculum.utils.rl import require_finite
from curriculum.utils.offline import describe, load_text_corpus
from curriculum.utils.plotting import line

device = utils.get_device()
torch.manual_seed(0)

# %% [markdown]
# ## The base model, through TransformerLens
#
# `TransformerBridge` wraps a Hugging Face model so that every activation has a TransformerLens hook name
# (`blocks.0.hook_resid_post`, `ln_final.hook_normalized`, ...). We use two copies: the **policy**, which we
# train, and a frozen **reference**, the model we started from, which the KL penalty compares against.

# %%
loaded = load_base_model(device)
describe(loaded)
base = loaded.value
ref_model = load_base_model(device).value
for p in ref_model.parameters():
    p.requires_grad_(False)
tokenizer = base.tokenizer
print([name for name in base.hook_dict if name.startswith("ln_final")])

# %% [markdown]
# ## A value head on the residual stream
#
# The critic needs V(prefix) for every prefix of a completion. Rather than a second network, read the policy's
# own final residual stream (`ln_final.hook_normalized`, what the unembedding reads) and put a small MLP on it.
# A forward hook stores the activation during the normal forward pass, so one pass gives both the logits and
# the values. The value head's gradients also flow into the transformer, as in most RLHF implementations.
#
# ### Exercise: the value head
#
# Write `forward`; the value head itself is built in `__init__`. The check compares your logits with the
# underlying Hugging Face model's, your values with the value head applied to a cached copy of the same
# activation, and checks that gradients reach the value head.

# %% exercise curriculum.solutions.chapter2.rlhf:TransformerWithValueHead difficulty=3 importance=4 minutes=15
tests.check_transformer_with_value_head(TransformerWithValueHead)

# %% hint
# Run the base model once with a hook at `VALUE_HOOK`. The hook's only job is to remember the activation it
# sees (put it in a dict or list defined in `forward`); after the run, apply `self.value_head` to what it
# stored. Return the logits from that same run and one value per position.

# %% hint
# A TransformerLens hook is a function `hook_fn(activation, hook)`; returning nothing leaves the activation
# unchanged. `self.base.run_with_hooks(tokens, fwd_hooks=[(VALUE_HOOK, hook_fn)])` returns the logits. The
# stored activation has shape (batch, seq, d_model); the value head maps it to (batch, seq, 1), so
# `.squeeze(-1)`. Don't use `run_with_cache` or `torch.no_grad()` here: the values need gradients.

# %% hint
# ```python
# stored = {}
#
# def store_resid(resid, hook):
#     stored["resid"] = ...
#
# logits = self.base.run_with_hooks(tokens, fwd_hooks=[...])
# values = ...
# return logits, values
# ```

# %% [markdown]
# ## Sampling
#
# The policy acts by sampling. Use your `sample_next_token` from section 1.1 (temperature, top-k, top-p): run
# the model on the tokens so far, take the last position's logits, sample, append, repeat.
#
# During training, sample at temperature 1 with no top-k or top-p. PPO's ratio compares the
# probability of each sampled token under the updated policy with its probability under the policy
# that sampled it, and both are read from the model's plain logits. A temperature of 0.7 would draw
# tokens from a sharper distribution than the one those log-probs describe: the data would be
# off-policy and the ratio meaningless, so `RLHFArgs` refuses any other temperature. Use the
# filters freely when you only want to look at what the model writes.
#
# ### Exercise: sampling completions
#
# Write the generation loop of `sample_completions`. The check compares your greedy completions (temperature
# 0) with Hugging Face's `generate`, and checks that sampling at temperature 1 is random but reproducible
# with a seeded generator.

# %% exercise curriculum.solutions.chapter2.rlhf:sample_completions difficulty=2 importance=3 minutes=10
tests.check_sample_completions(sample_completions)

# %% hint
# Generate one token per iteration, `gen_len` times: run the model on everything so far, keep only the
# prediction at the last position, pick a token from it, and append it as a new column. The output keeps the
# prompt in front.

# %% hint
# `base(tokens)[:, -1]` are the last position's logits, shape (batch, d_vocab).
# `sample_next_token(tokens, logits, cfg, generator)` returns one token per row, shape (batch,); pass both
# `cfg` and `generator` through, or the temperature and seeding tests fail.
# `torch.cat([tokens, next_token[:, None]], dim=1)` appends it.

# %%
prompt = torch.tensor([tokenizer("The")["input_ids"]] * 4, device=device)
for text in tokenizer.batch_decode(sample_completions(base, prompt, 20, SamplingConfig(temperature=1.0),
                                                      torch.Generator(device=device).manual_seed(0))):
    print(repr(text))

# %% [markdown]
# ## Log-probabilities of the generated tokens
#
# PPO needs log pi(a|s) for each action, here each generated token. The logits at position t predict the token
# at t + 1, so the generated tokens `tokens[:, prefix_len:]` are scored by `logits[:, prefix_len - 1 : -1]`.
#
# ### Exercise: log-probs of the generated tokens
#
# Write `token_logprobs`. This off-by-one is the most common RLHF bug; the check compares your answer with
# `F.cross_entropy` on random logits.

# %% exercise curriculum.solutions.chapter2.rlhf:token_logprobs difficulty=2 importance=5 minutes=10
tests.check_token_logprobs(token_logprobs)

# %% hint
# Turn the logits into log-probabilities over the vocabulary, keep the positions that predict the generated
# tokens, and from each position's distribution pick the entry of the token that was actually generated.
# The result has one number per generated token: shape (batch, seq - prefix_len).

# %% hint
# `logits[:, prefix_len - 1 : -1].log_softmax(dim=-1)` has shape (batch, gen, d_vocab). Pick entries with
# `.gather(-1, tokens[:, prefix_len:, None])` (the index needs the same number of dimensions, hence `None`),
# then `.squeeze(-1)`.

# %% [markdown]
# ## Rewards: normalisation and the KL penalty
#
# Two shapings turn a reward into something PPO learns from smoothly.
#
# **Normalisation.** Rewards are standardised over each batch (zero mean, unit std), so the same learning
# rate works for a token count and a classifier logit.
#
# ### Exercise: reward normalisation
#
# Write `normalize_rewards`. The check compares with the formula and feeds it a batch of equal rewards, whose
# standard deviation is 0.

# %% exercise curriculum.solutions.chapter2.rlhf:normalize_rewards difficulty=1 importance=2 minutes=5
tests.check_normalize_rewards(normalize_rewards)

# %% hint
# Subtract the batch mean, divide by the batch standard deviation plus `eps`; `eps` is what keeps a batch of
# identical rewards from dividing by zero.

# %% hint
# `(rewards - rewards.mean()) / (rewards.std() + eps)`: add `eps` to the std, not inside a square root.

# %% [markdown]
# **The KL penalty.** The objective is $\mathbb{E}[r(x)] - \beta\, \mathrm{KL}(\pi \,\|\, \pi_{\text{ref}})$. The
# KL of a sampled completion is estimated by $\sum_t \log\pi(x_t|x_{<t}) - \log\pi_{\text{ref}}(x_t|x_{<t})$, a
# sum over tokens, so it is paid token by token: every generated token gets reward
# $-\beta(\log\pi - \log\pi_{\text{ref}})$ and the last token also gets the completion's reward. Without it, the
# policy drifts wherever the reward model is wrong, as you will see.
#
# ### Exercise: per-token rewards with a KL penalty
#
# Write `per_token_rewards`. The check uses a hand-computed case with `kl_coef = 0.5` and tells you if the
# sequence reward landed on the wrong token or the penalty has the wrong sign.

# %% exercise curriculum.solutions.chapter2.rlhf:per_token_rewards difficulty=2 importance=4 minutes=10
tests.check_per_token_rewards(per_token_rewards)

# %% hint
# Start from the penalty, computed for every generated token at once; it is a tensor of shape (batch, gen).
# Then add each completion's reward to its last column only: the episode ends there.

# %% hint
# `token_rewards = -kl_coef * (logprobs - ref_logprobs)`, then `token_rewards[:, -1] += rewards`. Where the
# policy gives a token more probability than the reference, that token is penalised, hence the minus sign.

# %% [markdown]
# ## Per-token advantages
#
# Each completion is an episode of `gen_len` steps that terminates after its last token, so the advantages are
# section 2.3's GAE, unchanged: `token_advantages` transposes to `[gen, batch]`, marks the last token terminated
# and calls your `compute_advantages`. With the reward only on the last token and $\gamma = 1$, the advantage of
# an early token is (roughly) how much the final reward beat the value head's prediction at that point.

# %%
values = torch.zeros(2, 4)
token_rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, -1.0]])
print(token_advantages(values, token_rewards, gamma=1.0, gae_lambda=0.95))

# %% [markdown]
# ## The PPO loss on generated tokens
#
# The update is section 2.3's, with every (completion, generated token) pair as one sample: run the policy on
# the full sequences, take the new log-probs of the generated tokens and the values of the states *before*
# each of them (`values[:, prefix_len - 1 : -1]`), and combine your `policy_loss` and `value_loss`.
#
# ### Exercise: the PPO loss on generated tokens
#
# Fill in `rlhf_loss` up to the total loss; the diagnostics after the fence are given. The check compares
# with the formula and names the usual mistakes: values read at the wrong positions, a missing `vf_coef`, a
# missing value loss.

# %% exercise curriculum.solutions.chapter2.rlhf:rlhf_loss difficulty=3 importance=4 minutes=15
tests.check_rlhf_loss(rlhf_loss)

# %% hint
# One forward pass of `model` on `batch.tokens` gives logits and values for every position. Keep only the
# generated part of each with the same slicing as before, then treat every (completion, token) pair as one
# PPO sample: flatten the (batch, gen) tensors to vectors and hand them to section 2.3's loss functions.

# %% hint
# `new_logprobs = token_logprobs(logits, batch.tokens, prefix_len)` and
# `new_values = values[:, prefix_len - 1 : -1]`. Then
# `policy_loss(new_logprobs.flatten(), batch.logprobs.flatten(), batch.advantages.flatten(), args.clip_coef)`,
# `value_loss(new_values.flatten(), batch.values.flatten(), batch.returns.flatten(), args.clip_coef)`, and
# `loss = pg_loss + args.vf_coef * v_loss`. Keep the names `new_logprobs`, `pg_loss` and `v_loss`: the
# given lines after the fence use them.

# %% [markdown]
# ## Putting a batch together, and the training loop
#
# `make_batch` is one PPO "rollout": sample a batch of completions, then, without gradients, score them with the
# reward function (on the generated tokens only), get the policy's log-probs and values and the reference's
# log-probs, and turn it all into per-token rewards, advantages and returns.
#
# `train_rlhf` (below it, nothing to write) then alternates `make_batch` with `update_epochs` of shuffled
# minibatches of `rlhf_loss`, with separate learning rates for the transformer (small: it is pretrained) and the
# value head (larger: it starts from scratch). Both come into this notebook, so they call your functions.
#
# ### Exercise: one batch of experience
#
# Fill in the middle of `make_batch`. The check runs your `make_batch` and the reference on the same seeds,
# with a reference model perturbed away from the policy so the KL term matters, and compares tokens,
# log-probs, values, the reported reward, advantages and returns in that order: the first mismatch points at
# the step to look at.

# %% exercise curriculum.solutions.chapter2.rlhf:make_batch,train_rlhf difficulty=3 importance=4 minutes=20
tests.check_make_batch(make_batch)

# %% hint
# Each piece is a function you already have: the reward function on the generated tokens, your
# `TransformerWithValueHead` for the policy's logits and values, the frozen reference for its logits,
# `token_logprobs` for both log-probs, then `normalize_rewards` (only if `args.normalize_reward`),
# `per_token_rewards` and `token_advantages`. Everything runs under the `@torch.no_grad()` already on the
# function.

# %% hint
# Score `tokens[:, prefix_len:]`, not the whole sequence, and keep the *raw* rewards in `raw_rewards`: the
# line after the fence reports their mean. `model(tokens)` returns `(logits, values)`, `ref(tokens)` only
# logits. Slice the values to the states before each generated token, `values[:, prefix_len - 1 : -1]`, and
# keep the names `logprobs`, `ref_logprobs`, `values` and `advantages`, which the given lines after the fence
# use. The KL penalty compares the policy with the *reference*, so pass `ref_logprobs`, not the policy's own.

# %% hint
# ```python
# raw_rewards = reward_fn(...).float()
# logits, values = model(tokens)
# logprobs = token_logprobs(logits, tokens, prefix_len)
# ref_logprobs = ...
# values = ...
# rewards = normalize_rewards(raw_rewards) if args.normalize_reward else raw_rewards
# token_rewards = ...
# advantages = token_advantages(values, token_rewards, args.gamma, args.gae_lambda)
# ```

# %% [markdown]
# ## A programmatic reward: say "." more often
#
# The simplest reward is a rule: the number of times a target token appears in the completion. We reward the
# full stop. With a moderate KL coefficient the policy should learn to write shorter sentences, not only dots.
#
# **How long this takes.** At full size (150 phases of 64 completions) the next cell is still running
# after 5 minutes on a 2-core laptop CPU (over half an hour in all, an estimate); on a Colab GPU, several minutes
# (an estimate). Quick mode runs 24 small phases.

# %%
DOT = tokenizer(".")["input_ids"][-1]
rlhf_args = RLHFArgs(
    batch_size=full_or_quick(64, 16), gen_len=full_or_quick(24, 12), total_phases=full_or_quick(150, 24),
    update_epochs=full_or_quick(4, 2), num_minibatches=full_or_quick(4, 1),
    base_lr=2e-5 if loaded.real else 5e-4,  # pretrained GPT-2 needs small steps; our small LM tolerates larger ones
    head_lr=1e-3, kl_coef=0.2,
)


def run_rlhf(args: RLHFArgs, reward_fn, name: str):
    torch.manual_seed(args.seed)
    policy = TransformerWithValueHead(load_base_model(device).value).to(device)
    with wandb_run("rlhf", args, name=name) as run:
        return train_rlhf(policy, ref_model, reward_fn, args, run=run, sample_every=max(1, args.total_phases // 4))


with_kl = run_rlhf(rlhf_args, target_token_reward(DOT), "dots-kl")
for phase, texts in with_kl.samples:
    print(phase, texts[:2])

# %% [markdown]
# ## Reward hacking: no KL penalty
#
# Now the same run with `kl_coef = 0`. Nothing stops the policy from finding the degenerate optimum of the
# rule, a completion that is all dots, and nothing about that makes it a better language model. The KL to the
# reference grows without bound: the clearest symptom of reward hacking.

# %%
no_kl = run_rlhf(RLHFArgs(**{**rlhf_args.__dict__, "kl_coef": 0.0}), target_token_reward(DOT), "dots-no-kl")
for phase, texts in no_kl.samples:
    print(phase, texts[:2])

# %%
line({"kl_coef=0.2": [h["reward"] for h in with_kl.history], "kl_coef=0": [h["reward"] for h in no_kl.history]},
     smooth=3, title="Reward: mean number of '.' per completion", xlabel="phase", ylabel="reward")
line({"kl_coef=0.2": [h["kl"] for h in with_kl.history], "kl_coef=0": [h["kl"] for h in no_kl.history]},
     smooth=3, title="KL(policy || reference) per completion (nats)", xlabel="phase", ylabel="KL")

# %% [markdown]
# With the penalty the reward rises and then levels off where an extra dot stops being worth its KL cost; the KL
# stays at a few nats. Without it the KL keeps climbing as the policy collapses onto the dots. (In quick mode
# the runs are short, so the curves are closer together; at the default full size the difference is much
# clearer.)

# %% [markdown]
# ## A learned reward model
#
# Real RLHF rewards come from a model trained on human judgements. We imitate that: label windows of the corpus
# as positive or negative with a small sentiment word list, then train a **reward model**, a linear head on the
# frozen base LM's mean-pooled final residual stream, to predict the label from the text. The policy is then
# optimised against the reward model's logit, not the word list. Because we know the "true" labeller (the word
# list), we can check whether optimising the proxy improves the real thing.

# %%
corpus = load_text_corpus()
describe(corpus)
rm_tokens, rm_labels = sentiment_dataset(corpus.value, tokenizer, n_tokens=rlhf_args.gen_len,
                                         max_examples=full_or_quick(4000, 800))
print(f"{len(rm_labels)} labelled windows, {rm_labels.float().mean():.0%} positive. Example:")
print(repr(tokenizer.decode(rm_tokens[0])), "->", int(rm_labels[0]))
reward_model = RewardModel(load_base_model(device).value).to(device)
print(train_reward_model(reward_model, rm_tokens, rm_labels))

# %%
sentiment = run_rlhf(rlhf_args, learned_reward(reward_model), "sentiment")
for phase, texts in sentiment.samples:
    print(phase, "lexicon labels", [lexicon_sentiment(t) for t in texts], texts[:2])
line({"reward model logit": [h["reward"] for h in sentiment.history]}, smooth=3,
     title="Optimising a learned reward", xlabel="phase", ylabel="mean reward")

# %% [markdown]
# The reward model's score rises. Now look at the samples with the *true* labeller, the word list: with the
# small offline LM they usually still contain no sentiment words at all (labels 0). The policy did not learn to
# be positive; it found whatever features the linear probe happens to score highly (read the samples above:
# often punctuation or table-like fragments). That is reward hacking of a learned reward, the failure RLHF
# practitioners worry about most: a reward model (compare its printed test accuracy with its train accuracy)
# is only trustworthy on text like its training data, and the policy is an optimiser searching for where it
# is wrong. Real RLHF keeps the KL penalty,
# retrains the reward model on the policy's new outputs, and evaluates with held-out judges. With GPT-2 small
# online, fluent text makes the probe's features closer to real sentiment, and you can check how far that goes.
#
# **Try it:** raise `kl_coef` to 0.5 and 2 and plot reward against KL (the *reward-KL frontier*); run the
# sentiment reward with `kl_coef=0`; change the prompt; online, use GPT-2 small with `base_lr=2e-5`.

# %% [markdown]
# ## Further reading
# - [Christiano et al., "Deep reinforcement learning from human preferences" (2017)](https://arxiv.org/abs/1706.03741):
#   learning a reward model from pairwise human comparisons, the origin of the RLHF recipe.
# - [Ziegler et al., "Fine-Tuning Language Models from Human Preferences" (2019)](https://arxiv.org/abs/1909.08593):
#   PPO on GPT-2 with a KL penalty to the starting model, as in this section; includes a positive-sentiment task.
# - [Ouyang et al., "Training language models to follow instructions with human feedback" (2022)](https://arxiv.org/abs/2203.02155):
#   the full pipeline at scale (supervised fine-tuning, reward model, PPO), and what it changed in practice.
# - [Gao, Schulman & Hilton, "Scaling Laws for Reward Model Overoptimization" (2022)](https://arxiv.org/abs/2210.10760):
#   how the true reward first rises and then falls as the policy optimises a learned proxy: the effect you saw
#   with the sentiment reward model, measured carefully.
