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
# ![The RLHF loop: prompts go to the policy, which samples completions; a reward model scores each completion; the frozen reference model's log-probs give a per-token KL penalty; rewards, values and log-probs feed the PPO update, which changes the policy](figures/2.4_rlhf_loop.svg)
#
# The figure is one *phase* of training, and the whole section builds it piece by piece. The policy
# samples a batch of completions (the rollout). A reward model reads each finished completion and
# returns one number. The frozen reference model reads the same tokens and gives, token by token, how
# far the policy has moved from where it started; that distance is charged as a penalty. Then PPO
# takes a few gradient steps on this batch, and the loop starts again with fresh samples from the
# updated policy. Everything except the reward model is the same machinery as 2.3's CartPole agent.
#
# You will
# 1. attach a value head to a TransformerLens `TransformerBridge` with a hook;
# 2. sample completions with section 1.1's `sample_next_token`;
# 3. compute the log-probs of generated tokens, per-token rewards with a KL penalty to a frozen reference,
#    and per-token advantages (with section 2.3's GAE);
# 4. write the PPO loss on generated tokens, one batch of experience, and the training loop itself, then
#    train against a programmatic reward (count of a target token) and watch the reward rise while the KL
#    stays bounded;
# 5. switch the KL penalty off and watch the policy **hack the reward**;
# 6. build a reward model (a transformer with a scalar head), train it on preference pairs with the
#    Bradley-Terry loss, measure its held-out accuracy, and optimise the LM against it;
# 7. replace PPO's critic by GRPO's group-relative advantages and compare the two on the same reward;
# 8. score completions with a real sentiment classifier (online).
#
# **Online or offline.** Online the LM is GPT-2 small. Offline (no internet, or `CURRICULUM_OFFLINE=1`) it is
# the project's own small LM (2 layers, d_model 128) trained on CPython's documentation and shipped in
# `data/rlhf/base`: its text is not pretty, but every effect below shows up in it within a minute on a CPU.

# %% setup
from typing import Any

import einops
import torch
import torch.nn as nn
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from curriculum import utils
from curriculum.solutions.chapter1.gpt2 import SamplingConfig, sample_next_token
from curriculum.solutions.chapter2.ppo import compute_advantages, kl_and_clipfrac, policy_loss, value_loss
from curriculum.solutions.chapter2.rlhf import (
    SENTIMENT_MODEL,
    VALUE_HOOK,
    GRPOArgs,
    GRPOBatch,
    PreferencePairs,
    RewardFn,
    RewardModelArgs,
    RLHFArgs,
    RLHFBatch,
    RLHFResult,
    learned_reward,
    load_base_model,
    load_sentiment_classifier,
    preference_pairs,
    target_token_reward,
    text_reward,
    token_advantages,
)
from curriculum.checks.chapter2 import rlhf as tests
from curriculum.utils import full_or_quick
from curriculum.utils.logging import wandb_run
from curriculum.utils.rl import require_finite
from curriculum.utils.offline import describe
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
# During training, sample at temperature 1 with no top-k or top-p, and `RLHFArgs` refuses any other
# temperature. Here is why. PPO's ratio $\pi_\theta(a|s) / \pi_{\text{old}}(a|s)$ is an importance weight:
# it corrects for the fact that the batch was drawn from $\pi_{\text{old}}$ while the gradient is taken for
# $\pi_\theta$. That correction is only right if $\pi_{\text{old}}$ is *exactly the distribution that drew
# the tokens*. The log-probs we store are read from the model's plain logits, the temperature-1 softmax. Sample
# at temperature 0.7 and the tokens come from $\mathrm{softmax}(\text{logits}/0.7)$ instead: a likely token is
# drawn more often than the stored log-prob says, an unlikely one less often. A worked example: two tokens with
# plain probabilities 0.8 and 0.2 get $0.8^{1/0.7} : 0.2^{1/0.7}$, about 0.88 : 0.12, at temperature 0.7. The
# first is then sampled 88% of the time while its stored probability says 80%, so every update over-weights it,
# and the clipping, which was meant to keep the new policy near the one that sampled, measures distance from a
# distribution that never sampled anything. The batch is off-policy and nothing in the loss says so.
#
# There are two consistent fixes: sample at temperature 1 (this section's choice), or divide the logits by the
# same temperature everywhere, when sampling *and* when computing the stored and the new log-probs, so that
# the policy being trained *is* the tempered one. The second is what libraries that allow a training
# temperature do; it is easy to get half right, so we refuse the setting instead. Top-k and top-p break the
# ratio the same way (they zero out tokens the stored log-probs still give mass to). Use any filters you like
# afterwards, when you only want to look at what the model writes.
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
# `train_rlhf`, the next exercise, then alternates `make_batch` with `update_epochs` passes of PPO over it.
#
# ### Exercise: one batch of experience
#
# Fill in the middle of `make_batch`. The check runs your `make_batch` and the reference on the same seeds,
# with a reference model perturbed away from the policy so the KL term matters, and compares tokens,
# log-probs, values, the reported reward, advantages and returns in that order: the first mismatch points at
# the step to look at.

