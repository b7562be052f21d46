"""Section 3.3: tool-using LLM agents, from raw function calling to the WikiGame.

Read top to bottom, in the order the notebook teaches it:
1. Function calling from scratch: a safe calculator, its JSON schema, executing tool calls
   (malformed JSON, unknown tools and crashing tools become messages for the model, never exceptions),
   and the agent loop.
2. The WikiGame: reach a target Wikipedia page from a start page by reading pages and following links.
   An agent plays it with two tools, `get_content` and `move_page`; loops and refusals to use tools end
   an episode with a named failure mode instead of hanging or crashing.
3. Elicitation: ReAct (think, then act), page-summary lookahead (a `preview_page` tool) and Reflexion
   (write a lesson after a failure, retry with it), measured by success rate and moves.
4. Offline stand-in "models": rule-based responders for the loopback OpenAI server, so that the
   whole pipeline runs, and is tested, without an API key.
"""

from __future__ import annotations

import ast
import json
import operator
import re
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from random import Random
from typing import Any, Callable, Sequence

import openai

from curriculum.solutions.chapter3.wiki import (
    OfflineWiki, PageNotFound, WikiPage, WikiSource, normalise_title, page_links, plain_text,
)
from curriculum.utils.openai_server import ReplyLike, ToolCall, last_user_message, system_message, tool_names

# ==============================================================================================
# 1. Function calling from scratch: the arithmetic agent
# ==============================================================================================

