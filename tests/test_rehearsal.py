"""The rehearsal's switch, its stand-ins and its network guard (curriculum/tools/rehearsal.py).

The rehearsal itself (every loader's online branch, in the notebooks) runs with
`python -m curriculum.tools.rehearsal run`; these tests check its parts quickly."""

import json
import os
import subprocess
import sys
import textwrap

import httpx
import jsonschema
import pytest
from pydantic import BaseModel

from curriculum.solutions.chapter3.wiki import LiveWiki, OfflineWiki
from curriculum.tools import rehearsal
from curriculum.utils import offline

REHEARSAL_VARS = ("CURRICULUM_REHEARSAL", "CURRICULUM_OFFLINE", "CURRICULUM_ONLINE", "HF_HUB_OFFLINE")


@pytest.fixture
def fresh_choice(monkeypatch):
    for name in REHEARSAL_VARS:
        monkeypatch.delenv(name, raising=False)
    offline.resource_choice.cache_clear()
    yield monkeypatch
    offline.resource_choice.cache_clear()


def test_rehearsal_forces_every_real_resource_while_the_hub_is_offline(fresh_choice):
    fresh_choice.setenv("CURRICULUM_REHEARSAL", "1")
    fresh_choice.setenv("CURRICULUM_OFFLINE", "1")  # the test suite's default: the rehearsal wins over it
    fresh_choice.setenv("HF_HUB_OFFLINE", "1")  # the hub is read from the local cache
    for resource in offline.RESOURCES:
        real, why = offline.resource_choice(resource)
        assert real and "CURRICULUM_REHEARSAL=1" in why
    assert offline.use_real_resources()


def test_a_stand_in_is_an_error_under_the_rehearsal(fresh_choice):
    assert not offline.Loaded("x", False, "a stand-in").real  # fine outside the rehearsal
    fresh_choice.setenv("CURRICULUM_REHEARSAL", "1")
    offline.Loaded("x", True, "the real thing")
    with pytest.raises(offline.RehearsalFallback, match="chose a stand-in: a stand-in"):
        offline.Loaded("x", False, "a stand-in")


def test_llm_endpoint_without_a_key_is_an_error_under_the_rehearsal(fresh_choice, tmp_path):
    from curriculum.utils import secrets

    fresh_choice.setenv("CURRICULUM_REHEARSAL", "1")
    fresh_choice.delenv("OPENAI_API_KEY", raising=False)
    fresh_choice.setattr(secrets, "_env_files", lambda: [])
    with pytest.raises(offline.RehearsalFallback, match="no OPENAI_API_KEY"):
        secrets.llm_endpoint()
    with secrets.llm_endpoint(offline=True) as llm:  # an explicit choice of the loopback server stays allowed
        assert not llm.real


def test_url_and_dataset_mirrors(monkeypatch, tmp_path):
    url = "https://example.org/data/file.txt"
    monkeypatch.delenv("CURRICULUM_URL_MIRROR", raising=False)
    assert offline.resource_url(url) == url
    monkeypatch.setenv("CURRICULUM_URL_MIRROR", (tmp_path / "urls").as_uri() + "/")
    assert offline.resource_url(url) == f"{(tmp_path / 'urls').as_uri()}/example.org/data/file.txt"

    path = tmp_path / "ds" / "org" / "name" / "default" / "train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(3)))
    monkeypatch.setenv("CURRICULUM_DATASETS_MIRROR", str(tmp_path / "ds"))
    assert [row["text"] for row in offline.stream_hub_dataset("org/name")] == ["doc 0", "doc 1", "doc 2"]
    with pytest.raises(FileNotFoundError, match="CURRICULUM_DATASETS_MIRROR has no"):
        offline.stream_hub_dataset("org/other")


def test_hub_cache_layout_is_what_huggingface_hub_reads(tmp_path):
    from huggingface_hub import try_to_load_from_cache

    snap = rehearsal._snapshot(tmp_path, "org/model")
    (snap / "config.json").write_text("{}")
    found = try_to_load_from_cache("org/model", "config.json", cache_dir=tmp_path)
    assert found is not None and os.path.samefile(found, snap / "config.json")


def test_every_repo_the_online_branches_name_is_built():
    from curriculum.solutions.chapter4 import clip
    from curriculum.utils import interp_models
    import inspect

    names = {"gpt2", interp_models.ONLINE_MODEL, interp_models.ONLINE_TOKENIZER,
             inspect.signature(clip.pretrained_zero_shot).parameters["name"].default}
    assert names <= set(rehearsal.HUB_MODELS)


