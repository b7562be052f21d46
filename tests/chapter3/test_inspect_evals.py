"""Section 3.2 beyond the automatic checks: plausible learner bugs each check must catch (each run
through a real inspect eval against the loopback server), and the variant comparison end to end."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from inspect_ai import eval
from inspect_ai.dataset import Sample
from inspect_ai.log import list_eval_logs, read_eval_log
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import CORRECT, INCORRECT, Score, accuracy, scorer, stderr
from inspect_ai.solver import solver

from curriculum.checks.chapter3 import inspect_evals as checks
from curriculum.solutions.chapter3 import inspect_evals as sol
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.secrets import llm_endpoint
from tests.support import assert_check_fails

# ---- record_to_sample ------------------------------------------------------------------------


def sample_dict_order(record):  # trusts the JSON's key order
    return Sample(input=[ChatMessageSystem(content=record["system"]), ChatMessageUser(content=record["question"])],
                  choices=list(record["answers"].values()), target=record["answer_matching_behavior"],
                  metadata={"behavior_category": record["behavior_category"]})


def sample_target_text(record):  # target is the answer text, not its letter
    s = sol.record_to_sample(record)
    s.target = record["answers"][record["answer_matching_behavior"]]
    return s


def sample_no_system(record):  # drops the scenario's system prompt
    return Sample(input=record["question"], choices=[record["answers"][k] for k in sorted(record["answers"])],
                  target=record["answer_matching_behavior"], metadata={"behavior_category": record["behavior_category"]})


def sample_wrong_target(record):  # the non-power-seeking answer as target
    s = sol.record_to_sample(record)
    s.target = record["answer_not_matching_behavior"]
    return s


def sample_no_metadata(record):
    s = sol.record_to_sample(record)
    s.metadata = {}
    return s


@pytest.mark.parametrize("mutant", [sample_dict_order, sample_target_text, sample_no_system, sample_wrong_target, sample_no_metadata])
def test_record_to_sample_check_catches(mutant):
    assert_check_fails(checks.check_record_to_sample, mutant)


# ---- solvers ---------------------------------------------------------------------------------


@solver
def template_appends(template: str):
    async def solve(state, generate):
        state.user_prompt.text = state.user_prompt.text + template.replace("{prompt}", "")
        return state

    return solve


@solver
def template_new_message(template: str):
    if "{prompt}" not in template:
        raise ValueError("no placeholder")

    async def solve(state, generate):
        state.messages.append(ChatMessageUser(content=template.format(prompt=state.user_prompt.text)))
        return state

    return solve


@solver
def template_no_validation(template: str):
    async def solve(state, generate):
        state.user_prompt.text = template.replace("{prompt}", state.user_prompt.text)
        return state

    return solve


@solver
def template_calls_generate(template: str):  # rewrites the prompt, then calls the model itself
    if "{prompt}" not in template:
        raise ValueError("no placeholder")

    async def solve(state, generate):
        state.user_prompt.text = template.format(prompt=state.user_prompt.text)
        return await generate(state)

    return solve


@pytest.mark.parametrize("mutant", [template_appends, template_new_message, template_no_validation, template_calls_generate])
def test_prompt_template_check_catches(mutant):
    assert_check_fails(checks.check_prompt_template, mutant)


def _mcq_mutant(format_choices, calls_generate=False):
    @solver
    def multiple_choice_format(template: str = sol.MCQ_TEMPLATE):
        async def solve(state, generate):
            state.user_prompt.text = template.format(question=state.user_prompt.text,
                                                     choices=format_choices([c.value for c in state.choices]))
            return await generate(state) if calls_generate else state

        return solve

    return multiple_choice_format


MCQ_MUTANTS = {
    "letters from B": _mcq_mutant(lambda cs: "\n".join(f"{chr(66 + i)}) {c}" for i, c in enumerate(cs))),
    "numbers": _mcq_mutant(lambda cs: "\n".join(f"{i + 1}) {c}" for i, c in enumerate(cs))),
    "only two letters": _mcq_mutant(lambda cs: "\n".join(f"{'AB'[i % 2]}) {c}" for i, c in enumerate(cs))),
    "reversed": _mcq_mutant(lambda cs: sol.letter_choices(cs[::-1])),
    "calls generate": _mcq_mutant(sol.letter_choices, calls_generate=True),
}


@pytest.mark.parametrize("name", list(MCQ_MUTANTS))
def test_multiple_choice_format_check_catches(name):
    assert_check_fails(checks.check_multiple_choice_format, MCQ_MUTANTS[name])


@solver
def choice_without_generate(prompt: str = sol.MAKE_CHOICE_PROMPT):
    async def solve(state, generate):
        state.messages.append(ChatMessageUser(content=prompt))
        return state

    return solve


@solver
def choice_replaces_prompt(prompt: str = sol.MAKE_CHOICE_PROMPT):
    async def solve(state, generate):
        state.user_prompt.text = prompt
        return await generate(state)

    return solve


@solver
def choice_as_system(prompt: str = sol.MAKE_CHOICE_PROMPT):
    async def solve(state, generate):
        state.messages.append(ChatMessageSystem(content=prompt))
        return await generate(state)

    return solve


@pytest.mark.parametrize("mutant", [choice_without_generate, choice_replaces_prompt, choice_as_system])
def test_make_choice_check_catches(mutant):
    assert_check_fails(checks.check_make_choice, mutant)


# ---- scorer ----------------------------------------------------------------------------------


def _scorer_mutant(parse, value=lambda ok: CORRECT if ok else INCORRECT, metrics=True):
    def answer_letter():
        async def score(state, target):
            letter = parse(state.output.completion)
            return Score(value=value(letter == target.text), answer=letter, explanation=state.output.completion)

        return score

    decorated = scorer(metrics=[accuracy(), stderr()] if metrics else [])(answer_letter)
    return decorated


def _first(text):
    m = sol.ANSWER_RE.search(text)
    return m[1].upper() if m else None


def _case_sensitive(text):
    m = re.findall(r"ANSWER\s*:\s*\(?([A-Z])\b", text)
    return m[-1] if m else None


def _crashes_without_answer(text):
    return sol.ANSWER_RE.findall(text)[-1].upper()


def _any_letter(text):
    m = re.findall(r"\b([A-D])\b", text)
    return m[-1] if m else None


SCORER_MUTANTS = {
    "first match": _scorer_mutant(_first),
    "case-sensitive": _scorer_mutant(_case_sensitive),
    "crashes without an answer": _scorer_mutant(_crashes_without_answer),
    "any capital letter": _scorer_mutant(_any_letter),
    "bool values": _scorer_mutant(lambda t: sol.ANSWER_RE.findall(t)[-1].upper() if sol.ANSWER_RE.findall(t) else None, value=bool),
}


@pytest.mark.parametrize("name", list(SCORER_MUTANTS))
def test_answer_letter_check_catches(name):
    assert_check_fails(checks.check_answer_letter, SCORER_MUTANTS[name])


# ---- log reading -----------------------------------------------------------------------------


def by_category_overall(log):
    correct = [next(iter(s.scores.values())).value == CORRECT for s in log.samples]
    return {s.metadata["behavior_category"]: sum(correct) / len(correct) for s in log.samples}


def by_category_truthy_value(log):  # "I" is a non-empty string, so truthy: every sample counts as correct
    totals = defaultdict(list)
    for s in log.samples:
        totals[s.metadata["behavior_category"]].append(bool(next(iter(s.scores.values())).value))
    return {c: sum(v) / len(v) for c, v in sorted(totals.items())}


def by_category_unsorted(log):
    return dict(reversed(list(sol.accuracy_by_category(log).items())))


@pytest.mark.parametrize("mutant", [by_category_overall, by_category_truthy_value, by_category_unsorted])
def test_accuracy_by_category_check_catches(mutant):
    assert_check_fails(checks.check_accuracy_by_category, mutant)


# ---- end to end ------------------------------------------------------------------------------


def test_shipped_dataset_loads_and_is_valid():
    from curriculum.solutions.chapter3.dataset_generation import Question

    questions = sol.load_questions()
    assert len(questions) >= 40
    for q in questions:
        Question.model_validate({k: v for k, v in q.items() if k not in ("score", "score_explanation")})
    dataset = sol.load_dataset(limit=5)
    assert len(dataset) == 5 and all(s.target in ("A", "B") and len(s.choices) == 2 for s in dataset)


def test_variants_run_and_rank_as_the_stand_in_predicts(tmp_path):
    """Every variant runs through inspect against the loopback server; the safety system prompt lowers the rate most."""
    with llm_endpoint(responder=mcq_responder, offline=True) as llm:
        logs = eval([sol.power_seeking(v, limit=24) for v in sol.VARIANTS], model=llm.inspect_model(),
                    log_dir=str(tmp_path), display="none")
    assert [log.status for log in logs] == ["success"] * len(sol.VARIANTS), [log.error for log in logs]
    rates = {log.eval.task.removeprefix("power_seeking_"): sol.headline_accuracy(log)[0] for log in logs}
    assert rates["system_message"] < min(rates["multiple_choice"], rates["chain_of_thought"]) - 0.15, rates
    assert all(s.scores for log in logs for s in log.samples)
    assert all(next(iter(s.scores.values())).answer is not None for log in logs for s in log.samples), \
        "every stand-in reply should contain a parseable answer"
    on_disk = [read_eval_log(info) for info in list_eval_logs(str(tmp_path))]
    assert sorted(log.eval.task for log in on_disk) == sorted(f"power_seeking_{v}" for v in sol.VARIANTS)


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        sol.variant_plan("cot")


# --------------------------------------------------------------------------------------------- critique_with_choices
from tests.support import mutant

CRITIQUE_MUTANTS = {
    "critic without the options (inspect's self_critique)": (
        (("choices=letter_choices(options), ", "choices=\"\", "),), "cannot judge a letter"),
    "letters as a list": ((('letters = ", ".join(', 'letters = "".join('),), "letters"),
    "the critique not passed on": ((("critique=critique.completion", "critique=\"\""),), "revision"),
    "no second answer": ((("        return await generate(state)\n        # END", "        return state\n        # END"),),
                         "3 model calls"),
}


@pytest.mark.parametrize("name", CRITIQUE_MUTANTS)
def test_check_critique_with_choices_catches(name):
    replacements, match = CRITIQUE_MUTANTS[name]
    assert_check_fails(checks.check_critique_with_choices, mutant(sol.critique_with_choices, *replacements), match=match)


def test_offline_self_critique_reads_the_options():
    """With the options in front of it, the stand-in's critique names the chosen option instead of asking for them."""
    with llm_endpoint(responder=mcq_responder, offline=True) as llm:
        log = eval(sol.power_seeking("self_critique", limit=4), model=llm.inspect_model(), display="none",
                   log_dir=str(__import__("tempfile").mkdtemp()))[0]
    assert log.status == "success"
    for sample in log.samples:
        text = " ".join(str(m.content) for m in sample.messages)
        assert "please give me the options" not in text and "Here is a critique of your answer" in text


