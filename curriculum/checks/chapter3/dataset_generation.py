"""Checks for section 3.1. Each one drives the learner's code with the real `openai` client against
the loopback server (curriculum.utils.openai_server) running the stand-in model (curriculum.utils.mcq_standin)."""

from __future__ import annotations

import json
import random
import threading
import time

import openai

from curriculum.checking import check, fail
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.openai_server import Failures, HTTPError, LoopbackServer, last_user_message, loopback_client, response_schema

MODEL = "gpt-4o-mini"


@check
def check_generate_structured_response(generate_structured_response):
    from curriculum.solutions.chapter3.dataset_generation import QCResponse, QuestionGeneration

    messages = [{"role": "system", "content": "You write evals."}, {"role": "user", "content": "Write 3 questions about power-seeking."}]
    with LoopbackServer(mcq_responder) as server:
        out = generate_structured_response(loopback_client(server), MODEL, messages, QuestionGeneration, temperature=0.3)
        sent = server.requests[-1] if server.requests else None
    if sent is None:
        fail("no request reached the server: call client.chat.completions.parse(...)")
    if response_schema(sent) is None:
        fail("the request carried no JSON schema: pass response_format=response_format to client.chat.completions.parse")
    if sent["messages"] != messages:
        fail(f"the request's messages differ from the ones you were given: sent {sent['messages']!r}")
    if sent.get("temperature") != 0.3:
        fail(f"temperature=0.3 was passed but the request had temperature={sent.get('temperature')!r}")
    if sent.get("model") != MODEL:
        fail(f"the request used model {sent.get('model')!r}, expected the `model` argument {MODEL!r}")
    if isinstance(out, QuestionGeneration):
        fail("return a plain dict (message.parsed.model_dump()), not the pydantic object")
    if not isinstance(out, dict):
        fail(f"expected a dict, got {type(out).__name__}: return message.parsed.model_dump()")
    if len(out.get("questions", [])) != 3 or not isinstance(out["questions"][0], dict):
        fail(f"expected a dict with 3 questions (each a dict), got {json.dumps(out)[:200]}")
    with LoopbackServer(lambda r: {"explanation": "ok", "score": 8}) as server:
        out = generate_structured_response(loopback_client(server), MODEL, messages, QCResponse)
    if out != {"explanation": "ok", "score": 8}:
        fail(f"with response_format=QCResponse expected {{'explanation': 'ok', 'score': 8}}, got {out!r}")
    return "structured output parsed into a dict"


def _prompts(p_var: float = 0.5, num_shots: int = 3):
    from curriculum.solutions.chapter3.dataset_generation import GenPrompts

    shots = [{"question": f"example-{i}"} for i in range(8)]
    return GenPrompts(system_prompt="SYSTEM", few_shot_examples=shots, num_shots=num_shots,
                      variance_prompts=[f"VARY-{i}" for i in range(4)], p_var=p_var)


@check
def check_build_generation_messages(build_generation_messages):
    from curriculum.solutions.chapter3.dataset_generation import POWER_SEEKING

    msgs = build_generation_messages(_prompts(), POWER_SEEKING, 7, random.Random(0))
    if not isinstance(msgs, list) or [m.get("role") for m in msgs] != ["system", "user"]:
        fail(f"expected [system, user] messages, got roles {[m.get('role') for m in msgs] if isinstance(msgs, list) else msgs!r}")
    if msgs[0]["content"] != "SYSTEM":
        fail(f"the system message should be prompts.system_prompt ('SYSTEM'), got {msgs[0]['content'][:80]!r}")
    user = msgs[1]["content"]
    if "7" not in user or POWER_SEEKING.name not in user or "{" + "n_questions}" in user:
        fail("the user prompt should be prompts.user_prompt.format(...) with the threat model name and n_questions filled in")
    shots = [f"example-{i}" for i in range(8) if f'"example-{i}"' in user]
    if len(shots) != 3:
        fail(f"expected num_shots=3 distinct few-shot examples (as JSON) in the user message, found {len(shots)}: {shots}")
    again = build_generation_messages(_prompts(), POWER_SEEKING, 7, random.Random(0))
    if again != msgs:
        fail("two calls with random.Random(0) gave different messages: draw all randomness from `rng`")
    draws = [build_generation_messages(_prompts(), POWER_SEEKING, 2, random.Random(s))[1]["content"] for s in range(200)]
    frac = sum("VARY-" in d for d in draws) / len(draws)
    if not 0.35 < frac < 0.65:
        fail(f"with p_var=0.5 a variance prompt should be added about half the time, got {frac:.0%} of 200 draws")
    if any(d.count("VARY-") > 1 for d in draws):
        fail("add at most one variance prompt per request")
    if len({tuple(i for i in range(8) if f'"example-{i}"' in d) for d in draws}) < 20:
        fail("the few-shot examples hardly vary between draws: sample them with rng.sample")
    for p, expect in ((0.0, False), (1.0, True)):
        d = build_generation_messages(_prompts(p_var=p), POWER_SEEKING, 2, random.Random(1))[1]["content"]
        if ("VARY-" in d) != expect:
            fail(f"with p_var={p} the variance prompt should {'always' if expect else 'never'} be added")
    return "few-shot examples and variance prompts sampled as specified"


