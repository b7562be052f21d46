# %% [markdown]
# # 3.2 Structured evaluation with inspect-ai
#
# In 3.1 we built a dataset of power-seeking questions. Now we run it properly. **inspect-ai**
# (the UK AI Security Institute's eval framework) gives every eval the same shape:
#
# - a **dataset** of `Sample`s (input, choices, target, metadata);
# - a **solver** chain: small functions that each transform a `TaskState` (rewrite the prompt, add a
#   system message, call the model, ask it to critique itself...);
# - a **scorer** that grades the final state, and **metrics** that turn the per-sample scores into
#   the numbers you report;
# - all wrapped in a `Task`, run by `inspect_ai.eval`, which writes an `EvalLog` with every message,
#   score and token.
#
# ![A Task is a dataset of Samples, a chain of solvers that each edit the TaskState, and a scorer whose metrics summarise the scores; eval() writes everything to an EvalLog](figures/3.2_task_anatomy.svg)
#
# Because the solver is a chain, we can hold the dataset fixed and ask: *how does the measured
# power-seeking rate change with the prompting?* That is the question of this section. Before we
# trust any answer to it, we check three things that a careless eval gets wrong: that the model
# *understands* what power-seeking is (otherwise a low rate means confusion, not safety), that the
# position of an option does not decide the answer, and that a difference between two variants is
# larger than its standard error. A note on vocabulary: our target is the **power-seeking** answer,
# so "accuracy" below is the rate at which the model *chooses* power, lower is better.
#
# With an `OPENAI_API_KEY` the evals run on a real model through inspect's `openai/...` provider;
# without one, the same provider talks to the loopback server on your own machine and a scripted
# stand-in model (`inspect_standin`, in this section's solution module). Be clear about what the
# stand-in can and cannot show:
#
# - **It can show** that every piece of the machinery works: your solvers rewrite the right
#   messages, your scorer parses the right letter, your metrics and tables compute the right numbers,
#   shuffling moves the labels with their options, the log viewer shows every step. Its behaviour is
#   scripted to react to the things we vary: a system prompt that mentions harmlessness, honesty or
#   safety lowers its power-seeking rate, reasoning and self-critique lower it a little, on about a
#   third of the questions it picks option A without reading, and asked *which* option is the
#   power-seeking one it names it whenever its phrase list recognises the option.
# - **It cannot show** anything about real models. Its "understanding" is a list of phrases, so the
#   baseline is perfect on the template questions of 3.1 and blind to anything else; its position
#   bias has the size we gave it; it ignores a system prompt that urges ambition. Every effect you
#   measure offline is one we wrote into it. Treat the offline numbers as a test that your eval
#   *could* detect such effects, and run online to learn whether a real model has them.

# %% setup
from __future__ import annotations

import json
import math
import random
import tempfile
from collections import defaultdict
from pathlib import Path

import plotly.express as px
from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog, list_eval_logs, read_eval_log
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, get_model
from inspect_ai.scorer import (
    CORRECT,
    INCORRECT,
    Metric,
    SampleScore,
    Score,
    Scorer,
    Target,
    accuracy,
    choice,
    metric,
    scorer,
    stderr,
    value_to_float,
)
from inspect_ai.solver import Generate, Solver, TaskState, multiple_choice, solver, system_message

from curriculum.solutions.chapter3.dataset_generation import learner_dataset_path
from curriculum.solutions.chapter3.inspect_evals import (
    ANSWER_RE,
    BASELINE_TEMPLATE,
    CRITIQUE_TEMPLATE,
    DATASET_PATH,
    LETTERS,
    MAKE_CHOICE_PROMPT,
    MCQ_TEMPLATE,
    REQUIRED_FIELDS,
    REVISION_TEMPLATE,
    SYSTEM_PROMPTS,
    VARIANTS,
    headline_accuracy,
    inspect_standin,
    letter_choices,
    load_dataset,
    load_questions,
    power_seeking,
    rate_by,
)
from curriculum.checks.chapter3 import inspect_evals as tests
from curriculum.utils import full_or_quick
from curriculum.utils.secrets import llm_endpoint

# %%
llm = llm_endpoint("gpt-4o-mini", responder=inspect_standin)
llm.describe()
LOG_DIR = tempfile.mkdtemp(prefix="inspect_logs_")  # eval logs are big; keep them out of the repository
LIMIT = full_or_quick(None, 12)  # questions per eval: all of them by default, a dozen in quick mode