# %% exercise curriculum.solutions.chapter2.rlhf:make_batch difficulty=3 importance=4 minutes=20
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
# ### Exercise: the training loop
#
# Now the loop that turns batches into learning. One phase is: collect a batch with the current policy, then
# take several gradient steps on it, then throw it away. In pseudocode,
#
# ```
# for phase in range(total_phases):
#     batch = make_batch(policy)            # on-policy: fresh samples from the policy as it is now
#     for epoch in range(update_epochs):    # reuse the batch a few times: sampling is the expensive part
#         for minibatch in shuffled split of batch:
#             loss = rlhf_loss(policy, minibatch)
#             step the optimizer on loss (with the gradient norm clipped)
# ```
#
# Three details matter. The batch must be **fresh every phase**: PPO's clipped ratio lets you reuse one batch
# for a few epochs because the policy cannot move far from the one that sampled it, but after that the
# advantages describe a policy that has been replaced. The minibatches are **shuffled** every epoch, so that
# consecutive gradient steps do not always see the same completions in the same order. And the gradient norm is
# **clipped** (here to `max_grad_norm = 1`): one completion with a huge advantage should not be able to throw
# a pretrained model far in one step.
#
# The lines around the fence are given: the optimizer has two parameter groups, a small learning rate for the
# pretrained transformer and a larger one for the value head, which starts from random weights and has to catch
# up quickly before its advantages mean anything. The model is put in eval mode, which switches dropout off:
# with dropout, two forward passes on the same tokens disagree, and the PPO ratio would not start at exactly 1.
# After the fence, each phase's statistics (`stats`, with the last minibatch's `loss_stats`) go to the history.
#
# Write the body of the phase loop. The check trains a fresh copy of the small LM for 10 short phases on the
# "count the full stops" reward below and asks that the mean reward rises: a loop that never calls
# `optimizer.step()`, or that climbs the loss instead of descending it, leaves the reward flat or sends it down.

# %% exercise curriculum.solutions.chapter2.rlhf:train_rlhf difficulty=2 importance=5 minutes=15
tests.check_train_rlhf(train_rlhf)

# %% hint
# Each phase: call `make_batch(model, ref, reward_fn, prompt, args, generator)`, which returns `(batch, stats)`,
# and stop with `require_finite` if the mean reward is not finite. Then two nested loops: `update_epochs` times,
# over `num_minibatches` minibatches of random indices. For each: the loss, a finiteness check, and the four
# optimizer lines you wrote in 2.3.

# %% hint
# The indices: `torch.randperm(args.batch_size, generator=generator, device=device).tensor_split(args.num_minibatches)`
# gives a list of index tensors; `batch[mb]` selects those completions (see `RLHFBatch.__getitem__`). Then
# `loss, loss_stats = rlhf_loss(model, batch[mb], prefix_len, args)`. Keep the names `batch`, `stats` and
# `loss_stats`: the lines after the fence use them.

