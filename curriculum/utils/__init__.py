"""What several chapters share: device and size switches, offline stand-ins, plots, logging."""

from curriculum.utils.device import get_device
from curriculum.utils.environment import describe_environment
from curriculum.utils.sizes import IS_CI, ci_size

__all__ = ["get_device", "describe_environment", "IS_CI", "ci_size"]
