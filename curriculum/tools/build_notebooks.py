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

Teaching apparatus, all declared in the source and rendered here:

- **Metadata.** Every exercise header ends with `difficulty=1..5 importance=1..5 minutes=N`:

      # %% exercise curriculum.solutions.chapter1.gpt2:LayerNorm difficulty=2 importance=4 minutes=10

  The markdown just before the exercise must hold its own `### Exercise: ...` heading; both
  notebooks show the tags on the line under it. A missing tag or heading is a build error.
- **Hints.** `# %% hint` cells (markdown) right after an exercise cell are its graded hints, in
  order. The exercise notebook shows them as collapsed blocks (Hint 1, Hint 2, ...) under the
  exercise, then the reference solution as a last collapsed block, taken from the solution module.
- **Figures.** A markdown image with a relative path, `![The residual stream](figures/x.svg)`
  (relative to the section source), is embedded in the notebook as a data URI, so it renders
  offline, in Jupyter and on Colab, with no file beside the notebook.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from curriculum.progress import format_minutes

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ROOT / "sections"
CHAPTERS = ROOT / "chapters"
REPO_URL = "https://github.com/open-alignment-curriculum/curriculum"

MARK_START = re.compile(r"^(?P<indent>\s*)# EXERCISE:\s*(?P<hint>.*)$")
MARK_END = re.compile(r"^\s*# END EXERCISE\s*$")
EXERCISE_HEADER = re.compile(r"^exercise\s+(?P<module>[\w.]+):(?P<names>\w+(?:\s*,\s*\w+)*)(?P<meta>(?:\s+\w+=\S+)*)\s*$")
EXERCISE_HEADING = re.compile(r"^#{2,4} Exercise: ")
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>(?!https?:|data:|attachment:)[^)\s]+)\)")
META_KEYS = {"difficulty": range(1, 6), "importance": range(1, 6), "minutes": range(1, 241)}
IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}

