"""Train the small attention-only transformer that section 1.3 dissects offline, and ship it.

    python -m curriculum.solutions.chapter1.induction_model      # 3000 steps: 4 to 9 minutes measured on a busy 2-core CPU

writes data/interp/attn_only_2l.safetensors (weights), config.json (the TransformerBridgeConfig
fields and training settings) and tokenizer/ (the offline BPE it was trained with, 320 tokens). The model is
TransformerLens 4's own native architecture (`TransformerBridge.boot_native`): 2 layers, 4 heads
each, attention only, LayerNorm, learned positions; `curriculum.utils.interp_models.load_interp_model()`
rebuilds it as a `TransformerBridge`.

Why it has induction heads: most of each training batch is random tokens in which a random span
appears twice (random length, random place), where the only way to predict the second copy is
"find the previous occurrence of the current token and copy the token after it", a two-layer circuit (a previous-token
head in layer 0 feeding, by K-composition, an induction head in layer 1). The rest is the
offline text corpus, so the model also learns ordinary bigram statistics and its heads see text.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge.sources.native import NativeModel, initialize_native_model
from transformers import AutoTokenizer

from curriculum.utils.offline import offline_corpus, offline_tokenizer_dir

ROOT = Path(__file__).resolve().parents[3]
OUT_DIR = ROOT / "data" / "interp"
WEIGHTS = "attn_only_2l.safetensors"


@dataclass
class TrainConfig:
    vocab_size: int = 320  # a small BPE (bytes + 63 merges): every token's embedding gets trained in minutes
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_head: int = 16
    n_ctx: int = 128
    seq_len: int = 49  # training context: BOS + 48 tokens
    batch_size: int = 32
    n_steps: int = 3000
    lr: float = 3e-3
    weight_decay: float = 0.0
    frac_repeated: float = 0.875  # share of each batch that is random tokens with a repeated span
    seed: int = 0


def bridge_config(vocab_size: int, tc: TrainConfig) -> dict:
    """The TransformerBridgeConfig fields of the shipped model (attention-only, LN, learned positions)."""
    return dict(
        d_model=tc.d_model, n_layers=tc.n_layers, n_heads=tc.n_heads, d_head=tc.d_head, n_ctx=tc.n_ctx,
        d_vocab=vocab_size, attn_only=True, normalization_type="LN", positional_embedding_type="standard",
        act_fn="gelu", default_prepend_bos=True, seed=tc.seed,
    )


def repeated_batch(batch: int, seq_len: int, d_vocab: int, bos: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random tokens that, from a random start, repeat a random span of 4..24 tokens until the row ends.

    Span lengths and starts vary per row so that no fixed positional offset predicts the copies: the
    model has to find the earlier occurrence of the current token by content, i.e. use induction.
    Returns the tokens [batch, seq_len] (BOS first) and a mask of the positions inside the copies.
    """
    tokens = torch.randint(1, d_vocab, (batch, seq_len), generator=generator)
    tokens[:, 0] = bos
    in_copy = torch.zeros(batch, seq_len, dtype=torch.bool)
    for row in range(batch):
        n = int(torch.randint(4, 25, (1,), generator=generator))
        start = 1 + int(torch.randint(0, seq_len - 2 * n, (1,), generator=generator))
        for pos in range(start + n, seq_len):
            tokens[row, pos] = tokens[row, pos - n]
        in_copy[row, start + n :] = True
    return tokens, in_copy


def corpus_batches(tokens: Tensor, batch: int, seq_len: int, bos: int, generator: torch.Generator) -> Tensor:
    starts = torch.randint(0, len(tokens) - seq_len, (batch,), generator=generator)
    chunks = torch.stack([tokens[s : s + seq_len - 1] for s in starts.tolist()])
    return torch.cat([torch.full((batch, 1), bos), chunks], dim=1)


def train(tc: TrainConfig = TrainConfig(), out_dir: Path = OUT_DIR) -> dict:
    tok = AutoTokenizer.from_pretrained(offline_tokenizer_dir(tc.vocab_size))
    bos = tok.bos_token_id
    corpus = torch.tensor(tok(offline_corpus())["input_ids"])
    cfg_dict = bridge_config(len(tok), tc)
    cfg = TransformerBridgeConfig.from_dict(cfg_dict)
    torch.manual_seed(tc.seed)
    model = NativeModel(cfg)
    initialize_native_model(model, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=tc.n_steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(tc.seed)
    n_rep = int(tc.batch_size * tc.frac_repeated)
    torch.set_num_threads(1)  # tiny matmuls: a second thread costs more in synchronisation than it gains
    t0 = time.time()
    bar = tqdm(range(tc.n_steps), desc="training attn-only 2L")
    for step in bar:
        rep, in_copy = repeated_batch(n_rep, tc.seq_len, len(tok), bos, gen)
        text = corpus_batches(corpus, tc.batch_size - n_rep, tc.seq_len, bos, gen)
        tokens = torch.cat([rep, text])
        logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0:
            # Loss inside the second copies (first token excluded: it is not predictable): drops far below
            # ln(d_vocab) once induction forms.
            targets = in_copy[:, 1:] & in_copy[:, :-1]
            copy_loss = F.cross_entropy(logits[:n_rep, :-1][targets], tokens[:n_rep, 1:][targets])
            bar.set_postfix(loss=f"{loss.item():.3f}", copy_loss=f"{copy_loss.item():.3f}")
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, out_dir / WEIGHTS)
    tok.save_pretrained(out_dir / "tokenizer")
    meta = {"bridge_config": cfg_dict, "train_config": asdict(tc),
            "train_seconds": round(time.time() - t0, 1), "final_loss": round(loss.item(), 4)}
    (out_dir / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


if __name__ == "__main__":
    print(train())
