"""Section 2.4: RLHF, fine-tuning a causal language model with PPO against a reward.

Read top to bottom in the order the notebook teaches it:

    load_base_model          GPT-2 small online; offline, the small LM shipped in data/rlhf/base
    RLHFArgs                 hyperparameters
    TransformerWithValueHead the policy: a TransformerBridge plus a value head reading its residual stream (a hook)
    sample_completions       generation with section 1.1's sample_next_token
    token_logprobs           log pi(token | prefix) for each generated token
    normalize_rewards        per-batch reward normalisation
    per_token_rewards        KL penalty to the frozen reference at every token, the reward on the last
    rlhf_loss                PPO's clipped surrogate + value loss (section 2.3) over the generated tokens
    train_rlhf               the loop
    rewards                  target-token count; preference pairs from that rule, a reward model trained on them
                             with the Bradley-Terry loss; a real sentiment classifier (online)
    GRPO                     group-relative advantages, no value head: group_advantages, grpo_loss, train_grpo

The base model's shipped checkpoint is rebuilt with `python -m curriculum.solutions.chapter2.rlhf --train-base`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import einops
import torch
import torch.nn as nn
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from curriculum.solutions.chapter1.gpt2 import SamplingConfig, sample_next_token
from curriculum.solutions.chapter2.ppo import compute_advantages, kl_and_clipfrac, policy_loss, value_loss
from curriculum.utils.offline import Loaded, load_gpt2, use_real_resources
from curriculum.utils.rl import require_finite

BASE_DIR = Path(__file__).resolve().parents[3] / "data" / "rlhf" / "base"
VALUE_HOOK = "ln_final.hook_normalized"  # the residual stream after the final LayerNorm: what the unembedding reads


# --------------------------------------------------------------------------------------------- the base model
def load_offline_base(device: torch.device | str = "cpu"):
    """The shipped small LM (2 layers, d_model 128, trained on the offline corpus) as a TransformerBridge."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer, GPT2LMHeadModel

    if not (BASE_DIR / "config.json").exists():
        raise FileNotFoundError(f"{BASE_DIR} is missing: rebuild it with `python -m curriculum.solutions.chapter2.rlhf --train-base`")
    hf_model = GPT2LMHeadModel.from_pretrained(BASE_DIR, dtype=torch.float32).eval().to(device)
    tokenizer = AutoTokenizer.from_pretrained(BASE_DIR)
    return TransformerBridge.boot_transformers("gpt2", hf_model=hf_model, tokenizer=tokenizer)


def load_base_model(device: torch.device | str = "cpu") -> Loaded:
    """GPT-2 small online; offline the project's own small LM trained on CPython's documentation."""
    if use_real_resources():
        loaded = load_gpt2()
        loaded.value.to(device)
        return loaded
    bridge = load_offline_base(device)
    n = sum(p.numel() for p in bridge.parameters())
    return Loaded(bridge, False, f"the project's small LM trained on CPython's docs (2 layers, d_model 128, {n / 1e6:.1f}M parameters)")


@dataclass
class RLHFArgs:
    seed: int = 0
    prompt: str = "The"
    batch_size: int = 64  # completions per phase
    gen_len: int = 24  # new tokens per completion
    total_phases: int = 200  # a phase: sample a batch, then update_epochs of PPO on it
    update_epochs: int = 4
    num_minibatches: int = 4
    base_lr: float = 2e-5  # the transformer moves slowly...
    head_lr: float = 5e-4  # ...the freshly initialised value head fast
    max_grad_norm: float = 1.0
    kl_coef: float = 0.1  # beta in r - beta * KL(pi || pi_ref)
    clip_coef: float = 0.2
    vf_coef: float = 0.3
    gamma: float = 1.0
    gae_lambda: float = 0.95
    normalize_reward: bool = True
    temperature: float = 1.0  # must stay 1: see __post_init__

    def __post_init__(self) -> None:
        if self.temperature != 1.0:
            raise ValueError(
                f"temperature={self.temperature}: PPO's ratio divides the probability of each sampled token under the "
                f"updated policy by its probability under the policy that sampled it, and both are computed from the "
                f"model's plain (temperature 1) logits. Sampling at another temperature draws from a different "
                f"distribution, so every update would be off-policy. Keep temperature=1.0 for training; sample at any "
                f"temperature afterwards to show what the model learned."
            )
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0 (0 switches the KL penalty off), got {self.kl_coef}")
        if self.num_minibatches < 1 or self.batch_size % self.num_minibatches:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_minibatches ({self.num_minibatches})")
        if self.gen_len < 1:
            raise ValueError(f"gen_len must be >= 1, got {self.gen_len}")


