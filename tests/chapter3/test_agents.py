"""Section 3.3 beyond the automatic contract: mutants each check must catch, the offline graph and its
non-content links, the live Wikipedia client's request and parsing, the page cap, context management, and the agent surviving injected server failures."""

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
    "main_content: no cut at See also": (
        checks.check_main_content, wiki.main_content, [("    if end:\n        text = text[: end.start()]\n", "")]),
    "main_content: templates kept": (
        checks.check_main_content, wiki.main_content, [('text = remove_spans(text, "{{", "}}")', "pass")]),
    "main_content: File links removed by a regex, captions' links leak": (
        checks.check_main_content, wiki.main_content, [('text = remove_spans(text, "[[", "]]", where=is_other_namespace)',
                                                        r'text = re.sub(r"\[\[(?:File|Category|Help|Special):[^\]]*\]\]", "", text)')]),
    "main_content: namespaced links kept": (
        checks.check_main_content, wiki.main_content, [('text = remove_spans(text, "[[", "]]", where=is_other_namespace)', "pass")]),
    "main_content: shown text instead of the target": (
        checks.check_main_content, wiki.main_content, [('return f"<link>{title}</link>" if title', 'return f"<link>{shown or title}</link>" if title')]),
    "main_content: anchors kept": (
        checks.check_main_content, wiki.main_content, [('normalise_title(target.split("#")[0])', "normalise_title(target)")]),
    "main_content: refs kept": (
        checks.check_main_content, wiki.main_content, [('text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.DOTALL)', "pass")]),
    "truncate_page: plain slice": (
        checks.check_truncate_page, ref.truncate_page, [("    if len(text) <= max_chars:\n        return text\n",
                                                         "    if len(text) <= max_chars:\n        return text\n    kept = text[:max_chars]\n    return f\"{kept}\\n\\n\" + TRUNCATION_NOTE.format(shown=len(kept), total=len(text), hidden=0)\n")]),
    "truncate_page: no note": (
        checks.check_truncate_page, ref.truncate_page, [('return f"{kept}\\n\\n" + TRUNCATION_NOTE.format(shown=len(kept), total=len(text), hidden=hidden)', "return kept")]),
    "truncate_page: note on every page": (
        checks.check_truncate_page, ref.truncate_page, [("    if len(text) <= max_chars:\n        return text\n", "")]),
    "truncate_page: cut inside a link": (
        checks.check_truncate_page, ref.truncate_page, [('if kept.rfind("<link>") > kept.rfind("</link>"):', "if False:")]),
    "truncate_page: drops a first paragraph that does not fit": (
        checks.check_truncate_page, ref.truncate_page, [("    if not kept:\n", "    if False:\n")]),
    "truncate_page: counts every link as hidden": (
        checks.check_truncate_page, ref.truncate_page, [("hidden = len(set(page_links(text)) - set(page_links(kept)))", "hidden = len(set(page_links(text)))")]),
    "manage_context: last messages only (task dropped)": (
        checks.check_manage_context, ref.manage_context, [("    if len(messages) <= 2 + keep:", "    return list(messages[-keep:])\n    if len(messages) <= 2 + keep:")]),
    "manage_context: task dropped": (
        checks.check_manage_context, ref.manage_context, [("return [*messages[:2], {", "return [*messages[:1], {")]),
    "manage_context: assistant dropped, its tool results kept": (
        checks.check_manage_context, ref.manage_context, [('while start > 2 and messages[start].get("role") == "tool":', "while False:")]),
    "manage_context: assistant turns filtered out": (
        checks.check_manage_context, ref.manage_context, [("*messages[start:]]", '*[m for m in messages[start:] if not m.get("tool_calls")]]')]),
    "manage_context: no note": (
        checks.check_manage_context, ref.manage_context, [('{"role": "user", "content": ELIDED_NOTE.format(n=start - 2)}, ', "")]),
    "manage_context: never trims": (
        checks.check_manage_context, ref.manage_context, [("    if len(messages) <= 2 + keep:", "    return list(messages)\n    if len(messages) <= 2 + keep:")]),
    "reflect: prompt without the history": (
        checks.check_reflect, ref.reflect, [("messages=[*episode.messages, {", "messages=[{")]),
    "reflect: lesson not stripped": (
        checks.check_reflect, ref.reflect, [('return (response.choices[0].message.content or "").strip()', 'return response.choices[0].message.content or ""')]),
    "reflect: path as a Python list": (
        checks.check_reflect, ref.reflect, [('path=" -> ".join(episode.path)', "path=episode.path")]),
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
        checks.check_play, ref.play, [('decide = react_act if config.variant == "react" else plain_act', "decide = plain_act")]),
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


