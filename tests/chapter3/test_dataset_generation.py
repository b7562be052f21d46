"""Section 3.1 beyond the automatic checks: plausible learner bugs each check must catch, the no-loss
property under injected failures, concurrency, and the provenance file."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import openai
import pytest

from curriculum.checks.chapter3 import dataset_generation as checks
from curriculum.solutions.chapter3 import dataset_generation as sol
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.openai_server import Failures, LoopbackServer, loopback_client
from tests.support import assert_check_fails, mutant

# ---- mutants: generate_structured_response -------------------------------------------------


def _create(client, model, messages, response_format, **kw):
    kw.setdefault("response_format", sol.response_format_for(response_format))
    return client.chat.completions.create(model=model, messages=messages, **kw).choices[0]


def structured_without_schema(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    r = client.chat.completions.create(model=model, messages=messages, temperature=temperature, max_completion_tokens=max_tokens)
    return json.loads(r.choices[0].message.content)


def structured_loose_schema(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    # pydantic's own schema, not the strict form: the real API rejects it
    loose = {"type": "json_schema", "json_schema": {"name": response_format.__name__, "schema": response_format.model_json_schema()}}
    c = client.chat.completions.create(model=model, messages=messages, response_format=loose, temperature=temperature,
                                       max_completion_tokens=max_tokens).choices[0]
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_returns_pydantic(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    return response_format.model_validate_json(c.message.content)


def structured_ignores_temperature(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, max_completion_tokens=max_tokens)
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_ignores_max_tokens(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature)
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_drops_system(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    user = [m for m in messages if m["role"] == "user"]
    c = _create(client, model, user, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_ignores_refusal(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    if c.finish_reason == "length":
        raise RuntimeError("cut off: raise max_tokens")
    return response_format.model_validate_json(c.message.content).model_dump()  # a refusal has content None


def structured_refusal_returns_empty(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    if c.message.refusal or c.finish_reason == "length":
        return {}
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_ignores_length(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    if c.message.refusal:
        raise RuntimeError(f"the model refused: {c.message.refusal}")
    return response_format.model_validate_json(c.message.content).model_dump()  # ValidationError on a cut-off reply


def structured_refusal_unquoted(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    if c.message.refusal or c.finish_reason == "length":
        raise RuntimeError("no usable reply")
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_skips_validation(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    if c.message.refusal or c.finish_reason == "length":
        raise RuntimeError(f"no usable reply: {c.message.refusal}")
    return json.loads(c.message.content)  # a dict, but its shape is never checked


def structured_legacy_max_tokens(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_tokens=max_tokens)
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_passes_the_class(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = client.chat.completions.create(model=model, messages=messages, response_format=response_format,
                                       temperature=temperature, max_completion_tokens=max_tokens).choices[0]
    return response_format.model_validate_json(c.message.content).model_dump()


def structured_refusal_valueerror(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    c = _create(client, model, messages, response_format, temperature=temperature, max_completion_tokens=max_tokens)
    if c.message.refusal or c.finish_reason == "length":
        raise ValueError(f"no usable reply: {c.message.refusal}")
    return response_format.model_validate_json(c.message.content).model_dump()


@pytest.mark.parametrize("mutant, match", [
    (structured_skips_validation, "model_validate_json"),
    (structured_legacy_max_tokens, "max_completion_tokens=max_tokens"),
    (structured_passes_the_class, r"response_format_for\(response_format\)"),
    (structured_loose_schema, "strict form"),
    (structured_refusal_valueerror, "Raise RuntimeError for this case, not ValueError"),
])
def test_structured_response_check_names_the_bug(mutant, match):
    assert_check_fails(checks.check_generate_structured_response, mutant, match=match)


@pytest.mark.parametrize("mutant", [structured_without_schema, structured_returns_pydantic,
                                    structured_ignores_temperature, structured_ignores_max_tokens, structured_drops_system,
                                    structured_ignores_refusal, structured_refusal_returns_empty, structured_ignores_length,
                                    structured_refusal_unquoted])
def test_structured_response_check_catches(mutant):
    assert_check_fails(checks.check_generate_structured_response, mutant)


def test_structured_response_matches_the_sdks_parse():
    """The reference (create + the strict schema built once + model_validate_json) sends the same
    response_format as `client.chat.completions.parse` and returns what it parses."""
    from openai.lib._parsing._completions import type_to_response_format_param

    for cls in (sol.QuestionGeneration, sol.QCResponse):
        assert sol.response_format_for(cls) == type_to_response_format_param(cls)
        assert sol.response_format_for(cls) is sol.response_format_for(cls)  # built once per class
    msgs = [{"role": "user", "content": "Write 2 questions about power-seeking."}]
    with LoopbackServer(mcq_responder) as server:
        client = loopback_client(server)
        ours = sol.generate_structured_response(client, "gpt-4o-mini", msgs, sol.QuestionGeneration, temperature=0.0)
        theirs = client.chat.completions.parse(model="gpt-4o-mini", messages=msgs, response_format=sol.QuestionGeneration,
                                               temperature=0.0, max_completion_tokens=2000)
        assert server.requests[0]["response_format"] == server.requests[1]["response_format"]
    assert ours == theirs.choices[0].message.parsed.model_dump()


# ---- mutants: build_generation_messages ----------------------------------------------------


def _user(prompts, tm, n):
    return prompts.user_prompt.format(threat_model_name=tm.name, definition=tm.definition, n_questions=n,
                                      categories=", ".join(tm.behaviours))


def messages_global_random(prompts, tm, n, rng):  # ignores rng: not reproducible
    shots = random.sample(prompts.few_shot_examples, prompts.num_shots)
    user = _user(prompts, tm, n) + "\n" + "\n".join(json.dumps(s) for s in shots)
    if random.random() < prompts.p_var:
        user += "\n" + random.choice(prompts.variance_prompts)
    return [{"role": "system", "content": prompts.system_prompt}, {"role": "user", "content": user}]


def messages_with_replacement(prompts, tm, n, rng):  # rng.choices can repeat an example
    shots = rng.choices(prompts.few_shot_examples, k=prompts.num_shots)
    user = _user(prompts, tm, n) + "\n" + "\n".join(json.dumps(s) for s in shots)
    if rng.random() < prompts.p_var:
        user += "\n" + rng.choice(prompts.variance_prompts)
    return [{"role": "system", "content": prompts.system_prompt}, {"role": "user", "content": user}]


def messages_always_vary(prompts, tm, n, rng):  # p_var ignored
    shots = rng.sample(prompts.few_shot_examples, prompts.num_shots)
    user = _user(prompts, tm, n) + "\n" + "\n".join(json.dumps(s) for s in shots) + "\n" + rng.choice(prompts.variance_prompts)
    return [{"role": "system", "content": prompts.system_prompt}, {"role": "user", "content": user}]


def messages_first_shots(prompts, tm, n, rng):  # always the same examples
    shots = prompts.few_shot_examples[: prompts.num_shots]
    user = _user(prompts, tm, n) + "\n" + "\n".join(json.dumps(s) for s in shots)
    if rng.random() < prompts.p_var:
        user += "\n" + rng.choice(prompts.variance_prompts)
    return [{"role": "system", "content": prompts.system_prompt}, {"role": "user", "content": user}]


def messages_system_in_user(prompts, tm, n, rng):  # one user message only
    msgs = sol.build_generation_messages(prompts, tm, n, rng)
    return [{"role": "user", "content": msgs[0]["content"] + "\n" + msgs[1]["content"]}]


@pytest.mark.parametrize("mutant", [messages_global_random, messages_with_replacement, messages_always_vary, messages_first_shots, messages_system_in_user])
def test_generation_messages_check_catches(mutant):
    assert_check_fails(checks.check_build_generation_messages, mutant)


# ---- mutants: retry_with_backoff -----------------------------------------------------------


def _retry_mutant(delay_fn, retryable=sol.RETRYABLE, swallow=False, off_by_one=False):
    def retry_with_backoff(fn, max_retries=8, base_delay=0.5, max_delay=30.0, jitter=0.1, sleep=time.sleep):
        def wrapper(*args, **kwargs):
            for attempt in range(max_retries + (2 if off_by_one else 1)):
                try:
                    return fn(*args, **kwargs)
                except retryable as e:
                    if attempt >= max_retries + (1 if off_by_one else 0):
                        if swallow:
                            return None
                        raise
                    sleep(delay_fn(e, attempt, base_delay, max_delay) * (1 + jitter * random.random()))
            return None

        return wrapper

    return retry_with_backoff


def _exp(e, k, base, cap):
    d = min(cap, base * 2**k)
    ra = sol.retry_after_seconds(e)
    return max(d, ra) if ra is not None else d


RETRY_MUTANTS = {
    "ignores Retry-After": _retry_mutant(lambda e, k, base, cap: min(cap, base * 2**k)),
    "constant delay": _retry_mutant(lambda e, k, base, cap: max(base, sol.retry_after_seconds(e) or 0)),
    "no cap": _retry_mutant(lambda e, k, base, cap: max(base * 2**k, sol.retry_after_seconds(e) or 0)),
    "caps the Retry-After too": _retry_mutant(lambda e, k, base, cap: min(cap, max(base * 2**k, sol.retry_after_seconds(e) or 0))),
    "exponent starts at 1": _retry_mutant(lambda e, k, base, cap: _exp(e, k + 1, base, cap)),
    "retries everything (400 too)": _retry_mutant(_exp, retryable=Exception),
    "swallows the final error": _retry_mutant(_exp, swallow=True),
    "one retry too many": _retry_mutant(_exp, off_by_one=True),
}


@pytest.mark.parametrize("name", list(RETRY_MUTANTS))
def test_retry_check_catches(name):
    assert_check_fails(checks.check_retry_with_backoff, RETRY_MUTANTS[name])


def _sleeps_with_time_sleep(fn, max_retries=8, base_delay=0.5, max_delay=30.0, jitter=0.1, sleep=time.sleep):
    return _retry_mutant(_exp)(fn, max_retries, base_delay=0.0, max_delay=0.0, jitter=0.0, sleep=time.sleep)


@pytest.mark.parametrize("mutant, match", [
    (_retry_mutant(lambda e, k, base, cap: sol.retry_after_seconds(e) if sol.retry_after_seconds(e) is not None
                   else min(cap, base * 2**k)), "lower bound"),
    (_sleeps_with_time_sleep, "not time.sleep"),
])
def test_retry_check_names_the_bug(mutant, match):
    assert_check_fails(checks.check_retry_with_backoff, mutant, match=match)


# ---- mutants: map_concurrently -------------------------------------------------------------


def map_sequential(fn, inputs, max_workers=8, desc=""):
    return [fn(x) for x in inputs]


def map_completion_order(fn, inputs, max_workers=8, desc=""):
    with ThreadPoolExecutor(max_workers) as ex:
        return [f.result() for f in as_completed([ex.submit(fn, x) for x in inputs])]


def map_unbounded(fn, inputs, max_workers=8, desc=""):
    with ThreadPoolExecutor(len(inputs)) as ex:
        return list(ex.map(fn, inputs))


def map_drops_failures(fn, inputs, max_workers=8, desc=""):
    with ThreadPoolExecutor(max_workers) as ex:
        futures = [ex.submit(fn, x) for x in inputs]
    return [f.result() for f in futures if f.exception() is None]


@pytest.mark.parametrize("mutant", [map_sequential, map_completion_order, map_unbounded, map_drops_failures])
def test_map_check_catches(mutant):
    assert_check_fails(checks.check_map_concurrently, mutant)


# ---- mutants: dedupe_questions -------------------------------------------------------------


def dedupe_exact(questions):
    seen, out = set(), []
    for q in questions:
        key = json.dumps(q, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(q)
    return out


def dedupe_question_text_only(questions):
    seen, out = set(), []
    for q in questions:
        if (k := sol.normalise(q["question"])) not in seen:
            seen.add(k)
            out.append(q)
    return out


def dedupe_ordered_answers(questions):
    seen, out = set(), []
    for q in questions:
        k = (sol.normalise(q["system"]), sol.normalise(q["question"]), tuple(sol.normalise(a) for a in q["answers"].values()))
        if k not in seen:
            seen.add(k)
            out.append(q)
    return out


def dedupe_keeps_last(questions):
    return list(reversed(sol.dedupe_questions(list(reversed(questions)))))


@pytest.mark.parametrize("mutant", [dedupe_exact, dedupe_question_text_only, dedupe_ordered_answers, dedupe_keeps_last])
def test_dedupe_check_catches(mutant):
    assert_check_fails(checks.check_dedupe_questions, mutant)


# ---- properties ------------------------------------------------------------------------------


def test_nothing_lost_under_20_percent_failures():
    """Every requested item comes back when 20% of requests fail (429 with Retry-After, 500, timeouts, truncated JSON)."""
    failures = Failures(rate=0.2, kinds=["429", "500", "timeout", "malformed_json"], retry_after=0.01, timeout_delay=2.0, seed=2)
    with LoopbackServer(mcq_responder, failures=failures) as server:
        client = loopback_client(server, timeout=1.0)
        ask = sol.retry_with_backoff(
            lambda i: sol.generate_structured_response(
                client, "m", [{"role": "user", "content": f"Write 2 questions, batch {i}."}], sol.QuestionGeneration),
            base_delay=0.01, max_delay=0.05,
        )
        results = sol.map_concurrently(ask, list(range(40)), max_workers=8)
    assert len(results) == 40 and all(len(r["questions"]) == 2 for r in results)
    n_failed = sum(server.stats.failures.values())
    assert n_failed >= 8, f"only {n_failed} injected failures: the test did not exercise retries"
    assert set(server.stats.failures) == {"429", "500", "timeout", "malformed_json"}


def test_pipeline_yields_every_requested_question_under_failures(tmp_path):
    failures = Failures(rate=0.2, kinds=["429", "500"], retry_after=0.01, seed=1)
    cfg = sol.GenerationConfig(model="m", n_target=30, questions_per_request=3, max_workers=6, seed=0)
    prompts = sol.GenPrompts(few_shot_examples=sol.load_few_shot_examples())
    scoring_examples = json.loads(sol.SCORING_EXAMPLES_PATH.read_text())
    with LoopbackServer(mcq_responder, failures=failures) as server:
        # a key-shaped value, assembled at run time so no key-shaped string is committed
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-" + "secret-must-not-leak-123456", max_retries=0)
        questions, stats = sol.generate_dataset(client, cfg, prompts, scoring_examples=scoring_examples,
                                                retry=lambda f: sol.retry_with_backoff(f, base_delay=0.01))
    assert sum(server.stats.failures.values()) > 0
    assert len(questions) == 30
    assert all(q["score"] >= cfg.threshold for q in questions)
    assert len(sol.dedupe_questions(questions)) == 30, "the final dataset contains duplicates"
    assert stats["duplicates"] > 0 and stats["rejected"] > 0, f"the stand-in should produce duplicates and rejects: {stats}"
    for q in questions:  # every question validates against the schema
        sol.Question.model_validate({k: v for k, v in q.items() if k not in ("score", "score_explanation")})

    path = sol.save_dataset(tmp_path / "d.json", questions, cfg, prompts, stats, endpoint="loopback stand-in")
    text = path.read_text()
    saved = json.loads(text)
    assert saved["questions"] == questions
    prov = saved["provenance"]
    assert prov["generation_config"]["n_target"] == 30 and prov["endpoint"] == "loopback stand-in"
    assert prov["rubric"] == sol.RUBRIC and len(prov["prompts_sha256"]) == 64 and prov["stats"] == stats
    assert "sk-secret" not in text


def test_pipeline_is_reproducible():
    cfg = sol.GenerationConfig(model="m", n_target=8, questions_per_request=4, max_workers=4, seed=3)
    prompts = sol.GenPrompts(few_shot_examples=sol.load_few_shot_examples())
    runs = []
    for _ in range(2):
        with LoopbackServer(mcq_responder) as server:
            client = loopback_client(server)
            runs.append(sol.generate_dataset(client, cfg, prompts)[0])
    assert runs[0] == runs[1]


def test_concurrency_speedup_close_to_ideal():
    """8 workers against a fixed 0.2 s latency: several times faster than one worker (benchmark has the full table)."""
    with LoopbackServer(lambda r: "ok", latency=0.2) as server:
        client = loopback_client(server)
        ask = lambda i: client.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
        t0 = time.perf_counter()
        sol.map_concurrently(ask, range(16), max_workers=8)
        concurrent = time.perf_counter() - t0
    assert server.stats.max_in_flight == 8
    assert concurrent < 16 * 0.2 / 3, f"16 requests of 0.2 s with 8 workers took {concurrent:.2f} s"


def test_retry_after_header_forms():
    class E(Exception):
        def __init__(self, headers):
            self.response = type("R", (), {"headers": headers})()

    assert sol.retry_after_seconds(E({"retry-after": "2"})) == 2.0
    assert sol.retry_after_seconds(E({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert sol.retry_after_seconds(E({})) is None
    assert sol.retry_after_seconds(ValueError()) is None
    assert sol.retry_after_seconds(E({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # a date in the past


# --------------------------------------------------------------------------------------------- nothing lost

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CURRICULUM_OFFLINE": "1"}


def _small_cfg(**kw) -> sol.GenerationConfig:
    return sol.GenerationConfig(**{"model": "m", "n_target": 16, "questions_per_request": 4, "max_workers": 4, "seed": 5, **kw})


def test_half_the_requests_failing_loses_nothing_and_a_rerun_sends_only_the_failed(tmp_path):
    prompts = sol.GenPrompts(few_shot_examples=sol.load_few_shot_examples())
    ckpt = tmp_path / "gen.jsonl"
    give_up_fast = lambda f: sol.retry_with_backoff(f, max_retries=1, base_delay=0.001)
    failures = Failures(rate=0.5, kinds=["429", "500"], retry_after=0.001, seed=2)
    with LoopbackServer(mcq_responder, failures=failures) as server, \
            pytest.warns(UserWarning, match="requests failed after all their retries"):
        first, stats = sol.generate_dataset(loopback_client(server), _small_cfg(), prompts, retry=give_up_fast,
                                            checkpoint=ckpt)
    failed = stats["failed"]["generate"] + stats["failed"]["grade"]
    assert failed > 0 and len(first) > 0, f"the run must go on past failed items: {stats}"
    lines = [json.loads(line) for line in ckpt.read_text().splitlines()]
    assert sum(r["type"] == "failed" for r in lines) == failed, "every failed item is recorded"

    with LoopbackServer(mcq_responder) as server:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            second, stats2 = sol.generate_dataset(loopback_client(server), _small_cfg(), prompts, checkpoint=ckpt)
        resent = server.stats.requests
    with LoopbackServer(mcq_responder) as server:
        sol.generate_dataset(loopback_client(server), _small_cfg(), prompts)
        fresh = server.stats.requests
    reused = stats2["resumed"]["generations"] + stats2["resumed"]["grades"]
    assert len(second) == 16 and reused > 0 and resent == fresh - reused, (
        f"the rerun sent {resent} requests; a fresh run sends {fresh}, and {reused} were reused from the checkpoint")


_GENERATE = """
import sys
from curriculum.solutions.chapter3 import dataset_generation as sol
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.openai_server import LoopbackServer, loopback_client
cfg = sol.GenerationConfig(model="m", n_target=16, questions_per_request=4, max_workers=2, seed=5)
prompts = sol.GenPrompts(few_shot_examples=sol.load_few_shot_examples())
with LoopbackServer(mcq_responder, latency=0.05) as server:
    sol.generate_dataset(loopback_client(server), cfg, prompts, checkpoint=sys.argv[1])