# --------------------------------------------------------------------------------------------- the policy
class TransformerWithValueHead(nn.Module):
    """The policy: a TransformerBridge, plus a value head (Linear -> ReLU -> Linear to 1) that reads the
    final residual stream at `VALUE_HOOK` through a forward hook, so one forward pass gives both."""

    def __init__(self, base: Any) -> None:
        super().__init__()
        self.base = base
        d_model = base.cfg.d_model
        self.value_head = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, 1))

    def forward(self, tokens: Int[Tensor, "batch seq"]) -> tuple[Float[Tensor, "batch seq d_vocab"], Float[Tensor, "batch seq"]]:
        # EXERCISE: run self.base with a hook at VALUE_HOOK that stores the residual stream; apply value_head to it
        stored = {}

        def store_resid(resid: Float[Tensor, "batch seq d_model"], hook: Any) -> None:
            stored["resid"] = resid

        logits = self.base.run_with_hooks(tokens, fwd_hooks=[(VALUE_HOOK, store_resid)])
        values = self.value_head(stored["resid"]).squeeze(-1)
        return logits, values
        # END EXERCISE


@torch.no_grad()
def sample_completions(
    base: Any,
    prompt_tokens: Int[Tensor, "batch prompt"],
    gen_len: int,
    cfg: SamplingConfig = SamplingConfig(temperature=1.0),
    generator: torch.Generator | None = None,
) -> Int[Tensor, "batch prompt+gen"]:
    """Append gen_len tokens to each prompt, one at a time: logits of the last position, then section 1.1's
    `sample_next_token` (temperature / top-k / top-p live there). No KV cache: the sequences are short."""
    # EXERCISE: loop gen_len times: logits = base(tokens)[:, -1]; next = sample_next_token(tokens, logits, cfg, generator); append
    tokens = prompt_tokens
    for _ in range(gen_len):
        logits = base(tokens)[:, -1]
        next_token = sample_next_token(tokens, logits, cfg, generator)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
    return tokens
    # END EXERCISE


def token_logprobs(
    logits: Float[Tensor, "batch seq d_vocab"], tokens: Int[Tensor, "batch seq"], prefix_len: int
) -> Float[Tensor, "batch gen"]:
    """log pi(token_t | tokens_<t) for every generated token t >= prefix_len. The logits at position t - 1
    predict token t, so the generated tokens are scored by logits[:, prefix_len - 1 : -1]."""
    # EXERCISE: log_softmax of logits[:, prefix_len - 1 : -1], gathered at tokens[:, prefix_len:]
    logprobs = logits[:, prefix_len - 1 : -1].log_softmax(dim=-1)
    return logprobs.gather(-1, tokens[:, prefix_len:, None]).squeeze(-1)
    # END EXERCISE


def normalize_rewards(rewards: Float[Tensor, "batch"], eps: float = 1e-5) -> Float[Tensor, "batch"]:
    """Zero mean, unit standard deviation over the batch: PPO's step size then does not depend on the reward's scale."""
    # EXERCISE: (rewards - mean) / (std + eps)
    return (rewards - rewards.mean()) / (rewards.std() + eps)
    # END EXERCISE


