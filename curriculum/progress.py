"""Your progress through the curriculum, kept on your machine only.

Every check that passes records which one it was in one small JSON file under your cache folder
(`$CURRICULUM_PROGRESS_DIR`, else `$XDG_CACHE_HOME/curriculum`, else `~/.cache/curriculum`). No
network, no account. An exercise counts as done once all of its checks have passed.

    python -m curriculum.progress            # a table per section: exercises done, expected time left
    python -m curriculum.progress --reset    # start again

The last cell of every notebook calls `show_progress("N.M")`. Several processes (notebook kernels,
test workers) may record at once: writes hold a lock and replace the file atomically. A damaged
file is reported once and rebuilt; it never makes a check fail.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator

MANIFEST = Path(__file__).resolve().parent / "exercises.json"


def progress_dir() -> Path:
    if folder := os.environ.get("CURRICULUM_PROGRESS_DIR"):
        return Path(folder)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "curriculum"


def progress_file() -> Path:
    return progress_dir() / "progress.json"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder/progress.lock` for the read-modify-write of the progress file."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "progress.lock", "a+") as handle:
        if os.name == "nt":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, float]:
    """{check's qualified name: time it first passed}; a damaged file is reported and treated as empty."""
    try:
        data = json.loads(path.read_text())
        passed = data["passed"]
        if not isinstance(passed, dict) or not all(isinstance(v, (int, float)) for v in passed.values()):
            raise ValueError("'passed' should map check names to times")
        return passed
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        warnings.warn(f"your progress file {path} is damaged ({e}); starting it afresh", stacklevel=3)
        return {}


def _write(path: Path, passed: dict[str, float]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".progress-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "passed": passed}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def record_pass(check_name: str) -> None:
    """Remember that `check_name` (e.g. 'curriculum.checks.chapter1.gpt2.check_layer_norm') passed."""
    path = progress_file()
    try:
        with _locked(path.parent):
            passed = _read(path)
            if check_name not in passed:
                passed[check_name] = time.time()
                _write(path, passed)
    except OSError as e:  # a read-only home, a full disk: progress is a convenience, never an error
        warnings.warn(f"could not record progress in {path}: {e}", stacklevel=2)


def passed_checks() -> set[str]:
    path = progress_file()
    try:
        with _locked(path.parent):
            return set(_read(path))
    except OSError:
        return set()


def reset() -> None:
    with contextlib.suppress(FileNotFoundError), _locked(progress_dir()):
        progress_file().unlink()


def load_manifest() -> list[dict]:
    return json.loads(MANIFEST.read_text())["sections"]


def format_minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


def progress_table(current: str | None = None) -> str:
    """One row per section: exercises done / total, and the expected minutes of the ones left."""
    passed = passed_checks()
    rows = [f"{'section':<58} {'done':>7}  {'time left':>12}"]
    total_done = total = total_left = 0
    for sec in load_manifest():
        exercises = sec["exercises"]
        done = [all(c in passed for c in ex["checks"]) for ex in exercises]
        left = sum(ex["minutes"] for ex, d in zip(exercises, done) if not d)
        marker = " <- this notebook" if sec["section"] == current else ""
        rows.append(f"{sec['title'][:58]:<58} {sum(done):>3}/{len(exercises):<3}  {format_minutes(left):>12}{marker}")
        total_done, total, total_left = total_done + sum(done), total + len(exercises), total_left + left
    rows.append(f"{'all sections':<58} {total_done:>3}/{total:<3}  {format_minutes(total_left):>12}")
    return "\n".join(rows)


def show_progress(section: str | None = None) -> None:
    print(progress_table(section))
    print(f"(recorded on this machine only, in {progress_file()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show (or reset) your progress through the curriculum.")
    parser.add_argument("--reset", action="store_true", help="forget every passed exercise")
    args = parser.parse_args(argv)
    if args.reset:
        reset()
        print(f"progress reset ({progress_file()})")
        return 0
    show_progress()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
