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
        return _checked(prefer, "CURRICULUM_DEVICE" if prefer == os.environ.get("CURRICULUM_DEVICE") else "get_device")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """What this machine can run on, e.g. ["cuda:0", "cuda:1", "cpu"]."""
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return found + (["mps"] if _mps_available() else []) + ["cpu"]


def _checked(name: str, source: str) -> torch.device:
    """torch.device(name), refused at once (not at the first tensor moved there) if this machine lacks it."""
    available = available_devices()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{source}: {name!r} is not a device name; this machine has {', '.join(available)}") from None
    index = device.index or 0
    missing = (
        (device.type == "cuda" and (not torch.cuda.is_available() or index >= torch.cuda.device_count()))
        or (device.type == "mps" and not _mps_available())
        or device.type not in ("cpu", "cuda", "mps", "meta")
    )
    if missing:
        raise RuntimeError(
            f"{source} asked for {name!r}, but this machine has only: {', '.join(available)}. "
            f"Use one of those (or None to pick the best automatically)"
            + (", or unset CURRICULUM_DEVICE" if source == "CURRICULUM_DEVICE" else "") + "."
        )
    return device


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