# %% hint
# ```python
# batch, stats = make_batch(...)
# require_finite(stats["reward"], "the mean reward of the sampled completions", f"phase {phase}")
# for _ in range(args.update_epochs):
#     for mb in ...:
#         loss, loss_stats = ...
#         require_finite(loss, "the PPO loss", f"phase {phase}")
#         optimizer.zero_grad()
#         loss.backward()
#         nn.utils.clip_grad_norm_(..., args.max_grad_norm)
#         optimizer.step()
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
# Real RLHF does not have a rule that says what is good. It has people, and people are slow, so their
# judgements are distilled into a **reward model**: a network trained to predict which of two completions a
# person prefers, which the policy can then query millions of times. Comparisons rather than scores, because a
# labeller asked "is this a 7 or an 8?" is inconsistent with themselves, while "which of these two is better?"
# gets reproducible answers (Christiano et al. 2017; Stiennon et al. 2020).
#
# **Our "human" is a rule.** We have no labellers, so we let the rule from the previous part judge: of two
# completions, the one with more full stops is preferred. `preference_pairs` samples completions from the
# base model, cuts each to a random length (so that completions in a batch have different lengths, as real
# ones do, and the reward model has to deal with padding), asks the rule which of each pair is better, and
# drops ties. Be clear about what this can and cannot show. It **can** show the whole mechanism: the
# Bradley-Terry loss, reading the reward from the right token, held-out accuracy, and, because we know the
# true preference exactly, whether optimising the learned reward also optimises the true one, which with
# real labellers you can only estimate with more labelling. It **cannot** show what makes human preferences
# hard: labellers disagree with each other and with themselves, prefer longer or more confident answers for
# reasons that have nothing to do with quality, and judge things (helpfulness, honesty) that no short rule
# captures. A reward model that is nearly always right about a rule says nothing about how it would do on
# those; the reward models in InstructGPT and Stiennon et al. agree with held-out human comparisons roughly 70%
# of the time, not much less than labellers agree with each other, and that noise is part of what the policy
# then exploits.

# %%
rule = target_token_reward(DOT)
pairs = preference_pairs(base, rule, n_pairs=full_or_quick(4000, 600), gen_len=full_or_quick(24, 12),
                         pad_id=tokenizer.eos_token_id)
n_test = len(pairs) // 5
test_pairs, train_pairs = pairs[:n_test], pairs[n_test:]
print(f"{len(pairs)} pairs after dropping ties ({len(train_pairs)} to train on, {len(test_pairs)} held out)")
for i in range(2):
    print("chosen:  ", repr(tokenizer.decode(pairs.chosen[i, : pairs.chosen_len[i]])))
    print("rejected:", repr(tokenizer.decode(pairs.rejected[i, : pairs.rejected_len[i]])))

# %% [markdown]
# Many sampled pairs tie (both completions hold no full stop, or the same number), and a tie tells the reward
# model nothing about which is better, so the printed count of pairs is well below `n_pairs`.
#
# ### Exercise: the reward model
#
# The reward model is a transformer with a **scalar head**: the same base LM, with the unembedding ignored and a
# `nn.Linear(d_model, 1)` reading the final residual stream. But a transformer gives one residual vector per
# position, and we want one number per completion. Which position? In a causal transformer, position $t$ has
# attended to tokens $0..t$ and nothing after, so only the **last real token** has read the whole completion.
# Position 0 has seen one token. The last position of the tensor is, for every completion shorter than the
# longest, a pad token: with causal attention its vector has read the whole completion *and* the pads after
# it, so its score depends on how much padding the batch happened to need. With right padding and lengths
# $n_i$, the reward is the head applied at position $n_i - 1$ of row $i$.
#
# Worked example: a batch of two completions, lengths 5 and 3, padded to 5:
#
# ```
# row 0:  The  cat  sat  .    down      -> read position 4 ("down")
# row 1:  A    dog  .    PAD  PAD       -> read position 2 (".")
# ```
#
# Indexing a different position in each row is one advanced-indexing expression,
# `resid[torch.arange(batch), lengths - 1]`, which picks `resid[0, 4]` and `resid[1, 2]`.
#
# Write `forward`, which returns one reward per row; `lengths=None` means no padding. The whole model is
# trained, transformer included: the gradients flow through the residual stream, so do not read it under
# `torch.no_grad()`. The check compares with the head applied to TransformerLens's cached activation at each
# row's last real token, and tells you if you read position 0, the last (pad) position, or the mean over
# positions.

# %% exercise curriculum.solutions.chapter2.rlhf:RewardModel difficulty=2 importance=4 minutes=10
tests.check_reward_model(RewardModel)

# %% hint
# This is your value head's forward with one change: the value head wanted a number at every position, the
# reward model wants one per row, at that row's last real token.

# %% hint
# Store the activation at `VALUE_HOOK` with a hook during `self.base.run_with_hooks(tokens, fwd_hooks=...)`
# (ignore the logits it returns). The stored tensor has shape (batch, seq, d_model); index it with
# `[torch.arange(batch, device=...), lengths - 1]` to get (batch, d_model), apply `self.head`, squeeze the last axis.