# %% [markdown]
# ## 1. The dataset
#
# ### Which questions: yours from 3.1, or the shipped sample
#
# The point of 3.1 was to write *your own* eval questions; this section should evaluate them. Section 3.1
# saves its final dataset to `learner_dataset_path()`, a file in the curriculum's cache folder (the
# environment variable `CURRICULUM_CACHE` moves the folder), so either notebook can find it after a
# kernel restart. But you may open 3.2 first, or 3.1 may have stopped halfway and left a file that is cut
# off, or you may have edited the file by hand and misspelled a field. The repository ships a reviewed
# sample of 40 questions (`data/chapter3/power_seeking_sample.json`) for exactly those cases.
#
# The rule we want is the one any pipeline that consumes another's output should follow: **use the
# upstream file when it is there and valid, otherwise fall back, and always say which you used and
# why.** A silent fallback is the dangerous kind: you would spend an afternoon analysing the shipped
# sample while believing you were studying your own questions. A corrupt file must be *reported*, not
# patched over: if one question in three hundred has no `behavior_category`, dropping it quietly makes
# an eval whose size and category mix nobody chose.
#
# "Valid" has to mean something precise. This section reads six fields from every question:
#
# | field | type | used for |
# |---|---|---|
# | `system` | str | the scenario's system prompt, the first message the model sees |
# | `question` | str | the user message |
# | `answers` | dict letter -> text | the choices, in letter order |
# | `answer_matching_behavior` | str, one of the letters | the target: the power-seeking option |
# | `answer_not_matching_behavior` | str, another letter | kept in the metadata, moved when shuffling |
# | `behavior_category` | str | to break results down by kind of power-seeking |
#
# Extra fields (`score`, `score_explanation` from 3.1's grader) are allowed and ignored.
#
# ### Exercise: `question_problems`, what is wrong with a question
#
# Write `question_problems(record)`, which returns a list of human-readable problems (empty when the
# question is usable). Check, in this order: that the record is a dict at all; that every field of
# `REQUIRED_FIELDS` is present with its type (report *every* missing or mistyped field, not only the
# first, so whoever wrote the file can fix them in one go; if any is wrong, stop there, because the later
# checks would crash on it); that there are at least two answers, lettered A, B, ... with none skipped, each a
# non-empty string; and that both labels name one of those letters, and not the same one. The check
# feeds the 40 shipped questions (all valid) and nine broken ones, among them `answers` as a list,
# `answer_matching_behavior` as a list (`["A"]`, the format of some published datasets), letters A and C
# with B missing, and both labels on the same answer.

# %% exercise curriculum.solutions.chapter3.inspect_evals:question_problems difficulty=2 importance=3 minutes=10
tests.check_question_problems(question_problems)

# %% hint
# Two phases. First the shape: a dict, and each `REQUIRED_FIELDS` key present with `isinstance(value, kind)`.
# Collect every failure in a list and return the list if it is not empty. Only then look inside `answers`
# and at the two labels, which you can now index without crashing.

# %% hint
# For the letters: `sorted(answers) == list(LETTERS[:len(answers)])` is true exactly for A, B, ... with none
# skipped. An answer text is usable when `isinstance(text, str) and text.strip()`. A label is usable when it is
# a key of `answers`; the two labels must also differ.

# %% hint
# ```python
# if not isinstance(record, dict):
#     return [...]
# problems = [f"missing field {f!r}" for f in REQUIRED_FIELDS if f not in record]
# problems += [...]  # the mistyped ones
# if problems:
#     return problems
# # answers: count, letters, empty texts; labels: membership, distinct
# ```

# %% [markdown]
# ### Exercise: `choose_dataset`, the learner's file or the shipped sample
#
# Now the decision. `choose_dataset(learner_path=None, shipped_path=DATASET_PATH)` returns
# `(path, reason)`: the path to evaluate and one sentence for the learner. With no `learner_path`, look at
# `learner_dataset_path()`. Fall back to `shipped_path` when the learner's file
#
# 1. does not exist (3.2 run before 3.1): say where you looked;
# 2. cannot be parsed (`load_questions` raises: the JSON is cut off, or it is an object without a
#    `"questions"` key): say so, with the error;
# 3. holds no questions;
# 4. holds any question with problems: say how many, and what is wrong with the first one.
#
# Otherwise use the learner's file and say how many questions it holds. The check builds each of these
# situations in a temporary folder (including a file cut off in the middle of a string) and reads your
# path and your reason; it also points the cache at a temporary folder to see that the default looks where
# 3.1 saves.

# %% exercise curriculum.solutions.chapter3.inspect_evals:choose_dataset difficulty=2 importance=4 minutes=10
tests.check_choose_dataset(choose_dataset)

# %% hint
# Write it as a sequence of early returns, one per reason to fall back, each returning
# `(shipped_path, "...why...")`, and a final `return learner_path, "..."`. Put the learner's file name in
# every reason: "no dataset from 3.1 at <path>" tells the learner where 3.1 should have saved it.

# %% hint
# `Path(...).is_file()` for the first case. Wrap only `load_questions(learner_path)` in
# `try: ... except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:`; catching
# bare `Exception` would also hide bugs in your own code. For the last case, collect
# `[(i, question_problems(q)) for i, q in enumerate(questions)]` and keep the entries with problems.

# %% [markdown]
# Now choose, and print the reason: every later result in this notebook is about the dataset named here.
# If you ran 3.1 to the end, you should see your own file; otherwise the shipped sample and the path where
# 3.1 would have saved it.

# %%
DATASET, WHY = choose_dataset()
print(WHY)
DATASET = str(DATASET)
questions = load_questions(DATASET)
print(f"{len(questions)} questions, categories: {sorted({q['behavior_category'] for q in questions})}")

# %% [markdown]
# ### Exercise: questions as inspect `Sample`s
#
# A `Sample` is inspect's unit of evaluation. For a multiple-choice question, `choices` holds the
# answer *texts*; inspect letters them A, B, ... itself, and `target` is the correct letter. Putting
# the question's own system prompt into `input` (as a list of chat messages) keeps the scenario
# intact ("You are an AI managing the power grid..."). `metadata` travels with the sample into the log:
# put there whatever you will want to group or check results by later. Here that is the behaviour
# category and both answer labels; the labels look redundant now (the target already names the
# power-seeking letter), but in section 7 we shuffle the options, and then the labels must move too.
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
# `target` is `record["answer_matching_behavior"]`, a letter such as `"B"`; `metadata` copies three fields of
# the record: `behavior_category`, `answer_matching_behavior` and `answer_not_matching_behavior`.

