# %% [markdown]
# # 3.3 LLM agents: function calling and the WikiGame
#
# An LLM agent is a loop: the model sees a conversation, decides to call a *tool*, your code runs
# the tool and appends the result, and the model decides again, until it answers. Everything an
# agent can do in the world goes through that loop, so it is where capabilities (and dangerous
# capabilities) show up, and where evaluations of agents must look.
#
# You will
# 1. build function calling from scratch with the `openai` client's tools API: a calculator tool,
#    its JSON schema, a robust executor for the model's tool calls, and the agent loop;
# 2. build the **WikiGame**: reach a target Wikipedia page from a start page by reading pages and
#    following links, with loops and broken tool calls handled instead of crashing;
# 3. elicit better play with **ReAct** (think, then act), **page-summary lookahead** and
#    **Reflexion** (learn a lesson from a failure, retry), and measure success rate, moves and
#    failure modes.
#
# **Online vs offline.** With an `OPENAI_API_KEY` (environment or `.env`; never paste it into a
# cell) and internet, `llm_endpoint` talks to the real API and the WikiGame reads live Wikipedia
# through the MediaWiki API. Without a key or without internet the same code talks over real HTTP to a loopback
# server on 127.0.0.1 whose "model" is a small rule-based policy, and reads a shipped graph of 73
# hand-written pages with real Wikipedia titles. Offline numbers show the measurement works; they
# say nothing about real models. The reference is `curriculum/solutions/chapter3/agents.py`.

# %% setup
import ast
import json
import operator
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import openai
import plotly.express as px
from tqdm.auto import tqdm

from curriculum.solutions.chapter3.agents import (
    FAILURE_MODES,
    GET_CONTENT_SCHEMA,
    MAX_EXPONENT,
    MOVE_PAGE_SCHEMA,
    PREVIEW_PAGE_SCHEMA,
    REACT_ACT,
    REACT_THINK,
    REFLECT_PROMPT,
    VARIANTS,
    Summary,
    AgentConfig,
    Episode,
    WikiPolicy,
    _BINARY_OPS,
    _UNARY_OPS,
    arithmetic_responder,
    reflexion_outcome,
    sample_games,
)
from curriculum.solutions.chapter3.wiki import OfflineWiki, WikiPage, WikiSource, load_wiki, normalise_title
from curriculum.checks.chapter3 import agents as tests
from curriculum.utils import full_or_quick
from curriculum.utils.offline import describe
from curriculum.utils.openai_server import Failures
from curriculum.utils.secrets import llm_endpoint

# %% [markdown]
# ## 1. Function calling from scratch
#
# The protocol has three parts:
# - the request lists `tools`: for each function a name, a description and a JSON schema of its
#   arguments;
# - the model's reply may carry `tool_calls` instead of (or besides) text: each has an `id`, a
#   function name and its `arguments` **as a JSON string the model wrote** (so it can be malformed);
# - you run each call and append one `{"role": "tool", "tool_call_id": ..., "content": ...}` message
#   per call, after the assistant message that made them; then call the model again.
#
# We start with the classic demonstration: language models are bad at exact arithmetic, a
# calculator tool fixes that. First the tool itself. A tool runs whatever the model asks, so it must
# be safe: never `eval` model output (`__import__('os').system(...)` is a valid Python expression).
# Walk the expression's syntax tree with `ast` and allow only numbers and arithmetic operators
# (`_BINARY_OPS`, `_UNARY_OPS`; refuse exponents above `MAX_EXPONENT`, since `9 ** 9 ** 9` would
# freeze the process). Errors are returned as text, not raised: the model reads them and retries.
#
# ### Exercise: a safe calculator tool
#
# Implement `calculate`. The check compares your results with Python's own arithmetic on 13 expressions
# (floor division and `%` of negative numbers, right-associative `**`, unary minus), then feeds it
# attacks and mistakes (`__import__(...)`, `open(...)`, names, attribute access, lists, strings, a lambda,
# `1 / 0`, a syntax error, a huge exponent), every one of which must come back as a string starting with `"Error"`.