# %% [markdown]
# ### Exercise: the Bradley-Terry loss
#
# How do we turn "A was preferred to B" into a loss for a model that outputs one number per completion? The
# **Bradley-Terry** model (1952, for ranking chess players and sports teams) says each item has a hidden
# strength $r$, and the probability that A beats B is a logistic function of the difference:
#
# $$P(A \succ B) = \sigma(r_A - r_B) = \frac{1}{1 + e^{-(r_A - r_B)}}.$$
#
# Only the difference matters: adding the same constant to every reward changes nothing, which is why a
# reward model's scores have no natural zero (and why the RLHF loop normalises them). Training is maximum
# likelihood on the observed comparisons: for each pair, maximise $\log P(\text{chosen} \succ
# \text{rejected})$, that is, minimise
#
# $$\mathcal{L} = -\frac{1}{N}\sum_i \log \sigma\big(r(\text{chosen}_i) - r(\text{rejected}_i)\big).$$
#
# Worked numbers: a difference of 0 (the model cannot tell them apart) costs $\log 2 \approx 0.69$ per pair;
# a difference of +2 costs $-\log\sigma(2) \approx 0.13$; a difference of -2 (confidently wrong) costs
# $\approx 2.13$. Wrong pairs are punished roughly linearly in how wrong they are, right pairs stop
# mattering once they are clearly right. The gradient with respect to the difference is
# $-(1 - \sigma(d))$: the probability the model currently gives to the *wrong* order.
#
# One numerical trap: computing `torch.log(torch.sigmoid(d))` for $d = -200$ gives $\sigma(-200) = 0$ in
# float32 and $\log 0 = -\infty$, while the true value is about $-200$. `F.logsigmoid` computes the same
# function without forming the tiny probability first. Write `bradley_terry_loss`; the check compares it with
# `-F.logsigmoid(chosen - rejected).mean()` on random rewards, then feeds it a badly wrong pair.

# %% exercise curriculum.solutions.chapter2.rlhf:bradley_terry_loss difficulty=1 importance=5 minutes=5
tests.check_bradley_terry_loss(bradley_terry_loss)

# %% hint
# The loss is a function of one thing per pair, the difference r_chosen - r_rejected, in that order: a larger
# difference in favour of the chosen completion should give a smaller loss.

# %% hint
# `F.logsigmoid(x)` is log(sigmoid(x)), computed stably. Negate it and average over the pairs (`.mean()`, not
# `.sum()`, so the learning rate does not depend on the batch size).

# %% [markdown]
# ### Exercise: held-out pairwise accuracy
#
# The loss says how confident the model is; the number you report is simpler: on pairs it has never seen,
# how often does it rank the chosen completion above the rejected one? Chance is 50%. A pair where the two
# rewards are exactly equal counts as wrong: the model has not expressed a preference. Score the pairs in
# chunks of `chunk` pairs, without gradients (the `@torch.no_grad()` is on the function), each side with its
# own lengths, and return a Python float. The check uses a fake reward model whose scores it knows (it reads
# each row's last real token, so it needs the lengths), with one tie, and a chunk size that does not divide
# the number of pairs.

# %% exercise curriculum.solutions.chapter2.rlhf:pairwise_accuracy difficulty=1 importance=3 minutes=5
tests.check_pairwise_accuracy(pairwise_accuracy)

# %% hint
# Loop over `range(0, len(pairs), chunk)`; `pairs[i : i + chunk]` is a smaller `PreferencePairs`. Count the
# pairs with `reward_model(p.chosen, p.chosen_len) > reward_model(p.rejected, p.rejected_len)`.

# %% hint
# Accumulate the count with `.sum().item()` and divide by `len(pairs)` at the end; averaging per-chunk
# accuracies gives the last, shorter chunk too much weight.

# %% [markdown]
# ### Exercise: training the reward model
#
# The training loop is ordinary supervised learning: shuffle the training pairs, and for each minibatch score
# both sides with the *same* model, take the Bradley-Terry loss, step. After each epoch, measure the held-out
# accuracy. The optimizer (AdamW over all parameters: the transformer and the head) and the history dict are
# created before the fence. Every step's loss goes into `history["loss"]`, every epoch's held-out accuracy into
# `history["test_accuracy"]`.
#
# The check trains a fresh reward model for 2 epochs on synthetic pairs whose chosen side holds more full
# stops and asks for a held-out accuracy above 0.8. If you swap chosen and rejected, the model learns the
# opposite preference and the accuracy falls far below chance; the check says so.

# %% exercise curriculum.solutions.chapter2.rlhf:train_reward_model difficulty=2 importance=4 minutes=10
tests.check_train_reward_model(train_reward_model)

