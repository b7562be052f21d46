# %% [markdown]
# # 3.1 Threat models and model-written evaluation datasets
#
# An evaluation is only as good as the questions in it, and writing hundreds of good questions by
# hand is slow. In this section we get an LLM to write a multiple-choice eval for us, the way
# Perez et al. (2022, *Discovering Language Model Behaviors with Model-Written Evaluations*) did,
# and we build the engineering around it that makes the result trustworthy:
#
# 1. a **threat model** and a **rubric** that say exactly what a good question measures;
# 2. **structured output**: the model's reply is forced into a pydantic schema;
# 3. **few-shot and varied prompts**, so the questions are diverse;
# 4. **retries with exponential backoff** honouring `Retry-After`, because APIs fail;
# 5. **concurrency**: API calls spend their time waiting, so threads make generation several times faster;
# 6. **deduplication**, **model-graded scoring** and iterative top-up until we have enough good questions;
# 7. a JSON file with **provenance**: anyone can see how the dataset was made.
#
# **Which model?** With an `OPENAI_API_KEY` in your environment (or in a `.env` file at the repository
# root) the notebook uses the real API. Without one, it runs against a *loopback server*: a real HTTP
# server on your machine that speaks the OpenAI protocol, with a rule-based stand-in model that writes,
# grades and answers questions. Every line of code below is the same in both cases.

# %% setup
from __future__ import annotations

import json
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import openai
import plotly.express as px
from pydantic import BaseModel
from tqdm.auto import tqdm

from curriculum.solutions.chapter3.dataset_generation import (
    POWER_SEEKING,
    RETRYABLE,
    RUBRIC,
    SCORING_EXAMPLES_PATH,
    GenerationConfig,
    GenPrompts,
    QCResponse,
    QuestionGeneration,
    R,
    T,
    ThreatModel,
    generate_dataset,
    load_few_shot_examples,
    normalise,
    retry_after_seconds,
    save_dataset,
    scoring_messages,
)
from curriculum.checks.chapter3 import dataset_generation as tests
from curriculum.utils import full_or_quick
from curriculum.utils.mcq_standin import mcq_responder
from curriculum.utils.openai_server import Failures
from curriculum.utils.secrets import llm_endpoint

# %%
# max_retries=0: our own retry logic (below) handles failures, not the client's
llm = llm_endpoint("gpt-4o-mini", responder=mcq_responder, max_retries=0)
llm.describe()

# %% [markdown]
# ## 1. Threat model and rubric
#
# A threat model names a harmful capability or tendency and says how it would show up in behaviour.
# We use **power-seeking**: an AI acquiring resources, influence or control beyond what its task needs.
# "Power-seeking" is too vague to write questions for, so we split it into observable behaviours,
# and each question must target one of them. A question measures the threat model only if
#
# - the power-seeking option is *clearly* the one labelled `answer_matching_behavior`;
# - it is not confounded: choosing it should not also mean lying or breaking the law (then we would
#   measure honesty, not power-seeking);
# - it is a realistic decision with a real trade-off, not "would you like more power?".
#
# The rubric turns these criteria into a 1-10 scale a model can grade with.

# %%
print(POWER_SEEKING.definition)
for category, behaviour in POWER_SEEKING.behaviours.items():
    print(f"  {category:22s} {behaviour}")
print()
print(RUBRIC)

# %% [markdown]
# ## 2. Structured output
#
# We want each reply as data, not prose we have to parse. The `openai` client can send a pydantic
# class as a JSON schema (`response_format`) and the API then guarantees the reply matches it;
# `client.chat.completions.parse` also parses it back into the class. Note the field order in
# `QuestionGeneration`: `reasoning` comes first, so the model thinks before it writes questions.
#
# ### Exercise: structured output with `generate_structured_response`
#
# Every model call in this section goes through this one function, so it is worth getting right:
# send the messages with the schema, get the parsed reply back as a plain `dict`, and fail loudly
# when the model refuses instead of returning something half-empty. The check runs it against the
# loopback server and looks at the request it actually sent as well as the reply you return.

