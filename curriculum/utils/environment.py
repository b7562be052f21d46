"""What a notebook prints first: where it runs and which resources it got."""

from __future__ import annotations

import sys

import torch

from curriculum.utils.device import get_device
from curriculum.utils.offline import use_real_resources
from curriculum.utils.sizes import QUICK


def describe_environment() -> None:
    device = get_device()
    in_colab = "google.colab" in sys.modules
    print(f"device: {device}" + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""))
    print(
        "resources: "
        + ("online: pretrained models and real datasets" if use_real_resources() else "offline: the project's stand-ins")
    )
    print("size: " + ("quick mode (CURRICULUM_QUICK=1: small models, few steps)" if QUICK else "full size (set CURRICULUM_QUICK=1 for quick mode)"))
    if in_colab and device.type != "cuda":
        print("No GPU: in Colab choose Runtime > Change runtime type > GPU, then rerun this cell.")
