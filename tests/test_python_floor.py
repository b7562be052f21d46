"""The declared minimum Python (`requires-python`) is one the code and its dependencies run on."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# Standard-library modules and names our code could reach for, with the Python that added them.
ADDED_IN = {
    "tomllib": (3, 11), "typing.Self": (3, 11), "typing.LiteralString": (3, 11), "typing.Never": (3, 11),
    "typing.assert_never": (3, 11), "typing.reveal_type": (3, 11), "datetime.UTC": (3, 11), "enum.StrEnum": (3, 11),
    "asyncio.TaskGroup": (3, 11), "asyncio.timeout": (3, 11), "contextlib.chdir": (3, 11), "wsgiref.types": (3, 11),
    "itertools.batched": (3, 12), "typing.override": (3, 12), "typing.TypeAliasType": (3, 12),
    "warnings.deprecated": (3, 13), "copy.replace": (3, 13), "typing.ReadOnly": (3, 13), "typing.TypeIs": (3, 13),
}


def declared_floor() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*3\.(\d+)", spec.strip())
    assert m, f"requires-python should read '>=3.N', got {spec!r}"
    return 3, int(m[1])


def sources() -> list[Path]:
    return sorted([*(ROOT / "curriculum").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "sections").rglob("*.py"), ROOT / "conftest.py"])


def stdlib_uses(tree: ast.AST) -> set[str]:
    """Dotted names of imported modules and of `from m import name` names, e.g. {'tomllib', 'typing.Self'}."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            used |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            used.add(node.module)
            used |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            used.add(f"{node.value.id}.{node.attr}")  # e.g. itertools.batched(...)
    return used


def too_new(floor: tuple[int, int]) -> list[str]:
    """Every use, in our code, of grammar or standard library newer than `floor`."""
    problems = []
    for path in sources():
        text = path.read_text()
        try:
            tree = ast.parse(text, feature_version=floor)
        except SyntaxError as e:
            problems.append(f"{path.relative_to(ROOT)}:{e.lineno}: syntax newer than Python {floor[0]}.{floor[1]}: {e.msg}")
            continue
        for name in sorted(stdlib_uses(tree)):
            if name in ADDED_IN and ADDED_IN[name] > floor:
                problems.append(f"{path.relative_to(ROOT)}: {name} needs Python {'.'.join(map(str, ADDED_IN[name]))}")
    return problems


def dependencies_refusing(floor: tuple[int, int]) -> list[str]:
    """Installed dependencies whose own Requires-Python excludes `floor`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    refusing = []
    for req in project["dependencies"]:
        name = Requirement(req).name
        try:
            spec = importlib.metadata.metadata(name).get("Requires-Python")
        except importlib.metadata.PackageNotFoundError:
            continue
        if spec and not SpecifierSet(spec).contains(Version(f"{floor[0]}.{floor[1]}"), prereleases=True):
            refusing.append(f"{name} requires Python {spec}")
    return refusing


def test_the_code_runs_on_the_declared_floor():
    floor = declared_floor()
    assert not too_new(floor), "\n".join(too_new(floor))
    assert not dependencies_refusing(floor), dependencies_refusing(floor)


def test_a_floor_below_what_the_code_needs_is_caught():
    """One minor version below the declared floor must fail one of the two checks (or the floor is too high)."""
    major, minor = declared_floor()
    lower = (major, minor - 1)
    assert too_new(lower) or dependencies_refusing(lower), f"the code seems to run on {major}.{minor - 1}: lower the floor"


def test_readme_states_the_floor():
    major, minor = declared_floor()
    assert f"Python {major}.{minor}+" in (ROOT / "README.md").read_text()
