"""pyproject.toml and environment.yml name the same packages with the same bounds, and torch
(and torchvision) are bounded from below only, so installing on Colab never replaces its CUDA build."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", req)
    assert m, f"cannot parse requirement {req!r}"
    name = re.sub(r"\[.*\]", "", m[1]).lower().replace("_", "-")
    return name, m[2].replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return dict(_split(r) for r in reqs)


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(_split(r) for r in pip)


def test_environment_yml_matches_pyproject():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"only in pyproject: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}"
    differ = {k: (py[k], env[k]) for k in py if py[k] != env[k]}
    assert not differ, f"bounds differ (pyproject, environment.yml): {differ}"


def test_every_dependency_is_bounded_and_torch_only_from_below():
    for name, spec in _pyproject().items():
        assert spec, f"{name} has no version bound"
        if name in {"torch", "torchvision"}:
            assert spec.startswith(">=") and "<" not in spec and "," not in spec, f"{name} must be bounded from below only, got {spec}"
        else:
            assert ">=" in spec and "<" in spec, f"{name} should have a lower and an upper bound, got {spec}"


def test_required_packages_are_listed():
    required = {"torch", "einops", "jaxtyping", "transformer-lens", "transformers", "gymnasium", "inspect-ai", "openai",
                "plotly", "circuitsvis", "wandb", "tqdm", "jupyter", "nbval", "pytest"}
    missing = required - set(_pyproject())
    assert not missing, f"pyproject.toml lacks {sorted(missing)}"


def test_one_top_level_package():
    """Installing the project adds exactly one importable name, `curriculum`: nothing generic such
    as `utils` or `tests` lands in the learner's site-packages."""
    import importlib.metadata

    from setuptools import find_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ()))
    assert packages and {p.split(".")[0] for p in packages} == {"curriculum"}, packages
    # every folder of the package is a real package, so none is silently left out of an install
    for folder in (ROOT / "curriculum").rglob("*"):
        if folder.is_dir() and any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), f"{folder.relative_to(ROOT)} has modules but no __init__.py"
    dist = importlib.metadata.distribution("open-alignment-curriculum")
    assert (dist.read_text("top_level.txt") or "").split() == ["curriculum"]
