"""Checks for section 3.3 (agents). The LLM-facing checks run the learner's code with the real `openai`
client against the loopback server (curriculum.utils.openai_server), driven by small scripted "models"."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
from typing import Any, Callable, Iterator

import jsonschema
import openai
import pydantic
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageFunctionToolCall

from curriculum.solutions.chapter3 import agents as ref
from curriculum.solutions.chapter3.wiki import OFFLINE_GRAPH, OfflineWiki, page_links
from curriculum.checking import assert_equal, check, fail
from curriculum.utils.openai_server import HTTPError, LoopbackServer, ToolCall, loopback_client

WIKI = OfflineWiki()


class Loopback:
    """One loopback server and client for a whole check (starting and stopping a server costs ~0.5 s);
    `script(responder)` swaps in the next scripted model and `since(mark)` returns what it was sent."""

    def __init__(self, server: LoopbackServer, client: openai.OpenAI):
        self.server, self.client, self.responder = server, client, None

    def __call__(self, request: dict) -> Any:
        return self.responder(request)

    def script(self, responder: Callable[[dict], Any]) -> int:
        self.responder = responder
        return len(self.server.requests)

    def since(self, mark: int) -> list[dict]:
        return list(self.server.requests[mark:])


@contextlib.contextmanager
def serve() -> Iterator[Loopback]:
    """A loopback server whose model you script with `.script(responder)`, and a real openai client (no retries)."""
    server = LoopbackServer()
    with server:
        loop = Loopback(server, loopback_client(server))
        server.responder = loop
        try:
            yield loop
        finally:
            loop.client.close()


def tool_call(name: str, arguments: str, id: str) -> ChatCompletionMessageFunctionToolCall:
    """A tool call exactly as the openai client parses it from a response."""
    return ChatCompletionMessageFunctionToolCall.model_validate(
        {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}
    )


# ----------------------------------------------------------------------------------------------
# Part 1: function calling
# ----------------------------------------------------------------------------------------------

CALC_CASES = [
    "2 + 3 * 4", "(2 + 3) * 4", "2 ** 3 ** 2", "-3 ** 2", "7 // 2", "-7 // 2", "-7 % 3", "7 / 2",
    "1.5 * 4", "+5 - -2", "100 - 20 - 5", "2 ** -1", "((1 + 2) * (3 + 4)) % 5",
]
CALC_REJECT = ["__import__('os').getcwd()", "open('/etc/passwd')", "x + 1", "(1).real", "[1, 2]", "'a' * 3", "lambda: 1"]


@check
def check_calculate(calculate: Callable[[str], str]) -> str:
    for expr in CALC_CASES:
        got = calculate(expr)
        if not isinstance(got, str):
            fail(f"calculate({expr!r}) should return a str (the tool's message to the model), got {type(got).__name__}")
        expected = eval(expr)  # noqa: S307 - the independent reference, on our own fixed expressions
        try:
            value = float(got)
        except ValueError:
            fail(f"calculate({expr!r}) returned {got!r}, expected {expected!r}")
        if not math.isclose(value, expected, rel_tol=1e-12):
            hint = ""
            if expr.startswith("-7 //") or expr.startswith("7 //"):
                hint = " (// is floor division: ast.FloorDiv, rounding towards minus infinity)"
            elif "**" in expr:
                hint = " (is ** mapped to operator.pow, and unary minus applied to the operand?)"
            fail(f"calculate({expr!r}) = {got!r}, Python says {expected!r}{hint}")
    # 2 ** 5000 is quick to compute; it stands for 9 ** 9 ** 9, which would hang this check without the guard
    for expr in CALC_REJECT + ["1 / 0", "2 +", f"2 ** {ref.MAX_EXPONENT * 5}"]:
        got = calculate(expr)
        if not (isinstance(got, str) and got.startswith("Error")):
            fail(f"calculate({expr!r}) should return a string starting with 'Error', got {got!r}. "
                 "Only numbers and arithmetic operators are allowed (never call eval), division by zero and "
                 "syntax errors are reported, and exponents above MAX_EXPONENT are refused")
    return f"{len(CALC_CASES)} expressions match Python, {len(CALC_REJECT) + 3} unsafe/invalid ones rejected"


@check
def check_calculator_schema(calculator_schema: Callable[[], dict]) -> str:
    schema = calculator_schema()
    try:  # the openai package's own type for a function tool, validated by pydantic
        pydantic.TypeAdapter(ChatCompletionFunctionToolParam).validate_python(schema, strict=True)
    except pydantic.ValidationError as e:
        fail(f"not a valid OpenAI function tool ({{'type': 'function', 'function': {{...}}}}): {e.errors()[0]['msg']} "
             f"at {e.errors()[0]['loc']}")
    fn = schema["function"]
    assert_equal(fn.get("name"), "calculate", "function name", "it must match the Python function the loop calls")
    if not fn.get("description"):
        fail("give the function a description: it is the only documentation the model sees")
    params = fn.get("parameters")
    if not isinstance(params, dict):
        fail("function.parameters should be a JSON schema object")
    try:
        jsonschema.Draft202012Validator.check_schema(params)
    except jsonschema.SchemaError as e:
        fail(f"parameters is not a valid JSON schema: {e.message}")
    validator = jsonschema.Draft202012Validator(params)
    if not validator.is_valid({"expression": "1 + 2"}):
        fail("parameters should accept {'expression': '1 + 2'}")
    for bad, why in [({}, "'expression' should be required"), ({"expression": 3}, "'expression' should be a string")]:
        if validator.is_valid(bad):
            fail(f"parameters accepts {bad!r}: {why}")
    return "valid OpenAI tool; arguments schema checked with jsonschema"


@check
def check_execute_tool_calls(execute_tool_calls: Callable) -> str:
    def boom(**kwargs: Any) -> str:
        raise RuntimeError("disk on fire")

    tools = {"calculate": ref.calculate, "boom": boom}
    calls = [
        tool_call("calculate", '{"expression": "6 * 7"}', "call_ok"),
        tool_call("calculate", '{"expression": "6 *', "call_malformed"),
        tool_call("search_web", '{"q": "x"}', "call_unknown"),
        tool_call("boom", "{}", "call_raises"),
        tool_call("calculate", '{"expr": "1"}', "call_wrong_arg"),
        tool_call("calculate", "[1, 2]", "call_not_object"),
    ]
    try:
        out = execute_tool_calls(calls, tools)
    except Exception as e:  # noqa: BLE001
        fail(f"execute_tool_calls raised {type(e).__name__}: {e}. A bad tool call must become an 'Error: ...' tool "
             "message for the model, never an exception that kills the agent")
    if not isinstance(out, list) or len(out) != len(calls):
        fail(f"expected one tool message per call ({len(calls)}), got {out!r:.200}. The API rejects a history in which "
             "a tool call has no tool message, so errors need one too")
    for call, msg in zip(calls, out):
        if not isinstance(msg, dict) or msg.get("role") != "tool":
            fail(f"each result should be a dict with role 'tool', got {msg!r}")
        assert_equal(msg.get("tool_call_id"), call.id, "tool_call_id", "it links the result to its call (use call.id)")
        if not isinstance(msg.get("content"), str):
            fail(f"content should be a string, got {type(msg.get('content')).__name__}")
    assert_equal(out[0]["content"], "42", "content of a successful calculate call")
    for msg, what in zip(out[1:], ["malformed JSON arguments", "an unknown tool", "a tool that raises",
                                    "a wrong argument name", "arguments that are not a JSON object"]):
        if not msg["content"].startswith("Error"):
            fail(f"for {what} the content should start with 'Error', got {msg['content']!r}")
    if "search_web" not in out[2]["content"]:
        fail(f"the unknown-tool error should name the tool the model asked for: {out[2]['content']!r}")
    if "calculate" not in out[2]["content"]:
        fail(f"the unknown-tool error should list the available tools so the model can recover: {out[2]['content']!r}")
    return "results, malformed JSON, unknown tool, crashing tool and bad arguments all handled"


def _arith_model(request: dict) -> Any:
    """Calls calculate once, then answers with what the tool said."""
    msgs = request["messages"]
    if msgs[-1].get("role") == "tool":
        return f"The answer is {msgs[-1]['content']}."
    return ToolCall("calculate", {"expression": "(3 + 4) * 5"}, id="call_1")


@check
def check_run_agent(run_agent: Callable) -> str:
    tools = [ref.Tool(ref.calculator_schema(), ref.calculate)]
    start = [{"role": "system", "content": "Use the calculator."}, {"role": "user", "content": "What is (3 + 4) * 5?"}]
    snapshot = json.dumps(start)
    with serve() as loop:
        mark = loop.script(_arith_model)
        out = run_agent(loop.client, "loopback", start, tools, max_steps=5)
        requests = loop.since(mark)
        # a model that never stops calling tools; it gives up after 20 calls, so a loop that ignores
        # max_steps fails this check instead of hanging it
        mark = loop.script(lambda r: ToolCall("calculate", {"expression": "1 + 1"})
                           if len(loop.since(mark)) <= 20 else "I give up.")
        run_agent(loop.client, "loopback", start, tools, max_steps=3)
        n = len(loop.since(mark))
    if json.dumps(start) != snapshot:
        fail("run_agent changed the list it was given: copy it (messages = list(messages)) before appending")
    if not isinstance(out, list) or len(out) != 5:
        fail(f"expected 5 messages (system, user, assistant tool call, tool result, final answer), got "
             f"{len(out) if isinstance(out, list) else out!r}")
    roles = [m["role"] if isinstance(m, dict) else getattr(m, "role", None) for m in out]
    assert_equal(roles, ["system", "user", "assistant", "tool", "assistant"], "roles of the returned messages")
    if len(requests) != 2:
        fail(f"expected 2 model calls (one with the tool call, one after the result), the server saw {len(requests)}")
    if not requests[0].get("tools") or requests[0]["tools"][0]["function"]["name"] != "calculate":
        fail("the first request did not offer the calculate tool: pass tools=[t.schema for t in tools]")
    second = requests[1]["messages"]
    assistant = [m for m in second if m.get("role") == "assistant"]
    if not assistant or not assistant[-1].get("tool_calls"):
        fail("the second request's history lacks the assistant message with its tool_calls: append the assistant "
             "turn itself (not only the tool results), or the API rejects the tool message")
    if second[-1].get("role") != "tool" or second[-1].get("content") != "35":
        fail(f"the second request should end with the tool result '35', got {second[-1]!r}")
    final = out[-1]["content"] if isinstance(out[-1], dict) else out[-1].content
    assert_equal(final, "The answer is 35.", "final answer")

    if n != 3:
        fail(f"with a model that never stops calling tools, max_steps=3 should mean 3 model calls; the server saw {n}"
             + (" (the scripted model stopped calling tools on its own, after 20 tool calls): does your loop stop after "
                "max_steps model calls?" if n > 20 else ""))
    return "tool call, result, final answer and the max_steps budget"


# ----------------------------------------------------------------------------------------------
# Part 2: the WikiGame
# ----------------------------------------------------------------------------------------------

# A page with every kind of furniture a real article has around its prose, and its main content.
SAMPLE_WIKITEXT = """{{Short description|Italian dish}}
{{Infobox food
| name = Pizza
| country = [[Italy]]
| main_ingredient = {{hlist|[[Flour]]|[[Tomato]]}}
}}
[[File:Pizza-3007395.jpg|thumb|upright|A pizza from [[Naples]], with [[Basil]]]]
<!-- Do not link [[Pizza Hut]] here -->
'''Pizza''' is a dish from [[Italy]] made of [[wheat|flour]] dough,<ref>Davidson, [[Oxford Companion to Food]], 1999.</ref>
topped with [[Tomato|tomatoes]] and [[Cheese#Mozzarella|mozzarella]].<ref name="b"/> See [[#History|below]].

== History ==
The [[Margherita_pizza|Margherita]] was named after a queen of [[Italy]]; [[Help:IPA|pronounced]] ''pizza''.
{| class="wikitable"
| [[Calzone]] || a folded pizza
|}

== See also ==
* [[List of pizza varieties by country]]
* [[Pizza Hut]]

== References ==
{{Reflist}}
* [[Special:BookSources/978|ISBN]]
{{Navbox pizza|[[Neapolitan pizza]]}}
[[Category:Italian cuisine]]
[[:Category:Pizza|pizza category]]
"""
SAMPLE_MAIN = """Pizza is a dish from <link>Italy</link> made of <link>Wheat</link> dough, topped with <link>Tomato</link> and
<link>Cheese</link>. See below.

History

The <link>Margherita pizza</link> was named after a queen of <link>Italy</link>; pizza."""
_CAPTION = ("a File: caption: remove a File: link with its caption as one span, "
            "remove_spans(text, '[[', ']]', where=is_other_namespace), before rewriting the other links")
# Links that sit in the furniture: where each comes from, and the fix.
FURNITURE = {
    "Flour": "an infobox template: remove {{...}} spans with remove_spans(text, '{{', '}}')",
    "Naples": _CAPTION,
    "Basil": _CAPTION,
    "Pizza Hut": "a comment or the See also section: strip <!-- --> and cut at the first END_SECTIONS heading",
    "Oxford Companion to Food": "a <ref> footnote: remove <ref ...>...</ref> and <ref .../> first",
    "Calzone": "a table: remove {|...|} spans",
    "List of pizza varieties by country": "the See also section: cut everything from the first END_SECTIONS heading",
    "Neapolitan pizza": "a navbox template after the references: cut at the first END_SECTIONS heading",
}
_JUNK = [
    ("Category", ("category links ([[Category:...]], [[:Category:...]]) are not article links: drop links whose "
                  "prefix is in OTHER_NAMESPACES (is_other_namespace)")),
    ("Special:", "Special: and Help: links leave the article namespace: drop them"),
    ("Help:", "Special: and Help: links leave the article namespace: drop them"),
    ("See also", "cut the text at the first END_SECTIONS heading (== See also ==)"),
    ("{{", "templates {{...}} should be gone (remove_spans)"),
    ("[[", "every [[...]] link should be rewritten as <link>Title</link> or dropped"),
    ("''", "remove the bold and italic quotes ('' and ''')"),
    ("<ref", "remove <ref> footnotes"),
    ("<!--", "remove HTML comments"),
]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _shipped_main_links() -> dict[str, list[str]]:
    """The links of each offline page's hand-written body, as the generator lists them (not through a parser)."""
    spec = importlib.util.spec_from_file_location("_wiki_build_graph", OFFLINE_GRAPH.parent / "build_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main_links()


@check
def check_main_content(main_content: Callable[[str], str]) -> str:
    out = main_content(SAMPLE_WIKITEXT)
    if not isinstance(out, str):
        fail(f"main_content should return a str, got {type(out).__name__}")
    links = list(page_links(out))
    for title, why in FURNITURE.items():
        if title in out:
            fail(f"{title!r} is in your main content, but it comes from {why}")
    for junk, why in _JUNK:
        if junk in out:
            fail(f"{junk!r} is still in your main content: {why}")
    expected_links = ["Italy", "Wheat", "Tomato", "Cheese", "Margherita pizza"]
    if links != expected_links:
        hint = ""
        if "Wheat" not in links and any(t in links for t in ("flour", "Flour", "tomatoes")):
            hint = " A link [[wheat|flour]] goes to the page 'Wheat': put the target, not the shown text, in the tag."
        elif any("#" in t or "_" in t or t[:1].islower() for t in links):
            hint = " Normalise the target: drop '#Section', underscores to spaces, first letter upper case (normalise_title)."
        elif "" in links or "History" in links:
            hint = " [[#History|below]] points to a section of the same page: keep only its shown text."
        fail(f"links of the sample page, in order: expected {expected_links}, got {links}.{hint}")
    if _flat(out) != _flat(SAMPLE_MAIN):
        fail(f"the sample page's main content, whitespace aside, should read\n{_flat(SAMPLE_MAIN)!r}\ngot\n{_flat(out)!r}")
    paragraphs = [p for p in out.split("\n\n") if p.strip()]
    if len(paragraphs) != 3:
        fail(f"expected 3 paragraphs separated by blank lines (the lead, the heading 'History', its text), got "
             f"{len(paragraphs)}: keep blank lines between paragraphs and turn '== History ==' into a line 'History'")

    shipped = json.loads(OFFLINE_GRAPH.read_text())["pages"]
    expected = _shipped_main_links()
    for page in shipped:
        got = list(page_links(main_content(page["wikitext"])))
        if got != expected[page["title"]]:
            extra = [t for t in got if t not in expected[page["title"]]]
            fail(f"offline page {page['title']!r}: expected the links of its body {expected[page['title']]}, got {got}"
                 + (f" (not in the body: {extra})" if extra else ""))
    return f"sample page exact; the links of all {len(shipped)} offline pages match their hand-written bodies"


TRUNCATE_TEXT = (
    "The first paragraph links <link>Alpha</link> and <link>Beta</link> in a sentence of moderate length.\n\n"
    "The second paragraph mentions <link>Gamma</link> and the <link>Theory of relativity</link> once.\n\n"
    "A third paragraph with <link>Delta</link>, <link>Alpha</link> again, and more words to fill it."
)


def _truncated_body(out: Any, text: str, max_chars: int, what: str) -> str:
    """The page text before the note, after checking the cut and the note."""
    if not isinstance(out, str):
        fail(f"truncate_page should return a str, got {type(out).__name__}")
    if "[Page truncated" not in out:
        fail(f"{what}: the page was cut but the result has no TRUNCATION_NOTE: tell the model it is not seeing the whole page")
    body, note = out[: out.index("[Page truncated")].rstrip(), out[out.index("[Page truncated"):]
    if len(body) > max_chars:
        fail(f"{what}: {len(body)} characters of page before the note, more than max_chars={max_chars}")
    if not text.startswith(body):
        fail(f"{what}: the text before the note should be the start of the page, unchanged; it ends {body[-60:]!r}")
    if "<" in re.sub(r"<link>[^<]*</link>", "", body):
        fail(f"{what}: the cut breaks a <link>...</link> tag ({body[-40:]!r}); a broken tag is a link the model cannot "
             "read: cut before the <link>")
    hidden = len(set(page_links(text)) - set(page_links(body)))
    assert_equal(note.strip(), ref.TRUNCATION_NOTE.format(shown=len(body), total=len(text), hidden=hidden),
                 f"the note ({what})", "shown = characters kept, total = len(text), hidden = distinct linked titles "
                 "that appear only in the part cut off")
    return body


@check
def check_truncate_page(truncate_page: Callable[[str, int], str]) -> str:
    text = TRUNCATE_TEXT
    assert_equal(truncate_page(text, len(text)), text, "a page exactly max_chars long",
                 "return pages that fit unchanged, without a note")
    assert_equal(truncate_page("Short.", 4000), "Short.", "a short page")
    p1, p2, _ = text.split("\n\n")
    for max_chars, n_paragraphs in [(len(p1) + len(p2) + 2, 2), (len(p1) + len(p2) + 30, 2), (len(p1) + 5, 1)]:
        body = _truncated_body(truncate_page(text, max_chars), text, max_chars, f"max_chars={max_chars}")
        kept = [p for p in body.split("\n\n") if p]
        if len(kept) != n_paragraphs:
            fail(f"max_chars={max_chars}: {n_paragraphs} whole paragraph(s) fit, you kept {len(kept)}: keep adding "
                 "paragraphs while the text, with its blank-line separators, stays within max_chars")
    one = text.replace("\n\n", " ")
    for max_chars in (one.index("relativity") + 3, one.index("Gamma") + 2, 37):
        body = _truncated_body(truncate_page(one, max_chars), one, max_chars, f"one long paragraph, max_chars={max_chars}")
        if not body:
            fail(f"max_chars={max_chars}: when the first paragraph does not fit, cut it at a space; do not drop it")
        if one[len(body)] not in " <":
            fail(f"max_chars={max_chars}: the cut splits a word ({body[-20:]!r}): cut at the last space")
    return "short pages untouched; whole paragraphs while they fit; no split words or links; exact note"



@check
def check_wiki_game(WikiGame: type) -> str:
    game = WikiGame(WIKI, "Pizza", "Milk")

    msg = game.move_page("Milk")  # the target, but not linked from Pizza
    if game.current != "Pizza" or game.path != ["Pizza"]:
        fail("move_page('Milk') from Pizza moved the game, but Milk is not linked from Pizza: only links may be followed")
    assert_equal(game.invalid_moves, 1, "invalid_moves after a refused move")
    if not isinstance(msg, str) or not msg:
        fail("a refused move should return a message telling the model what went wrong")

    game.move_page("cheese")  # Wikipedia titles are case-insensitive in practice; the model often lowercases
    if game.current != "Cheese":
        fail(f"move_page('cheese') should move to the linked page 'Cheese' (match case-insensitively), current is {game.current!r}")
    if "Page: Cheese" not in game.get_content():
        fail("after moving, get_content should show the new page")
    game.move_page("Milk")
    assert_equal(game.path, ["Pizza", "Cheese", "Milk"], "path", "append each page you move to")
    if not game.is_won():
        fail("reaching the target should win the game")
    assert_equal(game.invalid_moves, 1, "invalid_moves (valid moves must not count)")

    other = WikiGame(WIKI, "Photosynthesis", "DNA")
    other.move_page("Cell_(biology)")
    assert_equal(other.current, "Cell (biology)", "current page after move_page('Cell_(biology)')",
                 "titles with underscores name the same page (normalise them)")
    return "content, link-only moves, case/underscore-insensitive titles, path and win"


# ----------------------------------------------------------------------------------------------
# Scripted models for the loop checks
# ----------------------------------------------------------------------------------------------


class PathFollower:
    """Reads the page when needed, then moves along a fixed path. Optional scripted detours first."""

    def __init__(self, path: list[str], detours: list[Any] = ()):
        self.path, self.detours = path, list(detours)

    def __call__(self, request: dict) -> Any:
        if request.get("tool_choice") == "none":
            return "Thinking: follow the plan."
        if self.detours:
            return self.detours.pop(0)
        tool_msgs = [m["content"] for m in request["messages"] if m.get("role") == "tool"]
        pages = [c for c in tool_msgs if c.startswith("Page: ")]
        if not pages or tool_msgs[-1].startswith("Moved to"):
            return ToolCall("get_content", {})
        here = re.match(r"Page: (.+)", pages[-1])[1]
        return ToolCall("move_page", {"new_page": self.path[self.path.index(here) + 1]})


def bouncer(request: dict) -> Any:
    """Moves Pizza -> Italy -> Pizza -> ... forever, never reading a page."""
    moves = sum(1 for m in request["messages"] if m.get("role") == "tool")
    return ToolCall("move_page", {"new_page": "Italy" if moves % 2 == 0 else "Pizza"})


class ChatsFirst:
    """Answers the first request with text only, then hands over to `then`."""

    def __init__(self, then: Callable[[dict], Any]):
        self.then, self.chatted = then, False

    def __call__(self, request: dict) -> Any:
        if not self.chatted and request.get("tool_choice") != "none":
            self.chatted = True
            return "Let me think about which page leads to milk."
        return self.then(request)


class ChatsBetween:
    """Replies with text before every tool call: text, tool, text, tool, ... (the tools from `then`)."""

    def __init__(self, then: Callable[[dict], Any]):
        self.then, self.replies = then, 0

    def __call__(self, request: dict) -> Any:
        if request.get("tool_choice") == "none":
            return self.then(request)
        self.replies += 1
        return "Let me think about the next page." if self.replies % 2 else self.then(request)


@check
def check_reflect(reflect: Callable) -> str:
    history = [{"role": "system", "content": 'Reach the target page "Milk".'}, {"role": "user", "content": "Start: Pizza."},
               {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
                   "name": "move_page", "arguments": '{"new_page": "Italy"}'}}]},
               {"role": "tool", "tool_call_id": "c1", "content": "Moved to 'Italy'."}]
    failed = ref.Episode("Pizza", "Milk", False, ["Pizza", "Italy", "Pizza", "Italy"], 7, "loop", messages=history)
    snapshot = json.dumps(history)
    with serve() as loop:
        mark = loop.script(lambda r: "  Dead ends: Italy. Try Cheese.\n")
        lesson = reflect(loop.client, ref.AgentConfig(), failed)
        requests = loop.since(mark)
    if json.dumps(history) != snapshot:
        fail("reflect changed the episode's messages: send a new list, [*episode.messages, prompt]")
    if len(requests) != 1:
        fail(f"reflect should make one model call, the server saw {len(requests)}")
    sent = requests[0]["messages"]
    if [m.get("content") for m in sent[:-1]] != [m["content"] for m in history]:
        fail("the reflection request should carry the episode's whole history before the prompt: the model can only "
             "find its dead ends in what it did")
    if sent[-1].get("role") != "user":
        fail(f"the reflection prompt should be a user message, got role {sent[-1].get('role')!r}")
    expected = ref.REFLECT_PROMPT.format(failure="loop", path="Pizza -> Italy -> Pizza -> Italy", target="Milk")
    assert_equal(sent[-1].get("content"), expected, "the reflection prompt",
                 "REFLECT_PROMPT.format(failure=episode.failure, path=' -> '.join(episode.path), target=episode.target)")
    if requests[0].get("tools"):
        fail("do not offer tools to the reflection call: we want a written lesson, not a move")
    assert_equal(lesson, "Dead ends: Italy. Try Cheese.", "the lesson returned", "return the reply's text, stripped")
    return "history and prompt sent without tools; the lesson's text returned"


