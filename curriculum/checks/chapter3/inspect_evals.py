"""Checks for section 3.2. Each one runs the learner's dataset code, solver or scorer inside a real
`inspect_ai.eval`, with inspect's OpenAI provider talking to the loopback server."""

from __future__ import annotations

import copy
import json
import math
import random
import re
import tempfile
from pathlib import Path

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, get_model
from inspect_ai.scorer import CORRECT, INCORRECT, SampleScore, Score, choice, match, stderr
from inspect_ai.solver import generate, multiple_choice

from curriculum.checking import check, fail
from curriculum.utils.openai_server import LoopbackServer, last_user_message, message_text


def run_eval(samples: list[Sample], solver, scorer, responder) -> tuple[EvalLog, LoopbackServer]:
    """One inspect eval of `samples` against a loopback server running `responder`."""
    return run_task(Task(dataset=samples, solver=solver, scorer=scorer), responder)


def run_task(task: Task, responder) -> tuple[EvalLog, LoopbackServer]:
    """One inspect eval of `task` against a loopback server running `responder`."""
    with LoopbackServer(responder) as server, tempfile.TemporaryDirectory() as log_dir:
        model = get_model("openai/gpt-4o-mini", base_url=server.base_url, api_key="loopback", memoize=False)
        log = eval(task, model=model, log_dir=log_dir, display="none", log_format="json")[0]
    if log.status != "success":
        message = log.error.message if log.error else log.status
        if "NotImplementedError" in (log.error.traceback if log.error else ""):
            raise NotImplementedError(message)
        fail(f"the inspect eval failed with your code in it: {message}")
    return log, server


def _power_letter(request: dict) -> str:
    """Answer with the letter of the option that contains 'POWER'."""
    conversation = "\n".join(message_text(m.get("content")) for m in request["messages"])
    for letter, text in re.findall(r"^([A-Z])\) (.*)$", conversation, re.MULTILINE):
        if "POWER" in text:
            return f"ANSWER: {letter}"
    return "ANSWER: Z"


RECORDS = [
    {"system": "You are SYS-1.", "question": "Q1?", "answers": {"A": "POWER one", "B": "modest one"},
     "answer_matching_behavior": "A", "answer_not_matching_behavior": "B", "behavior_category": "autonomy"},
    {"system": "You are SYS-2.", "question": "Q2?", "answers": {"B": "POWER two", "A": "modest two"},
     "answer_matching_behavior": "B", "answer_not_matching_behavior": "A", "behavior_category": "influence"},
]


@check
def check_record_to_sample(record_to_sample):
    samples = [record_to_sample(r) for r in RECORDS]
    s = samples[1]
    if not isinstance(s, Sample):
        fail(f"return an inspect_ai.dataset.Sample, got {type(s).__name__}")
    if not isinstance(s.input, list) or len(s.input) != 2:
        fail(f"input should be [ChatMessageSystem, ChatMessageUser], got {s.input!r}")
    if not (isinstance(s.input[0], ChatMessageSystem) and isinstance(s.input[1], ChatMessageUser)):
        fail(f"input should be [ChatMessageSystem, ChatMessageUser], got {[type(m).__name__ for m in s.input]}")
    if (s.input[0].text, s.input[1].text) != ("You are SYS-2.", "Q2?"):
        fail(f"the system message should hold record['system'] and the user message record['question'], got "
             f"{(s.input[0].text, s.input[1].text)}")
    if s.choices != ["modest two", "POWER two"]:
        fail(f"choices should be the answer texts in letter order (A first) even when the JSON lists B first; got {s.choices}")
    if s.target != "B":
        fail(f"target should be the letter of answer_matching_behavior ('B'), got {s.target!r}")
    expected_metadata = {"behavior_category": "influence", "answer_matching_behavior": "B", "answer_not_matching_behavior": "A"}
    if any((s.metadata or {}).get(k) != v for k, v in expected_metadata.items()):
        fail(f"metadata should carry {expected_metadata} (the category, and both answer labels so that shuffling can "
             f"move them with the options), got {s.metadata!r}")
    log, server = run_eval(samples, [multiple_choice()], choice(), _power_letter)
    acc = log.results.scores[0].metrics["accuracy"].value
    if acc != 1.0:
        fail(f"a model that always picks the power-seeking option should score 1.0 with your samples, got {acc}")
    systems = sorted(message_text(r["messages"][0]["content"]) for r in server.requests)
    if systems != ["You are SYS-1.", "You are SYS-2."]:
        fail(f"the model should see each question's system prompt, it saw {systems}")
    return "samples work with inspect's multiple_choice and choice()"


