"""Checks for section 2.4 (RLHF). They run on the shipped small LM (data/rlhf/base), so they are fast and
offline, and compare against Hugging Face (greedy `generate`, logits), TransformerLens' activation cache,
torch's cross-entropy, and the PPO formulas written out in curriculum/checks/chapter2/ppo.py."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from curriculum.checks.chapter2.ppo import _surrogate, _vloss
from curriculum.checking import assert_close, assert_equal, assert_scalar_close, assert_shape, check, fail


@functools.lru_cache(maxsize=1)
def _base():
    from curriculum.solutions.chapter2.rlhf import load_offline_base

    torch.manual_seed(0)
    return load_offline_base()


def _tokens(batch: int = 3, seq: int = 9, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, _base().cfg.d_vocab, (batch, seq), generator=g)


@check
def check_transformer_with_value_head(TransformerWithValueHead) -> None:
    from curriculum.solutions.chapter2.rlhf import VALUE_HOOK

    base = _base()
    torch.manual_seed(0)
    if isinstance(TransformerWithValueHead, nn.Module):
        fail("pass the class TransformerWithValueHead itself, not an instance")
    model = TransformerWithValueHead(base)
    if not isinstance(getattr(model, "value_head", None), nn.Module):
        fail("TransformerWithValueHead should have an nn.Module attribute `value_head`")
    tokens = _tokens()
    out = model(tokens)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail("forward should return a tuple (logits, values)")
    logits, values = out
    with torch.no_grad():
        hf_logits = base.original_model(tokens).logits
    assert_close(logits, hf_logits, "logits", atol=1e-4,
                 hint="the policy's logits are the base model's (compared with the underlying Hugging Face model)")
    assert_shape(values, (3, 9), "values", hint="one value per position: squeeze the value head's last axis")
    _, cache = base.run_with_cache(tokens, names_filter=VALUE_HOOK)
    with torch.no_grad():
        expected = model.value_head(cache[VALUE_HOOK]).squeeze(-1)
    assert_close(values, expected, "values", atol=1e-5,
                 hint=f"apply value_head to the residual stream at {VALUE_HOOK!r} (what the unembedding reads), "
                      "stored by a hook in the same forward pass")
    if not values.requires_grad:
        fail("values carry no gradient: do not compute them under torch.no_grad() or detach them")
    values.sum().backward()
    if any(p.grad is None for p in model.value_head.parameters()):
        fail("the value head's parameters get no gradient from the values")
    model.zero_grad()


@check
def check_sample_completions(sample_completions) -> None:
    from curriculum.solutions.chapter1.gpt2 import SamplingConfig

    base = _base()
    prompt = torch.tensor([base.tokenizer("The value of")["input_ids"]] * 2)
    greedy = sample_completions(base, prompt, 6, SamplingConfig(temperature=0.0))
    assert_shape(greedy, (2, prompt.shape[1] + 6), "completions", hint="prompt followed by gen_len new tokens")
    assert_equal(greedy[:, : prompt.shape[1]], prompt, "the prompt part of the completions", hint="append, do not replace")
    with torch.no_grad():
        hf = base.original_model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False,
                                          pad_token_id=base.tokenizer.eos_token_id, attention_mask=torch.ones_like(prompt))
    assert_equal(greedy, hf, "greedy completions vs Hugging Face generate(do_sample=False)",
                 hint="use the logits of the LAST position, base(tokens)[:, -1], to pick each next token")
    runs = [sample_completions(base, prompt, 6, SamplingConfig(temperature=1.0), torch.Generator().manual_seed(s))
            for s in (0, 0, 1)]
    if not torch.equal(runs[0], runs[1]):
        fail("sampling with the same seeded generator gave different completions: pass `generator` to sample_next_token")
    if torch.equal(runs[0], runs[2]) and torch.equal(runs[0], greedy):
        fail("with temperature 1 the completions equal the greedy ones: pass `cfg` to sample_next_token")


@check
def check_token_logprobs(token_logprobs) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, 50, generator=g)
    tokens = torch.randint(0, 50, (3, 10), generator=g)
    got = token_logprobs(logits, tokens, 4)
    expected = -F.cross_entropy(logits[:, 3:-1].transpose(1, 2), tokens[:, 4:], reduction="none")
    assert_shape(got, (3, 6), "log-probs of the generated tokens",
                 hint="one per generated token: tokens[:, prefix_len:] are the 6 generated ones")
    assert_close(got, expected, "log-probs", atol=1e-5,
                 hint="the logits at position t - 1 predict token t: use logits[:, prefix_len - 1 : -1], "
                      "log_softmax over the vocabulary, then gather at tokens[:, prefix_len:]")


@check
def check_normalize_rewards(normalize_rewards) -> None:
    r = torch.tensor([1.0, 2.0, 4.0, 9.0])
    got = normalize_rewards(r)
    got = assert_shape(got, (4,), "normalised rewards")
    unbiased, biased = (r - r.mean()) / (r.std() + 1e-5), (r - r.mean()) / (r.std(unbiased=False) + 1e-5)
    if not (torch.allclose(got, unbiased, atol=1e-4) or torch.allclose(got, biased, atol=1e-4)):
        assert_close(got, unbiased, "normalised rewards", atol=1e-4, hint="(r - mean) / (std + eps)")
    constant = normalize_rewards(torch.full((4,), 3.0))
    if not torch.isfinite(constant).all():
        fail("equal rewards give NaN/inf: add eps to the std")


@check
def check_per_token_rewards(per_token_rewards) -> None:
    # Hand-computed: kl_coef 0.5; per-token penalty -0.5 * (logp - ref_logp); the reward joins the LAST token.
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -0.2, -3.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -1.5], [-0.1, -1.2, -1.0]])
    rewards = torch.tensor([1.0, -2.0])
    got = per_token_rewards(rewards, logprobs.clone(), ref_logprobs.clone(), 0.5)
    expected = torch.tensor([[-0.25, 0.0, -0.5 + 1.0], [0.0, -0.5, 1.0 - 2.0]])
    got = assert_shape(got, (2, 3), "per-token rewards")
    if torch.allclose(got, expected - torch.tensor([[0, 0, 1.0], [0, 0, -2.0]]) + torch.tensor([[1.0, 0, 0], [-2.0, 0, 0]])):
        fail("the sequence reward belongs to the LAST generated token (the episode's end), not the first")
    if torch.allclose(got[:, :2], -expected[:, :2]):
        fail("the KL penalty has the wrong sign: reward -= kl_coef * (logp - ref_logp)")
    assert_close(got, expected, "per-token rewards", atol=1e-5,
                 hint="-kl_coef * (logprobs - ref_logprobs) at every token, plus rewards[:, None] on the last one")
    zero = per_token_rewards(rewards, logprobs, ref_logprobs, 0.0)
    assert_close(zero, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -2.0]]), "per-token rewards with kl_coef=0")


@check
def check_rlhf_loss(rlhf_loss) -> None:
    from curriculum.solutions.chapter2 import rlhf as ref

    base = _base()
    torch.manual_seed(0)
    model = ref.TransformerWithValueHead(base)
    args = ref.RLHFArgs(batch_size=8, gen_len=5, num_minibatches=1, vf_coef=0.3)
    prompt = torch.tensor([base.tokenizer("The")["input_ids"]] * 8)
    gen = torch.Generator().manual_seed(0)
    batch, _ = ref.make_batch(model, base, ref.target_token_reward(14), prompt, args, gen)
    prefix_len = prompt.shape[1]
    # move the value head a little so the new values differ from the batch's old ones
    with torch.no_grad():
        for p in model.value_head.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # ...and make the old log-probs differ from the current ones, as after a few updates
    batch.logprobs = batch.logprobs + 0.3 * torch.randn(batch.logprobs.shape, generator=gen)
    out = rlhf_loss(model, batch, prefix_len, args)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail("rlhf_loss should return (loss, stats)")
    loss, stats = out
    with torch.no_grad():
        logits, values = model(batch.tokens)
        new_lp = ref.token_logprobs(logits, batch.tokens, prefix_len).flatten()
        new_v = values[:, prefix_len - 1 : -1].flatten()
        pg = _surrogate(new_lp, batch.logprobs.flatten(), batch.advantages.flatten(), args.clip_coef, True)
        vl = _vloss(new_v, batch.values.flatten(), batch.returns.flatten(), args.clip_coef, True)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        fail("the loss should be a tensor with gradients (do not compute it under no_grad)")
    if not isinstance(stats, dict):
        fail("stats should be a dict")
    shifted_v = values[:, prefix_len:].flatten() if values.shape[1] > prefix_len else None
    if shifted_v is not None and len(shifted_v) == len(new_v):
        bad = pg + args.vf_coef * _vloss(shifted_v, batch.values.flatten(), batch.returns.flatten(), args.clip_coef, True)
        if abs(loss.item() - bad.item()) < 1e-5 and abs(bad.item() - (pg + args.vf_coef * vl).item()) > 1e-5:
            fail("values are taken at the wrong positions: V(state before token t) is values[:, prefix_len - 1 : -1]")
    if abs(loss.item() - (pg + vl).item()) < 1e-5:
        fail("the value loss is not weighted: loss = policy_loss + vf_coef * value_loss")
    if abs(loss.item() - pg.item()) < 1e-5:
        fail("the value loss is missing from the total loss")
    assert_scalar_close(loss, (pg + args.vf_coef * vl).item(), "RLHF loss", rel=1e-4,
                        hint="policy_loss(new log-probs of generated tokens, old, advantages) + vf_coef * "
                             "value_loss(values[:, prefix_len - 1 : -1], old values, returns), all flattened")


@functools.lru_cache(maxsize=1)
def _reference():
    """A frozen reference that differs from the policy (as after some training), so the KL term matters."""
    from curriculum.solutions.chapter2.rlhf import load_offline_base

    ref_model = load_offline_base()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ref_model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
            p.requires_grad_(False)
    return ref_model


@check
def check_make_batch(make_batch) -> None:
    from curriculum.solutions.chapter2 import rlhf as ref

    base = _base()
    results = {}
    for who, fn in (("yours", make_batch), ("reference", ref.make_batch)):
        torch.manual_seed(0)
        model = ref.TransformerWithValueHead(base)
        args = ref.RLHFArgs(batch_size=6, gen_len=5, num_minibatches=1, kl_coef=0.3, gamma=0.9)
        prompt = torch.tensor([base.tokenizer("A list. The")["input_ids"]] * 6)
        out = fn(model, _reference(), ref.target_token_reward(base.tokenizer(".")["input_ids"][-1]), prompt, args,
                 torch.Generator().manual_seed(0))
        results[who] = out
    if not (isinstance(results["yours"], tuple) and len(results["yours"]) == 2):
        fail("make_batch should return (RLHFBatch, stats)")
    (got, got_stats), (expected, expected_stats) = results["yours"], results["reference"]
    assert_equal(got.tokens, expected.tokens, "sampled tokens",
                 hint="sample with sample_completions(model.base, prompt, args.gen_len, ..., generator) before anything else")
    assert_close(got.logprobs, expected.logprobs, "log-probs", atol=1e-4,
                 hint="the POLICY's log-probs of the generated tokens (token_logprobs(logits, tokens, prefix_len))")
    assert_close(got.values, expected.values, "values", atol=1e-4,
                 hint="values of the states before each generated token: values[:, prefix_len - 1 : -1]")
    assert_scalar_close(got_stats.get("reward", float("nan")), expected_stats["reward"], "stats['reward']",
                        hint="reward_fn scores the generated tokens only (tokens[:, prefix_len:]); report the raw mean")
    assert_close(got.advantages, expected.advantages, "advantages", atol=1e-4,
                 hint="normalise the rewards (if args.normalize_reward), add the per-token KL penalty against the "
                      "REFERENCE model's log-probs, then token_advantages(values, token_rewards, gamma, gae_lambda)")
    assert_close(got.returns, expected.returns, "returns", atol=1e-4, hint="returns = advantages + values")


# ------------------------------------------------------------------------------------------ the training loop
_QUICK_RLHF = dict(batch_size=16, gen_len=8, total_phases=10, update_epochs=2, num_minibatches=1, base_lr=5e-4,
                   head_lr=1e-3, kl_coef=0.2)


def _dot() -> int:
    return _base().tokenizer(".")["input_ids"][-1]


def _reward_rise(history, what: str, min_rise: float = 0.5) -> None:
    if not isinstance(history, list) or not history or not all(isinstance(h, dict) and "reward" in h for h in history):
        fail(f"{what} should return an RLHFResult whose history holds one dict with a 'reward' per phase")
    rewards = [h["reward"] for h in history]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    if not last > first + min_rise:
        fail(f"the mean reward did not rise: {first:.2f} over the first 3 phases, {last:.2f} over the last 3 "
             f"(all: {[round(r, 2) for r in rewards]}). Check that each phase samples a fresh batch, that every "
             "minibatch's loss is backpropagated and followed by optimizer.step(), and that you minimise the loss "
             "(not its negative).")


@check
def check_train_rlhf(train_rlhf) -> None:
    from curriculum.solutions.chapter2 import rlhf as ref
    from curriculum.solutions.chapter2.rlhf import load_offline_base

    torch.manual_seed(0)
    args = ref.RLHFArgs(**_QUICK_RLHF)
    result = train_rlhf(ref.TransformerWithValueHead(load_offline_base()), _base(), ref.target_token_reward(_dot()), args,
                        progress=False)
    history = getattr(result, "history", None)
    if isinstance(history, list) and len(history) != args.total_phases:
        fail(f"history has {len(history)} entries for {args.total_phases} phases: append one stats dict per phase")
    _reward_rise(history, "train_rlhf")


# ------------------------------------------------------------------------------------------ the reward model
def _padded(seed: int = 0):
    """Right-padded tokens with lengths 3..8 and a pad id that is not 0, so reading a pad shows."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, _base().cfg.d_vocab, (5, 8), generator=g)
    lengths = torch.tensor([8, 3, 5, 6, 4])
    tokens[torch.arange(8)[None, :] >= lengths[:, None]] = 7
    return tokens, lengths