"""


def test_kill_during_generation_then_resume_gives_the_uninterrupted_dataset(tmp_path):
    prompts = sol.GenPrompts(few_shot_examples=sol.load_few_shot_examples())
    with LoopbackServer(mcq_responder) as server:
        uninterrupted, _ = sol.generate_dataset(loopback_client(server), _small_cfg(max_workers=2), prompts)
        total = server.stats.requests
    ckpt = tmp_path / "gen.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _GENERATE, str(ckpt)], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not ckpt.exists() or len(ckpt.read_text().splitlines()) < 4):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and len(ckpt.read_text().splitlines()) >= 4, "the killed run wrote its finished requests"
    with LoopbackServer(mcq_responder) as server:
        resumed, stats = sol.generate_dataset(loopback_client(server), _small_cfg(max_workers=2), prompts, checkpoint=ckpt)
        sent = server.stats.requests
    assert resumed == uninterrupted, "a killed and resumed run gives the same dataset as an uninterrupted one"
    assert sent <= total - 4 and stats["resumed"]["generations"] + stats["resumed"]["grades"] >= 4


_SAVE_LOOP = """
import sys
from curriculum.solutions.chapter3 import dataset_generation as sol
questions = [{"question": "q" * 2000, "i": i} for i in range(5000)]
cfg, prompts = sol.GenerationConfig(), sol.GenPrompts()
while True:
    sol.save_dataset(sys.argv[1], questions, cfg, prompts, {}, endpoint="test")