def per_token_rewards(
    rewards: Float[Tensor, "batch"],
    logprobs: Float[Tensor, "batch gen"],
    ref_logprobs: Float[Tensor, "batch gen"],
    kl_coef: float,
) -> Float[Tensor, "batch gen"]:
    """The reward PPO sees for each generated token: -kl_coef * (log pi - log pi_ref) at every token (a
    per-token estimate of KL(pi || pi_ref)), plus the sequence's reward on the last token."""
    # EXERCISE: KL penalty at every token; add the sequence reward at the last position
    token_rewards = -kl_coef * (logprobs - ref_logprobs)
    token_rewards[:, -1] += rewards
    return token_rewards
    # END EXERCISE


def token_advantages(
    values: Float[Tensor, "batch gen"], token_rewards: Float[Tensor, "batch gen"], gamma: float, gae_lambda: float
) -> Float[Tensor, "batch gen"]:
    """GAE over the generated tokens with section 2.3's `compute_advantages`: each completion is one episode
    whose state is the text so far and whose action is the next token; it terminates after the last token."""
    batch, gen = values.shape
    terminated = torch.zeros(gen, batch, dtype=torch.bool, device=values.device)
    terminated[-1] = True
    advantages = compute_advantages(
        next_value=torch.zeros(batch, device=values.device),
        rewards=einops.rearrange(token_rewards, "b t -> t b"),
        values=einops.rearrange(values, "b t -> t b"),
        terminated=terminated,
        truncated=torch.zeros_like(terminated),
        gamma=gamma,
        gae_lambda=gae_lambda,
    )
    return einops.rearrange(advantages, "t b -> b t")


@dataclass
class RLHFBatch:
    """One phase's completions and everything computed from them without gradients."""

    tokens: Int[Tensor, "batch seq"]
    logprobs: Float[Tensor, "batch gen"]
    values: Float[Tensor, "batch gen"]
    advantages: Float[Tensor, "batch gen"]
    returns: Float[Tensor, "batch gen"]

    def __getitem__(self, idx: Tensor) -> "RLHFBatch":
        return RLHFBatch(self.tokens[idx], self.logprobs[idx], self.values[idx], self.advantages[idx], self.returns[idx])


def rlhf_loss(
    model: TransformerWithValueHead, batch: RLHFBatch, prefix_len: int, args: RLHFArgs
) -> tuple[Float[Tensor, ""], dict[str, float]]:
    """PPO on the generated tokens: run the model on the minibatch's full sequences, score only the generated
    tokens (and the values of the states before them), then section 2.3's `policy_loss` and `value_loss` over
    all (completion, token) pairs. Returns vf_coef-weighted total loss and diagnostics."""
    # EXERCISE: forward; new log-probs and values of the generated positions; policy_loss + vf_coef * value_loss on flattened tensors
    logits, values = model(batch.tokens)
    new_logprobs = token_logprobs(logits, batch.tokens, prefix_len)
    new_values = values[:, prefix_len - 1 : -1]
    pg_loss = policy_loss(new_logprobs.flatten(), batch.logprobs.flatten(), batch.advantages.flatten(), args.clip_coef)
    v_loss = value_loss(new_values.flatten(), batch.values.flatten(), batch.returns.flatten(), args.clip_coef)
    loss = pg_loss + args.vf_coef * v_loss
    # END EXERCISE
    approx_kl, clipfrac = kl_and_clipfrac(new_logprobs.flatten(), batch.logprobs.flatten(), args.clip_coef)
    return loss, dict(policy_loss=pg_loss.item(), value_loss=v_loss.item(), approx_kl=approx_kl, clipfrac=clipfrac)


# --------------------------------------------------------------------------------------------- the loop
RewardFn = Callable[[Int[Tensor, "batch gen"]], Float[Tensor, "batch"]]


@dataclass
class RLHFResult:
    history: list[dict[str, float]] = field(default_factory=list)  # per phase: reward, KL, losses
    samples: list[tuple[int, list[str]]] = field(default_factory=list)  # (phase, a few decoded completions)


