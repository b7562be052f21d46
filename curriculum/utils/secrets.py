"""API keys, and the one helper that points LLM code at the real API or at the loopback server.

Keys come only from the environment or a `.env` file; they are never printed, logged or written into
a notebook. Nothing here puts a key into `os.environ`, so subprocesses and inspect logs never see one
we loaded from `.env`. Where a key is looked up, in this order (the first that has it wins):

1. the environment (`export OPENAI_API_KEY=...`, or Colab's secrets copied into `os.environ`);
2. the project's `.env`, at the repository root;
3. a `.env` in the current directory, for an installed package with no repository root. When it
   and the project's `.env` both set a key to different values, the project's wins and a warning
   names both files (never the values), so a stray `.env` never silently changes which key is used.

API errors from the client `llm_endpoint` returns pass through `redact()`: a server that echoes the
request (a proxy's authentication error, say) never puts the key into a traceback.

    from curriculum.utils.secrets import llm_endpoint

    with llm_endpoint("gpt-4o-mini", responder=my_offline_policy) as llm:
        llm.client.chat.completions.create(model=llm.model, messages=[...])   # openai client
        inspect_ai.eval(task, model=llm.inspect_model())                       # inspect-ai

Online (`curriculum.utils.offline.resource_choice("llm")`: the API is reachable, and a key is set) `llm.client` talks to
api.openai.com; otherwise to a `LoopbackServer` on 127.0.0.1 running `responder`, and
`llm.inspect_model()` is inspect's `openai/<model>` provider pointed at the same server. The real
branch honours OPENAI_BASE_URL (the `openai` client and inspect both read it), which the rehearsal
points at a loopback server standing in for the real API; there, choosing the loopback stand-in
automatically is an error (`curriculum.utils.offline.RehearsalFallback`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from dotenv import dotenv_values

from curriculum.utils.offline import require_real, resource_choice
from curriculum.utils.openai_server import Failures, LoopbackServer, Responder

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_KEY = "loopback-no-key"  # what the offline client sends; the loopback server ignores it

MISSING_KEY_HELP = """No {name} is set, so this notebook cannot call the real API.
To use a real model, do ONE of:
  - in the shell that starts Jupyter:   export {name}=<your key>
  - in Colab: add it under Secrets (key icon) and run  os.environ["{name}"] = userdata.get("{name}")
  - put the line  {name}=<your key>  in a file named .env at the repository root (git ignores it)
Never paste a key into a notebook cell: cell outputs and history get committed and shared.
Without a key everything still runs against the offline loopback server (a scripted stand-in model);
pass offline=True or set CURRICULUM_OFFLINE=1 to choose it explicitly."""


class MissingAPIKey(RuntimeError):
    """No key in the environment or .env; the message says how to set one."""


def _env_files() -> list[Path]:
    """The .env files read, the project's first (see the module docstring for the rule)."""
    paths = [ROOT / ".env", Path.cwd() / ".env"]
    files = [p for p in paths if p.is_file()]
    return files[:1] if len(files) == 2 and files[0].resolve() == files[1].resolve() else files


def get_api_key(name: str = "OPENAI_API_KEY") -> str | None:
    """The key from the environment, else the project's .env, else the current directory's; None if none
    has it. Never print it."""
    if value := os.environ.get(name, "").strip():
        return value
    found = [(path, value) for path in _env_files() if (value := (dotenv_values(path).get(name) or "").strip())]
    if len({value for _, value in found}) > 1:
        warnings.warn(f"{name} is set to different values in {found[0][0]} and {found[1][0]}; using the first "
                      f"(the project's). Remove one of them to silence this.", stacklevel=2)
    return found[0][1] if found else None


def require_api_key(name: str = "OPENAI_API_KEY") -> str:
    key = get_api_key(name)
    if key is None:
        raise MissingAPIKey(MISSING_KEY_HELP.format(name=name))
    return key


def redact(text: str, names: tuple[str, ...] = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"),
           also: tuple[str, ...] = ()) -> str:
    """`text` with every configured key's value (and each string in `also`) replaced by a placeholder."""
    secrets = [(key, f"<{name} redacted>") for name in names if (key := get_api_key(name))]
    secrets += [(value, "<API key redacted>") for value in also if value]
    for key, placeholder in secrets:
        if len(key) >= 8:
            text = text.replace(key, placeholder)
    return text


def _redact_body(body: Any, also: tuple[str, ...]) -> Any:
    if isinstance(body, str):
        return redact(body, also=also)
    if isinstance(body, dict):
        return {k: _redact_body(v, also) for k, v in body.items()}
    if isinstance(body, list):
        return [_redact_body(v, also) for v in body]
    return body


class RedactingOpenAI(openai.OpenAI):
    """`openai.OpenAI` whose API errors never carry the key: message and body pass through `redact()`."""

    def _make_status_error(self, err_msg: str, *, body: object, response: Any) -> openai.APIStatusError:
        also = (self.api_key,) if isinstance(self.api_key, str) else ()
        return super()._make_status_error(redact(err_msg, also=also), body=_redact_body(body, also), response=response)


