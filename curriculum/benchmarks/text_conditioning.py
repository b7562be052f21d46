"""On-target rate of the shipped text-conditioned U-Net, by guidance scale, for each caption phrasing.

    python -m curriculum.benchmarks.text_conditioning                  # 200 samples per (phrasing, scale)
    python -m curriculum.benchmarks.text_conditioning --n-samples 50   # faster

For each scale, classifier-free guidance (DDIM, 25 steps) draws n_samples images, 20 per digit
named, for the held-out phrasing "a picture of the number {}" (never seen in training) and for a
training phrasing ("a handwritten {}"); the shipped judge (a classifier trained on clean real
digits, never used for guidance) says which digit each sample shows; "on target" is the fraction
judged as the digit the caption names. It also runs classifier guidance and CLIP guidance from the
same shipped models (CLIP with the held-out phrasing), with the U-Net given the empty caption as the
unconditional model.
"""

from __future__ import annotations

import argparse
import time

import torch

from curriculum.solutions.chapter4.guidance import (
    cfg_eps,
    classifier_guided_eps,
    clip_guided_eps,
    judge_features,
)
from curriculum.solutions.chapter4.text_conditioning import (
    HELD_OUT_TEMPLATES,
    guided_sample,
    load_model,
    schedule,
    shipped_tokenizer,
)
from curriculum.utils.image_data import DIGIT_WORDS


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-samples", type=int, default=200)
    p.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 3.0, 5.0])
    p.add_argument("--classifier-scales", type=float, nargs="+", default=[1.0, 3.0])
    p.add_argument("--clip-scales", type=float, nargs="+", default=[20.0, 50.0])
    p.add_argument("--steps", type=int, default=25)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    tok, sched = shipped_tokenizer(), schedule()
    unet, judge, clf, clip = (load_model(n) for n in ["unet", "judge", "classifier", "clip"])
    targets = torch.arange(10).repeat_interleave(args.n_samples // 10)
    shape = (len(targets), 1, 16, 16)
    null = tok([""]).expand(len(targets), -1)

    def rate(samples):
        return (judge_features(judge, samples)[1] == targets).float().mean().item()

    def sample(eps_fn):
        return guided_sample(eps_fn, shape, sched.alpha_bars, args.steps, generator=torch.Generator().manual_seed(0))

    print(f"{'guidance':>16} {'phrasing':>28} {'scale':>6} {'on target':>10} {'seconds':>8}")
    for template in [HELD_OUT_TEMPLATES[0], "a handwritten {}"]:
        ids = tok([template.format(DIGIT_WORDS[int(y)]) for y in targets])
        for s in args.scales:
            start = time.time()
            samples = sample(lambda x, t, s=s, ids=ids: cfg_eps(unet, x, t, ids, null, s))
            print(f"{'classifier-free':>16} {template:>28} {s:6.1f} {rate(samples):10.3f} {time.time() - start:8.1f}")

    def uncond(x, t):
        return unet(x, t, null[: len(x)])

    for s in args.classifier_scales:
        start = time.time()
        samples = sample(lambda x, t, s=s: classifier_guided_eps(uncond, clf, x, t, targets, s, sched.alpha_bars))
        print(f"{'classifier':>16} {'(labels)':>28} {s:6.1f} {rate(samples):10.3f} {time.time() - start:8.1f}")
    with torch.no_grad():
        text = clip.encode_text(tok([HELD_OUT_TEMPLATES[0].format(DIGIT_WORDS[int(y)]) for y in targets]))
    for s in args.clip_scales:
        start = time.time()
        samples = sample(lambda x, t, s=s: clip_guided_eps(uncond, clip, text, x, t, s, sched.alpha_bars))
        print(f"{'CLIP':>16} {HELD_OUT_TEMPLATES[0]:>28} {s:6.1f} {rate(samples):10.3f} {time.time() - start:8.1f}")


if __name__ == "__main__":
    main()