@check
def check_reward_model(RewardModel) -> None:
    if isinstance(RewardModel, nn.Module):
        fail("pass the class RewardModel itself, not an instance")
    base = _base()
    torch.manual_seed(0)
    model = RewardModel(base)
    if not isinstance(getattr(model, "head", None), nn.Linear):
        fail("RewardModel should have an nn.Linear attribute `head` (d_model -> 1)")
    tokens, lengths = _padded()
    got = model(tokens, lengths)
    assert_shape(got, (5,), "rewards", hint="one scalar per completion: squeeze the head's last axis")
    from curriculum.solutions.chapter2.rlhf import VALUE_HOOK

    _, cache = base.run_with_cache(tokens, names_filter=VALUE_HOOK)
    with torch.no_grad():
        hidden = cache[VALUE_HOOK]
        per_position = model.head(hidden).squeeze(-1)
    rows = torch.arange(5)
    expected = per_position[rows, lengths - 1]
    if torch.allclose(got, per_position[:, 0], atol=1e-4):
        fail("the reward is read at position 0: that token has seen only itself. Read position lengths - 1, the last "
             "real token, the only one whose residual stream has attended to the whole completion")
    if torch.allclose(got, per_position[:, -1], atol=1e-4):
        fail("the reward is read at the last position, which is a pad token for the shorter completions: read "
             "position lengths - 1 of each row (resid[torch.arange(batch), lengths - 1])")
    if torch.allclose(got, model.head(hidden.mean(1)).squeeze(-1), atol=1e-4):
        fail("the reward is the head on the mean over positions, which averages in the pad tokens: read each row's "
             "last real token, position lengths - 1")
    assert_close(got, expected, "rewards", atol=1e-4,
                 hint="head(residual stream at 'ln_final.hook_normalized', position lengths - 1 of each row)")
    full = model(tokens)
    assert_close(full, per_position[:, -1], "rewards with lengths=None", atol=1e-4,
                 hint="without lengths every row is full length: read the last position")
    if not got.requires_grad:
        fail("the rewards carry no gradient: the reward model is trained through them, so no torch.no_grad() or detach")


