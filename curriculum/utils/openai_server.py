"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

CI has no network and no API key, so chapter 3 runs its LLM code against this server instead of
api.openai.com. It is not a mock: the real `openai` client and inspect-ai's `openai/...` provider
talk to it over HTTP through `base_url`, exactly as they would to the real API. What the "model"
says is decided by a *responder*, a plain Python function you plug in.

    from curriculum.utils.openai_server import LoopbackServer, Reply, ToolCall

    def responder(request: dict) -> str | Reply | dict:
        return "Hello from the loopback server"

    with LoopbackServer(responder, latency=0.05) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="loopback", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

Endpoints: `POST /v1/chat/completions` and `GET /v1/models`, `GET /v1/models/{id}`. Streaming is not
supported (a request with `stream: true` gets a 400 that says so).

It also speaks Anthropic's Messages protocol, `POST /v1/messages`, so the real `anthropic` client works
against it with `base_url=server.anthropic_base_url`. The request is translated into the chat
format above (the top-level `system` becomes a leading system message) before the responder sees it,
so one responder serves both protocols; only text replies are supported there (a tool call is a 500
naming the limitation). Errors come back in Anthropic's shape (`{"type": "error", "error": {...}}`),
and a message with role "system" or a missing `max_tokens` gets the 400 the real API gives.

## The responder API (stable: other sections build their policies on it)

A responder is `Callable[[dict], ReplyLike]`. It receives the request body exactly as the client
sent it (the OpenAI JSON: `model`, `messages`, `tools`, `tool_choice`, `response_format`, `n`,
`temperature`, ...) and returns one of:

- `str`: the assistant's text content;
- `dict`, `list` or a pydantic model: serialised as JSON into the content (structured output).
  If the request carries a `response_format` of type `json_schema`, the JSON is validated against
  that schema and a mismatch is reported as a 500 naming the responder as the culprit;
- `ToolCall` or a list of `ToolCall`s: the assistant calls those functions (finish_reason
  "tool_calls"); `ToolCall(name, arguments)` takes the arguments as a dict or a raw string;
- `Reply(content=..., tool_calls=[...], finish_reason=...)`: text and tool calls together;
  `Reply(refusal="...")` is a structured-output refusal and `Reply(content=..., finish_reason="length")`
  a reply cut off at the token limit (neither is checked against the schema).

The responder is called once per choice (`n` > 1 calls it `n` times), possibly from several
server threads at once, so it must be thread-safe. To script an API error, raise `HTTPError(status,
message, headers)` from it. Helpers for reading requests: `message_text`, `last_user_message`, `system_message`,
`response_schema`, `tool_names`, `tool_results`. Ready-made responders: `echo`, `Scripted` (a
fixed sequence), `Rules` (first matching regex wins).

## Latency and injected failures

`LoopbackServer(latency=0.2)` sleeps that long before every reply (the concurrency benchmark uses
it). `Failures(rate=0.2, kinds=("429", "500", "timeout", "malformed_tool_json"), seed=0)` makes a
seeded fraction of requests fail:

- "429": HTTP 429 with a `Retry-After` header (`retry_after` seconds);
- "500": HTTP 500;
- "timeout": nothing comes back for `timeout_delay` seconds, longer than a client timeout should be
  (a client that waits that long then gets a 504);
- "malformed_tool_json": a reply with tool calls gets its arguments truncated to invalid JSON
  (only requests whose reply has tool calls can get this one);
- "malformed_json": a structured-output reply (`response_format` json_schema) gets its JSON
  content truncated, as a model that ran out of tokens would (only structured requests get it).

Failures that do not depend on the reply ("429", "500", "timeout") are drawn before the responder
runs, so a failed request consumes no reply: a stateful responder (`Scripted`, a conversation
script) gives the same sequence of replies with or without them. The corruptions need a reply to
corrupt, so the responder runs and its reply is consumed (and lost to the client).

