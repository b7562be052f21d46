"""Files that survive crashes and neighbours: atomic writes under unique temporary names, and SHA-256 digests.

A write goes to a temporary file in the same folder, then `os.replace` moves it onto the target in one
step, so a reader sees the old file or the new one, never half of one. The temporary name is unique
per call (process id and a random suffix), so two processes writing into one folder never rename
each other's half-written files.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


def unique_tmp(path: str | Path) -> Path:
    """A fresh temporary name beside `path` (same folder, so `os.replace` onto `path` is atomic)."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_tmp(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (a 1.5 GB checkpoint never sits in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
