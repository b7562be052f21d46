"""Section 2.4 beyond the automatic contract: the checks catch plausible bugs (mutants), a CI-size RLHF run
raises the reward measurably, and the reward model learns its labels."""

from __future__ import annotations

import pytest
import torch

from curriculum.solutions.chapter1.gpt2 import sample_next_token
from curriculum.solutions.chapter2 import rlhf
from curriculum.checks.chapter2 import rlhf as checks
from tests.support import assert_check_fails, mutant



# ------------------------------------------------------------------------------------------ value head
class ValueHeadWrongHook(rlhf.TransformerWithValueHead):
    def forward(self, tokens):
        stored = {}
        logits = self.base.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: stored.update(r=x))])
        return logits, self.value_head(stored["r"]).squeeze(-1)


class ValueHeadDetached(rlhf.TransformerWithValueHead):
    def forward(self, tokens):
        logits, values = super().forward(tokens)
        return logits, values.detach()


class ValueHeadNotSqueezed(rlhf.TransformerWithValueHead):
    def forward(self, tokens):
        logits, values = super().forward(tokens)
        return logits, values[..., None]


@pytest.mark.parametrize("mutant", [ValueHeadWrongHook, ValueHeadDetached, ValueHeadNotSqueezed])
def test_check_value_head_catches(mutant):
    assert_check_fails(checks.check_transformer_with_value_head, mutant)


# ------------------------------------------------------------------------------------------ sampling
@torch.no_grad()
def sample_first_position(base, prompt_tokens, gen_len, cfg=None, generator=None):
    tokens = prompt_tokens
    for _ in range(gen_len):
        tokens = torch.cat([tokens, sample_next_token(tokens, base(tokens)[:, 0], cfg, generator)[:, None]], dim=1)
    return tokens


@torch.no_grad()
def sample_ignores_generator(base, prompt_tokens, gen_len, cfg=None, generator=None):
    return rlhf.sample_completions(base, prompt_tokens, gen_len, cfg, None)


@torch.no_grad()
def sample_always_greedy(base, prompt_tokens, gen_len, cfg=None, generator=None):
    from curriculum.solutions.chapter1.gpt2 import SamplingConfig

    return rlhf.sample_completions(base, prompt_tokens, gen_len, SamplingConfig(temperature=0.0), generator)


@torch.no_grad()
def sample_only_new(base, prompt_tokens, gen_len, cfg=None, generator=None):
    return rlhf.sample_completions(base, prompt_tokens, gen_len, cfg, generator)[:, prompt_tokens.shape[1]:]


@pytest.mark.parametrize("mutant", [sample_first_position, sample_ignores_generator, sample_always_greedy, sample_only_new])
def test_check_sample_completions_catches(mutant):
    assert_check_fails(checks.check_sample_completions, mutant)


# ------------------------------------------------------------------------------------------ log-probs and rewards
def logprobs_off_by_one(logits, tokens, prefix_len):
    return logits[:, prefix_len:].log_softmax(-1)[:, :-1].gather(-1, tokens[:, prefix_len + 1:, None]).squeeze(-1)


def logprobs_misaligned(logits, tokens, prefix_len):
    return logits[:, prefix_len:].log_softmax(-1).gather(-1, torch.roll(tokens, -1, 1)[:, prefix_len - 1:-1, None]).squeeze(-1)


def logprobs_probs(logits, tokens, prefix_len):
    return logits[:, prefix_len - 1:-1].softmax(-1).gather(-1, tokens[:, prefix_len:, None]).squeeze(-1)


def logprobs_wrong_axis(logits, tokens, prefix_len):
    return logits[:, prefix_len - 1:-1].log_softmax(1).gather(-1, tokens[:, prefix_len:, None]).squeeze(-1)


@pytest.mark.parametrize("mutant", [logprobs_off_by_one, logprobs_misaligned, logprobs_probs, logprobs_wrong_axis])
def test_check_token_logprobs_catches(mutant):
    assert_check_fails(checks.check_token_logprobs, mutant)