Like the real API, the server rejects a request whose `tool` message does not follow an assistant
message with `tool_calls` (400, with the real API's wording), and it accepts a burst of hundreds of
simultaneous connections (a deep listen backlog).

`server.stats` counts requests, failures by kind and the most requests ever in flight at once.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Sequence, Union

import jsonschema
import pydantic


# ----------------------------------------------------------------------------------------------
# What a responder returns
# ----------------------------------------------------------------------------------------------


@dataclass
class ToolCall:
    """One function call made by the assistant. `arguments` is a dict (JSON-encoded for you) or a raw string."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass
class Reply:
    """A full assistant turn: optional text, optional tool calls, optional explicit finish_reason, and
    for structured output an optional refusal (the API then sends `content` null and the refusal text)."""

    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    refusal: str | None = None


ReplyLike = Union[str, Reply, ToolCall, Sequence[ToolCall], dict, list, pydantic.BaseModel]
Responder = Callable[[dict], ReplyLike]


class HTTPError(Exception):
    """Raise from a responder to send an OpenAI-style error response."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, type: str = "server_error"):
        super().__init__(message)
        self.status, self.message, self.headers, self.type = status, message, headers or {}, type


def to_reply(value: ReplyLike) -> Reply:
    """Normalise anything a responder may return into a `Reply`."""
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(content=value)
    if isinstance(value, ToolCall):
        return Reply(tool_calls=[value])
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, ToolCall) for v in value):
        return Reply(tool_calls=list(value))
    if isinstance(value, pydantic.BaseModel):
        return Reply(content=value.model_dump_json())
    if isinstance(value, (dict, list)):
        return Reply(content=json.dumps(value))
    raise TypeError(
        f"a responder must return str, Reply, ToolCall(s), a dict/list or a pydantic model; got {type(value).__name__}"
    )


# ----------------------------------------------------------------------------------------------
# Reading a request
# ----------------------------------------------------------------------------------------------


def message_text(content: Any) -> str:
    """Message content is a string or a list of parts ({"type": "text", "text": ...})."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def last_user_message(request: dict) -> str:
    for m in reversed(request.get("messages", [])):
        if m.get("role") == "user":
            return message_text(m.get("content"))
    return ""


def system_message(request: dict) -> str:
    """All system (and developer) messages joined: inspect may send more than one."""
    return "\n".join(
        message_text(m.get("content")) for m in request.get("messages", []) if m.get("role") in ("system", "developer")
    )


def response_schema(request: dict) -> dict | None:
    """The JSON schema of a structured-output request, or None."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema", {})
    return None


def tool_names(request: dict) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or [] if t.get("type") == "function"]


def tool_results(request: dict) -> list[dict]:
    """The `role: "tool"` messages so far, as {"tool_call_id", "content"} dicts."""
    return [
        {"tool_call_id": m.get("tool_call_id"), "content": message_text(m.get("content"))}
        for m in request.get("messages", [])
        if m.get("role") == "tool"
    ]


# ----------------------------------------------------------------------------------------------
# Ready-made responders
# ----------------------------------------------------------------------------------------------


def echo(request: dict) -> str:
    """Repeat the last user message: the default when no responder is given."""
    return f"You said: {last_user_message(request)}"


class Scripted:
    """Return the given replies in order, one per call (thread-safe); raise when exhausted, or cycle."""

    def __init__(self, replies: Iterable[ReplyLike], cycle: bool = False):
        self.replies, self.cycle, self.calls = list(replies), cycle, 0
        if not self.replies:
            raise ValueError("Scripted needs at least one reply")
        self._lock = threading.Lock()

    def __call__(self, request: dict) -> ReplyLike:
        with self._lock:
            i = self.calls
            self.calls += 1
        if i >= len(self.replies) and not self.cycle:
            raise HTTPError(500, f"Scripted responder ran out of replies after {len(self.replies)} calls")
        return self.replies[i % len(self.replies)]


