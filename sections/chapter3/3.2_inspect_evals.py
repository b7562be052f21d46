# %% [markdown]
# # 3.2 Structured evaluation with inspect-ai
#
# In 3.1 we built a dataset of power-seeking questions. Now we run it properly. **inspect-ai**
# (the UK AI Security Institute's eval framework) gives every eval the same shape:
#
# - a **dataset** of `Sample`s (input, choices, target, metadata);
# - a **solver** chain: small functions that each transform a `TaskState` (rewrite the prompt, add a
#   system message, call the model, ask it to critique itself...);
# - a **scorer** that grades the final state;
# - all wrapped in a `Task`, run by `inspect_ai.eval`, which writes an `EvalLog` with every message,
#   score and token.
#
# Because the solver is a chain, we can hold the dataset fixed and ask: *how does the measured
# power-seeking rate change with the prompting?* That is the question of this section. A note on
# vocabulary: our target is the **power-seeking** answer, so "accuracy" below is the rate at which
# the model *chooses* power, lower is better.
#
# With an `OPENAI_API_KEY` the evals run on a real model through inspect's `openai/...` provider;
# without one, the same provider talks to the loopback server and its rule-based stand-in model
# (whose power-seeking rate drops with a safety system prompt, with reasoning and with self-critique).

# %% setup
from __future__ import annotations

import tempfile
from collections import defaultdict

import plotly.express as px
from inspect_ai import eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog, list_eval_logs, read_eval_log
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, get_model
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Scorer, Target, accuracy, scorer, stderr
from inspect_ai.solver import Generate, Solver, TaskState, solver

from curriculum.solutions.chapter3.inspect_evals import (
    ANSWER_RE,
    CRITIQUE_TEMPLATE,
    DATASET_PATH,
    MAKE_CHOICE_PROMPT,
    MCQ_TEMPLATE,
    REVISION_TEMPLATE,
    VARIANTS,
    headline_accuracy,
    letter_choices,
    load_questions,
    power_seeking,
)
from curriculum.checks.chapter3 import inspect_evals as tests
from curriculum.utils import full_or_quick
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.secrets import llm_endpoint

# %%
llm = llm_endpoint("gpt-4o-mini", responder=mcq_responder)
llm.describe()
LOG_DIR = tempfile.mkdtemp(prefix="inspect_logs_")  # eval logs are big; keep them out of the repository
LIMIT = full_or_quick(None, 12)  # questions per eval: all of them by default, a dozen in quick mode

# %% [markdown]
# ## 1. The dataset
#
# A `Sample` is inspect's unit of evaluation. For a multiple-choice question, `choices` holds the
# answer *texts*; inspect letters them A, B, ... itself, and `target` is the correct letter. Putting
# the question's own system prompt into `input` (as a list of chat messages) keeps the scenario
# intact ("You are an AI managing the power grid...").
#
# ### Exercise: questions as inspect `Sample`s
#
# Implement `record_to_sample`, which turns one question from 3.1 into a `Sample`. The check first looks
# at the fields of your sample, then runs two samples through inspect's built-in `multiple_choice` solver
# and `choice` scorer against a model that always picks the power-seeking option: with correct samples it
# scores 1.0 and sees each question's own system prompt.

# %% exercise curriculum.solutions.chapter3.inspect_evals:record_to_sample difficulty=2 importance=4 minutes=10
tests.check_record_to_sample(record_to_sample)

# %% hint
# Four fields to fill: `input` (the conversation the model starts from), `choices` (the answer texts only:
# inspect adds the letters), `target` (which letter counts as CORRECT, here the power-seeking one) and
# `metadata` (anything you want to group results by later).

# %% hint
# `input` is a list `[ChatMessageSystem(content=...), ChatMessageUser(content=...)]` built from
# `record["system"]` and `record["question"]`. For `choices`, walk the letters in sorted order and look each
# text up in `record["answers"]`: the JSON does not promise that A comes first, and the check feeds a record
# whose answers are listed B first, so `list(record["answers"].values())` puts them in the wrong order.
# `target` is `record["answer_matching_behavior"]`, a letter such as `"B"`.

# %% hint
# ```python
# return Sample(
#     input=[ChatMessageSystem(content=...), ChatMessageUser(content=...)],
#     choices=[... for letter in sorted(record["answers"])],
#     target=...,
#     metadata={"behavior_category": ...},
# )
# ```

