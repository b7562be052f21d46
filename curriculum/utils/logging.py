"""Weights & Biases, for real when configured and offline otherwise: never a login prompt."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator


def wandb_mode() -> str:
    """`WANDB_MODE` if set; "online" when an API key is configured; otherwise "offline"
    (runs are written under ./wandb and can be synced later with `wandb sync`)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        import netrc

        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


@contextlib.contextmanager
def wandb_run(project: str, config: dict[str, Any] | Any = None, name: str | None = None, **kwargs) -> Iterator[Any]:
    """`with wandb_run("ppo-cartpole", cfg) as run: run.log({...})`. Dataclass configs are accepted."""
    import dataclasses

    import wandb

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    run = wandb.init(project=project, config=config, name=name, mode=wandb_mode(), reinit="finish_previous", **kwargs)
    try:
        yield run
    finally:
        run.finish()