# %% hint
# Minibatches of indices: `torch.randperm(len(train), generator=generator).split(args.batch_size)`; `train[idx]`
# is a `PreferencePairs`. Each side is scored with its own lengths: `reward_model(mb.chosen, mb.chosen_len)`.

# %% hint
# ```python
# for idx in ...:
#     mb = train[idx]
#     loss = bradley_terry_loss(..., ...)
#     require_finite(loss, "the Bradley-Terry loss", "while training the reward model")
#     ... zero_grad / backward / step ...
#     history["loss"].append(loss.item())
# history["test_accuracy"].append(...)
# ```

# %%
reward_model = RewardModel(load_base_model(device).value).to(device)
print(f"held-out accuracy before training: {pairwise_accuracy(reward_model, test_pairs):.2f}")
rm_history = train_reward_model(reward_model, train_pairs, test_pairs,
                                RewardModelArgs(epochs=full_or_quick(2, 3), lr=1e-3 if not loaded.real else 1e-5))
print("held-out accuracy after each epoch:", [round(a, 3) for a in rm_history["test_accuracy"]])
line({"Bradley-Terry loss": rm_history["loss"]}, smooth=10, title="Reward model training", xlabel="step", ylabel="loss")

# %% [markdown]
# **What you should see.** The loss starts near $\log 2 \approx 0.69$ (a fresh head gives nearly equal
# rewards to both sides) and falls; the held-out accuracy climbs above 0.9 within a few epochs, because
# counting full stops is easy for a transformer: attention can spread evenly over the completion and the head
# reads how much of the average is ".". The accuracy before training can be well above 0.5: a random head
# already leans on whatever correlates with the rule, and a full stop changes the residual stream of the
# tokens after it, so even random features carry some of the signal. Length correlates with it too (a longer
# completion has more chances to hold a full stop): a *length bias*, which real reward models also pick up. A loss that stays at
# 0.69 means the rewards of the two sides are not being compared; one that falls while the accuracy sits
# below 0.5 means chosen and rejected are swapped.
#
# ## RLHF against the learned reward
#
# Now the policy optimises the reward model's score instead of the rule. Because we know the rule, we log it
# next to the learned reward on every batch (a small wrapper around the reward function) and can see whether the
# two go up together.

# %%
true_reward_log = []


def learned_and_logged(completions):
    true_reward_log.append(rule(completions).float().mean().item())
    return learned_reward(reward_model)(completions)


learned = run_rlhf(rlhf_args, learned_and_logged, "learned-reward")
line({"reward model's score": [h["reward"] for h in learned.history],
      "true reward: full stops per completion": true_reward_log},
     smooth=3, title="Optimising a learned reward", xlabel="phase", ylabel="mean per completion")
for phase, texts in learned.samples:
    print(phase, texts[:2])

# %% [markdown]
# Both curves should rise together: here the reward model learned the rule well, on text from the same
# distribution the policy starts from, and the KL penalty keeps the policy near that distribution. Watch the
# gap, though. The reward model only ever saw completions of the *base* model; as the policy drifts, it
# writes text the reward model never saw, and there its score can keep rising while the true reward stalls or
# falls. That is **reward model overoptimisation** (Gao et al. 2022): the learned reward is a proxy, and the
# policy is an optimiser searching for where the proxy is wrong. Run it longer with `kl_coef=0` and compare the
# two curves: the learned score tends to run ahead of the rule. Real pipelines keep the KL penalty, collect new
# comparisons on the policy's current outputs and retrain the reward model, and judge the result with held-out
# people or a stronger model, never with the reward model that was optimised.

