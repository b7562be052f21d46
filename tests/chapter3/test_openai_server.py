"""The loopback OpenAI server, driven by the real `openai` client and a real inspect-ai eval; and the key helpers."""

from __future__ import annotations

import json
import os
import threading
import time

import openai
import pydantic
import pytest
from pydantic import BaseModel

from curriculum.utils import secrets
from curriculum.utils.openai_server import (
    Failures,
    HTTPError,
    LoopbackServer,
    Reply,
    Rules,
    Scripted,
    ToolCall,
    echo,
    last_user_message,
    loopback_client,
    response_schema,
    tool_names,
    tool_results,
)


class Verdict(BaseModel):
    explanation: str
    score: int


def policy(request: dict):
    """Structured output when asked, a tool call when tools are offered, else text."""
    if response_schema(request) is not None:
        return Verdict(explanation="fine", score=7)
    if tool_names(request) and not tool_results(request):
        return ToolCall("add", {"a": 2, "b": 3})
    if tool_results(request):
        return f"ANSWER: {tool_results(request)[-1]['content']}"
    return f"echo {last_user_message(request)}"




USER = [{"role": "user", "content": "hello"}]
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "add two numbers",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
    },
}


def test_text_completion_usage_and_n():
    with LoopbackServer(policy) as server:
        r = loopback_client(server).chat.completions.create(model="gpt-4o-mini", messages=USER, n=3, temperature=0.7)
    assert [c.message.content for c in r.choices] == ["echo hello"] * 3
    assert [c.index for c in r.choices] == [0, 1, 2] and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    assert r.model == "gpt-4o-mini"


def test_structured_output_parses_into_pydantic_and_schema_is_enforced():
    with LoopbackServer(policy) as server:
        r = loopback_client(server).chat.completions.parse(model="m", messages=USER, response_format=Verdict)
        assert r.choices[0].message.parsed == Verdict(explanation="fine", score=7)
        assert response_schema(server.requests[-1])["properties"]["score"]["type"] == "integer"
    # a responder whose JSON violates the requested schema is reported, not passed through
    with LoopbackServer(lambda req: {"explanation": "x"}) as server:
        with pytest.raises(openai.InternalServerError, match="does not match the request's response_format"):
            loopback_client(server).chat.completions.parse(model="m", messages=USER, response_format=Verdict)


def test_structured_refusal_and_cut_off_reply_reach_the_sdk_as_the_real_api_sends_them():
    # a refusal: content null, refusal text set; the SDK's own parse then leaves `parsed` empty
    with LoopbackServer(lambda req: Reply(refusal="I won't grade that.")) as server:
        r = loopback_client(server).chat.completions.parse(model="m", messages=USER, response_format=Verdict)
    m = r.choices[0].message
    assert m.refusal == "I won't grade that." and m.content is None and m.parsed is None
    # a reply cut off at the token limit is sent as it is (not checked against the schema); the SDK raises
    with LoopbackServer(lambda req: Reply(content='{"explanation": "fi', finish_reason="length")) as server:
        with pytest.raises(openai.LengthFinishReasonError):
            loopback_client(server).chat.completions.parse(model="m", messages=USER, response_format=Verdict)


def test_tool_call_round_trip():
    with LoopbackServer(policy) as server:
        client = loopback_client(server)
        r = client.chat.completions.create(model="m", messages=USER, tools=[ADD_TOOL])
        call = r.choices[0].message.tool_calls[0]
        assert r.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 2, "b": 3}
        messages = USER + [r.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "5"}]
        r2 = client.chat.completions.create(model="m", messages=messages, tools=[ADD_TOOL])
        assert r2.choices[0].message.content == "ANSWER: 5"
        assert server.requests[-1]["messages"][-1]["tool_call_id"] == call.id


def test_reply_with_text_and_tool_calls_and_raw_arguments():
    reply = Reply(content="thinking", tool_calls=[ToolCall("move", '{"page": "Cat"}', id="call_1")])
    with LoopbackServer(lambda req: reply) as server:
        msg = loopback_client(server).chat.completions.create(model="m", messages=USER).choices[0].message
    assert msg.content == "thinking" and msg.tool_calls[0].id == "call_1"
    assert msg.tool_calls[0].function.arguments == '{"page": "Cat"}'