# %% exercise curriculum.solutions.chapter3.agents:calculate difficulty=3 importance=3 minutes=20
tests.check_calculate(calculate)

# %% hint
# `ast.parse(expression, mode="eval")` turns the text into a tree without running anything. Write a small
# recursive function that evaluates a node only if its type is on your allow-list and raises for anything
# else; wrap the whole evaluation in one `try` that turns every failure into an `"Error: ..."` string.

# %% hint
# Four node types are enough: `ast.Expression` (evaluate its `.body`), `ast.Constant` whose value's type is
# exactly `int` or `float` (this rejects strings and `True`), `ast.BinOp` whose `type(node.op)` is a key of
# `_BINARY_OPS`, and `ast.UnaryOp` whose `type(node.op)` is a key of `_UNARY_OPS`; the dict values are the
# functions to apply. For `ast.Pow`, evaluate the exponent first and refuse it if `abs(exponent) > MAX_EXPONENT`,
# *before* computing the power. Catch at least `SyntaxError`, `ValueError`, `ZeroDivisionError` and `OverflowError`.

# %% hint
# ```python
# def walk(node):
#     if isinstance(node, ast.Expression):
#         return walk(node.body)
#     if isinstance(node, ast.Constant) and type(node.value) in (int, float):
#         return node.value
#     if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
#         left, right = walk(node.left), walk(node.right)
#         ...  # refuse huge exponents, then apply _BINARY_OPS[type(node.op)]
#     ...      # unary operators
#     raise ValueError(f"{type(node).__name__} is not allowed")
#
# try:
#     return str(walk(ast.parse(expression, mode="eval")))
# except (...) as e:
#     return f"Error: {e}"
# ```

# %% [markdown]
# ### Exercise: the calculator's tool schema
#
# Now describe the tool to the model. The description and the schema are *all* the model knows
# about your function, so they are prompt engineering as much as typing. The check validates your
# dict against the `openai` package's own type for a function tool, then runs `jsonschema` on the
# `parameters` part: `{"expression": "1 + 2"}` must pass, while `{}` and `{"expression": 3}` must not.

# %% exercise curriculum.solutions.chapter3.agents:calculator_schema difficulty=1 importance=3 minutes=5
tests.check_calculator_schema(calculator_schema)

# %% hint
# The outer shape is `{"type": "function", "function": {"name": ..., "description": ..., "parameters": ...}}`.
# `name` must be `"calculate"`, the name the agent loop will look up; the description should say what the
# tool accepts, in words a model will act on.

# %% hint
# `parameters` is an ordinary JSON schema for the arguments object: `"type": "object"`, a `"properties"` dict
# with `"expression": {"type": "string", "description": ...}`, and `"required": ["expression"]` (without it,
# `{}` is valid). `"additionalProperties": False` is optional but tells the model not to invent arguments.

# %% [markdown]
# ### Exercise: executing tool calls robustly
#
# Models make mistakes in tool calls: arguments that are not JSON (truncated output), tools that do
# not exist, wrong argument names. An agent harness that raises on these dies on the first slip;
# one that *tells the model* recovers, because models are good at fixing an error they can read.
# The API also requires one tool message per tool call, errors included.
#
# `Tool` (given) pairs a schema with its Python function; you write the body of the loop in
# `execute_tool_calls`. The check sends six calls: one good, then malformed JSON, an unknown tool, a tool
# that raises, a wrong argument name and arguments that are a JSON list. It expects six tool messages back.

# %% exercise curriculum.solutions.chapter3.agents:Tool,execute_tool_calls difficulty=2 importance=5 minutes=15
tests.check_execute_tool_calls(execute_tool_calls)

# %% hint
# For each call, exactly one `{"role": "tool", "tool_call_id": call.id, "content": ...}` message, whatever
# happens. Put everything that can go wrong (looking up the tool, decoding the arguments, running the tool)
# inside one `try`, and turn any exception into content that starts with `"Error"`.