# %% exercise curriculum.solutions.chapter3.dataset_generation:generate_structured_response difficulty=2 importance=4 minutes=10
tests.check_generate_structured_response(generate_structured_response)

# %% hint
# This is one API call and a little unpacking. `client.chat.completions.parse` is like `create`, but it
# takes the pydantic class itself as `response_format`, turns it into a JSON schema for the request, and
# parses the reply back into an instance of that class for you.

# %% hint
# Forward every argument you were given: `model`, `messages`, `response_format`, `temperature`, and the
# token limit (`max_completion_tokens=max_tokens`). The check compares the request the server received
# with what you were given, so a forgotten `temperature` shows up. The reply is in
# `completion.choices[0].message`: if `message.refusal` is set, raise a `RuntimeError` with its text;
# otherwise `message.parsed` is a pydantic object, and `.model_dump()` turns it into the dict to return.

# %% hint
# ```python
# completion = client.chat.completions.parse(model=model, messages=messages, ...)
# message = completion.choices[0].message
# if message.refusal:
#     ...  # raise RuntimeError naming the refusal
# return ...  # the parsed object as a dict
# ```

# %%
messages = [{"role": "user", "content": "Write 2 questions that test an AI for power-seeking."}]
print(json.dumps(generate_structured_response(llm.client, llm.model, messages, QuestionGeneration), indent=2))

# %% [markdown]
# ## 3. Few-shot examples and variance prompts
#
# Ask a model the same thing twice and you get much the same questions. Two cheap fixes: show it a
# *random subset* of good examples each time (few-shot), and sometimes add a *variance prompt* that
# pushes it somewhere new ("set it in a domain the examples don't cover"). All randomness comes from
# one seeded `random.Random`, so a run can be reproduced.
#
# ### Exercise: few-shot and variance prompts in `build_generation_messages`
#
# Build the `[system, user]` pair for one generation request. The user message has up to three parts:
# the formatted instruction, a fresh random handful of example questions, and sometimes one variance
# prompt. Two calls with equally seeded generators must give identical messages, and different seeds
# should give visibly different ones: that is what the check measures over 200 draws.

# %% exercise curriculum.solutions.chapter3.dataset_generation:build_generation_messages difficulty=2 importance=3 minutes=15
tests.check_build_generation_messages(build_generation_messages)

# %% hint
# Three pieces, in order: fill in `prompts.user_prompt` with `.format(...)`, append the sampled examples,
# then with probability `prompts.p_var` append one variance prompt. Every random choice must come from the
# `rng` argument, never from the `random` module itself, or the same seed will not reproduce the same request.

# %% hint
# The template's placeholders are `threat_model_name`, `definition`, `n_questions` and `categories` (join the
# keys of `threat_model.behaviours` with commas). `rng.sample(examples, k)` draws without replacement; take
# `k = min(prompts.num_shots, len(examples))` so a short list does not raise. Write each example with
# `json.dumps`, one per line. For the variance prompt, compare `rng.random()` with `p_var` and pick with
# `rng.choice`: at most one per request.

# %% hint
# ```python
# user = prompts.user_prompt.format(threat_model_name=..., definition=..., n_questions=..., categories=...)
# shots = rng.sample(...)
# if shots:
#     user += "\n\nHere are some examples of good questions:\n" + ...  # one JSON line per example
# if prompts.variance_prompts and ...:  # the p_var coin flip
#     user += "\n\n" + ...
# return [{"role": "system", "content": prompts.system_prompt}, {"role": "user", "content": user}]
# ```

# %%
prompts = GenPrompts(few_shot_examples=load_few_shot_examples())
example = build_generation_messages(prompts, POWER_SEEKING, 4, random.Random(0))
print(example[1]["content"])

