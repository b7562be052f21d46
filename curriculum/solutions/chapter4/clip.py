"""4.3 (part 1) CLIP: contrastive image-text pretraining, from scratch on captioned digits.

An image encoder and a text encoder map into one embedding space; the symmetric contrastive loss
pulls each image towards its own caption and away from the other captions in the batch (and vice
versa). Zero-shot classification then needs no classifier head: embed one prompt per class and
pick the prompt closest to the image. Online, the same zero-shot recipe runs on OpenAI's CLIP.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.utils.image_data import ImageDataset


# ---------------------------------------------------------------------------------------------
# A word-level tokenizer (our captions use a few dozen words)
# ---------------------------------------------------------------------------------------------
class WordTokenizer:
    PAD, BOS, EOS, UNK = 0, 1, 2, 3

    def __init__(self, texts: list[str], max_len: int = 12):
        words = sorted({w for text in texts for w in self.split(text)})
        self.vocab = ["<pad>", "<bos>", "<eos>", "<unk>"] + words
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9\-]+", text.lower())

    def __call__(self, texts: list[str]) -> Int[Tensor, "batch max_len"]:
        """<bos> words <eos> <pad>...; the encoder reads its summary at <eos>."""
        ids = torch.full((len(texts), self.max_len), self.PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [self.BOS] + [self.index.get(w, self.UNK) for w in self.split(text)][: self.max_len - 2] + [self.EOS]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids


def tokenizer_for(dataset: ImageDataset) -> WordTokenizer:
    return WordTokenizer([t.format(c) for t in dataset.templates for c in dataset.class_names])


# ---------------------------------------------------------------------------------------------
# The two encoders
# ---------------------------------------------------------------------------------------------
@dataclass
class CLIPConfig:
    image_shape: tuple[int, int, int] = (1, 16, 16)
    vocab_size: int = 64
    max_len: int = 12
    d_embed: int = 64  # the shared embedding space
    image_channels: int = 32
    d_text: int = 64
    n_text_layers: int = 2
    n_heads: int = 4
    init_temperature: float = 0.07  # CLIP's initial temperature; the model learns log(1 / temperature)


class ImageEncoder(nn.Module):
    """Three conv stages (the last two halve the resolution), global average pool, linear projection."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        c, ch = cfg.image_shape[0], cfg.image_channels
        self.net = nn.Sequential(
            nn.Conv2d(c, ch, 3, padding=1), nn.GroupNorm(8, ch), nn.SiLU(),
            nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * ch), nn.SiLU(),
            nn.Conv2d(2 * ch, 2 * ch, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * ch), nn.SiLU(),
        )  # fmt: skip
        self.proj = nn.Linear(2 * ch, cfg.d_embed)

    def forward(self, images: Float[Tensor, "b c h w"]) -> Float[Tensor, "b d_embed"]:
        return self.proj(self.net(images).mean(dim=(-2, -1)))


