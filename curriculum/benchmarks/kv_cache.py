"""KV-cache speedup and our cached generation vs Hugging Face `generate`, on a GPT-2-small-shaped model.

    python -m curriculum.benchmarks.kv_cache                   # 256 new tokens, GPT-2 small shape (124M), CPU
    python -m curriculum.benchmarks.kv_cache --new-tokens 64   # quicker

Weights are random (the timing does not depend on them), shared by our model and HF's; every run
uses greedy decoding, so all the generations must agree token for token, which is checked. The
cached generators (ours with manual attention, ours with SDPA, HF's) run --runs times each,
interleaved, in this one process, and the median is reported; the uncached one runs once (it is
the slow one). Targets: cached >= 1.0x HF generate, and >= 7x faster than uncached, at 256 tokens.

Two runs of the defaults on an otherwise idle 2-core x86 CPU (2 torch threads), seconds:

    run   no cache   KV cache (manual)   KV cache (SDPA)   HF generate   speed-up   manual / SDPA vs HF
    1        86.92                9.93              9.80         10.74      8.76x          1.08x / 1.10x
    2        77.27                9.71              9.68         10.78      7.96x          1.11x / 1.11x

A cached step is bound by memory bandwidth (every weight streamed once per token). The largest
matrix is the tied read-out, and GPT2.tied_readout multiplies a decoding step by a contiguous
[d_model, d_vocab] copy of W_E that the KV cache makes once per generation: MKL's matrix-vector
product streams that layout about 1.8x faster than the transposed view HF's lm_head uses.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import replace

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
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each cached generator (median reported)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)

    cfg = Config(tie_embeddings=True)  # GPT-2 small: 12 layers, d_model 768, 50,257 tokens
    hf_cfg = GPT2Config(vocab_size=cfg.d_vocab, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                        n_head=cfg.n_heads, bos_token_id=None, eos_token_id=None)
    hf = GPT2LMHeadModel(hf_cfg).eval()
    ours = hf_to_ours(hf, cfg).to(device).eval()
    ours_sdpa = GPT2(replace(cfg, attn_impl="sdpa")).to(device).eval()
    ours_sdpa.load_state_dict(ours.state_dict())
    hf = hf.to(device)
    prompt = torch.randint(0, cfg.d_vocab, (1, args.prompt_tokens), device=device)
    n = args.new_tokens
    print(f"device {device}, {sum(p.numel() for p in hf.parameters()) / 1e6:.0f}M parameters, "
          f"{args.prompt_tokens}-token prompt, {n} new tokens, greedy, torch threads {torch.get_num_threads()}; "
          f"cached generators: median of {args.runs} runs, interleaved")

    runners = {
        "ours, KV cache (manual attention)": lambda: generate(ours, prompt, n, use_cache=True),
        "ours, KV cache (SDPA)": lambda: generate(ours_sdpa, prompt, n, use_cache=True),
        "HF generate (its KV cache, SDPA)": lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                                                                min_new_tokens=n, do_sample=False, pad_token_id=0),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    outs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for fn in runners.values():  # warm-up: first-call allocations are not the generator's cost
            fn()
        for _ in range(args.runs):  # interleaved, so a burst of load on a shared machine hits every row
            for name, fn in runners.items():
                t, outs[name] = timed(fn)
                times[name].append(t)
        t_plain, out_plain = timed(lambda: generate(ours, prompt, n, use_cache=False))  # one run: it is the slow one
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ours_cached, ours_sdpa_cached, hf_name = runners
    assert torch.equal(out_plain, outs[ours_cached]), "cached and uncached generations differ"
    same_as_hf = all(torch.equal(outs[name], outs[hf_name]) for name in (ours_cached, ours_sdpa_cached))

    print("\n| run | seconds (median) | all runs | tokens/s |\n|---|---|---|---|")
    print(f"| ours, no cache (manual attention) | {t_plain:.2f} | 1 run | {n / t_plain:.1f} |")
    for name in runners:
        print(f"| {name} | {med[name]:.2f} | {', '.join(f'{t:.2f}' for t in times[name])} | {n / med[name]:.1f} |")
    print(f"\nKV-cache speedup (no cache / cache, manual attention): {t_plain / med[ours_cached]:.2f}x")
    for name in (ours_cached, ours_sdpa_cached):
        print(f"{name} vs HF generate (HF time / our time): {med[hf_name] / med[name]:.2f}x")
    print(f"same tokens as HF generate: {same_as_hf}")


if __name__ == "__main__":
    main()
