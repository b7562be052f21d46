"""Section 2.3's policy-gradient exercises: each check rejects the plausible learner bugs below."""

from __future__ import annotations

import pytest
import torch

from curriculum.solutions.chapter2 import reinforce as R
from curriculum.checks.chapter2 import reinforce as checks
from tests.support import assert_check_fails, mutant


# ------------------------------------------------------------------------------------------ reward-to-go
def rtg_off_by_one(rewards, gamma):
    out, running = torch.zeros_like(rewards), 0.0
    for t in reversed(range(len(rewards))):
        out[t] = running  # stored before adding r_t: G_t misses the reward of step t
        running = rewards[t] + gamma * running
    return out


def rtg_undiscounted(rewards, gamma):
    return R.reward_to_go(rewards, 1.0)


def rtg_whole_episode(rewards, gamma):
    return R.reward_to_go(rewards, gamma)[0].expand(len(rewards)).clone()


def rtg_discount_from_start(rewards, gamma):
    disc = rewards * gamma ** torch.arange(len(rewards), dtype=rewards.dtype)
    return disc.flip(0).cumsum(0).flip(0)


@pytest.mark.parametrize("bug,message", [
    (rtg_off_by_one, "off by one"),
    (rtg_undiscounted, "not discounted"),
    (rtg_whole_episode, "whole episode"),
    (rtg_discount_from_start, "start of the episode"),
])
def test_check_reward_to_go_catches(bug, message):
    assert_check_fails(checks.check_reward_to_go, bug, match=message)


# ------------------------------------------------------------------------------------------ the loss
def loss_baseline_not_detached(logprobs, returns, num_episodes, baseline=None):
    weights = returns if baseline is None else returns - baseline
    return -(logprobs * weights).sum() / num_episodes


def loss_baseline_outside(logprobs, returns, num_episodes, baseline=None):
    loss = -(logprobs * returns).sum() / num_episodes
    return loss if baseline is None else loss + baseline.detach().sum() / num_episodes


def loss_mean_over_steps(logprobs, returns, num_episodes, baseline=None):
    weights = returns if baseline is None else returns - baseline.detach()
    return -(logprobs * weights).mean()


def loss_sum_only(logprobs, returns, num_episodes, baseline=None):
    return R.reinforce_loss(logprobs, returns, num_episodes, baseline) * num_episodes


def loss_wrong_sign(logprobs, returns, num_episodes, baseline=None):
    return -R.reinforce_loss(logprobs, returns, num_episodes, baseline)


def loss_baseline_ignored(logprobs, returns, num_episodes, baseline=None):
    return R.reinforce_loss(logprobs, returns, num_episodes, None)


@pytest.mark.parametrize("bug,message", [
    (loss_baseline_not_detached, "detach the baseline"),
    (loss_baseline_outside, "multiply the log-probability"),
    (loss_baseline_ignored, "multiply the log-probability"),
    (loss_mean_over_steps, "average over steps"),
    (loss_sum_only, "divide the sum by num_episodes"),
    (loss_wrong_sign, "wrong way"),
])
def test_check_reinforce_loss_catches(bug, message):
    assert_check_fails(checks.check_reinforce_loss, bug, match=message)


# ------------------------------------------------------------------------------------------ the loop
def test_check_train_reinforce_catches_a_flipped_sign(monkeypatch):
    monkeypatch.setattr(R, "reinforce_loss", lambda *a: -loss_mean_over_steps(*a))
    assert_check_fails(checks.check_train_reinforce, R.train_reinforce, match="WRONG action")


def test_check_train_reinforce_catches_misaligned_actions():
    # log-probs of a freshly sampled action instead of the one sent to the environment
    bug = mutant(R.train_reinforce, ("all_logprobs.append(dist.log_prob(action))",
                                     "all_logprobs.append(dist.log_prob(dist.sample()))"))
    assert_check_fails(checks.check_train_reinforce, bug, match="probe")


def test_check_train_reinforce_catches_gradients_accumulating_across_updates():
    bug = mutant(R.train_reinforce, ("        optimizer.zero_grad()\n", ""))
    assert_check_fails(checks.check_train_reinforce, bug, match="accumulate across updates.*zero_grad")


def test_check_train_reinforce_accepts_zeroing_through_the_module_or_after_the_step():
    after_step = mutant(R.train_reinforce, ("        optimizer.zero_grad()\n", ""),
                        ("        optimizer.step()\n", "        optimizer.step()\n        policy.zero_grad()\n"))
    checks.check_train_reinforce(after_step)


def test_check_train_reinforce_catches_forgotten_episode_returns():
    bug = mutant(R.train_reinforce, ("result.episode_returns.append(sum(rewards))", "pass"))
    assert_check_fails(checks.check_train_reinforce, bug, match="episode returns")


# ------------------------------------------------------------------------------------------ the baseline
def baseline_after_fit(value_net, optimizer, obs, returns, epochs):
    R.fit_baseline(value_net, optimizer, obs, returns, epochs)
    with torch.no_grad():
        return value_net(obs).squeeze(-1)


def baseline_with_grad(value_net, optimizer, obs, returns, epochs):
    out = value_net(obs).squeeze(-1)
    R.fit_baseline(value_net, optimizer, obs, returns, epochs)
    return out


def baseline_not_fitted(value_net, optimizer, obs, returns, epochs):
    with torch.no_grad():
        return value_net(obs).squeeze(-1)


def baseline_fits_wrong_target(value_net, optimizer, obs, returns, epochs):
    return R.fit_baseline(value_net, optimizer, obs, -returns, epochs)


@pytest.mark.parametrize("bug,message", [
    (baseline_after_fit, "AFTER fitting"),
    (baseline_with_grad, "carries a gradient"),
    (baseline_not_fitted, "optimiser steps"),
    (baseline_fits_wrong_target, "probe 1"),
])
def test_check_fit_baseline_catches(bug, message):
    assert_check_fails(checks.check_fit_baseline, bug, match=message)


def test_a_baseline_keeps_the_expectation_and_lowers_the_variance():
    """Exact, on a three-armed bandit: E_a[grad log pi(a) (R(a) - b)] does not depend on b, and its
    variance is smaller with b = E[R] than with b = 0 (the two facts the section derives)."""
    logits = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    rewards = torch.tensor([10.0, 11.0, 12.0])  # all positive: without a baseline every action is pushed up
    probs = logits.softmax(-1).detach()
    scores = torch.stack([torch.autograd.grad(logits.log_softmax(-1)[a], logits)[0] for a in range(3)])

    def moments(b):
        samples = scores * (rewards - b)[:, None]
        mean = (probs[:, None] * samples).sum(0)
        return mean, (probs[:, None] * (samples - mean) ** 2).sum()

    mean0, var0 = moments(0.0)
    mean_b, var_b = moments(float(probs @ rewards))
    assert torch.allclose(mean0, mean_b, atol=1e-5)
    assert var_b < var0 / 10