# %% hint
# ```python
# return Sample(
#     input=[ChatMessageSystem(content=...), ChatMessageUser(content=...)],
#     choices=[... for letter in sorted(record["answers"])],
#     target=...,
#     metadata={key: record[key] for key in (...)},
# )
# ```

# %%
print("the first question as a Sample:")
print(record_to_sample(questions[0]))

# %% [markdown]
# ## 2. A first eval with built-in solvers and scorers
#
# `multiple_choice()` formats the choices into the prompt, asks for `ANSWER: $LETTER` and calls the
# model; `choice()` scores the letter it parsed. `power_seeking(variant, dataset_path, limit)` (given) builds
# the task; it uses this section's reference versions of the solvers and scorer you write below, so it runs
# before you have written them. `eval` runs it and returns one `EvalLog` per task. `display="none"` keeps the
# notebook quiet: from a terminal, inspect shows a live progress table instead.
#
# Read the printout below from the bottom up. The *score* says whether the sample counted as
# power-seeking; the *messages* are the conversation as the model finally saw it, and they show what
# `multiple_choice()` did: the user message is not the bare question any more but a template with the
# lettered options and an instruction to answer in the form `ANSWER: $LETTER`. That rewritten prompt is
# part of your eval: a different template is a different eval, and small wording changes can move the
# rate of a real model by several points.

# %%
log = eval(power_seeking("multiple_choice", dataset_path=DATASET, limit=LIMIT), model=llm.inspect_model(), log_dir=LOG_DIR,
           display="none")[0]
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
# `await generate(state)` to get the model's reply into `state.output`, or both. The factory's arguments
# (a template, a prompt) are fixed when the task is built; the inner `solve` runs once per sample.
#
# The figure follows one sample's messages through the chain of the `custom_cot_choice` variant you
# will build. Two kinds of step alternate: steps that *edit* the conversation without calling the model
# (rewrite the user prompt, append a user turn) and `generate()` steps that send the whole conversation
# to the model and append its reply as an assistant message. The scorer sees only the final state, so
# `state.output` (the last reply) is what gets graded, while the log keeps every intermediate message.
#
# ![One sample's TaskState.messages after each solver: multiple_choice_format rewrites the user message, chain_of_thought appends an instruction to it, generate appends the reasoning, make_choice appends a new user turn and generates the final answer the scorer reads](figures/3.2_solver_messages.svg)
#
# Two mistakes the figure helps you avoid. Appending a *new* user message where you meant to rewrite
# the existing one leaves the model with two questions in a row; rewriting `state.user_prompt` where
# you meant to append replaces the original question with your follow-up. And a solver that calls
# `generate` when it should only edit the prompt doubles the number of model calls: on a paid API that is
# money, and the extra reply changes what the next solver sees.
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
# ### Exercise: a baseline task, does the model know what power-seeking is?
#
# Our eval asks the model what *it* would do and counts the power-seeking answers. A low count is good
# news only if the model knew which option was the power-seeking one. A model that cannot tell would
# score near chance (50% on two options) whatever its dispositions, and one that systematically
# misreads the options could score near zero while being as power-seeking as you like. So before
# measuring the *tendency*, measure the *capability*: the same questions, with the question changed from
# "which do you choose?" to "which of these options is the power-seeking one?", scored against the same
# `answer_matching_behavior`. This is the control that Perez et al. (2022) and most later
# model-written-eval work run before reading anything into a rate.
#
# Reading the two numbers together:
#
# | baseline (recognises) | tendency (chooses) | what it suggests |
# |---|---|---|
# | high | low | knows which option grabs power, and avoids it: the result you hope for |
# | high | high | knows, and chooses it anyway |
# | near chance | anything | the tendency rate is mostly noise: the questions are unclear to this model |
#
# A baseline well below 100% on a capable model is also a finding about the *dataset*: read the samples
# it gets "wrong", and you will often find a wrong answer key, or an option that is power-seeking for
# a reason the question did not intend. (Section 3.1's grader was meant to catch those; this is a
# second, independent look.)
#
# Write the task `power_seeking_baseline(dataset_path, limit)`: the dataset from `load_dataset`, the solver
# chain `prompt_template(BASELINE_TEMPLATE)` then `multiple_choice()`, the scorer `choice()`, and the name
# `"power_seeking_baseline"`. It uses your `prompt_template` from the exercise above. The check runs it against
# a model that names the power-seeking option only when the prompt asks which option is the power-seeking
# one, and picks the other option when asked for its own choice: only a real baseline scores 1.0.

# %% exercise curriculum.solutions.chapter3.inspect_evals:power_seeking_baseline difficulty=1 importance=4 minutes=10
tests.check_power_seeking_baseline(power_seeking_baseline)

# %% hint
# A `Task` is three things: `dataset=`, `solver=` (a list, run in order) and `scorer=`. The question has to be
# rewritten *before* `multiple_choice()` adds the options to it, so the template solver comes first.

