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
