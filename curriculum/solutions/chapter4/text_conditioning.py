"""4.3 (part 3) Text conditioning: a U-Net that reads a caption through cross-attention.

Every position of the U-Net's feature map asks a question (a query) and the caption's token states
answer (keys and values): softmax(Q K^T / sqrt(d)) V, with the pad tokens masked out. A pooled
summary of the caption is also added to the timestep embedding (as Imagen does). Trained with
caption dropout (an empty caption 10% of the time), the same network predicts the noise with and
without its caption, which is all classifier-free guidance needs.

One phrasing ("a picture of the number {}") is held out of training, so a caption in that phrasing
tests whether the model learned to read the digit word rather than memorise whole captions.

The shipped models of 4.3 (this U-Net, the CLIP of `clip.py` and the two classifiers of
`guidance.py`, each a safetensors file under data/chapter4/) are rebuilt by

    nice -n 10 python -m curriculum.solutions.chapter4.text_conditioning

in under 30 minutes on 2 CPU cores (measured: 23 minutes of wall time, 13 of CPU time, with
`--threads 1` on a 2-core machine shared with other jobs; the U-Net takes most of it). Add
`--only unet` to retrain one model; `--threads 1` runs faster on a machine other jobs keep busy.
The script prints: text U-Net final loss 0.021, judge and noisy classifier 0.997 and 0.987 accurate
on clean test digits, CLIP 0.987 zero-shot accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.solutions.chapter4.clip import (
    CLIP,
    CLIPConfig,
    CLIPTrainConfig,
    TextEncoder,
    WordTokenizer,
    pool_last_token,
    tokenizer_for,
    train_clip,
    zero_shot_accuracy,
)
from curriculum.solutions.chapter4.ddpm import Downsample, ResBlock, Upsample, ddim_sample
from curriculum.solutions.chapter4.guidance import (
    NoisyClassifier,
    judge_features,
    train_classifier,
)
from curriculum.solutions.chapter4.toy_diffusion import (
    Schedule,
    diffusion_loss,
    linear_betas,
    sinusoidal_embedding,
)
from curriculum.utils.image_data import DIGIT_TEMPLATES, ImageDataset, digits

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "chapter4"
HELD_OUT_TEMPLATES = ("a picture of the number {}",)  # never seen in training: a test of reading the digit word
TRAIN_TEMPLATES = tuple(t for t in DIGIT_TEMPLATES if t not in HELD_OUT_TEMPLATES)
N_TRAIN_STEPS = 1000  # the diffusion schedule of every 4.3 model: linear betas 1e-4 .. 0.02 over 1000 steps


def schedule() -> Schedule:
    return Schedule(linear_betas(N_TRAIN_STEPS))


# ---------------------------------------------------------------------------------------------
# Cross-attention: image positions ask, caption tokens answer
# ---------------------------------------------------------------------------------------------
class CrossAttention(nn.Module):
    """Multi-head cross-attention from a feature map (queries) to token states (keys, values), with a residual.

        q = to_q(GroupNorm(x)) at each of the h*w positions      (b, h*w, ch)
        k, v = to_k(context), to_v(context)                        (b, seq, ch): d_context -> ch
        out = softmax(q k^T / sqrt(d_head) over the tokens, pads masked) v, per head
        return x + to_out(out) reshaped back to (b, ch, h, w)

    context_mask is True at real tokens and False at padding.
    """

    def __init__(self, ch: int, d_context: int, n_heads: int = 4, n_groups: int = 8):
        super().__init__()
        if ch % n_heads:
            raise ValueError(f"channels {ch} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.norm = nn.GroupNorm(n_groups, ch)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(d_context, ch)
        self.to_v = nn.Linear(d_context, ch)
        self.to_out = nn.Linear(ch, ch)

    def forward(
        self, x: Float[Tensor, "b ch h w"], context: Float[Tensor, "b seq d_context"], context_mask: Bool[Tensor, "b seq"]
    ) -> Float[Tensor, "b ch h w"]:
        # EXERCISE: queries from the normalised positions, keys and values from the tokens, split heads; masked softmax over the tokens; merge heads, project, add x
        h, w = x.shape[-2:]
        q = self.to_q(einops.rearrange(self.norm(x), "b c h w -> b (h w) c"))
        q = einops.rearrange(q, "b n (heads d) -> b heads n d", heads=self.n_heads)
        k = einops.rearrange(self.to_k(context), "b s (heads d) -> b heads s d", heads=self.n_heads)
        v = einops.rearrange(self.to_v(context), "b s (heads d) -> b heads s d", heads=self.n_heads)
        scores = einops.einsum(q, k, "b heads n d, b heads s d -> b heads n s") / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~context_mask[:, None, None, :], float("-inf"))
        out = einops.einsum(scores.softmax(dim=-1), v, "b heads n s, b heads s d -> b heads n d")
        out = self.to_out(einops.rearrange(out, "b heads n d -> b n (heads d)"))
        return x + einops.rearrange(out, "b (h w) c -> b c h w", h=h, w=w)
        # END EXERCISE


# ---------------------------------------------------------------------------------------------
# The text-conditioned U-Net
# ---------------------------------------------------------------------------------------------
@dataclass
class TextUNetConfig:
    image_size: int = 16
    in_channels: int = 1
    base_channels: int = 24  # levels have 24 (16x16) and 48 (8x8) channels
    n_heads: int = 4
    n_groups: int = 8
    vocab_size: int = 64
    max_len: int = 10
    d_text: int = 48
    n_text_layers: int = 2

    def text_config(self) -> CLIPConfig:
        return CLIPConfig(vocab_size=self.vocab_size, max_len=self.max_len, d_text=self.d_text,
                          n_text_layers=self.n_text_layers, n_heads=self.n_heads, d_embed=4 * self.base_channels)


class TextUNet(nn.Module):
    """eps_theta(x_t, t, caption): a two-level U-Net (16x16 and 8x8) with cross-attention at 8x8.

        conv_in -> [ResBlock] -> skip0 -> Downsample -> [ResBlock, CrossAttention] -> skip1
        -> middle: ResBlock, CrossAttention, ResBlock
        -> cat skip1 -> [ResBlock, CrossAttention] -> Upsample -> cat skip0 -> [ResBlock] -> conv_out

    The caption's token states (from its own causal text encoder, trained with the U-Net) are the
    keys and values of every CrossAttention; their pooled <eos> state, projected, is added to the
    timestep embedding that every ResBlock receives.
    """

    def __init__(self, cfg: TextUNetConfig):
        super().__init__()
        self.cfg = cfg
        c, d_emb = cfg.base_channels, 4 * cfg.base_channels
        self.text_encoder = TextEncoder(cfg.text_config())
        self.time_mlp = nn.Sequential(nn.Linear(c, d_emb), nn.SiLU(), nn.Linear(d_emb, d_emb))
        self.conv_in = nn.Conv2d(cfg.in_channels, c, 3, padding=1)
        self.down0 = ResBlock(c, c, d_emb, cfg.n_groups)
        self.downsample = Downsample(c)
        self.down1 = ResBlock(c, 2 * c, d_emb, cfg.n_groups)
        self.down1_attn = CrossAttention(2 * c, cfg.d_text, cfg.n_heads, cfg.n_groups)
        self.mid1 = ResBlock(2 * c, 2 * c, d_emb, cfg.n_groups)
        self.mid_attn = CrossAttention(2 * c, cfg.d_text, cfg.n_heads, cfg.n_groups)
        self.mid2 = ResBlock(2 * c, 2 * c, d_emb, cfg.n_groups)
        self.up1 = ResBlock(4 * c, 2 * c, d_emb, cfg.n_groups)
        self.up1_attn = CrossAttention(2 * c, cfg.d_text, cfg.n_heads, cfg.n_groups)
        self.upsample = Upsample(2 * c)
        self.up0 = ResBlock(3 * c, c, d_emb, cfg.n_groups)
        self.norm_out = nn.GroupNorm(cfg.n_groups, c)
        self.conv_out = nn.Conv2d(c, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start as a zero predictor
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Float[Tensor, "b c h w"], t: Int[Tensor, "b"], ids: Int[Tensor, "b seq"]) -> Float[Tensor, "b c h w"]:
        states = self.text_encoder.token_states(ids)  # (b, seq, d_text)
        mask = ids != WordTokenizer.PAD
        pooled = self.text_encoder.proj(pool_last_token(states, ids))
        emb = self.time_mlp(sinusoidal_embedding(t, self.cfg.base_channels)) + pooled
        h0 = self.down0(self.conv_in(x), emb)
        h1 = self.down1_attn(self.down1(self.downsample(h0), emb), states, mask)
        h = self.mid2(self.mid_attn(self.mid1(h1, emb), states, mask), emb)
        h = self.up1_attn(self.up1(torch.cat([h, h1], dim=1), emb), states, mask)
        h = self.up0(torch.cat([self.upsample(h), h0], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


# ---------------------------------------------------------------------------------------------
# Training with caption dropout
# ---------------------------------------------------------------------------------------------
@dataclass
class TextTrainConfig:
    n_steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3  # decayed to zero along a cosine
    p_uncond: float = 0.1  # probability of replacing a caption by "" (the unconditional input)
    seed: int = 0


def train_text_unet(
    model: TextUNet,
    dataset: ImageDataset,
    tokenizer: WordTokenizer,
    sched: Schedule,
    cfg: TextTrainConfig,
    templates: tuple[str, ...] = TRAIN_TEMPLATES,
) -> list[float]:
    """Each step: a random batch of images; for each, a caption in a random training template, replaced
    by the empty caption "" with probability p_uncond; the diffusion loss with the tokenized captions
    passed to the model as `ids`; an AdamW step (gradient norm clipped at 1, learning rate on a cosine)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    lr_at = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / cfg.n_steps)))
    model.train()
    losses = []
    for _ in tqdm(range(cfg.n_steps), desc="training the text-conditioned U-Net"):
        # EXERCISE: sample a batch and its captions (empty with probability p_uncond), tokenize, diffusion loss with ids=..., optimiser step
        idx = torch.randint(len(dataset.labels), (cfg.batch_size,))
        captions = [
            "" if rng.random() < cfg.p_uncond else rng.choice(templates).format(dataset.class_names[int(y)])
            for y in dataset.labels[idx]
        ]
        loss = diffusion_loss(model, dataset.images[idx], sched.alpha_bars, ids=tokenizer(captions))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lr_at.step()
        # END EXERCISE
        losses.append(loss.item())
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------
# Sampling with any guided noise prediction
# ---------------------------------------------------------------------------------------------
def guided_sample(
    eps_fn,
    shape: tuple[int, ...],
    alpha_bars: Float[Tensor, "T"],
    n_steps: int = 25,
    generator: torch.Generator | None = None,
    clip_x0: float = 1.0,
    device: torch.device | str = "cpu",
) -> Float[Tensor, "b c h w"]:
    """4.2's deterministic DDIM (eta = 0, x0_hat clamped and eps recomputed) with `eps_fn(x_t, t_batch)`,
    any (guided) noise prediction, in place of the model: guidance changes the prediction, not the sampler."""
    return ddim_sample(eps_fn, shape, alpha_bars, n_steps, eta=0.0, generator=generator, clip_x0=clip_x0, device=device)