# --------------------------------------------------------------------------------------------- choosing the dataset
import json

QUESTION_PROBLEM_MUTANTS = {
    "presence only, no types": ((("        elif not isinstance(record[field], kind):", "        elif False:"),), "answers given as a list|has no attribute"),
    "skipped letters accepted": ((("if sorted(answers) != list(LETTERS[: len(answers)]):", "if False:"),), "B skipped"),
    "labels not checked": ((("        if record[label] not in answers:", "        if False:"),), "'C' with answers A and B"),
    "same labels accepted": ((('    if record["answer_matching_behavior"] == record["answer_not_matching_behavior"]:', "    if False:"),),
                             "both labels"),
    "stops at the first missing field": ((("            problems.append(f\"missing field {field!r}\")",
                                           "            return [f\"missing field {field!r}\"]"),), "both problems"),
}


@pytest.mark.parametrize("name", QUESTION_PROBLEM_MUTANTS)
def test_check_question_problems_catches(name):
    replacements, match = QUESTION_PROBLEM_MUTANTS[name]
    assert_check_fails(checks.check_question_problems, mutant(sol.question_problems, *replacements), match=match)


CHOOSE_MUTANTS = {
    "uses the file without validating the questions": (
        (("    if bad:\n", "    if False:\n"),), "behavior_category"),
    "always the shipped sample": ((("    return learner_path, f\"your dataset", "    return shipped_path, f\"your dataset"),),
                                  "use your 3.1 file"),
    "a corrupt file is not caught": ((("    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:",
                                       "    except KeyError as e:"),), "JSON|Expecting|Unterminated"),
    "ignores learner_dataset_path() by default": ((("learner_dataset_path() if learner_path is None", "Path('nowhere.json') if learner_path is None"),),
                                                   "learner_dataset_path"),
}


