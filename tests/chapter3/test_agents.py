"""Section 3.3 beyond the automatic contract: mutants each check must catch, the offline graph, the live
Wikipedia client's parsing, and the agent surviving injected server failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from curriculum.solutions.chapter3 import agents as ref
from curriculum.solutions.chapter3 import wiki
from curriculum.checks.chapter3 import agents as checks
from curriculum.utils.openai_server import loopback_client
from curriculum.utils.openai_server import Failures, LoopbackServer
from tests.support import assert_check_fails, mutant

ROOT = Path(__file__).resolve().parents[2]


MUTANTS = {
    "calculate: eval instead of walking the tree": (
        checks.check_calculate, ref.calculate, [("return str(walk(ast.parse(expression, mode=\"eval\")))", "return str(eval(expression))")]),
    "calculate: no unary minus": (
        checks.check_calculate, ref.calculate, [("if isinstance(node, ast.UnaryOp)", "if False")]),
    "calculate: floor division as true division": (
        checks.check_calculate, ref.calculate, [("if isinstance(node, ast.Expression):", "_BINARY_OPS[ast.FloorDiv] = operator.truediv\n        if isinstance(node, ast.Expression):")]),
    "calculate: no exponent guard": (
        checks.check_calculate, ref.calculate, [("abs(right) > MAX_EXPONENT", "False")]),
    "calculate: division by zero escapes": (
        checks.check_calculate, ref.calculate, [("ZeroDivisionError, ", "")]),
    "schema: expression not required": (
        checks.check_calculator_schema, ref.calculator_schema, [('"required": ["expression"],', "")]),
    "schema: expression typed as a number": (
        checks.check_calculator_schema, ref.calculator_schema, [('"expression": {"type": "string"', '"expression": {"type": "number"')]),
    "schema: missing the type: function wrapper": (
        checks.check_calculator_schema, ref.calculator_schema, [('"type": "function",\n', "")]),
    "execute: unknown tool skipped": (
        checks.check_execute_tool_calls, ref.execute_tool_calls, [("raise LookupError(", "continue\n                raise LookupError(")]),
    "execute: wrong tool_call_id": (
        checks.check_execute_tool_calls, ref.execute_tool_calls, [('"tool_call_id": call.id', '"tool_call_id": name')]),
    "execute: tool exceptions propagate": (
        checks.check_execute_tool_calls, ref.execute_tool_calls, [("except Exception as e:", "except KeyError as e:")]),
    "execute: unknown-tool error does not list the tools": (
        checks.check_execute_tool_calls, ref.execute_tool_calls, [("; the available tools are {sorted(tools)}", "")]),
    "run_agent: assistant turn not appended": (
        checks.check_run_agent, ref.run_agent, [("messages.append(assistant_message(message))", "pass")]),
    "run_agent: mutates the caller's list": (
        checks.check_run_agent, ref.run_agent, [("messages = list(messages)", "messages = messages")]),
    "run_agent: one call too many": (
        checks.check_run_agent, ref.run_agent, [("range(max_steps)", "range(max_steps + 1)")]),
    "run_agent: tools not sent": (
        checks.check_run_agent, ref.run_agent, [(", tools=[t.schema for t in tools]", "")]),
    "WikiGame: teleports to any page": (
        checks.check_wiki_game, ref.WikiGame, [("link = self.linked_title(new_page)", "link = self.source.get_page(new_page).title")]),
    "WikiGame: case-sensitive links": (
        checks.check_wiki_game, ref.WikiGame, [("link = self.linked_title(new_page)", "link = new_page if new_page in self.current_page.links else None")]),
    "WikiGame: path not recorded": (
        checks.check_wiki_game, ref.WikiGame, [("self.path.append(self.current)", "pass")]),
    "WikiGame: refused moves not counted": (
        checks.check_wiki_game, ref.WikiGame, [("self.invalid_moves += 1", "pass")]),
    "WikiGame: content without links": (
        checks.check_wiki_game, ref.WikiGame, [("\\n\\nLinks: {' | '.join(page.links)}", "")]),
    "react_act: reasoning dropped from history": (
        checks.check_react_act, ref.react_act, [('messages.append({"role": "assistant", "content": thought.content or ""})', "pass")]),
    "react_act: tool_choice swapped": (
        checks.check_react_act, ref.react_act, [('tool_choice="none"', 'tool_choice="TMP"'), ('tool_choice="required"', 'tool_choice="none"'), ('tool_choice="TMP"', 'tool_choice="required"')]),
    "play: no loop detection": (
        checks.check_play, ref.play, [(">= config.max_visits", ">= 10**9")]),
    "play: loop detected one visit late": (
        checks.check_play, ref.play, [(">= config.max_visits", "> config.max_visits")]),
    "play: no reminder after a text reply": (
        checks.check_play, ref.play, [('messages.append({"role": "user", "content": "Please continue by calling one of the tools."})', "pass")]),
    "play: API errors crash the agent": (
        checks.check_play, ref.play, [("except openai.APIError:", "except KeyError:")]),
    "play: tool errors not counted": (
        checks.check_play, ref.play, [('tool_errors += sum(r["content"].startswith("Error") for r in results)', "pass")]),
    "play: ignores the react variant": (
        checks.check_play, ref.play, [('act = react_act if config.variant == "react" else plain_act', "act = plain_act")]),
    "play: stops on the first text reply without reminding": (
        checks.check_play, ref.play, [("if text_turns >= config.max_text_turns:", "if text_turns >= 1:")]),
    "reflexion: reuses the finished game": (
        checks.check_reflexion, ref.reflexion, [("lessons: list[str] = []", "lessons: list[str] = []\n    game = WikiGame(source, start, target)"),
                                                ("play(client, WikiGame(source, start, target), config, lessons)", "play(client, game, config, lessons)")]),
    "reflexion: lessons not passed on": (
        checks.check_reflexion, ref.reflexion, [("config, lessons))", "config))")]),
    "reflexion: does not stop on success": (
        checks.check_reflexion, ref.reflexion, [("            break\n", "            pass\n")]),
    "summarise: mean moves over all episodes": (
        checks.check_summarise, ref.summarise, [("mean_moves=mean([e.moves for e in wins])", "mean_moves=mean([e.moves for e in episodes])")]),
    "summarise: cost over successes only": (
        checks.check_summarise, ref.summarise, [("mean([e.steps for e in episodes])", "mean([e.steps for e in wins])")]),
    "summarise: successes counted as a failure mode": (
        checks.check_summarise, ref.summarise, [("for e in episodes if not e.success", "for e in episodes")]),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_check_catches_mutant(name):
    check_fn, obj, replacements = MUTANTS[name]
    assert_check_fails(check_fn, mutant(obj, *replacements))


# --- the offline graph ------------------------------------------------------------------------


def test_offline_graph_is_what_the_script_generates(tmp_path):
    shipped = json.loads((ROOT / "data/chapter3/wiki/pages.json").read_text())
    sys.path.insert(0, str(ROOT / "data/chapter3/wiki"))
    try:
        import build_graph
    finally:
        sys.path.pop(0)
    assert shipped["pages"] == build_graph.build(), "pages.json is stale: run python data/chapter3/wiki/build_graph.py"


def test_offline_graph_size_and_connectivity():
    w = wiki.OfflineWiki()
    assert len(w.titles) >= 50
    for title in w.titles:
        page = w.get_page(title)
        assert page.content and page.summary and 2 <= len(page.links)
        assert all(link in w.pages for link in page.links)
    # strongly connected: every game has a solution
    assert all(len(w.shortest_path(w.titles[0], t)) >= 1 and w.shortest_path(t, w.titles[0]) for t in w.titles)
    assert w.shortest_path("Pizza", "Milk") == ["Pizza", "Cheese", "Milk"]
    with pytest.raises(wiki.PageNotFound):
        w.get_page("Atlantis")


# --- the live client, on recorded-shaped MediaWiki API responses ------------------------------


def test_live_wiki_parses_extracts_links_redirects_and_continuation():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        calls.append(params)
        assert params["action"] == "query" and "links" in params["prop"] and params["redirects"] == "1"
        assert request.headers["User-Agent"].startswith("open-alignment-curriculum")
        if params["titles"] == "Atlantis (fiction)":
            return httpx.Response(200, json={"query": {"pages": [{"title": "Atlantis (fiction)", "missing": True}]}})
        page = {"pageid": 1, "ns": 0, "title": "Albert Einstein"}
        if "plcontinue" not in params:
            page |= {"extract": "Albert Einstein was a physicist. He developed relativity.", "links": [{"ns": 0, "title": "Physics"}]}
            return httpx.Response(200, json={"continue": {"plcontinue": "1|0|Z", "continue": "||"}, "query": {"pages": [page]}})
        page |= {"links": [{"ns": 0, "title": "Theory of relativity"}, {"ns": 0, "title": "Physics"}]}
        return httpx.Response(200, json={"batchcomplete": True, "query": {"redirects": [{"from": "Einstein", "to": "Albert Einstein"}], "pages": [page]}})

    client = httpx.Client(transport=httpx.MockTransport(handler), headers={"User-Agent": wiki.LiveWiki.USER_AGENT})
    live = wiki.LiveWiki(client=client)
    page = live.get_page("einstein")
    assert page.title == "Albert Einstein"
    assert page.links == ("Physics", "Theory of relativity")
    assert page.summary.startswith("Albert Einstein was a physicist.")
    assert len(calls) == 2 and calls[1]["plcontinue"] == "1|0|Z"
    live.get_page("Albert Einstein")  # cached under the resolved title too
    assert len(calls) == 2
    with pytest.raises(wiki.PageNotFound):
        live.get_page("Atlantis (fiction)")
    game = ref.WikiGame(live, "Einstein", "Physics")
    assert game.start == "Albert Einstein" and "Physics" in game.get_content()


# --- the agent under real server conditions ---------------------------------------------------


def test_play_survives_injected_failures():
    """Malformed tool JSON, 500s and 429s from the real server: the client retries, the agent reports and continues."""
    w = wiki.OfflineWiki()
    failures = Failures(rate=0.3, kinds=("malformed_tool_json", "500", "429"), seed=1, retry_after=0.01)
    with LoopbackServer(ref.WikiPolicy(w, noise=0.3, seed=0), failures=failures) as server:
        client = loopback_client(server, fresh_connections=True, max_retries=5)
        episodes = [ref.play(client, ref.WikiGame(w, s, t), ref.AgentConfig(max_steps=20))
                    for s, t in ref.sample_games(w, 2, seed=3)]
    assert server.stats.failures.get("malformed_tool_json", 0) > 0
    assert sum(e.tool_errors for e in episodes) > 0
    assert any(e.success for e in episodes)
    for e in episodes:
        for m in e.messages:
            if m["role"] == "tool" and m["content"].startswith("Error"):
                assert "JSON" in m["content"] or "unknown tool" in m["content"]


def test_unknown_tools_from_the_policy_are_reported_and_survived():
    w = wiki.OfflineWiki()
    with LoopbackServer(ref.WikiPolicy(w, tool_errors=0.3, seed=2)) as server:
        client = loopback_client(server, fresh_connections=True, max_retries=0)
        ep = ref.play(client, ref.WikiGame(w, "Pizza", "Albert Einstein"), ref.AgentConfig(variant="lookahead", max_steps=40))
    assert ep.tool_errors > 0
    assert any("unknown tool 'teleport'" in m.get("content", "") for m in ep.messages if m["role"] == "tool")


def test_elicitation_improves_the_offline_policy():
    """The offline policy is built so that each elicitation helps; this guards the notebook's story."""
    w = wiki.OfflineWiki()
    games = ref.sample_games(w, 6, seed=0)
    rates = {}
    for variant in ("baseline", "lookahead"):
        with LoopbackServer(ref.WikiPolicy(w, seed=0)) as server:
            client = loopback_client(server, fresh_connections=True, max_retries=0)
            eps = [ref.play(client, ref.WikiGame(w, s, t), ref.AgentConfig(variant=variant, max_steps=20)) for s, t in games]
        rates[variant] = ref.summarise(eps).success_rate
    assert rates["lookahead"] > rates["baseline"], rates