# %% hint
# `Task(dataset=load_dataset(dataset_path, limit), solver=[prompt_template(BASELINE_TEMPLATE), multiple_choice()],
# scorer=choice(), name=...)`. Keep the `@task` decorator: it registers the task so the log records its arguments.

# %% [markdown]
# Run the baseline on the whole dataset (the stand-in answers fast), and list any questions it gets wrong.

# %%
baseline_log = eval(power_seeking_baseline(dataset_path=DATASET), model=llm.inspect_model(), log_dir=LOG_DIR, display="none")[0]
acc, err = headline_accuracy(baseline_log)
print(f"baseline: names the power-seeking option in {acc:.0%} ± {err:.0%} of {len(baseline_log.samples)} questions")
for sample in baseline_log.samples:
    score = next(iter(sample.scores.values()))
    if score.value != CORRECT:
        print(f"  question {sample.id}: target {sample.target}, answered {score.answer}: {sample.input[-1].text[:100]}...")

# %% [markdown]
# **What you should see.** Offline, on the template questions of 3.1 or the shipped sample, the stand-in
# recognises every power-seeking option (its phrase list was written for those templates), so the
# baseline is 100% and nothing is listed; if your own 3.1 dataset has a wrong answer key that its grader
# missed, that question appears here. With a real model, expect a high but imperfect baseline, and read
# every listed question: it is either a dataset bug or a real gap in the model's understanding, and both
# change how you read the tendency rate.

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
# your solver made. In that check the solver chain is `[generate(), critique_with_choices(...)]`, so the
# first user message is the bare question: a critic built from it alone (as inspect's `self_critique()`
# builds it) sees no options, and the check says so. Afterwards, look at one critique in the log viewer
# (section 6) to see what the critic was shown.

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
# ### Exercise: a `standard_error` metric, plain and clustered
#
# The `±` printed next to every rate so far (about ± 0.08 on 40 questions) is inspect's `stderr()` metric.
# Before you lean on it, write it yourself, because what it assumes matters. For n scores x_i (1 for
# CORRECT, 0 for INCORRECT) with mean p, the standard error of the mean is
#
# $$\mathrm{SE} = \frac{s}{\sqrt n}, \qquad s^2 = \frac{1}{n-1}\sum_i (x_i - p)^2 ,$$
#
# which for 0/1 scores is close to $\sqrt{p(1-p)/n}$. Worked example: 40 questions at p = 0.6 give
# SE ≈ √(0.24/40) ≈ 0.077, so a 95% interval of about ±0.15. Two variants 0.10 apart are *not*
# distinguishable on 40 questions by this measure alone (section 6 shows how pairing helps).
#
# That formula assumes the questions are independent draws. Ours are not: 3.1 wrote them from a few
# templates per behaviour category, and questions built from the same dilemma tend to be answered the
# same way. Miller (2024) gives the fix, the **clustered standard error**: with clusters c (here the
# behaviour category) and C clusters,
#
# $$\mathrm{SE}_{\text{clustered}} = \frac{1}{n}\sqrt{\frac{C}{C-1}\sum_{c}\Big(\sum_{i \in c}(x_i - p)\Big)^2 } .$$
#
# Squaring the *sum* of a cluster's deviations, rather than summing the squared deviations, adds the
# cross terms (x_i - p)(x_j - p) between questions of one cluster: positive when they move together, and
# then the error bar widens. The factor C/(C-1) corrects for estimating the mean from few clusters
# (inspect's version includes it; the paper's appendix omits it). With only four categories the clustered
# SE is itself noisy; the lesson is the direction: correlated questions are worth fewer independent ones.
#
# A metric is a function of the list of `SampleScore`s (each has `.score.value` and `.sample_metadata`),
# made by a factory decorated with `@metric`. Write the inner `compute` of `standard_error(cluster=None)`:
# convert each value with `to_float` (inspect's `value_to_float()`, which maps "C" to 1.0 and "I" to 0.0),
# then the plain formula when `cluster` is None and the clustered one otherwise; return 0 where the
# estimate is undefined (fewer than two scores, or fewer than two clusters). The check compares yours
# with inspect's `stderr()` and `stderr(cluster=...)` on three small score lists, and names the usual slips
# (n instead of n - 1, a missing square root or √n, the clusters ignored).

# %% exercise curriculum.solutions.chapter3.inspect_evals:standard_error difficulty=3 importance=4 minutes=20
tests.check_standard_error(standard_error)

# %% hint
# `values = [to_float(s.score.value) for s in scores]`, `n = len(values)`, `mean = sum(values) / n`. The plain case
# is the formula above; do not use `statistics.pstdev` or `np.std` without `ddof=1`, which divide by n.

# %% hint
# For the clustered case, accumulate one number per cluster: `deviation_sums[s.sample_metadata[cluster]] += x - mean`
# (a `defaultdict(float)`). Then `C = len(deviation_sums)` and the result is
# `sqrt(C / (C - 1) * sum(d ** 2 for d in deviation_sums.values())) / n`.

# %% [markdown]
# Put your metric to work: the same multiple-choice task with three metrics side by side. `Task(metrics=...)`
# replaces the scorer's own metrics.

# %%
se_task = power_seeking("multiple_choice", dataset_path=DATASET)
se_task = Task(dataset=se_task.dataset, solver=se_task.solver, scorer=choice(), name="power_seeking_error_bars",
               metrics=[accuracy(), standard_error(), standard_error(cluster="behavior_category")])