@check
def check_bradley_terry_loss(bradley_terry_loss) -> None:
    g = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(64, generator=g) * 2, torch.randn(64, generator=g) * 2
    got = bradley_terry_loss(chosen, rejected)
    expected = -F.logsigmoid(chosen - rejected).mean()
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        fail("bradley_terry_loss should return a scalar tensor: the mean over the pairs")
    if abs(got.item() - (-F.logsigmoid(rejected - chosen).mean()).item()) < 1e-5:
        fail("the sign is flipped: the loss is -log sigmoid(r_chosen - r_rejected); yours rewards the rejected side")
    if abs(got.item() - (-F.logsigmoid(chosen - rejected).sum()).item()) < 1e-4:
        fail("the loss is summed over the pairs: take the mean, so the step size does not grow with the batch")
    assert_scalar_close(got, expected.item(), "Bradley-Terry loss (vs -F.logsigmoid(chosen - rejected).mean())", rel=1e-4,
                        hint="mean over the pairs of -log sigmoid(r_chosen - r_rejected)")
    far = bradley_terry_loss(torch.tensor([0.0, 0.0]), torch.tensor([200.0, 0.0]))
    if not torch.isfinite(far):
        fail("a pair the model gets badly wrong (r_rejected - r_chosen = 200) gives an infinite loss: sigmoid "
             "underflows to 0 before the log. Use F.logsigmoid, which stays finite")
    assert_scalar_close(far, (200.0 + torch.log(torch.tensor(2.0)).item()) / 2, "loss on a badly wrong pair", rel=1e-4)