@torch.no_grad()
def make_batch(model: TransformerWithValueHead, ref: Any, reward_fn: RewardFn, prompt_tokens: Tensor,
               args: RLHFArgs, generator: torch.Generator | None) -> tuple[RLHFBatch, dict[str, float]]:
    """Sample completions, score them, and compute per-token rewards, advantages and returns (= advantages + values).
    Returns the batch and its stats: the mean raw reward and the mean KL(policy || reference) per completion."""
    prefix_len = prompt_tokens.shape[1]
    tokens = sample_completions(model.base, prompt_tokens, args.gen_len, SamplingConfig(temperature=args.temperature), generator)
    # EXERCISE: reward the generated part; policy log-probs and values (states before each generated token), reference log-probs; normalise (if args.normalize_reward); per-token rewards; advantages
    raw_rewards = reward_fn(tokens[:, prefix_len:]).float()
    logits, values = model(tokens)
    logprobs = token_logprobs(logits, tokens, prefix_len)
    ref_logprobs = token_logprobs(ref(tokens), tokens, prefix_len)
    values = values[:, prefix_len - 1 : -1]
    rewards = normalize_rewards(raw_rewards) if args.normalize_reward else raw_rewards
    token_rewards = per_token_rewards(rewards, logprobs, ref_logprobs, args.kl_coef)
    advantages = token_advantages(values, token_rewards, args.gamma, args.gae_lambda)
    # END EXERCISE
    kl = (logprobs - ref_logprobs).sum(-1).mean().item()  # KL(pi || pi_ref) of whole completions, estimated on samples
    return RLHFBatch(tokens, logprobs, values, advantages, advantages + values), dict(reward=raw_rewards.mean().item(), kl=kl)


def train_rlhf(
    model: TransformerWithValueHead,
    ref: Any,
    reward_fn: RewardFn,
    args: RLHFArgs,
    run: Any = None,
    progress: bool = True,
    sample_every: int = 10,
) -> RLHFResult:
    """PPO on a language model. `ref` is a frozen copy of the starting model (a bridge); `run` a wandb run or None."""
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    tokenizer = model.base.tokenizer
    device = next(model.parameters()).device
    prompt = torch.tensor([tokenizer(args.prompt)["input_ids"]] * args.batch_size, device=device)
    prefix_len = prompt.shape[1]
    model.eval()  # no dropout: the PPO ratio must be exactly 1 before the first step
    ref.eval()
    optimizer = torch.optim.Adam([
        {"params": model.base.parameters(), "lr": args.base_lr},
        {"params": model.value_head.parameters(), "lr": args.head_lr},
    ])
    result = RLHFResult()
    for phase in (bar := tqdm(range(args.total_phases), desc="RLHF", disable=not progress)):
        # EXERCISE: fresh make_batch every phase; update_epochs passes over shuffled minibatches of rlhf_loss; clip grads; step
        batch, stats = make_batch(model, ref, reward_fn, prompt, args, generator)
        require_finite(stats["reward"], "the mean reward of the sampled completions", f"phase {phase}")
        for _ in range(args.update_epochs):
            for mb in torch.randperm(args.batch_size, generator=generator, device=device).tensor_split(args.num_minibatches):
                loss, loss_stats = rlhf_loss(model, batch[mb], prefix_len, args)
                require_finite(loss, "the PPO loss", f"phase {phase}")
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
        # END EXERCISE
        stats.update(loss_stats)
        result.history.append(stats)
        if run is not None:
            run.log(stats, step=phase)
        if phase % sample_every == 0 or phase == args.total_phases - 1:
            result.samples.append((phase, tokenizer.batch_decode(batch.tokens[:3], skip_special_tokens=True)))
        bar.set_postfix(reward=f"{stats['reward']:.2f}", kl=f"{stats['kl']:.2f}")
    return result


# --------------------------------------------------------------------------------------------- rewards
def target_token_reward(token_id: int) -> RewardFn:
    """The programmatic reward: how many times `token_id` appears in the completion."""

    def reward(completions: Int[Tensor, "batch gen"]) -> Float[Tensor, "batch"]:
        return (completions == token_id).float().sum(-1)

    return reward