def _history_problem(messages: list[dict]) -> str | None:
    """What the API would reject in a message list, or None: each tool message must follow (through other tool
    messages) the assistant message whose tool_calls include its id, and every tool call must be answered."""
    pending: set[str] = set()
    for i, m in enumerate(messages):
        if m.get("role") == "tool":
            if m.get("tool_call_id") not in pending:
                return (f"message {i} is a tool result without its assistant message (the one with the tool_calls) "
                        "right before it: keep an assistant turn and its tool results together")
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            return f"message {i - 1} leaves tool calls without results ({sorted(pending)}): keep all results of a turn"
        if m.get("role") == "assistant" and m.get("tool_calls"):
            pending = {c["id"] for c in m["tool_calls"]}
    return None


class _LongReader:
    """A scripted model for a long game: reads a long page, or makes two calls at once (a read and a note), and
    now and then replies with text; it never finishes."""

    def __init__(self):
        self.n = 0

    def __call__(self, request: dict) -> Any:
        self.n += 1
        if self.n % 7 == 0:
            return "Let me think about where to go next."
        if self.n % 2:
            return ToolCall("read", {})
        return [ToolCall("read", {}), ToolCall("note", {"text": f"step {self.n}"})]


def _turns(n: int) -> list[dict]:
    """n turns: an assistant message with two tool calls, their results, a text reply and a user reminder."""
    out = []
    for t in range(n):
        calls = [{"id": f"{k}{t}", "type": "function", "function": {"name": name, "arguments": "{}"}}
                 for k, name in (("a", "read"), ("b", "note"))]
        out += [{"role": "assistant", "content": "", "tool_calls": calls},
                {"role": "tool", "tool_call_id": f"a{t}", "content": f"Page {t}"},
                {"role": "tool", "tool_call_id": f"b{t}", "content": "noted"},
                {"role": "assistant", "content": f"thought {t}"}, {"role": "user", "content": "go on"}]
    return out