@pytest.mark.parametrize("mutant", [
    lambda r, eps=1e-5: r / (r.std() + eps),
    lambda r, eps=1e-5: (r - r.mean()) / (r.var() + eps),
    lambda r, eps=1e-5: (r - r.mean()) / r.std(),
])
def test_check_normalize_rewards_catches(mutant):
    assert_check_fails(checks.check_normalize_rewards, mutant)


def per_token_first(rewards, logprobs, ref_logprobs, kl_coef):
    out = -kl_coef * (logprobs - ref_logprobs)
    out[:, 0] += rewards
    return out


def per_token_sign(rewards, logprobs, ref_logprobs, kl_coef):
    return rlhf.per_token_rewards(rewards, ref_logprobs, logprobs, kl_coef)


def per_token_everywhere(rewards, logprobs, ref_logprobs, kl_coef):
    return -kl_coef * (logprobs - ref_logprobs) + rewards[:, None]


def per_token_no_kl(rewards, logprobs, ref_logprobs, kl_coef):
    return rlhf.per_token_rewards(rewards, logprobs, ref_logprobs, 0.0)


@pytest.mark.parametrize("mutant,message", [(per_token_first, "LAST"), (per_token_sign, "sign"),
                                            (per_token_everywhere, None), (per_token_no_kl, None)])
def test_check_per_token_rewards_catches(mutant, message):
    assert_check_fails(checks.check_per_token_rewards, mutant, match=message)


# ------------------------------------------------------------------------------------------ loss
def loss_mutant(value_offset=-1, vf=True, weight=True, logprob_shift=0):
    def loss_fn(model, batch, prefix_len, args):
        logits, values = model(batch.tokens)
        lp = logits[:, prefix_len - 1 + logprob_shift:-1 + logprob_shift or None].log_softmax(-1)
        new_lp = lp.gather(-1, batch.tokens[:, prefix_len:, None]).squeeze(-1)
        new_v = values[:, prefix_len + value_offset:values.shape[1] + value_offset or None]
        pg = rlhf.policy_loss(new_lp.flatten(), batch.logprobs.flatten(), batch.advantages.flatten(), args.clip_coef)
        vl = rlhf.value_loss(new_v.flatten(), batch.values.flatten(), batch.returns.flatten(), args.clip_coef)
        loss = pg + ((args.vf_coef if weight else 1.0) * vl if vf else 0.0)
        return loss, {}

    return loss_fn


def test_loss_mutant_baseline_passes():
    checks.check_rlhf_loss(loss_mutant())


@pytest.mark.parametrize("mutant", [loss_mutant(value_offset=0), loss_mutant(vf=False), loss_mutant(weight=False),
                                    loss_mutant(logprob_shift=1)])
def test_check_rlhf_loss_catches(mutant):
    assert_check_fails(checks.check_rlhf_loss, mutant)


# ------------------------------------------------------------------------------------------ the whole thing
def ci_args(**overrides) -> rlhf.RLHFArgs:
    """The CI size the notebook uses (sections/chapter2/2.4_rlhf.py)."""
    return rlhf.RLHFArgs(**{**dict(batch_size=16, gen_len=12, total_phases=24, update_epochs=2, num_minibatches=1,
                                   base_lr=5e-4, head_lr=1e-3, kl_coef=0.2), **overrides})


def test_ci_rlhf_run_raises_reward():
    base, ref = rlhf.load_offline_base(), rlhf.load_offline_base()
    dot = base.tokenizer(".")["input_ids"][-1]
    torch.manual_seed(0)
    result = rlhf.train_rlhf(rlhf.TransformerWithValueHead(base), ref, rlhf.target_token_reward(dot), ci_args(),
                             progress=False)
    rewards = [h["reward"] for h in result.history]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.5 and last > 1.5 * first, f"mean reward did not rise: {first:.2f} -> {last:.2f} ({rewards})"
    kls = [h["kl"] for h in result.history]
    assert max(kls) < 15, f"KL to the reference should stay bounded with kl_coef=0.2, got {kls}"


def test_bad_args_are_named():
    with pytest.raises(ValueError, match="kl_coef"):
        rlhf.RLHFArgs(kl_coef=-1)
    with pytest.raises(ValueError, match="multiple"):
        rlhf.RLHFArgs(batch_size=10, num_minibatches=4)