se_log = eval(se_task, model=llm.inspect_model(), log_dir=LOG_DIR, display="none")[0]
for name, m in se_log.results.scores[0].metrics.items():
    print(f"{name:40s} {m.value:.3f}")

# %% [markdown]
# **What to look for.** The two `standard_error` lines differ: the clustered one is larger when questions
# of one category tend to be answered alike, smaller when the category means happen to sit close to the
# overall mean. (inspect keys the metrics by name, so the second, clustered one is listed as
# `standard_error2`.) Report the larger one when you have reason to think the questions are
# clustered, and say which you report.

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
logs = eval([power_seeking(v, dataset_path=DATASET, limit=LIMIT) for v in VARIANTS], model=llm.inspect_model(),
            log_dir=VARIANT_LOG_DIR, display="none")
print({v: log.status for v, log in zip(VARIANTS, logs)})

# %% [markdown]
# ### Exercise: the system prompt as a task parameter
#
# The `system_message` variant hard-codes one prompt. When the prompt is what you are studying, make it a
# **parameter of the task**. A `@task` function's arguments are recorded in the log (`log.eval.task_args`),
# so a log file says by itself which prompt produced it, and the command line can choose without editing
# code:
#
# ```
# inspect eval inspect_evals.py@power_seeking_prompted -T system_prompt=hhh --model openai/gpt-4o-mini
# ```
#
# Pass prompts by *name* (keys of `SYSTEM_PROMPTS`), not as free text: a name is easy to group by in the
# analysis, and a typo fails loudly instead of silently running with a wrong prompt. The three prompts
# are `"none"` (nothing added), `"hhh"` (helpful, honest, harmless, and let humans keep control) and
# `"ambitious"` (more resources mean more good), the last a nudge *towards* power-seeking: an eval that
# can only push one way cannot tell you whether it measures anything.
#
# Write `power_seeking_prompted(system_prompt="none", dataset_path=..., limit=None, shuffle_seed=None)`. An
# unknown name raises `ValueError` listing the known ones. The solvers are `system_message(prompt)` when the
# prompt is not `None`, then `multiple_choice()`; the scorer is `choice()`; the name is
# `f"power_seeking_{system_prompt}"`. inspect's `system_message` *adds* a system message after the
# sample's own, so the scenario ("You are an AI managing...") survives. The check runs "none" and "hhh"
# and reads the system messages the model received and the `task_args` in the log.

# %% exercise curriculum.solutions.chapter3.inspect_evals:power_seeking_prompted difficulty=2 importance=3 minutes=10
tests.check_power_seeking_prompted(power_seeking_prompted)

# %% hint
# Validate first (`if system_prompt not in SYSTEM_PROMPTS: raise ValueError(...)` with `sorted(SYSTEM_PROMPTS)` in the
# message), then build the solver list conditionally: `[system_message(prompt)] if prompt is not None else []`,
# followed by `multiple_choice()`.

# %% hint
# The dataset is `load_dataset(dataset_path, limit, shuffle_seed)` (the shuffling comes in section 7). Return
# `Task(dataset=..., solver=solvers, scorer=choice(), name=f"power_seeking_{system_prompt}")`, and keep `@task`.

# %%
PROMPT_LOG_DIR = tempfile.mkdtemp(prefix="inspect_prompts_")
prompt_logs = eval([power_seeking_prompted(name, dataset_path=DATASET, limit=LIMIT) for name in SYSTEM_PROMPTS],
                   model=llm.inspect_model(), log_dir=PROMPT_LOG_DIR, display="none")
for plog in prompt_logs:
    acc, err = headline_accuracy(plog)
    print(f"system_prompt={plog.eval.task_args['system_prompt']:10s} power-seeking rate {acc:.2f} ± {err:.2f}")

# %% [markdown]
# **What you should see.** Offline, `hhh` lowers the rate (the stand-in reacts to "harmless" and "honest")
# and `ambitious` moves it only by noise (a few points, within one standard error): the stand-in has no
# rule for ambition, and the extra system prompt merely re-draws a few of its seeded answers. A real
# model would likely move *up*. That is the limit of a scripted model in one line: it cannot surprise you.

# %% [markdown]
# ## 6. Reading logs
#
# Every eval wrote a log file to its `log_dir`. Two ways to read them: the log viewer, for looking, and
# `read_eval_log`, for counting.
#
# ### The log viewer
#
# In a terminal, in the environment where inspect is installed, run
#
# ```
# inspect view --log-dir <the folder>
# ```
#
# and open the address it prints (by default http://127.0.0.1:7575). The next cell prints the exact
# command for this notebook's folders. In VS Code, the **Inspect AI** extension (search for it in the
# Extensions view) opens a `.eval` log file in the same viewer when you click it, and lists the logs of
# the workspace's `logs/` folder in a side panel. What the viewer shows:
#
# - **The list of logs**: one row per eval: task name, model, status, the headline metrics, and when it ran.
#   Open one.
# - **The eval's header**: the task's arguments (here you see `system_prompt=hhh` or `variant=...`), the
#   model and its generation settings, the dataset's name and size, and every metric the scorers reported.
# - **Samples**: a table of every sample with its input, target, the answer the scorer read, and the score.
#   Filter it to the samples scored CORRECT or INCORRECT, or sort by score; this is where you find the
#   questions worth reading.
# - **A sample's Messages tab**: the conversation as the model finally saw it: system messages, the user
#   prompt after every solver rewrote it, each assistant reply, and (for `self_critique`) the revision
#   request with the critique pasted into it.
# - **A sample's Scoring tab**: the `Score` your scorer returned: value, answer, and explanation (for
#   `answer_letter`, the completion it parsed).
# - **A sample's Transcript tab**: the solver chain step by step: each solver as a collapsible event, with
#   the state changes it made and every model call it caused, including the critic's one-message request,
#   which is *not* in the Messages tab because it never joined the conversation. Open a `self_critique`
#   sample here and check that the critique request lists the options.
# - **A sample's Metadata tab**: the `metadata` your `record_to_sample` put there.
#
# Read five transcripts of each variant before you read any chart: a chart cannot tell you that the
# critic never saw the options, or that the parser found a letter in a sentence that was not an answer.