# --------------------------------------------------------------------------------------------- a learned reward
# The "human" here is a rule: a completion with more full stops is preferred. Knowing the true preference lets us
# measure how well a reward model learned it, and whether optimising the model also optimises the rule.
@dataclass
class PreferencePairs:
    """n comparisons: chosen[i] was preferred to rejected[i]. Completions are right-padded with `pad_id`;
    the *_len tensors hold each one's number of real tokens."""

    chosen: Int[Tensor, "n seq"]
    chosen_len: Int[Tensor, "n"]
    rejected: Int[Tensor, "n seq"]
    rejected_len: Int[Tensor, "n"]

    def __len__(self) -> int:
        return len(self.chosen)

    def __getitem__(self, idx: Any) -> "PreferencePairs":
        return PreferencePairs(self.chosen[idx], self.chosen_len[idx], self.rejected[idx], self.rejected_len[idx])


@torch.no_grad()
def preference_pairs(
    base: Any, rule: RewardFn, n_pairs: int, gen_len: int, prompt: str = "The", pad_id: int = 0,
    min_len: int | None = None, seed: int = 0, chunk: int = 128,
) -> PreferencePairs:
    """Sample 2 * n_pairs completions from the base model, cut each to a random length in [min_len, gen_len]
    (so the reward model must find the last real token), pad, and pair them up. The rule scores the real
    tokens; the higher-scoring completion is `chosen`; ties are dropped, so slightly fewer than n_pairs remain."""
    g = torch.Generator().manual_seed(seed)
    min_len = min_len or gen_len // 2
    prompt_tokens = torch.tensor([base.tokenizer(prompt)["input_ids"]])
    samples = torch.cat([
        sample_completions(base, prompt_tokens.expand(min(chunk, 2 * n_pairs - i), -1), gen_len, generator=g)[:, prompt_tokens.shape[1]:]
        for i in range(0, 2 * n_pairs, chunk)
    ])
    lengths = torch.randint(min_len, gen_len + 1, (2 * n_pairs,), generator=g)
    real = torch.arange(gen_len)[None, :] < lengths[:, None]
    samples = torch.where(real, samples, pad_id)
    scores = torch.stack([rule(s[None, :n])[0] for s, n in zip(samples, lengths, strict=True)])
    a, b = torch.arange(0, 2 * n_pairs, 2), torch.arange(1, 2 * n_pairs, 2)
    keep = scores[a] != scores[b]
    a, b = a[keep], b[keep]
    a_wins = scores[a] > scores[b]
    chosen, rejected = torch.where(a_wins, a, b), torch.where(a_wins, b, a)
    return PreferencePairs(samples[chosen], lengths[chosen], samples[rejected], lengths[rejected])


class RewardModel(nn.Module):
    """A transformer with a scalar head: the reward of a (right-padded) completion is the head applied to the
    final residual stream at its LAST REAL token, the only position that has read the whole completion."""

    def __init__(self, base: Any) -> None:
        super().__init__()
        self.base = base
        self.head = nn.Linear(base.cfg.d_model, 1)

    def forward(self, tokens: Int[Tensor, "batch seq"], lengths: Int[Tensor, "batch"] | None = None) -> Float[Tensor, "batch"]:
        """lengths: the number of real tokens in each row (None: no padding, every row is full)."""
        if lengths is None:
            lengths = torch.full((tokens.shape[0],), tokens.shape[1], device=tokens.device)
        # EXERCISE: store the residual stream at VALUE_HOOK with a hook; pick each row's position lengths - 1; apply the head
        stored = {}

        def store_resid(resid: Float[Tensor, "batch seq d_model"], hook: Any) -> None:
            stored["resid"] = resid

        self.base.run_with_hooks(tokens, fwd_hooks=[(VALUE_HOOK, store_resid)])
        last = stored["resid"][torch.arange(tokens.shape[0], device=tokens.device), lengths - 1]
        return self.head(last).squeeze(-1)
        # END EXERCISE


