"""The notebook build tool, the check contract and the shared utils: behaviour and error messages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from curriculum.checking import assert_close, assert_shape, check, fail
from curriculum.tools import build_notebooks as build
from curriculum.utils import plotting
from curriculum.utils.sizes import full_or_quick
from tests.support import assert_check_fails

ROOT = Path(__file__).resolve().parents[1]


# --- build tool ---------------------------------------------------------------------------------

FENCED = textwrap.dedent(
    '''
    def f(x):
        y = x + 1
        # EXERCISE: add one, then double
        z = y * 2
        return z
        # END EXERCISE
    '''
).strip()


def test_stub_replaces_the_fence_with_the_hint():
    stubbed = build.stub(FENCED)
    assert "raise NotImplementedError('add one, then double')" in stubbed
    assert "z = y * 2" not in stubbed and "y = x + 1" in stubbed
    namespace: dict = {}
    exec(stubbed, namespace)
    with pytest.raises(NotImplementedError, match="double"):
        namespace["f"](1)


def test_solve_keeps_code_and_drops_markers():
    solved = build.solve(FENCED)
    assert "EXERCISE" not in solved
    namespace: dict = {}
    exec(solved, namespace)
    assert namespace["f"](1) == 4


@pytest.mark.parametrize(
    "code,message",
    [
        ("# EXERCISE: a\nx = 1\n", "never closed"),
        ("x = 1\n# END EXERCISE\n", "without a matching"),
        ("# EXERCISE: a\n# EXERCISE: b\n# END EXERCISE\n", "nested"),
    ],
)
def test_bad_fences_are_reported(code, message):
    with pytest.raises(build.SourceError, match=message):
        build.stub(code)


def test_object_source_includes_the_closing_marker_after_the_last_statement():
    src = build.object_source("curriculum.solutions.chapter1.gpt2", "Embed")
    assert src.rstrip().endswith("# END EXERCISE")
    assert src.startswith("class Embed")


def test_unknown_cell_header_is_rejected(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("# %% exercize curriculum.solutions.chapter1.gpt2:Embed\n")
    with pytest.raises(build.SourceError, match="unknown cell header"):
        build.parse_section(bad)


def test_every_committed_notebook_is_generated_and_has_no_outputs():
    committed = sorted((ROOT / "chapters").rglob("*.ipynb"))
    generated = {p for src in build.all_sources() for p in build.output_paths(src)}
    assert set(committed) == generated, f"notebooks without a source: {sorted(set(committed) - generated)}"
    for path in committed:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name} carries outputs"


def test_every_notebook_starts_with_the_shared_setup_cell():
    for src in build.all_sources():
        for path in build.output_paths(src):
            first = "".join(json.loads(path.read_text())["cells"][0]["source"])
            assert first == build.SETUP_CELL, f"{path.name}: first cell is not the generated setup cell"


def test_readme_lists_every_section_with_a_colab_link():
    readme = (ROOT / "README.md").read_text()
    for src in build.all_sources():
        exercise, _ = build.output_paths(src)
        rel = exercise.relative_to(ROOT).as_posix()
        assert f"({rel})" in readme and f"{build.COLAB}{rel}" in readme, f"README lacks {rel}"


# --- check contract -----------------------------------------------------------------------------


@check
def check_double(f):
    assert_close(f(torch.ones(3)), torch.full((3,), 2.0), "f(ones)")


def test_check_passes_and_says_so(capsys):
    check_double(lambda x: 2 * x)
    assert "✓ check_double passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "learner,message",
    [
        (lambda x: None, "forget a `return`"),
        (lambda x: (2 * x, 0), "single tensor"),
        (lambda x: 2 * x[:2], r"shape \(3,\), got \(2,\)"),
        (lambda x: (2 * x).long(), "dtype"),
        (lambda x: 3 * x, r"index \(0,\): expected 2, got 3"),
        (lambda x: x @ torch.ones(2, 2), "your code raised RuntimeError"),
        (lambda x: (_ for _ in ()).throw(NotImplementedError("hint here")), "still raises NotImplementedError. Hint: hint here"),
    ],
    ids=["returns None", "returns tuple", "wrong shape", "wrong dtype", "wrong value", "crashes in torch", "stub"],
)
def test_check_explains_failures(learner, message):
    assert_check_fails(check_double, learner, match=message)


def test_assert_shape_hints_at_missing_axis():
    assert_check_fails(assert_shape, torch.zeros(2, 5), (2, 3, 5), "logits", match="one axis too few")


# --- utils --------------------------------------------------------------------------------------


def test_ci_size_picks_ci_value_in_the_test_suite():
    assert full_or_quick(1000, 10) == 10


def test_plotting_rejects_bad_shapes_with_a_fix():
    with pytest.raises(ValueError, match="C in"):
        plotting.image_grid(torch.zeros(2, 5, 8, 8), show=False)
    with pytest.raises(ValueError, match="to_str_tokens"):
        plotting.attention_patterns(["a", "b"], torch.rand(1, 3, 3), show=False)
    with pytest.raises(ValueError, match="1-D"):
        plotting.line(torch.zeros(3, 3), show=False)


def test_plotting_builds_figures():
    fig = plotting.line({"loss": [3.0, 2.0, 1.0, 0.5]}, smooth=2, show=False)
    assert len(fig.data) == 2  # raw (faint) + smoothed
    assert plotting.smooth_series([0, 2, 4, 6], 2).tolist() == [0, 1, 3, 5]
    assert len(plotting.image_grid(torch.rand(5, 8, 8), nrow=3, show=False).data) == 5
    assert len(plotting.attention_patterns(["a", "b", "c"], torch.rand(2, 3, 3), show=False).data) == 2


def test_offline_switch_is_forced_by_the_test_suite():
    from curriculum.utils.offline import load_text_corpus, use_real_resources

    assert not use_real_resources()
    loaded = load_text_corpus()
    assert not loaded.real and len(loaded.value) > 400_000


def test_wandb_never_prompts_without_a_key(monkeypatch, tmp_path):
    from curriculum.utils.logging import wandb_mode, wandb_run

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "offline")
    with wandb_run("curriculum-test", {"lr": 1e-3}, dir=str(tmp_path)) as run:
        run.log({"loss": 1.0})
    assert list(tmp_path.rglob("*.wandb")), "an offline run should write its log locally"


def test_assert_check_fails_rejects_a_check_that_passes_and_a_wrong_message():
    @check
    def check_positive(x):
        if x <= 0:
            fail("x must be positive")
        return "ok"

    assert "positive" in str(assert_check_fails(check_positive, -1, match="positive"))
    with pytest.raises(AssertionError, match="accepted a mutant"):
        assert_check_fails(check_positive, 1)
    with pytest.raises(AssertionError, match="does not match"):
        assert_check_fails(check_positive, -1, match="negative")


def test_one_idiom_for_planted_bugs():
    """Mutant tests go through tests.support.assert_check_fails, the test-only helper, never a
    hand-rolled `with pytest.raises(...)` on the check's exception; the learner's package does not ship it."""
    import curriculum.checking

    assert not hasattr(curriculum.checking, "assert_check_fails")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in sorted((ROOT / "tests").rglob("*.py"))
        if p.name != "support.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "raises(" + "CheckFailed" in line
    ]
    assert not offenders, f"use tests.support.assert_check_fails for planted bugs: {offenders}"
