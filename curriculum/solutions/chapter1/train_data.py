"""Training data for section 1.2: tokenise a corpus once into `uint16` memmaps, then sample batches.

Pretraining reads the same tokens many times, so we tokenise once and store the ids as a flat
`uint16` array on disk (`train.bin`, `val.bin`). GPT-2's 50,257 ids fit in 16 bits, which halves
the file compared with int32, and `np.memmap` lets the OS page in only the windows we sample:
a 10B-token corpus (20 GB) trains on a machine with far less RAM.

Offline (CI, a plane) the corpus and tokenizer are the project's stand-ins from `curriculum.utils.offline`;
online the tokenizer is GPT-2's and the corpus a real Hugging Face dataset, streamed so that a
prefix of a huge dataset (`max_tokens`) never has to be downloaded whole.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from curriculum.utils import offline

TOKEN_DTYPE = np.uint16  # holds ids < 65,536: GPT-2's vocabulary and the offline stand-in's
META_FILE = "meta.json"
OFFLINE = "offline"  # the `dataset` value that forces the stand-in corpus


@dataclass(frozen=True)
class DataInfo:
    """Where a prepared corpus lives and what a model trained on it must know."""

    data_dir: Path
    vocab_size: int
    eot_token: int  # separates documents; also the default prompt for samples
    n_train_tokens: int
    n_val_tokens: int
    tokenizer: str  # description, so a cached corpus is never reused with another tokenizer
    corpus: str


def tokenizer_fns(tokenizer: Any) -> tuple[Callable[[list[str]], list[list[int]]], Callable[[list[int]], str], int, int]:
    """(encode_batch, decode, eot_token, vocab_size) for a `transformers` or `tokenizers` tokenizer."""
    if hasattr(tokenizer, "encode_batch"):  # a raw `tokenizers.Tokenizer`
        eot = tokenizer.token_to_id("<|endoftext|>")
        return (
            lambda texts: [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)],
            tokenizer.decode,
            eot if eot is not None else 0,
            tokenizer.get_vocab_size(),
        )
    eot = tokenizer.eos_token_id
    return (
        lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"],
        tokenizer.decode,
        eot if eot is not None else 0,
        len(tokenizer),
    )


def _documents(dataset: str, dataset_config: str, real: bool) -> tuple[Iterator[str], str]:
    """An iterator over document strings and a description of where they come from."""
    if not real:
        corpus = offline.load_text_corpus()
        docs = corpus.value if isinstance(corpus.value, (list, tuple)) else _split_documents(corpus.value)
        return iter(docs), corpus.description
    stream = offline.stream_hub_dataset(dataset, dataset_config, "train")
    return (row["text"] for row in stream), f"{dataset}{'/' + dataset_config if dataset_config else ''} (Hugging Face)"


def _split_documents(text: str) -> list[str]:
    """Cut one long string into documents at blank lines (paragraphs), so val holds whole paragraphs."""
    return [d for d in re.split(r"\n\s*\n", text) if d.strip()]


def write_memmaps(
    documents: Iterable[str],
    encode_batch: Callable[[list[str]], list[list[int]]],
    eot_token: int,
    out_dir: Path,
    val_every: int = 200,
    max_tokens: int = 0,
    chunk_docs: int = 256,
) -> tuple[int, int]:
    """Tokenise `documents` into out_dir/{train,val}.bin as flat `uint16` token ids; return (n_train, n_val).

    - Documents are encoded `chunk_docs` at a time (`encode_batch` is much faster on a list).
    - Each document's ids are followed by `eot_token`, so the model learns where documents end.
    - Document number i (counting from 0) goes to val when `i % val_every == val_every - 1`, else to
      train: splitting by document keeps val text unseen and works on a stream of unknown length.
    - An id that does not fit in `uint16` raises ValueError (wrapping it silently would corrupt the data).
    - With `max_tokens > 0`, stop after the first chunk at which the tokens written reach `max_tokens`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "val": 0}
    files = {split: open(out_dir / f"{split}.bin", "wb") for split in counts}
    bar = tqdm(desc="tokenising", unit="tok", unit_scale=True, total=max_tokens or None)
    try:
        # EXERCISE: for each chunk: encode it, append eot_token to every document, route it to train or val, write uint16 bytes, count; stop at max_tokens
        doc_index = 0
        for chunk in chunked(documents, chunk_docs):
            for ids in encode_batch(chunk):
                ids = np.asarray(ids + [eot_token], dtype=np.int64)
                if ids.max() > np.iinfo(TOKEN_DTYPE).max:
                    raise ValueError(f"token id {ids.max()} does not fit in {TOKEN_DTYPE.__name__}: use a vocabulary under 65,536")
                split = "val" if doc_index % val_every == val_every - 1 else "train"
                files[split].write(ids.astype(TOKEN_DTYPE).tobytes())
                counts[split] += len(ids)
                bar.update(len(ids))
                doc_index += 1
            if max_tokens and counts["train"] + counts["val"] >= max_tokens:
                break
        # END EXERCISE
    finally:
        for f in files.values():
            f.close()
        bar.close()
    return counts["train"], counts["val"]


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of `size` consecutive items (the last one shorter); works on a stream of unknown length."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def prepare_data(
    dataset: str = OFFLINE,
    dataset_config: str = "",
    data_dir: str | Path = "",
    max_tokens: int = 0,
    val_every: int = 200,
) -> DataInfo:
    """Tokenise the corpus into memmaps once (cached by corpus and tokenizer), and describe them.

    `dataset` is a Hugging Face dataset name (streamed; `text` column) used when real resources are
    reachable, or "offline" to force the project's stand-in corpus. Either way the tokenizer comes
    from `curriculum.utils.offline.load_tokenizer()` (GPT-2's when online).
    """
    real = dataset != OFFLINE and offline.use_real_resources()
    tok = offline.load_tokenizer()
    encode_batch, _, eot, vocab_size = tokenizer_fns(tok.value)
    if vocab_size > np.iinfo(TOKEN_DTYPE).max + 1:
        raise ValueError(f"vocabulary of {vocab_size} does not fit in {TOKEN_DTYPE.__name__} token files")
    name = f"{dataset if real else OFFLINE}-{dataset_config}-{tok.description}-{max_tokens}-{val_every}"
    out = Path(data_dir) if data_dir else offline.cache_dir("train_data") / re.sub(r"[^\w.-]+", "_", name)[:120]
    meta_path = out / META_FILE
    if not meta_path.exists():
        docs, corpus = _documents(dataset, dataset_config, real)
        # Write into a scratch folder of our own and rename it at the end: an interrupted run leaves no half
        # corpus, and two processes preparing the same corpus at once never share a scratch folder.
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            n_train, n_val = write_memmaps(docs, encode_batch, eot, tmp, val_every=val_every, max_tokens=max_tokens)
            if n_val == 0:
                raise ValueError(f"corpus {corpus!r} has fewer than {val_every} documents: lower val_every")
            meta = dict(vocab_size=vocab_size, eot_token=eot, n_train_tokens=n_train, n_val_tokens=n_val,
                        tokenizer=tok.description, corpus=corpus)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
            if out.exists() and not meta_path.exists():
                shutil.rmtree(out, ignore_errors=True)  # a folder left without meta.json is not a finished corpus
            try:
                tmp.rename(out)
            except OSError:
                if not meta_path.exists():  # not "another process finished first": a real error
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = json.loads(meta_path.read_text())
    return DataInfo(data_dir=out, **meta)


def load_split(info: DataInfo, split: str) -> np.memmap:
    """The token ids of one split as a read-only memmap (nothing is read until it is indexed)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    return np.memmap(info.data_dir / f"{split}.bin", dtype=TOKEN_DTYPE, mode="r")


def get_batch(
    data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[Int[Tensor, "batch block"], Int[Tensor, "batch block"]]:
    """Sample `batch_size` random windows of `block_size` tokens: inputs x and next-token targets y.

    Every valid start offset must be possible (including the last one, whose target ends on the
    final token), the draw must use only `generator` (its state is the data position a checkpoint
    saves), and the ids must come back as int64, which `nn.Embedding` and `cross_entropy` expect.
    """
    if len(data) <= block_size:
        raise ValueError(f"a split of {len(data)} tokens cannot fill a block of {block_size}: lower block_size")
    # EXERCISE: draw the offsets with torch.randint(..., generator=generator), then slice x and y (y = x shifted by one)
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).tolist()
    windows = torch.stack([torch.from_numpy(data[i : i + block_size + 1].astype(np.int64)) for i in starts])
    return windows[:, :-1], windows[:, 1:]
    # END EXERCISE