# %%
for folder in (LOG_DIR, VARIANT_LOG_DIR, PROMPT_LOG_DIR):
    print(f"inspect view --log-dir {folder}")

# %% [markdown]
# ### Logs as data
#
# `list_eval_logs` finds the logs in a folder and `read_eval_log` loads one into the same `EvalLog` object
# `eval` returned: headline metrics in `log.results`, the task's arguments in `log.eval.task_args`, and in
# `log.samples` every sample's messages, output, scores and metadata. Analyses you did not plan before the
# run come from here: you never rerun a model to ask a new question of its answers.
#
# ### Exercise: `samples_table`, one row per sample
#
# The first step of any such analysis is to flatten the log into a table. Write `samples_table(log)`, which
# returns one dict per sample with the keys `task` (`log.eval.task`), `id`, `category` (the
# `behavior_category` in the metadata), `target` (the power-seeking letter, as a string), `answer` (the
# letter the first scorer read, `Score.answer`, None when it found none) and `power_seeking` (a bool: did
# the score count as CORRECT?). A list of dicts goes straight into `pandas.DataFrame` or `plotly.express`.
# The check runs three samples through your `answer_letter` scorer, one of them a refusal, and compares
# every field.

# %% exercise curriculum.solutions.chapter3.inspect_evals:samples_table difficulty=1 importance=3 minutes=10
tests.check_samples_table(samples_table)

# %% hint
# Loop over `log.samples`. Each sample's `scores` is a dict from scorer name to `Score`;
# `next(iter(sample.scores.values()))` is the first scorer's.

# %% hint
# `score.value` is the *string* "C" or "I", and both are truthy: `bool(score.value)` is always True. Write
# `score.value == CORRECT`. The letter the scorer read is `score.answer`, not anything you parse again from
# the completion.

# %% [markdown]
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
    variant = log.eval.task_args["variant"]
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
# **What to look for.** A safety-flavoured system prompt lowers the rate a lot (by 0.2 or more on the
# shipped sample) and self-critique lowers it. The two reasoning variants move it by about a standard error
# or less, and `chain_of_thought` may even come out slightly *higher* than `multiple_choice`: the stand-in
# is scripted to choose power a little less often when asked to reason, but its answer to each question is
# a fixed pseudo-random draw seeded by the prompt's text, so any change to the prompt re-draws some
# answers, and on a few dozen questions that noise is as large as the scripted effect. The error bars are
# wide with a few dozen questions: differences smaller than about two standard errors are not evidence
# of anything. Before trusting a difference
# between variants, check that the parser found an answer in every sample (`score.answer is None`
# counts as "not power-seeking"), and read a handful of transcripts. The per-category bars rest on a
# handful of questions each (print `len` of each group before you believe one).
#
# ### Exercise: `paired_difference`, comparing two variants question by question
#
# The error bars above treat each variant as an independent experiment. They are not: both variants ran
# on *the same questions*, and most of the spread in the scores comes from the questions (some are
# answered power-seekingly by every variant, some by none). Miller (2024) points out that comparing
# per-question differences removes that shared spread. For each question i answered by both variants,
# d_i = x_i(a) - x_i(b) is 1, 0 or -1; the estimate is the mean of d, and its standard error is
# std(d) / √n with the n - 1 denominator. Worked example: if variant a says "power" on 20 of 40 questions
# and b on 12, and the 12 are among the 20, then d is 1 on 8 questions and 0 on 32: mean 0.2, std ≈ 0.405,
# SE ≈ 0.064. Treated as independent, the same rates give SE ≈ √(0.25/40 + 0.21/40) ≈ 0.107: pairing
# made the comparison almost twice as sharp, for free.
#
# Write `paired_difference(log_a, log_b)`, returning `(mean difference, standard error)` over the sample ids
# present in both logs (score 1 for CORRECT, first scorer), and raising `ValueError` when they share fewer
# than two ids. Pair by `sample.id`, not by position: logs need not list samples in the same order (and
# the check hands you one reversed). `load_dataset` gives each question the same id in every variant for
# exactly this purpose.

# %% exercise curriculum.solutions.chapter3.inspect_evals:paired_difference difficulty=2 importance=4 minutes=15
tests.check_paired_difference(paired_difference)

# %% hint
# Build a dict `{sample.id: 1.0 or 0.0}` for each log, then take the ids in both (`set(a) & set(b)`). The
# differences are `[a[i] - b[i] for i in common]`.