@check
def check_manage_context(manage_context: Callable[[list[dict], int], list[dict]]) -> str:
    head = [{"role": "system", "content": "You play the WikiGame."}, {"role": "user", "content": 'Reach "Milk".'}]
    for n_turns in (1, 6):
        history = head + _turns(n_turns)
        snapshot = json.dumps(history)
        for keep in (2, 3, 4, 5, 9):
            out = manage_context(history, keep)
            what = f"a history of {len(history)} messages with keep={keep}"
            if json.dumps(history) != snapshot:
                fail("manage_context changed the list it was given: build and return a new list")
            if not isinstance(out, list) or len(out) < 2:
                fail(f"{what}: expected a list of messages, got {out!r:.200}")
            if out[0] != head[0]:
                fail(f"{what}: the first message should be the system prompt, got {out[0]!r:.100}")
            if out[1] != head[1]:
                fail(f"{what}: the second message should be the task (the first user message), got {out[1]!r:.100}: "
                     "without it the model no longer knows its target")
            if len(history) <= 2 + keep:
                assert_equal(out, history, f"the result for {what} (short enough to keep whole)",
                             "return short histories unchanged")
                continue
            if (problem := _history_problem(out)) is not None:
                fail(f"{what}: the API would reject the result: {problem}")
            start = len(history) - keep
            while start > 2 and history[start]["role"] == "tool":
                start -= 1
            if start == 2:
                if out != history:
                    fix = ("return it whole, without a note" if len(out) >= len(history) else
                           "move the cut back (towards the task), not forward: skipping tool results forward drops them")
                    fail(f"{what}: message {len(history) - keep} is a tool result; moving the cut back past it to its "
                         "assistant turn reaches the message right after the task, so nothing is left out: expected "
                         f"the whole history ({len(history)} messages, no note), got {len(out)} messages: {fix}")
                continue
            n_tail = len(out) - 3
            if n_tail < keep or out[3:] != history[len(history) - n_tail:]:
                fail(f"{what}: after the system prompt, the task and the note, expected the last {keep} messages or a "
                     "few more, unchanged and in order")
            assert_equal(n_tail, len(history) - start, f"recent messages kept for {what}",
                         "start `keep` from the end and move back only past tool messages, to their assistant turn")
            assert_equal(out[2], {"role": "user", "content": ref.ELIDED_NOTE.format(n=start - 2)}, f"the note for {what}",
                         "one user message ELIDED_NOTE.format(n=<messages left out>) right after the task")

    tools = {"read": lambda: "Lorem ipsum dolor sit amet. " * 80, "note": lambda text: "noted"}
    schemas = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
               for n in tools]
    messages, keep = list(head), 6
    with serve() as loop:
        mark = loop.script(_LongReader())
        for step in range(60):
            view = manage_context(messages, keep)
            if (problem := _history_problem(view)) is not None:
                fail(f"at step {step} of a long game: {problem}")
            try:
                reply = loop.client.chat.completions.create(model="loopback", messages=view, tools=schemas).choices[0].message
            except openai.BadRequestError as e:
                fail(f"at step {step} of a long game the API rejected the messages you kept (400): {e.message}")
            messages.append(ref.assistant_message(reply))
            if reply.tool_calls:
                messages += ref.execute_tool_calls(reply.tool_calls, tools)
            else:
                messages.append({"role": "user", "content": "Please use a tool."})
        requests = loop.since(mark)
    sizes = [sum(len(str(m.get("content") or "")) for m in r["messages"]) for r in requests]
    if any(r["messages"][:2] != head for r in requests):
        fail("in a long game a request lost the system prompt or the task")
    bound = sum(len(m["content"]) for m in head) + 200 + (keep + 1) * len(tools["read"]())
    if max(sizes) > bound:
        fail(f"the context kept growing over a 60-step game: the largest request held {max(sizes)} characters of "
             f"content, more than keep={keep} messages can hold ({bound})")
    return (f"system prompt and task kept, valid for the API, context bounded over 60 steps "
            f"({sizes[5]} characters at step 5, {sizes[-1]} at step 60)")