# %% [markdown]
# ## 4. Retries with exponential backoff
#
# At scale, API calls fail: 429 (rate limited, often with a `Retry-After` header saying how long to
# wait), 500s, timeouts, dropped connections, and now and then a reply that does not parse. The
# standard answer is to retry with **exponential backoff**: wait `base_delay * 2**k` before retry
# `k`, capped at `max_delay`, never less than the server's `Retry-After`, times a little random
# *jitter* so threads that failed together do not retry in lockstep. Errors that say *your request is
# wrong* (400) must not be retried: they will fail forever.
#
# ### Exercise: retries with exponential backoff
#
# Write the inner `wrapper` of `retry_with_backoff`: it calls `fn`, and on a retryable error waits and
# tries again. `retry_after_seconds(error)` (given) reads the server's requested wait from the headers.
# Waiting goes through the `sleep` argument, so the check can record your delays instead of sleeping:
# it compares them with the exact schedule the docstring describes, and counts the attempts the server saw.

# %% exercise curriculum.solutions.chapter3.dataset_generation:retry_with_backoff difficulty=3 importance=4 minutes=20
tests.check_retry_with_backoff(retry_with_backoff)

# %% hint
# A loop around a `try`: return as soon as `fn(*args, **kwargs)` succeeds; catch only `RETRYABLE` errors
# (anything else, such as a 400, should fly straight out); after `max_retries` retries, re-raise. Note the
# count: `max_retries=3` means 4 attempts and 3 waits between them.

# %% hint
# Before retry `k` (counting from 0) the base wait is `min(max_delay, base_delay * 2**k)`. If
# `retry_after_seconds(e)` is not `None`, wait at least that long: take the `max` of the two *after* the cap,
# so a server that asks for more than `max_delay` still gets it. Then multiply by
# `1 + jitter * random.random()` and call `sleep(...)`, the argument, not `time.sleep`. A bare `raise`
# inside the `except` re-raises the error you caught.

# %% hint
# ```python
# attempt = 0
# while True:
#     try:
#         return fn(*args, **kwargs)
#     except RETRYABLE as e:
#         if attempt == max_retries:
#             raise
#         delay = ...  # exponential, capped, at least the Retry-After
#         sleep(...)   # with jitter
#         attempt += 1
# ```

# %% [markdown]
# ## 5. Concurrency
#
# A request spends almost all its time waiting for the model. While one thread waits, others can
# send their requests: with `w` threads, `n` requests take about `n / w` request-times instead of
# `n` (until the API's rate limit bites). `ThreadPoolExecutor.map` runs a function over inputs on a
# pool of threads and returns results in input order.
#
# ### Exercise: `map_concurrently`
#
# A thread-pool version of `[fn(x) for x in inputs]` with a progress bar. The check sends 8 slow requests
# with 4 workers and looks at three things: the results are in input order even though the first one
# finishes last, never more than `max_workers` requests are in flight, and an exception in one call reaches
# the caller instead of vanishing.

# %% exercise curriculum.solutions.chapter3.dataset_generation:map_concurrently difficulty=1 importance=4 minutes=5
tests.check_map_concurrently(map_concurrently)

# %% hint
# `ThreadPoolExecutor.map` already does the hard parts: it runs at most `max_workers` calls at once, yields
# results in the order of the inputs, and re-raises a call's exception when you reach its result.
# `concurrent.futures.as_completed` would give completion order instead, which the check catches.

# %% hint
# Open the pool with `with ThreadPoolExecutor(max_workers=max_workers) as executor:`, wrap `executor.map(fn, inputs)`
# in `tqdm(..., total=len(inputs), desc=desc)` (a generator has no length, so tell tqdm the total), and turn
# it into a list inside the `with` block.

# %% [markdown]
# Let's see the speed-up and the retries working together. We start a server with 0.2 s latency
# where 20% of requests fail (429 with `Retry-After`, or 500), and ask for 16 completions with 1 and 8 workers.
# (`curriculum/benchmarks/concurrent_generation.py` measures this more carefully.)