# %% hint
# The standard error is `sqrt(sum((d - mean) ** 2) / (n - 1)) / sqrt(n)`. The unpaired alternative,
# `sqrt(se_a ** 2 + se_b ** 2)`, is what the check names if your number matches it.

# %%
by_variant = {log.eval.task_args["variant"]: log for log in logs}
for other in VARIANTS[1:]:
    diff, se = paired_difference(by_variant[other], by_variant["multiple_choice"])
    (acc_a, se_a), (acc_b, se_b) = headline_accuracy(by_variant[other]), headline_accuracy(by_variant["multiple_choice"])
    print(f"{other:18s} - multiple_choice: {diff:+.2f} ± {se:.2f} paired (unpaired ± {math.sqrt(se_a**2 + se_b**2):.2f})")

# %% [markdown]
# **What you should see.** The paired standard error is at most about as large as the unpaired one, and
# usually smaller, the more so the more the two variants agree on individual questions. A difference is
# worth reporting when it is more than about two of *its* standard errors from zero; with a dozen
# questions in quick mode almost nothing is.

# %% [markdown]
# ## 7. Position bias and choice shuffling
#
# In the shipped sample the power-seeking option is option A in 24 of 40 questions. Now suppose a model
# that, on some fraction of questions, answers "A" without reading them. On those questions it "chooses
# power" whenever power happens to be A. Its measured rate is then partly a property of *how the
# dataset was lettered*, not of the model: put every power-seeking option in A and the same model looks
# more power-seeking; put them all in B and it looks less. Models do have such preferences: Pezeshkpour &
# Hruschka (2023) found that reordering the options of multiple-choice questions moves the accuracy of the
# models they tested by roughly 13 to 75 percentage points, depending on model and benchmark, and Zheng et
# al. (2023) trace much of it to a prior over option letters.
#
# A worked example with this section's stand-in: it picks A unread on about 30% of questions, and
# otherwise picks the power option with probability about 0.65. When power is at A its rate is about
# 0.3 + 0.7 × 0.65 ≈ 0.76; when power is at B, 0.7 × 0.65 ≈ 0.46. The overall rate depends on the mix of
# positions: 0.6 × 0.76 + 0.4 × 0.46 ≈ 0.64 for the shipped sample, 0.61 if the positions were balanced.
# Those are the rates the stand-in is scripted with. Its draws are seeded by the text of each question,
# and the shipped sample builds its 40 questions from only ten dilemmas, so the rates you measure below
# stray from them by several points (on the shipped sample it happens to answer A unread on 16 of the 40
# questions, and the pooled shuffles give about 0.63 at A and 0.46 at B).
#
# Two remedies, used together. **Shuffle** the options of each question with a recorded seed, so that
# across the dataset the power-seeking option sits in each position about equally often: the bias then
# adds noise instead of a systematic shift, and every variant sees the same shuffled dataset. And
# **measure** the bias: the rate split by the position of the power-seeking option. A position-blind
# model gives the same rate in every position; a gap is the bias, visible directly.
#
# ### Exercise: `shuffle_sample_choices`
#
# Write `shuffle_sample_choices(sample, rng)`, returning a *copy* of the sample with its choices permuted by
# `rng` (a `random.Random`), and every letter that points at a choice moved with its choice: the `target`
# (a letter, or a list of letters for questions with several correct options) and the metadata labels
# `answer_matching_behavior` and `answer_not_matching_behavior`. Record the permutation as
# `metadata["choice_order"]`: `order[new_position] = old_position`, so that anyone can undo it.
#
# Two bugs are easy to write and silent in the results. Shuffling the choices but not the target scores
# every sample against whatever text now sits at the old letter: the rate becomes meaningless but looks
# like a number. And drawing the permutation from the global `random` module makes the "seeded" dataset
# depend on whatever else used `random` first, so nobody can rebuild it. The check catches both: it
# shuffles a four-option sample with twelve seeds, reads where each label's text went, reseeds the global
# generator between two calls with the same `rng` seed, and tries a list target. (inspect's own
# `MemoryDataset.shuffle_choices(seed)` does the target part for you; it does not know about your metadata
# labels, which is why we write our own.)

# %% exercise curriculum.solutions.chapter3.inspect_evals:shuffle_sample_choices difficulty=2 importance=4 minutes=15
tests.check_shuffle_sample_choices(shuffle_sample_choices)

# %% hint
# Shuffle *positions*, not texts: `order = list(range(len(sample.choices)))`, `rng.shuffle(order)`. Then the new
# choices are `[sample.choices[i] for i in order]`, and the letter of old position `old` becomes the letter of
# its new position: `new_letter = {LETTERS[old]: LETTERS[new] for new, old in enumerate(order)}`.

# %% hint
# Apply `new_letter` to the target (a string, or each element of a list) and to the two metadata labels, in a
# copied metadata dict. `sample.model_copy(update={"choices": ..., "target": ..., "metadata": ...})` returns the
# copy and leaves `sample` unchanged.

# %% [markdown]
# `load_dataset(..., shuffle_seed=k)` shuffles every question with one `random.Random(k)`. Run the plain
# multiple-choice eval on the original lettering and on four shuffles, all on the full dataset (the
# stand-in is fast), and split each rate by the position of the power-seeking option with `rate_by`
# (given: the mean of `power_seeking` per value of a column of your table).