class TextEncoder(nn.Module):
    """A small pre-norm Transformer over word tokens; the <eos> position's output, projected, is the text embedding."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_text)
        self.pos_emb = nn.Parameter(torch.randn(cfg.max_len, cfg.d_text) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.d_text, cfg.n_heads, 4 * cfg.d_text, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.n_text_layers, enable_nested_tensor=False)
        self.ln_final = nn.LayerNorm(cfg.d_text)
        self.proj = nn.Linear(cfg.d_text, cfg.d_embed)

    def forward(self, ids: Int[Tensor, "b seq"]) -> Float[Tensor, "b d_embed"]:
        h = self.tok_emb(ids) + self.pos_emb[: ids.shape[1]]
        h = self.ln_final(self.transformer(h, src_key_padding_mask=ids == WordTokenizer.PAD))
        eos = (ids == WordTokenizer.EOS).int().argmax(dim=1)
        return self.proj(h[torch.arange(len(ids)), eos])


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ImageEncoder(cfg)
        self.text_encoder = TextEncoder(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    def encode_image(self, images: Float[Tensor, "b c h w"]) -> Float[Tensor, "b d_embed"]:
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, ids: Int[Tensor, "b seq"]) -> Float[Tensor, "b d_embed"]:
        return F.normalize(self.text_encoder(ids), dim=-1)


# ---------------------------------------------------------------------------------------------
# The symmetric contrastive loss and zero-shot classification
# ---------------------------------------------------------------------------------------------
def clip_loss(
    image_emb: Float[Tensor, "b d"], text_emb: Float[Tensor, "b d"], logit_scale: Float[Tensor, ""]
) -> Float[Tensor, ""]:
    """CLIP's loss for a batch of matching (image_i, text_i) pairs.

    Normalise both embeddings to unit length; logits[i, j] = exp(logit_scale) * <image_i, text_j>
    (logit_scale is log(1 / temperature); CLIP clamps exp(logit_scale) at 100). The loss is the
    mean of two cross-entropies with target i for row i: images -> texts (rows of logits) and
    texts -> images (rows of logits.T).
    """
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"image_emb {tuple(image_emb.shape)} and text_emb {tuple(text_emb.shape)} must match")
    # EXERCISE: normalise, scaled cosine-similarity logits, cross-entropy in both directions, average
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * image_emb @ text_emb.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    # END EXERCISE


def zero_shot_classify(
    image_emb: Float[Tensor, "b d"], class_text_emb: Float[Tensor, "n_classes d"]
) -> Int[Tensor, "b"]:
    """The class whose prompt embedding has the highest cosine similarity with each image (embeddings may be unnormalised)."""
    # EXERCISE: cosine similarity between every image and every class prompt, argmax over classes
    sims = F.normalize(image_emb, dim=-1) @ F.normalize(class_text_emb, dim=-1).T
    return sims.argmax(dim=-1)
    # END EXERCISE


@dataclass
class CLIPTrainConfig:
    n_steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0


def train_clip(model: CLIP, dataset: ImageDataset, tokenizer: WordTokenizer, cfg: CLIPTrainConfig) -> list[float]:
    """Each step pairs random images with a freshly sampled caption of their label."""
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    losses = []
    for step in tqdm(range(cfg.n_steps), desc="training CLIP"):
        idx = torch.randint(len(dataset.labels), (cfg.batch_size,))
        ids = tokenizer(dataset.captions(dataset.labels[idx], seed=cfg.seed * 100_003 + step))
        loss = clip_loss(model.image_encoder(dataset.images[idx]), model.text_encoder(ids), model.logit_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def zero_shot_accuracy(model: CLIP, dataset: ImageDataset, tokenizer: WordTokenizer, template: int = 0) -> float:
    prompts = [dataset.prompt(c, template) for c in range(len(dataset.class_names))]
    pred = zero_shot_classify(model.encode_image(dataset.images), model.encode_text(tokenizer(prompts)))
    return (pred == dataset.labels).float().mean().item()


# ---------------------------------------------------------------------------------------------
# Online: the real thing
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def pretrained_zero_shot(dataset: ImageDataset, n_images: int = 200, name: str = "openai/clip-vit-base-patch32") -> float:
    """Zero-shot accuracy of OpenAI's CLIP (downloaded through transformers) on the first n_images."""
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(name).eval(), CLIPProcessor.from_pretrained(name)
    images = ((dataset.images[:n_images] + 1) * 127.5).round().to(torch.uint8)
    images = images.expand(-1, 3, -1, -1)  # grayscale -> RGB (a no-op for colour images)
    prompts = [dataset.prompt(c) for c in range(len(dataset.class_names))]
    inputs = processor(text=prompts, images=list(images), return_tensors="pt", padding=True)
    pred = model(**inputs).logits_per_image.argmax(dim=-1)
    return (pred == dataset.labels[:n_images]).float().mean().item()