def _synthetic_pairs(n: int, seed: int):
    """Pairs that differ in the rule the reward model must learn: the chosen completion holds more full stops."""
    from curriculum.solutions.chapter2.rlhf import PreferencePairs

    g = torch.Generator().manual_seed(seed)
    dot, vocab, seq = _dot(), 200, 8

    def side(n_dots):
        t = torch.randint(1, vocab, (n, seq), generator=g)
        t[t == dot] = 1
        for i, k in enumerate(n_dots.tolist()):
            t[i, torch.randperm(seq, generator=g)[:k]] = dot
        return t

    k_rejected = torch.randint(0, 3, (n,), generator=g)
    k_chosen = k_rejected + torch.randint(1, 3, (n,), generator=g)
    full = torch.full((n,), seq)
    return PreferencePairs(side(k_chosen), full, side(k_rejected), full.clone())


@check
def check_pairwise_accuracy(pairwise_accuracy) -> None:
    from curriculum.solutions.chapter2.rlhf import PreferencePairs

    class Scorer(nn.Module):  # reward = id of each row's last real token, so the accuracy is known exactly
        def forward(self, tokens, lengths=None):
            if lengths is None:
                return tokens[:, -1].float()
            return tokens[torch.arange(tokens.shape[0]), lengths - 1].float()

    # Real tokens in column 0 (length 1); column 1 is padding, equal on both sides, so a scorer that is not
    # given the lengths sees only pads and ties every pair. 3 right, 1 tie, 1 wrong: reversing the comparison
    # gives 0.2, counting the tie 0.8, averaging the chunks' accuracies (chunk=2) 0.5.
    c = torch.tensor([[5, 0], [7, 0], [9, 0], [4, 0], [3, 0]])
    r = torch.tensor([[1, 0], [2, 0], [8, 0], [4, 0], [6, 0]])
    lens = torch.full((5,), 1)
    got = pairwise_accuracy(Scorer(), PreferencePairs(c, lens, r, lens.clone()), chunk=2)
    if isinstance(got, torch.Tensor):
        got = got.item()
    if abs(got) < 1e-6:
        fail("accuracy 0 on pairs the reward model mostly gets right: score each side with its own lengths, "
             "reward_model(p.chosen, p.chosen_len), or the reward is read at a pad token")
    if abs(got - 0.8) < 1e-6:
        fail("a tie (equal rewards) counted as correct: a pair is right only if r_chosen > r_rejected strictly")
    if abs(got - 0.2) < 1e-6:
        fail("the comparison is reversed: a pair is right when the CHOSEN side scores higher, r_chosen > r_rejected")
    assert_scalar_close(got, 0.6, "pairwise accuracy on 5 pairs (3 right, 1 tie, 1 wrong), chunk=2", rel=1e-6,
                        hint="count r_chosen > r_rejected over ALL chunks and divide by the number of pairs, not chunks")


