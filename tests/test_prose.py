"""Learner-facing text speaks to the learner: no CI, no test-suite sizes, no maintainers' runs, no
history of how the project got here. The small configuration is called quick mode."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = re.compile(
    r"\bCI\b|\bcontinuous integration\b|\btest suite\b|\bCI[- ]siz"
    r"|\bour (?:runs|tests|experiments|machines?)\b|\bwe (?:measured|tuned|found|ran)\b"
    r"|\bmaintainers?\b|\bthe project's history\b|\bearlier version\b|\bpreviously\b"
    r"|\bno longer (?:uses|does|has|needs|relies)\b|\bused to (?:be|use)\b",
    re.I,
)


def learner_lines(notebook: Path) -> list[tuple[int, str]]:
    """(cell index, line) for every markdown line of a notebook, collapsed hints included."""
    cells = json.loads(notebook.read_text())["cells"]
    return [
        (i, line)
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for line in "".join(cell["source"]).splitlines()
        if not line.lstrip().startswith("![")  # figures carry only their alt text and data
    ]


def offending(notebooks: list[Path]) -> list[str]:
    return [
        f"{nb.relative_to(ROOT)} cell {i}: {line.strip()[:100]}"
        for nb in notebooks
        for i, line in learner_lines(nb)
        if FORBIDDEN.search(line)
    ]


def test_the_pattern_catches_the_phrasings_it_is_for():
    bad = ["(CI, a plane)", "At CI size the model is tiny", "In CI we only run a few updates",
           "what we measured in our runs", "an earlier version of ddim_step", "the test suite sets it"]
    good = ["an extra dot is no longer worth its KL cost", "quick mode shrinks the model", "circuits", "CIFAR-10"]
    assert all(FORBIDDEN.search(s) for s in bad)
    assert not any(FORBIDDEN.search(s) for s in good)


def test_learner_notebooks_speak_to_the_learner():
    notebooks = sorted((ROOT / "chapters").rglob("*.ipynb"))
    assert notebooks
    found = offending(notebooks)
    assert not found, "learner-facing text speaks of CI or the project's history:\n" + "\n".join(found)
