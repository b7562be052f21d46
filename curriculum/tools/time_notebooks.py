"""Time every solution notebook at learner size (full size, offline stand-ins) and print a markdown table.

    python -m curriculum.tools.time_notebooks                          # every *_solutions.ipynb in chapters/
    python -m curriculum.tools.time_notebooks chapters/chapter1/1.1_gpt2_from_scratch_solutions.ipynb
    python -m curriculum.tools.time_notebooks --budget 600 --jobs 1 --out /tmp/timing

Each notebook runs in a fresh Jupyter kernel with CURRICULUM_QUICK unset (the sizes a learner gets),
CURRICULUM_OFFLINE=1, HF_HUB_OFFLINE=1, WANDB_MODE=offline and OMP_NUM_THREADS=1 (one thread per
notebook, so `--jobs` notebooks share the cores fairly). A notebook gets `--budget` seconds in all;
when they run out, the cell it was in is stopped and recorded (index and first line), and the row
says "over N min on CPU". Cells run one at a time and each is timed, so the per-notebook JSON files
under `--out` say where the time goes; cells slower than `--slow-cell` seconds are listed after the
table. The kernel's working directory is a scratch folder under `--out`, so nothing a notebook
writes lands in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"

LEARNER_ENV = {
    "CURRICULUM_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:80]
    return ""


def time_notebook(path: str, budget: float, out: str) -> dict:
    """Run one notebook cell by cell within `budget` seconds; return (and write as JSON) its timings."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    os.environ.pop("CURRICULUM_QUICK", None)
    os.environ.update(LEARNER_ENV)
    nb_path = Path(path)
    name = nb_path.stem
    work = Path(out) / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(nb_path, as_version=4)
    client = NotebookClient(nb, timeout=budget, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    record: dict = {"notebook": str(nb_path.relative_to(ROOT)) if nb_path.is_relative_to(ROOT) else str(nb_path),
                    "budget_s": budget, "cells": [], "status": "ok", "stopped_in": None}
    start = time.perf_counter()
    try:
        with client.setup_kernel():
            record["kernel_start_s"] = round(time.perf_counter() - start, 1)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = budget - (time.perf_counter() - start)
                if remaining <= 0:
                    record["status"] = "over budget"
                    record["stopped_in"] = {"cell": index, "first_line": _first_line(cell.source), "elapsed_in_cell_s": 0.0}
                    break
                client.timeout = max(1, int(remaining))
                t0 = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    record["status"] = "over budget"
                    record["stopped_in"] = {"cell": index, "first_line": _first_line(cell.source),
                                            "elapsed_in_cell_s": round(time.perf_counter() - t0, 1)}
                    break
                except CellExecutionError as err:
                    record["status"] = "error"
                    record["stopped_in"] = {"cell": index, "first_line": _first_line(cell.source),
                                            "error": str(err).strip().splitlines()[-1][:300]}
                    break
                except DeadKernelError as err:
                    record["status"] = "kernel died"
                    record["stopped_in"] = {"cell": index, "first_line": _first_line(cell.source), "error": str(err)[:300]}
                    break
                finally:
                    record["cells"].append({"cell": index, "first_line": _first_line(cell.source),
                                            "seconds": round(time.perf_counter() - t0, 2)})
    except Exception as err:  # kernel failed to start or shut down: still report the notebook
        if record["status"] == "ok":
            record["status"] = "error"
            record["stopped_in"] = {"cell": None, "first_line": "", "error": f"{type(err).__name__}: {err}"[:300]}
    record["total_s"] = round(time.perf_counter() - start, 1)
    (Path(out) / f"{name}.json").write_text(json.dumps(record, indent=1))
    return record


def _section(record: dict) -> str:
    return Path(record["notebook"]).name.removesuffix("_solutions.ipynb")


def _fmt_time(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def markdown_table(records: list[dict], slow_cell: float) -> str:
    rows = ["| Section | Time at learner size | Slowest cell | Stopped in |", "|---|---|---|---|"]
    for r in sorted(records, key=_section):
        cells = r["cells"]
        slowest = max(cells, key=lambda c: c["seconds"]) if cells else None
        slow = f"{_fmt_time(slowest['seconds'])}: `{slowest['first_line']}`" if slowest else ""
        stop = ""
        if r["status"] == "ok":
            total = _fmt_time(r["total_s"])
        elif r["status"] == "over budget":
            total = f"over {r['budget_s'] / 60:g} min on CPU"
            s = r["stopped_in"]
            stop = f"cell {s['cell']} after {_fmt_time(s['elapsed_in_cell_s'])}: `{s['first_line']}`"
        else:
            total = f"{r['status']} after {_fmt_time(r['total_s'])}"
            s = r["stopped_in"] or {}
            stop = f"cell {s.get('cell')}: `{s.get('first_line', '')}` ({s.get('error', '')})"
        rows.append(f"| {_section(r)} | {total} | {slow} | {stop.replace('|', '/')} |")
    slow_rows = [(_section(r), c) for r in records for c in r["cells"] if c["seconds"] >= slow_cell]
    if slow_rows:
        rows += ["", f"Cells that took {_fmt_time(slow_cell)} or more:", ""]
        rows += [f"- {sec}, cell {c['cell']} ({_fmt_time(c['seconds'])}): `{c['first_line']}`" for sec, c in slow_rows]
    return "\n".join(rows)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every *_solutions.ipynb in chapters/")
    parser.add_argument("--budget", type=float, default=300, help="seconds allowed per notebook (default 300)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at once (default 2)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/timing"), help="folder for per-notebook JSON and scratch")
    parser.add_argument("--slow-cell", type=float, default=600, help="list cells slower than this many seconds (default 600)")
    args = parser.parse_args(argv)
    notebooks = [p.resolve() for p in args.notebooks] or sorted(CHAPTERS.glob("*/*_solutions.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"timing {len(notebooks)} notebooks, {args.jobs} at a time, {args.budget:g} s each, on {machine()}", flush=True)
    records = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(time_notebook, str(p), args.budget, str(args.out)): p for p in notebooks}
        for fut in as_completed(futures):
            r = fut.result()
            records.append(r)
            print(f"  {_section(r)}: {r['status']}, {r['total_s']} s", flush=True)
    table = markdown_table(records, args.slow_cell)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