@check
def check_train_reward_model(train_reward_model) -> None:
    from curriculum.solutions.chapter2.rlhf import RewardModel, RewardModelArgs, load_offline_base

    torch.manual_seed(0)
    model = RewardModel(load_offline_base())
    train, test = _synthetic_pairs(192, 0), _synthetic_pairs(64, 1)
    history = train_reward_model(model, train, test, RewardModelArgs(epochs=2, batch_size=32, lr=1e-3), progress=False)
    if not isinstance(history, dict) or not history.get("loss") or not history.get("test_accuracy"):
        fail("train_reward_model should return a dict with lists 'loss' (every step) and 'test_accuracy' (every epoch)")
    if len(history["test_accuracy"]) != 2:
        fail(f"2 epochs gave {len(history['test_accuracy'])} test accuracies: record one after each epoch")
    if len(history["loss"]) != 2 * 6:
        fail(f"2 epochs of 192 pairs in minibatches of 32 should give 12 loss values, got {len(history['loss'])}")
    acc = history["test_accuracy"][-1]
    if acc < 0.3:
        fail(f"held-out accuracy {acc:.2f}, far below chance: the model learned to prefer the REJECTED side. The loss is "
             "bradley_terry_loss(reward of chosen, reward of rejected), in that order")
    if acc < 0.8:
        fail(f"held-out accuracy {acc:.2f} after 2 epochs (a working loop reaches about 0.9 on these pairs): check that "
             "each minibatch is backpropagated and followed by optimizer.step(), with each side's own lengths")