@pytest.mark.parametrize("name", CHOOSE_MUTANTS)
def test_check_choose_dataset_catches(name):
    replacements, match = CHOOSE_MUTANTS[name]
    assert_check_fails(checks.check_choose_dataset, mutant(sol.choose_dataset, *replacements), match=match)


def _valid_file(path):
    path.write_text(json.dumps({"provenance": {}, "questions": sol.load_questions()[:3]}))
    return path


def test_choose_dataset_before_and_after_31(tmp_path, monkeypatch, capsys):
    """3.2 before 3.1: no file, the shipped sample; after 3.1: the learner's file; a corrupt one is reported, not used."""
    from curriculum.solutions.chapter3.dataset_generation import learner_dataset_path
    from curriculum.utils import offline

    monkeypatch.setattr(offline, "CACHE_DIR", tmp_path / "cache")
    path, why = sol.choose_dataset()
    assert path == sol.DATASET_PATH and "no dataset from section 3.1" in why and str(learner_dataset_path()) in why
    _valid_file(learner_dataset_path())
    path, why = sol.choose_dataset()
    assert path == learner_dataset_path() and "3 questions" in why
    assert len(sol.load_dataset(path)) == 3
    learner_dataset_path().write_text(learner_dataset_path().read_text()[:-40])
    path, why = sol.choose_dataset()
    assert path == sol.DATASET_PATH and "could not be read" in why and "JSONDecodeError" in why


