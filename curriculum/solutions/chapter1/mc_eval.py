"""Section 1.2's downstream evaluation: multiple-choice completion with HellaSwag's format and scoring rule.

Validation loss says how well a model predicts its own kind of text; a downstream evaluation asks
whether that turns into a skill. HellaSwag (Zellers et al., 2019) gives a context and four endings,
one of them right. A base language model answers without any prompt engineering, by likelihood:
append each ending to the context, measure the mean per-token loss of the ending's tokens, and pick
the ending with the lowest (length-normalised, so a short ending is not favoured for being short).

Online the examples are HellaSwag's validation set (10,042 items, downloaded once). Offline they are a
stand-in generated from held-out paragraphs of the offline corpus, in the same format: a run of
words from a paragraph is the context, the words that follow are the right ending, and other spans
of the same paragraph are the wrong ones. The stand-in tests the same scoring code and shows a
small model beating chance; it measures continuation of the corpus, not commonsense.
"""

from __future__ import annotations

import json
import random
import urllib.request
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from curriculum.solutions.chapter1.train_data import _split_documents
from curriculum.utils import offline
from curriculum.utils.files import atomic_write_bytes

HELLASWAG_URL = "https://github.com/rowanz/hellaswag/raw/master/data/hellaswag_val.jsonl"


@dataclass(frozen=True)
class MCExample:
    context: str
    endings: tuple[str, ...]
    label: int  # index of the right ending


def load_mc_examples(n: int | None = None, val_every: int = 20, seed: int = 0) -> offline.Loaded:
    """HellaSwag's validation examples online; the held-out stand-in offline (see the module docstring).

    `val_every` must match the `prepare_data` call of the model being evaluated, so the stand-in uses
    only paragraphs that model never trained on."""
    if offline.use_real_resources():
        path = offline.cache_dir("hellaswag") / "hellaswag_val.jsonl"
        if not path.exists():
            with urllib.request.urlopen(offline.resource_url(HELLASWAG_URL), timeout=60) as response:
                atomic_write_bytes(path, response.read())
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        examples = [MCExample(r["ctx"], tuple(r["endings"]), int(r["label"])) for r in rows][:n]
        return offline.Loaded(examples, True, f"HellaSwag validation, {len(examples):,} of {len(rows):,} examples")
    examples = offline_mc_examples(n or 500, val_every, seed)
    return offline.Loaded(examples, False, f"held-out continuation stand-in (HellaSwag's format), {len(examples)} examples")


def offline_mc_examples(n: int, val_every: int = 20, seed: int = 0, context_words: int = 24,
                        ending_words: int = 8, n_endings: int = 4) -> list[MCExample]:
    """Four-way continuation questions from the offline corpus's validation paragraphs (the ones
    `prepare_data(val_every=...)` holds out): the true next words against other spans of the *same*
    paragraph. Same-paragraph distractors share the context's vocabulary and topic, so a model cannot
    win by preferring words it has just seen; it has to know what comes next."""
    docs = _split_documents(offline.offline_corpus())
    held_out = [d.split() for i, d in enumerate(docs) if i % val_every == val_every - 1]
    # the corpus repeats some sentences across topics: a passage also found in a training paragraph is skipped
    train_text = " ".join(" ".join(d.split()) for i, d in enumerate(docs) if i % val_every != val_every - 1)
    usable = [w for w in held_out if len(w) >= context_words + (n_endings + 1) * ending_words]
    rng = random.Random(seed)
    examples = []
    while len(examples) < n:
        words = rng.choice(usable)
        start = rng.randrange(len(words) - context_words - ending_words + 1)
        end = start + context_words + ending_words
        context = " ".join(words[start : start + context_words])
        right = " ".join(words[start + context_words : end])
        others = [a for a in range(len(words) - ending_words + 1) if a + ending_words <= start or a >= end]
        if f"{context} {right}" in train_text or len(others) < n_endings - 1:
            continue
        wrong = [" ".join(words[a : a + ending_words]) for a in rng.sample(others, n_endings - 1)]
        label = rng.randrange(n_endings)
        examples.append(MCExample(context, tuple(wrong[:label] + [right] + wrong[label:]), label))
    return examples


def ending_losses(model: nn.Module, context: Sequence[int], endings: Sequence[Sequence[int]]) -> Float[Tensor, "n_endings"]:
    """Mean next-token loss of each ending's tokens, given the context, in one batched forward pass.

    Row i of the batch is context + endings[i], right-padded to the longest row (any pad id: the model
    is causal, so padding after a row's last token changes none of that row's logits). The logits at
    position t predict token t + 1, so ending token j (at position len(context) + j) is scored by the
    logits at position len(context) + j - 1. Context tokens and padding are not scored.
    """
    device = next(model.parameters()).device
    # EXERCISE: build the padded [n_endings, max_len] batch and a mask of scored target positions; one forward pass; per-token cross-entropy; mean over each ending's tokens
    rows = [list(context) + list(ending) for ending in endings]
    length = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length - 1)
    for i, (row, ending) in enumerate(zip(rows, endings)):
        tokens[i, : len(row)] = torch.tensor(row)
        mask[i, len(context) - 1 : len(row) - 1] = 1.0  # targets tokens[i, len(context):len(row)]
    tokens, mask = tokens.to(device), mask.to(device)
    logits = model(tokens)[:, :-1]
    losses = F.cross_entropy(logits.transpose(1, 2).float(), tokens[:, 1:], reduction="none")  # [n_endings, length - 1]
    return (losses * mask).sum(1) / mask.sum(1)
    # END EXERCISE


@torch.no_grad()
def mc_accuracy(model: nn.Module, examples: Sequence[MCExample], encode: Callable[[str], list[int]],
                n_ctx: int) -> float:
    """Fraction of examples whose right ending has the lowest `ending_losses`. Each ending is encoded
    with a leading space, as it follows the context in running text; a context too long for the model
    keeps its last tokens."""
    was_training = model.training
    model.eval()
    correct = 0
    for ex in examples:
        endings = [encode(" " + e) for e in ex.endings]
        context = encode(ex.context)[-(n_ctx - max(len(e) for e in endings)):]
        correct += int(ending_losses(model, context, endings).argmin().item() == ex.label)
    model.train(was_training)
    return correct / len(examples)
