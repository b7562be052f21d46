"""KV-cache speedup and our cached generation vs Hugging Face `generate`, on a GPT-2-small-shaped model.

    python -m curriculum.benchmarks.kv_cache                   # 256 new tokens, GPT-2 small shape (124M), CPU
    python -m curriculum.benchmarks.kv_cache --new-tokens 64   # quicker

Weights are random (the timing does not depend on them), shared by our model and HF's; every run
uses greedy decoding, so all three generations must agree token for token, which is checked.
Prints wall times from one run and the ratios between them.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from curriculum.solutions.chapter1.gpt2 import Config, GPT2, generate
from curriculum.utils import get_device


def hf_to_ours(hf: GPT2LMHeadModel, cfg: Config) -> GPT2:
    """HF GPT-2 weights into our naming, through TransformerLens's bridge (as in section 1.1)."""
    from transformer_lens.model_bridge import TransformerBridge

    from curriculum.utils.offline import load_tokenizer

    bridge = TransformerBridge.boot_transformers("gpt2", hf_model=copy.deepcopy(hf), tokenizer=load_tokenizer().value)
    bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    model = GPT2(cfg)
    params = bridge.tl_parameters()
    model.load_state_dict({k: params[k] for k in model.state_dict()})
    return model


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=8)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)

    cfg = Config(tie_embeddings=True)  # GPT-2 small: 12 layers, d_model 768, 50,257 tokens
    hf_cfg = GPT2Config(vocab_size=cfg.d_vocab, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                        n_head=cfg.n_heads, bos_token_id=None, eos_token_id=None)
    hf = GPT2LMHeadModel(hf_cfg).eval()
    ours = hf_to_ours(hf, cfg).to(device).eval()
    hf = hf.to(device)
    prompt = torch.randint(0, cfg.d_vocab, (1, args.prompt_tokens), device=device)
    print(f"device {device}, {sum(p.numel() for p in hf.parameters()) / 1e6:.0f}M parameters, "
          f"{args.prompt_tokens}-token prompt, {args.new_tokens} new tokens, greedy, torch threads {torch.get_num_threads()}")

    with torch.no_grad():
        generate(ours, prompt, 4, use_cache=True)  # warm-up
        t_plain, out_plain = timed(lambda: generate(ours, prompt, args.new_tokens, use_cache=False, progress=True))
        t_cache, out_cache = timed(lambda: generate(ours, prompt, args.new_tokens, use_cache=True, progress=True))
        t_hf, out_hf = timed(lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=args.new_tokens,
                                                 min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0))
    assert torch.equal(out_plain, out_cache), "cached and uncached generations differ"
    same_as_hf = torch.equal(out_cache, out_hf)

    print(f"\n| run | seconds | tokens/s |\n|---|---|---|")
    for name, t in [("ours, no cache", t_plain), ("ours, KV cache", t_cache), ("HF generate (its KV cache)", t_hf)]:
        print(f"| {name} | {t:.2f} | {args.new_tokens / t:.1f} |")
    print(f"\nKV-cache speedup (no cache / cache): {t_plain / t_cache:.2f}x")
    print(f"ours cached vs HF generate (HF time / our time): {t_hf / t_cache:.2f}x")
    print(f"same tokens as HF generate: {same_as_hf}")


if __name__ == "__main__":
    main()