def test_models_endpoint():
    with LoopbackServer(models=["a", "b"]) as server:
        client = loopback_client(server)
        assert [m.id for m in client.models.list()] == ["a", "b"]
        assert client.models.retrieve("whatever").id == "whatever"


def test_429_has_retry_after_and_the_client_retries_through_it():
    with LoopbackServer(policy, failures=Failures(rate=1.0, kinds=["429"], retry_after=0.25)) as server:
        with pytest.raises(openai.RateLimitError) as e:
            loopback_client(server).chat.completions.create(model="m", messages=USER)
        assert e.value.response.headers["retry-after"] == "0.25"
    failures = Failures(rate=0.5, kinds=["429", "500"], retry_after=0.01, seed=1)
    with LoopbackServer(policy, failures=failures) as server:
        client = loopback_client(server, max_retries=10)
        for _ in range(10):
            assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "echo hello"
        assert server.stats.completed == 10 and sum(server.stats.failures.values()) > 0
        assert server.stats.requests == 10 + sum(server.stats.failures.values())


def test_500_timeout_and_stop_does_not_wait_for_held_replies():
    with LoopbackServer(policy, failures=Failures(rate=1.0, kinds=["500"])) as server:
        with pytest.raises(openai.InternalServerError, match="injected"):
            loopback_client(server).chat.completions.create(model="m", messages=USER)
    server = LoopbackServer(policy, failures=Failures(rate=1.0, kinds=["timeout"], timeout_delay=60.0)).start()
    t0 = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        loopback_client(server, timeout=0.3).chat.completions.create(model="m", messages=USER)
    server.stop()
    assert time.perf_counter() - t0 < 20.0  # far below the 60 s the held reply would take: stop() did not wait


def test_malformed_tool_json_is_invalid_json():
    with LoopbackServer(policy, failures=Failures(rate=1.0, kinds=["malformed_tool_json"])) as server:
        r = loopback_client(server).chat.completions.create(model="m", messages=USER, tools=[ADD_TOOL])
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.choices[0].message.tool_calls[0].function.arguments)
        # a reply without tool calls cannot be made malformed, so it goes through
        assert loopback_client(server).chat.completions.create(model="m", messages=USER).choices[0].message.content == "echo hello"


def test_malformed_json_breaks_structured_output_only():
    with LoopbackServer(policy, failures=Failures(rate=1.0, kinds=["malformed_json"])) as server:
        with pytest.raises(pydantic.ValidationError):
            loopback_client(server).chat.completions.parse(model="m", messages=USER, response_format=Verdict)
        assert loopback_client(server).chat.completions.create(model="m", messages=USER).choices[0].message.content == "echo hello"
        assert server.stats.failures == {"malformed_json": 1}