def bradley_terry_loss(r_chosen: Float[Tensor, "batch"], r_rejected: Float[Tensor, "batch"]) -> Float[Tensor, ""]:
    """-log P(chosen preferred) under the Bradley-Terry model P = sigmoid(r_chosen - r_rejected), averaged
    over the batch. Written with logsigmoid, which stays finite when the difference is very negative."""
    # EXERCISE: mean of -logsigmoid(r_chosen - r_rejected)
    return -F.logsigmoid(r_chosen - r_rejected).mean()
    # END EXERCISE


@torch.no_grad()
def pairwise_accuracy(reward_model: RewardModel, pairs: PreferencePairs, chunk: int = 256) -> float:
    """The fraction of pairs in which the reward model scores the chosen completion strictly higher."""
    # EXERCISE: score chosen and rejected (in chunks, with their lengths); fraction with r_chosen > r_rejected
    correct = 0
    for i in range(0, len(pairs), chunk):
        p = pairs[i : i + chunk]
        correct += (reward_model(p.chosen, p.chosen_len) > reward_model(p.rejected, p.rejected_len)).sum().item()
    return correct / len(pairs)
    # END EXERCISE


@dataclass
class RewardModelArgs:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3  # one rate for the small LM and the head; try 1e-5 for GPT-2 small
    weight_decay: float = 0.01
    seed: int = 0