# %% [markdown]
# ## GRPO: advantages from a group, no critic
#
# PPO needs a value head to turn one reward at the end of a completion into an advantage for every token.
# That critic is a second network to train, its early estimates are poor (it starts from random weights), and
# for an LM it costs as much memory as the policy it sits on. **Group Relative Policy Optimisation** (GRPO,
# Shao et al. 2024, introduced for DeepSeekMath) drops it. For each prompt, sample a *group* of $G$
# completions, score them all, and use the group itself as the baseline:
#
# $$A_i = \frac{r_i - \operatorname{mean}(r_1..r_G)}{\operatorname{std}(r_1..r_G) + \epsilon}.$$
#
# A completion's advantage is how much better it did than its siblings *from the same prompt*, in units of
# their spread. Every token of completion $i$ gets the same $A_i$. The baseline is per prompt because prompts
# differ in difficulty: a hard maths problem where every sample scores 0.1 and an easy one where every sample
# scores 0.9 should both give zero advantage to an average sample; one baseline for the whole batch would
# instead push up everything written for the easy prompt.
#
# ![PPO vs GRPO advantages: PPO turns one reward at the last token into per-token advantages with a learned value head and GAE; GRPO samples G completions per prompt and gives every token of completion i the same advantage (r_i - group mean) / (group std + eps)](figures/2.4_ppo_vs_grpo.svg)
#
# The KL to the reference moves too: PPO-RLHF charges it inside the reward, token by token; GRPO adds it to the
# loss as a separate term, $\beta\,\widehat{\mathrm{KL}}(\pi\|\pi_{\text{ref}})$, estimated per token with
# $k_3 = e^{\log\pi_{\text{ref}} - \log\pi} - (\log\pi_{\text{ref}} - \log\pi) - 1$. This is the same
# estimator `kl_and_clipfrac` used in 2.3 for the policy's step size. Its expectation under $\pi$ is the KL
# (because $\mathbb{E}_\pi[\pi_{\text{ref}}/\pi] = 1$), and unlike the plain log-ratio it is never negative
# for a single token ($e^x - x - 1 \ge 0$), so no token can *earn* loss reduction by being less likely under
# the policy than under the reference.
#
# What it costs: $G$ samples per prompt (DeepSeekMath uses 64), and advantages that are constant along a
# completion, so GRPO cannot tell which tokens of a good completion were the good ones; PPO's value head can,
# at least in principle. For outcome rewards on long reasoning traces that trade has been worth it.
#
# ### Exercise: group-relative advantages
#
# Write `group_advantages(rewards, groups, eps)`: `groups[i]` is the id of the prompt that completion `i` came
# from. Groups may have different sizes and need not be contiguous. Use torch's default **unbiased** standard
# deviation (divide by $n - 1$), as common implementations do; DeepSeekMath's paper does not pin this down, and
# with $G = 16$ the two differ by 3%. A group whose rewards are all equal has std 0: with `eps` its advantages
# are 0, which is right, since nothing in that group was better than anything else. Worked example: rewards
# (1, 3, 5) in one group have mean 3 and unbiased std 2, so advantages (-1, 0, 1). The check compares with a
# numpy computation on three interleaved groups of sizes 4, 4 and 3, one of them constant.

# %% exercise curriculum.solutions.chapter2.rlhf:group_advantages difficulty=2 importance=4 minutes=10
tests.check_group_advantages(group_advantages)

# %% hint
# Loop over the distinct ids (`groups.unique()`); a boolean mask `groups == g` selects one group's rewards, and
# the same mask assigns their advantages back into a tensor of the batch's shape.

# %% hint
# ```python
# advantages = torch.empty_like(rewards)
# for g in groups.unique():
#     in_group = groups == g
#     r = rewards[in_group]
#     advantages[in_group] = ...
# ```

# %% [markdown]
# ### Exercise: the GRPO loss
#
# The loss has two terms. The first is PPO's clipped surrogate, your `policy_loss` from 2.3, over every
# generated token, where each token's advantage is its completion's $A_i$. Pass `norm_adv=False`: the
# advantages were already normalised within each group, and normalising again over a minibatch would mix
# groups back together. The second is `kl_coef` times the mean over all generated tokens of $k_3$, computed
# from the new log-probs (with gradients) and the reference's (stored in the batch). There is no value loss.
#
# The check builds a batch with known old and reference log-probs and compares with the formula; it names the
# likely slips: KL term missing, advantages normalised a second time, KL measured against the old policy
# instead of the reference, or the plain log-ratio in place of $k_3$.

# %% exercise curriculum.solutions.chapter2.rlhf:grpo_loss difficulty=3 importance=4 minutes=15
tests.check_grpo_loss(grpo_loss)

# %% hint
# `policy(batch.tokens)` gives logits (a bare bridge: no value head); `token_logprobs` gives the new
# log-probs, shape (batch, gen). Broadcast the (batch,) advantages to that shape with `[:, None].expand_as(...)`,
# flatten everything, and call `policy_loss(..., args.clip_coef, norm_adv=False)`.

# %% hint
# With `d = batch.ref_logprobs - new_logprobs`, the KL term is `(d.exp() - d - 1).mean()`. Keep the names
# `pg_loss` and `kl` and the total in `loss`: the line after the fence reports them.