# %%
questions = load_questions(DATASET_PATH)
print(f"{len(questions)} questions; the first as a Sample:")
print(record_to_sample(questions[0]))

# %% [markdown]
# ## 2. A first eval with built-in solvers and scorers
#
# `multiple_choice()` formats the choices into the prompt, asks for `ANSWER: $LETTER` and calls the
# model; `choice()` scores the letter it parsed. `power_seeking(variant)` (given) builds the task.

# %%
log = eval(power_seeking("multiple_choice", limit=LIMIT), model=llm.inspect_model(), log_dir=LOG_DIR, display="none")[0]
acc, err = headline_accuracy(log)
print(f"status {log.status}; power-seeking rate {acc:.2f} ± {err:.2f} over {len(log.samples)} questions")
sample = log.samples[0]
for message in sample.messages:
    print(f"--- {message.role}\n{message.text}")
print("score:", next(iter(sample.scores.values())))

# %% [markdown]
# ## 3. Custom solvers
#
# A solver is an `async` function `solve(state, generate) -> state`, made by a factory decorated
# with `@solver`. It can edit `state.messages` (or the shortcut `state.user_prompt`), call
# `await generate(state)` to get the model's reply into `state.output`, or both.
#
# ### Exercise: a `prompt_template` solver
#
# The simplest useful solver: it wraps the user prompt in a template such as
# `"Q: {prompt}\nBe brief."` and hands the state on. The factory already refuses a template without a
# `{prompt}` placeholder; you write the inner `solve`. The check runs it in an eval and reads the messages
# the model received.

# %% exercise curriculum.solutions.chapter3.inspect_evals:prompt_template difficulty=1 importance=3 minutes=5
tests.check_prompt_template(prompt_template)

# %% hint
# Change the existing user message in place; do not add a new one. The model should still see exactly
# `[system, user]`, with the user text now wrapped in the template.

# %% hint
# `state.user_prompt` is the first user message of the conversation, and its `.text` can be assigned to.
# Set it to `template.format(prompt=state.user_prompt.text)` and `return state`. Do not call `generate`
# here: a later solver in the chain does that.

# %% [markdown]
# ### Exercise: `multiple_choice_format`, choices into the prompt
#
# Like the first half of inspect's `multiple_choice`, this solver writes the lettered choices into the
# prompt, but it does not call the model, so we can put reasoning steps between the question and the
# answer. The check runs it with two templates (one puts the choices before the question) and counts the
# model calls: there must be exactly one, made by the `generate()` that follows your solver.

# %% exercise curriculum.solutions.chapter3.inspect_evals:multiple_choice_format difficulty=1 importance=3 minutes=5
tests.check_multiple_choice_format(multiple_choice_format)

# %% hint
# The same move as `prompt_template`, with two placeholders: `{question}` is the current user prompt text
# and `{choices}` is the block of `A) ...` lines. `letter_choices` (given) builds that block from a list of texts.

# %% hint
# `state.choices` holds the sample's choices as objects; their texts are `[c.value for c in state.choices]`.
# Pass that list to `letter_choices`, then assign
# `template.format(question=state.user_prompt.text, choices=...)` to `state.user_prompt.text` and return the state.

# %% [markdown]
# ### Exercise: `make_choice`, commit to a letter
#
# After the model has reasoned freely, ask it to commit to a letter. Separating *thinking* from
# *deciding* is what lets us score free-form reasoning with a simple parser. The check plays a model that
# reasons on the first call and answers only when it sees your prompt as a new user turn.

# %% exercise curriculum.solutions.chapter3.inspect_evals:make_choice difficulty=1 importance=3 minutes=5
tests.check_make_choice(make_choice)

# %% hint
# Two steps: add the prompt to the conversation as a new user turn after the model's reasoning, then call
# the model once more and return the state it produces.

# %% hint
# `state.messages.append(ChatMessageUser(content=prompt))`, then `return await generate(state)`. Editing
# `state.user_prompt` instead would rewrite the original question rather than add a turn (the check prints
# the messages the second call saw); without `await` you return a coroutine, not a state, and the eval fails.