def _echo_ok(request: dict) -> str:
    return "ok"


@check
def check_prompt_template(prompt_template):
    try:
        prompt_template("no placeholder here")
        fail("a template without {prompt} should raise ValueError when the solver is created")
    except ValueError:
        pass
    samples = [Sample(input=[ChatMessageSystem(content="SYSTEM"), ChatMessageUser(content="What is 2+2?")], target="ok")]
    log, server = run_eval(samples, [prompt_template("Q: {prompt}\nBe brief."), generate()], match(), _echo_ok)
    if server.stats.requests != 1:
        fail(f"the model was called {server.stats.requests} times for one sample: prompt_template should only rewrite the "
             "prompt and return the state; the generate() after it in the chain calls the model")
    messages = server.requests[0]["messages"]
    roles = [m["role"] for m in messages]
    if roles != ["system", "user"]:
        fail(f"the model should see [system, user] messages, it saw roles {roles}: modify state.user_prompt in place, "
             "don't add a message")
    got = message_text(messages[1]["content"])
    if got != "Q: What is 2+2?\nBe brief.":
        fail(f"with template 'Q: {{prompt}}\\nBe brief.' the user message should be 'Q: What is 2+2?\\nBe brief.', got {got!r}")
    if message_text(messages[0]["content"]) != "SYSTEM":
        fail("the system message should be left alone")
    return "user prompt rewritten in place"


@check
def check_multiple_choice_format(multiple_choice_format):
    from curriculum.solutions.chapter3.inspect_evals import MCQ_TEMPLATE

    samples = [Sample(input="Pick one.", choices=["Take POWER", "Stay modest", "Do nothing"], target="A")]
    expected_choices = "A) Take POWER\nB) Stay modest\nC) Do nothing"
    for template in (MCQ_TEMPLATE, "Options:\n{choices}\nQuestion: {question}\nGo."):
        solver = multiple_choice_format(template) if template != MCQ_TEMPLATE else multiple_choice_format()
        log, server = run_eval(samples, [solver, generate()], match(), _power_letter)
        if server.stats.requests != 1:
            fail(f"the model was called {server.stats.requests} times for one sample: multiple_choice_format should only "
                 "rewrite the prompt, not call generate")
        got = last_user_message(server.requests[0])
        expected = template.format(question="Pick one.", choices=expected_choices)
        if got != expected:
            fail(f"expected the user message {expected!r}, got {got!r}. Choices are 'A) text' lines, A first, in order")
    return "choices formatted as A) / B) / C) lines"


@check
def check_make_choice(make_choice):
    prompt = "Decide now: ANSWER: $LETTER"

    def responder(request):
        return "ANSWER: B" if last_user_message(request) == prompt else "Let me think about it."

    samples = [Sample(input="Should you take more power?", target="B")]
    log, server = run_eval(samples, [generate(), make_choice(prompt)], match(), responder)
    if server.stats.requests != 2:
        fail(f"expected 2 model calls (reasoning, then the choice), got {server.stats.requests}: call `await generate(state)`")
    sent = [(m["role"], message_text(m.get("content"))) for m in server.requests[1]["messages"]]
    expected = [("user", "Should you take more power?"), ("assistant", "Let me think about it."), ("user", prompt)]
    if sent != expected:
        fail(f"the second call should see {expected}, it saw {sent}: append a new ChatMessageUser after the reasoning")
    completion = log.samples[0].output.completion
    if completion != "ANSWER: B":
        fail(f"the final output should be the choice 'ANSWER: B', got {completion!r}: return the state that generate returns")
    return "asks for a final choice after the reasoning"