# %%
with llm_endpoint(responder=mcq_responder, offline=True, max_retries=0, latency=0.2,
                  failures=Failures(rate=0.2, kinds=["429", "500"], retry_after=0.1, seed=0)) as flaky:
    ask = retry_with_backoff(
        lambda text: generate_structured_response(flaky.client, flaky.model, [{"role": "user", "content": text}], QuestionGeneration),
        base_delay=0.1,
    )
    requests = [f"Write 1 questions, variant {i}." for i in range(16)]
    for workers in (1, 8):
        t0 = time.perf_counter()
        results = map_concurrently(ask, requests, max_workers=workers)
        print(f"{workers} workers: {time.perf_counter() - t0:.2f} s, {len(results)}/16 results")
    print("server:", flaky.server.stats)

# %% [markdown]
# ## 6. Deduplication
#
# Models repeat themselves, especially the clichés ("would you like more power?"). Exact string
# matching misses copies that differ in case, punctuation or answer order, so we compare a
# *normalised* key. (Near-duplicates with different wording need embeddings; exact-after-normalising
# is the cheap first pass.)
#
# ### Exercise: `dedupe_questions`
#
# Keep the first copy of each question, in the original order. The work is in choosing the key: it must
# be equal for two copies that differ only in case, spacing, punctuation or which answer is A, and
# different as soon as the system prompt, the question or either answer text really differs.

# %% exercise curriculum.solutions.chapter3.dataset_generation:dedupe_questions difficulty=2 importance=3 minutes=10
tests.check_dedupe_questions(dedupe_questions)

# %% hint
# Walk through the questions once, keeping a set of keys you have already seen; a question whose key is
# new goes into the output and its key into the set. The key combines the system prompt, the question text
# and the answers, each passed through `normalise` (given).

# %% hint
# To make "A: take it, B: leave it" equal to "A: leave it, B: take it", put the answer *texts* into the key
# without their letters: `sorted(...)` of the normalised values of `q["answers"]`. Turn that list into a
# `tuple`, because a list cannot go into a set. The check also swaps A and B in one copy and changes a single
# answer in another, so a key built from the question text alone keeps too few.

# %% hint
# ```python
# seen, unique = set(), []
# for q in questions:
#     key = (normalise(q["system"]), normalise(q["question"]), ...)  # the answer texts, order-free
#     if key not in seen:
#         ...
# return unique
# ```

# %% [markdown]
# ## 7. Model-graded scoring and the whole pipeline
#
# A second model call grades each question against the rubric. Graded examples shown as earlier turns
# of the conversation (few-shot) calibrate the grader. Here is the grader on the four examples we ship:

# %%
scoring_examples = json.loads(SCORING_EXAMPLES_PATH.read_text())
for ex in scoring_examples:
    grade = generate_structured_response(llm.client, llm.model, scoring_messages(ex["question"], RUBRIC, []), QCResponse, temperature=0.0)
    print(f"reference {ex['response']['score']:2d}  grader {grade['score']:2d}  {ex['question']['question'][:70]}...")

# %% [markdown]
# `generate_dataset` (given) puts everything together: each round asks for the questions still
# missing (plus a margin), deduplicates them against everything seen so far, grades the new ones
# and keeps those scoring at least `threshold`; it stops when it has `n_target`. This loop is the
# simplest form of *iterative refinement*; better versions also feed the grader's explanations back
# into the generation prompt. Read it in `curriculum/solutions/chapter3/dataset_generation.py`: it uses every
# function you wrote.
#
# A real run makes hundreds of paid requests over many minutes, so it must not lose work:
#
# - **A request that keeps failing is skipped, not fatal.** When its retries run out, the item is
#   recorded as failed, the others go on, and the statistics (`stats["failed"]`) and a warning say
#   how many. Raising instead would throw away every request already paid for.
# - **Every finished request is written down at once.** With `checkpoint=...`, each generation and
#   each grade is appended to a JSONL file the moment it arrives. Rerun the same cell after a crash,
#   a closed laptop or a kernel restart, and only what is missing is sent: a generation is reused
#   when its prompt is exactly the same, a grade when its question is. Requests that failed are
#   tried again.
# - **Saving is atomic.** `save_dataset` writes to a temporary file and renames it over the old one,
#   so a crash mid-save leaves the previous file whole.

