"""DDPM-1000 vs DDIM-50/20/10 on the shipped 4.2 checkpoint (network calls, time, sample quality), then the
shipped 4.3 text-conditioned U-Net's on-target rate by guidance scale, in one run.

    python -m curriculum.benchmarks.diffusion_sampling                         # both tables
    python -m curriculum.benchmarks.diffusion_sampling --skip-text             # DDPM/DDIM table only
    python -m curriculum.benchmarks.diffusion_sampling --train-guidance        # also train and compare guidance methods

Each sampler draws 3 batches of 300 samples (seeds 0, 1, 2: the same starting noise for every
sampler). FD is given per batch and on the 900 samples pooled; the ratio uses the pooled FD, because
at 300 samples the FD of one sampler moves by up to 0.4 from one seed to the next, more than the gaps
between samplers. One run of the defaults with `--skip-text`, on an otherwise idle 2-core CPU (2 torch
threads; time is per batch of 300):

    sampler    net calls  time (s)  ms/call  speed-up  FD pooled  FD / DDPM   FD per batch (mean +- sd)
    DDPM-1000       1000     256.4      256      1.0x      0.577       1.00   0.674, 0.936, 0.516 (0.709 +- 0.212)
    DDIM-50           50      11.6      232     22.1x      0.727       1.26   0.777, 0.985, 0.701 (0.821 +- 0.147)
    DDIM-20           20       4.8      240     53.4x      0.715       1.24   0.746, 1.017, 0.691 (0.818 +- 0.175)
    DDIM-10           10       2.7      267     96.0x      0.758       1.31   0.719, 1.118, 0.791 (0.876 +- 0.213)
    real train                                             0.343     (FD of 449 training digits: the floor)

The samples, and so every FD, are the same in every run (seeded noise, a seeded judge); only the
times move.

An earlier run of the text table, `--text-samples 200`, same machine:

    text-conditioned U-Net, classifier-free guidance, DDIM-25, 200 samples (20 per digit) per row
    phrasing                       scale 0   scale 1   scale 3   scale 5
    "a picture of the number {}"     0.095     0.905     1.000     1.000   (held out: never seen in training)
    "a handwritten {}"               0.095     0.990     1.000     1.000   (a training phrasing)
    classifier guidance (labels), scale 1 / 3: 0.645 / 0.890; CLIP guidance, scale 20 / 50: 0.660 / 0.720

Targets: DDIM-50 within 10% of DDPM-1000's FD at >= 18x less wall time; held-out-phrasing samples on
the named digit >= 90% (met from scale 1). The FD target is missed on this checkpoint: pooled over 900
samples DDIM-50 is 1.26x DDPM-1000 (a single batch of 300 had shown 1.15x). Time: DDIM-50 makes 20x
fewer network calls, and the wall-time ratio follows the time per call, which moves by about 10%
from run to run on a shared machine: 22.1x in this run, 21.2x and 17.5x in earlier ones (in the
17.5x run DDIM's calls took 0.31 s against DDPM's 0.27 s; here 0.23 s against 0.26 s).

What did not close the FD gap. Pooled over the same 3 batches of 300, with this script's judge
(DDPM-1000: 0.577; DDIM-50 as shipped: 0.727): DDIM-50 without clipping x0_hat 0.726, DDIM-100 0.735,
the quadratic timestep sequence of the DDIM paper's CIFAR-10 runs 0.816, eta = 0.1 at 50 steps 0.946.
So the deterministic path lands near 0.73 however finely it is cut, and a little noise at coarse steps
hurts; only many small noisy steps (DDPM) reach 0.58. Each measured on one batch of 300 (within the
seed spread above):
training the checkpoint longer (3,000 steps, EMA 0.999, lr 2e-3 or 1e-3) improves DDPM-1000 to FD
0.607 / 0.692 but takes DDIM-50 to 2.16x / 2.10x DDPM's FD; "trailing" timestep spacing (0.775 against
0.777) and the unclipped direction that diffusers uses by default (0.936) leave DDIM-50 where it is
or worse, and eta = 0.3 at 50 steps gives 0.951. The likely reason: DDPM's fresh noise at each step
washes out errors in the learned noise prediction, while DDIM's deterministic path carries them to
the end.

More steps do not help, and a better-trained model makes the gap wider. On the first batch (seed 0):

    model                                         DDPM-1000  DDIM-50  DDIM-1000 (eta = 0)  DDIM-50 / DDPM
    shipped (1,500 steps, lr 2e-3 constant)         0.674     0.777        0.806                1.15
    same steps, lr cosine-decayed from 2e-3         0.465     0.913        0.960                1.96
    shipped recipe, loss weighted min(1/a_t, 10)    0.963     1.238          -                  1.29

DDIM with all 1000 steps lands where DDIM-50 does, so 50 steps already solve the deterministic
sampler's ODE closely; the gap is between that ODE and DDPM's stochastic sampler of the same network.
The cosine-decayed model has a slightly lower loss on the held-out digits (0.1279 against 0.1293 at
t < 50, 0.0608 against 0.0618 at 50 <= t < 200, equal above), samples far better with DDPM, and
worse with DDIM. Weighting the loss towards high noise (where DDIM's path picks each sample's
shape) makes both samplers worse. So the FD target is not a matter of sampler steps or of training longer on these
1,348 digits, and none of the DDIM variants above closes it.

Where DDIM-50's extra FD comes from (seed 0, one batch of 300 each, FD split into FID's two terms):

    samples     FD     mean term  covariance term  trace of feature cov  pixel std  |x| > 0.9  judge's classes
    DDIM-50    0.777     0.138         0.639              27.7              0.621      0.367     32 26 30 23 36 34 33 36 20 30
    DDPM-1000  0.674     0.144         0.530              28.7              0.633      0.386     24 31 33 28 24 28 35 34 22 41
    train      0.343     0.116         0.226              32.2              0.638      0.393     (real held-out: trace 31.5)

The mean term and the class balance are the same for both samplers; the gap is all in the covariance
term. DDIM's digits have a little less contrast (fewer saturated pixels, a lower pixel std) and its
features vary less from sample to sample: the deterministic path lands on smoother, more alike
digits, where DDPM's fresh noise keeps some of the data's spread.

Quality is measured offline with a "judge": a classifier trained on the real training images.
Fréchet distance (FD) compares the judge's penultimate features of the samples with those of real
held-out images (FID's formula, on our judge); "on target" is the fraction of samples the judge
assigns to the digit they were conditioned on.

With --train-guidance (--quick: 8x8 digits and a small U-Net, what fits a 2-core CPU; otherwise 16x16
digits, MNIST online, and the full U-Net) it also trains one class-conditional U-Net with label
dropout (unconditional samples with the null label, and classifier-free guidance), a noise-conditioned
classifier (classifier guidance) and a CLIP (CLIP guidance), and compares the three; those numbers
depend on --train-steps.
"""