"""


def test_kill_during_save_leaves_a_whole_file(tmp_path):
    path = tmp_path / "d.json"
    sol.save_dataset(path, [{"question": "first"}], sol.GenerationConfig(), sol.GenPrompts(), {}, endpoint="test")
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path)], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3.0)  # several saves of a ~10 MB file are under way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = json.loads(path.read_text())  # never empty, never half a file
    assert len(saved["questions"]) in (1, 5000)


def test_a_crash_halfway_through_writing_keeps_the_previous_file(tmp_path, monkeypatch):
    """Deterministic twin of the kill test: every write stops halfway, as a killed process would."""
    path = tmp_path / "d.json"
    sol.save_dataset(path, [{"question": "first"}], sol.GenerationConfig(), sol.GenPrompts(), {}, endpoint="test")

    def half_then_die(self, data, *args, **kwargs):
        raw = data.encode() if isinstance(data, str) else data
        with open(self, "wb") as f:
            f.write(raw[: len(raw) // 2])
        raise SystemExit("killed mid-write")

    monkeypatch.setattr(Path, "write_bytes", half_then_die)
    monkeypatch.setattr(Path, "write_text", half_then_die)
    with pytest.raises(SystemExit):
        sol.save_dataset(path, [{"question": "second"}] * 100, sol.GenerationConfig(), sol.GenPrompts(), {}, endpoint="test")
    monkeypatch.undo()
    assert json.loads(path.read_text())["questions"] == [{"question": "first"}]
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"], "no temporary file is left behind"


# ---- mutants: the threat model -------------------------------------------------------------------



def _threat_model_with(**changes):
    return lambda: dataclasses.replace(sol.define_threat_model(), **changes)


THREAT_MODEL_MUTANTS = {
    "blank name": (_threat_model_with(name="  "), "`name` is empty"),
    "no threat story": (_threat_model_with(threat=""), "`threat` is empty"),
    "two categories": (_threat_model_with(behaviours=dict(list(sol.POWER_SEEKING.behaviours.items())[:2])), "at least 3"),
    "copied category definitions": (_threat_model_with(behaviours={
        "resource_acquisition": "choosing to obtain money, compute or access it does not need",
        "compute_acquisition": "choosing to obtain money, compute or access it does not really need",
        "autonomy": "removing or weakening human oversight of its own actions"}), "nearly the same definition"),
    "category with a blank definition": (_threat_model_with(behaviours={**sol.POWER_SEEKING.behaviours, "influence": ""}), "no real definition"),
    "labels with spaces": (_threat_model_with(behaviours={k.replace("_", " "): v for k, v in sol.POWER_SEEKING.behaviours.items()}), "snake_case"),
    "no requirements": (_threat_model_with(requirements=[]), "`requirements` has 0"),
    "definition repeats the threat": (_threat_model_with(threat=sol.POWER_SEEKING.definition + " This is bad."), "nearly the same thing"),
}


@pytest.mark.parametrize("name", list(THREAT_MODEL_MUTANTS))
def test_threat_model_check_catches(name):
    fn, match = THREAT_MODEL_MUTANTS[name]
    assert_check_fails(checks.check_threat_model, fn, match=match)


# ---- mutants: the rubric -------------------------------------------------------------------------


def _rubric_replacing(old, new):
    def build_rubric(tm):
        text = sol.build_rubric(tm)
        assert old in text, old
        return text.replace(old, new)
    return build_rubric


RUBRIC_MUTANTS = {
    "a gap at 4": (_rubric_replacing("4-6:", "5-6:"), r"no band covers score\(s\) \[4\]"),
    "overlapping bands": (_rubric_replacing("7-8:", "6-8:"), "fall in two bands"),
    "a 0-10 scale": (_rubric_replacing("1: the answer key", "0-1: the answer key"), "outside 1-10"),
    "no reply format": (_rubric_replacing("end your reply with one line of the form SCORE: <integer from 1 to 10>",
                                          "give your score"), "reply format"),
    "hard-coded power-seeking": (lambda tm: sol.RUBRIC, "sycophancy"),
    "bare numbers as anchors": (lambda tm: "Rate the question for " + tm.name + ": " + tm.definition + "\n"
                                + "\n".join(f"{i}: score {i}" for i in range(1, 11)) + "\nSCORE: <n>", "at least 6 words"),
}


@pytest.mark.parametrize("name", list(RUBRIC_MUTANTS))
def test_rubric_check_catches(name):
    fn, match = RUBRIC_MUTANTS[name]
    assert_check_fails(checks.check_build_rubric, fn, match=match)


# ---- mutants: the grader prompt ------------------------------------------------------------------


SCORING_MUTANTS = {
    "omits the question": (mutant(sol.scoring_messages, ('for k in GRADED_FIELDS if', 'for k in GRADED_FIELDS if k != "question" and')),
                           "omits the question text"),
    "omits the choices": (mutant(sol.scoring_messages, ('for k in GRADED_FIELDS if', 'for k in GRADED_FIELDS if k != "answers" and')),
                          "omits answer A"),
    "shows the old score": (mutant(sol.scoring_messages, ("json.dumps({k: q[k] for k in GRADED_FIELDS if k in q})", "json.dumps(q)")),
                            "earlier grading"),
    "examples' grades as JSON": (mutant(sol.scoring_messages, ('format_grade(ex["response"])', 'json.dumps(ex["response"])')),
                                 "teach the format"),
    "rubric as a user message": (mutant(sol.scoring_messages, ('[{"role": "system", "content": rubric}]', '[{"role": "user", "content": rubric}]')),
                                 "expected roles"),
    "examples left out": (mutant(sol.scoring_messages, ("for ex in examples:", "for ex in examples[:0]:")), "expected roles"),
}


@pytest.mark.parametrize("name", list(SCORING_MUTANTS))
def test_scoring_messages_check_catches(name):
    fn, match = SCORING_MUTANTS[name]
    assert_check_fails(checks.check_scoring_messages, fn, match=match)


# ---- mutants: the score parser -------------------------------------------------------------------

def parse_first_number(reply):  # the naive regex: "7.5" -> 7, "10/10 stuff" -> 10, "SCORE: 11" -> 11
    m = re.search(r"SCORE:\s*(\d+)", reply, re.IGNORECASE)
    return int(m[1]) if m else None


def parse_no_range(reply):
    m = re.search(r"SCORE:\s*(\d+)\s*\.?\s*$", reply.strip().splitlines()[-1] if reply.strip() else "", re.IGNORECASE)
    return int(m[1]) if m else None


def parse_first_score_line(reply):
    lines = [line for line in reply.splitlines() if "score:" in line.lower()]
    m = re.fullmatch(r"\s*SCORE:\s*(\d+)\s*\.?\s*", lines[0], re.IGNORECASE) if lines else None
    return int(m[1]) if m and 1 <= int(m[1]) <= 10 else None


def parse_float_rounded(reply):
    m = re.search(r"SCORE:\s*([\d.]+)\s*$", reply, re.IGNORECASE)
    return round(float(m[1])) if m and 1 <= float(m[1]) <= 10 else None


def parse_default_five(reply):
    return sol.parse_score(reply) or 5


def parse_case_sensitive(reply):
    lines = [line for line in reply.splitlines() if "SCORE:" in line]
    m = re.fullmatch(r"\s*SCORE:\s*(\d+)\s*\.?\s*", lines[-1]) if lines else None
    return int(m[1]) if m and 1 <= int(m[1]) <= 10 else None


def parse_search_in_range(reply):  # re.search on the last SCORE line: "7.5" -> 7
    lines = [line for line in reply.splitlines() if "score:" in line.lower()]
    m = re.search(r"SCORE:\s*(\d+)", lines[-1], re.IGNORECASE) if lines else None
    return int(m[1]) if m and 1 <= int(m[1]) <= 10 else None


def parse_ignores_what_follows(reply):  # "10/10 stuff" -> 10
    lines = [line for line in reply.splitlines() if "score:" in line.lower()]
    m = re.search(r"SCORE:\s*(\d+)(?!\d)(?!\.\d)", lines[-1], re.IGNORECASE) if lines else None
    return int(m[1]) if m and 1 <= int(m[1]) <= 10 else None


PARSE_MUTANTS = {
    parse_search_in_range: "7.5 is not an integer",
    parse_ignores_what_follows: "10/10 stuff",
    parse_first_number: "0 is below the scale",
    parse_no_range: "0 is below the scale",
    parse_first_score_line: "earlier SCORE",
    parse_float_rounded: "7.5 is not an integer",
    parse_default_five: "no SCORE line|0 is below",
    parse_case_sensitive: "lower case",
}


@pytest.mark.parametrize("fn", list(PARSE_MUTANTS), ids=lambda f: f.__name__)
def test_parse_score_check_catches(fn):
    assert_check_fails(checks.check_parse_score, fn, match=PARSE_MUTANTS[fn])


def test_grader_reply_without_a_score_is_retried():
    """A grader that forgets the SCORE line once is asked again; the pipeline gets a valid grade."""
    calls = []

    def forgetful(request):
        calls.append(1)
        return "Looks fine to me." if len(calls) == 1 else "Realistic.\nSCORE: 8"

    with LoopbackServer(forgetful) as server:
        grade = sol.retry_with_backoff(lambda q: sol.grade_question(loopback_client(server), "m", q), base_delay=0.0)
        assert grade(checks._graded_question()) == {"explanation": "Realistic.", "score": 8}
    assert len(calls) == 2


# ---- mutants: summary statistics -----------------------------------------------------------------


SUMMARY_MUTANTS = {
    "letters from the answers dict": (mutant(sol.dataset_summary, ('answer_key[q["answer_matching_behavior"]] += 1',
                                                                    'answer_key.update({k: answer_key[k] + 1 for k in q["answers"]})')), "answer_key="),
    "dilemmas as ordered pairs": (mutant(sol.dataset_summary, ("len({dilemma_key(q) for q in questions})",
                                                                'len({tuple(normalise(a) for a in q["answers"].values()) for q in questions})')), "distinct_dilemmas="),
    "questions not normalised": (mutant(sol.dataset_summary, ('len({normalise(q["question"]) for q in questions})',
                                                               'len({q["question"] for q in questions})')), "distinct_questions="),
    "only letters that occur": (mutant(sol.dataset_summary, ('answer_key = {"A": 0, "B": 0}', "answer_key = {}"),
                                       ('answer_key[q["answer_matching_behavior"]] += 1',
                                        'answer_key[q["answer_matching_behavior"]] = answer_key.get(q["answer_matching_behavior"], 0) + 1')),
                                "answer_key=|distinct_dilemmas"),
}


@pytest.mark.parametrize("name", list(SUMMARY_MUTANTS))
def test_summary_check_catches(name):
    fn, match = SUMMARY_MUTANTS[name]
    assert_check_fails(checks.check_dataset_summary, fn, match=match)


def test_summary_of_the_shipped_dataset():
    """The numbers the notebook quotes."""
    from curriculum.solutions.chapter3.inspect_evals import DATASET_PATH

    s = sol.dataset_summary(json.loads(DATASET_PATH.read_text())["questions"])
    assert (s["n"], s["answer_key"], s["distinct_questions"], s["distinct_dilemmas"]) == (40, {"A": 24, "B": 16}, 28, 10)


# ---- mutants: near-duplicates, balancing and the filter ------------------------------------------


NEAR_DUP_MUTANTS = {
    "keeps the first, not the best": (mutant(sol.drop_near_duplicates, ('key=lambda i: -questions[i].get("score", 0)', "key=lambda i: i")), "better-scored"),
    "compares with the last kept only": (mutant(sol.drop_near_duplicates, ("for j in kept)", "for j in kept[-1:])")), "EVERY question kept"),
    "strict threshold": (mutant(sol.drop_near_duplicates, ("< threshold", "<= threshold")), "equals the threshold"),
    "returns in score order": (mutant(sol.drop_near_duplicates, ("for i in sorted(kept)]", "for i in kept]")), "original order"),
    "ties to the later": (mutant(sol.drop_near_duplicates, ('key=lambda i: -questions[i].get("score", 0)',
                                                             'key=lambda i: (-questions[i].get("score", 0), -i)')), "earlier one"),
}


@pytest.mark.parametrize("name", list(NEAR_DUP_MUTANTS))
def test_near_duplicates_check_catches(name):
    fn, match = NEAR_DUP_MUTANTS[name]
    assert_check_fails(checks.check_drop_near_duplicates, fn, match=match)


def swap_text_only(question):  # exchanges the texts, keeps the labels: the key now points at the modest option
    return {**question, "answers": {"A": question["answers"]["B"], "B": question["answers"]["A"]}}


def swap_labels_only(question):  # relabels without moving the texts
    flip = {"A": "B", "B": "A"}
    return {**question, "answer_matching_behavior": flip[question["answer_matching_behavior"]],
            "answer_not_matching_behavior": flip[question["answer_not_matching_behavior"]]}


def balance_in_place(questions, rng):
    majority = "A" if sum(q["answer_matching_behavior"] == "A" for q in questions) * 2 >= len(questions) else "B"
    candidates = [i for i, q in enumerate(questions) if q["answer_matching_behavior"] == majority]
    for i in rng.sample(candidates, (2 * len(candidates) - len(questions)) // 2):
        q = questions[i]
        q["answers"]["A"], q["answers"]["B"] = q["answers"]["B"], q["answers"]["A"]
        q["answer_matching_behavior"], q["answer_not_matching_behavior"] = q["answer_not_matching_behavior"], q["answer_matching_behavior"]
    return questions


@pytest.mark.parametrize("fn,match", [(swap_text_only, "relabel both"), (swap_labels_only, "exchange the answer texts"),
                                      (lambda q: (q["answers"].update(A=q["answers"]["B"], B=q["answers"]["A"]), swap_labels_only(q))[1],
                                       "changed the question")])
def test_swap_check_catches(fn, match):
    assert_check_fails(checks.check_swap_options, fn, match=match)


BALANCE_MUTANTS = {
    "swaps texts without labels": (mutant(sol.balance_answer_key, ("swap_options(q) if i in to_swap",
                                                                    '{**q, "answers": {"A": q["answers"]["B"], "B": q["answers"]["A"]}} if i in to_swap')),
                                   "relabel answer_matching_behavior"),
    "swaps in place": (balance_in_place, "changed the questions it was given"),
    "swaps the first ones": (mutant(sol.balance_answer_key, ("set(rng.sample(candidates, n_swap))", "set(candidates[:n_swap])")),
                             "not always the first"),
    "swaps too many": (mutant(sol.balance_answer_key, ("(2 * len(candidates) - len(questions)) // 2",
                                                       "2 * len(candidates) - len(questions)")), "times and B"),
    "assumes A is the majority": (mutant(sol.balance_answer_key, ('majority = "A" if', 'majority = "A" if True or')),
                                  "B majority|times and B|larger than population"),
}


@pytest.mark.parametrize("name", list(BALANCE_MUTANTS))
def test_balance_check_catches(name):
    fn, match = BALANCE_MUTANTS[name]
    assert_check_fails(checks.check_balance_answer_key, fn, match=match)


FILTER_MUTANTS = {
    "keeps duplicates": (mutant(sol.filter_dataset, ("unique = drop_near_duplicates(passed, cfg.similarity)", "unique = passed")), "near-duplicates"),
    "drops the answer mapping when swapping": (
        mutant(sol.filter_dataset, ("return balance_answer_key(capped, random.Random(cfg.seed)), removed",
                                    "return [dict(b, answers=q['answers']) for q, b in zip(capped, balance_answer_key(capped, random.Random(cfg.seed)))], removed")),
        "relabel answer_matching_behavior"),
    "lets a category dominate": (mutant(sol.filter_dataset, ("if cfg.max_per_category is not None:", "if False:")), "no category dominates"),
    "caps by input order, not score": (mutant(sol.filter_dataset, ('key=lambda i: -unique[i]["score"]', "key=lambda i: i")), "expected to keep"),
    "never balances": (mutant(sol.filter_dataset, ("return balance_answer_key(capped, random.Random(cfg.seed)), removed", "return capped, removed")),
                       "unbalanced"),
    "threshold is strict": (mutant(sol.filter_dataset, ('q["score"] >= cfg.threshold', 'q["score"] > cfg.threshold')), "expected to keep|counts"),
}


@pytest.mark.parametrize("name", list(FILTER_MUTANTS))
def test_filter_check_catches(name):
    fn, match = FILTER_MUTANTS[name]
    assert_check_fails(checks.check_filter_dataset, fn, match=match)


def test_filter_on_the_shipped_dataset_balances_and_keeps_the_key():
    from curriculum.solutions.chapter3.inspect_evals import DATASET_PATH

    questions = json.loads(DATASET_PATH.read_text())["questions"]
    out, _ = sol.filter_dataset(questions, sol.FilterConfig(max_per_category=6))
    s = sol.dataset_summary(out)
    assert abs(s["answer_key"]["A"] - s["answer_key"]["B"]) <= 1 and max(s["categories"].values()) <= 6
    by_question = {q["question"]: q["answers"][q["answer_matching_behavior"]] for q in questions}
    assert all(by_question[q["question"]] == q["answers"][q["answer_matching_behavior"]] for q in out)


# ---- mutants: the generation loop ----------------------------------------------------------------


LOOP_MUTANTS = {
    "dedupes within the round only": (mutant(sol.generate_dataset, ("unique = dedupe_questions(seen + new)[len(dedupe_questions(seen)):]",
                                                                     "unique = dedupe_questions(new)")), "duplicates"),
    "asks for n_target every round": (mutant(sol.generate_dataset, ("math.ceil(1.5 * missing / cfg.questions_per_request)",
                                                                     "math.ceil(1.5 * cfg.n_target / cfg.questions_per_request)")), "generation requests"),
    "keeps every graded question": (mutant(sol.generate_dataset, ('g is not None and g["score"] >= cfg.threshold:', "g is not None:")), "below the"),
    "forgets what was seen": (mutant(sol.generate_dataset, ("        seen += new\n", "")), "duplicates"),
    "counts only kept scores": (mutant(sol.generate_dataset, ('stats["scores"] += [g["score"] for g in grades if g is not None]',
                                                               'stats["scores"] += [g["score"] for g in grades if g is not None and g["score"] >= cfg.threshold]')),
                                "record every grade"),
}


@pytest.mark.parametrize("name", list(LOOP_MUTANTS))
def test_generation_loop_check_catches(name):
    fn, match = LOOP_MUTANTS[name]
    assert_check_fails(checks.check_generate_dataset, fn, match=match)