@dataclass
class LLMEndpoint:
    """Where LLM calls go: a client (`openai.OpenAI`, or `anthropic.Anthropic` for Claude models), the
    model id, and inspect's view of the same. `chat(messages)` works with either client."""

    client: Any
    model: str
    real: bool
    base_url: str | None = None  # None: the real API's default URL
    server: LoopbackServer | None = None
    _api_key: str = field(default=LOOPBACK_KEY, repr=False)
    why: str = ""  # why this endpoint was chosen, e.g. "api.openai.com is not reachable"
    provider: str = "openai"  # or "anthropic"

    @property
    def inspect_model_name(self) -> str:
        """The model string for inspect-ai, e.g. "openai/gpt-4o-mini" or "anthropic/claude-..."."""
        return f"{self.provider}/{self.model}"

    def chat(self, messages: list[dict], temperature: float = 1.0, max_tokens: int = 4096) -> str:
        """The text of one reply, through whichever provider this endpoint talks to (see `curriculum.utils.chat`)."""
        from curriculum.utils.chat import chat

        return chat(self.client, self.model, messages, temperature, max_tokens)

    def inspect_model(self, **config: Any):
        """inspect's `openai/<model>` provider with this endpoint's base_url and key (config: GenerateConfig fields)."""
        from inspect_ai.model import GenerateConfig, get_model

        return get_model(
            self.inspect_model_name,
            base_url=(self.server.anthropic_base_url if self.server and self.provider == "anthropic" else self.base_url),
            api_key=self._api_key,
            config=GenerateConfig(**config),
            memoize=False,
        )

    def describe(self) -> None:
        api = "Anthropic" if self.provider == "anthropic" else "OpenAI"
        where = f"the real {api} API" if self.real else f"the offline loopback server at {self.base_url}"
        print(f"[{'real' if self.real else 'offline stand-in'}] model {self.model!r} via {where}"
              + (f" ({self.why})" if self.why else ""))

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> "LLMEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def llm_endpoint(
    model: str = "gpt-4o-mini",
    responder: Responder | None = None,
    *,
    offline: bool | None = None,
    latency: float = 0.0,
    failures: Failures | None = None,
    max_retries: int = 2,
    timeout: float = 60.0,
) -> LLMEndpoint:
    """The real API when online with a key, else a fresh loopback server running `responder`.

    A model id starting with "claude" goes to Anthropic's API (needs `pip install anthropic` and
    ANTHROPIC_API_KEY; offline, the loopback server answers Anthropic's protocol); any other to OpenAI's.

    offline: None decides automatically (the API is reachable and a key is set); True forces the loopback
        server; False requires the real API and raises MissingAPIKey (with how-to) if no key is set.
    latency, failures: loopback-server settings (ignored online).
    max_retries, timeout: passed to `openai.OpenAI` (max_retries=0 when your code does its own retries).
    """
    provider = "anthropic" if model.startswith("claude") else "openai"
    key_name = "ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"
    if offline is None:
        (online, why), has_key = resource_choice("anthropic" if provider == "anthropic" else "llm"), get_api_key(key_name) is not None
        if online and not has_key:
            print(MISSING_KEY_HELP.format(name=key_name) + "\n-> using the offline loopback server.\n")
            why += f", but no {key_name} is set"
        offline = not (online and has_key)
        if offline:
            require_real(f"the LLM loopback server ({why})")
    else:
        why = "offline=True was passed" if offline else "offline=False was passed"
    if provider == "anthropic":
        anthropic = _import_anthropic()
        if not offline:
            key = require_api_key(key_name)
            client = _redacting(anthropic.Anthropic)(api_key=key, max_retries=max_retries, timeout=timeout)
            return LLMEndpoint(client, model, real=True, _api_key=key, why=why, provider=provider)
        server = LoopbackServer(responder, latency=latency, failures=failures).start()
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=LOOPBACK_KEY, max_retries=max_retries,
                                     timeout=timeout)
        return LLMEndpoint(client, model, real=False, base_url=server.base_url, server=server, why=why, provider=provider)
    if not offline:
        key = require_api_key()
        client = RedactingOpenAI(api_key=key, max_retries=max_retries, timeout=timeout)
        return LLMEndpoint(client, model, real=True, _api_key=key, why=why)
    server = LoopbackServer(responder, latency=latency, failures=failures).start()
    client = openai.OpenAI(base_url=server.base_url, api_key=LOOPBACK_KEY, max_retries=max_retries, timeout=timeout)
    return LLMEndpoint(client, model, real=False, base_url=server.base_url, server=server, why=why)


def _redacting(client_class: type) -> type:
    """A subclass of an API client class whose errors pass through `redact()` (as RedactingOpenAI)."""

    def _make_status_error(self, err_msg: str, *, body: object, response: Any):
        also = (self.api_key,) if isinstance(self.api_key, str) else ()
        return client_class._make_status_error(self, redact(err_msg, also=also), body=_redact_body(body, also),
                                               response=response)

    return type(f"Redacting{client_class.__name__}", (client_class,), {"_make_status_error": _make_status_error})


def _import_anthropic():
    try:
        import anthropic
    except ModuleNotFoundError:
        raise ModuleNotFoundError("Claude models go through Anthropic's client, which is not installed: "
                                  "pip install anthropic (or pip install -e \".[anthropic]\")") from None
    return anthropic
