"""The build tool's teaching apparatus: exercise tags, headings, graded hints, the solution block,
embedded figures and the README's time column."""

from __future__ import annotations

import base64
import json
import re
import textwrap
from pathlib import Path

import pytest

from curriculum.tools import build_notebooks as build

ROOT = Path(__file__).resolve().parents[1]
MODULE = "curriculum.solutions.chapter1.gpt2"

SECTION = textwrap.dedent(
    f"""
    # %% [markdown]
    # # 9.9 A test section
    #
    # ![a square](figures/square.svg)

    # %% setup
    from curriculum.checks.chapter1 import gpt2 as tests

    # %% [markdown]
    # ### Exercise: LayerNorm
    #
    # What to write.

    # %% exercise {MODULE}:LayerNorm difficulty=2 importance=4 minutes=10
    tests.check_layer_norm(LayerNorm)

    # %% hint
    # First hint, about the idea.

    # %% hint
    # Second hint, about the mechanism.

    # %% [markdown]
    # Some prose between exercises.
    #
    # ### Exercise: token embeddings

    # %% exercise {MODULE}:Embed difficulty=1 importance=3 minutes=5
    tests.check_embed(Embed)
    """
).lstrip()

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>\n'


def _write(tmp_path: Path, text: str = SECTION) -> Path:
    (tmp_path / "figures").mkdir(exist_ok=True)
    (tmp_path / "figures" / "square.svg").write_text(SVG)
    src = tmp_path / "9.9_test.py"
    src.write_text(text)
    return src


def _notebooks(src: Path) -> tuple[list[dict], list[dict]]:
    cells = build.parse_section(src)
    return tuple(build.build_notebook(cells, solution, "t", src.parent)["cells"] for solution in (False, True))  # type: ignore[return-value]


def _markdown(cells: list[dict]) -> list[str]:
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def test_tags_are_parsed_and_shown_under_each_heading_in_both_notebooks(tmp_path):
    src = _write(tmp_path)
    exercises = [c for c in build.parse_section(src) if c.kind == "exercise"]
    assert [c.meta for c in exercises] == [
        {"difficulty": 2, "importance": 4, "minutes": 10},
        {"difficulty": 1, "importance": 3, "minutes": 5},
    ]
    for cells in _notebooks(src):
        md = _markdown(cells)
        layer_norm = next(m for m in md if "### Exercise: LayerNorm" in m)
        embed = next(m for m in md if "### Exercise: token embeddings" in m)
        # the tag line sits right under the heading
        assert re.search(r"### Exercise: LayerNorm\n\n> \*\*Difficulty\*\* ●●○○○ .*\*\*Importance\*\* ●●●●○ .*about 10 min", layer_norm)
        assert re.search(r"### Exercise: token embeddings\n\n> \*\*Difficulty\*\* ●○○○○ .*●●●○○ .*about 5 min", embed)
        assert "Difficulty" not in next(m for m in md if "A test section" in m)
        # the quote is closed by a blank line, so the text under the heading is not pulled into it
        for m in (layer_norm, embed):
            tag = next(line for line in m.split("\n") if line.startswith("> **Difficulty**"))
            after = m.split("\n")[m.split("\n").index(tag) + 1]
            assert after == "", f"the line after the tag line must be blank, got {after!r}"


@pytest.mark.parametrize(
    "change,message",
    [
        (" difficulty=2 importance=4 minutes=10", "lacks difficulty, importance, minutes"),
        (" importance=4 minutes=10", "lacks difficulty"),
        (" difficulty=6 importance=4 minutes=10", "difficulty=6 should be a whole number from 1 to 5"),
        (" difficulty=2 importance=4 minutes=10 level=3", "unknown exercise tag 'level'"),
    ],
)
def test_missing_or_bad_tags_are_build_errors(tmp_path, change, message):
    text = SECTION.replace(" difficulty=2 importance=4 minutes=10", "" if "lacks difficulty, importance" in message else change)
    with pytest.raises(build.SourceError, match=re.escape(message)):
        build.parse_section(_write(tmp_path, text))


