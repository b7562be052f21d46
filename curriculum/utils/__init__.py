"""What several chapters share: device and size switches, offline stand-ins, plots, logging."""

from curriculum.utils.device import get_device
from curriculum.utils.environment import describe_environment
from curriculum.utils.sizes import QUICK, full_or_quick

__all__ = ["get_device", "describe_environment", "QUICK", "full_or_quick"]