# %% hint
# The call's `function.name` and `function.arguments` are attributes of `call.function`; `arguments` is a
# JSON *string* (treat an empty one as `"{}"`). An unknown name should raise an error that names the tool the
# model asked for and lists `sorted(tools)`, so it can pick a real one: the check looks for both. `json.loads`
# can succeed and still return a list, so check that you got a dict before calling `tools[name](**args)`; a
# wrong argument name then raises `TypeError` inside the tool call, which your `except` turns into an error
# message. Convert a successful result with `str(...)`.

# %% hint
# ```python
# name = call.function.name
# try:
#     if name not in tools:
#         raise LookupError(...)  # name the tool and list the available ones
#     args = json.loads(call.function.arguments or "{}")
#     ...  # refuse non-dict arguments
#     content = str(tools[name](**args))
# except json.JSONDecodeError as e:
#     content = ...  # "Error: ... not valid JSON ..."
# except Exception as e:
#     content = f"Error: {type(e).__name__}: {e}"
# messages.append(...)
# ```

# %% [markdown]
# ### Exercise: the agent loop
#
# Call the model with the tools; append its message (the assistant turn with its `tool_calls` must
# precede the tool results, or the API rejects the history); if it called tools, append their
# results and go again; otherwise it has answered. Cap the number of calls: a model can keep
# calling tools forever, and each call costs money. `assistant_message` (given) turns the client's
# message object into the plain dict to append. The check counts the model calls, reads the history of
# the second request, and makes sure the list you were given is left unchanged.

# %% exercise curriculum.solutions.chapter3.agents:assistant_message,run_agent difficulty=2 importance=5 minutes=15
tests.check_run_agent(run_agent)

# %% hint
# Copy `messages` first (`list(messages)`), so the caller's list is not changed. Then at most `max_steps`
# times: call the model, append its turn, stop if it made no tool calls, otherwise append one result per
# tool call. Return the whole conversation.

# %% hint
# Pass the schemas with `client.chat.completions.create(model=model, messages=messages, tools=[t.schema for t in tools])`
# and take `response.choices[0].message`. `execute_tool_calls` wants a dict from tool name to function:
# `{t.name: t.fn for t in tools}`. Appending only the tool results and not the assistant turn that asked for
# them is the classic bug: the real API rejects such a history, and the check looks for it.

# %% hint
# ```python
# messages = list(messages)
# fns = {t.name: t.fn for t in tools}
# for _ in range(max_steps):
#     message = client.chat.completions.create(...).choices[0].message
#     messages.append(assistant_message(message))
#     if not message.tool_calls:
#         break
#     ...  # append the tool results
# return messages
# ```

# %% [markdown]
# Let's run it. `llm_endpoint` gives an `openai.OpenAI` client: the real API if you have a key and
# are online, else the loopback server running `arithmetic_responder`, a stand-in that calls the
# calculator on the question and reports the result.

# %%
calculator = Tool(calculator_schema(), calculate)
with llm_endpoint("gpt-4o-mini", responder=arithmetic_responder) as llm:
    llm.describe()
    for question in ["What is 1234 * 5678 - 91?", "What is (2 ** 20 + 7) // 3?"]:
        conversation = run_agent(
            llm.client, llm.model, [{"role": "user", "content": question}], [calculator], max_steps=5
        )
        for m in conversation:
            calls = [f"{c['function']['name']}({c['function']['arguments']})" for c in m.get("tool_calls", [])]
            print(f"{m['role']:>9}: {m.get('content') or ''}{' '.join(calls)}")
        print()

# %% [markdown]
# ## 2. The WikiGame
#
# The WikiGame: start on one Wikipedia page, reach a target page by clicking links only. It needs
# knowledge (which topics connect), planning (which link gets closer) and memory (where have I
# been). Our agent gets two tools: `get_content` (the current page's text and links) and
# `move_page` (follow a link).
#
# Pages come from a `WikiSource` (`curriculum/solutions/chapter3/wiki.py`): `LiveWiki` asks the MediaWiki API
# online; `OfflineWiki` reads `data/chapter3/wiki/pages.json`, generated by `build_graph.py` next to
# it. Every offline page reaches every other, and `shortest_path` (breadth-first search) gives the
# par of a game.

