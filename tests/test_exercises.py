"""The contract, checked for every exercise of every section, discovered from the section sources:

- the committed notebooks are exactly what the build tool generates from the sources;
- each exercise's check passes on the reference solution and raises CheckFailed on the stub.
"""

from __future__ import annotations

import contextlib
import importlib
import io

import pytest

from curriculum.tools import build_notebooks as build
from tests.support import assert_check_fails


def _exercises():
    for src in build.all_sources():
        cells = build.parse_section(src)
        setup = "\n".join("\n".join(c.lines) for c in cells if c.kind == "setup")
        for c in cells:
            if c.kind == "exercise":
                yield pytest.param(src, setup, c, id=f"{src.stem}:{','.join(c.names)}")


EXERCISES = list(_exercises())


def test_notebooks_in_sync_with_sources():
    assert build.main(["--check"]) == 0, "generated notebooks are stale: run `python -m curriculum.tools.build_notebooks`"


def _run(setup: str, cell: build.Cell, solution: bool) -> str:
    """Run one exercise cell as the notebook would, on top of the reference module's namespace."""
    ns = dict(vars(importlib.import_module(cell.module)))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(setup, "<setup>", "exec"), ns)
        exec(compile(build.exercise_code(cell, solution), f"<{','.join(cell.names)}>", "exec"), ns)
    return out.getvalue()


@pytest.mark.parametrize("src,setup,cell", EXERCISES)
def test_check_passes_on_solution(src, setup, cell):
    assert any("check_" in line for line in cell.lines), f"exercise {cell.names} in {src.name} calls no check"
    printed = _run(setup, cell, solution=True)
    assert "passed" in printed


@pytest.mark.parametrize("src,setup,cell", EXERCISES)
def test_check_fails_on_stub(src, setup, cell):
    assert_check_fails(_run, setup, cell, solution=False)