# Mutants whose failure message must name the bug, not only reject it.
NAMED_MUTANTS = {
    "run_agent: ignores max_steps (ends, does not hang)": (
        checks.check_run_agent, ref.run_agent, [("for _ in range(max_steps):", "while True:")], r"stop after max_steps"),
    "manage_context: moves the cut forward past tool results": (
        checks.check_manage_context, ref.manage_context,
        [('while start > 2 and messages[start].get("role") == "tool":\n        start -= 1',
          'while start < len(messages) and messages[start].get("role") == "tool":\n        start += 1')], r"not forward"),
    "reflexion: reuses the finished game": (
        checks.check_reflexion, ref.reflexion,
        [("lessons: list[str] = []", "lessons: list[str] = []\n    game = WikiGame(source, start, target)"),
         ("play(client, WikiGame(source, start, target), config, lessons)", "play(client, game, config, lessons)")],
        r"fresh WikiGame"),
    "reflexion: lessons not passed on": (
        checks.check_reflexion, ref.reflexion, [("config, lessons))", "config))")], r"pass the lessons gathered"),
}


@pytest.mark.parametrize("name", list(NAMED_MUTANTS))
def test_check_names_the_bug(name):
    check_fn, obj, replacements, match = NAMED_MUTANTS[name]
    assert_check_fails(check_fn, mutant(obj, *replacements), match=match)


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
        assert page.text and page.summary and 2 <= len(page.links)
        assert all(link in w.pages for link in page.links)
        assert "<link>" not in page.summary and "[[" not in page.text
    # strongly connected: every game has a solution
    assert all(len(w.shortest_path(w.titles[0], t)) >= 1 and w.shortest_path(t, w.titles[0]) for t in w.titles)
    assert w.shortest_path("Pizza", "Milk") == ["Pizza", "Cheese", "Milk"]
    with pytest.raises(wiki.PageNotFound):
        w.get_page("Atlantis")


# --- the live client, on recorded-shaped MediaWiki API responses ------------------------------


def test_live_wiki_sends_a_standard_parse_request_and_keeps_main_content():
    calls = []
    einstein = ("{{Infobox scientist|name=Albert Einstein|field=[[Physics]]}}\n"
                "'''Albert Einstein''' was a [[physicist]] who developed [[Theory of relativity|relativity]].<ref>x</ref>\n\n"
                "== See also ==\n* [[Max Planck]]\n[[Category:Physicists]]")

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        calls.append(params)
        assert request.url.path == "/w/api.php"
        assert request.headers["User-Agent"].startswith("open-alignment-curriculum")
        assert {k: v for k, v in params.items() if k != "page"} == {
            "action": "parse", "format": "json", "formatversion": "2", "redirects": "1", "prop": "wikitext"}
        if params["page"] == "Atlantis (fiction)":
            return httpx.Response(200, json={"error": {"code": "missingtitle", "info": "The page you specified doesn't exist."}})
        if params["page"] == "Physicist":
            return httpx.Response(200, json={"parse": {"title": "Physicist", "wikitext": "A physicist studies [[physics]]."}})
        assert params["page"] == "Einstein"
        return httpx.Response(200, json={"parse": {"title": "Albert Einstein", "pageid": 736,
                                                   "redirects": [{"from": "Einstein", "to": "Albert Einstein"}],
                                                   "wikitext": einstein}})

    client = httpx.Client(transport=httpx.MockTransport(handler), headers={"User-Agent": wiki.LiveWiki.USER_AGENT})
    live = wiki.LiveWiki(client=client)
    page = live.get_page("einstein")
    assert page.title == "Albert Einstein"
    assert page.links == ("Physicist", "Theory of relativity")  # not the infobox, See also or category links
    assert page.text == ("Albert Einstein was a <link>Physicist</link> who developed <link>Theory of relativity</link>.")
    assert page.summary.startswith("Albert Einstein was a Physicist")
    live.get_page("Albert Einstein")  # cached under the resolved title too
    assert len(calls) == 1
    with pytest.raises(wiki.PageNotFound):
        live.get_page("Atlantis (fiction)")
    game = ref.WikiGame(live, "Einstein", "Physicist")
    assert game.start == "Albert Einstein" and "<link>Physicist</link>" in game.get_content()