# --------------------------------------------------------------------------------------------- baseline and tasks
from inspect_ai import Task, task
from inspect_ai.scorer import choice
from inspect_ai.solver import generate, multiple_choice


@task
def baseline_no_template(dataset_path: str = str(sol.DATASET_PATH), limit: int | None = None):
    return Task(dataset=sol.load_dataset(dataset_path, limit), solver=[multiple_choice()], scorer=choice(), name="power_seeking_baseline")


@task
def baseline_no_choices(dataset_path: str = str(sol.DATASET_PATH), limit: int | None = None):
    return Task(dataset=sol.load_dataset(dataset_path, limit), solver=[sol.prompt_template(sol.BASELINE_TEMPLATE), generate()],
                scorer=choice(), name="power_seeking_baseline")


BASELINE_MUTANTS = {"no baseline question": (baseline_no_template, "own choice"), "no options": (baseline_no_choices, "options")}


@pytest.mark.parametrize("name", BASELINE_MUTANTS)
def test_check_power_seeking_baseline_catches(name):
    fn, match = BASELINE_MUTANTS[name]
    assert_check_fails(checks.check_power_seeking_baseline, fn, match=match)


PROMPTED_MUTANTS = {
    "replaces the scenario's system prompt": ((("solvers = ([system_message(prompt)] if prompt is not None else []) + [multiple_choice()]",
                                                "solvers = [multiple_choice()]"),), "should see"),
    "no validation": ((("    if system_prompt not in SYSTEM_PROMPTS:\n", "    if False:\n"),), "KeyError|ValueError"),
    "not a @task": ((("@task\ndef power_seeking_prompted", "def power_seeking_prompted"),), "task_args|@task"),
    "ignores shuffle_seed": ((("dataset=load_dataset(dataset_path, limit, shuffle_seed), solver=solvers",
                               "dataset=load_dataset(dataset_path, limit), solver=solvers"),), "shuffle_seed"),
}


@pytest.mark.parametrize("name", PROMPTED_MUTANTS)
def test_check_power_seeking_prompted_catches(name):
    replacements, match = PROMPTED_MUTANTS[name]
    assert_check_fails(checks.check_power_seeking_prompted, mutant(sol.power_seeking_prompted, *replacements), match=match)


# --------------------------------------------------------------------------------------------- metrics and logs
SE_MUTANTS = {
    "n in the denominator": ((("/ (n - 1)) / math.sqrt(n)", "/ n) / math.sqrt(n)"),), "n - 1"),
    "no square root of n": ((("/ (n - 1)) / math.sqrt(n)", "/ (n - 1))"),), "sqrt\\(n\\)"),
    "clusters ignored": ((("deviation_sums[(s.sample_metadata or {})[cluster]] += x - mean",
                           "deviation_sums[s.sample_id] += x - mean"),), "clustered"),
    "no finite-cluster factor": ((("* c / (c - 1))", ")"),), "C / \\(C - 1\\)"),
}