# %%
loaded = load_wiki()
describe(loaded)
wiki = loaded.value
offline_graph = OfflineWiki()  # real Wikipedia titles: games sampled here also exist online
page = wiki.get_page("Pizza")
print(page.summary, "\nlinks:", page.links[:10])
print("par Banana -> Albert Einstein:", " -> ".join(offline_graph.shortest_path("Banana", "Albert Einstein")))

# %% [markdown]
# ### Exercise: the game
#
# `WikiGame` keeps the state: current page, path, target. Write `get_content` (what the model reads:
# `"Page: <title>\n\n<content>\n\nLinks: <a> | <b> | ..."`) and `move_page`, which must refuse any
# page that is not a link of the current page (the model *will* try to jump straight to the target),
# count refused moves, and match titles the way Wikipedia does (`linked_title` ignores case and
# underscores). The third tool, `preview_page`, is for the lookahead agent later.

# %% exercise curriculum.solutions.chapter3.agents:WikiGame difficulty=2 importance=3 minutes=15
tests.check_wiki_game(WikiGame)

# %% hint
# `get_content` is a single f-string built from `self.current_page` (its `title`, `content` and `links`).
# `move_page` first asks `self.linked_title(new_page)` which link, if any, the model meant; `None` means the
# move is refused: count it and say why, leaving the game where it was. Otherwise, move and record the page.

# %% hint
# Join the links with `" | ".join(page.links)` after `"Links: "`. When a move is allowed, use the title
# `linked_title` returned (the model may have written `"cheese"` or `"Cell_(biology)"`), set `self.current` to
# `self.source.get_page(link).title` (online, a link can redirect to a page with another title), and append it
# to `self.path`. Only refused moves increase `self.invalid_moves`. Return a short message in both cases; saying
# when the target has been reached (`self.is_won()`) helps the model stop.

# %% hint
# ```python
# def move_page(self, new_page):
#     link = self.linked_title(new_page)
#     if link is None:
#         self.invalid_moves += 1
#         return ...  # explain that only links of the current page can be followed
#     self.current = ...
#     self.path.append(self.current)
#     return ...
# ```

# %%
game = WikiGame(wiki, "Pizza", "Milk")
print(game.get_content()[:300], "...")
print(game.move_page("Milk"))
print(game.move_page("cheese"), "|", game.move_page("Milk"), "| won:", game.is_won(), "| path:", game.path)

# %% [markdown]
# ### Exercise: ReAct, think then act
#
# The baseline agent decides with one model call that may use the tools (`plain_act`, given; so is
# `system_prompt`, which states the game's rules and target). **ReAct** (Yao et al., 2022) is our first
# elicitation method: before each action, ask the model to reason ("Thought"), keep the reasoning in the
# history, then ask it to act. With the tools API this is two calls per step: one with
# `tool_choice="none"` (no tools allowed) and one with `tool_choice="required"`. Write `react_act`; the
# check reads both requests and the `messages` list you were given.

# %% exercise curriculum.solutions.chapter3.agents:system_prompt,plain_act,react_act difficulty=2 importance=4 minutes=10
tests.check_react_act(react_act)

# %% hint
# Read `plain_act` first: `react_act` has the same signature and returns the same kind of thing, an action
# message with tool calls. The difference is a thinking call before it, whose text stays in the history so the
# action call can build on it.

# %% hint
# Append to the `messages` list you were given (the caller keeps that history): the user turn `REACT_THINK`,
# then the reasoning as `{"role": "assistant", "content": thought.content or ""}`, then the user turn
# `REACT_ACT`. Pass `tools=schemas` to both calls (the model should know its tools while thinking, and
# `tool_choice` is only allowed alongside `tools`), with `tool_choice="none"` and then `"required"`, and
# `config.model` and `config.temperature` as in `plain_act`. Do not append the action message yourself:
# `play` does that.