# ------------------------------------------------------------------------------------------ GRPO
def _group_advantages_numpy(rewards, groups, eps, ddof):
    import numpy as np

    r, gr = np.asarray(rewards, dtype=np.float64), np.asarray(groups)
    out = np.empty_like(r)
    for g in np.unique(gr):
        m = gr == g
        out[m] = (r[m] - r[m].mean()) / (r[m].std(ddof=ddof) + eps)
    return torch.tensor(out, dtype=torch.float32)


@check
def check_group_advantages(group_advantages) -> None:
    # three groups of unequal sizes and spreads, interleaved; one group's rewards all equal
    rewards = torch.tensor([1.0, 10.0, 0.0, 3.0, 20.0, 0.0, 5.0, 30.0, 0.0, 40.0, 2.0])
    groups = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 1, 0])
    eps = 1e-4
    got = group_advantages(rewards, groups, eps)
    assert_shape(got, (11,), "advantages", hint="one advantage per completion")
    unbiased = _group_advantages_numpy(rewards, groups, eps, ddof=1)
    biased = _group_advantages_numpy(rewards, groups, eps, ddof=0)
    if not torch.isfinite(got).all():
        fail("a group whose rewards are all equal gives NaN/inf: add eps to the group's std")
    whole = (rewards - rewards.mean()) / (rewards.std() + eps)
    if torch.allclose(got, whole, atol=1e-4):
        fail("the rewards are normalised over the whole batch: GRPO compares each completion only with the other "
             "completions of ITS prompt (same group id)")
    if torch.allclose(got[groups != 2], unbiased[groups != 2], atol=1e-4) and not torch.allclose(got, unbiased, atol=1e-4):
        fail("the group whose rewards are all equal should get advantage 0 (0 / (0 + eps)): is eps added to the std?")
    if torch.allclose(got, biased, atol=1e-4):
        fail("you used the biased std (ddof=0); this section uses torch's default unbiased std (divide by n - 1)")
    assert_close(got, unbiased, "advantages (vs numpy, per group, unbiased std)", atol=1e-4,
                 hint="(r - mean of its group) / (std of its group + eps), for each group id separately")


