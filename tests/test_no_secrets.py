"""No API key is ever committed: not in notebooks, logs or data files; and inspect's eval logs do not
record the key a model was given."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from curriculum.utils.secrets import get_api_key

ROOT = Path(__file__).resolve().parents[1]
# OpenAI (sk-..., sk-proj-...), Anthropic (sk-ant-...), Hugging Face (hf_...), W&B (40 hex after a key name)
KEY_PATTERNS = [
    re.compile(r"\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{32,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    re.compile(r"(?i)(?:api[_-]?key|token)\W{1,4}[\"']?[0-9a-f]{40}\b"),
]
SCANNED_SUFFIXES = {".ipynb", ".json", ".jsonl", ".eval", ".log", ".txt", ".md", ".py", ".yml", ".yaml", ".toml", ".cfg", ".env"}


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / line for line in out.splitlines() if Path(line).suffix in SCANNED_SUFFIXES or Path(line).name == ".env"]


def find_keys(text: str) -> list[str]:
    found = [m[0] for p in KEY_PATTERNS for m in p.finditer(text)]
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        if (key := get_api_key(name)) and len(key) >= 8 and key in text:
            found.append(f"<the configured {name}>")
    return found


def test_no_env_file_is_tracked():
    assert not [p for p in tracked_files() if p.name == ".env"], "a .env file is committed: remove it and rotate the key"


def test_committed_files_contain_no_keys():
    offenders = {}
    for path in tracked_files():
        if path.is_file() and path.stat().st_size < 20_000_000 and (keys := find_keys(path.read_text(errors="ignore"))):
            offenders[str(path.relative_to(ROOT))] = [k[:12] + "..." for k in keys]  # never print a whole key
    assert not offenders, f"possible API keys committed (rotate them, then remove): {offenders}"


def test_the_scanner_finds_keys():
    assert find_keys('{"text": "OPENAI_API_KEY=sk-proj-' + "a1B2" * 12 + '"}')
    assert find_keys("token: hf_" + "x" * 34)
    assert not find_keys("sk-learn is a library; sk-short")


def test_inspect_logs_do_not_record_the_model_key(tmp_path):
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import get_model
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    from curriculum.utils.openai_server import LoopbackServer

    fake_key = "sk-proj-" + "Zq9" * 15
    with LoopbackServer(lambda r: "4") as server:
        model = get_model("openai/gpt-4o-mini", base_url=server.base_url, api_key=fake_key, memoize=False)
        log = eval(Task(dataset=[Sample(input="2+2?", target="4")], solver=generate(), scorer=match()),
                   model=model, log_dir=str(tmp_path), display="none", log_format="json")[0]
    assert log.status == "success"
    files = list(tmp_path.rglob("*.json"))
    assert files and all(fake_key not in f.read_text() for f in files), "inspect wrote the API key into its log"