def _play(loop: Loopback, play: Callable, responder: Any, variant: str = "baseline", max_steps: int = 12):
    mark = loop.script(responder)
    episode = play(loop.client, ref.WikiGame(WIKI, "Pizza", "Milk"), ref.AgentConfig(variant=variant, max_steps=max_steps))
    return episode, loop.since(mark)


@check
def check_react_act(react_act: Callable) -> str:
    messages = [{"role": "system", "content": 'target page "Milk"'}, {"role": "user", "content": "start"}]
    schemas = [ref.GET_CONTENT_SCHEMA, ref.MOVE_PAGE_SCHEMA]
    with serve() as loop:
        mark = loop.script(PathFollower(["Pizza", "Cheese", "Milk"]))
        action = react_act(loop.client, ref.AgentConfig(), messages, schemas)
        requests = loop.since(mark)
    if len(requests) != 2:
        fail(f"ReAct makes two calls per step (think, then act); the server saw {len(requests)}")
    think, act = requests
    if think.get("tool_choice") != "none":
        fail(f"the thinking call should forbid tools (tool_choice='none'), it sent tool_choice={think.get('tool_choice')!r}")
    if act.get("tool_choice") != "required":
        fail(f"the acting call should require a tool (tool_choice='required'), it sent {act.get('tool_choice')!r}")
    if not any(m.get("role") == "assistant" and "Thinking: follow the plan." in str(m.get("content")) for m in act["messages"]):
        fail("the acting call's history does not contain the model's reasoning: append it as an assistant message")
    contents = [m.get("content") for m in messages]
    if ref.REACT_THINK not in contents or ref.REACT_ACT not in contents:
        fail("append the REACT_THINK and REACT_ACT user turns to `messages` (the caller keeps the history)")
    if not getattr(action, "tool_calls", None):
        fail("react_act should return the action message (with its tool_calls), as plain_act does")
    return "think (no tools) then act (tool required), reasoning kept in the history"