from __future__ import annotations

import argparse
import time

import torch

from curriculum.solutions.chapter4.clip import CLIP, CLIPConfig, CLIPTrainConfig, tokenizer_for, train_clip, zero_shot_accuracy
from curriculum.solutions.chapter4.ddpm import (
    CHECKPOINT_T,
    TrainConfig,
    UNet,
    UNetConfig,
    checkpoint_split,
    ddim_sample,
    load_checkpoint,
    train_unet,
)
from curriculum.solutions.chapter4.guidance import (
    NoisyClassifier,
    cfg_eps,
    classifier_guided_eps,
    clip_guided_eps,
    sample_quality,
    train_classifier,
)
from curriculum.solutions.chapter4.toy_diffusion import Schedule, ddpm_sample, linear_betas
from curriculum.benchmarks import text_conditioning
from curriculum.utils import get_device
from curriculum.utils.image_data import load_image_dataset


def sampling_table(n_samples: int, seed: int, device: torch.device, n_batches: int = 3) -> None:
    """DDPM-1000 vs DDIM-50/20/10 (eta = 0) on the shipped 16x16-digits checkpoint, judged against the
    449 digits it never saw by a classifier trained on the 1348 it was trained on.

    Each sampler draws `n_batches` batches of `n_samples`, batch i from seed `seed + i`, so every
    sampler starts from the same noise. FD is reported per batch (mean and spread: at a few hundred
    samples it moves by tens of percent from one seed to the next) and on all batches pooled, which is
    the number the ratio uses."""
    train, test = checkpoint_split()
    c, h, _ = train.image_shape
    judge = NoisyClassifier(c, len(train.class_names), base=16)
    train_classifier(judge, train.images, train.labels, None, n_steps=1000)
    judge.to(device)
    real = test.images.to(device)
    print(f"judge on {train.name}: held-out accuracy {sample_quality(judge, real, train.images.to(device), test.labels).accuracy:.3f}")
    net = load_checkpoint().to(device)
    sched = Schedule(linear_betas(CHECKPOINT_T))
    calls = [0]

    def model(x, t):
        calls[0] += 1
        return net(x, t)

    def sample(name: str, n_steps: int, batch_seed: int) -> tuple[torch.Tensor, float, int]:
        g = torch.Generator().manual_seed(batch_seed)
        calls[0] = 0
        start = time.perf_counter()
        if name == "DDPM":
            x = ddpm_sample(model, (n_samples, c, h, h), sched, generator=g, clip_x0=1.0, device=device)
        else:
            x = ddim_sample(model, (n_samples, c, h, h), sched.alpha_bars, n_steps, eta=0.0, generator=g, clip_x0=1.0, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return x, time.perf_counter() - start, calls[0]

    sample("DDIM", 10, seed)  # warm-up: first-call allocations and kernel selection are not the sampler's cost
    rows = []
    for name, n_steps in [("DDPM", CHECKPOINT_T), ("DDIM", 50), ("DDIM", 20), ("DDIM", 10)]:
        # time: DDPM's batch averages over 1000 calls; a short DDIM batch is the median of 5 timed runs
        # of the first batch (deterministic at eta = 0, so the samples are identical)
        runs = [sample(name, n_steps, seed) for _ in range(1 if name == "DDPM" else 5)]
        secs, n_calls = sorted(r[1] for r in runs)[len(runs) // 2], runs[0][2]
        batches = [runs[0][0]] + [sample(name, n_steps, seed + i)[0] for i in range(1, n_batches)]
        per_batch = torch.tensor([sample_quality(judge, x, real).frechet for x in batches])
        pooled = sample_quality(judge, torch.cat(batches), real).frechet
        rows.append((f"{name}-{n_steps}", n_calls, secs, per_batch, pooled))
    fd_real = sample_quality(judge, train.images.to(device)[: len(real)], real).frechet
    base_time, base_fd = rows[0][2], rows[0][4]
    print(f"\nshipped checkpoint, {n_batches} batches of {n_samples} samples per sampler (seeds {seed}..{seed + n_batches - 1}, "
          f"eta = 0 for DDIM), judged against {len(real)} held-out digits; time is per batch")
    print(f"{'sampler':<10} {'net calls':>9} {'time (s)':>9} {'ms/call':>8} {'speed-up':>9} {'FD pooled':>10} {'FD / DDPM':>10}   FD per batch (mean +- sd)")
    for label, n_calls, secs, per_batch, pooled in rows:
        spread = f"{per_batch.mean():.3f} +- {per_batch.std():.3f}" if len(per_batch) > 1 else "one batch"
        print(f"{label:<10} {n_calls:9d} {secs:9.1f} {1e3 * secs / n_calls:8.0f} {base_time / secs:8.1f}x {pooled:10.3f} {pooled / base_fd:10.2f}   "
              f"{', '.join(f'{v:.3f}' for v in per_batch)} ({spread})")
    print(f"{'real train':<10} {'':>9} {'':>9} {'':>8} {'':>9} {fd_real:10.3f}     (FD of {len(real)} training digits: the floor)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8x8 images, small models, few steps (CPU)")
    p.add_argument("--train-steps", type=int)
    p.add_argument("--n-samples", type=int)
    p.add_argument("--cfg-scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    p.add_argument("--classifier-scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    p.add_argument("--clip-scales", type=float, nargs="+", default=[10.0, 30.0, 100.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampling-samples", type=int, default=300, help="samples per batch in the DDPM/DDIM table")
    p.add_argument("--sampling-batches", type=int, default=3, help="seeded batches per sampler in the DDPM/DDIM table (FD pooled over them)")
    p.add_argument("--text-samples", type=int, default=200, help="samples per (phrasing, scale) in the text-conditioning table")
    p.add_argument("--skip-text", action="store_true", help="skip the text-conditioning table")
    p.add_argument("--train-guidance", action="store_true",
                   help="also train a class-conditional U-Net, a noisy classifier and CLIP here and compare guidance methods")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    device = get_device()
    sampling_table(args.sampling_samples, args.seed, device, args.sampling_batches)
    if not args.skip_text:
        print("\ntext-conditioned U-Net (shipped 4.3 model): on-target rate by guidance scale, DDIM-25")
        text_conditioning.main(["--n-samples", str(args.text_samples)])
    if not args.train_guidance:
        return
    size = 8 if args.quick else 16
    train_steps = args.train_steps or (2000 if args.quick else 20_000)
    n_samples = args.n_samples or (200 if args.quick else 2000)

    ds = load_image_dataset(offline_size=size).value
    train, test = ds.split(n_test=min(500, len(ds.labels) // 4), seed=args.seed)
    c, h, _ = ds.image_shape
    sched = Schedule(linear_betas(1000))
    print(f"data: {ds.name}, {len(train.labels)} train / {len(test.labels)} test; device {device}")

    t0 = time.perf_counter()
    judge = NoisyClassifier(c, len(ds.class_names), base=16)
    train_classifier(judge, train.images, train.labels, None, n_steps=600 if args.quick else 2000)
    judge_acc = sample_quality(judge, test.images, train.images, test.labels)
    print(f"judge: test accuracy {judge_acc.accuracy:.3f}; FD(real test, real train) {judge_acc.frechet:.3f}")
    noisy_clf = NoisyClassifier(c, len(ds.class_names), base=16)
    train_classifier(noisy_clf, train.images, train.labels, sched.alpha_bars, n_steps=1500 if args.quick else 5000)
    tok = tokenizer_for(train)
    clip = CLIP(CLIPConfig(image_shape=ds.image_shape, vocab_size=len(tok.vocab), max_len=tok.max_len))
    train_clip(clip, train, tok, CLIPTrainConfig(n_steps=500 if args.quick else 3000, lr=3e-3))
    print(f"CLIP zero-shot accuracy on held-out images: {zero_shot_accuracy(clip, test, tok):.3f}")

    ucfg = (
        UNetConfig(image_size=h, in_channels=c, base_channels=16, channel_mults=(1, 2), attn_resolutions=(4,), n_heads=2, dropout=0.0, num_classes=10)
        if args.quick
        else UNetConfig(image_size=h, in_channels=c, num_classes=10)
    )
    model = UNet(ucfg)
    tcfg = TrainConfig(n_steps=train_steps, batch_size=64 if args.quick else 128, lr=2e-3 if args.quick else 2e-4, ema_decay=0.995 if args.quick else 0.999, p_uncond=0.1, device=str(device))
    ema, losses = train_unet(model, train.images, sched, tcfg, labels=train.labels)
    net = ema.model.to(device)
    judge.to(device)
    noisy_clf.to(device)
    clip.to(device).eval()
    print(f"training done in {time.perf_counter() - t0:.0f}s; final loss (mean of last 100) {sum(losses[-100:]) / 100:.4f}")

    null = torch.full((n_samples,), ucfg.num_classes, device=device)
    uncond = lambda x, t: net(x, t, null[: len(x)])  # noqa: E731
    real = test.images.to(device)

    per_class = n_samples // 10
    targets = torch.arange(10, device=device).repeat_interleave(per_class)
    guided = [("classifier-free", w, lambda x, t, w=w: cfg_eps(net, x, t, targets, torch.full_like(targets, ucfg.num_classes), w)) for w in args.cfg_scales]
    guided += [
        ("classifier", s, lambda x, t, s=s: classifier_guided_eps(uncond, noisy_clf, x, t, targets, s, sched.alpha_bars))
        for s in args.classifier_scales
    ]
    with torch.no_grad():
        text_emb = clip.encode_text(tok([ds.prompt(int(y)) for y in targets]).to(device))
    guided += [
        ("CLIP", s, lambda x, t, s=s: clip_guided_eps(uncond, clip, text_emb, x, t, s, sched.alpha_bars))
        for s in args.clip_scales
    ]
    print(f"\nguided samples, DDIM-50, {per_class} per class")
    print(f"{'guidance':<16} {'scale':>6} {'on-target':>9} {'FD':>8}")
    for label, scale, eps_fn in guided:
        g = torch.Generator().manual_seed(args.seed)
        x = ddim_sample(eps_fn, (len(targets), c, h, h), sched.alpha_bars, 50, generator=g, clip_x0=1.0, device=device)
        q = sample_quality(judge, x, real, targets)
        print(f"{label:<16} {scale:6.1f} {q.accuracy:9.3f} {q.frechet:8.3f}")


if __name__ == "__main__":
    main()
