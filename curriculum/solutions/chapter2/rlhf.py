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
    rewards                  target-token count; a learned reward model (linear probe on a frozen LM)

The base model's shipped checkpoint is rebuilt with `python -m curriculum.solutions.chapter2.rlhf --train-base`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import einops
import numpy as np
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


# A tiny sentiment lexicon covering both corpora (technical docs offline, Shakespeare online). Labels from a word
# list ("distant supervision") are crude, which is the point: we know exactly what the reward model was taught.
POSITIVE = set("""good great best better useful easy simple fast safe correct success successful valid helpful
clear efficient recommended love loved sweet fair joy happy gentle noble kind honest glad blessed dear true
grace hope peace merry""".split())
NEGATIVE = set("""bad error errors fail fails failed failure invalid wrong broken unsafe slow deprecated
undefined warning warnings problem problems impossible hate death dead foul grief woe kill curse villain false
poor sorrow fear traitor die unable""".split())


def lexicon_sentiment(text: str) -> int:
    """+1 / -1 by the majority of lexicon words in the text, 0 if tied or none."""
    words = re.findall(r"[a-z]+", text.lower())
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return int(np.sign(score))


def sentiment_dataset(
    text: str, tokenizer: Any, n_tokens: int, max_examples: int = 2000, seed: int = 0
) -> tuple[Int[Tensor, "n n_tokens"], Int[Tensor, "n"]]:
    """Windows of n_tokens tokens of the corpus (the length of a completion), labelled 1 (positive) or 0
    (negative) by the lexicon on their decoded text; unlabelled windows dropped, the classes balanced."""
    ids = torch.tensor(tokenizer(text)["input_ids"])
    windows = ids[: len(ids) // n_tokens * n_tokens].reshape(-1, n_tokens)
    labels = torch.tensor([lexicon_sentiment(tokenizer.decode(w)) for w in windows])
    pos, neg = torch.nonzero(labels > 0)[:, 0], torch.nonzero(labels < 0)[:, 0]
    n = min(len(pos), len(neg), max_examples // 2)
    g = torch.Generator().manual_seed(seed)
    keep = torch.cat([pos[torch.randperm(len(pos), generator=g)[:n]], neg[torch.randperm(len(neg), generator=g)[:n]]])
    keep = keep[torch.randperm(len(keep), generator=g)]
    return windows[keep], (labels[keep] > 0).long()


class RewardModel(nn.Module):
    """A frozen LM and a linear head on its mean-pooled final residual stream: logit of "positive".

    The usual RLHF reward model is the same idea at scale: a transformer with a scalar head, trained on
    human labels (or preferences) instead of a word list."""

    def __init__(self, base: Any) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.head = nn.Linear(base.cfg.d_model, 1)

    @torch.no_grad()
    def features(self, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch d_model"]:
        _, cache = self.base.run_with_cache(tokens, names_filter=VALUE_HOOK)
        return cache[VALUE_HOOK].mean(dim=1)

    def forward(self, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch"]:
        return self.head(self.features(tokens)).squeeze(-1)


def train_reward_model(
    reward_model: RewardModel, tokens: Int[Tensor, "n seq"], labels: Int[Tensor, "n"], epochs: int = 300,
    lr: float = 1e-2, test_fraction: float = 0.2, chunk: int = 256,
) -> dict[str, float]:
    """Fit the linear head by logistic regression (the LM stays frozen, so the features are computed once).
    The first test_fraction of the examples is held out. Returns train and test accuracy."""
    device = next(reward_model.head.parameters()).device
    feats = torch.cat([reward_model.features(c.to(device)) for c in tqdm(tokens.split(chunk), desc="features")])
    y = labels.float().to(device)
    n_test = int(len(y) * test_fraction)
    train_x, train_y, test_x, test_y = feats[n_test:], y[n_test:], feats[:n_test], y[:n_test]
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    opt = torch.optim.Adam(reward_model.head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(epochs):  # on standardised features; folded into the head's weights afterwards
        loss = F.binary_cross_entropy_with_logits(reward_model.head((train_x - mean) / std).squeeze(-1), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        head = reward_model.head
        head.weight.div_(std)
        head.bias.sub_((head.weight * mean).sum())

        def accuracy(x: Tensor, t: Tensor) -> float:
            return ((head(x).squeeze(-1) > 0).float() == t).float().mean().item()

        return dict(train_accuracy=accuracy(train_x, train_y), test_accuracy=accuracy(test_x, test_y))


def learned_reward(reward_model: RewardModel) -> RewardFn:
    """Reward = the reward model's logit for "positive", on the completion alone."""

    @torch.no_grad()
    def reward(completions: Int[Tensor, "batch gen"]) -> Float[Tensor, "batch"]:
        return reward_model(completions)

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