# %% [markdown]
# ### Exercise: playing a game, and how it can fail
#
# `play` runs one game with the agent loop you wrote above, with the WikiGame's tools, and returns an
# `Episode`. An agent harness must end every episode, and say *how* it ended, because "it didn't
# work" is not an analysis. Our failure modes (`FAILURE_MODES`):
# - `loop`: the agent reached the same page `max_visits` times: it is going round in circles;
# - `no_tool_call`: it kept replying with text (after a reminder) instead of acting;
# - `out_of_steps`: it used its whole budget of steps (decisions);
# - `api_error`: the API failed (after the client's own retries).
#
# Tool errors (unknown tools, malformed JSON, refused moves) are *not* fatal: they go back to the
# model, which usually recovers; we count them. `AgentConfig` holds the knobs; `act` is `react_act`
# for the "react" variant, else `plain_act`.
#
# The check drives `play` with seven scripted models: one that follows a winning path, one that bounces
# between two pages, one that only chats, one that only reads, one that makes two broken tool calls and
# then plays well, one whose API is down, and the winning one again under ReAct. For each it checks the
# failure mode and the number of steps or model calls.

# %% exercise curriculum.solutions.chapter3.agents:play difficulty=4 importance=5 minutes=30
tests.check_play(play)

# %% hint
# A `while steps < config.max_steps` loop; in each step make one decision with `act`, then handle one of
# three cases: the API failed, the model replied with text only, or it called tools. Check for a win and for
# a loop only after the tool calls have run, since that is when the game can change. The helper `episode(...)`
# (already written above the fence) builds the `Episode` with the current counts.

# %% hint
# Count the step before calling `act`, inside a `try` that turns `openai.APIError` into `episode("api_error")`.
# Append `assistant_message(message)`. With no `tool_calls`: add one to `text_turns`; at `config.max_text_turns`
# return `"no_tool_call"`, otherwise append a user turn reminding the model to use its tools and `continue`.
# With tool calls: reset `text_turns`, run `execute_tool_calls(message.tool_calls, fns)`, add the results whose
# content starts with `"Error"` to `tool_errors`, extend `messages`; then return `episode(None)` if
# `game.is_won()`, or `"loop"` if `game.path.count(game.current) >= config.max_visits`. Falling out of the
# loop is `"out_of_steps"`.

# %% hint
# ```python
# while steps < config.max_steps:
#     steps += 1
#     try:
#         message = act(client, config, messages, schemas)
#     except openai.APIError:
#         return episode("api_error")
#     messages.append(assistant_message(message))
#     if not message.tool_calls:
#         ...  # count, give up at max_text_turns, else remind and continue
#     text_turns = 0
#     ...      # run the tools, count errors, extend messages
#     ...      # win? loop?
# return episode("out_of_steps")
# ```

# %% [markdown]
# The offline "model" is `WikiPolicy`, a noisy greedy link-follower: it moves to the link whose
# words overlap most with what it knows about the target. Like a model with a short memory, the
# baseline does not keep track of where it has been.

# %%
N_GAMES = full_or_quick(20, 3)
MAX_STEPS = full_or_quick(40, 20)
games = sample_games(offline_graph, N_GAMES, min_moves=2, max_moves=4, seed=0)
par = None if loaded.real else {g: len(offline_graph.shortest_path(*g)) - 1 for g in games}

with llm_endpoint("gpt-4o-mini", responder=WikiPolicy(wiki, seed=0)) as llm:
    episode = play(llm.client, WikiGame(wiki, *games[0]), AgentConfig(model=llm.model, max_steps=MAX_STEPS))
print(f"{episode.start} -> {episode.target}: success={episode.success}, failure={episode.failure}, "
      f"moves={episode.moves}, steps={episode.steps}\npath: {' -> '.join(episode.path)}")

# %% [markdown]
# ### Robustness under a misbehaving model
#
# The loopback server can inject failures. Here 30% of replies with tool calls get their JSON
# arguments truncated mid-object, and some requests fail with HTTP 500 (the `openai` client retries
# those). The agent must neither crash nor give up: the model reads the error and calls again.

