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
# through the MediaWiki API. Offline (CI, no key) the same code talks over real HTTP to a loopback
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

# %% exercise curriculum.solutions.chapter3.agents:calculate
tests.check_calculate(calculate)

# %% [markdown]
# Now describe the tool to the model. The description and the schema are *all* the model knows
# about your function, so they are prompt engineering as much as typing.

# %% exercise curriculum.solutions.chapter3.agents:calculator_schema
tests.check_calculator_schema(calculator_schema)

# %% [markdown]
# ### Executing tool calls robustly
#
# Models make mistakes in tool calls: arguments that are not JSON (truncated output), tools that do
# not exist, wrong argument names. An agent harness that raises on these dies on the first slip;
# one that *tells the model* recovers, because models are good at fixing an error they can read.
# The API also requires one tool message per tool call, errors included.

# %% exercise curriculum.solutions.chapter3.agents:Tool,execute_tool_calls
tests.check_execute_tool_calls(execute_tool_calls)

# %% [markdown]
# ### The agent loop
#
# Call the model with the tools; append its message (the assistant turn with its `tool_calls` must
# precede the tool results, or the API rejects the history); if it called tools, append their
# results and go again; otherwise it has answered. Cap the number of calls: a model can keep
# calling tools forever, and each call costs money.

# %% exercise curriculum.solutions.chapter3.agents:assistant_message,run_agent
tests.check_run_agent(run_agent)

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

# %% exercise curriculum.solutions.chapter3.agents:WikiGame
tests.check_wiki_game(WikiGame)

# %%
game = WikiGame(wiki, "Pizza", "Milk")
print(game.get_content()[:300], "...")
print(game.move_page("Milk"))
print(game.move_page("cheese"), "|", game.move_page("Milk"), "| won:", game.is_won(), "| path:", game.path)

# %% [markdown]
# ### Exercise: how the agent decides
#
# The baseline agent decides with one model call that may use the tools (`plain_act`, given).
# **ReAct** (Yao et al., 2022) is our first elicitation method: before each action, ask the model
# to reason ("Thought"), keep the reasoning in the history, then ask it to act. With the tools API
# this is two calls per step: one with `tool_choice="none"` (no tools allowed) and one with
# `tool_choice="required"`.

# %% exercise curriculum.solutions.chapter3.agents:system_prompt,plain_act,react_act
tests.check_react_act(react_act)

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

# %% exercise curriculum.solutions.chapter3.agents:play
tests.check_play(play)

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

# %% exercise curriculum.solutions.chapter3.agents:reflect,reflexion
tests.check_reflexion(reflexion)

# %% [markdown]
# ### Measuring: success rate, moves and cost
#
# An agent eval reports at least: the success rate; the moves of the *successful* episodes (a
# failed episode's move count means nothing), ideally beyond par; and the cost in steps, over
# *all* episodes because failures cost too (a ReAct step is two API calls, a Reflexion run is the
# sum of its attempts: `reflexion_outcome`). Then the failure modes, counted.

# %% exercise curriculum.solutions.chapter3.agents:summarise
tests.check_summarise(summarise)

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
