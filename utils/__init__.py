"""What several chapters share: device and size switches, offline stand-ins, plots, logging."""

from utils.device import get_device
from utils.environment import describe_environment
from utils.sizes import IS_CI, ci_size

__all__ = ["get_device", "describe_environment", "IS_CI", "ci_size"]