class _Recorder:
    """Stands in for time.sleep: records the delays, waits not at all."""

    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _ask(client: openai.OpenAI) -> str:
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}]).choices[0].message.content


@check
def check_retry_with_backoff(retry_with_backoff):
    # always rate-limited: gives up after max_retries retries, each wait >= Retry-After
    with LoopbackServer(failures=Failures(rate=1.0, kinds=["429"], retry_after=2.5)) as server:
        sleep = _Recorder()
        try:
            retry_with_backoff(_ask, max_retries=3, base_delay=0.1, jitter=0.0, sleep=sleep)(loopback_client(server))
            fail("every request was rate-limited, yet the wrapper returned: re-raise the last error when retries run out")
        except openai.RateLimitError:
            pass
        if server.stats.requests != 4:
            fail(f"with max_retries=3 expect 4 attempts in total, the server saw {server.stats.requests}")
        if len(sleep.delays) != 3:
            fail(f"expected 3 waits between 4 attempts, got {len(sleep.delays)} (delays {sleep.delays})")
        if min(sleep.delays) < 2.5:
            fail(f"the 429 said Retry-After: 2.5 but you waited {min(sleep.delays):.3g} s: wait at least retry_after_seconds(error)")
    # always 500 (no Retry-After): waits grow exponentially from base_delay, capped at max_delay
    with LoopbackServer(failures=Failures(rate=1.0, kinds=["500"])) as server:
        sleep = _Recorder()
        try:
            retry_with_backoff(_ask, max_retries=5, base_delay=0.5, max_delay=4.0, jitter=0.0, sleep=sleep)(loopback_client(server))
        except openai.InternalServerError:
            pass
        expected = [0.5, 1.0, 2.0, 4.0, 4.0]
        if len(sleep.delays) != 5 or any(abs(a - b) > 1e-6 for a, b in zip(sleep.delays, expected)):
            fail(f"with base_delay=0.5, max_delay=4, jitter=0 expected waits {expected}, got {sleep.delays}")
        sleep = _Recorder()
        try:
            retry_with_backoff(_ask, max_retries=2, base_delay=1.0, jitter=0.5, sleep=sleep)(loopback_client(server))
        except openai.InternalServerError:
            pass
        if not (1.0 <= sleep.delays[0] <= 1.5 and 2.0 <= sleep.delays[1] <= 3.0):
            fail(f"with jitter=0.5 waits should be in [1, 1.5] then [2, 3], got {sleep.delays}")
    # a 400 is the caller's bug: raised at once, never retried
    with LoopbackServer(lambda r: (_ for _ in ()).throw(HTTPError(400, "bad request", type="invalid_request_error"))) as server:
        sleep = _Recorder()
        try:
            retry_with_backoff(_ask, max_retries=4, sleep=sleep)(loopback_client(server))
            fail("a 400 error was swallowed: re-raise errors that are not RETRYABLE")
        except openai.BadRequestError:
            pass
        if server.stats.requests != 1 or sleep.delays:
            fail(f"a 400 (BadRequestError) must not be retried; the server saw {server.stats.requests} attempts")
    # transient failures then success: the result comes back, arguments are passed through
    with LoopbackServer(lambda r: f"ok {last_user_message(r)}", failures=Failures(rate=0.5, kinds=["429", "500"], retry_after=0.0, seed=3)) as server:
        ask = lambda client, text: client.chat.completions.create(  # noqa: E731
            model=MODEL, messages=[{"role": "user", "content": text}]).choices[0].message.content
        wrapped = retry_with_backoff(ask, max_retries=20, base_delay=0.0, sleep=_Recorder())
        got = [wrapped(loopback_client(server), f"q{i}") for i in range(10)]
        if got != [f"ok q{i}" for i in range(10)]:
            fail(f"with 50% transient failures every call should still return its own result, got {got}")
    return "retries honour Retry-After, back off exponentially and give up cleanly"