def test_mediawiki_stand_in_answers_livewiki_like_the_shipped_graph():
    graph = OfflineWiki()
    title = graph.titles[0]
    with rehearsal.mediawiki_server() as url:
        live = LiveWiki(client=httpx.Client(timeout=10), api=url)
        page = live.get_page(title.lower().replace(" ", "_"))
        assert page.title == title
        assert page.links == graph.get_page(title).links
        assert page.text == graph.get_page(title).text
        with pytest.raises(KeyError):  # PageNotFound
            live.get_page("No such page anywhere")


def test_mediawiki_stand_in_continues_link_lists_and_parses():
    graph = rehearsal.MediaWikiGraph()
    title = next(t for t, p in graph.pages.items() if len(p["links"]) >= 3)
    params = {"action": "query", "titles": title, "prop": "links", "pllimit": "2", "format": "json", "formatversion": "2"}
    links = []
    while True:
        data = graph.answer(params)
        links += [link["title"] for link in data["query"]["pages"][0].get("links", [])]
        if "continue" not in data:
            break
        params = {**params, **data["continue"]}
    assert links == graph.pages[title]["links"]
    v1 = graph.answer({"action": "query", "titles": title, "prop": "extracts", "explaintext": "1"})
    assert next(iter(v1["query"]["pages"].values()))["extract"] == graph.pages[title]["content"]
    parsed = graph.answer({"action": "parse", "page": title, "prop": "links", "formatversion": "2"})
    assert [link["title"] for link in parsed["parse"]["links"]] == graph.pages[title]["links"]
    assert "error" in graph.answer({"action": "query", "titles": title, "prop": "revisions"})


def test_stand_in_model_follows_schemas_and_offers_tool_calls():
    class Answer(BaseModel):
        reasoning: str
        choice: list[int]
        confident: bool | None = None

    schema = Answer.model_json_schema()
    jsonschema.validate(rehearsal.instance_of(schema), schema)
    request = {"messages": [{"role": "user", "content": "go"}],
               "tools": [{"type": "function", "function": {"name": "move", "parameters": {
                   "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}}}]}
    call = rehearsal.stand_in_model(request)
    assert call.name == "move" and set(call.arguments) == {"title"}


def test_kernels_under_the_rehearsal_cannot_leave_the_machine(tmp_path):
    """The sitecustomize the rehearsal puts on PYTHONPATH refuses non-loopback connections and name
    lookups in every Python process it starts (notebook kernels included), and lets loopback through."""
    code = textwrap.dedent("""
        import socket, threading
        from http.server import HTTPServer, BaseHTTPRequestHandler
        for target in [("192.0.2.1", 80), ("2001:db8::1", 80)]:
            family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
            try:
                socket.socket(family).connect(target)
            except ConnectionRefusedError as e:
                assert "blocks connections" in str(e), e
            else:
                raise AssertionError(f"connected to {target}")
        try:
            socket.create_connection(("huggingface.co", 443), timeout=1)
        except ConnectionRefusedError as e:
            assert "blocks the name lookup" in str(e), e
        server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        threading.Thread(target=server.handle_request, daemon=True).start()
        socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5).close()
        print("guarded")
    """)
    env = {**os.environ, "CURRICULUM_REHEARSAL": "1", "PYTHONPATH": str(rehearsal.SITE_DIR)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "guarded" in out.stdout, out.stderr
    env["CURRICULUM_REHEARSAL"] = "0"  # without the rehearsal the file does nothing
    check = "import socket; print(socket.socket.connect.__module__)"
    assert subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True).stdout.strip() != "sitecustomize"


def test_rehearsal_env_uses_a_placeholder_key_and_local_endpoints(tmp_path):
    env = rehearsal.rehearsal_env(tmp_path, tmp_path / "cache", "http://127.0.0.1:1/v1", "http://127.0.0.1:2/w/api.php")
    assert env["OPENAI_API_KEY"] == rehearsal.PLACEHOLDER_KEY and not env["OPENAI_API_KEY"].startswith("sk-")
    assert env["CURRICULUM_REHEARSAL"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(rehearsal.SITE_DIR)
    for name in ("OPENAI_BASE_URL", "CURRICULUM_MEDIAWIKI_API"):
        assert env[name].startswith("http://127.0.0.1:")
    assert set(rehearsal.CI_NOTEBOOKS) <= set(rehearsal.solution_notebooks())