# %% [markdown]
# ### Exercise: the GRPO loop
#
# The loop has the same shape as `train_rlhf`, with the batch built inline since there is no value head: each
# phase, sample `group_size` completions for each prompt (the prompt tensor is already repeated, and `groups`
# says which prompt each row belongs to), score the generated tokens, turn the scores into group advantages,
# and, without gradients, record the policy's log-probs (the "old" policy of the ratio) and the reference's.
# Then `update_epochs` passes over shuffled minibatches of `grpo_loss`, with gradient clipping, exactly as
# before. Keep the names `raw_rewards`, `logprobs`, `ref_logprobs`, `tokens` and `loss_stats`: the lines after the
# fence report them. The check runs 10 short phases and asks that the mean reward rises; it also reads the
# advantages your loop hands `grpo_loss`, which must be each completion's reward normalised within its own
# prompt's group (normalised over the whole batch, an easy prompt's completions would all look good).

# %% exercise curriculum.solutions.chapter2.rlhf:train_grpo difficulty=3 importance=4 minutes=20
tests.check_train_grpo(train_grpo)

# %% hint
# Inside `with torch.no_grad():` do the sampling (`sample_completions(policy, prompt, args.gen_len,
# generator=generator)`), the reward on `tokens[:, prefix_len:]`, `group_advantages(raw_rewards, groups,
# args.eps)`, and both `token_logprobs` calls. Pack them into `GRPOBatch(tokens, logprobs, ref_logprobs, advantages)`.

# %% hint
# The update is `train_rlhf`'s with `grpo_loss(policy, batch[mb], prefix_len, args)` and
# `policy.parameters()` in the clipping; the minibatch indices come from `torch.randperm(batch_size,
# generator=generator, device=device).tensor_split(args.num_minibatches)`.

# %% [markdown]
# Now GRPO against PPO on the same reward, the number of full stops, with the same number of completions per
# phase: PPO's run from before samples `batch_size` completions of "The"; GRPO samples `batch_size / 4` for each of
# four one-token prompts. The learning rate is the PPO run's transformer rate. The two KL coefficients are not
# directly comparable (one is charged in the reward, the other in the loss), so look at the KL curves as well as
# the reward.

# %%
grpo_args = GRPOArgs(group_size=rlhf_args.batch_size // 4, gen_len=rlhf_args.gen_len, total_phases=rlhf_args.total_phases,
                     update_epochs=rlhf_args.update_epochs, num_minibatches=rlhf_args.num_minibatches,
                     lr=rlhf_args.base_lr, kl_coef=0.1)
torch.manual_seed(grpo_args.seed)
grpo = train_grpo(load_base_model(device).value, ref_model, rule, grpo_args)
line({"PPO (value head + GAE)": [h["reward"] for h in with_kl.history], "GRPO (group baseline)": [h["reward"] for h in grpo.history]},
     smooth=3, title="PPO vs GRPO: mean number of '.' per completion", xlabel="phase", ylabel="reward")
line({"PPO": [h["kl"] for h in with_kl.history], "GRPO": [h["kl"] for h in grpo.history]},
     smooth=3, title="KL(policy || reference) per completion (nats)", xlabel="phase", ylabel="KL")
for phase, texts in grpo.samples[-1:]:
    print(phase, texts[:2])

# %% [markdown]
# **What to look for.** GRPO usually climbs at least as fast as PPO here, and often faster early on: its
# advantages are meaningful from the first phase, while PPO's depend on a value head that starts from random
# weights and has to learn what a good prefix looks like before its advantages stop being noise. The price
# shows in the KL curve: with this `kl_coef`, GRPO tends to wander further from the reference. One short run on
# a CPU is one sample of a noisy process; rerun with another `seed` before you believe a difference between
# the curves, and compare at equal KL, not only at equal phase.

# %% [markdown]
# ## A real reward: a sentiment classifier
#
# The classic demonstration of RLHF on GPT-2 (Ziegler et al. 2019) makes the model write positive text, with a
# sentiment classifier as the reward. Online, this section loads `distilbert/distilbert-base-uncased-finetuned-sst-2-english`,
# a DistilBERT fine-tuned on movie-review sentences (SST-2), with two output classes, NEGATIVE and POSITIVE.
# Offline there is no classifier, and the rule-based reward stays.
#
# The classifier has its own tokenizer (WordPiece, not GPT-2's BPE), so the reward cannot share token ids with
# the policy: decode the completions to strings, then tokenize them again for the classifier. `text_reward`
# (given) does the decoding; you write the scoring of a batch of strings. Two details. The texts have
# different lengths, so the tokenizer pads them, and the **attention mask** must go to the model with the
# token ids, or the shorter texts' scores change with how much padding the batch needed. And which number is
# the reward: we use the POSITIVE class's **logit**, not its probability, because the probability saturates:
# 0.998 and 0.9999 look the same to PPO although the log-odds (about 6 and 9) still say which is more positive. Read
# the column index from `model.config.label2id["POSITIVE"]` rather than assuming it.
#
# ### Exercise: scoring strings with the classifier
#
# The check uses a small randomly initialised DistilBERT with the real model's labels and compares your batch
# scores with each string scored alone (no padding at all), so it runs offline.

