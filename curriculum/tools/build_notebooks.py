"""Build the learner's exercise notebook and the solution notebook from one section source.

    python -m curriculum.tools.build_notebooks            # rebuild every notebook and README's section table
    python -m curriculum.tools.build_notebooks --check    # exit 1 if a notebook or the README table is out of date
    python -m curriculum.tools.build_notebooks sections/chapter1/1.1_gpt2_from_scratch.py   # one section

A section source `sections/chapterN/N.M_name.py` is a jupytext-style percent script. Cells start
with a `# %%` line; what follows `# %%` says what the cell is:

    # %% [markdown]                          prose: each line's leading "# " is removed
    # %%                                     code, the same in both notebooks
    # %% setup                               code (imports); also run by the automatic stub test
    # %% exercise curriculum.solutions.chapter1.gpt2:LayerNorm,Embed
    tests.check_layer_norm(LayerNorm)        <- the cell's own lines: the check calls

An `exercise` cell pulls the named top-level classes/functions from the reference module (so the
code exists once, in `curriculum/solutions/`), then appends the cell's own lines. In the solution module,
the part a learner writes is fenced:

    # EXERCISE: one-line hint shown to the learner
    ...reference code...
    # END EXERCISE

The exercise notebook replaces each fence with `raise NotImplementedError("<hint>")`; the solution
notebook keeps the code and drops the two marker lines. Fences also work inside ordinary code
cells of the source. Generated notebooks carry no outputs. Every notebook starts with the same
setup cell (Colab install + environment summary), written here and nowhere else.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ROOT / "sections"
CHAPTERS = ROOT / "chapters"
REPO_URL = "https://github.com/open-alignment-curriculum/curriculum"

MARK_START = re.compile(r"^(?P<indent>\s*)# EXERCISE:\s*(?P<hint>.*)$")
MARK_END = re.compile(r"^\s*# END EXERCISE\s*$")
EXERCISE_HEADER = re.compile(r"^exercise\s+(?P<module>[\w.]+):(?P<names>[\w, ]+)$")

SETUP_CELL = f'''# Setup. On Colab this installs the curriculum (keeping Colab's own CUDA torch); elsewhere it does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(["git", "clone", "--depth=1", "{REPO_URL}", "/content/curriculum"], check=False)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/curriculum"], check=True)
    sys.path.insert(0, "/content/curriculum")

from curriculum import utils

utils.describe_environment()'''


@dataclass
class Cell:
    kind: str  # "markdown" | "code" | "setup" | "exercise"
    lines: list[str]
    module: str = ""
    names: list[str] = field(default_factory=list)


class SourceError(ValueError):
    pass


def parse_section(path: Path) -> list[Cell]:
    cells: list[Cell] = []
    current: Cell | None = None
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("# %%"):
            header = line[4:].strip()
            if header == "[markdown]":
                current = Cell("markdown", [])
            elif header == "":
                current = Cell("code", [])
            elif header == "setup":
                current = Cell("setup", [])
            elif m := EXERCISE_HEADER.match(header):
                names = [n.strip() for n in m["names"].split(",") if n.strip()]
                current = Cell("exercise", [], m["module"], names)
            else:
                raise SourceError(f"{path}:{lineno}: unknown cell header {line!r}")
            cells.append(current)
        elif current is None:
            if line.strip():
                raise SourceError(f"{path}:{lineno}: text before the first '# %%' cell header")
        else:
            current.lines.append(line)
    for c in cells:
        while c.lines and not c.lines[-1].strip():
            c.lines.pop()
        while c.lines and not c.lines[0].strip():
            c.lines.pop(0)
    return cells


def module_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SourceError(f"cannot find module {module!r}")
    return Path(spec.origin)


def object_source(module: str, name: str) -> str:
    """Source text of a top-level def/class (decorators included), exactly as written."""
    text = module_file(module).read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    for i, node in enumerate(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            # the AST ends at the last statement; a closing `# END EXERCISE` comment comes after it,
            # so extend to the next top-level statement and trim what is not indented (blank lines, banners)
            nxt = tree.body[i + 1] if i + 1 < len(tree.body) else None
            end = (min([nxt.lineno] + [d.lineno for d in getattr(nxt, "decorator_list", [])]) - 1) if nxt else len(lines)
            while end > node.end_lineno and not lines[end - 1].startswith((" ", "\t")):
                end -= 1
            return "\n".join(lines[start - 1 : end])
    raise SourceError(f"{module} has no top-level function or class named {name!r}")


def stub(code: str) -> str:
    """Replace each EXERCISE fence with a NotImplementedError carrying the hint."""
    out, inside = [], False
    for line in code.splitlines():
        if m := MARK_START.match(line):
            if inside:
                raise SourceError(f"nested '# EXERCISE:' fence: {line.strip()!r}")
            inside = True
            out.append(f"{m['indent']}raise NotImplementedError({m['hint']!r})")
        elif MARK_END.match(line):
            if not inside:
                raise SourceError("'# END EXERCISE' without a matching '# EXERCISE:'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SourceError("'# EXERCISE:' fence is never closed with '# END EXERCISE'")
    return "\n".join(out)


def solve(code: str) -> str:
    """Drop the fence markers, keep the reference code."""
    stub(code)  # validates the fences
    return "\n".join(l for l in code.splitlines() if not (MARK_START.match(l) or MARK_END.match(l)))


def exercise_code(cell: Cell, solution: bool) -> str:
    transform = solve if solution else stub
    parts = []
    for n in cell.names:
        try:
            parts.append(transform(object_source(cell.module, n)))
        except SourceError as e:
            raise SourceError(f"{cell.module}:{n}: {e}") from None
    own = "\n".join(cell.lines)
    return "\n\n\n".join(parts) + ("\n\n" + own if own else "")


def cell_source(cell: Cell, solution: bool) -> str:
    if cell.kind == "markdown":
        return "\n".join(re.sub(r"^# ?", "", l) if l.startswith("#") else l for l in cell.lines)
    if cell.kind == "exercise":
        return exercise_code(cell, solution)
    code = "\n".join(cell.lines)
    return solve(code) if solution else stub(code)


def _nb_cell(kind: str, source: str, key: str) -> dict:
    cid = hashlib.sha1(key.encode()).hexdigest()[:12]
    lines = source.splitlines(keepends=True)
    if kind == "markdown":
        return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": lines}
    return {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {}, "outputs": [], "source": lines}


def build_notebook(cells: list[Cell], solution: bool, name: str) -> dict:
    nb_cells = [_nb_cell("code", SETUP_CELL, f"{name}:setup")]
    for i, c in enumerate(cells):
        kind = "markdown" if c.kind == "markdown" else "code"
        nb_cells.append(_nb_cell(kind, cell_source(c, solution), f"{name}:{i}"))
    return {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def output_paths(source: Path) -> tuple[Path, Path]:
    rel = source.relative_to(SECTIONS)
    stem = rel.name.removesuffix(".py")  # not Path.stem games: "1.1_x" has a dot of its own
    folder = CHAPTERS / rel.parent
    return folder / f"{stem}.ipynb", folder / f"{stem}_solutions.ipynb"


def render(source: Path) -> dict[Path, str]:
    cells = parse_section(source)
    exercise, solution = output_paths(source)
    return {
        exercise: json.dumps(build_notebook(cells, False, source.stem), indent=1, ensure_ascii=False) + "\n",
        solution: json.dumps(build_notebook(cells, True, source.stem), indent=1, ensure_ascii=False) + "\n",
    }


def all_sources() -> list[Path]:
    return sorted(SECTIONS.glob("chapter*/*.py"))


README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- sections:start -->", "<!-- sections:end -->"
COLAB = "https://colab.research.google.com/github/" + REPO_URL.removeprefix("https://github.com/") + "/blob/main/"


def section_title(source: Path) -> str:
    """The first markdown heading of a section source, e.g. '1.1 GPT-2 from scratch'."""
    for cell in parse_section(source):
        for line in cell.lines:
            if cell.kind == "markdown" and line.startswith("# #"):
                return line.lstrip("# ").strip()
    raise SourceError(f"{source}: the first markdown cell should start with a '# Title' heading")


def readme_table(sources: list[Path]) -> str:
    rows = ["| section | exercises | solutions | Colab |", "|---|---|---|---|"]
    for src in sources:
        exercise, solution = (p.relative_to(ROOT).as_posix() for p in output_paths(src))
        rows.append(
            f"| {section_title(src)} | [{Path(exercise).name}]({exercise}) | [solutions]({solution}) "
            f"| [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({COLAB}{exercise}) |"
        )
    return "\n".join(rows)


def render_readme(sources: list[Path]) -> str | None:
    """README.md with its section table regenerated, or None if it has no table markers."""
    if not README.exists():
        return None
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        return None
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}\n{readme_table(sources)}\n{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="*", type=Path, help="section sources (default: all)")
    ap.add_argument("--check", action="store_true", help="only report notebooks that are out of date")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    sources = [p.resolve() for p in args.sources] or all_sources()
    stale = []
    outputs: dict[Path, str] = {}
    for src in sources:
        outputs.update(render(src))
    # the README's section table lists every section, so it is rebuilt only in a whole-project build
    if not args.sources and (readme := render_readme(all_sources())) is not None:
        outputs[README] = readme
    for path, text in outputs.items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("Out of date (run `python -m curriculum.tools.build_notebooks`):")
        for p in stale:
            print(f"  {p.relative_to(ROOT)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