@check
def check_grpo_loss(grpo_loss) -> None:
    from curriculum.solutions.chapter2 import rlhf as ref

    base = _base()
    args = ref.GRPOArgs(group_size=3, prompts=("The", "A"), num_minibatches=1, kl_coef=0.5)
    g = torch.Generator().manual_seed(0)
    tokens = torch.cat([torch.tensor([base.tokenizer("The")["input_ids"]] * 6), torch.randint(1, 200, (6, 5), generator=g)], 1)
    prefix_len = tokens.shape[1] - 5
    with torch.no_grad():
        now = ref.token_logprobs(base(tokens), tokens, prefix_len)
    old = now + 0.3 * torch.randn(now.shape, generator=g)
    ref_lp = now + 0.5 * torch.randn(now.shape, generator=g)
    adv = torch.tensor([1.0, -0.5, -0.5, 2.0, -1.0, -1.0])
    out = grpo_loss(base, ref.GRPOBatch(tokens, old, ref_lp, adv), prefix_len, args)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail("grpo_loss should return (loss, stats)")
    loss = out[0]
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        fail("the loss should be a tensor with gradients (do not compute it under no_grad)")
    a = adv[:, None].expand_as(now).flatten()
    pg = _surrogate(now.flatten(), old.flatten(), a, args.clip_coef, False)
    d = ref_lp - now
    k3 = (d.exp() - d - 1).mean()
    if abs(loss.item() - pg.item()) < 1e-5:
        fail("the KL term is missing: GRPO puts kl_coef * KL(pi || pi_ref) in the loss (there is no KL in the reward)")
    if abs(loss.item() - (_surrogate(now.flatten(), old.flatten(), a, args.clip_coef, True) + args.kl_coef * k3).item()) < 1e-5:
        fail("the advantages were normalised again inside the loss: they are already normalised per group, so call "
             "policy_loss(..., norm_adv=False)")
    d_old = old - now
    if abs(loss.item() - (pg + args.kl_coef * (d_old.exp() - d_old - 1).mean()).item()) < 1e-5:
        fail("the KL term compares with the OLD policy's log-probs: it should use the frozen reference's (batch.ref_logprobs)")
    if abs(loss.item() - (pg + args.kl_coef * (now - ref_lp).mean()).item()) < 1e-5:
        fail("the KL term is the plain log-ratio log pi - log pi_ref, which is negative for some tokens: use "
             "k3 = exp(ref - logp) - (ref - logp) - 1, which is >= 0 for every token")
    if abs(loss.item() - (pg + args.kl_coef * (d.exp() - d - 1).sum(-1).mean()).item()) < 1e-5:
        fail("the k3 term is summed over each completion's tokens: take the mean over ALL generated tokens, "
             "(exp(d) - d - 1).mean(), so that kl_coef does not scale with gen_len")
    assert_scalar_close(loss, (pg + args.kl_coef * k3).item(), "GRPO loss", rel=1e-4,
                        hint="policy_loss(new, old, advantage of each token's completion, clip, norm_adv=False) + "
                             "kl_coef * mean(exp(ref - new) - (ref - new) - 1)")


def _grpo_advantages_seen(train_grpo, reward_fn, args, run):
    """Run `run(reward_fn)` (train_grpo on the check's arguments) with the reward function and grpo_loss (in
    train_grpo's own globals) wrapped, and return what the loop handed grpo_loss: a list of (rewards, prompt group
    ids, advantages), one per call that held a whole phase's batch. Each row's reward is looked up from its
    completion (the reward is a function of the completion alone), its group from its prompt tokens. Empty when
    the loop does not call grpo_loss through its globals or the rows cannot be matched."""
    g = getattr(train_grpo, "__globals__", {})
    scored, calls = [], []

    def reward(completions):
        out = reward_fn(completions)
        if isinstance(completions, torch.Tensor) and isinstance(out, torch.Tensor):
            scored.append((completions.detach().clone(), out.detach().float().clone()))
        return out

    saved = g.get("grpo_loss")
    if callable(saved):
        def grpo_loss(policy, batch, prefix_len, *rest, **kw):
            tokens, adv = getattr(batch, "tokens", None), getattr(batch, "advantages", None)
            if isinstance(tokens, torch.Tensor) and isinstance(adv, torch.Tensor) and isinstance(prefix_len, int):
                calls.append((tokens.detach().clone(), adv.detach().float().clone(), prefix_len))
            return saved(policy, batch, prefix_len, *rest, **kw)

        g["grpo_loss"] = grpo_loss
    try:
        result = run(reward)
    finally:
        if callable(saved):
            g["grpo_loss"] = saved
    seen = []
    whole_batch = len(args.prompts) * args.group_size
    for tokens, adv, prefix_len in calls:
        if len(tokens) != whole_batch or adv.shape != (whole_batch,) or not scored:
            continue
        completions = tokens[:, prefix_len:]
        known = [(c, r) for c, r in scored if c.shape[1] == completions.shape[1]]
        if not known:
            continue
        all_c, all_r = torch.cat([c for c, _ in known]), torch.cat([r for _, r in known])
        match = (completions[:, None, :] == all_c[None]).all(-1)
        if not bool(match.any(1).all()):
            continue
        rewards = all_r[match.float().argmax(1)]
        groups = torch.unique(tokens[:, :prefix_len], dim=0, return_inverse=True)[1]
        seen.append((rewards, groups, adv))
    return result, seen


