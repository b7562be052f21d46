"""What several chapters share: device and size switches, offline stand-ins, plots, logging.

The names below load on first use, so `import curriculum.utils.openai_server` (a server process, a
script) does not pay for importing torch.
"""

from curriculum.utils.sizes import QUICK, full_or_quick

__all__ = ["get_device", "describe_environment", "QUICK", "full_or_quick"]


def __getattr__(name: str):
    if name == "get_device":
        from curriculum.utils.device import get_device

        return get_device
    if name == "describe_environment":
        from curriculum.utils.environment import describe_environment

        return describe_environment
    raise AttributeError(f"module 'curriculum.utils' has no attribute {name!r}")
