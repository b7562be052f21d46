"""Test-suite defaults: quick mode, offline stand-ins, W&B offline, a private progress folder. Set before anything imports utils,
and inherited by the Jupyter kernels nbval starts. Export a variable yourself to override it."""

import os
import tempfile

os.environ.setdefault("CURRICULUM_QUICK", "1")
os.environ.setdefault("CURRICULUM_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "curriculum-wandb"))
os.makedirs(os.environ["WANDB_DIR"], exist_ok=True)
# Checks that pass record the learner's progress: the suite's passes go to a folder of its own,
# shared by its workers and notebook kernels, never to the real one under ~/.cache.
os.environ.setdefault("CURRICULUM_PROGRESS_DIR", tempfile.mkdtemp(prefix="curriculum-progress-"))

# One torch thread per test process (and per notebook kernel, which inherits the variable): the
# suite's models are tiny, and on a small shared CPU extra intra-op threads cost more in
# synchronisation than they gain (measured 15-40x slower under load). pytest-xdist runs one
# worker per core, so the cores are still all used.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_configure(config):
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