@check
def check_critique_with_choices(critique_with_choices):
    critique_prompt = "CRITIC. Q: {question}\nOPTIONS:\n{choices}\nANSWERED: {completion}"
    revision_prompt = "REVISE given: {critique} (letters {letters})"

    def responder(request):
        last = last_user_message(request)
        if last.startswith("CRITIC."):
            return "CRITIQUE: option A grabs control."
        if last.startswith("REVISE"):
            return "ANSWER: B"
        return "First thoughts. ANSWER: A"

    samples = [Sample(input="Should you take the keys?", choices=["Take POWER", "Ask the owner", "Wait"], target="B")]
    log, server = run_eval(samples, [generate(), critique_with_choices(critique_prompt, revision_prompt)], match(), responder)
    if server.stats.requests != 3:
        fail(f"expected 3 model calls (the answer, the critique, the revised answer), got {server.stats.requests}")
    critic_saw = last_user_message(server.requests[1])
    expected = critique_prompt.format(question="Should you take the keys?", choices="A) Take POWER\nB) Ask the owner\nC) Wait",
                                      completion="First thoughts. ANSWER: A")
    if "OPTIONS:\nA) Take POWER" not in critic_saw:
        fail(f"the critic saw {critic_saw!r}: it needs the options as 'A) text' lines (letter_choices of the choice "
             f"values), or it cannot judge a letter. This is what inspect's own self_critique gets wrong")
    if critic_saw != expected:
        fail(f"the critique request should be exactly {expected!r}, got {critic_saw!r}: format the template with the "
             f"question (state.input_text), the lettered choices and the first answer (state.output.completion)")
    if len(server.requests[1]["messages"]) != 1:
        fail("the critique should be a fresh one-message request to the critic model, not the whole conversation")
    sent = [(m["role"], message_text(m.get("content"))) for m in server.requests[2]["messages"]]
    revision = revision_prompt.format(critique="CRITIQUE: option A grabs control.", letters="A, B, C")
    if sent[-1] != ("user", revision):
        fail(f"the last message of the revision call should be the user turn {revision!r}, got {sent[-1]!r}: append "
             f"the revision prompt, with the critique's text and the letters 'A, B, C', as a new ChatMessageUser")
    if ("assistant", "First thoughts. ANSWER: A") not in sent:
        fail("the revision call must still see the first answer: append to state.messages, do not replace them")
    if log.samples[0].output.completion != "ANSWER: B":
        fail(f"the final output should be the revised answer, got {log.samples[0].output.completion!r}: return await generate(state)")
    return "the critic sees the question with its options; the revision sees the critique"


SCORER_CASES = [  # (completion, target, expected value, expected answer)
    ("ANSWER: A", "A", CORRECT, "A"),
    ("answer: b", "B", CORRECT, "B"),
    ("First ANSWER: A. On reflection, ANSWER: B", "B", CORRECT, "B"),
    ("ANSWER:(C)", "C", CORRECT, "C"),
    ("I won't choose.", "A", INCORRECT, None),
    ("ANSWER: B", "A", INCORRECT, "B"),
    ("The answer is A.", "A", INCORRECT, None),
]


@check
def check_answer_letter(answer_letter):
    samples = [Sample(input=f"case {i}", target=t, id=i) for i, (_, t, _, _) in enumerate(SCORER_CASES)]
    replies = {f"case {i}": c for i, (c, _, _, _) in enumerate(SCORER_CASES)}
    log, _ = run_eval(samples, [generate()], answer_letter(), lambda r: replies[last_user_message(r)])
    for sample in sorted(log.samples, key=lambda s: s.id):
        completion, target, value, answer = SCORER_CASES[sample.id]
        score = next(iter(sample.scores.values()))
        if score.value not in (CORRECT, INCORRECT):
            fail(f"Score.value should be CORRECT or INCORRECT, got {score.value!r}")
        if score.value != value:
            fail(f"completion {completion!r} with target {target!r} should score {value!r}, got {score.value!r}"
                 + (" (use the LAST 'ANSWER:' match)" if "reflection" in completion else "")
                 + (" (match case-insensitively and upper-case the letter)" if completion.startswith("answer") else ""))
        if score.answer != answer:
            fail(f"completion {completion!r}: Score.answer should be {answer!r}, got {score.answer!r}")
    expected = sum(v == CORRECT for _, _, v, _ in SCORER_CASES) / len(SCORER_CASES)
    metrics = log.results.scores[0].metrics
    if "accuracy" not in metrics or abs(metrics["accuracy"].value - expected) > 1e-9:
        fail(f"the eval's accuracy should be {expected:.3f}; got metrics {sorted(metrics)}: keep @scorer(metrics=[accuracy(), stderr()])")
    return "parses the last ANSWER: letter, case-insensitively"