@check
def check_play(play: Callable) -> str:
    with serve() as loop:
        return _check_play(loop, play)


def _check_play(loop: Loopback, play: Callable) -> str:
    ep, _ = _play(loop, play, PathFollower(["Pizza", "Cheese", "Milk"]))
    if not all(hasattr(ep, a) for a in ("success", "path", "steps", "failure", "tool_errors")):
        fail(f"play should return an Episode, got {type(ep).__name__}")
    if not ep.success or ep.failure is not None:
        fail(f"a model following Pizza -> Cheese -> Milk should win, got success={ep.success}, failure={ep.failure!r}")
    assert_equal(ep.path, ["Pizza", "Cheese", "Milk"], "episode path")
    assert_equal(ep.steps, 4, "steps (read, move, read, move)", "stop as soon as the game is won")

    ep, _ = _play(loop, play, ChatsFirst(PathFollower(["Pizza", "Cheese", "Milk"])))
    assert_equal(ep.steps, 5, "steps of a model that first replies with text, then reads, moves, reads, moves",
                 "a step is one decision: a text-only reply counts as a step too")
    ep, _ = _play(loop, play, ChatsFirst(PathFollower(["Pizza", "Cheese", "Milk"])), max_steps=4)
    assert_equal(ep.failure, "out_of_steps", "failure with max_steps=4 of a model that chats once and then needs 4 steps",
                 "count a text-only reply as a step, or a model that only chats would never run out of steps")
    ep, _ = _play(loop, play, ChatsBetween(PathFollower(["Pizza", "Cheese", "Milk"])))
    if not ep.success:
        fail(f"a model that replies with text before each of its 4 tool calls (never two text replies in a row) "
             f"should win in 8 steps, but the episode ended with failure={ep.failure!r} after {ep.steps} steps"
             + ("; reset text_turns after a reply with tool calls: max_text_turns counts text-only replies "
                "in a row, not in total" if ep.failure == "no_tool_call" else ""))
    assert_equal(ep.steps, 8, "steps of a model that alternates text replies and tool calls (text, read, text, move, ...)")

    ep, reqs = _play(loop, play, bouncer, max_steps=12)
    assert_equal(ep.failure, "loop", "failure of a model bouncing Pizza <-> Italy",
                 "stop when the current page has been reached max_visits (3) times")
    assert_equal(ep.steps, 4, "steps before the loop is detected")

    ep, reqs = _play(loop, play, lambda r: "I would rather chat about pizza.", max_steps=12)
    assert_equal(ep.failure, "no_tool_call", "failure of a model that never calls a tool")
    assert_equal(len(reqs), 2, "model calls before giving up (max_text_turns=2)")
    if reqs[1]["messages"][-1].get("role") != "user":
        fail("after a reply without tool calls, add a user message reminding the model to use the tools")

    ep, reqs = _play(loop, play, lambda r: ToolCall("get_content", {}), max_steps=5)
    assert_equal(ep.failure, "out_of_steps", "failure of a model that only ever reads")
    assert_equal(len(reqs), 5, "model calls with max_steps=5")

    detours = [ToolCall("teleport", {"page": "Milk"}), ToolCall("move_page", '{"new_page": "Chee')]
    ep, reqs = _play(loop, play, PathFollower(["Pizza", "Cheese", "Milk"], detours))
    if not ep.success:
        fail(f"after an unknown tool and malformed JSON the model recovered and played on, but the episode "
             f"ended with {ep.failure!r}: report tool errors to the model and continue")
    assert_equal(ep.tool_errors, 2, "tool_errors (unknown tool + malformed JSON)")

    def down(request: dict) -> Any:
        raise HTTPError(500, "the model is down")

    ep, _ = _play(loop, play, down)
    assert_equal(ep.failure, "api_error", "failure when the API errors", "catch openai.APIError")

    ep, reqs = _play(loop, play, PathFollower(["Pizza", "Cheese", "Milk"]), variant="react")
    if not ep.success or not any(r.get("tool_choice") == "none" for r in reqs):
        fail("with variant='react', play should act through react_act (think, then act)")
    return ("win, loop, no tool call (text-only replies in a row), out of steps, tool errors, API error "
            "and the ReAct variant")


