"""One place that picks where tensors live: CUDA, then Apple's MPS, then CPU."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch


def get_device(prefer: str | None = None) -> torch.device:
    """Return `cuda` if a GPU is visible, else `mps` on Apple silicon, else `cpu`.

    `prefer` (or the env var CURRICULUM_DEVICE) forces one, e.g. "cpu" to compare numbers.
    """
    prefer = prefer or os.environ.get("CURRICULUM_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with n torch CPU threads, restoring the previous count after.

    Tiny models (toy models, small MLPs) train faster on one thread: synchronising threads costs
    more than the parallel matmul saves (tens of times slower on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