def test_an_exercise_without_its_own_heading_is_a_build_error(tmp_path):
    text = SECTION.replace("# ### Exercise: token embeddings", "# (no heading here)")
    with pytest.raises(build.SourceError, match=r"Embed has no heading of its own"):
        build.parse_section(_write(tmp_path, text))


def test_a_hint_must_follow_an_exercise(tmp_path):
    text = SECTION.replace("# %% setup", "# %% hint\n# stray\n\n# %% setup")
    with pytest.raises(build.SourceError, match="must follow an exercise cell"):
        build.parse_section(_write(tmp_path, text))


def test_hints_are_collapsed_and_numbered_then_the_solution_from_the_module(tmp_path):
    exercise, solution = _notebooks(_write(tmp_path))
    i = next(k for k, c in enumerate(exercise) if "check_layer_norm" in "".join(c["source"]))
    help_md = "".join(exercise[i + 1]["source"])
    blocks = re.findall(r"<details>\n<summary>(.*?)</summary>\n\n(.*?)\n\n</details>", help_md, flags=re.S)
    assert [b[0] for b in blocks] == ["Hint 1", "Hint 2", "Solution"]
    assert blocks[0][1] == "First hint, about the idea." and blocks[1][1] == "Second hint, about the mechanism."
    # the solution block is the reference code itself, fences removed, never a hand-made copy
    reference = build.solve(build.object_source(MODULE, "LayerNorm"))
    assert blocks[2][1] == f"```python\n{reference}\n```"
    assert "raise NotImplementedError" in "".join(exercise[i]["source"])
    # the solution notebook repeats the hints but not the solution (its code cell already has it)
    j = next(k for k, c in enumerate(solution) if "check_layer_norm" in "".join(c["source"]))
    assert "<summary>Hint 2</summary>" in "".join(solution[j + 1]["source"])
    assert "<summary>Solution</summary>" not in "".join(solution[j + 1]["source"])
    # an exercise without hints still gets its solution block
    k = next(k for k, c in enumerate(exercise) if "check_embed(" in "".join(c["source"]))
    assert "".join(exercise[k + 1]["source"]).startswith("<details>\n<summary>Solution</summary>")


def test_figures_are_embedded_as_data_uris(tmp_path):
    for cells in _notebooks(_write(tmp_path)):
        intro = _markdown(cells)[0]
        m = re.search(r"!\[a square\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", intro)
        assert m and base64.b64decode(m[1]).decode() == SVG
        assert "figures/square.svg" not in intro


def test_a_missing_figure_is_a_build_error(tmp_path):
    src = _write(tmp_path, SECTION.replace("square.svg", "circle.svg"))
    with pytest.raises(build.SourceError, match="figure figures/circle.svg not found"):
        _notebooks(src)


def test_every_section_tags_every_exercise_and_the_readme_sums_the_minutes():
    readme = (ROOT / "README.md").read_text()
    for src in build.all_sources():
        exercises = [c for c in build.parse_section(src) if c.kind == "exercise"]
        assert exercises and all(set(c.meta) == set(build.META_KEYS) for c in exercises)
        row = next(line for line in readme.splitlines() if line.startswith(f"| {build.section_title(src)} |"))
        assert f"| {build.format_minutes(sum(c.meta['minutes'] for c in exercises))} |" in row


def test_section_one_one_shows_its_diagram_and_a_reading_list():
    exercise, _ = build.output_paths(build.SECTIONS / "chapter1" / "1.1_gpt2_from_scratch.py")
    md = [("".join(c["source"])) for c in json.loads(exercise.read_text())["cells"] if c["cell_type"] == "markdown"]
    assert any(re.search(r"!\[The residual stream[^\]]*\]\(data:image/svg\+xml;base64,", m) for m in md)
    reading = next(m for m in md if m.startswith("## Further reading"))
    assert len(set(re.findall(r"\]\((https?://[^)\s]+)\)", reading))) >= 3
