"""4.3 (part 1) CLIP: contrastive image-text pretraining, from scratch on captioned digits.

Two encoders map into one embedding space: a small Vision Transformer (ViT) reads the image as a
sequence of patches and summarises it in a class token; a small causal Transformer reads the
caption and summarises it at its last real token (<eos>). The symmetric contrastive loss pulls each
image towards its own caption and away from the other captions in the batch (and vice versa).
Zero-shot classification then needs no classifier head: embed one prompt per class and pick the
prompt closest to the image. Online, the same zero-shot recipe runs on OpenAI's CLIP.

The shipped CLIP (data/chapter4/43_clip.safetensors) is rebuilt, with the other 4.3 models, by
`nice -n 10 python -m curriculum.solutions.chapter4.text_conditioning` (see that module).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from curriculum.utils.image_data import ImageDataset


# ---------------------------------------------------------------------------------------------
# A word-level tokenizer (our captions use a few dozen words)
# ---------------------------------------------------------------------------------------------
class WordTokenizer:
    PAD, BOS, EOS, UNK = 0, 1, 2, 3

    def __init__(self, texts: list[str], max_len: int = 10):
        words = sorted({w for text in texts for w in self.split(text)})
        self.vocab = ["<pad>", "<bos>", "<eos>", "<unk>"] + words
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9\-]+", text.lower())

    def __call__(self, texts: list[str]) -> Int[Tensor, "batch max_len"]:
        """<bos> words <eos> <pad>...: the text encoder reads its summary at <eos>, the last real token."""
        ids = torch.full((len(texts), self.max_len), self.PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [self.BOS] + [self.index.get(w, self.UNK) for w in self.split(text)][: self.max_len - 2] + [self.EOS]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids


def tokenizer_for(dataset: ImageDataset) -> WordTokenizer:
    """A vocabulary of every word in every template (including any a model holds out of training)."""
    return WordTokenizer([t.format(c) for t in dataset.templates for c in dataset.class_names])


# ---------------------------------------------------------------------------------------------
# The two encoders
# ---------------------------------------------------------------------------------------------
@dataclass
class CLIPConfig:
    image_shape: tuple[int, int, int] = (1, 16, 16)
    patch_size: int = 4  # 16x16 images -> a 4x4 grid of 16 patches
    d_image: int = 64  # width of the image transformer
    n_image_layers: int = 2
    vocab_size: int = 64
    max_len: int = 10
    d_text: int = 48  # width of the text transformer (deliberately not d_image: the projections map both to d_embed)
    n_text_layers: int = 2
    n_heads: int = 4
    d_embed: int = 32  # the shared embedding space
    init_temperature: float = 0.07  # CLIP's initial temperature; the model learns logit_scale = log(1 / temperature)


def transformer_block(d_model: int, n_heads: int) -> nn.TransformerEncoderLayer:
    """A pre-norm Transformer block (attention, then an MLP 4x wide, each with a residual), batch-first."""
    return nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)


class PatchEmbedding(nn.Module):
    """Cut the image into non-overlapping patch x patch squares and map each, flattened, to a d_model vector.

    A linear map of a flattened patch is exactly a convolution whose kernel and stride are both the
    patch size, so `proj` is that Conv2d. Patches come out in row-major order (left to right, then
    top to bottom), the order `flatten` gives.
    """

    def __init__(self, in_channels: int, patch_size: int, d_model: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Float[Tensor, "b c h w"]) -> Float[Tensor, "b n_patches d_model"]:
        # EXERCISE: one convolution gives a d_model vector per patch on a (h/p, w/p) grid; turn the grid into a sequence
        return einops.rearrange(self.proj(images), "b d gh gw -> b (gh gw) d")
        # END EXERCISE


class ViTEncoder(nn.Module):
    """A Vision Transformer: patch embeddings, a learned class token in front, learned position
    embeddings, pre-norm Transformer blocks (every token sees every other: no mask), a final LayerNorm,
    and a projection of the class token's output to the shared space."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        c, h, w = cfg.image_shape
        if h % cfg.patch_size or w % cfg.patch_size:
            raise ValueError(f"image size {h}x{w} must be divisible by patch_size {cfg.patch_size}")
        n_patches = (h // cfg.patch_size) * (w // cfg.patch_size)
        self.patch_embed = PatchEmbedding(c, cfg.patch_size, cfg.d_image)
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.d_image) * 0.02)
        self.pos_emb = nn.Parameter(torch.randn(n_patches + 1, cfg.d_image) * 0.02)
        self.blocks = nn.ModuleList([transformer_block(cfg.d_image, cfg.n_heads) for _ in range(cfg.n_image_layers)])
        self.ln_final = nn.LayerNorm(cfg.d_image)
        self.proj = nn.Linear(cfg.d_image, cfg.d_embed, bias=False)

    def forward(self, images: Float[Tensor, "b c h w"]) -> Float[Tensor, "b d_embed"]:
        # EXERCISE: patches; prepend the class token (one copy per image); add position embeddings; blocks; final LayerNorm; project the class token
        x = self.patch_embed(images)
        cls = self.cls_token.expand(len(x), -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_emb
        for block in self.blocks:
            x = block(x)
        return self.proj(self.ln_final(x)[:, 0])
        # END EXERCISE


def causal_mask(seq_len: int, device: torch.device | str = "cpu") -> Bool[Tensor, "seq seq"]:
    """True above the diagonal: position i may not attend to j > i (torch's boolean attn_mask convention)."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu(1)


def last_token_index(ids: Int[Tensor, "b seq"], pad_id: int = WordTokenizer.PAD) -> Int[Tensor, "b"]:
    """Position of each caption's last real (non-pad) token: its <eos>."""
    return (ids != pad_id).sum(dim=1) - 1


def pool_last_token(states: Float[Tensor, "b seq d"], ids: Int[Tensor, "b seq"]) -> Float[Tensor, "b d"]:
    """The state at each caption's last real token (its <eos>, see last_token_index): one row per caption."""
    # EXERCISE: pick, for each row of the batch, the state at that row's last real position
    return states[torch.arange(len(ids), device=ids.device), last_token_index(ids)]
    # END EXERCISE


class TextEncoder(nn.Module):
    """A causal Transformer over word tokens, as in CLIP. `token_states` gives one vector per token
    (what a text-conditioned U-Net cross-attends to); `forward` pools the last real token (<eos>) and
    projects it to the shared space.

    Causal: position i attends to positions <= i only. Padding always comes after <eos>, so no real
    token (and in particular not <eos>, which sees the whole caption) can ever attend to a pad.
    """

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_text)
        self.pos_emb = nn.Parameter(torch.randn(cfg.max_len, cfg.d_text) * 0.02)
        self.blocks = nn.ModuleList([transformer_block(cfg.d_text, cfg.n_heads) for _ in range(cfg.n_text_layers)])
        self.ln_final = nn.LayerNorm(cfg.d_text)
        self.proj = nn.Linear(cfg.d_text, cfg.d_embed, bias=False)

    def token_states(self, ids: Int[Tensor, "b seq"]) -> Float[Tensor, "b seq d_text"]:
        # EXERCISE: token + position embeddings; every block with the causal mask (block(x, src_mask=..., is_causal=True)); final LayerNorm
        x = self.tok_emb(ids) + self.pos_emb[: ids.shape[1]]
        mask = causal_mask(ids.shape[1], ids.device)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.ln_final(x)
        # END EXERCISE

    def forward(self, ids: Int[Tensor, "b seq"]) -> Float[Tensor, "b d_embed"]:
        return self.proj(pool_last_token(self.token_states(ids), ids))


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ViTEncoder(cfg)
        self.text_encoder = TextEncoder(cfg)
        # log(1 / 0.07) = 2.66, so exp(logit_scale) starts at 14.3 and is clamped at 100 in the loss
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