# %% [markdown]
# ### Exercise: a self-critique that sees the options
#
# Self-critique asks the model to review its own answer and then answer again. The critic must see
# what the answer was choosing between: "ANSWER: B" means nothing without option B. inspect's
# built-in `self_critique()` fills its template with `state.input_text`, the question as the dataset
# stored it, *without* the choices that `multiple_choice()` added to the prompt. With a real model the
# critique is then vague; with the offline stand-in it is useless ("please give me the options"), and
# whatever "self-critique" seems to change in the results is an artefact of the solver.
#
# Write `critique_with_choices`, a solver that does it properly:
#
# 1. format `critique_template` with `question=state.input_text`, `choices=letter_choices(...)` of the
#    choice texts, and `completion=state.output.completion` (the answer so far);
# 2. send it to the critic, `get_model(model)`, as a fresh one-message request (`await ....generate(prompt)`;
#    `model=None` is the model under evaluation) and take `.completion`;
# 3. append `revision_template.format(critique=..., letters="A, B, C")` as a new user message;
# 4. generate again and return that state.
#
# The check scripts a model that answers A, critiques, then revises to B, and inspects the three requests
# your solver made. Afterwards, look at one critique in the log viewer (section 6) to see what the
# critic was shown.

# %% exercise curriculum.solutions.chapter3.inspect_evals:critique_with_choices difficulty=2 importance=3 minutes=15
tests.check_critique_with_choices(critique_with_choices)

# %% hint
# The choice texts are `[c.value for c in state.choices]`; `letter_choices` turns them into "A) ..." lines,
# and the letters are the first `len(state.choices)` capitals joined with ", ".

# %% hint
# `critique = await get_model(model).generate(critique_template.format(...))`, then
# `state.messages.append(ChatMessageUser(content=revision_template.format(critique=critique.completion, letters=...)))`
# and `return await generate(state)`.

# %% [markdown]
# ## 4. A custom scorer
#
# A scorer is an `async` function `score(state, target) -> Score`, made by a factory decorated with
# `@scorer(metrics=[...])`; the metrics aggregate the per-sample scores. Ours reads the *last*
# `ANSWER: X` in the completion (models often mention several letters while reasoning).
#
# ### Exercise: the `answer_letter` scorer
#
# Write the inner `score` function of `answer_letter`. The check replays seven completions, among them a
# lower-case `answer: b`, one that changes its mind halfway, `ANSWER:(C)`, a refusal and a bare
# "The answer is A.", and compares your `Score.value` and `Score.answer` for each.

# %% exercise curriculum.solutions.chapter3.inspect_evals:answer_letter difficulty=2 importance=4 minutes=10
tests.check_answer_letter(answer_letter)

# %% hint
# Find every `ANSWER: X` in the model's final completion, keep the last one, and compare its letter with
# the target. No match at all means no choice was made: that is INCORRECT (not power-seeking), with
# `answer=None`.

# %% hint
# `ANSWER_RE.findall(state.output.completion)` returns the captured letters as a list; `re.search` would
# find the *first* one, which the "on reflection" case catches. The pattern ignores case, so upper-case
# the letter before comparing it with `target.text`. Return
# `Score(value=CORRECT or INCORRECT, answer=letter, explanation=state.output.completion)`.

# %% hint
# ```python
# matches = ANSWER_RE.findall(state.output.completion)
# letter = ...  # the last match, upper-cased, or None
# return Score(value=CORRECT if ... else INCORRECT, answer=letter, explanation=state.output.completion)
# ```

# %% [markdown]
# ## 5. Comparing solver variants
#
# Each variant is the same dataset under a different solver chain:
#
# | variant | solvers | scorer |
# |---|---|---|
# | `multiple_choice` | `multiple_choice()` | `choice()` |
# | `system_message` | `system_message(HHH)`, `multiple_choice()` | `choice()` |
# | `chain_of_thought` | `multiple_choice(cot=True)` | `choice()` |
# | `self_critique` | `multiple_choice()`, `critique_with_choices()` | `answer_letter()` |
# | `custom_cot_choice` | `multiple_choice_format()`, `chain_of_thought()`, `generate()`, `make_choice()` | `answer_letter()` |
#
# `inspect_ai.eval` takes a list of tasks and runs them concurrently.

# %%
VARIANT_LOG_DIR = tempfile.mkdtemp(prefix="inspect_variants_")
logs = eval([power_seeking(v, limit=LIMIT) for v in VARIANTS], model=llm.inspect_model(), log_dir=VARIANT_LOG_DIR, display="none")
print({v: log.status for v, log in zip(VARIANTS, logs)})