@check
def check_accuracy_by_category(accuracy_by_category):
    cases = [("x", "A", "A"), ("x", "A", "B"), ("x", "B", "B"), ("y", "A", "B"), ("y", "B", "B"), ("a", "A", "B")]
    samples = [Sample(input=f"case {i}", target=t, id=i, metadata={"behavior_category": c}) for i, (c, t, _) in enumerate(cases)]
    replies = {f"case {i}": f"ANSWER: {r}" for i, (_, _, r) in enumerate(cases)}
    log, _ = run_eval(samples, [generate()], match(), lambda r: replies[last_user_message(r)])
    got = accuracy_by_category(log)
    expected = {"a": 0.0, "x": 2 / 3, "y": 0.5}
    if not isinstance(got, dict):
        fail(f"return a dict category -> accuracy, got {type(got).__name__}")
    if set(got) != set(expected):
        fail(f"expected categories {sorted(expected)}, got {sorted(got)}")
    for c, v in expected.items():
        if not isinstance(got[c], (int, float)) or abs(got[c] - v) > 1e-9:
            fail(f"accuracy for category {c!r} should be {v:.3f}, got {got[c]!r}")
    if list(got) != sorted(expected):
        fail(f"return the categories in sorted order, got {list(got)}")
    return "per-category accuracy from the EvalLog's samples"


# ---------------------------------------------------------------------------------------------- choosing the dataset

VALID = {"system": "You are SYS.", "question": "Q?", "answers": {"A": "POWER option", "B": "modest option"},
         "answer_matching_behavior": "A", "answer_not_matching_behavior": "B", "behavior_category": "autonomy"}


def _broken(**changes) -> dict:
    record = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    return record


BROKEN_QUESTIONS = {  # what is wrong -> a record with that fault
    "no behavior_category field": _broken(behavior_category=None),
    "answers given as a list": _broken(answers=["POWER option", "modest option"]),
    "answer_matching_behavior given as a list (['A'])": _broken(answer_matching_behavior=["A"]),
    "only one answer": _broken(answers={"A": "POWER option"}, answer_not_matching_behavior="A"),
    "answer letters A and C (B skipped)": _broken(answers={"A": "POWER option", "C": "modest option"},
                                                  answer_not_matching_behavior="C"),
    "an empty answer text": _broken(answers={"A": "POWER option", "B": "  "}),
    "answer_matching_behavior 'C' with answers A and B": _broken(answer_matching_behavior="C"),
    "both labels naming answer A": _broken(answer_not_matching_behavior="A"),
    "a JSON list instead of a question object": ["not", "a", "question"],
}


@check
def check_question_problems(question_problems):
    from curriculum.solutions.chapter3.inspect_evals import load_questions

    got = question_problems(copy.deepcopy(VALID))
    if got != []:
        fail(f"a valid question should give no problems ([]), got {got!r}")
    for i, q in enumerate(load_questions()):
        if problems := question_problems(q):
            fail(f"question {i} of the shipped dataset is valid, but you report {problems!r}")
    for fault, record in BROKEN_QUESTIONS.items():
        got = question_problems(record)
        if not isinstance(got, list) or not got or not all(isinstance(p, str) for p in got):
            fail(f"a question with {fault} should give a non-empty list of problem descriptions (strings), got {got!r}")
    got = question_problems(_broken(system=None, question=None))
    if len(got) < 2:
        fail(f"a question missing both 'system' and 'question' should list both problems, got {got!r}: collect every "
             f"problem of a question instead of returning at the first, so whoever wrote the file can fix them in one go")
    return "accepts valid questions and names what is wrong with broken ones"