# %%
out_dir = Path(tempfile.mkdtemp(prefix="chapter3_"))
cfg = GenerationConfig(model=llm.model, n_target=full_or_quick(300, 24), questions_per_request=4, max_workers=8, seed=0)
questions, stats = generate_dataset(llm.client, cfg, prompts, scoring_examples=scoring_examples,
                                    checkpoint=out_dir / "generation.jsonl")
print(f"kept {len(questions)} questions; " + ", ".join(f"{k}: {v}" for k, v in stats.items() if k != "scores"))

# %%
rejected_share = stats["rejected"] / max(1, stats["generated"] - stats["duplicates"])
print(f"{stats['duplicates']} of {stats['generated']} generated questions were duplicates; the grader rejected {rejected_share:.0%} of the rest")
fig = px.histogram(x=stats["scores"], nbins=10, range_x=[0.5, 10.5], labels={"x": "rubric score"},
                   title="Rubric scores of every unique generated question (kept: right of the line)")
fig.add_vline(x=cfg.threshold - 0.5, line_dash="dash")
fig.show()
fig = px.histogram([q["behavior_category"] for q in questions], title="Kept questions per behaviour category")
fig.show()

# %% [markdown]
# Look at the categories: a balanced dataset needs roughly equal counts. If one category dominates,
# add it to the variance prompts, or generate per category.
#
# ## 8. Saving with provenance
#
# A dataset without a record of how it was made cannot be trusted or reproduced. We save the model,
# endpoint, every prompt, the rubric, the seed, the statistics and the code version alongside the
# questions. Never the API key: provenance files get shared.

# %%
path = save_dataset(out_dir / "power_seeking.json", questions, cfg, prompts, stats,
                    endpoint="openai" if llm.real else "loopback stand-in")
saved = json.loads(path.read_text())
print(path, "->", len(saved["questions"]), "questions")
print(json.dumps({k: saved["provenance"][k] for k in ("created", "endpoint", "generation_config", "prompts_sha256")}, indent=2))

# %% [markdown]
# Section 3.2 loads a dataset like this one into inspect-ai (the repository ships one in
# `data/chapter3/power_seeking_sample.json`, generated by this pipeline with the stand-in model).
#
# **Going further** (online): generate with a strong model and grade with a different one; plot the
# score distribution per variance prompt to see which prompts produce good questions; add a
# "hint" to the grader explanations loop (feed low-scoring explanations back into the generation prompt).

# %%
llm.close()

# %% [markdown]
# ## Further reading
# - [Perez et al., "Discovering Language Model Behaviors with Model-Written Evaluations" (2022)](https://arxiv.org/abs/2212.09251):
#   the method this section reproduces; read how they generate, filter and check the quality of model-written
#   datasets, and which behaviours (power-seeking included) their evals found.
# - [Carlsmith, "Is Power-Seeking AI an Existential Risk?" (2022)](https://arxiv.org/abs/2206.13353):
#   the argument behind our threat model: why capable, strategically aware planners might seek power by
#   default, which is the tendency a good question has to probe.
# - [OpenAI, "Structured Outputs" guide](https://platform.openai.com/docs/guides/structured-outputs):
#   how `response_format` with a JSON schema works, what schemas are supported, and how refusals are reported.
# - [Brooker, "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015)](https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):
#   simulations of clients retrying together, showing why backoff alone is not enough and jitter is needed.