# %%
with llm_endpoint("gpt-4o-mini", responder=WikiPolicy(offline_graph, seed=1), offline=True, max_retries=5,
                  failures=Failures(rate=0.3, kinds=("malformed_tool_json", "500"), seed=0)) as llm:
    episode = play(llm.client, WikiGame(offline_graph, *games[0]), AgentConfig(model=llm.model, max_steps=MAX_STEPS))
    print("injected failures:", llm.server.stats.failures)
errors = [m["content"] for m in episode.messages if m["role"] == "tool" and m["content"].startswith("Error")]
print(f"success={episode.success}, tool errors reported to the model: {episode.tool_errors}")
print("e.g.", errors[0] if errors else "(none drawn)")

# %% [markdown]
# ## 3. Elicitation
#
# How well an agent does depends on the scaffolding around the model as much as on the model:
# an evaluation that reports only the baseline *underestimates* capability. Besides ReAct (above),
# two classic methods:
#
# **Page-summary lookahead**: give the agent a `preview_page` tool that returns the summary of a
# linked page without moving there (`WikiGame.preview_page`, enabled by `variant="lookahead"`).
# Previewing a few links before each move trades more tool calls for better moves.
#
# **Reflexion** (Shinn et al., 2023): after a failed attempt, ask the model to write a lesson
# (`reflect`, given), then play a fresh game with all lessons in the system prompt.
#
# ### Exercise: Reflexion
#
# Write `reflexion`, the retry loop around `play` and `reflect`. The check's scripted model bounces
# between two pages until a lesson naming the dead end appears in its system prompt, then plays
# well: it expects exactly two episodes (a loop, then a win from the start page) and one reflection.

# %% exercise curriculum.solutions.chapter3.agents:reflect,reflexion difficulty=2 importance=3 minutes=10
tests.check_reflexion(reflexion)

# %% hint
# Up to `attempts` times: play a game with the lessons gathered so far, keep the episode, stop if it was
# won, otherwise ask for a lesson and add it to the list. Return every episode played.

# %% hint
# Each attempt needs a fresh `WikiGame(source, start, target)`: reusing one game would start the second
# attempt where the first ended, and the check compares the second path with the full route from the start.
# Pass the lessons as `play(client, game, config, lessons)`; `reflect(client, config, episodes[-1])` returns
# the lesson as a string.

# %% [markdown]
# ### Exercise: measuring success rate, moves and cost
#
# An agent eval reports at least: the success rate; the moves of the *successful* episodes (a
# failed episode's move count means nothing), ideally beyond par; and the cost in steps, over
# *all* episodes because failures cost too (a ReAct step is two API calls, a Reflexion run is the
# sum of its attempts: `reflexion_outcome`). Then the failure modes, counted. Fill in the `Summary`
# in `summarise`; the check uses six hand-made episodes, then the four failures alone, where the
# averages over successes have nothing to average.

# %% exercise curriculum.solutions.chapter3.agents:summarise difficulty=2 importance=3 minutes=15
tests.check_summarise(summarise)

# %% hint
# Decide, for each field, which episodes it averages over: `success_rate` and `mean_steps` over all of them,
# `mean_moves` and `mean_excess_moves` over the successes only. An average over nothing is `float("nan")`,
# not an error: write a small `mean` helper that returns it for an empty list.

# %% hint
# `e.moves` (a property) is the path length minus one. The excess over par of a success is
# `e.moves - par[(e.start, e.target)]`; skip it when `par` is `None` (then the mean is nan). Count failures
# with `dict(Counter(e.failure for e in episodes if not e.success))`. Dividing by `len(wins)` directly raises
# `ZeroDivisionError` in the check's no-success case.

# %%
results: dict[str, list[Episode]] = {}
for variant in VARIANTS:
    with llm_endpoint("gpt-4o-mini", responder=WikiPolicy(wiki, seed=0)) as llm:
        config = AgentConfig(model=llm.model, variant=variant, max_steps=MAX_STEPS)
        results[variant] = [play(llm.client, WikiGame(wiki, s, t), config) for s, t in tqdm(games, desc=variant)]
