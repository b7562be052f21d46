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
# **Online or offline.** Online the LM is GPT-2 small. Offline (CI) it is the project's own small LM (2 layers,
# d_model 128) trained on CPython's documentation and shipped in `data/rlhf/base`: its text is not pretty,
# but every effect below shows up in it within a minute on a CPU.

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

# %% exercise curriculum.solutions.chapter2.rlhf:TransformerWithValueHead
tests.check_transformer_with_value_head(TransformerWithValueHead)

# %% [markdown]
# ## Sampling
#
# The policy acts by sampling. Use your `sample_next_token` from section 1.1 (temperature, top-k, top-p): run
# the model on the tokens so far, take the last position's logits, sample, append, repeat. The check compares
# your greedy completions with Hugging Face's `generate`.

# %% exercise curriculum.solutions.chapter2.rlhf:sample_completions
tests.check_sample_completions(sample_completions)

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
# This off-by-one is the most common RLHF bug; the check compares against `F.cross_entropy`.

# %% exercise curriculum.solutions.chapter2.rlhf:token_logprobs
tests.check_token_logprobs(token_logprobs)

# %% [markdown]
# ## Rewards: normalisation and the KL penalty
#
# Two shapings turn a reward into something PPO learns from smoothly.
#
# **Normalisation.** Rewards are standardised over each batch (zero mean, unit std), so the same learning
# rate works for a token count and a classifier logit.
#
# **The KL penalty.** The objective is $\mathbb{E}[r(x)] - \beta\, \mathrm{KL}(\pi \,\|\, \pi_{\text{ref}})$. The
# KL of a sampled completion is estimated by $\sum_t \log\pi(x_t|x_{<t}) - \log\pi_{\text{ref}}(x_t|x_{<t})$, a
# sum over tokens, so it is paid token by token: every generated token gets reward
# $-\beta(\log\pi - \log\pi_{\text{ref}})$ and the last token also gets the completion's reward. Without it, the
# policy drifts wherever the reward model is wrong, as you will see.

# %% exercise curriculum.solutions.chapter2.rlhf:normalize_rewards
tests.check_normalize_rewards(normalize_rewards)

# %% exercise curriculum.solutions.chapter2.rlhf:per_token_rewards
tests.check_per_token_rewards(per_token_rewards)

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

# %% exercise curriculum.solutions.chapter2.rlhf:rlhf_loss
tests.check_rlhf_loss(rlhf_loss)

# %% [markdown]
# ## Putting a batch together, and the training loop
#
# `make_batch` is one PPO "rollout": sample a batch of completions, then, without gradients, score them with the
# reward function (on the generated tokens only), get the policy's log-probs and values and the reference's
# log-probs, and turn it all into per-token rewards, advantages and returns. Fill in the middle.
#
# `train_rlhf` (below it, nothing to write) then alternates `make_batch` with `update_epochs` of shuffled
# minibatches of `rlhf_loss`, with separate learning rates for the transformer (small: it is pretrained) and the
# value head (larger: it starts from scratch). Both come into this notebook, so they call your functions.

# %% exercise curriculum.solutions.chapter2.rlhf:make_batch,train_rlhf
tests.check_make_batch(make_batch)

# %% [markdown]
# ## A programmatic reward: say "." more often
#
# The simplest reward is a rule: the number of times a target token appears in the completion. We reward the
# full stop. With a moderate KL coefficient the policy should learn to write shorter sentences, not only dots.

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
# With the penalty the reward rises and then levels off where an extra dot is no longer worth its KL cost; the KL
# stays at a few nats. Without it the KL keeps climbing as the policy collapses onto the dots. (At CI size the
# runs are short; at full size the difference is stark.)

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
# The reward model's score rises. Now look at the samples with the *true* labeller, the word list: at CI size
# with the small offline LM they still contain no sentiment words at all (labels 0). The policy did not learn to
# be positive; it found whatever features the linear probe happens to score highly (table-like punctuation, in
# our runs). That is reward hacking of a learned reward, the failure RLHF practitioners worry about most: a
# reward model (here only ~70% accurate on held-out windows) is only trustworthy on text like its training
# data, and the policy is an optimiser searching for where it is wrong. Real RLHF keeps the KL penalty,
# retrains the reward model on the policy's new outputs, and evaluates with held-out judges. With GPT-2 small
# online, fluent text makes the probe's features closer to real sentiment, and you can check how far that goes.
#
# **Try it:** raise `kl_coef` to 0.5 and 2 and plot reward against KL (the *reward-KL frontier*); run the
# sentiment reward with `kl_coef=0`; change the prompt; online, use GPT-2 small with `base_lr=2e-5`.