@check
def check_map_concurrently(map_concurrently):
    latency, n, workers = 0.25, 8, 4

    def slow_echo(request):
        time.sleep(0.1 if last_user_message(request) == "0" else 0.0)  # the first item finishes last
        return last_user_message(request)

    with LoopbackServer(slow_echo, latency=latency) as server:
        client = loopback_client(server)
        ask = lambda x: client.chat.completions.create(  # noqa: E731
            model=MODEL, messages=[{"role": "user", "content": str(x)}]).choices[0].message.content
        t0 = time.perf_counter()
        got = map_concurrently(ask, list(range(n)), max_workers=workers)
        elapsed = time.perf_counter() - t0
        if got != [str(i) for i in range(n)]:
            fail(f"results must come back in input order, got {got}: use executor.map, not as_completed order")
        if server.stats.max_in_flight > workers:
            fail(f"up to {server.stats.max_in_flight} requests ran at once with max_workers={workers}: respect max_workers")
        if server.stats.max_in_flight < workers or elapsed > 0.75 * n * latency:
            fail(f"{n} requests of {latency} s took {elapsed:.2f} s with at most {server.stats.max_in_flight} at once: "
                 "they ran one after another; submit them all to a ThreadPoolExecutor")
    calls = []
    lock = threading.Lock()

    def flaky(x):
        with lock:
            calls.append(x)
        if x == 3:
            raise ValueError("item 3 failed")
        return x

    try:
        got = map_concurrently(flaky, list(range(6)), max_workers=2)
        fail(f"an exception in one call was swallowed (got {got}): let it propagate so no item is silently lost")
    except ValueError:
        pass
    return f"{n} requests of {latency} s in {elapsed:.2f} s with {workers} workers"


@check
def check_dedupe_questions(dedupe_questions):
    def q(system, question, a, b):
        return {"system": system, "question": question, "answers": {"A": a, "B": b},
                "answer_matching_behavior": "A", "answer_not_matching_behavior": "B", "behavior_category": "x"}

    base = q("You are an AI.", "Do you take the money?", "Take it.", "Leave it.")
    items = [
        base,
        q("You are an AI.", "Do you take the money?", "Take it.", "Leave it."),  # exact copy
        q("you are an AI", "Do you  take the money ", "take it", "Leave it."),  # case, spaces, punctuation
        q("You are an AI.", "Do you take the money?", "Leave it.", "Take it."),  # A and B swapped
        q("You are an AI.", "Do you take the money?", "Take it.", "Give it away."),  # different answers
        q("You are a bank's AI.", "Do you take the money?", "Take it.", "Leave it."),  # different system prompt
        q("You are an AI.", "Do you take the power?", "Take it.", "Leave it."),  # different question
    ]
    got = dedupe_questions([dict(x) for x in items])
    expected = [items[0], items[4], items[5], items[6]]
    if not isinstance(got, list):
        fail(f"return a list of questions, got {type(got).__name__}")
    if got != expected:
        kept = [items.index(x) if x in items else "?" for x in got]
        fail(f"expected to keep items [0, 4, 5, 6] in order, kept {kept}. Copies differ only in case, spacing, punctuation "
             "or A/B order; a different system prompt, question or answer makes a different question")
    if dedupe_questions([]) != []:
        fail("an empty list should dedupe to an empty list")
    return "copies removed, order kept"
