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
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Scorer, Target, accuracy, scorer, stderr
from inspect_ai.solver import Generate, Solver, TaskState, solver

from curriculum.solutions.chapter3.inspect_evals import (
    ANSWER_RE,
    DATASET_PATH,
    MAKE_CHOICE_PROMPT,
    MCQ_TEMPLATE,
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
LIMIT = full_or_quick(None, 12)  # questions per eval: all of them for you, a dozen in CI

# %% [markdown]
# ## 1. The dataset
#
# A `Sample` is inspect's unit of evaluation. For a multiple-choice question, `choices` holds the
# answer *texts*; inspect letters them A, B, ... itself, and `target` is the correct letter. Putting
# the question's own system prompt into `input` (as a list of chat messages) keeps the scenario
# intact ("You are an AI managing the power grid...").
#
# **Exercise**: implement `record_to_sample`. The check runs your samples through inspect's built-in
# `multiple_choice` solver and `choice` scorer.

# %% exercise curriculum.solutions.chapter3.inspect_evals:record_to_sample
tests.check_record_to_sample(record_to_sample)

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
# **Exercise**: `prompt_template`, a solver that wraps the user prompt in a template.

# %% exercise curriculum.solutions.chapter3.inspect_evals:prompt_template
tests.check_prompt_template(prompt_template)

# %% [markdown]
# **Exercise**: `multiple_choice_format`: like the first half of inspect's `multiple_choice`, it
# writes the choices into the prompt, but it does not call the model, so we can put reasoning steps
# between the question and the answer.

# %% exercise curriculum.solutions.chapter3.inspect_evals:multiple_choice_format
tests.check_multiple_choice_format(multiple_choice_format)

# %% [markdown]
# **Exercise**: `make_choice`: after the model has reasoned freely, ask it to commit to a letter.
# Separating *thinking* from *deciding* is what lets us score free-form reasoning with a simple parser.

# %% exercise curriculum.solutions.chapter3.inspect_evals:make_choice
tests.check_make_choice(make_choice)

# %% [markdown]
# ## 4. A custom scorer
#
# A scorer is an `async` function `score(state, target) -> Score`, made by a factory decorated with
# `@scorer(metrics=[...])`; the metrics aggregate the per-sample scores. Ours reads the *last*
# `ANSWER: X` in the completion (models often mention several letters while reasoning).
#
# **Exercise**: implement `answer_letter`.

# %% exercise curriculum.solutions.chapter3.inspect_evals:answer_letter
tests.check_answer_letter(answer_letter)

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
# | `self_critique` | `multiple_choice()`, `self_critique()` | `answer_letter()` |
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
# **Exercise**: `accuracy_by_category`: the power-seeking rate per behaviour category.

# %% exercise curriculum.solutions.chapter3.inspect_evals:accuracy_by_category
tests.check_accuracy_by_category(accuracy_by_category)

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
