"""Section 3.1 beyond the automatic checks: plausible learner bugs each check must catch, the no-loss
property under injected failures, concurrency, and the provenance file."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import openai
import pytest

from curriculum.solutions.chapter3 import dataset_generation as sol
from curriculum.checks.chapter3 import dataset_generation as checks
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.openai_server import Failures, LoopbackServer, loopback_client
from tests.support import assert_check_fails

# ---- mutants: generate_structured_response -------------------------------------------------


def structured_without_schema(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    r = client.chat.completions.create(model=model, messages=messages, temperature=temperature)
    return json.loads(r.choices[0].message.content)


def structured_returns_pydantic(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    r = client.chat.completions.parse(model=model, messages=messages, response_format=response_format, temperature=temperature)
    return r.choices[0].message.parsed


def structured_ignores_temperature(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    r = client.chat.completions.parse(model=model, messages=messages, response_format=response_format)
    return r.choices[0].message.parsed.model_dump()


def structured_drops_system(client, model, messages, response_format, temperature=1.0, max_tokens=2000):
    user = [m for m in messages if m["role"] == "user"]
    r = client.chat.completions.parse(model=model, messages=user, response_format=response_format, temperature=temperature)
    return r.choices[0].message.parsed.model_dump()


@pytest.mark.parametrize("mutant", [structured_without_schema, structured_returns_pydantic, structured_ignores_temperature, structured_drops_system])
def test_structured_response_check_catches(mutant):
    assert_check_fails(checks.check_generate_structured_response, mutant)


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
    "exponent starts at 1": _retry_mutant(lambda e, k, base, cap: _exp(e, k + 1, base, cap)),
    "retries everything (400 too)": _retry_mutant(_exp, retryable=Exception),
    "swallows the final error": _retry_mutant(_exp, swallow=True),
    "one retry too many": _retry_mutant(_exp, off_by_one=True),
}


@pytest.mark.parametrize("name", list(RETRY_MUTANTS))
def test_retry_check_catches(name):
    assert_check_fails(checks.check_retry_with_backoff, RETRY_MUTANTS[name])


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
        ask = lambda i: client.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])  # noqa: E731
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

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CURRICULUM_OFFLINE": "1"}


def _small_cfg(**kw) -> "sol.GenerationConfig":
    return sol.GenerationConfig(**{**dict(model="m", n_target=16, questions_per_request=4, max_workers=4, seed=5), **kw})


def test_half_the_requests_failing_loses_nothing_and_a_rerun_sends_only_the_failed(tmp_path):
    prompts = sol.GenPrompts(few_shot_examples=sol.load_few_shot_examples())
    ckpt = tmp_path / "gen.jsonl"
    give_up_fast = lambda f: sol.retry_with_backoff(f, max_retries=1, base_delay=0.001)  # noqa: E731
    with LoopbackServer(mcq_responder, failures=Failures(rate=0.5, kinds=["429", "500"], retry_after=0.001, seed=2)) as server:
        with pytest.warns(UserWarning, match="requests failed after all their retries"):
            first, stats = sol.generate_dataset(loopback_client(server), _small_cfg(), prompts, retry=give_up_fast,
                                                checkpoint=ckpt)
    failed = stats["failed"]["generate"] + stats["failed"]["grade"]
    assert failed > 0 and len(first) > 0, f"the run must go on past failed items: {stats}"
    lines = [json.loads(line) for line in ckpt.read_text().splitlines()]
    assert sum(r["type"] == "failed" for r in lines) == failed, "every failed item is recorded"
    done = sum(r["type"] in ("generated", "graded") for r in lines)

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