def _lesson_model(request: dict) -> Any:
    """Bounces (and loops) until the system prompt carries a lesson; then follows the good path."""
    last = request["messages"][-1]
    if last.get("role") == "user" and str(last.get("content", "")).startswith("REFLECTION"):
        return "Dead ends: Italy."
    if "Dead ends: Italy" in request["messages"][0]["content"]:
        return PathFollower(["Pizza", "Cheese", "Milk"])(request)
    return bouncer(request)


@check
def check_reflexion(reflexion: Callable) -> str:
    with serve() as loop:
        mark = loop.script(_lesson_model)
        episodes = reflexion(loop.client, WIKI, "Pizza", "Milk", ref.AgentConfig(max_steps=12), attempts=3)
        requests = loop.since(mark)
    if not isinstance(episodes, list) or not all(hasattr(e, "success") and hasattr(e, "path") for e in episodes):
        fail(f"reflexion should return the list of Episodes played, got {episodes!r:.200}")
    if len(episodes) != 2:
        why = "Stop after the first success; pass the lessons to play"
        # the scripted model makes at most one move per step, so a fresh game's path has at most steps + 1 pages
        if any(len(e.path) > e.steps + 1 for e in episodes[1:]):
            why = ("The second attempt went on from where the first one ended (its path already held the "
                   "first game's pages): start each attempt with a fresh WikiGame(source, start, target)")
        elif len(episodes) > 1 and not any("Dead ends: Italy" in str(r["messages"][0].get("content", "")) for r in requests):
            why = ("No request after the reflection had the lesson in its system prompt: pass the lessons "
                   "gathered so far to play(client, game, config, lessons)")
        fail(f"expected 2 episodes (a loop, then a win using the lesson), got {len(episodes)}: "
             f"{[e.failure for e in episodes]}. {why}")
    first, second = episodes
    assert_equal(first.failure, "loop", "first attempt's failure")
    if not second.success:
        fail(f"the second attempt should win with the lesson 'Dead ends: Italy.' in its system prompt, got {second.failure!r}")
    assert_equal(second.path, ["Pizza", "Cheese", "Milk"], "second attempt's path", "start each attempt with a fresh WikiGame")
    reflections = [r for r in requests if str(r["messages"][-1].get("content", "")).startswith("REFLECTION")]
    if len(reflections) != 1:
        fail(f"expected one reflection request (after the failure only), the server saw {len(reflections)}")
    if "Pizza -> Italy" not in reflections[0]["messages"][-1]["content"]:
        fail("the reflection prompt should show the failed path (use reflect(client, config, episode))")
    return "fail, reflect, retry with the lesson, stop on success"