SETUP_CELL = f'''# Setup. On Colab this installs the curriculum (keeping Colab's own CUDA torch); elsewhere it does nothing.
# Sizes: by default every model, step count and sample count is the full size the text describes.
# Quick mode shrinks them so each cell finishes in seconds on a laptop CPU, with weaker results:
# set the environment variable CURRICULUM_QUICK=1 before starting Jupyter (or uncomment the line below).
import os
import sys

# os.environ["CURRICULUM_QUICK"] = "1"

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
    meta: dict[str, int] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)  # markdown of each `# %% hint` cell after an exercise
    lineno: int = 0


def parse_meta(text: str, where: str) -> dict[str, int]:
    meta: dict[str, int] = {}
    for item in text.split():
        key, _, value = item.partition("=")
        if key not in META_KEYS:
            raise SourceError(f"{where}: unknown exercise tag {key!r} (expected {', '.join(META_KEYS)})")
        if not value.isdigit() or int(value) not in META_KEYS[key]:
            allowed = META_KEYS[key]
            raise SourceError(f"{where}: {key}={value} should be a whole number from {allowed.start} to {allowed.stop - 1}")
        meta[key] = int(value)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise SourceError(
            f"{where}: the exercise header lacks {', '.join(missing)}; end it with e.g. "
            "`difficulty=2 importance=4 minutes=10`"
        )
    return meta


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
                meta = parse_meta(m["meta"], f"{path}:{lineno}")
                current = Cell("exercise", [], m["module"], names, meta, lineno=lineno)
            elif header == "hint":
                current = Cell("hint", [], lineno=lineno)
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
    return _attach_hints(_check_headings(cells, path), path)


def _check_headings(cells: list[Cell], path: Path) -> list[Cell]:
    """Each exercise needs its own `### Exercise:` heading in the markdown since the previous exercise."""
    headed = {id(c) for c in exercise_headings(cells).values()}
    for c in cells:
        if c.kind == "exercise" and id(c) not in headed:
            raise SourceError(
                f"{path}:{c.lineno}: exercise {', '.join(c.names)} has no heading of its own: put a markdown "
                "line `### Exercise: <what the learner builds>` between it and the previous exercise"
            )
    return cells


def _attach_hints(cells: list[Cell], path: Path) -> list[Cell]:
    """Fold each `# %% hint` cell into the exercise cell it follows."""
    out: list[Cell] = []
    for c in cells:
        if c.kind != "hint":
            out.append(c)
        elif out and out[-1].kind == "exercise":
            out[-1].hints.append("\n".join(markdown_text(l) for l in c.lines))
        else:
            raise SourceError(f"{path}:{c.lineno}: a `# %% hint` cell must follow an exercise cell (or another hint)")
    return out


def markdown_text(line: str) -> str:
    """A markdown line of the source without its leading `# `."""
    return re.sub(r"^# ?", "", line) if line.startswith("#") else line


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


def tag_line(meta: dict[str, int]) -> str:
    dots = lambda n: "●" * n + "○" * (5 - n)  # noqa: E731
    return (
        f"> **Difficulty** {dots(meta['difficulty'])} &nbsp;·&nbsp; **Importance** {dots(meta['importance'])} "
        f"&nbsp;·&nbsp; **Time** about {meta['minutes']} min"
    )


def embed_images(text: str, base: Path) -> str:
    """Replace `![alt](relative/path.svg)` with a data URI, so the figure travels inside the notebook."""

    def data_uri(m: re.Match) -> str:
        file = (base / m["path"]).resolve()
        mime = IMAGE_TYPES.get(file.suffix.lower())
        if mime is None:
            raise SourceError(f"figure {m['path']}: only {', '.join(IMAGE_TYPES)} files can be embedded")
        if not file.is_file():
            raise SourceError(f"figure {m['path']} not found (looked for {file})")
        return f"![{m['alt']}](data:{mime};base64,{base64.b64encode(file.read_bytes()).decode()})"

    return IMAGE.sub(data_uri, text)


def exercise_headings(cells: list[Cell]) -> dict[int, Cell]:
    """Index of the markdown cell holding each exercise's heading (the last one before it) -> the exercise."""
    out: dict[int, Cell] = {}
    last_heading = None
    for i, c in enumerate(cells):
        if c.kind == "markdown" and any(EXERCISE_HEADING.match(markdown_text(l)) for l in c.lines):
            last_heading = i
        elif c.kind == "exercise" and last_heading is not None:
            out[last_heading] = c
            last_heading = None
    return out


def markdown_source(cell: Cell, exercise: Cell | None, base: Path) -> str:
    lines = [markdown_text(l) for l in cell.lines]
    if exercise is not None:
        # the tags go on the line under the cell's last exercise heading
        last = max(i for i, l in enumerate(lines) if EXERCISE_HEADING.match(l))
        # a blank line after it too: text right under the heading would otherwise continue the quote
        lines[last + 1 : last + 1] = ["", tag_line(exercise.meta), ""]
    return embed_images("\n".join(lines), base)


def details(summary: str, body: str) -> str:
    # blank lines around the body let Jupyter and Colab render the markdown inside the HTML block
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>"


def help_source(cell: Cell, solution: bool) -> str | None:
    """The collapsed blocks under an exercise: graded hints, then (exercise notebook) the solution."""
    blocks = [details(f"Hint {i}", h) for i, h in enumerate(cell.hints, 1)]
    if not solution:
        code = "\n\n\n".join(solve(object_source(cell.module, n)) for n in cell.names)
        blocks.append(details("Solution", f"```python\n{code}\n```"))
    return "\n\n".join(blocks) or None


def cell_source(cell: Cell, solution: bool) -> str:
    if cell.kind == "markdown":
        return "\n".join(markdown_text(l) for l in cell.lines)
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


def section_number(source: Path) -> str:
    return source.name.split("_", 1)[0]


def progress_cells(section: str) -> list[tuple[str, str]]:
    return [
        ("markdown", "## Your progress\n\nEvery check that passed is remembered on this machine (nowhere else). "
                     "The table shows what you have done in each section and the expected time of what is left; "
                     "`python -m curriculum.progress` prints it from a terminal too."),
        ("code", f"from curriculum.progress import show_progress\n\nshow_progress({section!r})"),
    ]


def build_notebook(cells: list[Cell], solution: bool, name: str, base: Path = SECTIONS, section: str | None = None) -> dict:
    nb_cells = [_nb_cell("code", SETUP_CELL, f"{name}:setup")]
    headed = exercise_headings(cells)
    for i, c in enumerate(cells):
        if c.kind == "markdown":
            nb_cells.append(_nb_cell("markdown", markdown_source(c, headed.get(i), base), f"{name}:{i}"))
            continue
        nb_cells.append(_nb_cell("code", cell_source(c, solution), f"{name}:{i}"))
        if c.kind == "exercise" and (help_md := help_source(c, solution)):
            nb_cells.append(_nb_cell("markdown", help_md, f"{name}:{i}:help"))
    if section is not None:
        nb_cells += [_nb_cell(kind, src, f"{name}:progress:{j}") for j, (kind, src) in enumerate(progress_cells(section))]
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
        exercise: json.dumps(build_notebook(cells, False, source.stem, source.parent, section_number(source)), indent=1, ensure_ascii=False) + "\n",
        solution: json.dumps(build_notebook(cells, True, source.stem, source.parent, section_number(source)), indent=1, ensure_ascii=False) + "\n",
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
    rows = ["| section | exercises | solutions | time for the exercises | Colab |", "|---|---|---|---|---|"]
    for src in sources:
        exercise, solution = (p.relative_to(ROOT).as_posix() for p in output_paths(src))
        rows.append(
            f"| {section_title(src)} | [{Path(exercise).name}]({exercise}) | [solutions]({solution}) "
            f"| {format_minutes(section_minutes(src))} "
            f"| [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({COLAB}{exercise}) |"
        )
    return "\n".join(rows)


ONLINE_START, ONLINE_END = "<!-- online:start -->", "<!-- online:end -->"
# What each section's online branch uses, and roughly what it downloads once (sizes from the model and
# dataset cards). `python -m curriculum.tools.rehearsal run` runs these branches against local copies.
ONLINE_RESOURCES = {
    "1.1": "pretrained GPT-2 small (`gpt2`, ~550 MB safetensors) and its tokenizer (~2 MB); Tiny Shakespeare (1.1 MB)",
    "1.2": "GPT-2's tokenizer (~2 MB); `roneneldan/TinyStories`, streamed: only the prefix the run tokenises "
           "(20M tokens, ~80 MB); HellaSwag's validation set (~11 MB)",
    "1.3": "TransformerLens's `NeelNanda/Attn_Only_2L512W_C4_Code` (~210 MB) and its tokenizer "
           "`NeelNanda/gpt-neox-tokenizer-digits` (~2 MB); GPT-2 small (~550 MB); Tiny Shakespeare (1.1 MB)",
    "1.4": "nothing: the same offline and online",
    "2.1": "nothing: the same offline and online",
    "2.2": "nothing: the same offline and online",
    "2.3": "nothing: the same offline and online",
    "2.4": "GPT-2 small as the policy (~550 MB); the sentiment classifier "
           "`distilbert/distilbert-base-uncased-finetuned-sst-2-english` (~270 MB); Tiny Shakespeare (1.1 MB)",
    "3.1": "the OpenAI API (`gpt-4o-mini`; needs OPENAI_API_KEY, billed per token, nothing downloaded)",
    "3.2": "the OpenAI API (`gpt-4o-mini`, OPENAI_API_KEY)",
    "3.3": "the OpenAI API (`gpt-4o-mini`, OPENAI_API_KEY); live English Wikipedia through the MediaWiki API "
           "(a few kB a page)",
    "3.4": "the OpenAI API (`gpt-4o-mini`, OPENAI_API_KEY), or a Claude model through Anthropic's API (`pip install anthropic`, ANTHROPIC_API_KEY)",
    "4.1": "nothing: the same offline and online",
    "4.2": "MNIST through torchvision (~11 MB compressed; `pip install torchvision`)",
    "4.3": "MNIST through torchvision (~11 MB compressed); pretrained CLIP `openai/clip-vit-base-patch32` (~600 MB)",
}


def online_table(sources: list[Path]) -> str:
    rows = ["| section | online, it uses (downloaded once, then cached) |", "|---|---|"]
    for src in sources:
        number = section_number(src)
        if number not in ONLINE_RESOURCES:
            raise SourceError(f"{src}: add section {number} to ONLINE_RESOURCES in {Path(__file__).name}")
        rows.append(f"| {section_title(src)} | {ONLINE_RESOURCES[number]} |")
    return "\n".join(rows)


MANIFEST = ROOT / "curriculum" / "exercises.json"


def check_calls(cell: Cell, setup: str) -> list[str]:
    """Qualified names of the checks an exercise cell calls, e.g. 'curriculum.checks.chapter1.gpt2.check_embed'."""
    aliases: dict[str, str] = {}
    for node in ast.walk(ast.parse(setup)):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
    calls = []
    for node in ast.walk(ast.parse("\n".join(cell.lines))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.attr.startswith("check_"):
            calls.append(f"{aliases.get(f.value.id, f.value.id)}.{f.attr}")
        elif isinstance(f, ast.Name) and f.id.startswith("check_"):
            calls.append(aliases.get(f.id, f.id))
    return calls


def render_manifest(sources: list[Path]) -> str:
    """Every section's exercises with their checks and tags: what the progress table counts."""
    sections = []
    for src in sources:
        cells = parse_section(src)
        setup = "\n".join("\n".join(c.lines) for c in cells if c.kind == "setup")
        exercise, _ = output_paths(src)
        sections.append({
            "section": section_number(src),
            "title": section_title(src),
            "notebook": exercise.relative_to(ROOT).as_posix(),
            "exercises": [{"names": c.names, "checks": check_calls(c, setup), **c.meta} for c in cells if c.kind == "exercise"],
        })
    return json.dumps({"sections": sections}, indent=1, ensure_ascii=False) + "\n"


def section_minutes(source: Path) -> int:
    return sum(c.meta["minutes"] for c in parse_section(source) if c.kind == "exercise")


def render_readme(sources: list[Path]) -> str | None:
    """README.md with its section table regenerated, or None if it has no table markers."""
    if not README.exists():
        return None
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        return None
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    text = f"{head}{TABLE_START}\n{readme_table(sources)}\n{TABLE_END}{tail}"
    if ONLINE_START in text and ONLINE_END in text:
        head, rest = text.split(ONLINE_START, 1)
        _, tail = rest.split(ONLINE_END, 1)
        text = f"{head}{ONLINE_START}\n{online_table(sources)}\n{ONLINE_END}{tail}"
    return text


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
    if not args.sources:
        outputs[MANIFEST] = render_manifest(all_sources())
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