def test_arithmetic_agent_end_to_end():
    with LoopbackServer(ref.arithmetic_responder) as server:
        client = loopback_client(server, fresh_connections=True, max_retries=0)
        out = ref.run_agent(client, "loopback", [{"role": "user", "content": "What is 12 * (3 + 4)?"}],
                            [ref.Tool(ref.calculator_schema(), ref.calculate)])
    assert out[-1]["content"] == "The answer is 84."


def test_reflexion_outcome_counts_the_cost_of_every_attempt():
    a = ref.Episode("A", "B", False, ["A", "C", "A"], 7, "loop", tool_errors=1)
    b = ref.Episode("A", "B", True, ["A", "D", "B"], 4, None, tool_errors=2)
    out = ref.reflexion_outcome([a, b])
    assert out.success and out.path == b.path and out.moves == 2
    assert out.steps == 11 and out.tool_errors == 3


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="variant"):
        ref.AgentConfig(variant="reflexion")
    with pytest.raises(ValueError, match="max_visits"):
        ref.AgentConfig(max_visits=1)


def test_check_play_rejects_a_play_that_does_not_count_text_replies():
    not_counting = mutant(ref.play, ("        steps += 1\n        try:", "        try:"),
                          ("        text_turns = 0\n", "        text_turns = 0\n        steps += 1\n"))
    assert_check_fails(checks.check_play, not_counting, match="text-only reply counts as a step")