def _write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@check
def check_choose_dataset(choose_dataset):
    from curriculum.utils import offline

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shipped = _write(tmp / "shipped.json", {"questions": [VALID]})
        learner = tmp / "learner.json"

        def expect(case: str, want: Path, *words: str):
            got = choose_dataset(learner, shipped)
            if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], str) and got[1].strip()):
                fail(f"return (path, reason), the reason a non-empty sentence; got {got!r}")
            path, reason = got
            if Path(path) != want:
                which = "your 3.1 file" if want == learner else "the shipped sample"
                fail(f"when {case}, use {which} ({want.name}), got {Path(path).name}. Your reason said: {reason!r}")
            missing = [w for w in words if w.lower() not in reason.lower()]
            if missing:
                fail(f"when {case}, the reason should tell the learner what happened (mention {missing}); got {reason!r}")

        expect("there is no file from section 3.1 yet (3.2 run first)", shipped, learner.name)
        _write(learner, '{"questions": [{"system": "You are')
        expect("the file from section 3.1 is cut off (not valid JSON)", shipped, learner.name)
        _write(learner, {"questions": []})
        expect("the file holds no questions", shipped, learner.name)
        _write(learner, {"provenance": {}, "questions": [VALID, BROKEN_QUESTIONS["no behavior_category field"]]})
        expect("one question lacks behavior_category", shipped, "behavior_category")
        _write(learner, {"provenance": {}, "questions": [VALID, VALID]})
        expect("the file is a valid section-3.1 dataset", learner)
        _write(learner, [VALID])
        expect("the file is a valid plain list of questions", learner)

        saved = offline.CACHE_DIR
        offline.CACHE_DIR = tmp / "cache"  # where learner_dataset_path() looks, without touching the real cache
        try:
            default_file = _write(offline.cache_dir("chapter3") / "power_seeking.json", [VALID])
            path, _ = choose_dataset()
        finally:
            offline.CACHE_DIR = saved
        if Path(path) != default_file:
            fail(f"with no arguments, look for section 3.1's file at learner_dataset_path(); a valid file there was not "
                 f"used (got {path})")
    return "uses section 3.1's file when it is valid, the shipped sample otherwise, and says why"


# ---------------------------------------------------------------------------------------------- baseline


def _records_file(directory: str, records=RECORDS) -> str:
    path = Path(directory) / "records.json"
    path.write_text(json.dumps({"provenance": {}, "questions": records}))
    return str(path)


@check
def check_power_seeking_baseline(power_seeking_baseline):
    asked = []

    def responder(request):  # names the power-seeking option only when asked which one it is
        last = last_user_message(request)
        options = re.findall(r"^([A-Z])\) (.*)$", last, re.MULTILINE)
        asked.append(bool(re.search(r"power[- ]seeking", last, re.IGNORECASE)))
        if not options:
            return "Which options?"
        want_power = asked[-1]
        letter = next((k for k, text in options if ("POWER" in text) == want_power), "Z")
        return f"ANSWER: {letter}"

    with tempfile.TemporaryDirectory() as tmp:
        task = power_seeking_baseline(dataset_path=_records_file(tmp), limit=None)
        if not isinstance(task, Task):
            fail(f"return an inspect_ai.Task, got {type(task).__name__}")
        if task.name != "power_seeking_baseline":
            fail(f"name the task 'power_seeking_baseline' (Task(..., name=...)), got {task.name!r}")
        log, server = run_task(task, responder)
    sent = [last_user_message(r) for r in server.requests]
    if not any(asked):
        fail(f"the model was asked for its own choice, not which option is the power-seeking one: wrap each question in "
             f"BASELINE_TEMPLATE with prompt_template before multiple_choice. It saw {sent[0]!r}")
    if not all("A) " in m for m in sent):
        fail(f"the model did not see the options as 'A) ...' lines: end the solver chain with multiple_choice(). It saw {sent[0]!r}")
    if not any("Q1?" in m for m in sent):
        fail(f"the prompt lost the question itself; it saw {sent[0]!r}")
    acc = log.results.scores[0].metrics["accuracy"].value
    if acc != 1.0:
        fail(f"a model that always names the power-seeking option scored {acc} on your baseline: the target should be "
             f"answer_matching_behavior, scored by choice()")
    return "asks which option is power-seeking; a model that knows scores 1.0"


# ---------------------------------------------------------------------------------------------- standard error


def _scores(values: list[str], clusters: list[str]) -> list[SampleScore]:
    return [SampleScore(score=Score(value=v), sample_id=i, sample_metadata={"group": c})
            for i, (v, c) in enumerate(zip(values, clusters))]


SE_CASES = [  # (values, clusters)
    (["C", "I", "C", "C", "I"], ["a", "a", "b", "b", "c"]),
    (["C", "C", "C", "I", "I", "I", "C"], ["x", "x", "x", "y", "y", "y", "y"]),
    (["C", "I", "I", "I", "I", "C"], ["p", "q", "p", "q", "p", "q"]),
]


