"""Test-suite defaults: CI sizes, offline stand-ins, W&B offline. Set before anything imports utils,
and inherited by the Jupyter kernels nbval starts. Export a variable yourself to override it."""

import os

os.environ.setdefault("CURRICULUM_CI", "1")
os.environ.setdefault("CURRICULUM_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "curriculum-wandb"))
os.makedirs(os.environ["WANDB_DIR"], exist_ok=True)

# pytest-xdist workers share the cores: give each its share of threads (kernels inherit it too)
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