class Rules:
    """The first rule whose regex matches the last user message (or the whole conversation) wins.

    `rules` is a list of (pattern, reply) pairs; `reply` may be a ReplyLike or a function
    `(request, match) -> ReplyLike`. `default` is used when nothing matches.
    """

    def __init__(self, rules: Sequence[tuple[str, Any]], default: Any = echo, whole_conversation: bool = False):
        self.rules = [(re.compile(p, re.IGNORECASE | re.DOTALL), r) for p, r in rules]
        self.default, self.whole_conversation = default, whole_conversation

    def __call__(self, request: dict) -> ReplyLike:
        if self.whole_conversation:
            text = "\n".join(message_text(m.get("content")) for m in request.get("messages", []))
        else:
            text = last_user_message(request)
        for pattern, reply in self.rules:
            if m := pattern.search(text):
                return reply(request, m) if callable(reply) else reply
        return self.default(request) if callable(self.default) else self.default


# ----------------------------------------------------------------------------------------------
# Injected failures and statistics
# ----------------------------------------------------------------------------------------------

FAILURE_KINDS = ("429", "500", "timeout", "malformed_tool_json", "malformed_json")


@dataclass
class Failures:
    """A seeded fraction `rate` of requests fail with one of `kinds` (chosen uniformly)."""

    rate: float = 0.0
    kinds: Sequence[str] = ("429", "500")
    seed: int = 0
    retry_after: float = 0.05  # seconds, sent as the Retry-After header of a 429
    timeout_delay: float = 5.0  # seconds a "timeout" reply is held back

    def __post_init__(self):
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"Failures.rate must be in [0, 1], got {self.rate}")
        unknown = set(self.kinds) - set(FAILURE_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"Failures.kinds must be a non-empty subset of {FAILURE_KINDS}, got {list(self.kinds)}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """The failure for the next request, or None. Deterministic in request order for a given seed.
        A corruption ("malformed_tool_json", "malformed_json") applies only if the reply has what it corrupts."""
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return self._rng.choice(list(self.kinds))


@dataclass
class ServerStats:
    requests: int = 0
    completed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0


# ----------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------


def _count_tokens(text: str) -> int:
    """A rough token count (about 4 characters a token) for the usage fields."""
    return max(1, len(text) // 4) if text else 0


class LoopbackServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 (ephemeral port), run in a thread.

    Use as a context manager (`with LoopbackServer(...) as server:`) or call `start()`/`stop()`;
    the serving thread is a daemon, so a forgotten server dies with the interpreter.

    Args:
        responder: request dict -> reply (see the module docstring). Defaults to `echo`.
        latency: seconds to wait before every reply.
        failures: a `Failures` config for injected errors, or None.
        models: model ids listed by `GET /v1/models` (any model id is accepted by completions).
        record: keep every request body in `server.requests` (handy in tests).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        latency: float = 0.0,
        failures: Failures | None = None,
        models: Sequence[str] = ("gpt-4o-mini", "loopback"),
        record: bool = True,
    ):
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self.responder = responder or echo
        self.latency, self.failures, self.models, self.record = latency, failures, list(models), record
        self.requests: list[dict] = []
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running: call start() or use it as a context manager")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What to pass as `base_url` to `openai.OpenAI` or inspect's `get_model`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """What to pass as `base_url` to `anthropic.Anthropic` (it appends /v1/messages itself)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LoopbackServer":
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"server_obj": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a held-back "timeout" reply must not block stop()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        where = self.base_url if self._httpd else "stopped"
        return f"LoopbackServer({where}, latency={self.latency}, failures={self.failures})"

    # -- one request ------------------------------------------------------------------------------
    def complete(self, request: dict) -> tuple[int, dict, dict[str, str]]:
        """(status, JSON body, extra headers) for one chat-completions request."""
        if self.record:
            with self._lock:
                self.requests.append(request)
        if not isinstance(request.get("messages"), list) or not request["messages"]:
            return _error(400, "'messages' must be a non-empty list", param="messages")
        if request.get("stream"):
            return _error(400, "the loopback server does not stream: send stream=false", param="stream")
        if (misplaced := _misplaced_tool_message(request["messages"])) is not None:
            return _error(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                               "message with 'tool_calls'.", param=f"messages.[{misplaced}].role")
        failure = self.failures.draw() if self.failures else None
        if failure in ("429", "500", "timeout"):  # independent of the reply: no responder call, nothing consumed
            return self._fail_before_reply(failure)
        n = request.get("n") or 1
        try:
            replies = [to_reply(self.responder(request)) for _ in range(n)]
            schema = response_schema(request)
            if schema is not None:
                for r in replies:
                    if r.refusal is None and r.finish_reason != "length":  # a refusal or a cut-off reply is not JSON
                        _validate_structured(r, schema)
        except HTTPError as e:
            return _error(e.status, e.message, headers=e.headers, type=e.type)

        applies = {"malformed_tool_json": any(r.tool_calls for r in replies),
                   "malformed_json": response_schema(request) is not None}
        if failure and applies[failure]:
            self._count(failure)
            for r in replies:
                if failure == "malformed_tool_json":
                    r.tool_calls = [ToolCall(tc.name, _truncate_json(tc.arguments), tc.id) for tc in r.tool_calls]
                else:
                    r.content = _truncate_json(r.content or "")
        return 200, self._completion_body(request, replies), {}

    def complete_messages(self, request: dict) -> tuple[int, dict, dict[str, str]]:
        """(status, JSON body, extra headers) for one Anthropic Messages request, through `complete`."""
        if not isinstance(request.get("max_tokens"), int):
            return _anthropic_error(400, "max_tokens: Field required")
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return _anthropic_error(400, "messages: at least one message is required")
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("user", "assistant"):
                return _anthropic_error(400, f'messages.{i}.role: Input should be \'user\' or \'assistant\'' + (
                    '. The Messages API takes the system prompt as the top-level "system" parameter, not as a message'
                    if role == "system" else ""))
        system = request.get("system")
        chat = [{"role": m["role"], "content": message_text(m.get("content"))} for m in messages]
        if system:
            chat.insert(0, {"role": "system", "content": message_text(system)})
        converted = {k: v for k, v in request.items() if k not in ("system", "messages", "max_tokens", "stop_sequences")}
        converted.update(messages=chat, max_tokens=request["max_tokens"])
        status, body, headers = self.complete(converted)
        if status != 200:
            return _anthropic_error(status, body["error"]["message"], headers)
        choice = body["choices"][0]
        if choice["message"].get("tool_calls"):
            return _anthropic_error(500, "the loopback server's Messages endpoint returns text only, but the responder "
                                         "replied with a tool call")
        return 200, {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "loopback"),
            "content": [{"type": "text", "text": choice["message"]["content"] or ""}],
            "stop_reason": "end_turn" if choice["finish_reason"] == "stop" else "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": body["usage"]["prompt_tokens"], "output_tokens": body["usage"]["completion_tokens"]},
        }, {}

    def _count(self, failure: str) -> None:
        with self._lock:
            self.stats.failures[failure] = self.stats.failures.get(failure, 0) + 1

    def _fail_before_reply(self, failure: str) -> tuple[int, dict, dict[str, str]]:
        self._count(failure)
        if failure == "429":
            ra = self.failures.retry_after
            return _error(429, "Rate limit reached (injected by the loopback server)", type="rate_limit_error",
                          code="rate_limit_exceeded", headers={"Retry-After": f"{ra:g}", "retry-after-ms": f"{ra * 1000:g}"})
        if failure == "timeout":  # held back longer than a client's timeout should be; then an error, not a reply
            time.sleep(self.failures.timeout_delay)
            return _error(504, "The reply took too long (a timeout injected by the loopback server)")
        return _error(500, "The server had an error (injected by the loopback server)")

    def _completion_body(self, request: dict, replies: list[Reply]) -> dict:
        prompt = "".join(message_text(m.get("content")) for m in request["messages"])
        choices, completion_tokens = [], 0
        for i, r in enumerate(replies):
            message: dict[str, Any] = {"role": "assistant", "content": r.content, "refusal": r.refusal}
            if r.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": tc.id or f"call_{uuid.uuid4().hex[:24]}",
                        "type": "function",
                        "function": {
                            "name": tc.name,
                            "arguments": tc.arguments if isinstance(tc.arguments, str) else json.dumps(tc.arguments),
                        },
                    }
                    for tc in r.tool_calls
                ]
            finish = r.finish_reason or ("tool_calls" if r.tool_calls else "stop")
            choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
            completion_tokens += _count_tokens(r.content or "") + sum(
                _count_tokens(str(tc.arguments)) for tc in r.tool_calls
            )
        prompt_tokens = _count_tokens(prompt)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "loopback"),
            "system_fingerprint": "loopback",
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _misplaced_tool_message(messages: list) -> int | None:
    """Index of the first `tool` message not preceded (through other tool messages) by an assistant message
    with `tool_calls`, as the real API checks; None if every tool message is in place."""
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") != "tool":
            continue
        j = i - 1
        while j >= 0 and isinstance(messages[j], dict) and messages[j].get("role") == "tool":
            j -= 1
        if j < 0 or not isinstance(messages[j], dict) or messages[j].get("role") != "assistant" or not messages[j].get("tool_calls"):
            return i
    return None