# %% [markdown]
# ## 6. Reading logs
#
# Every eval wrote a log file to its `log_dir`. `list_eval_logs` finds them and `read_eval_log` loads one
# into the same `EvalLog` object `eval` returned: headline metrics in `log.results`, every sample's
# messages, output, scores and metadata in `log.samples`. Analyses you did not plan before the run
# come from here.
#
# ### Exercise: `accuracy_by_category` from a log
#
# Compute the power-seeking rate per behaviour category from the per-sample scores of an `EvalLog`.
# This is the kind of analysis you did not plan before the run, so it reads the log rather than asking
# the scorer for a new metric. The check builds a log with three categories, one of which never scores
# CORRECT, and expects every category in sorted order.

# %% exercise curriculum.solutions.chapter3.inspect_evals:accuracy_by_category difficulty=2 importance=3 minutes=10
tests.check_accuracy_by_category(accuracy_by_category)

# %% hint
# Group the samples by `sample.metadata["behavior_category"]`, count how many of each group scored CORRECT
# and how many there are, then divide. A category with no CORRECT samples must still appear, at 0.0.

# %% hint
# `log.samples` is a list; each sample's `scores` is a dict from scorer name to `Score`, so
# `next(iter(sample.scores.values()))` is the first scorer's score, and `score.value == CORRECT` tells you
# whether it counted. A `defaultdict(lambda: [0, 0])` of (correct, total) pairs is enough; build the result
# from `sorted(totals.items())` so the categories come out in order.

# %%
rows = []
for info in list_eval_logs(VARIANT_LOG_DIR):
    log = read_eval_log(info)
    if log.status != "success":
        continue
    variant = log.eval.task.removeprefix("power_seeking_")
    acc, err = headline_accuracy(log)
    rows.append({"variant": variant, "category": "all", "rate": acc, "stderr": err})
    rows += [{"variant": variant, "category": c, "rate": r, "stderr": None} for c, r in accuracy_by_category(log).items()]
overall = sorted((r for r in rows if r["category"] == "all"), key=lambda r: VARIANTS.index(r["variant"]))
for r in overall:
    print(f"{r['variant']:18s} {r['rate']:.2f} ± {r['stderr']:.2f}")

# %%
fig = px.bar(overall, x="variant", y="rate", error_y="stderr", title="Power-seeking rate by solver variant (± 1 s.e.)",
             labels={"rate": "rate of power-seeking answers"}, range_y=[0, 1])
fig.show()
per_category = [r for r in rows if r["category"] != "all"]
fig = px.bar(per_category, x="category", y="rate", color="variant", barmode="group",
             title="Power-seeking rate by behaviour category and variant", range_y=[0, 1])
fig.show()

# %% [markdown]
# **What to look for.** A safety-flavoured system prompt lowers the rate a lot; reasoning and
# self-critique lower it a little. The error bars are wide with a few dozen questions: differences
# smaller than about two standard errors are not evidence of anything. Before trusting a difference
# between variants, check that the parser found an answer in every sample (`score.answer is None`
# counts as "not power-seeking"), and read a handful of transcripts.
#
# **Going further** (online): run the variants on two real models (`llm_endpoint("gpt-4o")`, or any
# inspect provider string such as `"anthropic/claude-..."` with its own key); add a variant that
# shuffles the choices (`Sample.choices` order bias is a classic confounder); and compare inspect's
# `model_graded_qa` scorer with `answer_letter` on the chain-of-thought transcripts.

# %%
llm.close()

# %% [markdown]
# ## Further reading
# - [Inspect documentation (UK AI Security Institute)](https://inspect.aisi.org.uk/): the reference for
#   datasets, solvers, scorers and logs; read the pages on solvers and scorers before writing your own.
# - [Miller, "Adding Error Bars to Evals: A Statistical Approach to Language Model Evaluations" (2024)](https://arxiv.org/abs/2411.00640):
#   how to put standard errors on eval scores, compare two variants on the same questions, and decide how
#   many questions an eval needs before a difference means anything.
# - [Zheng et al., "Large Language Models Are Not Robust Multiple Choice Selectors" (2023)](https://arxiv.org/abs/2309.03882):
#   models prefer some option letters regardless of content; read it before trusting a multiple-choice rate,
#   and for the choice-shuffling idea in "Going further".
# - [Wei et al., "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models" (2022)](https://arxiv.org/abs/2201.11903):
#   the origin of the reasoning-before-answering variants compared here.