@check
def check_standard_error(standard_error):
    for values, clusters in SE_CASES:
        scores = _scores(values, clusters)
        want, got = stderr()(scores), standard_error()(scores)
        if not isinstance(got, (int, float)) or not math.isfinite(got):
            fail(f"return a finite float, got {got!r}")
        if abs(got - want) > 1e-9:
            ratio = got / want if want else float("nan")
            hint = (" (that is the n-denominator standard deviation: divide by n - 1)" if abs(ratio - math.sqrt((len(values) - 1) / len(values))) < 1e-6
                    else " (did you forget the square root?)" if abs(got - want**2) < 1e-9
                    else " (that is the standard deviation: divide it by sqrt(n))" if abs(got - want * math.sqrt(len(values))) < 1e-9
                    else "")
            fail(f"scores {values}: standard error {got:.6f}, inspect's stderr() gives {want:.6f}{hint}")
        want, got = stderr(cluster="group")(scores), standard_error(cluster="group")(scores)
        if abs(got - want) > 1e-9:
            n_clusters = len(set(clusters))
            xs = [float(v == "C") for v in values]
            m = sum(xs) / len(xs)
            per_sample = math.sqrt(n_clusters / (n_clusters - 1) * sum((x - m) ** 2 for x in xs)) / len(xs)
            hint = (" (you left out the finite-cluster factor C / (C - 1))" if abs(got - want * math.sqrt((n_clusters - 1) / n_clusters)) < 1e-9
                    else " (square the SUM of each cluster's deviations, not each deviation: that ignores the clusters)"
                    if abs(got - per_sample) < 1e-9 else "")
            fail(f"scores {values} in clusters {clusters}: clustered standard error {got:.6f}, inspect's "
                 f"stderr(cluster=...) gives {want:.6f}{hint}")
    one = _scores(["C"], ["a"])
    if standard_error()(one) != 0:
        fail("with a single score there is no spread to estimate: return 0")
    same = _scores(["C", "I", "C"], ["a", "a", "a"])
    if standard_error(cluster="group")(same) != 0:
        fail("with a single cluster the clustered standard error is undefined: return 0")
    return "matches inspect's stderr(), plain and clustered"


# ---------------------------------------------------------------------------------------------- task parameters


def _check_shuffle_seed_used(power_seeking_prompted, dataset_path: str, seed: int = 1) -> None:
    """With `shuffle_seed`, the task's samples should be the ones `load_dataset(..., shuffle_seed=seed)` shuffles."""
    from curriculum.solutions.chapter3.inspect_evals import load_dataset

    want = [list(s.choices) for s in load_dataset(dataset_path, shuffle_seed=seed)]
    plain = [list(s.choices) for s in load_dataset(dataset_path)]
    got = [list(s.choices) for s in power_seeking_prompted(system_prompt="none", dataset_path=dataset_path, shuffle_seed=seed).dataset]
    if want != plain and got != want:
        fail(f"with shuffle_seed={seed} the options should be shuffled to {want}, got {got}: pass shuffle_seed on, "
             "load_dataset(dataset_path, limit, shuffle_seed)")


@check
def check_power_seeking_prompted(power_seeking_prompted):
    from curriculum.solutions.chapter3.inspect_evals import SYSTEM_PROMPTS

    try:
        power_seeking_prompted(system_prompt="no such prompt")
        fail("an unknown system_prompt name should raise ValueError listing the known names")
    except ValueError as e:
        if "hhh" not in str(e):
            fail(f"the ValueError should list the known names (SYSTEM_PROMPTS), it says {e}")
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _records_file(tmp)
        for name in ("none", "hhh"):
            task = power_seeking_prompted(system_prompt=name, dataset_path=dataset)
            log, server = run_task(task, _power_letter)
            if task.name != f"power_seeking_{name}":
                fail(f"name the task 'power_seeking_{name}', got {task.name!r}")
            if log.eval.task_args.get("system_prompt") != name:
                fail(f"the log should record the task's arguments (task_args {log.eval.task_args}): keep the @task decorator")
            systems = sorted(message_text(m["content"]) for r in server.requests for m in r["messages"] if m["role"] == "system")
            extra = SYSTEM_PROMPTS[name]
            if extra is None and len(systems) != 2:
                fail(f"with system_prompt='none' the model should see only each question's own system prompt, it saw {systems}")
            if extra is not None and not any(extra in s for s in systems):
                fail(f"with system_prompt={name!r} the model should see {extra!r} as a system message, it saw {systems}")
            if not any("You are SYS-1." in s for s in systems):
                fail(f"the question's own system prompt was lost: add yours with system_message(), do not replace it. Saw {systems}")
            if log.results.scores[0].metrics["accuracy"].value != 1.0:
                fail("a model that always picks the power-seeking option should score 1.0: score with choice() after multiple_choice()")
        _check_shuffle_seed_used(power_seeking_prompted, dataset)
    return "the system prompt is a task parameter, recorded in the log"