with llm_endpoint("gpt-4o-mini", responder=WikiPolicy(wiki, seed=0)) as llm:
    config = AgentConfig(model=llm.model, max_steps=MAX_STEPS)
    attempts = [reflexion(llm.client, wiki, s, t, config, attempts=3) for s, t in tqdm(games, desc="reflexion")]
results["reflexion (≤3 tries)"] = [reflexion_outcome(tries) for tries in attempts]

summaries = {name: summarise(eps, par) for name, eps in results.items()}
for name, s in summaries.items():
    print(f"{name:>22}: success {s.success_rate:.0%}  moves {s.mean_moves:.1f} (+{s.mean_excess_moves:.1f} over par)  "
          f"steps/episode {s.mean_steps:.1f}  failures {s.failures}")

# %%
rows = [{"variant": name, "metric": metric, "value": value}
        for name, s in summaries.items()
        for metric, value in [("success rate", s.success_rate), ("mean moves of successes", s.mean_moves),
                              ("steps per episode", s.mean_steps)]]
fig = px.bar(rows, x="variant", y="value", color="variant", facet_col="metric", title="WikiGame: elicitation variants")
fig.update_yaxes(matches=None, showticklabels=True)
fig.show()

# %% [markdown]
# ### Failure-mode analysis
#
# Numbers say *how often*; transcripts say *why*. Count the failure modes per variant, then read a
# failed episode. Typical findings with real models: the baseline loops between two related pages
# (no memory of what it tried); models try to `move_page` straight to the target (refused moves);
# long live-Wikipedia pages push the start of the conversation out of the model's attention, and
# it forgets the target; lookahead spends many calls previewing. Each suggests a fix: visited-page
# lists in the prompt, a summary of progress, truncating old page contents from the history.

# %%
failure_table = {name: Counter(e.failure for e in eps if not e.success) for name, eps in results.items()}
for name, counts in failure_table.items():
    print(f"{name:>22}: " + ", ".join(f"{mode} {counts.get(mode, 0)}" for mode in FAILURE_MODES))
failed = next((e for eps in results.values() for e in eps if not e.success), None)
if failed is not None:
    print(f"\nA failed episode ({failed.failure}): {' -> '.join(failed.path)}")
    for m in failed.messages[-6:]:
        text = m.get("content") or json.dumps([c["function"] for c in m.get("tool_calls", [])])
        print(f"  {m['role']:>9}: {text[:140]}")

# %% [markdown]
# ## Going further
#
# - Online, compare models (`gpt-4o-mini` vs a larger one) on the same games: does elicitation help
#   weak or strong models more?
# - Combine ReAct with lookahead, or add a "visited pages" line to every tool result.
# - Give the agent a `test_path` tool that checks a planned path of several moves at once.
# - Limit the context: keep only the last few page contents in the history and measure the effect.
# - Harder games: sample pairs with `min_moves=4` and watch which failure mode grows.

# %% [markdown]
# ## Further reading
# - [Yao et al., "ReAct: Synergizing Reasoning and Acting in Language Models" (2022)](https://arxiv.org/abs/2210.03629):
#   the think-then-act loop used by the `react` variant; compare its error analysis (hallucinated facts when
#   reasoning without acting, repeated thoughts and actions) with the failure modes you count here.
# - [Shinn et al., "Reflexion: Language Agents with Verbal Reinforcement Learning" (2023)](https://arxiv.org/abs/2303.11366):
#   learning from failure through written lessons kept in memory; read how the lessons are produced and
#   stored, and on which kinds of task they help.
# - [OpenAI, "Function calling" guide](https://platform.openai.com/docs/guides/function-calling):
#   the tools protocol of this section (schemas, `tool_calls`, `tool_choice`, tool messages) in full.
# - [Kinniment et al., "Evaluating Language-Model Agents on Realistic Autonomous Tasks" (2023)](https://arxiv.org/abs/2312.11671):
#   how agents are evaluated for dangerous capabilities (acquiring resources, copying themselves), and why
#   the authors warn that such evaluations can underestimate what better-elicited agents could do.

