"""The one place that chooses between the real thing (online) and an offline stand-in.

Every notebook and test calls `use_real_resources()` through the loaders below; none copies it.
Online (a learner's machine, Colab) the loaders return pretrained GPT-2, its tokenizer and real
corpora. Offline (CI, these machines, a plane) they return stand-ins the project builds itself:
a BPE tokenizer trained locally on CPython's bundled documentation, that documentation as a text
corpus, and a randomly initialised GPT-2-shaped model. Each loader says which one it returned.

There is one chooser per kind of resource, `resource_choice(resource) -> (real, why)`:

- "hub": pretrained models, tokenizers and datasets (Hugging Face), corpora and image datasets
  downloaded by URL; real when huggingface.co is reachable. `use_real_resources()` is this one.
- "llm": the LLM API (chapter 3); real when the API's host (api.openai.com, or the host of
  OPENAI_BASE_URL) is reachable. `curriculum.utils.secrets.llm_endpoint` also needs a key.
- "anthropic": Anthropic's API, for Claude models (section 3.4); real when api.anthropic.com (or the
  host of ANTHROPIC_BASE_URL) is reachable, and `llm_endpoint` also needs ANTHROPIC_API_KEY.
- "web": live web pages (Wikipedia in section 3.3); real when en.wikipedia.org is reachable.

Environment overrides, in this order:

1. CURRICULUM_REHEARSAL=1 (the rehearsal, `python -m curriculum.tools.rehearsal`) forces every real
   resource whatever else is set, HF_HUB_OFFLINE=1 and CURRICULUM_OFFLINE=1 included: the hub is then
   read from the local cache HF_HOME points at, and the other resources from the local stand-ins the
   variables below point at. Under it a stand-in is an error: `Loaded(..., real=False)` raises
   `RehearsalFallback`, so no loader can fall back silently.
2. CURRICULUM_OFFLINE=1 forces every stand-in (the test suite sets it).
3. CURRICULUM_ONLINE=1 forces every real resource (and fails loudly where one is unreachable; with
   HF_HUB_OFFLINE=1 as well, the hub is then read from its local cache).
4. HF_HUB_OFFLINE=1 alone forces the hub's stand-ins.

Where the real resources come from (each unset on a learner's machine, which uses the real source):
CURRICULUM_URL_MIRROR (a base URL, file:// or http://) replaces the scheme and host of every file
fetched by URL (`resource_url`); CURRICULUM_DATASETS_MIRROR (a folder) holds the streamed Hugging Face
datasets as JSON lines (`stream_hub_dataset`); OPENAI_BASE_URL moves the LLM API; and
CURRICULUM_MEDIAWIKI_API moves the MediaWiki API (section 3.3).
"""

from __future__ import annotations

import functools
import os
import socket
import tempfile
from urllib.parse import urlparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_DIR = Path(os.environ.get("CURRICULUM_CACHE", Path.home() / ".cache" / "open-alignment-curriculum"))
HF_HOST = "huggingface.co"


class CacheNotWritable(OSError):
    """The cache folder cannot be created or written; the message names CURRICULUM_CACHE, which moves it."""


def cache_dir(*parts: str) -> Path:
    """CACHE_DIR/parts, created and checked writable, or CacheNotWritable saying how to move the cache."""
    path = CACHE_DIR.joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise CacheNotWritable(
            f"cannot write to the curriculum's cache folder {path} ({e.strerror or type(e).__name__}). Move the cache "
            f"to a folder you can write by setting the environment variable CURRICULUM_CACHE before Python starts, "
            f"e.g. `export CURRICULUM_CACHE=$HOME/curriculum-cache` in the shell that starts Jupyter, or "
            f"`os.environ[\"CURRICULUM_CACHE\"] = ...` in the first cell, before anything imports curriculum."
        ) from None
    return path


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}


RESOURCES = ("hub", "llm", "anthropic", "web")
WEB_HOST = "en.wikipedia.org"