_BINARY_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY_OPS = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPONENT = 1000  # 9**9**9 would hang the interpreter: a tool must never do that to its host


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression (numbers, + - * / // % **, parentheses) WITHOUT `eval`.

    Returns the result as a string, or a string starting with "Error:" for anything else (names,
    calls, attribute access, division by zero, syntax errors): the model reads the error and retries.
    """
    # EXERCISE: parse with ast.parse(expression, mode="eval") and walk the tree, allowing only numbers and arithmetic operators
    def walk(node: ast.AST) -> int | float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise ValueError(f"exponent {right} is too large")
            return _BINARY_OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
            return _UNARY_OPS[type(node.op)](walk(node.operand))
        raise ValueError(f"{type(node).__name__} is not allowed: use only numbers and + - * / // % **")

    try:
        return str(walk(ast.parse(expression, mode="eval")))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError, RecursionError) as e:
        return f"Error: {e}"
    # END EXERCISE


def calculator_schema() -> dict:
    """The OpenAI tool definition of `calculate`: {"type": "function", "function": {name, description, parameters}}.

    `parameters` is a JSON schema for the arguments object: one required string, "expression".
    """
    # EXERCISE: return the tool definition; the description is the only documentation the model gets
    return {
        "type": "function",
        "function": {
            "name": "calculate",
            "description": "Evaluate an arithmetic expression exactly. Supports numbers, + - * / // % ** and parentheses.",
            "parameters": {
                "type": "object",
                "properties": {
                    "expression": {"type": "string", "description": "The expression, e.g. '(3 + 4) * 5 ** 2'"},
                },
                "required": ["expression"],
                "additionalProperties": False,
            },
        },
    }
    # END EXERCISE


@dataclass
class Tool:
    """A function the model may call: its OpenAI schema and the Python callable that runs it."""

    schema: dict
    fn: Callable[..., str]

    @property
    def name(self) -> str:
        return self.schema["function"]["name"]


def execute_tool_calls(tool_calls: Sequence[Any], tools: dict[str, Callable[..., str]]) -> list[dict]:
    """Run the model's tool calls; return one `{"role": "tool", "tool_call_id", "content"}` message per call, in order.

    Never raise: malformed JSON arguments, an unknown tool name, bad arguments or an exception inside
    the tool become an "Error: ..." content the model can read and recover from. The API rejects a
    history in which any tool call lacks its tool message, so every call gets exactly one.
    """
    messages = []
    for call in tool_calls:
        # EXERCISE: look the tool up by call.function.name, json-decode call.function.arguments into kwargs, run it; turn every failure into an "Error: ..." string
        name = call.function.name
        try:
            if name not in tools:
                raise LookupError(f"unknown tool {name!r}; the available tools are {sorted(tools)}")
            args = json.loads(call.function.arguments or "{}")
            if not isinstance(args, dict):
                raise TypeError(f"arguments must be a JSON object, got {type(args).__name__}")
            content = str(tools[name](**args))
        except json.JSONDecodeError as e:
            content = f"Error: the arguments of {name} are not valid JSON ({e}); call it again with a JSON object"
        except Exception as e:  # noqa: BLE001 - whatever went wrong, the model must hear about it
            content = f"Error: {type(e).__name__}: {e}"
        messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        # END EXERCISE
    return messages


def assistant_message(message: Any) -> dict:
    """The assistant turn as a plain dict to append to the history (tool calls included, nulls dropped)."""
    return message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"})


def run_agent(client: openai.OpenAI, model: str, messages: list[dict], tools: Sequence[Tool], max_steps: int = 10) -> list[dict]:
    """The agent loop: call the model with the tools; run any tool calls and feed the results back;
    stop when it answers without calling a tool, or after `max_steps` model calls.

    Returns the whole conversation (a new list, starting with `messages`, which is left unchanged).
    """
    # EXERCISE: loop: create(model=..., messages=..., tools=[t.schema ...]); append the assistant turn; stop if no tool_calls; else append execute_tool_calls(...)
    messages = list(messages)
    fns = {t.name: t.fn for t in tools}
    for _ in range(max_steps):
        response = client.chat.completions.create(model=model, messages=messages, tools=[t.schema for t in tools])
        message = response.choices[0].message
        messages.append(assistant_message(message))
        if not message.tool_calls:
            break
        messages += execute_tool_calls(message.tool_calls, fns)
    return messages
    # END EXERCISE


# ==============================================================================================
# 2. The WikiGame
# ==============================================================================================

GET_CONTENT_SCHEMA = {
    "type": "function",
    "function": {
        "name": "get_content",
        "description": "Get the text of the page you are on. Links to other pages are marked <link>Title</link>; "
                       "you can move to any of them with move_page.",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    },
}
MOVE_PAGE_SCHEMA = {
    "type": "function",
    "function": {
        "name": "move_page",
        "description": "Move to a page linked from the current page. You can only move along links of the current page.",
        "parameters": {
            "type": "object",
            "properties": {"new_page": {"type": "string", "description": "Title of a page linked from the current page"}},
            "required": ["new_page"],
            "additionalProperties": False,
        },
    },
}
PREVIEW_PAGE_SCHEMA = {
    "type": "function",
    "function": {
        "name": "preview_page",
        "description": "Read the summary of a page linked from the current page without moving there.",
        "parameters": {
            "type": "object",
            "properties": {"title": {"type": "string", "description": "Title of a page linked from the current page"}},
            "required": ["title"],
            "additionalProperties": False,
        },
    },
}


PAGE_CHARS = 4000  # how much of a page one get_content call adds to the context, at most
TRUNCATION_NOTE = "[Page truncated: {shown} of {total} characters shown. Linked pages only in the part not shown: {hidden}.]"


def truncate_page(text: str, max_chars: int) -> str:
    """At most `max_chars` characters of a page's main content, then TRUNCATION_NOTE; short pages unchanged.

    Keep whole paragraphs (separated by "\n\n") while they fit. If even the first paragraph does not fit, cut it
    at a space, never inside a word or a <link>...</link> tag. The note gives the characters shown (of the kept
    text, before the note), the total, and how many distinct linked titles appear only in the part cut off.
    """
    # EXERCISE: keep whole paragraphs while they fit; else cut the first one at a space outside any <link>...</link>; append the note
    if len(text) <= max_chars:
        return text
    kept = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{kept}\n\n{paragraph}" if kept else paragraph
        if len(candidate) > max_chars:
            break
        kept = candidate
    if not kept:
        kept = text[:max_chars]
        kept = kept[: kept.rfind(" ")] if " " in kept else ""
        if kept.rfind("<link>") > kept.rfind("</link>"):  # the cut fell inside a link: drop the whole link
            kept = kept[: kept.rfind("<link>")]
        kept = kept.rstrip()
    hidden = len(set(page_links(text)) - set(page_links(kept)))
    return f"{kept}\n\n" + TRUNCATION_NOTE.format(shown=len(kept), total=len(text), hidden=hidden)
    # END EXERCISE


class WikiGame:
    """The state of one game: where we are, where we must get to, and the path so far."""

    def __init__(self, source: WikiSource, start: str, target: str, max_chars: int = PAGE_CHARS):
        self.source, self.max_chars = source, max_chars
        self.start = source.get_page(start).title
        self.target = source.get_page(target).title
        self.current = self.start
        self.path = [self.start]
        self.invalid_moves = 0

    @property
    def current_page(self) -> WikiPage:
        return self.source.get_page(self.current)

    def is_won(self) -> bool:
        return self.current == self.target

    def linked_title(self, title: str) -> str | None:
        """The exact title of the current page's link matching `title` (case and underscores ignored), or None."""
        wanted = normalise_title(title).lower()
        return next((link for link in self.current_page.links if link.lower() == wanted), None)

    def get_content(self) -> str:
        """What the model reads: the title, then the main content with its links inline, capped at max_chars."""
        page = self.current_page
        return f"Page: {page.title}\n\n{truncate_page(page.text, self.max_chars)}"

    def move_page(self, new_page: str) -> str:
        """Move along a link of the current page. A refused move leaves the game unchanged (but counts)."""
        # EXERCISE: resolve new_page with self.linked_title; refuse (and count in self.invalid_moves) if it is not a link; else update current and path
        link = self.linked_title(new_page)
        if link is None:
            self.invalid_moves += 1
            return (f"Couldn't move: {new_page!r} is not linked from {self.current!r}. "
                    "Call get_content to see the links of this page.")
        self.current = self.source.get_page(link).title  # the live API may resolve a redirect
        self.path.append(self.current)
        if self.is_won():
            return f"Moved to {self.current!r}. You have reached the target page!"
        return f"Moved to {self.current!r}. Call get_content to read it."
        # END EXERCISE

    def preview_page(self, title: str) -> str:
        """Page-summary lookahead: the summary of a linked page, without moving."""
        link = self.linked_title(title)
        if link is None:
            return f"Error: {title!r} is not linked from {self.current!r}; you can only preview linked pages"
        return f"Summary of {link!r}: {self.source.summary(link)}"

    def tools(self, lookahead: bool = False) -> list[Tool]:
        tools = [Tool(GET_CONTENT_SCHEMA, self.get_content), Tool(MOVE_PAGE_SCHEMA, self.move_page)]
        return tools + [Tool(PREVIEW_PAGE_SCHEMA, self.preview_page)] if lookahead else tools


VARIANTS = ("baseline", "react", "lookahead")
FAILURE_MODES = ("loop", "out_of_steps", "no_tool_call", "api_error")


@dataclass
class AgentConfig:
    """How an agent plays. `variant`: "baseline", "react" (think then act) or "lookahead" (preview_page tool)."""

    model: str = "gpt-4o-mini"
    variant: str = "baseline"
    max_steps: int = 40  # agent steps (decisions) per game: the budget. ReAct makes 2 API calls per step
    max_visits: int = 3  # reaching one page this often means the agent is going round in circles
    max_text_turns: int = 2  # replies without a tool call in a row before we say it gave up
    temperature: float = 1.0
    keep_messages: int | None = None  # context management: the model sees the task and about this many recent messages

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.max_steps < 1 or self.max_visits < 2:
            raise ValueError("max_steps must be >= 1 and max_visits >= 2")
        if self.keep_messages is not None and self.keep_messages < 2:
            raise ValueError("keep_messages must be None (keep everything) or >= 2")


@dataclass
class Episode:
    """The record of one game. `failure` is None on success, else one of FAILURE_MODES."""

    start: str
    target: str
    success: bool
    path: list[str]
    steps: int
    failure: str | None
    invalid_moves: int = 0
    tool_errors: int = 0
    messages: list[dict] = field(default_factory=list, repr=False)

    @property
    def moves(self) -> int:
        return len(self.path) - 1


def system_prompt(game: WikiGame, config: AgentConfig, lessons: Sequence[str] = ()) -> str:
    prompt = (
        "You are playing the Wikipedia game. You start on a Wikipedia page and must reach the target page "
        f'"{game.target}" by following links, in as few moves as possible. '
        "Use get_content to read the page you are on and see its links, and move_page to follow a link."
    )
    if config.variant == "lookahead":
        prompt += " Before moving you may use preview_page to read the summary of linked pages."
    if lessons:
        prompt += "\n\nLessons from your previous attempts at this game:\n" + "\n".join(f"- {l}" for l in lessons)
    return prompt


def plain_act(client: openai.OpenAI, config: AgentConfig, messages: list[dict], schemas: list[dict]) -> Any:
    """One model call that may use the tools: the baseline agent's whole decision."""
    response = client.chat.completions.create(
        model=config.model, messages=messages, tools=schemas, temperature=config.temperature
    )
    return response.choices[0].message


REACT_THINK = "Think step by step: where are you, which link brings you closer to the target, and why? Do not act yet."
REACT_ACT = "Now act on your reasoning: call a tool."


def react_act(client: openai.OpenAI, config: AgentConfig, messages: list[dict], schemas: list[dict]) -> Any:
    """ReAct: first a reasoning-only call, kept in the history; then an action call that must use a tool.

    Appends to `messages`: the REACT_THINK user turn, the model's reasoning, the REACT_ACT user turn.
    Returns the action message (the caller appends it, as for `plain_act`).
    """
    # EXERCISE: call with tool_choice="none" after a REACT_THINK user turn, append the reasoning, then call again with tool_choice="required" after a REACT_ACT turn
    messages.append({"role": "user", "content": REACT_THINK})
    thought = client.chat.completions.create(
        model=config.model, messages=messages, tools=schemas, tool_choice="none", temperature=config.temperature
    ).choices[0].message
    messages.append({"role": "assistant", "content": thought.content or ""})
    messages.append({"role": "user", "content": REACT_ACT})
    return client.chat.completions.create(
        model=config.model, messages=messages, tools=schemas, tool_choice="required", temperature=config.temperature
    ).choices[0].message
    # END EXERCISE


ELIDED_NOTE = "[{n} earlier messages of this game were left out to save space. Your task is unchanged.]"


def manage_context(messages: list[dict], keep: int) -> list[dict]:
    """What the model is sent of a long history (a new list; `messages` is left unchanged).

    Always the first two messages (the system prompt and the task); then, if anything was left out, one user
    message ELIDED_NOTE saying how many; then the last `keep` messages, or a few more: the kept part must not
    start with a tool message, because a tool message is only valid right after the assistant message whose
    tool_calls it answers (and the other results of that call). When nothing would be left out (a history of
    at most 2 + keep messages, or a cut that moved back to the task) the history comes back whole, without a note.
    """
    # EXERCISE: keep messages[:2]; start the kept tail `keep` from the end, moved back past tool messages to their assistant turn; note how many were left out
    if len(messages) <= 2 + keep:
        return list(messages)
    start = len(messages) - keep
    while start > 2 and messages[start].get("role") == "tool":
        start -= 1
    if start == 2:
        return list(messages)
    return [*messages[:2], {"role": "user", "content": ELIDED_NOTE.format(n=start - 2)}, *messages[start:]]
    # END EXERCISE


def play(client: openai.OpenAI, game: WikiGame, config: AgentConfig, lessons: Sequence[str] = ()) -> Episode:
    """Play one game to the end and say how it ended.

    Each iteration: get the model's action (`react_act` for "react", else `plain_act`), append it, run its
    tool calls. It ends with success, or a failure mode: "loop" (a page reached `max_visits` times),
    "no_tool_call" (`max_text_turns` text-only replies in a row; after each one we remind it to use
    the tools), "out_of_steps" (`max_steps` steps), "api_error" (the API kept failing).
    A step is one decision (one `act`), whether it produced tool calls or text.
    With `config.keep_messages`, the model is sent `manage_context(messages, ...)`; `messages` keeps everything.
    """
    tools = game.tools(lookahead=config.variant == "lookahead")
    fns, schemas = {t.name: t.fn for t in tools}, [t.schema for t in tools]
    decide = react_act if config.variant == "react" else plain_act

    def act(client: openai.OpenAI, config: AgentConfig, messages: list[dict], schemas: list[dict]) -> Any:
        if config.keep_messages is None:
            return decide(client, config, messages, schemas)
        view = manage_context(messages, config.keep_messages)
        n = len(view)
        message = decide(client, config, view, schemas)
        messages += view[n:]  # what the decision added (ReAct's thinking turns) belongs to the record too
        return message
    messages = [
        {"role": "system", "content": system_prompt(game, config, lessons)},
        {"role": "user", "content": f'You are on the page "{game.start}". Reach "{game.target}".'},
    ]
    steps = text_turns = tool_errors = 0

    def episode(failure: str | None) -> Episode:
        return Episode(game.start, game.target, failure is None, list(game.path), steps, failure,
                       game.invalid_moves, tool_errors, messages)

    # EXERCISE: the loop described in the docstring; catch openai.APIError as "api_error"
    while steps < config.max_steps:
        steps += 1
        try:
            message = act(client, config, messages, schemas)
        except openai.APIError:
            return episode("api_error")
        messages.append(assistant_message(message))
        if not message.tool_calls:
            text_turns += 1
            if text_turns >= config.max_text_turns:
                return episode("no_tool_call")
            messages.append({"role": "user", "content": "Please continue by calling one of the tools."})
            continue
        text_turns = 0
        results = execute_tool_calls(message.tool_calls, fns)
        tool_errors += sum(r["content"].startswith("Error") for r in results)
        messages += results
        if game.is_won():
            return episode(None)
        if game.path.count(game.current) >= config.max_visits:
            return episode("loop")
    return episode("out_of_steps")
    # END EXERCISE


# ==============================================================================================
# 3. Elicitation: Reflexion, and measuring success
# ==============================================================================================

REFLECT_PROMPT = (
    "REFLECTION. Your attempt failed ({failure}) after visiting: {path}. In one or two sentences, write a lesson "
    "for your next attempt at reaching {target!r}: which pages were dead ends, and what should you try instead?"
)


def reflect(client: openai.OpenAI, config: AgentConfig, episode: Episode) -> str:
    """Ask the model (without tools) to turn a failed episode into a lesson for the next attempt."""
    # EXERCISE: format REFLECT_PROMPT, send it after the episode's whole history (no tools), return the stripped text
    prompt = REFLECT_PROMPT.format(failure=episode.failure, path=" -> ".join(episode.path), target=episode.target)
    response = client.chat.completions.create(
        model=config.model, messages=[*episode.messages, {"role": "user", "content": prompt}],
        temperature=config.temperature,
    )
    return (response.choices[0].message.content or "").strip()
    # END EXERCISE


def reflexion(
    client: openai.OpenAI, source: WikiSource, start: str, target: str, config: AgentConfig, attempts: int = 3
) -> list[Episode]:
    """Reflexion: play; after each failure write a lesson with `reflect` and replay a fresh game with all lessons so far.

    Stops at the first success or after `attempts` games; returns every episode played.
    """
    # EXERCISE: loop over attempts: play(client, WikiGame(source, start, target), config, lessons); stop on success; else lessons.append(reflect(...))
    episodes: list[Episode] = []
    lessons: list[str] = []
    for _ in range(attempts):
        episodes.append(play(client, WikiGame(source, start, target), config, lessons))
        if episodes[-1].success:
            break
        lessons.append(reflect(client, config, episodes[-1]))
    return episodes
    # END EXERCISE


def reflexion_outcome(attempts: Sequence[Episode]) -> Episode:
    """A whole Reflexion run as one Episode: the last attempt's result and path, the steps and tool
    errors of all attempts (their cost; the reflection calls come on top)."""
    return replace(attempts[-1], steps=sum(e.steps for e in attempts), tool_errors=sum(e.tool_errors for e in attempts))


@dataclass
class Summary:
    n: int
    success_rate: float
    mean_moves: float  # over successful episodes only: failures have no meaningful move count
    mean_excess_moves: float  # moves beyond the shortest path, successes only (NaN without a par)
    mean_steps: float  # over all episodes: failures cost steps too
    failures: dict[str, int]


def summarise(episodes: Sequence[Episode], par: dict[tuple[str, str], int] | None = None) -> Summary:
    """Success rate, moves of the successes (and beyond par, the shortest-path length per (start, target)),
    agent steps per episode, and how often each failure mode occurred."""
    # EXERCISE: compute the Summary fields; averages over an empty set are float("nan")
    def mean(xs: Sequence[float]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    wins = [e for e in episodes if e.success]
    excess = [e.moves - par[(e.start, e.target)] for e in wins if par and (e.start, e.target) in par]
    return Summary(
        n=len(episodes),
        success_rate=mean([float(e.success) for e in episodes]),
        mean_moves=mean([e.moves for e in wins]),
        mean_excess_moves=mean(excess),
        mean_steps=mean([e.steps for e in episodes]),
        failures=dict(Counter(e.failure for e in episodes if not e.success)),
    )
    # END EXERCISE


def sample_games(source: OfflineWiki, n: int, min_moves: int = 2, max_moves: int = 4, seed: int = 0) -> list[tuple[str, str]]:
    """n (start, target) pairs whose shortest path has between min_moves and max_moves moves."""
    rng = Random(seed)
    titles = sorted(source.titles)
    games: list[tuple[str, str]] = []
    while len(games) < n:
        start, target = rng.sample(titles, 2)
        if min_moves <= len(source.shortest_path(start, target)) - 1 <= max_moves:
            games.append((start, target))
    return games


# ==============================================================================================
# 4. Offline stand-in models: rule-based responders for the loopback server
# ==============================================================================================
# These play the role of the LLM when there is no API key. They read only what a real model would
# see (the request's messages and tools) plus "world knowledge": the text of the target page, as an
# LLM knows roughly what a famous page is about. Their numbers show the measurement pipeline works;
# they say nothing about how well real models play.

_STOPWORDS = set(
    "a an and the of in on at to is was are were it its for from by with as or that this which who whom "
    "be been has have had he she his her they their them into over after before many most one two also "
    "about than then there these those so such not but can used use uses known other".split()
)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def arithmetic_responder(request: dict) -> ReplyLike:
    """A stand-in model for the arithmetic agent: calls `calculate` on the question's expression, then reports it."""
    results = [m for m in request["messages"] if m.get("role") == "tool"]
    if results and request["messages"][-1].get("role") == "tool":
        return f"The answer is {results[-1]['content']}."
    match = re.search(r"[-+*/%().\d\s]*\d[-+*/%().\d\s]*", last_user_message(request))
    if "calculate" in tool_names(request) and match:
        return ToolCall("calculate", {"expression": match.group().strip()})
    return "I don't see any arithmetic to do."


class WikiPolicy:
    """A stand-in model for the WikiGame: a noisy greedy link-follower.

    It scores each link by word overlap with the target page's text and moves to the best one (plus
    Gaussian noise of scale `noise`). What it knows depends on the elicitation, as a model's would:
    - baseline: it sees only link titles and keeps no memory of where it has been (so it can loop);
    - react: in its reasoning it notes the pages already visited and avoids them;
    - lookahead: it previews the top `preview_k` links and scores them by their summaries;
    - lessons in the system prompt (Reflexion) name dead ends, which it avoids.
    `tool_errors` > 0 makes it sometimes call a tool that does not exist (to exercise error handling).
    """

    def __init__(self, source: WikiSource, noise: float = 1.0, preview_k: int = 3, tool_errors: float = 0.0, seed: int = 0):
        self.source, self.noise, self.preview_k, self.tool_errors = source, noise, preview_k, tool_errors
        self._rng = Random(seed)
        self._lock = threading.Lock()  # the server may call us from several threads

    def _target(self, request: dict) -> str:
        match = re.search(r'the target page "([^"]+)"', system_message(request))
        if not match:
            raise ValueError("WikiPolicy: the system prompt does not name the target page")
        return match[1]

    def __call__(self, request: dict) -> ReplyLike:
        with self._lock:
            return self._respond(request)

    def _respond(self, request: dict) -> ReplyLike:
        messages = request["messages"]
        last = messages[-1]
        target = self._target(request)
        if last.get("role") == "user" and str(last.get("content", "")).startswith("REFLECTION"):
            return self._lesson(messages, target)
        state = self._state(messages)
        if request.get("tool_choice") == "none":  # ReAct's thinking step
            return self._thought(state, target)
        if state["page"] is None or state["stale"]:
            return ToolCall("get_content", {})
        if self.tool_errors and self._rng.random() < self.tool_errors:
            return ToolCall("teleport", {"page": target})
        links = state["links"]
        if any(l.lower() == target.lower() for l in links):
            return ToolCall("move_page", {"new_page": target})
        avoid = self._avoid(request, state)
        candidates = [l for l in links if l not in avoid] or links
        target_words = _words(target + " " + self._known_text(target))
        if "preview_page" in tool_names(request):
            unseen = [l for l in self._ranked(candidates, target_words, state, noise=False) if l not in state["previews"]]
            if len(state["previews"]) < self.preview_k and unseen:
                return [ToolCall("preview_page", {"title": l}) for l in unseen[: self.preview_k]]
        return ToolCall("move_page", {"new_page": self._ranked(candidates, target_words, state, noise=True)[0]})

    def _known_text(self, title: str) -> str:
        try:
            return plain_text(self.source.get_page(title).text)
        except PageNotFound:
            return ""

    def _ranked(self, links: list[str], target_words: set[str], state: dict, noise: bool) -> list[str]:
        def score(link: str) -> float:
            seen = _words(link) | _words(state["previews"].get(link, ""))
            return len(seen & target_words) + (self._rng.gauss(0, self.noise) if noise else 0.0)

        return sorted(links, key=score, reverse=True)

    def _state(self, messages: list[dict]) -> dict:
        """The current page, its links, previews read on it, pages visited, whether a move made the content stale."""
        state = {"page": None, "links": [], "previews": {}, "visited": [], "stale": False}
        for m in messages:
            if m.get("role") != "tool":
                continue
            text = str(m.get("content", ""))
            if text.startswith("Page: "):
                state["page"] = text.split("\n", 1)[0].removeprefix("Page: ")
                state["links"] = list(page_links(text))
                state["previews"], state["stale"] = {}, False
                state["visited"].append(state["page"])
            elif text.startswith("Summary of "):
                title, summary = re.match(r"Summary of '(.+?)': (.*)", text, re.DOTALL).groups()
                state["previews"][title] = summary
            elif text.startswith("Moved to"):
                state["stale"] = True
        return state

    def _avoid(self, request: dict, state: dict) -> set[str]:
        avoid: set[str] = set()
        for m in re.finditer(r"dead ends?: ([^.\n]+)", system_message(request), re.IGNORECASE):
            avoid |= {t.strip() for t in m[1].split(",")}
        thoughts = " ".join(str(m.get("content") or "") for m in request["messages"] if m.get("role") == "assistant")
        if "Visited so far:" in thoughts:  # ReAct: its own notes remind it where it has been
            avoid |= set(state["visited"])
        return avoid

    def _thought(self, state: dict, target: str) -> str:
        if state["page"] is None or state["stale"]:
            return f"I should read the current page first to see its links. My target is {target!r}."
        return (f"I am on {state['page']!r} and need to reach {target!r}. Visited so far: {', '.join(state['visited'])}. "
                "I will pick the unvisited link whose topic is closest to the target.")

    def _lesson(self, messages: list[dict], target: str) -> str:
        visited = [t for t in self._state(messages)["visited"] if t.lower() != target.lower()]
        dead_ends = [t for t, n in Counter(visited).items() if n > 1] or visited[-2:]
        return f"Dead ends: {', '.join(dead_ends)}. Next time prefer links whose topic is closer to {target}."