@check
def check_train_grpo(train_grpo) -> None:
    from curriculum.solutions.chapter2 import rlhf as ref
    from curriculum.solutions.chapter2.rlhf import load_offline_base

    torch.manual_seed(0)
    args = ref.GRPOArgs(group_size=4, gen_len=8, total_phases=10, update_epochs=2, num_minibatches=1, lr=5e-4)
    result, seen = _grpo_advantages_seen(
        train_grpo, ref.target_token_reward(_dot()), args,
        lambda reward_fn: train_grpo(load_offline_base(), _base(), reward_fn, args, progress=False))
    for rewards, groups, adv in seen:
        per_group = _group_advantages_numpy(rewards, groups, args.eps, ddof=1)
        whole = (rewards - rewards.mean()) / (rewards.std() + args.eps)
        if torch.allclose(adv, whole, atol=1e-4) and not torch.allclose(per_group, whole, atol=1e-4):
            fail("the advantages handed to grpo_loss are the rewards normalised over the whole batch, not within each "
                 "group: GRPO compares a completion only with the other completions of the SAME prompt. Compute them "
                 "with group_advantages(raw_rewards, groups, args.eps), where groups[i] is the prompt of row i")
    _reward_rise(getattr(result, "history", None), "train_grpo")
    for rewards, groups, adv in seen:
        assert_close(adv, _group_advantages_numpy(rewards, groups, args.eps, ddof=1),
                     "the advantage vector handed to grpo_loss (expected: each completion's reward normalised within "
                     "its prompt's group)", atol=1e-4, hint="group_advantages(raw_rewards, groups, args.eps) on the rewards of the "
                     "completions in the batch, in the same row order as the tokens")


# ------------------------------------------------------------------------------------------ a real classifier
@functools.lru_cache(maxsize=1)
def _tiny_classifier():
    """A small random DistilBERT classifier with the real model's labels (0 NEGATIVE, 1 POSITIVE), on the offline
    tokenizer: the interface of the SST-2 model, small enough to check against in a second."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    from curriculum.utils.offline import offline_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(offline_tokenizer_dir())
    tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                           id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
                           pad_token_id=tok.pad_token_id)
    return DistilBertForSequenceClassification(cfg).eval(), tok


@check
def check_classifier_reward(classifier_reward) -> None:
    model, tok = _tiny_classifier()
    texts = ["A good and simple function.", "Raises an error.", "The value of x is returned when the list is empty, "
             "as described in the section on sequences."]
    got = classifier_reward(model, tok, texts)
    assert_shape(got, (3,), "rewards", hint="one reward per string: the POSITIVE column of the logits")
    with torch.no_grad():  # each text alone: no padding, so nothing to mask
        alone = torch.stack([model(**tok(t, return_tensors="pt")).logits[0] for t in texts])
    if torch.allclose(got, alone[:, 0], atol=1e-4):
        fail("you returned the NEGATIVE logit: the column is model.config.label2id['POSITIVE']")
    if torch.allclose(got[:2], alone[:2, 1].softmax(-1), atol=1e-4) or torch.allclose(got, alone.softmax(-1)[:, 1], atol=1e-4):
        fail("you returned a probability; this section uses the POSITIVE logit (it does not saturate at 1)")
    if torch.allclose(got[2], alone[2, 1], atol=1e-4) and not torch.allclose(got, alone[:, 1], atol=1e-4):
        fail("the longest text is right but the padded ones are not: pass the attention_mask with the input_ids, so "
             "the classifier ignores the pad tokens")
    assert_close(got, alone[:, 1], "POSITIVE logits (vs each text scored alone)", atol=1e-4,
                 hint="tokenizer(texts, padding=True, truncation=True, return_tensors='pt'); model(**enc).logits[:, positive]")