def _host(resource: str) -> tuple[str, int]:
    if resource == "llm":
        url = urlparse(os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")
        return url.hostname or "api.openai.com", url.port or (443 if url.scheme == "https" else 80)
    if resource == "anthropic":
        url = urlparse(os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com")
        return url.hostname or "api.anthropic.com", url.port or (443 if url.scheme == "https" else 80)
    return (HF_HOST if resource == "hub" else WEB_HOST), 443


def rehearsal() -> bool:
    """True under the rehearsal (CURRICULUM_REHEARSAL=1): every loader must take its real branch."""
    return _truthy("CURRICULUM_REHEARSAL")


class RehearsalFallback(RuntimeError):
    """Under the rehearsal a loader chose an offline stand-in: its real branch is broken or unreachable."""


def require_real(what: str) -> None:
    """Raise RehearsalFallback under the rehearsal: for loaders that choose a stand-in without a `Loaded`."""
    if rehearsal():
        raise RehearsalFallback(
            f"CURRICULUM_REHEARSAL=1 requires the real resource, but the loader chose a stand-in: {what}. "
            f"The real branch failed or was never taken; fix it rather than fall back."
        )


def resource_url(url: str) -> str:
    """`url`, or its copy under CURRICULUM_URL_MIRROR (scheme and host replaced: <mirror>/<host>/<path>)."""
    mirror = os.environ.get("CURRICULUM_URL_MIRROR", "").rstrip("/")
    if not mirror:
        return url
    parts = urlparse(url)
    return f"{mirror}/{parts.hostname}{parts.path}"


def stream_hub_dataset(name: str, config: str = "", split: str = "train"):
    """A Hugging Face dataset streamed (an `IterableDataset` of row dicts), from the hub, or from
    CURRICULUM_DATASETS_MIRROR/<name>/<config or "default">/<split>.jsonl when that is set."""
    import datasets  # imported here: only online paths need it, and it is slow to import

    mirror = os.environ.get("CURRICULUM_DATASETS_MIRROR")
    if not mirror:
        return datasets.load_dataset(name, config or None, split=split, streaming=True)
    path = Path(mirror, name, config or "default", f"{split}.jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"CURRICULUM_DATASETS_MIRROR has no {path}: add it, or unset the variable to use the hub")
    return datasets.load_dataset("json", data_files={split: str(path)}, split=split, streaming=True)


@functools.lru_cache(maxsize=None)
def resource_choice(resource: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(use the real thing?, why) for one resource: "hub", "llm" or "web" (see the module docstring)."""
    if resource not in RESOURCES:
        raise ValueError(f"resource must be one of {RESOURCES}, got {resource!r}")
    if rehearsal():
        return True, "CURRICULUM_REHEARSAL=1 chooses every real resource, served locally"
    if _truthy("CURRICULUM_OFFLINE"):
        return False, "CURRICULUM_OFFLINE=1 chooses every offline stand-in"
    if _truthy("CURRICULUM_ONLINE"):
        return True, "CURRICULUM_ONLINE=1 chooses every real resource"
    if resource == "hub" and _truthy("HF_HUB_OFFLINE"):
        return False, "HF_HUB_OFFLINE=1 keeps Hugging Face offline"
    host, port = _host(resource)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host} is reachable"
    except OSError:
        return False, f"{host} is not reachable"


def use_real_resources() -> bool:
    """True if pretrained models and datasets can be downloaded (or are already cached by HF): the "hub" choice."""
    return resource_choice("hub")[0]


use_real_resources.cache_clear = resource_choice.cache_clear  # type: ignore[attr-defined]  # tests reset the choice


@dataclass
class Loaded:
    """What a loader returned, and whether it is the real thing or the offline stand-in."""

    value: Any
    real: bool
    description: str

    def __post_init__(self) -> None:
        if not self.real:
            require_real(self.description)

    def __repr__(self) -> str:
        return f"Loaded({self.description})"


def describe(loaded: Loaded) -> None:
    tag = "real" if loaded.real else "offline stand-in"
    print(f"[{tag}] {loaded.description}")


# ---------------------------------------------------------------------------------------------
# Text corpus
# ---------------------------------------------------------------------------------------------

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


def offline_corpus() -> str:
    """~465k characters of English prose that ships with CPython: the `help()` topics."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def load_text_corpus() -> Loaded:
    """Tiny Shakespeare (~1.1M characters) online; CPython's bundled documentation offline."""
    if use_real_resources():
        path = cache_dir() / "tinyshakespeare.txt"
        if not path.exists():
            import urllib.request

            urllib.request.urlretrieve(resource_url(TINY_SHAKESPEARE_URL), path)
        text = path.read_text()
        return Loaded(text, True, f"Tiny Shakespeare, {len(text):,} characters")
    text = offline_corpus()
    return Loaded(text, False, f"CPython's help() topics, {len(text):,} characters")


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------

OFFLINE_VOCAB_SIZE = 4096
EOS = "<|endoftext|>"


def offline_tokenizer_dir(vocab_size: int = OFFLINE_VOCAB_SIZE) -> Path:
    """Train (once, ~1 s) a GPT-2-style byte-level BPE on the offline corpus and save it."""
    path = cache_dir() / f"bpe-{vocab_size}"
    if (path / "tokenizer.json").exists():
        return path
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    text = offline_corpus()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator((text[i : i + 10_000] for i in range(0, len(text), 10_000)), trainer)
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tok.save_pretrained(tmp)
    try:
        tmp.rename(path)  # atomic: a crash mid-save never leaves a half-written tokenizer behind
    except OSError:
        if not (path / "tokenizer.json").exists():
            raise
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    return path


def load_tokenizer() -> Loaded:
    """GPT-2's tokenizer online; a locally trained byte-level BPE (same algorithm, smaller vocab) offline."""
    from transformers import AutoTokenizer

    if use_real_resources():
        return Loaded(AutoTokenizer.from_pretrained("gpt2"), True, "GPT-2 tokenizer (50,257 tokens)")
    tok = AutoTokenizer.from_pretrained(offline_tokenizer_dir())
    return Loaded(tok, False, f"byte-level BPE trained locally on the offline corpus ({len(tok):,} tokens)")


# ---------------------------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------------------------


def offline_gpt2_config(
    vocab_size: int, n_layer: int = 2, n_embd: int = 128, n_head: int = 4, n_positions: int = 256, eos_token_id: int | None = 0
):
    """A small GPT2Config; `eos_token_id` defaults to the offline tokenizer's <|endoftext|> (id 0)."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=eos_token_id, eos_token_id=eos_token_id,
    )


def load_gpt2(seed: int = 0) -> Loaded:
    """GPT-2 small as a TransformerLens `TransformerBridge` online; offline a randomly initialised
    GPT-2-shaped model (2 layers, d_model 128) on the offline tokenizer, wrapped the same way.

    Either way the bridge's `original_model` is the Hugging Face GPT2LMHeadModel, in eval mode."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPT2LMHeadModel

    if use_real_resources():
        bridge = TransformerBridge.boot_transformers("gpt2")
        return Loaded(bridge, True, "GPT-2 small, pretrained (124M parameters)")
    tok = load_tokenizer().value
    torch.manual_seed(seed)
    hf_model = GPT2LMHeadModel(offline_gpt2_config(len(tok), eos_token_id=tok.eos_token_id)).eval()  # eval: no dropout
    bridge = TransformerBridge.boot_transformers("gpt2", hf_model=hf_model, tokenizer=tok)
    n = sum(p.numel() for p in hf_model.parameters())
    return Loaded(bridge, False, f"randomly initialised GPT-2-shaped model, 2 layers, d_model 128 ({n / 1e6:.1f}M parameters)")
