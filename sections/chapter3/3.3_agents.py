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
#    following links. You decide what the model reads (the article's own links, inline in its text,
#    capped in length), and how much of a long game's history it is sent, with loops and broken tool
#    calls handled instead of crashing;
# 3. elicit better play with **ReAct** (think, then act), **page-summary lookahead** and
#    **Reflexion** (learn a lesson from a failure, retry), and measure success rate, moves and
#    failure modes.
#
# **Online vs offline.** With an `OPENAI_API_KEY` (environment or `.env`; never paste it into a
# cell) and internet, `llm_endpoint` talks to the real API and the WikiGame reads live Wikipedia
# through the MediaWiki API. Without a key or without internet the same code talks over real HTTP to a loopback
# server on 127.0.0.1 whose "model" is a small rule-based policy, and reads a shipped graph of 73
# hand-written pages with real Wikipedia titles. The reference is `curriculum/solutions/chapter3/agents.py`
# (the Wikipedia sources are in `wiki.py` next to it).
#
# Be clear about what the offline stand-in can and cannot show. It is a script: it reads the request
# the `openai` client sends, exactly as a model would receive it, and answers with text or tool calls.
# So everything about the *harness* is real offline: the HTTP requests, the JSON, the ordering rules of
# the messages (the loopback server rejects a misplaced tool message with the same 400 the real API
# sends), malformed arguments and server errors, failure modes and their counts. What it cannot show is
# anything about *models*: whether ReAct helps a real model, how a model reacts to a truncation note, or
# whether it forgets its target in a long context. The stand-in was written so that each elicitation
# helps it; its success rates are a test of your measurement code, not a finding.

# %% setup
import ast
import json
import operator
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import openai
import plotly.express as px
from tqdm.auto import tqdm

