"""The CI-size switch. `.ci/run` sets CURRICULUM_CI=1; learners never need to.

Notebooks write sizes as `ci_size(full, ci)`: learners get `full`, CI gets `ci`, so each notebook
executes in a few minutes on 2 CPU cores while the learner default stays at full size.
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

IS_CI: bool = os.environ.get("CURRICULUM_CI", "").lower() in {"1", "true", "yes"}


def ci_size(full: T, ci: T) -> T:
    """`full` for learners, `ci` when CURRICULUM_CI=1 (CI's small, fast setting)."""
    return ci if IS_CI else full
