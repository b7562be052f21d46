"""Learner progress: recorded by passing checks, on this machine only, safe under concurrent writers,
and a damaged file is reported and rebuilt instead of breaking a check."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import pytest

from curriculum import progress
from curriculum.checks.chapter1 import gpt2 as gpt2_checks
from curriculum.solutions.chapter1 import gpt2 as gpt2_ref
from curriculum.tools import build_notebooks as build


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh progress folder for one test (the suite's own is shared by every worker)."""
    monkeypatch.setenv("CURRICULUM_PROGRESS_DIR", str(tmp_path / "progress"))
    return tmp_path / "progress"


def _row(table: str, section_title: str) -> tuple[str, str]:
    """(the 'done/total' of a section's row, the rest of the row after it)."""
    line = next(line for line in table.splitlines() if line.startswith(section_title[:58]))
    m = re.search(r" (\d+/\d+) +(.*)$", line)
    return m[1], m[2]


def test_the_manifest_lists_every_exercise_with_its_checks_and_minutes():
    sections = progress.load_manifest()
    assert [s["section"] for s in sections] == [build.section_number(p) for p in build.all_sources()]
    s11 = sections[0]
    embed = next(ex for ex in s11["exercises"] if ex["names"] == ["Embed"])
    assert embed["checks"] == ["curriculum.checks.chapter1.gpt2.check_embed"] and embed["minutes"] >= 5
    for sec in sections:
        for ex in sec["exercises"]:
            assert ex["checks"], f"{sec['section']} {ex['names']}: no check found"
            for name in ex["checks"]:
                module, _, fn = name.rpartition(".")
                assert getattr(__import__(module, fromlist=[fn]), fn).is_check, name


def test_passing_checks_fill_in_the_table(home, capsys):
    title = progress.load_manifest()[0]["title"]
    done, left = _row(progress.progress_table(), title)
    total_minutes = build.section_minutes(build.all_sources()[0])
    assert done.startswith("0/") and left == build.format_minutes(total_minutes)
    gpt2_checks.check_layer_norm(gpt2_ref.LayerNorm)
    gpt2_checks.check_embed(gpt2_ref.Embed)
    with pytest.raises(AssertionError):  # a failing check records nothing
        gpt2_checks.check_pos_embed(gpt2_ref.Embed)
    assert (home / "progress.json").exists()
    manifest = progress.load_manifest()[0]["exercises"]
    done_minutes = sum(ex["minutes"] for ex in manifest if ex["names"] in (["LayerNorm"], ["Embed"]))
    done, left = _row(progress.progress_table("1.1"), title)
    assert done == f"2/{len(manifest)}"
    assert left == f"{build.format_minutes(total_minutes - done_minutes)} <- this notebook"
    assert progress.main([]) == 0 and "all sections" in capsys.readouterr().out


def test_a_damaged_progress_file_is_reported_and_rebuilt(home):
    home.mkdir(parents=True)
    (home / "progress.json").write_text('{"passed": {"x": "not a time"')  # truncated, as after a crash
    with pytest.warns(UserWarning, match="damaged"):
        gpt2_checks.check_layer_norm(gpt2_ref.LayerNorm)  # the check still passes
    assert list(json.loads((home / "progress.json").read_text())["passed"]) == ["curriculum.checks.chapter1.gpt2.check_layer_norm"]
    (home / "progress.json").write_bytes(b"\xff\xfe garbage")
    with pytest.warns(UserWarning, match="damaged"):
        assert progress.passed_checks() == set()


def test_an_unwritable_progress_folder_never_fails_a_check(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CURRICULUM_PROGRESS_DIR", str(blocker / "progress"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gpt2_checks.check_embed(gpt2_ref.Embed)
    assert any("could not record progress" in str(w.message) for w in caught)


WRITER = "from curriculum.progress import record_pass\nfor i in range(25): record_pass(f'worker{W}.check_{i}')"


def test_concurrent_writers_lose_nothing(home):
    """Four processes record 25 passes each at the same time, as notebook kernels and test workers do."""
    env = {**os.environ, "CURRICULUM_PROGRESS_DIR": str(home)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER.replace("{W}", str(w))], env=env) for w in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    assert len(progress.passed_checks()) == 100
    assert not list(home.glob(".progress-*.tmp")), "a temporary file was left behind"


def test_reset_forgets_everything(home):
    progress.record_pass("a.check_x")
    assert progress.main(["--reset"]) == 0
    assert progress.passed_checks() == set()


def test_a_check_passed_in_a_notebook_shows_up_in_the_progress_command(home, tmp_path):
    """End to end: a real Jupyter kernel runs 1.1's setup and its LayerNorm exercise (solution), then
    `python -m curriculum.progress` in another process counts that exercise as done."""
    import nbformat
    from nbclient import NotebookClient

    _, solution = build.output_paths(build.all_sources()[0])
    nb = nbformat.read(solution, as_version=4)
    setup = next(c for c in nb.cells if "from curriculum.checks.chapter1 import gpt2 as tests" in c.source)
    layer_norm = next(c for c in nb.cells if "tests.check_layer_norm(LayerNorm)" in c.source)
    nb.cells = [setup, layer_norm]
    env = {**os.environ, "CURRICULUM_PROGRESS_DIR": str(home)}
    old = os.environ.copy()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert "✓ check_layer_norm passed" in "".join(o.get("text", "") for o in nb.cells[1].outputs)
    out = subprocess.run([sys.executable, "-m", "curriculum.progress"], env=env, capture_output=True, text=True, check=True).stdout
    title = progress.load_manifest()[0]["title"]
    assert _row(out, title)[0] == f"1/{len(progress.load_manifest()[0]['exercises'])}"