def _episode(success: bool, moves: int, steps: int, failure: str | None, start: str = "A", target: str = "B") -> ref.Episode:
    return ref.Episode(start, target, success, [start] + ["x"] * (moves - 1) + [target] if moves else [start], steps, failure)


@check
def check_summarise(summarise: Callable) -> str:
    eps = [
        _episode(True, 2, 4, None, "A", "B"),
        _episode(True, 4, 9, None, "C", "D"),
        _episode(False, 7, 12, "loop", "A", "B"),
        _episode(False, 10, 40, "out_of_steps", "C", "D"),
        _episode(False, 0, 1, "api_error", "A", "B"),
        _episode(False, 6, 12, "loop", "C", "D"),
    ]
    s = summarise(eps, par={("A", "B"): 2, ("C", "D"): 3})
    assert_equal(s.n, 6, "n")
    if not math.isclose(s.success_rate, 2 / 6):
        fail(f"success_rate: expected {2 / 6:.4f}, got {s.success_rate}")
    if not math.isclose(s.mean_moves, 3.0):
        fail(f"mean_moves: expected 3.0 (successes only: failed games have no meaningful move count), got {s.mean_moves}")
    if not math.isclose(s.mean_excess_moves, 0.5):
        fail(f"mean_excess_moves: expected 0.5 (moves - par for each success, averaged), got {s.mean_excess_moves}")
    if not math.isclose(s.mean_steps, 78 / 6):
        fail(f"mean_steps: expected {78 / 6:.4f} (over all episodes: failures cost steps too), got {s.mean_steps}")
    assert_equal(dict(s.failures), {"loop": 2, "out_of_steps": 1, "api_error": 1}, "failures")
    none_won = summarise(eps[2:])
    if not (math.isnan(none_won.mean_moves) and none_won.success_rate == 0.0 and math.isnan(none_won.mean_excess_moves)):
        fail("with no successes, mean_moves and mean_excess_moves should be nan and success_rate 0.0 (no crash)")
    return "success rate, moves over successes, excess over par, cost and failure counts"