# ------------------------------------------------------------------------------------------ make_batch
def make_batch_mutant(reward_on_prompt=False, normalise=True, kl_to_self=False, value_offset=-1):
    @torch.no_grad()
    def make_batch(model, ref, reward_fn, prompt_tokens, args, generator):
        p = prompt_tokens.shape[1]
        tokens = rlhf.sample_completions(model.base, prompt_tokens, args.gen_len,
                                         rlhf.SamplingConfig(temperature=args.temperature), generator)
        raw = reward_fn(tokens if reward_on_prompt else tokens[:, p:]).float()
        logits, values = model(tokens)
        logprobs = rlhf.token_logprobs(logits, tokens, p)
        ref_logprobs = logprobs if kl_to_self else rlhf.token_logprobs(ref(tokens), tokens, p)
        values = values[:, p + value_offset:values.shape[1] + value_offset or None]
        rewards = rlhf.normalize_rewards(raw) if normalise else raw
        adv = rlhf.token_advantages(values, rlhf.per_token_rewards(rewards, logprobs, ref_logprobs, args.kl_coef),
                                    args.gamma, args.gae_lambda)
        return rlhf.RLHFBatch(tokens, logprobs, values, adv, adv + values), dict(reward=raw.mean().item(), kl=0.0)

    return make_batch


def test_make_batch_mutant_baseline_passes():
    checks.check_make_batch(make_batch_mutant())


@pytest.mark.parametrize("mutant", [make_batch_mutant(reward_on_prompt=True), make_batch_mutant(normalise=False),
                                    make_batch_mutant(kl_to_self=True), make_batch_mutant(value_offset=0)])
def test_check_make_batch_catches(mutant):
    assert_check_fails(checks.check_make_batch, mutant)


def test_sampling_temperature_other_than_one_is_refused_as_off_policy():
    with pytest.raises(ValueError, match="off-policy"):
        rlhf.RLHFArgs(temperature=0.7)
    rlhf.RLHFArgs(temperature=1.0)


def test_non_finite_reward_or_loss_stops_training_naming_it(monkeypatch):
    from curriculum.utils.rl import NonFiniteError

    base, ref = rlhf.load_offline_base(), rlhf.load_offline_base()
    nan_reward = lambda completions: torch.full((completions.shape[0],), float("nan"))  # noqa: E731
    with pytest.raises(NonFiniteError, match="mean reward of the sampled completions is NaN at phase 0"):
        rlhf.train_rlhf(rlhf.TransformerWithValueHead(base), ref, nan_reward, ci_args(total_phases=1), progress=False)

    real_loss = rlhf.rlhf_loss
    monkeypatch.setattr(rlhf, "rlhf_loss", lambda *a: (real_loss(*a)[0] * float("inf"), real_loss(*a)[1]))
    dot = base.tokenizer(".")["input_ids"][-1]
    with pytest.raises(NonFiniteError, match="PPO loss is (inf|NaN) at phase 0.*learning rate"):
        rlhf.train_rlhf(rlhf.TransformerWithValueHead(base), ref, rlhf.target_token_reward(dot), ci_args(total_phases=1),
                        progress=False)


# ------------------------------------------------------------------------------------------ the loop the learner writes
@pytest.mark.parametrize("replacements,why", [
    ((("                optimizer.step()\n", ""),), "no optimizer step"),
    ((("loss.backward()", "(-loss).backward()"),), "gradient ascent on the loss"),
])
def test_check_train_rlhf_catches(replacements, why):
    assert_check_fails(checks.check_train_rlhf, mutant(rlhf.train_rlhf, *replacements), match="did not rise")


# ------------------------------------------------------------------------------------------ the reward model
def reward_model_reading(position):
    class Mutant(rlhf.RewardModel):
        def forward(self, tokens, lengths=None):
            stored = {}
            self.base.run_with_hooks(tokens, fwd_hooks=[(rlhf.VALUE_HOOK, lambda x, hook: stored.update(r=x))])
            resid = stored["r"]
            picked = resid.mean(1) if position == "mean" else resid[:, position]
            return self.head(picked).squeeze(-1)

    return Mutant