def _truncate_json(arguments: dict | str) -> str:
    """Cut the arguments mid-object so they are never valid JSON."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return text[: max(1, len(text) // 2)]


_VALIDATORS: dict[str, Any] = {}
_VALIDATORS_LOCK = threading.Lock()


def _validator(schema: dict) -> Any:
    """One checked validator per distinct schema: `jsonschema.validate` re-checks the schema and builds a
    validator on every call, which costs more than the rest of a request's handling put together."""
    key = json.dumps(schema, sort_keys=True)
    with _VALIDATORS_LOCK:
        if key not in _VALIDATORS:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            _VALIDATORS[key] = cls(schema)
        return _VALIDATORS[key]


def _validate_structured(reply: Reply, schema: dict) -> None:
    try:
        _validator(schema).validate(json.loads(reply.content or ""))
    except (json.JSONDecodeError, jsonschema.ValidationError) as e:
        raise HTTPError(
            500, f"the responder's reply does not match the request's response_format schema: {str(e)[:300]}"
        ) from e


def _error(status: int, message: str, type: str = "invalid_request_error", code: str | None = None,
           param: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict, dict[str, str]]:
    if status >= 500 and type == "invalid_request_error":
        type = "server_error"
    return status, {"error": {"message": message, "type": type, "param": param, "code": code}}, headers or {}


