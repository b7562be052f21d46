"""Shared utilities given bad input or a hostile environment: each says what is wrong and how to fix it
(plots, devices, the cache folder), API keys follow one documented rule and never reach an error message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import openai
import pytest
import torch

from curriculum.utils import get_device, plotting, secrets

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- plotting


@pytest.mark.parametrize("call, message", [
    (lambda: plotting.image_grid(np.zeros((0, 8, 8)), show=False), "got no images"),
    (lambda: plotting.image_grid(np.full((3, 1, 8, 8), np.nan), show=False), r"3 of 3 images contain NaN.*entirely NaN: \[0, 1, 2\]"),
    (lambda: plotting.image_grid(np.where(np.arange(3)[:, None, None] == 1, np.inf, np.ones((3, 4, 4))), show=False),
     r"1 of 3 images contain NaN or inf \(indices \[1\]\)"),
    (lambda: plotting.imshow(np.random.rand(3, 4, 5), facet_labels=["a", "b"], show=False), "2 facet_labels for 3 facets"),
    (lambda: plotting.imshow(np.random.rand(4, 5), facet_labels=["a"], show=False), "2-D array, which has no facets"),
    (lambda: plotting.imshow(np.full((4, 5), np.nan), show=False), "NaN everywhere"),
    (lambda: plotting.imshow(np.zeros((0, 5)), show=False), "empty array"),
    (lambda: plotting.line({}, show=False), "empty dict"),
])
def test_plotting_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_plotting_good_input_still_draws():
    assert len(plotting.image_grid(torch.rand(5, 1, 8, 8), nrow=3, show=False).data) == 5
    z = np.random.rand(2, 4, 5)
    z[0, 0, 0] = np.nan  # a partly masked heatmap is fine
    fig = plotting.imshow(z, facet_labels=["first", "second"], show=False)
    assert [a.text for a in fig.layout.annotations] == ["first", "second"]


# --------------------------------------------------------------------------------------------- devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_fails_at_once_listing_devices():
    with pytest.raises(RuntimeError, match=r"asked for 'cuda', but this machine has only: cpu"):
        get_device("cuda")


def test_device_variable_and_bad_names(monkeypatch):
    monkeypatch.setenv("CURRICULUM_DEVICE", "cuda:7")
    with pytest.raises(RuntimeError, match="CURRICULUM_DEVICE asked for 'cuda:7'.*unset CURRICULUM_DEVICE"):
        get_device()
    monkeypatch.setenv("CURRICULUM_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="'tpu' is not a device name; this machine has .*cpu"):
        get_device("tpu")


# --------------------------------------------------------------------------------------------- cache folder


def test_unwritable_cache_names_the_variable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # nothing can be created under a file, even by root
    code = "from curriculum.utils import offline; offline.load_tokenizer()"
    env = {**os.environ, "CURRICULUM_CACHE": str(blocker / "cache"), "CURRICULUM_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "CacheNotWritable" in last and "CURRICULUM_CACHE" in last and str(blocker / "cache") in last
    assert "PermissionError" not in out.stderr and len(out.stderr.splitlines()) < 15, "a short traceback"


# --------------------------------------------------------------------------------------------- .env and redaction

KEY = "test-key-root-0123456789"  # not shaped like a real key
OTHER = "test-key-cwd-9876543210"


@pytest.fixture
def env_dirs(tmp_path, monkeypatch):
    root, cwd = tmp_path / "project", tmp_path / "elsewhere"
    root.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(secrets, "ROOT", root)
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return root, cwd


def test_project_env_wins_over_current_directory_with_warning(env_dirs):
    root, cwd = env_dirs
    (root / ".env").write_text(f"OPENAI_API_KEY={KEY}\n")
    (cwd / ".env").write_text(f"OPENAI_API_KEY={OTHER}\n")
    with pytest.warns(UserWarning, match="different values in .*project.*elsewhere") as caught:
        assert secrets.get_api_key() == KEY
    assert all(KEY not in str(w.message) and OTHER not in str(w.message) for w in caught), "never print a key"


def test_current_directory_env_is_the_fallback_and_environment_wins(env_dirs, monkeypatch):
    root, cwd = env_dirs
    (cwd / ".env").write_text(f"OPENAI_API_KEY={OTHER}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert secrets.get_api_key() == OTHER  # no project .env: the current directory's is used, silently
        (root / ".env").write_text(f"OPENAI_API_KEY={OTHER}\n")
        assert secrets.get_api_key() == OTHER  # both agree: no warning
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert secrets.get_api_key() == KEY


class _EchoingAuthServer(BaseHTTPRequestHandler):
    """A server that, like some proxies, repeats the credentials it was sent in its 401 error."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sent = self.headers.get("Authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {sent}", "type": "invalid_request_error",
                                     "code": "invalid_api_key", "param": sent}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_api_errors_echoing_the_key_are_redacted(env_dirs, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingAuthServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        with secrets.llm_endpoint(offline=False, max_retries=0) as llm:
            with pytest.raises(openai.AuthenticationError) as err:
                llm.client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": "hi"}])
    finally:
        server.shutdown()
    shown = f"{err.value}\n{err.value.body}\n{err.value.message}"
    assert "Incorrect API key provided" in shown, "the server's message still comes through"
    assert KEY not in shown and "redacted>" in shown


class _EchoingAnthropicAuth(_EchoingAuthServer):
    """The same, for Anthropic's protocol (the key arrives in x-api-key or, in newer clients, Authorization)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sent = self.headers.get("x-api-key", "") + self.headers.get("Authorization", "")
        body = json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                     "message": f"invalid x-api-key: {sent}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_anthropic_errors_echoing_the_key_are_redacted(env_dirs, monkeypatch):
    anthropic = pytest.importorskip("anthropic")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingAnthropicAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
        with secrets.llm_endpoint("claude-test", offline=False, max_retries=0) as llm:
            with pytest.raises(anthropic.AuthenticationError) as err:
                llm.chat([{"role": "user", "content": "hi"}])
    finally:
        server.shutdown()
    shown = f"{err.value}\n{err.value.body}\n{err.value.message}"
    assert "invalid x-api-key" in shown, "the server's message still comes through"
    assert KEY not in shown and "redacted>" in shown


# --------------------------------------------------------------------------------------------- one chooser per resource


@pytest.fixture
def fresh_choice(monkeypatch):
    from curriculum.utils import offline

    for name in ("CURRICULUM_OFFLINE", "CURRICULUM_ONLINE", "HF_HUB_OFFLINE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    offline.resource_choice.cache_clear()
    yield offline
    offline.resource_choice.cache_clear()


def test_llm_choice_follows_the_api_host_not_hugging_face(fresh_choice, monkeypatch):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is offline...
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/v1")  # ...the API is not
        assert fresh_choice.resource_choice("hub") == (False, "HF_HUB_OFFLINE=1 keeps Hugging Face offline")
        real, why = fresh_choice.resource_choice("llm")
        assert real and why == "127.0.0.1 is reachable"
    finally:
        listener.close()
    with pytest.raises(ValueError, match="resource must be one of"):
        fresh_choice.resource_choice("gpu")


def test_online_override_beats_hub_offline_and_offline_beats_both(fresh_choice, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CURRICULUM_ONLINE", "1")  # a rehearsal: online branches, hub read from its cache
    assert fresh_choice.use_real_resources() and fresh_choice.resource_choice("web")[0]
    fresh_choice.resource_choice.cache_clear()
    monkeypatch.setenv("CURRICULUM_OFFLINE", "1")
    assert [fresh_choice.resource_choice(r)[0] for r in fresh_choice.RESOURCES] == [False] * len(fresh_choice.RESOURCES)


def test_the_endpoint_says_why_it_chose(fresh_choice, monkeypatch, capsys):
    monkeypatch.setenv("CURRICULUM_OFFLINE", "1")
    with secrets.llm_endpoint(responder=lambda r: "hi") as llm:
        llm.describe()
    assert "(CURRICULUM_OFFLINE=1 chooses every offline stand-in)" in capsys.readouterr().out