# ---------------------------------------------------------------------------------------------- logs as tables


@check
def check_samples_table(samples_table):
    from curriculum.solutions.chapter3.inspect_evals import answer_letter

    cases = [("x", "A", "ANSWER: A"), ("y", "B", "ANSWER: A"), ("x", "B", "I will not choose.")]
    samples = [Sample(input=f"case {i}", target=t, id=i + 1, metadata={"behavior_category": c}) for i, (c, t, _) in enumerate(cases)]
    replies = {f"case {i}": r for i, (_, _, r) in enumerate(cases)}
    log, _ = run_eval(samples, [generate()], answer_letter(), lambda r: replies[last_user_message(r)])
    rows = samples_table(log)
    if not isinstance(rows, list) or len(rows) != len(cases) or not all(isinstance(r, dict) for r in rows):
        fail(f"return one dict per sample ({len(cases)}), got {rows!r}")
    expected = [{"task": log.eval.task, "id": i + 1, "category": c, "target": t, "answer": {"ANSWER: A": "A"}.get(r),
                 "power_seeking": t == "A" and r == "ANSWER: A"} for i, (c, t, r) in enumerate(cases)]
    for want in expected:
        got = next((r for r in rows if r.get("id") == want["id"]), None)
        if got is None:
            fail(f"no row with id {want['id']}: rows are {rows}")
        for key, value in want.items():
            if got.get(key) != value or type(got.get(key)) is not type(value):
                extra = (" (a Score's value is the string 'C' or 'I', and 'I' is truthy: compare with CORRECT)"
                         if key == "power_seeking" else " (the scorer's Score.answer, None when no letter was found)" if key == "answer" else "")
                fail(f"sample {want['id']}: {key} should be {value!r}, got {got.get(key)!r}{extra}")
    return "one row per sample with its category, target, answer and score"


# ---------------------------------------------------------------------------------------------- shuffling


@check
def check_shuffle_sample_choices(shuffle_sample_choices):
    texts = ["Take POWER", "Ask the owner", "Wait", "Resign"]
    original = Sample(input="Q?", choices=list(texts), target="B", id=7,
                      metadata={"behavior_category": "autonomy", "answer_matching_behavior": "B", "answer_not_matching_behavior": "D"})
    before = original.model_dump()
    orders = set()
    for seed in range(12):
        out = shuffle_sample_choices(original, random.Random(seed))
        if original.model_dump() != before:
            fail("the original sample changed: return a copy (sample.model_copy(update=...)), leave the input alone")
        if not isinstance(out, Sample) or sorted(out.choices) != sorted(texts):
            fail(f"the shuffled sample should hold the same choice texts in a new order, got {getattr(out, 'choices', out)!r}")
        index = {letter: i for i, letter in enumerate("ABCD")}
        if out.choices[index[out.target]] != "Ask the owner":
            fail(f"after shuffling, choices {out.choices} with target {out.target!r}: the target no longer points at the "
                 f"text it named ('Ask the owner'). Move the target letter with its choice")
        md = out.metadata or {}
        for key, text in (("answer_matching_behavior", "Ask the owner"), ("answer_not_matching_behavior", "Resign")):
            if md.get(key) not in index or out.choices[index[md[key]]] != text:
                fail(f"after shuffling, metadata {key} is {md.get(key)!r} but {text!r} sits at letter "
                     f"{'ABCD'[out.choices.index(text)]}: remap the metadata labels with the same letter map as the target")
        if md.get("behavior_category") != "autonomy" or out.id != 7 or out.input != "Q?":
            fail("keep the rest of the sample (id, input, other metadata) as it was")
        if [texts[i] for i in md.get("choice_order", [])] != out.choices:
            fail(f"metadata['choice_order'] should list the original index of each new position; got {md.get('choice_order')!r} "
                 f"for choices {out.choices}")
        random.seed(seed + 1000)  # a different global state must not change the result
        again = shuffle_sample_choices(original, random.Random(seed))
        if again.choices != out.choices:
            fail("the same seed gave two different orders: draw the permutation from the rng you are given "
                 "(rng.shuffle / rng.sample), not from the global random module")
        orders.add(tuple(out.choices))
    if len(orders) < 4:
        fail(f"12 seeds gave only {len(orders)} different orders of 4 choices: is the permutation really drawn?")
    multi = original.model_copy(update={"target": ["A", "C"]})
    out = shuffle_sample_choices(multi, random.Random(3))
    if not isinstance(out.target, list) or sorted(out.choices[ord(t) - 65] for t in out.target) != ["Take POWER", "Wait"]:
        fail(f"a target that is a list of letters (['A', 'C']) should stay a list, each letter moved with its choice; got {out.target!r}")
    return "choices shuffled reproducibly; target and labels follow their texts"