def train_reward_model(
    reward_model: RewardModel, train: PreferencePairs, test: PreferencePairs, args: RewardModelArgs | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Fit the whole reward model (transformer and head) to the preference pairs with the Bradley-Terry loss.
    Returns the loss of every step and the held-out pairwise accuracy after every epoch."""
    args = args or RewardModelArgs()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(reward_model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    history: dict[str, list[float]] = dict(loss=[], test_accuracy=[])
    for _ in tqdm(range(args.epochs), desc="reward model", disable=not progress):
        # EXERCISE: shuffled minibatches of pairs: reward both sides, bradley_terry_loss, step; then record pairwise_accuracy on test
        for idx in torch.randperm(len(train), generator=generator).split(args.batch_size):
            mb = train[idx]
            loss = bradley_terry_loss(reward_model(mb.chosen, mb.chosen_len), reward_model(mb.rejected, mb.rejected_len))
            require_finite(loss, "the Bradley-Terry loss", "while training the reward model")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history["loss"].append(loss.item())
        history["test_accuracy"].append(pairwise_accuracy(reward_model, test))
        # END EXERCISE
    return history


def learned_reward(reward_model: RewardModel) -> RewardFn:
    """Reward = the reward model's score of the completion alone (no padding: every completion is full length)."""

    @torch.no_grad()
    def reward(completions: Int[Tensor, "batch gen"]) -> Float[Tensor, "batch"]:
        return reward_model(completions)

    return reward


# --------------------------------------------------------------------------------------------- GRPO
@dataclass
class GRPOArgs:
    seed: int = 0
    prompts: tuple[str, ...] = ("The", "A", "In", "It")  # one group of completions per prompt; same token length
    group_size: int = 16  # G completions per prompt
    gen_len: int = 24
    total_phases: int = 200
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2e-5
    max_grad_norm: float = 1.0
    kl_coef: float = 0.04  # beta on the k3 estimate of KL(pi || pi_ref), a loss term rather than a reward
    clip_coef: float = 0.2
    eps: float = 1e-4  # keeps a group whose completions all scored the same from dividing by zero

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2: a group of 1 has no baseline to compare with, got {self.group_size}")
        if (len(self.prompts) * self.group_size) % self.num_minibatches:
            raise ValueError(f"len(prompts) * group_size ({len(self.prompts) * self.group_size}) must be a multiple "
                             f"of num_minibatches ({self.num_minibatches})")


def group_advantages(rewards: Float[Tensor, "batch"], groups: Int[Tensor, "batch"], eps: float = 1e-4) -> Float[Tensor, "batch"]:
    """GRPO's advantage of each completion: (r - mean of its group) / (std of its group + eps), where a group is
    the completions of one prompt (same value in `groups`). Groups may have different sizes (>= 2); the std is
    torch's default, the unbiased one (divides by n - 1)."""
    # EXERCISE: for each group id, normalise that group's rewards by the group's own mean and std (+ eps)
    advantages = torch.empty_like(rewards)
    for g in groups.unique():
        in_group = groups == g
        r = rewards[in_group]
        advantages[in_group] = (r - r.mean()) / (r.std() + eps)
    return advantages
    # END EXERCISE


@dataclass
class GRPOBatch:
    tokens: Int[Tensor, "batch seq"]
    logprobs: Float[Tensor, "batch gen"]  # of the policy that sampled: the PPO ratio's denominator
    ref_logprobs: Float[Tensor, "batch gen"]  # of the frozen reference: the KL term
    advantages: Float[Tensor, "batch"]  # one per completion, shared by all its tokens

    def __getitem__(self, idx: Tensor) -> "GRPOBatch":
        return GRPOBatch(self.tokens[idx], self.logprobs[idx], self.ref_logprobs[idx], self.advantages[idx])


def grpo_loss(policy: Any, batch: GRPOBatch, prefix_len: int, args: GRPOArgs) -> tuple[Float[Tensor, ""], dict[str, float]]:
    """PPO's clipped surrogate on every generated token, each with its completion's advantage (not normalised
    again), plus kl_coef times the mean over tokens of k3 = exp(ref - logp) - (ref - logp) - 1, an estimate of
    KL(pi || pi_ref) that is >= 0 for every token. No value head, no value loss."""
    # EXERCISE: new log-probs; policy_loss(..., norm_adv=False) with advantages broadcast to every token; + kl_coef * mean k3
    new_logprobs = token_logprobs(policy(batch.tokens), batch.tokens, prefix_len)
    advantages = batch.advantages[:, None].expand_as(new_logprobs)
    pg_loss = policy_loss(new_logprobs.flatten(), batch.logprobs.flatten(), advantages.flatten(), args.clip_coef, norm_adv=False)
    log_ratio_ref = batch.ref_logprobs - new_logprobs
    kl = (log_ratio_ref.exp() - log_ratio_ref - 1).mean()
    loss = pg_loss + args.kl_coef * kl
    # END EXERCISE
    return loss, dict(policy_loss=pg_loss.item(), kl_term=kl.item())


def train_grpo(policy: Any, ref: Any, reward_fn: RewardFn, args: GRPOArgs, progress: bool = True) -> RLHFResult:
    """GRPO on a language model: `policy` is a bare bridge (no value head), `ref` a frozen copy of it."""
    torch.manual_seed(args.seed)
    device = next(policy.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    tokenizer = policy.tokenizer
    prompt_ids = [tokenizer(p)["input_ids"] for p in args.prompts]
    if len({len(ids) for ids in prompt_ids}) != 1:
        raise ValueError(f"the prompts {args.prompts} tokenise to different lengths {[len(i) for i in prompt_ids]}; "
                         "use prompts of one length, so that one prefix_len fits all")
    prompt = torch.tensor(prompt_ids, device=device).repeat_interleave(args.group_size, dim=0)
    groups = torch.arange(len(args.prompts), device=device).repeat_interleave(args.group_size)
    prefix_len, batch_size = prompt.shape[1], prompt.shape[0]
    policy.eval()
    ref.eval()
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    result = RLHFResult()
    for phase in (bar := tqdm(range(args.total_phases), desc="GRPO", disable=not progress)):
        # EXERCISE: sample; score; group_advantages; old and reference log-probs (no grad); update_epochs x minibatches of grpo_loss
        with torch.no_grad():
            tokens = sample_completions(policy, prompt, args.gen_len, generator=generator)
            raw_rewards = reward_fn(tokens[:, prefix_len:]).float()
            require_finite(raw_rewards.mean(), "the mean reward of the sampled completions", f"phase {phase}")
            advantages = group_advantages(raw_rewards, groups, args.eps)
            logprobs = token_logprobs(policy(tokens), tokens, prefix_len)
            ref_logprobs = token_logprobs(ref(tokens), tokens, prefix_len)
        batch = GRPOBatch(tokens, logprobs, ref_logprobs, advantages)
        for _ in range(args.update_epochs):
            for mb in torch.randperm(batch_size, generator=generator, device=device).tensor_split(args.num_minibatches):
                loss, loss_stats = grpo_loss(policy, batch[mb], prefix_len, args)
                require_finite(loss, "the GRPO loss", f"phase {phase}")
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), args.max_grad_norm)
                optimizer.step()
        # END EXERCISE
        stats = dict(reward=raw_rewards.mean().item(), kl=(logprobs - ref_logprobs).sum(-1).mean().item(), **loss_stats)
        result.history.append(stats)
        if phase % 10 == 0 or phase == args.total_phases - 1:
            result.samples.append((phase, tokenizer.batch_decode(tokens[:3], skip_special_tokens=True)))
        bar.set_postfix(reward=f"{stats['reward']:.2f}", kl=f"{stats['kl']:.2f}")
    return result