from curriculum.solutions.chapter3.agents import (
    ELIDED_NOTE,
    FAILURE_MODES,
    GET_CONTENT_SCHEMA,
    MAX_EXPONENT,
    MOVE_PAGE_SCHEMA,
    PAGE_CHARS,
    PREVIEW_PAGE_SCHEMA,
    REACT_ACT,
    REACT_THINK,
    REFLECT_PROMPT,
    TRUNCATION_NOTE,
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
from curriculum.solutions.chapter3.wiki import (
    END_SECTIONS,
    OTHER_NAMESPACES,
    WIKILINK,
    OfflineWiki,
    WikiPage,
    WikiSource,
    is_other_namespace,
    load_wiki,
    normalise_title,
    page_links,
    plain_text,
    remove_spans,
)
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
# ![The agent loop: the messages go to the model with the tool schemas; if the reply has tool_calls, your code runs them and appends the assistant turn and one tool message per call, then sends again; a text-only reply ends the loop (in the WikiGame it counts as a step and earns a reminder)](figures/3.3_agent_loop.svg)
#
# The picture is the whole of an agent: a list of messages that your code owns, a model that only ever
# returns the next message, and a dispatcher between them. The model never runs anything itself; it *asks*,
# and the harness decides what asking means. That is why an agent's safety properties live in the harness
# (which tools exist, what they may touch, when to stop) as much as in the model.
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
# been). Our agent gets two tools: `get_content` (the current page's text, links included) and
# `move_page` (follow a link).
#
# Pages come from a `WikiSource` (`curriculum/solutions/chapter3/wiki.py`): `LiveWiki` asks the MediaWiki API
# of en.wikipedia.org online; `OfflineWiki` reads `data/chapter3/wiki/pages.json`, generated by `build_graph.py`
# next to it. Both start from the same raw material, **wikitext**, the markup Wikipedia's editors write, so the
# code you write next runs unchanged on both.
#
# ### What counts as a link
#
# A Wikipedia page carries far more links than its article text. Around the prose sit an infobox (a table
# of facts, each a link), image captions, footnotes, a "See also" list, a navigation box listing every page
# of the topic, and categories; and there are links to other *namespaces*: `File:` (images), `Category:`,
# `Help:`, `Special:`. The MediaWiki API's list of a page's links (`prop=links`) returns all of these at
# once. For the game that is wrong twice over. It is too easy: the navigation box of "Pizza" lists "Milk",
# so a game from Pizza to Milk is one click, though no sentence of the article mentions milk. And it
# hides the context: a bare list of 300 titles tells the model *what* it can click, not *why* the article
# links it, which is exactly the information a good player uses.
#
# So we keep only the article's main content, and show each link where it occurs, marked
# `<link>Title</link>`:
#
# ```text
# Pizza is a dish from <link>Italy</link> made of <link>Wheat</link> dough topped with <link>Tomato</link> and
# <link>Cheese</link>. The Margherita was named in Naples after a queen of Italy.
# ```
#
# The model reads the sentence, sees that "Cheese" is an ingredient, and can reason that cheese is made
# from milk. The tag holds the *target* title (what `move_page` accepts), not the text shown on the page:
# `[[Wheat|wheat]]` links the page "Wheat", and `[[Cheese#Mozzarella|mozzarella]]` links "Cheese" (the part
# after `#` is a section of that page).
#
# The shipped pages are short hand-written summaries, but each sits inside the same furniture as a real
# article, and every link in the furniture points to a page the summary does *not* link: a shortcut a
# careless parser would hand the agent. Here is one page as its source, then as the game shows it.

# %%
offline_graph = OfflineWiki()  # real Wikipedia titles: games sampled here also exist online
print(offline_graph.wikitext["Pizza"])

# %% [markdown]
# ### Exercise: main content, with links inline
#
# Write `main_content(wikitext)`. The order of the steps matters, because each kind of markup can hide
# another inside it: a footnote `<ref>...</ref>` may hold a citation template; a template `{{...}}` may hold
# links and other templates (`{{Infobox | country = [[Italy]] | x = {{hlist|...}} }}`); an image link
# `[[File:Pizza.jpg|thumb|A pizza from [[Naples]]]]` holds links in its caption. Regular expressions cannot
# match nested brackets, so `remove_spans(text, open_, close_, where=None)` (given) removes balanced spans,
# outermost first; with `where`, only the spans whose inside it accepts. `is_other_namespace(target)`
# (given) says whether a link target is a `File:`, `Category:`, `Help:`... page.
#
# 1. Remove comments `<!-- ... -->`, then footnotes (`<ref ...>...</ref>` and the self-closing `<ref .../>`).
# 2. Remove templates and tables with `remove_spans`.
# 3. Cut the text at the first heading (`== See also ==`, `=== Notes ===`) whose name is in `END_SECTIONS`.
# 4. Remove other-namespace links as whole spans (captions included) with `remove_spans(..., where=is_other_namespace)`.
# 5. Drop any other HTML tags (`<br/>`, `<span ...>`), so that the tags you add next are the only ones; then
#    rewrite every remaining `[[target|shown]]` as `<link>Title</link>`, where Title is the target without its
#    `#section`, through `normalise_title`. A link to a section of the same page (`[[#History|below]]`) has no
#    page: keep its shown text.
# 6. Tidy up: drop bold/italic quotes (`''`, `'''`); turn a heading `== History ==` into a paragraph
#    `History`; collapse the whitespace inside each paragraph and separate paragraphs with one blank line.
#
# The check runs your function on a sample page that has each kind of furniture (it names the one that leaks
# through), then on all 73 shipped pages, comparing each page's links with the links of its hand-written
# summary as `build_graph.py` lists them.

# %% exercise curriculum.solutions.chapter3.wiki:main_content difficulty=3 importance=4 minutes=30
tests.check_main_content(main_content)

# %% hint
# Work outside-in: remove the containers (comments, footnotes, templates, tables) before you look at links,
# because links inside them must vanish with them. Cut at the end section before handling links too. Only then
# decide, link by link, whether it stays (article namespace) or goes.

# %% hint
# `re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)` removes comments; the same shape with `<ref[^>]*/>` and
# `<ref[^>]*>.*?</ref>` removes footnotes. `remove_spans(text, "{{", "}}")` and `remove_spans(text, "{|", "|}")`
# remove templates and tables. For the end sections, search with a multi-line regex built from `END_SECTIONS`,
# e.g. `^=+\s*(see also|references|...)\s*=+\s*$` with `re.IGNORECASE | re.MULTILINE`, and keep
# `text[:match.start()]`. Then `remove_spans(text, "[[", "]]", where=is_other_namespace)`.

# %% hint
# `WIKILINK` (given) matches innermost `[[target]]` and `[[target|shown]]` links, with the target in group 1
# and the shown text in group 2:
# ```python
# def link(m):
#     title = normalise_title(m[1].split("#")[0])
#     return ...  # "<link>Title</link>", or the shown text for a same-page link (empty title)
#
# text = re.sub(r"<[^>]+>", "", text)        # other tags go before you add <link> tags
# text = WIKILINK.sub(link, text)
# ...                                        # quotes, headings, paragraphs
# ```

# %% [markdown]
# A real article's main content is long: "Albert Einstein" runs to tens of thousands of characters, with
# hundreds of links. Every `get_content` call appends the whole page to the conversation, and the model reads
# the whole conversation at every step, so a game of twenty moves on live Wikipedia can fill a context window
# and cost dollars. Capping what one page adds is the first defence.
#
# ### Exercise: a cap on what a page adds
#
# Write `truncate_page(text, max_chars)`. Text that fits comes back unchanged. Otherwise keep whole paragraphs
# while they fit (the lead paragraph of a Wikipedia article says what the topic *is*, the most useful part
# for the game), and if even the first paragraph is too long, cut it at a space. Never cut inside a
# `<link>...</link>`: a half tag is a link the model cannot follow and may copy wrongly. Then append
# `TRUNCATION_NOTE`, so the model knows it is not seeing everything, with the characters shown, the total,
# and how many linked pages appear only in the part cut off.
#
# A worked example, the check's own text: three paragraphs of 100, 96 and 95 characters (295 in all) with
# `max_chars=200` keep the first two (100 + 2 for the blank line + 96 = 198 characters); with `max_chars=120`
# only the first. The check then joins the same text into one long paragraph, with cuts falling inside a word
# and inside a link.

# %% exercise curriculum.solutions.chapter3.agents:truncate_page difficulty=2 importance=4 minutes=15
tests.check_truncate_page(truncate_page)

# %% hint
# Split on `"\n\n"` and add paragraphs to the kept text one at a time; stop before the first one that would
# push the length (separators included) past `max_chars`. Only if nothing was kept do you need to cut inside a
# paragraph.

# %% hint
# For the cut inside a paragraph: take `text[:max_chars]`, drop the partial last word (up to the last space),
# then, if the last `"<link>"` comes after the last `"</link>"`, the cut fell inside a link: drop from that
# `"<link>"` on. For the note, `page_links` gives the distinct linked titles of any text; those of the whole
# page minus those of the kept part are the hidden ones.

# %% hint
# ```python
# if len(text) <= max_chars:
#     return text
# kept = ""
# for paragraph in text.split("\n\n"):
#     ...  # stop before it would overflow
# if not kept:
#     ...  # cut at a space, outside any link
# hidden = ...
# return f"{kept}\n\n" + TRUNCATION_NOTE.format(shown=len(kept), total=len(text), hidden=hidden)
# ```

# %% [markdown]
# `WikiGame.get_content` (given in the next exercise) shows `"Page: <title>"`, a blank line, then
# `truncate_page(page.text, self.max_chars)`, with `max_chars=PAGE_CHARS` unless you choose otherwise. The
# shipped pages are shorter than the cap; live pages rarely are. `shortest_path` (breadth-first search over
# main-content links) gives the par of a game: the fewest moves that win it.

# %%
loaded = load_wiki()
describe(loaded)
wiki = loaded.value
page = wiki.get_page("Pizza")
print(page.summary, "\nlinks:", page.links[:10])
print("par Banana -> Albert Einstein:", " -> ".join(offline_graph.shortest_path("Banana", "Albert Einstein")))
print(truncate_page(offline_graph.get_page("Albert Einstein").text, 150))

# %% [markdown]
# ### Exercise: the game
#
# `WikiGame` keeps the state: current page, path, target. `get_content` is given; write `move_page`, which
# must refuse any page that is not a link of the current page (the model *will* try to jump straight to the
# target), count refused moves, and match titles the way Wikipedia does (`linked_title` ignores case and
# underscores). The third tool, `preview_page`, is for the lookahead agent later.

# %% exercise curriculum.solutions.chapter3.agents:WikiGame difficulty=2 importance=3 minutes=15
tests.check_wiki_game(WikiGame)

# %% hint
# `move_page` first asks `self.linked_title(new_page)` which link, if any, the model meant; `None` means the
# move is refused: count it and say why, leaving the game where it was. Otherwise, move and record the page.

# %% hint
# When a move is allowed, use the title `linked_title` returned (the model may have written `"cheese"` or
# `"Cell_(biology)"`), set `self.current` to `self.source.get_page(link).title` (online, a link can redirect to
# a page with another title), and append it to `self.path`. Only refused moves increase `self.invalid_moves`.
# Return a short message in both cases; saying when the target has been reached (`self.is_won()`) helps the
# model stop.

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
# Whether it then *wins* is another matter: the stand-in wanders, and with the quick-mode budget of 20 steps
# it runs out of steps on this game (with the full 40 it arrives). Either way the episode ends with a win or a
# failure mode, not an exception, and every broken call reached the model as an error it could read.

# %%
with llm_endpoint("gpt-4o-mini", responder=WikiPolicy(offline_graph, seed=1), offline=True, max_retries=5,
                  failures=Failures(rate=0.3, kinds=("malformed_tool_json", "500"), seed=0)) as llm:
    episode = play(llm.client, WikiGame(offline_graph, *games[0]), AgentConfig(model=llm.model, max_steps=MAX_STEPS))
    print("injected failures:", llm.server.stats.failures)
errors = [m["content"] for m in episode.messages if m["role"] == "tool" and m["content"].startswith("Error")]
print(f"success={episode.success}, tool errors reported to the model: {episode.tool_errors}")
print("e.g.", errors[0] if errors else "(none drawn)")

# %% [markdown]
# ### Managing the context over a long game
#
# Every step appends at least two messages (the assistant turn and a tool result), and `play` sends the whole
# history every time. Over a game the request grows linearly, so the *total* number of input tokens grows
# quadratically in the number of steps: a 40-step game on live pages of 4,000 characters sends the first page
# 40 times. Worse than the bill, long contexts degrade the model's attention: the task at the top of the
# conversation competes with tens of thousands of characters of old pages it will never need again.
#
# The fix is to decide what the model *sees*, separately from what you *keep*. `play` keeps the full record in
# `messages` (you will want it for analysis and for Reflexion), and with `AgentConfig(keep_messages=k)` it sends
# `manage_context(messages, k)` instead:
#
# - always the system prompt and the task, the first two messages: without the task the model does not know
#   where it is going;
# - a short note saying that older messages were left out, so the model does not think the game just began;
# - the last `k` messages, or a few more.
#
# "A few more" is the subtle part. The API insists that every tool message comes right after the assistant
# message whose `tool_calls` it answers (other results of the same turn may sit in between). Count `k` back from
# the end and you may land on a tool result whose assistant turn is just before the cut: sending it is a 400
# error. So move the cut *back*, past tool messages, to the assistant turn. The picture shows the request at
# three points of a long game:
#
# ![What the model is sent over a long game: the system prompt and the task always; older messages replaced by a note; the last messages in full, with the cut moved back so that no tool result loses its assistant turn](figures/3.3_context_window.svg)
#
# Eliding is the bluntest policy. Others keep more for the same budget: keep every assistant turn (the moves
# are short) and elide only old page contents; or ask the model to write a summary of its progress every few
# steps and keep that instead of the history. All of them must respect the same pairing rule.
#
# ### Exercise: managing the context
#
# Write `manage_context(messages, keep)`. When nothing would be left out (the history has at most `2 + keep`
# messages, or moving the cut back reaches the task), return a copy of the history without a note. The check
# builds histories of turns with two tool calls each (so the cut must move back past two results), checks the
# head, the note (`ELIDED_NOTE` with the number left out) and the tail, then plays a 60-step game through the
# loopback server, which rejects an invalid history with the real API's 400, and checks that the largest
# request stays bounded.

# %% exercise curriculum.solutions.chapter3.agents:manage_context difficulty=2 importance=4 minutes=15
tests.check_manage_context(manage_context)

# %% hint
# Three parts: `messages[:2]`, the note, and `messages[start:]`. All the thinking goes into `start`: begin at
# `len(messages) - keep` and ask whether that message may begin the kept part.

# %% hint
# A message may begin the kept part unless its role is `"tool"`. While it is a tool message (and `start > 2`,
# so you never cut into the head), step back by one: you reach its assistant turn. The number left out is
# `start - 2`; if it is zero, return `list(messages)`. Slicing `messages[-keep:]` instead drops the task and may
# begin with an orphaned tool result: the two bugs the check looks for first.

# %% [markdown]
# Now measure it. The record of a game holds every message; replaying `manage_context` on each prefix of the
# record gives the size of each request `play` would send. Plot the characters sent per step with and
# without the policy.

# %%
LONG_STEPS = full_or_quick(40, 24)
long_game = sample_games(offline_graph, 1, min_moves=4, max_moves=5, seed=3)[0]
with llm_endpoint("gpt-4o-mini", responder=WikiPolicy(wiki, seed=2)) as llm:
    config = AgentConfig(model=llm.model, variant="react", max_steps=LONG_STEPS, max_visits=LONG_STEPS, keep_messages=12)
    long_episode = play(llm.client, WikiGame(wiki, *long_game), config)


def chars(messages: list[dict]) -> int:
    return sum(len(str(m.get("content") or "")) + len(json.dumps(m.get("tool_calls", []))) for m in messages)


record = long_episode.messages
sent_at = [i for i, m in enumerate(record) if m["role"] == "assistant" and m.get("tool_calls")]
rows = [{"request": n, "policy": policy, "characters sent": chars(view(record[:i]))}
        for n, i in enumerate(sent_at)
        for policy, view in [("whole history", list), ("manage_context(keep=12)", lambda ms: manage_context(ms, 12))]]
print(f"{long_episode.start} -> {long_episode.target}: {long_episode.steps} steps, success={long_episode.success}, "
      f"{len(record)} messages in the record")
fig = px.line(rows, x="request", y="characters sent", color="policy", title="Context sent per model call over one game")
fig.show()

# %% [markdown]
# The whole-history curve climbs steadily: each step adds a page and a move; the area under it is what you pay
# for. The managed curve climbs for the first few steps, then flattens at the size of the head, the note and
# about twelve messages; its wiggles are pages of different lengths and the occasional extra tool result kept
# with its turn. If your managed curve kept climbing, the cut would not be moving forward with the game. A real
# model would show one more effect the stand-in cannot: with the policy it may repeat a page it does not
# remember visiting, which is why the notes of ReAct (which name the pages visited) matter more when the
# context is cut.

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
# **Reflexion** (Shinn et al., 2023): after a failed attempt, ask the model to write a lesson, then play a
# fresh game with all lessons in the system prompt. The lesson is *verbal* feedback: instead of updating
# weights, the agent updates its prompt. It works when the failure is visible in the transcript (a loop between
# two pages is) and the model can name it; it cannot help when the model lacks the knowledge the game needs.
#
# ### Exercise: the reflection step
#
# Write `reflect(client, config, episode)`: one model call whose messages are the episode's whole history
# followed by a user turn `REFLECT_PROMPT`, formatted with the failure mode, the path joined by `" -> "` and the
# target; no tools (we want a written lesson, not another move). Return the reply's text, stripped. Without the
# history the model can only guess what went wrong; with it, it can name the pages it kept returning to.

# %% exercise curriculum.solutions.chapter3.agents:reflect difficulty=1 importance=3 minutes=5
tests.check_reflect(reflect)

# %% hint
# Build a new list `[*episode.messages, {"role": "user", "content": prompt}]` rather than appending to the
# episode's messages: the episode is a record and should stay as it was played.

# %% hint
# `REFLECT_PROMPT.format(failure=episode.failure, path=" -> ".join(episode.path), target=episode.target)`; then
# `client.chat.completions.create(model=config.model, messages=..., temperature=config.temperature)` and
# `(response.choices[0].message.content or "").strip()`.

# %% [markdown]
# ### Exercise: Reflexion
#
# Write `reflexion`, the retry loop around `play` and `reflect`. The check's scripted model bounces
# between two pages until a lesson naming the dead end appears in its system prompt, then plays
# well: it expects exactly two episodes (a loop, then a win from the start page) and one reflection.

# %% exercise curriculum.solutions.chapter3.agents:reflexion difficulty=2 importance=3 minutes=10
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
# (imported; its fields are `n`, `success_rate`, `mean_moves`, `mean_excess_moves`, `mean_steps` and
# `failures`, a dict from failure mode to count) in `summarise`; the check uses six hand-made episodes, then
# the four failures alone, where the averages over successes have nothing to average.

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
# - A gentler context policy: keep every assistant turn and elide only old page contents, or ask the model
#   for a progress summary every ten steps; compare success rates with `manage_context` online.
# - Vary `PAGE_CHARS` online (1,000 vs 8,000 characters): does the lead paragraph carry most of what the agent
#   needs?
# - Harder games: sample pairs with `min_moves=4` and watch which failure mode grows.

# %% [markdown]
# ## Further reading
# - [Yao et al., "ReAct: Synergizing Reasoning and Acting in Language Models" (2022)](https://arxiv.org/abs/2210.03629):
#   the think-then-act loop used by the `react` variant; compare its error analysis (hallucinated facts when
#   reasoning without acting, repeated thoughts and actions) with the failure modes you count here.
# - [Shinn et al., "Reflexion: Language Agents with Verbal Reinforcement Learning" (2023)](https://arxiv.org/abs/2303.11366):
#   learning from failure through written lessons kept in memory; read how the lessons are produced and
#   stored, and on which kinds of task they help.
# - [Schick et al., "Toolformer: Language Models Can Teach Themselves to Use Tools" (2023)](https://arxiv.org/abs/2302.04761):
#   how a model can learn *when* a tool call helps (keeping calls that lower the loss on the following text);
#   read it for the contrast with this section, where the tool protocol is given and only the prompt changes.
# - [Schluntz and Zhang (Anthropic), "Building effective agents" (2024)](https://www.anthropic.com/engineering/building-effective-agents):
#   workflows versus agents, and the advice to design the agent-computer interface (tool names, descriptions,
#   formats) with as much care as a human interface; the WikiGame's inline links and truncation note are that.
# - [OpenAI, "Function calling" guide](https://platform.openai.com/docs/guides/function-calling):
#   the tools protocol of this section (schemas, `tool_calls`, `tool_choice`, tool messages) in full.
# - [Kinniment et al., "Evaluating Language-Model Agents on Realistic Autonomous Tasks" (2023)](https://arxiv.org/abs/2312.11671):
#   how agents are evaluated for dangerous capabilities (acquiring resources, copying themselves), and why
#   the authors warn that such evaluations can underestimate what better-elicited agents could do.