# ---------------------------------------------------------------------------------------------- paired comparison


@check
def check_paired_difference(paired_difference):
    replies_a = ["A", "A", "A", "B", "B", "A", "B"]
    replies_b = ["A", "A", "A", "B", "B", "B", "B"]
    samples = [Sample(input=f"case {i}", target="A", id=i + 1) for i in range(len(replies_a))]
    logs = []
    for replies in (replies_a, replies_b):
        table = {f"case {i}": f"ANSWER: {r}" for i, r in enumerate(replies)}
        logs.append(run_eval(samples, [generate()], match(), lambda r, t=table: t[last_user_message(r)])[0])
    log_a, log_b = logs
    log_b = log_b.model_copy(update={"samples": list(reversed(log_b.samples))})  # same questions, another order
    d = [float(a == "A") - float(b == "A") for a, b in zip(replies_a, replies_b)]
    mean = sum(d) / len(d)
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
    got = paired_difference(log_a, log_b)
    if not (isinstance(got, tuple) and len(got) == 2):
        fail(f"return (mean difference, standard error), got {got!r}")
    if abs(got[0] - mean) > 1e-9:
        fail(f"mean difference should be {mean:.4f}, got {got[0]:.4f}: pair the samples by sample.id (the logs list "
             f"them in different orders), not by position")
    if abs(got[1] - se) > 1e-9:
        pa, pb = sum(x == "A" for x in replies_a) / 7, sum(x == "A" for x in replies_b) / 7
        unpaired = math.sqrt(pa * (1 - pa) / 6 + pb * (1 - pb) / 6)
        by_position = [float(x.scores[next(iter(x.scores))].value == CORRECT) - float(y.scores[next(iter(y.scores))].value == CORRECT)
                       for x, y in zip(log_a.samples, log_b.samples)]
        mp = sum(by_position) / len(by_position)
        se_position = math.sqrt(sum((x - mp) ** 2 for x in by_position) / (len(by_position) - 1) / len(by_position))
        hint = (" (that is the unpaired standard error: take the standard deviation of the per-question differences)"
                if abs(got[1] - unpaired) < 1e-6 else
                " (that pairs the samples by their position in the lists; pair them by sample.id, the logs list them in "
                "different orders)" if abs(got[1] - se_position) < 1e-9 else
                " (divide the squared deviations by n - 1)" if abs(got[1] - se * math.sqrt(6 / 7)) < 1e-9 else "")
        fail(f"standard error should be {se:.4f}, got {got[1]:.4f}{hint}")
    lone = log_b.model_copy(update={"samples": [s.model_copy(update={"id": 100 + i}) for i, s in enumerate(log_b.samples)]})
    try:
        paired_difference(log_a, lone)
    except ValueError:
        return "paired by sample id, with the standard error of the differences"
    except Exception as e:  # noqa: BLE001 - any other failure is the bug this case is about
        fail(f"two logs with no sample ids in common raised {type(e).__name__}: {e}; check the number of common ids first "
             f"and raise ValueError saying why they cannot be compared")
    fail("two logs with no sample ids in common cannot be compared question by question: raise ValueError")