# --------------------------------------------------------------------------------------------- a real classifier
SENTIMENT_MODEL = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"


def load_sentiment_classifier(device: torch.device | str = "cpu") -> Loaded:
    """Online: the SST-2 sentiment classifier, as (model, tokenizer). Offline: nothing (value None); the
    rule-based reward stays."""
    if not use_real_resources():
        return Loaded(None, False, f"no {SENTIMENT_MODEL} offline: the rule-based reward (count of '.') stays")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(SENTIMENT_MODEL).eval().to(device)
    tokenizer = AutoTokenizer.from_pretrained(SENTIMENT_MODEL)
    return Loaded((model, tokenizer), True, f"{SENTIMENT_MODEL} (a DistilBERT sentiment classifier, 67M parameters)")


@torch.no_grad()
def classifier_reward(model: Any, tokenizer: Any, texts: list[str], max_length: int = 128) -> Float[Tensor, "batch"]:
    """The classifier's logit for the POSITIVE class, for each text of a batch of strings."""
    # EXERCISE: tokenize the batch with padding, truncation and the attention mask; forward; the POSITIVE column of the logits
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    logits = model(**enc.to(model.device)).logits
    return logits[:, model.config.label2id["POSITIVE"]]
    # END EXERCISE


def text_reward(score_texts: Callable[[list[str]], Float[Tensor, "batch"]], tokenizer: Any) -> RewardFn:
    """A RewardFn from a function of strings: decode the completions with the policy's tokenizer, then score."""

    def reward(completions: Int[Tensor, "batch gen"]) -> Float[Tensor, "batch"]:
        return score_texts(tokenizer.batch_decode(completions, skip_special_tokens=True)).to(completions.device)

    return reward


def train_base(out: Path = BASE_DIR, steps: int = 500, batch_size: int = 16, seq_len: int = 64, seed: int = 0) -> None:
    """Rebuild the shipped base LM: a 2-layer GPT-2 on the offline corpus and tokenizer, saved in fp16 (~2 MB)."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from curriculum.utils.offline import offline_corpus, offline_gpt2_config, offline_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(offline_tokenizer_dir())
    ids = torch.tensor(tok(offline_corpus())["input_ids"])
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(offline_gpt2_config(len(tok), n_layer=2, n_embd=128, n_head=4, n_positions=128,
                                                eos_token_id=tok.eos_token_id))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    for _ in (bar := tqdm(range(steps), desc="base LM")):
        starts = torch.randint(0, len(ids) - seq_len - 1, (batch_size,), generator=gen)
        batch = torch.stack([ids[s : s + seq_len] for s in starts.tolist()])
        loss = model(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval().half().save_pretrained(out)
    tok.save_pretrained(out)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--train-base", action="store_true", help=f"retrain the small offline LM into {BASE_DIR}")
    ap.add_argument("--steps", type=int, default=500)
    a = ap.parse_args()
    if a.train_base:
        train_base(steps=a.steps)