@pytest.mark.parametrize("position,message", [(0, "position 0"), (-1, "pad token"), ("mean", "mean over positions")])
def test_check_reward_model_catches(position, message):
    assert_check_fails(checks.check_reward_model, reward_model_reading(position), match=message)


@pytest.mark.parametrize("loss,message", [
    (lambda c, r: -torch.nn.functional.logsigmoid(r - c).mean(), "sign is flipped"),
    (lambda c, r: -torch.nn.functional.logsigmoid(c - r).sum(), "summed"),
    (lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(), "logsigmoid"),
    (lambda c, r: torch.nn.functional.logsigmoid(c - r).mean(), "sign|Bradley-Terry"),
])
def test_check_bradley_terry_loss_catches(loss, message):
    assert_check_fails(checks.check_bradley_terry_loss, loss, match=message)


@pytest.mark.parametrize("replacements,message", [
    ((("> reward_model(p.rejected", ">= reward_model(p.rejected"),), "tie"),
    ((("return correct / len(pairs)", "return correct / -(-len(pairs) // chunk) / chunk"),), "pairwise accuracy"),
    ((("reward_model(p.chosen, p.chosen_len) > reward_model(p.rejected, p.rejected_len)",
       "reward_model(p.chosen) > reward_model(p.rejected)"),), "lengths"),
    ((("reward_model(p.chosen, p.chosen_len) > reward_model(p.rejected, p.rejected_len)",
       "reward_model(p.chosen, p.chosen_len) < reward_model(p.rejected, p.rejected_len)"),), "reversed"),
])
def test_check_pairwise_accuracy_catches(replacements, message):
    assert_check_fails(checks.check_pairwise_accuracy, mutant(rlhf.pairwise_accuracy, *replacements), match=message)


@pytest.mark.parametrize("replacements,message", [
    ((("bradley_terry_loss(reward_model(mb.chosen, mb.chosen_len), reward_model(mb.rejected, mb.rejected_len))",
       "bradley_terry_loss(reward_model(mb.rejected, mb.rejected_len), reward_model(mb.chosen, mb.chosen_len))"),),
     "REJECTED"),
    ((("            optimizer.step()\n", ""),), "optimizer.step"),
])
def test_check_train_reward_model_catches(replacements, message):
    assert_check_fails(checks.check_train_reward_model, mutant(rlhf.train_reward_model, *replacements), match=message)


def test_preference_pairs_follow_the_rule():
    base = rlhf.load_offline_base()
    dot = base.tokenizer(".")["input_ids"][-1]
    pairs = rlhf.preference_pairs(base, rlhf.target_token_reward(dot), 40, 12, pad_id=5)
    assert 0 < len(pairs) <= 40  # pairs with equal scores are dropped
    for c, cl, r, rl in zip(pairs.chosen, pairs.chosen_len, pairs.rejected, pairs.rejected_len, strict=True):
        assert (c[:cl] == dot).sum() > (r[:rl] == dot).sum()
        assert (c[cl:] == 5).all() and (r[rl:] == 5).all()
        assert 6 <= cl <= 12 and 6 <= rl <= 12


# ------------------------------------------------------------------------------------------ GRPO
def group_adv_whole_batch(rewards, groups, eps=1e-4):
    return (rewards - rewards.mean()) / (rewards.std() + eps)


@pytest.mark.parametrize("fn,message", [
    (group_adv_whole_batch, "whole batch"),
    (mutant(rlhf.group_advantages, ("(r.std() + eps)", "r.std()")), "eps"),
    (mutant(rlhf.group_advantages, ("(r.std() + eps)", "(r.std(unbiased=False) + eps)")), "biased std"),
    (mutant(rlhf.group_advantages, ("(r - r.mean())", "r")), "advantages"),
])
def test_check_group_advantages_catches(fn, message):
    assert_check_fails(checks.check_group_advantages, fn, match=message)


