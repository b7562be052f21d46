"""The one place that chooses between the real thing (online) and an offline stand-in.

Every notebook and test calls `use_real_resources()` through the loaders below; none copies it.
Online (a learner's machine, Colab) the loaders return pretrained GPT-2, its tokenizer and real
corpora. Offline (CI, these machines, a plane) they return stand-ins the project builds itself:
a BPE tokenizer trained locally on CPython's bundled documentation, that documentation as a text
corpus, and a randomly initialised GPT-2-shaped model. Each loader says which one it returned.

Environment overrides: CURRICULUM_OFFLINE=1 forces the stand-ins (CI sets it), CURRICULUM_ONLINE=1
forces the real resources (and fails loudly if they are unreachable).
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_DIR = Path(os.environ.get("CURRICULUM_CACHE", Path.home() / ".cache" / "open-alignment-curriculum"))
HF_HOST = "huggingface.co"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}


@functools.lru_cache(maxsize=None)
def use_real_resources(timeout: float = 2.0) -> bool:
    """True if pretrained models/datasets can be downloaded (or are already cached by HF)."""
    if _truthy("CURRICULUM_OFFLINE") or _truthy("HF_HUB_OFFLINE"):
        return False
    if _truthy("CURRICULUM_ONLINE"):
        return True
    try:
        with socket.create_connection((HF_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Loaded:
    """What a loader returned, and whether it is the real thing or the offline stand-in."""

    value: Any
    real: bool
    description: str

    def __repr__(self) -> str:
        return f"Loaded({self.description})"


def describe(loaded: Loaded) -> None:
    tag = "real" if loaded.real else "offline stand-in"
    print(f"[{tag}] {loaded.description}")
