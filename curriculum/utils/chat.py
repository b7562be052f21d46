"""One call, two providers: `chat(client, model, messages)` returns the reply's text from an
`openai.OpenAI` client (Chat Completions) or an `anthropic.Anthropic` client (Messages).

The two protocols differ in where the system prompt goes (a message with role "system" vs the
top-level `system` parameter), in whether `max_tokens` is required (Anthropic: yes) and in the shape of
the reply (`choices[0].message.content` vs a list of content blocks). Code written against `chat`
runs unchanged on either provider, and offline on the loopback server, which speaks both.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import openai


def is_anthropic(client: Any) -> bool:
    """True for an `anthropic.Anthropic` client (checked by type name: the package is optional)."""
    return any(cls.__module__.startswith("anthropic") for cls in type(client).__mro__)


def chat(client: Any, model: str, messages: list[dict], temperature: float = 1.0, max_tokens: int = 4096) -> str:
    """The text of one reply to `messages` (OpenAI-style: roles system/user/assistant, string contents)."""
    if isinstance(client, openai.OpenAI):
        response = client.chat.completions.create(model=model, messages=messages, temperature=temperature,
                                                  max_tokens=max_tokens)
        return response.choices[0].message.content or ""
    if is_anthropic(client):
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        rest = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]
        kwargs: dict[str, Any] = {"system": system} if system else {}
        if "temperature" in inspect.signature(client.messages.create).parameters:
            kwargs["temperature"] = temperature
        elif temperature != 1.0:  # newer SDKs (and models) take no temperature: 1.0 is what the model samples at
            warnings.warn(f"this version of the anthropic client takes no temperature; sampling at the model's "
                          f"default instead of {temperature}", stacklevel=2)
        response = client.messages.create(model=model, messages=rest, max_tokens=max_tokens, **kwargs)
        return "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
    raise TypeError(f"chat() needs an openai.OpenAI or anthropic.Anthropic client, got {type(client).__name__}")
