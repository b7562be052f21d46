"""Section 1.3's functions run on the learner's own 1.1 GPT-2, not only on a TransformerBridge.

The 1.1 model exposes TransformerLens's hook names and shapes (hook_embed, hook_pos_embed,
blocks.{l}.attn.hook_q/k/v/z/pattern, hook_attn_out, hook_mlp_out, ln*.hook_scale) and its stacked
weights (W_Q ... W_U). Loaded with the bridge's weights, every function below must give the bridge's
numbers."""

from __future__ import annotations

import pytest
import torch

from curriculum.solutions.chapter1 import gpt2, interp
from curriculum.utils.offline import load_gpt2

TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def models():
    bridge = load_gpt2(seed=3).value
    bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    ours = gpt2.load_gpt2_weights(gpt2.GPT2(gpt2.config_from_bridge(bridge.cfg)), bridge.tl_parameters()).eval()
    gen = torch.Generator().manual_seed(0)
    tokens = interp.generate_repeated_tokens(3, 9, bridge.cfg.d_vocab, 0, gen)  # [3, 19]
    return bridge, ours, tokens


def _metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[0, -1, 5] - logits[0, -1, 7]


def _both(models, fn):
    bridge, ours, tokens = models
    with torch.no_grad():
        return fn(bridge, tokens), fn(ours, tokens)


def test_hook_names_and_shapes(models):
    bridge, ours, tokens = models
    with torch.no_grad():
        _, theirs = bridge.run_with_cache(tokens)
        _, mine = ours.run_with_cache(tokens)
    names = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale", "blocks.1.ln1.hook_scale", "blocks.1.ln1.hook_normalized"]
    names += [f"blocks.{l}.{h}" for l in range(2) for h in
              ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")]
    names += [f"blocks.{l}.attn.hook_{h}" for l in range(2) for h in ("q", "k", "v", "z", "pattern")]
    for name in names:
        assert name in mine, f"the 1.1 model records no {name}"
        assert mine[name].shape == theirs[name].shape, f"{name}: {tuple(mine[name].shape)} vs the bridge's {tuple(theirs[name].shape)}"
        torch.testing.assert_close(mine[name], theirs[name], **TOL, msg=lambda m, name=name: f"{name}: {m}")


def test_stacked_weights(models):
    bridge, ours, _ = models
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_O", "W_E", "W_pos", "W_U", "b_U"):
        torch.testing.assert_close(getattr(ours, name), getattr(bridge, name), **TOL, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(
    "fn",
    [
        lambda m, t: interp.induction_scores_with_hooks(m, t, 9),
        lambda m, t: interp.head_ablation_loss_increase(m, t),
        lambda m, t: interp.head_ablation_loss_increase(m, t, mean=True),
        lambda m, t: interp.direct_logit_attribution(m, m.run_with_cache(t[:1])[1], t[0]),
        lambda m, t: interp.logit_lens(m, m.run_with_cache(t)[1], t[1], batch_index=1),
        lambda m, t: interp.decompose_qk_input(m, m.run_with_cache(t)[1]),
        lambda m, t: interp.stacked_patterns(m.run_with_cache(t)[1], 2),
        lambda m, t: interp.full_ov_circuit(m, 1, 2).AB,
        lambda m, t: interp.k_composition_scores(m),
        lambda m, t: interp.patch_residual_by_position(m, t[1:2], m.run_with_cache(t[:1])[1], _metric),
        lambda m, t: interp.patch_head_output(m, t[1:2], m.run_with_cache(t[:1])[1], _metric),
        lambda m, t: interp.collect_activations(m, t, "blocks.0.hook_resid_post", batch_size=2),
    ],
    ids=["induction_scores_with_hooks", "zero_ablation", "mean_ablation", "direct_logit_attribution", "logit_lens",
         "decompose_qk_input", "stacked_patterns", "full_ov_circuit", "k_composition_scores", "patch_residual_by_position",
         "patch_head_output", "collect_activations"],
)
def test_interp_functions_agree(models, fn):
    theirs, mine = _both(models, fn)
    torch.testing.assert_close(torch.as_tensor(mine), torch.as_tensor(theirs), **TOL)
