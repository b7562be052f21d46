"""Quick mode: small sizes so a notebook runs in a few minutes on a laptop CPU.

Notebooks write sizes as `full_or_quick(full, quick)`. By default you get `full`, the size the
prose describes (a GPU is best). Set `CURRICULUM_QUICK=1` before starting Jupyter (the test suite
does) and you get `quick`: smaller models, fewer steps and samples, so every cell finishes fast,
at the price of weaker results.
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

QUICK: bool = os.environ.get("CURRICULUM_QUICK", "").lower() in {"1", "true", "yes"}


def full_or_quick(full: T, quick: T) -> T:
    """`full` normally, `quick` in quick mode (CURRICULUM_QUICK=1)."""
    return quick if QUICK else full