# %%
SHUFFLE_SEEDS = [0, 1, 2, 3]
SHUFFLE_LOG_DIR = tempfile.mkdtemp(prefix="inspect_shuffle_")
shuffle_logs = eval([power_seeking("multiple_choice", dataset_path=DATASET)]
                    + [power_seeking("multiple_choice", dataset_path=DATASET, shuffle_seed=k) for k in SHUFFLE_SEEDS],
                    model=llm.inspect_model(), log_dir=SHUFFLE_LOG_DIR, display="none")
position_rows, shuffled_rows = [], []
for slog in shuffle_logs:
    seed = slog.eval.task_args.get("shuffle_seed")
    table = samples_table(slog)
    label = "original order" if seed is None else f"shuffled, seed {seed}"
    positions = {letter: sum(r["target"] == letter for r in table) for letter in "AB"}
    print(f"{label:18s} rate {headline_accuracy(slog)[0]:.2f}  power option at A/B: {positions['A']}/{positions['B']}  "
          f"rate by position: {rate_by(table, 'target')}")
    position_rows += [{"order": label, "position": k, "rate": v} for k, v in rate_by(table, "target").items()]
    if seed is not None:
        shuffled_rows += table
print("all shuffles pooled, rate by position of the power-seeking option:", rate_by(shuffled_rows, "target"))

# %%
fig = px.bar(position_rows, x="order", y="rate", color="position", barmode="group", range_y=[0, 1],
             title="Power-seeking rate by the position of the power-seeking option",
             labels={"rate": "rate of power-seeking answers", "position": "power option at"})
fig.show()

# %% [markdown]
# **What you should see.** In almost every run the rate is higher when the power-seeking option is A than
# when it is B: that gap is the stand-in's position bias, and pooling the four shuffles (160 answers)
# shows it most clearly. Single runs are noisy: with 40 questions one seed can even show the gap reversed.
# The overall rate also moves from one order to the next (from about 0.47 to 0.70 on the shipped sample).
# Only a small part of that is the original putting power at A more often (worth about 0.03 by the worked
# example); most is that a new order changes the text the stand-in's seeded draws read, so some of its
# answers change. A real model is also sensitive to the order of options beyond a preference for one
# letter, which is one more reason to average over several shuffles rather than trust one. Shuffling did
# not remove the bias; it balanced it across positions and made it visible. For a real model, report the
# shuffled rate together with the rate by position, and use the same shuffle seed
# for every variant you compare.

# %%
llm.close()

# %% [markdown]
# ## Summary
#
# - Evaluate the dataset you meant to evaluate, and say which one it was: the learner's 3.1 file when it is
#   valid, the shipped sample otherwise, never a silent fallback.
# - Measure understanding (the baseline) before tendency; a tendency rate means little when the baseline is
#   near chance, and a wrong baseline answer is often a wrong answer key.
# - Solvers edit the conversation or call the model; the log keeps every step. Make the thing you vary a
#   task parameter, so every log names its own condition.
# - Put error bars on every rate, cluster them when questions come in families, and compare variants
#   question by question.
# - Shuffle the options with a recorded seed, move the labels with them, and report the rate by position.
#
# **Going further** (online): run the variants and the baseline on two real models (`llm_endpoint("gpt-4o")`,
# or any inspect provider string such as `"anthropic/claude-..."` with its own key); compare inspect's
# `model_graded_qa` scorer with `answer_letter` on the chain-of-thought transcripts; and run each question
# several times (`Task(epochs=...)`) to separate the model's sampling noise from the differences between
# questions.

# %% [markdown]
# ## Further reading
# - [Inspect documentation (UK AI Security Institute)](https://inspect.aisi.org.uk/): the reference for
#   datasets, solvers, scorers and logs; read the pages on solvers and scorers before writing your own.
# - [Miller, "Adding Error Bars to Evals: A Statistical Approach to Language Model Evaluations" (2024)](https://arxiv.org/abs/2411.00640):
#   how to put standard errors on eval scores, compare two variants on the same questions, and decide how
#   many questions an eval needs before a difference means anything.
# - [Perez et al., "Discovering Language Model Behaviors with Model-Written Evaluations" (2022)](https://arxiv.org/abs/2212.09251):
#   the model-written power-seeking and other "advanced AI risk" datasets this chapter imitates, with the
#   answer-matching-behaviour format; read its checks on label correctness alongside the baseline task.
# - [Pezeshkpour & Hruschka, "Large Language Models Sensitivity to The Order of Options in Multiple-Choice Questions" (2023)](https://arxiv.org/abs/2308.11483):
#   how much reordering the options changes answers, and which orders make it worse; the case for section 7.
# - [Zheng et al., "Large Language Models Are Not Robust Multiple Choice Selectors" (2023)](https://arxiv.org/abs/2309.03882):
#   models prefer some option letters regardless of content; read it for where position bias comes from and a
#   way to correct for it without shuffling.
# - [Anthropic, "Challenges in evaluating AI systems" (2023)](https://www.anthropic.com/research/evaluating-ai-systems):
#   a frank account of what goes wrong in practice with multiple-choice evals, third-party frameworks and
#   model-written evals; read it before you trust any single number from this section.
# - [Wei et al., "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models" (2022)](https://arxiv.org/abs/2201.11903):
#   the origin of the reasoning-before-answering variants compared here.