@pytest.mark.parametrize("replacements,message", [
    ((("loss = pg_loss + args.kl_coef * kl", "loss = pg_loss"),), "KL term is missing"),
    ((("args.clip_coef, norm_adv=False)", "args.clip_coef, norm_adv=True)"),), "normalised again"),
    ((("log_ratio_ref = batch.ref_logprobs - new_logprobs", "log_ratio_ref = batch.logprobs - new_logprobs"),), "OLD"),
    ((("kl = (log_ratio_ref.exp() - log_ratio_ref - 1).mean()", "kl = (-log_ratio_ref).mean()"),), "plain log-ratio"),
    ((("kl = (log_ratio_ref.exp() - log_ratio_ref - 1).mean()", "kl = (log_ratio_ref.exp() - log_ratio_ref - 1).sum(-1).mean()"),),
     "summed over"),
])
def test_check_grpo_loss_catches(replacements, message):
    assert_check_fails(checks.check_grpo_loss, mutant(rlhf.grpo_loss, *replacements), match=message)


@pytest.mark.parametrize("replacements", [
    (("                optimizer.step()\n", ""),),
    (("advantages = group_advantages(raw_rewards, groups, args.eps)",
      "advantages = -group_advantages(raw_rewards, groups, args.eps)"),),
])
def test_check_train_grpo_catches(replacements):
    assert_check_fails(checks.check_train_grpo, mutant(rlhf.train_grpo, *replacements), match="did not rise")


def test_check_train_grpo_catches_advantages_normalised_over_the_whole_batch():
    bug = mutant(rlhf.train_grpo, ("advantages = group_advantages(raw_rewards, groups, args.eps)",
                                   "advantages = (raw_rewards - raw_rewards.mean()) / (raw_rewards.std() + args.eps)"))
    assert_check_fails(checks.check_train_grpo, bug, match="normalised over the whole batch, not within each group")


def test_check_train_grpo_catches_unnormalised_advantages():
    bug = mutant(rlhf.train_grpo, ("advantages = group_advantages(raw_rewards, groups, args.eps)",
                                   "advantages = raw_rewards - raw_rewards.mean()"))
    assert_check_fails(checks.check_train_grpo, bug, match="advantage vector handed to grpo_loss")


def test_grpo_args_are_checked():
    with pytest.raises(ValueError, match="group of 1"):
        rlhf.GRPOArgs(group_size=1)
    with pytest.raises(ValueError, match="multiple"):
        rlhf.GRPOArgs(group_size=3, prompts=("The",), num_minibatches=2)


# ------------------------------------------------------------------------------------------ the sentiment classifier
@pytest.mark.parametrize("replacements,message", [
    ((('label2id["POSITIVE"]', 'label2id["NEGATIVE"]'),), "NEGATIVE logit"),
    ((("logits = model(**enc.to(model.device)).logits", "logits = model(enc.to(model.device)['input_ids']).logits"),),
     "attention_mask"),
    ((("return logits[:, model.config.label2id", "return logits.softmax(-1)[:, model.config.label2id"),), "probability"),
])
def test_check_classifier_reward_catches(replacements, message):
    assert_check_fails(checks.check_classifier_reward, mutant(rlhf.classifier_reward, *replacements), match=message)


def test_sentiment_classifier_offline_keeps_the_rule(monkeypatch):
    monkeypatch.setenv("CURRICULUM_OFFLINE", "1")
    from curriculum.utils.offline import use_real_resources

    use_real_resources.cache_clear()
    try:
        loaded = rlhf.load_sentiment_classifier()
    finally:
        use_real_resources.cache_clear()
    assert loaded.value is None and not loaded.real and "rule" in loaded.description


def test_text_reward_decodes_then_scores():
    base = rlhf.load_offline_base()
    dot, word = base.tokenizer(".")["input_ids"][-1], base.tokenizer(" value")["input_ids"][-1]
    tokens = torch.tensor([[word, dot, word, dot], [word, word, word, word]])
    reward = rlhf.text_reward(lambda texts: torch.tensor([float(t.count(".")) for t in texts]), base.tokenizer)
    assert reward(tokens).tolist() == [2.0, 0.0]