# ---------------------------------------------------------------------------------------------
# Shipped checkpoints: save, load, rebuild
# ---------------------------------------------------------------------------------------------
FILES = {"clip": "43_clip.safetensors", "unet": "43_text_unet.safetensors",
         "classifier": "43_noisy_classifier.safetensors", "judge": "43_judge.safetensors"}


def save_model(model: nn.Module, config: dict, name: str) -> Path:
    from safetensors.torch import save_file

    path = DATA_DIR / FILES[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(config)})
    return path


def load_model(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """One of the shipped 4.3 models, in eval mode: "clip", "unet" (TextUNet), "classifier" (noisy) or "judge" (clean)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = DATA_DIR / FILES[name]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: rebuild it with `nice -n 10 python -m curriculum.solutions.chapter4.text_conditioning`")
    with safe_open(str(path), "pt") as f:
        config = json.loads(f.metadata()["config"])
    if name == "clip":
        config["image_shape"] = tuple(config["image_shape"])
        model = CLIP(CLIPConfig(**config))
    elif name == "unet":
        model = TextUNet(TextUNetConfig(**config))
    else:
        model = NoisyClassifier(**config)
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()


def shipped_tokenizer() -> WordTokenizer:
    """The tokenizer every shipped 4.3 model was trained with (every word of every digit template)."""
    return tokenizer_for(digits(8))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild the shipped 4.3 models under data/chapter4/.")
    parser.add_argument("--only", choices=sorted(FILES), action="append", help="retrain only these (repeatable)")
    parser.add_argument("--unet-steps", type=int, default=TextTrainConfig.n_steps)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a busy machine)")
    args = parser.parse_args(argv)
    todo = args.only or list(FILES)
    torch.set_num_threads(args.threads)
    train, test = digits(16).split(n_test=300)
    tok, sched = shipped_tokenizer(), schedule()
    start = time.time()
    if "unet" in todo:
        cfg = TextUNetConfig(vocab_size=len(tok.vocab), max_len=tok.max_len)
        unet = TextUNet(cfg)
        losses = train_text_unet(unet, train, tok, sched, TextTrainConfig(n_steps=args.unet_steps))
        save_model(unet, asdict(cfg), "unet")
        print(f"text U-Net: mean loss over the last 100 steps {sum(losses[-100:]) / 100:.4f} ({time.time() - start:.0f} s)", flush=True)
    for name, alpha_bars, n_steps in [("judge", None, 600), ("classifier", sched.alpha_bars, 1200)]:
        if name in todo:
            config = {"in_channels": 1, "n_classes": 10, "base": 16}
            clf = NoisyClassifier(**config)
            train_classifier(clf, train.images, train.labels, alpha_bars, n_steps=n_steps)
            save_model(clf, config, name)
            _, pred = judge_features(clf, test.images)
            print(f"{name}: accuracy on clean test digits {(pred == test.labels).float().mean():.3f} ({time.time() - start:.0f} s)", flush=True)
    if "clip" in todo:
        cfg = CLIPConfig(vocab_size=len(tok.vocab), max_len=tok.max_len)
        clip = CLIP(cfg)
        train_clip(clip, train, tok, CLIPTrainConfig(n_steps=600, batch_size=128, lr=1e-3))
        save_model(clip, asdict(cfg), "clip")
        acc = zero_shot_accuracy(clip.eval(), test, tok)
        print(f"CLIP: zero-shot accuracy on {len(test.labels)} test digits {acc:.3f} ({time.time() - start:.0f} s)", flush=True)
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