_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                          429: "rate_limit_error", 529: "overloaded_error"}


def _anthropic_error(status: int, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict, dict[str, str]]:
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return status, {"type": "error", "error": {"type": kind, "message": message}}, headers or {}


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 1024  # listen backlog: a burst of hundreds of connections must not be refused (default 5)

    def handle_error(self, request, client_address):
        """A client that hung up (its timeout fired) is expected here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_obj: LoopbackServer
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    # small replies on a kept-alive connection otherwise wait ~40 ms for Nagle + delayed ACK
    disable_nagle_algorithm = True
    # buffer the reply, so its headers and body leave in one write (the handler flushes after each
    # request) and the client reads them with one call, as from a real API's front end
    wbufsize = 1 << 16

    def log_message(self, format, *args):  # noqa: A002 - silence per-request stderr lines
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server naming
        srv = self.server_obj
        path = self.path.rstrip("/")
        if path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "loopback"} for m in srv.models]
            return self._send(200, {"object": "list", "data": data})
        if path.startswith("/v1/models/"):
            model = path.removeprefix("/v1/models/")
            return self._send(200, {"id": model, "object": "model", "created": 0, "owned_by": "loopback"})
        self._send(*_error(404, f"unknown endpoint GET {self.path}")[:2])

    def do_POST(self):  # noqa: N802
        srv = self.server_obj
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/messages"):
            return self._send(*_error(404, f"unknown endpoint POST {self.path}: only /v1/chat/completions "
                                           "(OpenAI) and /v1/messages (Anthropic) are served"))
        anthropic_protocol = path == "/v1/messages"
        try:
            request = json.loads(raw)
        except json.JSONDecodeError:
            error = _anthropic_error if anthropic_protocol else _error
            return self._send(*error(400, "request body is not valid JSON")[:2])
        with srv._lock:
            srv.stats.requests += 1
            srv.stats.in_flight += 1
            srv.stats.max_in_flight = max(srv.stats.max_in_flight, srv.stats.in_flight)
        counted = False

        def count(status: int) -> None:
            nonlocal counted
            with srv._lock:
                srv.stats.in_flight -= 1
                srv.stats.completed += status == 200
            counted = True

        try:
            if srv.latency:
                time.sleep(srv.latency)
            try:
                status, body, headers = (srv.complete_messages if anthropic_protocol else srv.complete)(request)
            except Exception as e:  # noqa: BLE001 - a responder bug becomes a readable 500
                error = _anthropic_error if anthropic_protocol else _error
                status, body, headers = error(500, f"responder raised {type(e).__name__}: {e}")
            count(status)  # before sending: a client that has its reply must find it in the stats
            self._send(status, body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to send to
        finally:
            if not counted:
                count(500)


def loopback_client(server: LoopbackServer, *, fresh_connections: bool = False, api_key: str = "loopback", **kw: Any):
    """The real `openai.OpenAI` client pointed at `server` (max_retries=0 unless given: code under test
    does its own retries). `fresh_connections` opens a new connection for every request, as a client
    without a connection pool would; by default connections are kept alive, which is faster."""
    import httpx
    import openai

    if fresh_connections:
        kw.setdefault("http_client", httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=20))
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, **{"max_retries": 0, **kw})


# ----------------------------------------------------------------------------------------------
# The server in its own process
# ----------------------------------------------------------------------------------------------


def _import_responder(spec: str) -> Responder:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"a responder for another process is named 'module:attribute', got {spec!r}")
    import importlib

    return getattr(importlib.import_module(module), attr)


def _serve_main(argv: list[str] | None = None) -> None:
    """`python -m curriculum.utils.openai_server RESPONDER [--latency S] [--failures JSON]`: serve until stdin closes."""
    import argparse

    ap = argparse.ArgumentParser(description="a loopback OpenAI/Anthropic server; prints its port, serves until stdin closes")
    ap.add_argument("responder", help="module:attribute of the responder")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--failures", default=None, help="Failures fields as JSON")
    args = ap.parse_args(argv)
    failures = Failures(**json.loads(args.failures)) if args.failures else None
    server = LoopbackServer(_import_responder(args.responder), latency=args.latency, failures=failures, record=False).start()
    print(server.port, flush=True)
    sys.stdin.read()  # returns when the parent closes our stdin (or dies)
    server.stop()


class LoopbackProcess:
    """A `LoopbackServer` running in a separate process, so that its request handling does not compete
    with the client's threads for one interpreter's GIL (with 32 client threads in the same process the
    server's replies queue up behind them). The responder must be importable there, so it is named, not
    passed: `LoopbackProcess("curriculum.utils.mcq_standin:mcq_responder", latency=0.1)`. Stateful
    responders keep their state in the server's process; `requests` and `stats` are not available here.
    """

    def __init__(self, responder: str, latency: float = 0.0, failures: Failures | None = None, start_timeout: float = 60.0):
        _import_responder(responder)  # fail here, with a clear message, rather than inside the child
        self.responder, self.latency, self.failures, self.start_timeout = responder, latency, failures, start_timeout
        self._proc = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server process is not running: call start() or use it as a context manager")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def start(self) -> "LoopbackProcess":
        import dataclasses
        import subprocess

        if self._proc is not None:
            return self
        cmd = [sys.executable, "-m", "curriculum.utils.openai_server", self.responder, "--latency", str(self.latency)]
        if self.failures is not None:
            cmd += ["--failures", json.dumps(dataclasses.asdict(self.failures))]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = threading.Event()
        line: list[str] = []

        def read_port() -> None:
            line.append(self._proc.stdout.readline())
            ready.set()

        threading.Thread(target=read_port, daemon=True).start()
        if not ready.wait(self.start_timeout) or not line[0].strip().isdigit():
            self.stop()
            printed = f" (it printed {line[0]!r})" if line else ""
            raise RuntimeError(f"the loopback server process did not start within {self.start_timeout:g} s{printed}")
        self.port = int(line[0])
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()  # the server's signal to stop
            self._proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - a stuck server is killed
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None
        self.port = None

    def __enter__(self) -> "LoopbackProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    _serve_main()