@pytest.mark.parametrize("name", SE_MUTANTS)
def test_check_standard_error_catches(name):
    replacements, match = SE_MUTANTS[name]
    assert_check_fails(checks.check_standard_error, metric_mutant(*replacements), match=match)


def metric_mutant(*replacements):
    """`mutant` for the @metric standard_error, whose decorator hides the source from inspect.getsource."""
    from curriculum.tools.build_notebooks import object_source

    source = object_source(sol.__name__, "standard_error")
    for old, new in replacements:
        assert old in source, old
        source = source.replace(old, new)
    ns = dict(vars(sol))
    exec(compile(source, "<mutant of standard_error>", "exec"), ns)  # noqa: S102 - a planted bug, as tests.support.mutant does
    return ns["standard_error"]


TABLE_MUTANTS = {
    "truthy score value": ((('"power_seeking": score.value == CORRECT', '"power_seeking": bool(score.value)'),), "truthy"),
    "value string, not bool": ((('"power_seeking": score.value == CORRECT', '"power_seeking": score.value'),), "power_seeking"),
    "answer from the completion's first letter": ((('"answer": score.answer', '"answer": sample.output.completion[-1:]'),), "answer"),
}


@pytest.mark.parametrize("name", TABLE_MUTANTS)
def test_check_samples_table_catches(name):
    replacements, match = TABLE_MUTANTS[name]
    assert_check_fails(checks.check_samples_table, mutant(sol.samples_table, *replacements), match=match)


SHUFFLE_MUTANTS = {
    "target not remapped": ((('"target": remap(sample.target)', '"target": sample.target'),), "target no longer points"),
    "labels not remapped": ((("            metadata[key] = remap(metadata[key])", "            pass"),), "remap the metadata labels"),
    "global random": ((("    rng.shuffle(order)", "    random.shuffle(order)"),), "global random|same seed"),
    "mutates the input": ((("    metadata = dict(sample.metadata or {})", "    metadata = sample.metadata"),), "original sample changed"),
    "list target flattened": ((("[new_letter[x] for x in letters] if isinstance(letters, list) else new_letter[letters]",
                                "new_letter[letters[0]] if isinstance(letters, list) else new_letter[letters]"),), "list"),
}


@pytest.mark.parametrize("name", SHUFFLE_MUTANTS)
def test_check_shuffle_sample_choices_catches(name):
    replacements, match = SHUFFLE_MUTANTS[name]
    assert_check_fails(checks.check_shuffle_sample_choices, mutant(sol.shuffle_sample_choices, *replacements), match=match)


PAIRED_MUTANTS = {
    "paired by position": ((("    a, b = by_id(log_a), by_id(log_b)",
                             "    a, b = by_id(log_a), dict(zip(by_id(log_a), by_id(log_b).values()))"),), "pair them by sample.id"),
    "n in the denominator": ((("/ (len(d) - 1)) / math.sqrt(len(d))", "/ len(d)) / math.sqrt(len(d))"),), "n - 1"),
    "no error for disjoint logs": ((("    if len(common) < 2:\n", "    if len(common) < 0:\n"),), "ValueError"),
}


@pytest.mark.parametrize("name", PAIRED_MUTANTS)
def test_check_paired_difference_catches(name):
    replacements, match = PAIRED_MUTANTS[name]
    assert_check_fails(checks.check_paired_difference, mutant(sol.paired_difference, *replacements), match=match)


def test_shuffled_datasets_balance_positions_and_keep_labels():
    plain = list(sol.load_dataset())
    shuffled = list(sol.load_dataset(shuffle_seed=0))
    assert [s.id for s in plain] == [s.id for s in shuffled] == list(range(1, len(plain) + 1))
    for p, s in zip(plain, shuffled):
        assert p.choices[ord(p.target) - 65] == s.choices[ord(s.target) - 65]
        assert s.metadata["answer_matching_behavior"] == s.target
    assert [s.choices for s in sol.load_dataset(shuffle_seed=0)] == [s.choices for s in shuffled]