def test_live_wiki_api_url_can_point_elsewhere():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url).split("?")[0])
        return httpx.Response(200, json={"parse": {"title": "Milk", "wikitext": "Milk comes from a [[cow]]."}})

    live = wiki.LiveWiki(client=httpx.Client(transport=httpx.MockTransport(handler)), api="http://127.0.0.1:9/w/api.php")
    assert live.get_page("Milk").links == ("Cow",)
    assert seen == ["http://127.0.0.1:9/w/api.php"]


def test_shipped_pages_carry_furniture_that_the_game_must_not_offer():
    w = wiki.OfflineWiki()
    raw = {t: {m[1] for m in wiki.WIKILINK.finditer(text)} for t, text in w.wikitext.items()}
    shortcuts = sum(len({l for l in raw[t] if ":" not in l} - set(w.get_page(t).links)) for t in w.titles)
    assert shortcuts >= 3 * len(w.titles)  # See also, navbox, infobox and caption links on every page
    assert all("Category:" in text and "== See also ==" in text for text in w.wikitext.values())


def test_game_caps_long_pages_with_a_note():
    page = wiki.WikiPage("Long", "\n\n".join(f"Paragraph {i} links <link>Page {i}</link>." for i in range(200)))
    source = type("One", (wiki.WikiSource,), {"get_page": lambda self, title: page, "description": ""})()
    game = ref.WikiGame(source, "Long", "Long", max_chars=500)
    content = game.get_content()
    assert len(content) < 700 and "[Page truncated: " in content
    assert ref.WikiGame(source, "Long", "Long", max_chars=10**6).get_content().count("<link>") == 200


def test_play_with_managed_context_keeps_the_record_and_sends_less():
    w = wiki.OfflineWiki()
    games = ref.sample_games(w, 2, seed=5)
    sizes = {}
    for keep in (None, 4):
        with LoopbackServer(ref.WikiPolicy(w, seed=0)) as server:
            client = loopback_client(server, max_retries=0)
            eps = [ref.play(client, ref.WikiGame(w, s, t), ref.AgentConfig(variant="react", max_steps=15, keep_messages=keep))
                   for s, t in games]
        sizes[keep] = max(sum(len(str(m.get("content") or "")) for m in r["messages"]) for r in server.requests)
        assert all(len(e.messages) >= 2 * e.steps for e in eps)  # the record holds every turn
    assert sizes[4] < sizes[None]


# --- the agent under real server conditions ---------------------------------------------------


def test_play_survives_injected_failures():
    """Malformed tool JSON, 500s and 429s from the real server: the client retries, the agent reports and continues."""
    w = wiki.OfflineWiki()
    failures = Failures(rate=0.3, kinds=("malformed_tool_json", "500", "429"), seed=1, retry_after=0.01)
    with LoopbackServer(ref.WikiPolicy(w, noise=0.3, seed=0), failures=failures) as server:
        client = loopback_client(server, max_retries=5)
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
        client = loopback_client(server, max_retries=0)
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
            client = loopback_client(server, max_retries=0)
            eps = [ref.play(client, ref.WikiGame(w, s, t), ref.AgentConfig(variant=variant, max_steps=20)) for s, t in games]
        rates[variant] = ref.summarise(eps).success_rate
    assert rates["lookahead"] > rates["baseline"], rates


def test_arithmetic_agent_end_to_end():
    with LoopbackServer(ref.arithmetic_responder) as server:
        client = loopback_client(server, max_retries=0)
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


def test_check_play_rejects_a_play_that_never_resets_text_turns():
    counts_in_total = mutant(ref.play, ("        text_turns = 0\n        results", "        results"))
    assert_check_fails(checks.check_play, counts_in_total, match="reset text_turns after a reply with tool calls")