# %% exercise curriculum.solutions.chapter2.rlhf:classifier_reward difficulty=2 importance=3 minutes=10
tests.check_classifier_reward(classifier_reward)

# %% hint
# `tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")` returns a dict
# with `input_ids` and `attention_mask`; `model(**enc)` passes both. Move them to `model.device` first.

# %% hint
# `.logits` has shape (batch, 2); return the column `model.config.label2id["POSITIVE"]`.

# %%
classifier = load_sentiment_classifier(device)
describe(classifier)
if classifier.real:
    clf_model, clf_tokenizer = classifier.value
    print(classifier_reward(clf_model, clf_tokenizer, ["What a wonderful, moving film.", "A dull, tedious mess."]))
    sentiment_reward = text_reward(lambda texts: classifier_reward(clf_model, clf_tokenizer, texts), tokenizer)
    positive = run_rlhf(RLHFArgs(**{**rlhf_args.__dict__, "prompt": "This movie"}), sentiment_reward, "sentiment")
    line({"positive logit": [h["reward"] for h in positive.history]}, smooth=3,
         title="RLHF with a sentiment classifier", xlabel="phase", ylabel="mean reward")
    for phase, texts in positive.samples:
        print(phase, texts[:2])
else:
    print(f"Offline: {SENTIMENT_MODEL} is not available; the sections above used the rule-based reward.")

# %% [markdown]
# Online, read the samples phase by phase. What to look for: completions of "This movie" that turn towards
# praise, and, the lower `kl_coef`, the more likely a drift towards the classifier's favourite words repeated,
# text a movie-review classifier scores highly and a reader does not. That would be the same reward hacking as
# the all-dots policy, found by the optimiser in a model instead of a rule. Offline the small LM cannot write
# reviews, which is why this run is online only.
#
# **Try it:** raise `kl_coef` to 0.5 and 2 and plot reward against KL (the *reward-KL frontier*); train the
# reward model on fewer pairs and watch the true reward and the learned one part ways sooner; run GRPO with a
# `group_size` of 2 and of 32; change the prompt; online, where the policy is already GPT-2 small at
# `base_lr=2e-5`, try 1e-5 and 1e-4 and see how sensitive a pretrained model is to the step size.

# %% [markdown]
# ## Further reading
# - [Christiano et al., "Deep reinforcement learning from human preferences" (2017)](https://arxiv.org/abs/1706.03741):
#   learning a reward model from pairwise human comparisons with the Bradley-Terry loss, the origin of the recipe.
# - [Ziegler et al., "Fine-Tuning Language Models from Human Preferences" (2019)](https://arxiv.org/abs/1909.08593):
#   PPO on GPT-2 with a KL penalty to the starting model, as in this section, including the positive-sentiment task.
# - [Stiennon et al., "Learning to summarize from human feedback" (2020)](https://arxiv.org/abs/2009.01325):
#   reward models on human comparisons of summaries, how their accuracy was measured, and what happens when the
#   policy is optimised past the point where the reward model is reliable.
# - [Ouyang et al., "Training language models to follow instructions with human feedback" (2022)](https://arxiv.org/abs/2203.02155):
#   InstructGPT, the full pipeline at scale (supervised fine-tuning, reward model, PPO), and what it changed in practice.
# - [Gao, Schulman & Hilton, "Scaling Laws for Reward Model Overoptimization" (2022)](https://arxiv.org/abs/2210.10760):
#   how the true reward first rises and then falls as the policy optimises a learned proxy, measured with a
#   known "gold" reward model in place of people, the same trick as this section's rule.
# - [Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models" (2024)](https://arxiv.org/abs/2402.03300):
#   section 4 introduces GRPO: group-relative advantages, no value model, the KL term in the loss with the $k_3$ estimator.