def test_failures_are_seeded_and_validated():
    def sequence(seed):
        f = Failures(rate=0.3, kinds=["429", "500"], seed=seed)
        return [f.draw() for _ in range(50)]

    assert sequence(0) == sequence(0) != sequence(1)
    assert 5 <= sum(x is not None for x in sequence(0)) <= 25
    with pytest.raises(ValueError, match="rate"):
        Failures(rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        Failures(rate=0.1, kinds=["503"])


def test_streaming_and_bad_requests_are_refused_clearly():
    with LoopbackServer(policy) as server:
        client = loopback_client(server)
        with pytest.raises(openai.BadRequestError, match="does not stream"):
            client.chat.completions.create(model="m", messages=USER, stream=True)
        with pytest.raises(openai.BadRequestError, match="messages"):
            client.chat.completions.create(model="m", messages=[])


def test_responder_errors_become_readable_http_errors():
    def broken(request):
        raise KeyError("oops")

    with LoopbackServer(broken) as server:
        with pytest.raises(openai.InternalServerError, match="responder raised KeyError"):
            loopback_client(server).chat.completions.create(model="m", messages=USER)
    with LoopbackServer(lambda r: (_ for _ in ()).throw(HTTPError(403, "no access"))) as server:
        with pytest.raises(openai.PermissionDeniedError, match="no access"):
            loopback_client(server).chat.completions.create(model="m", messages=USER)


def test_scripted_and_rules_responders():
    scripted = Scripted(["one", ToolCall("f", {})])
    rules = Rules([(r"capital of (\w+)", lambda req, m: f"capital of {m[1]}!"), (r"^hi$", "hello")], default="?")
    with LoopbackServer(scripted) as server:
        client = loopback_client(server)
        assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "one"
        assert client.chat.completions.create(model="m", messages=USER).choices[0].message.tool_calls[0].function.name == "f"
        with pytest.raises(openai.InternalServerError, match="ran out of replies"):
            client.chat.completions.create(model="m", messages=USER)
    with LoopbackServer(rules) as server:
        ask = lambda q: loopback_client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
        assert ask("What is the capital of France?").choices[0].message.content == "capital of France!"
        assert ask("hi").choices[0].message.content == "hello"
        assert ask("something else").choices[0].message.content == "?"


def test_requests_are_served_concurrently():
    with LoopbackServer(policy, latency=0.3) as server:
        client = loopback_client(server)
        threads = [threading.Thread(target=client.chat.completions.create, kwargs={"model": "m", "messages": USER}) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # the server counts a request as completed just after the client has its reply: wait for the count
        deadline = time.monotonic() + 5
        while server.stats.completed < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    # all six were inside the handler at once: the server did not serialise them (no wall-clock assertion)
    assert server.stats.max_in_flight == 6 and server.stats.completed == 6


def test_server_lifecycle():
    server = LoopbackServer()
    with pytest.raises(RuntimeError, match="not running"):
        server.base_url
    with server:
        url = server.base_url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=1).models.list()


def test_inspect_eval_through_openai_provider(tmp_path):
    """A real inspect_ai.eval run: multiple choice and a tool-using task, via inspect's openai provider."""
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import choice, match
    from inspect_ai.solver import generate, multiple_choice, use_tools
    from inspect_ai.tool import tool

    @tool
    def add():
        async def execute(a: int, b: int):
            """Add two integers.

            Args:
                a: first number
                b: second number
            """
            return a + b

        return execute

    def answerer(request):
        if "ANSWER: $LETTER" in last_user_message(request) or "ANSWER: $LETTERS" in last_user_message(request):
            return "Let me think. ANSWER: B"
        return policy(request)

    with secrets.llm_endpoint("gpt-4o-mini", responder=answerer, offline=True) as llm:
        tasks = [
            Task(dataset=[Sample(input="Pick one", choices=["x", "y"], target="B")], solver=multiple_choice(), scorer=choice()),
            Task(dataset=[Sample(input="2+3?", target="5")], solver=[use_tools(add()), generate()], scorer=match()),
        ]
        logs = eval(tasks, model=llm.inspect_model(), log_dir=str(tmp_path), display="none")
        assert [log.status for log in logs] == ["success", "success"], [log.error for log in logs]
        assert [log.results.scores[0].metrics["accuracy"].value for log in logs] == [1.0, 1.0]
        assert logs[0].eval.model == "openai/gpt-4o-mini"
        assert any(m["role"] == "tool" and m["content"] == "5" for m in llm.server.requests[-1]["messages"])

    # inspect's own retries get through injected 429s and 500s
    failures = Failures(rate=0.3, kinds=["429", "500"], retry_after=0.01, seed=1)
    with secrets.llm_endpoint("gpt-4o-mini", responder=lambda r: "4", offline=True, failures=failures) as llm:
        task = Task(dataset=[Sample(input=f"{i}: 2+2?", target="4") for i in range(6)], solver=generate(), scorer=match())
        log = eval(task, model=llm.inspect_model(), log_dir=str(tmp_path), display="none")[0]
        assert log.status == "success" and log.results.scores[0].metrics["accuracy"].value == 1.0
        assert sum(llm.server.stats.failures.values()) > 0


# ---- keys -------------------------------------------------------------------------------------

FAKE_KEY = "sk-test-" + "fake" * 4  # built at runtime so the committed-secrets scan stays clean


def test_key_from_env_or_dotenv_and_clear_message_when_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(secrets, "ROOT", tmp_path)
    assert secrets.get_api_key() is None
    with pytest.raises(secrets.MissingAPIKey) as e:
        secrets.llm_endpoint(offline=False)
    assert "export OPENAI_API_KEY" in str(e.value) and ".env" in str(e.value) and "offline" in str(e.value)
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={FAKE_KEY}\n")
    assert secrets.get_api_key() == FAKE_KEY
    assert "OPENAI_API_KEY" not in os.environ, "a key read from .env must not leak into os.environ (and subprocesses)"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-xxxxxxxx")
    assert secrets.get_api_key() == "sk-from-env-xxxxxxxx"  # the environment wins over .env
    assert secrets.redact("error: key sk-from-env-xxxxxxxx rejected") == "error: key <OPENAI_API_KEY redacted> rejected"


def test_real_endpoint_never_shows_its_key(monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    llm = secrets.llm_endpoint("gpt-4o-mini", offline=False)
    llm.describe()
    assert llm.real and llm.base_url is None and llm.inspect_model_name == "openai/gpt-4o-mini"
    assert FAKE_KEY not in repr(llm) + capsys.readouterr().out
    llm.close()


def test_offline_endpoint_when_no_key(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(secrets, "get_api_key", lambda name="OPENAI_API_KEY": None)
    monkeypatch.setattr(secrets, "resource_choice", lambda r: (True, "api.openai.com is reachable"))  # "online", but no key
    with secrets.llm_endpoint(responder=lambda r: "hi") as llm:
        assert not llm.real and llm.base_url.startswith("http://127.0.0.1:")
        assert llm.client.chat.completions.create(model=llm.model, messages=USER).choices[0].message.content == "hi"
    assert "export OPENAI_API_KEY" in capsys.readouterr().out


def test_misplaced_tool_message_gets_the_real_apis_400():
    tool_result = {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    with LoopbackServer(echo) as server:
        client = loopback_client(server, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding message with 'tool_calls'") as err:
            client.chat.completions.create(model="m", messages=USER + [tool_result])  # tool result before any call
        assert err.value.body["param"] == "messages.[1].role"
        with pytest.raises(openai.BadRequestError):  # a tool result after a plain text reply
            client.chat.completions.create(model="m", messages=USER + [{"role": "assistant", "content": "hi"}, tool_result])
        two_results = USER + [call, tool_result, {**tool_result, "content": "43"}]
        assert client.chat.completions.create(model="m", messages=two_results).choices  # results in place: accepted


def test_reply_independent_failures_consume_no_scripted_reply():
    replies = [f"reply {i}" for i in range(40)]
    with LoopbackServer(Scripted(replies), failures=Failures(rate=0.3, kinds=("429", "500"), seed=3)) as server:
        client = loopback_client(server, max_retries=0)
        got = []
        while len(got) < 20:
            try:
                got.append(client.chat.completions.create(model="m", messages=USER).choices[0].message.content)
            except (openai.RateLimitError, openai.InternalServerError):
                pass
        assert sum(server.stats.failures.values()) > 0, "some requests failed"
    assert got == replies[:20], "a failed request must not use up a scripted reply"


def test_a_burst_of_200_simultaneous_connections_is_served():
    import concurrent.futures

    with LoopbackServer(echo, latency=0.05) as server:
        def one(i):
            client = loopback_client(server, fresh_connections=True, max_retries=0, timeout=60)
            return client.chat.completions.create(model="m", messages=USER).choices[0].message.content

        with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(one, range(200)))
    assert results == ["You said: hello"] * 200


# --- the server in its own process ---------------------------------------------------------------


def test_loopback_process_serves_both_protocols_and_failures_and_stops():
    import openai

    from curriculum.utils.openai_server import LoopbackProcess

    failures = Failures(rate=1.0, kinds=("429",), retry_after=0.01)
    with LoopbackProcess("curriculum.utils.openai_server:echo") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="loopback", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
        assert "ping" in reply.choices[0].message.content
        proc = server._proc
    assert proc.poll() is not None, "the server process should have exited on stop()"
    with LoopbackProcess("curriculum.utils.openai_server:echo", failures=failures) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="loopback", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])


def test_loopback_process_names_an_unimportable_responder():
    from curriculum.utils.openai_server import LoopbackProcess

    with pytest.raises(ValueError, match="module:attribute"):
        LoopbackProcess("no_colon_here")
    with pytest.raises(ModuleNotFoundError):
        LoopbackProcess("curriculum.no_such_module:responder")
