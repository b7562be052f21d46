"""The rehearsal: run every notebook's *online* branch on this machine, with everything it reaches local.

Learners with internet take a different branch of every loader (pretrained GPT-2, real corpora, MNIST,
the OpenAI API, live Wikipedia, pretrained CLIP...). CI has no internet, so those branches would never
run. The rehearsal forces them (CURRICULUM_REHEARSAL=1, see `curriculum.utils.offline`) while every
resource they reach is a local copy in the real format and layout:

- a Hugging Face cache (HF_HOME, read with HF_HUB_OFFLINE=1) holding small, randomly initialised models
  and tokenizers under the real repo names, with the real architecture classes and config keys;
- the streamed hub datasets as JSON lines (CURRICULUM_DATASETS_MIRROR), the files fetched by URL
  under a file:// mirror (CURRICULUM_URL_MIRROR), MNIST in torchvision's folder layout
  (CURRICULUM_TORCHVISION_ROOT);
- the OpenAI-protocol loopback server standing in for the real API (OPENAI_BASE_URL, and a placeholder
  OPENAI_API_KEY, set as a learner sets them), answering with a schema-following stand-in model;
- a MediaWiki API stand-in on 127.0.0.1 (CURRICULUM_MEDIAWIKI_API) serving the shipped page graph.

Under the rehearsal a loader that picks a stand-in raises `RehearsalFallback`, and every Python process
(the pytest run and each notebook kernel) refuses connections to non-loopback addresses
(`curriculum/tools/rehearsal_site/sitecustomize.py`, put first on PYTHONPATH).

    python -m curriculum.tools.rehearsal build DIR      # write the local resources (~30 s, ~60 MB)
    python -m curriculum.tools.rehearsal run            # every solution notebook, quick mode (builds first if needed)
    python -m curriculum.tools.rehearsal run --ci       # a short list, one notebook per kind of resource
    python -m curriculum.tools.rehearsal run chapters/chapter1/1.1_gpt2_from_scratch_solutions.ipynb
    python -m curriculum.tools.rehearsal probe          # call every loader's online branch once (~1 min)
    python -m curriculum.tools.rehearsal env DIR        # print the environment, to export it in a shell

DIR defaults to CURRICULUM_REHEARSAL_DIR, else <curriculum cache>/rehearsal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[2]
SITE_DIR = Path(__file__).resolve().parent / "rehearsal_site"
FORMAT_VERSION = "5"  # bump when build() changes what it writes: an older build is rebuilt
FAKE_REVISION = "0" * 39 + "1"  # the commit hash the cache's snapshots are filed under
PLACEHOLDER_KEY = "rehearsal-placeholder"  # what OPENAI_API_KEY is set to: plainly not a key

# What the online branches ask the hub for (repo -> what writes it). Keep in step with the loaders:
# tests/test_rehearsal.py checks that every `from_pretrained`/`boot_*` name in the sources is here.
HUB_MODELS = (
    "gpt2",
    "NeelNanda/Attn_Only_2L512W_C4_Code",
    "NeelNanda/gpt-neox-tokenizer-digits",
    "openai/clip-vit-base-patch32",
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
)
HUB_DATASETS = {"roneneldan/TinyStories": "", "HuggingFaceFW/fineweb-edu": "sample-10BT"}
URL_FILES = {
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt": "corpus",
    "https://github.com/rowanz/hellaswag/raw/master/data/hellaswag_val.jsonl": "hellaswag",
}

# A short list for a quick look (`run --ci`), one notebook per kind of online resource. CI itself runs
# every solution notebook (`run`), about 4 minutes on 2 cores.
CI_NOTEBOOKS = (
    "chapters/chapter1/1.2_training_pipeline_solutions.ipynb",  # GPT-2's tokenizer, TinyStories streamed, HellaSwag
    "chapters/chapter3/3.3_agents_solutions.ipynb",  # the OpenAI API, live Wikipedia
    "chapters/chapter4/4.3_clip_guidance_solutions.ipynb",  # MNIST, pretrained CLIP
)
# CI also runs `probe`, which loads pretrained GPT-2 and the attention-only model.


# ---------------------------------------------------------------------------------------------
# Building the local resources
# ---------------------------------------------------------------------------------------------
def default_dir() -> Path:
    from curriculum.utils.offline import CACHE_DIR

    return Path(os.environ.get("CURRICULUM_REHEARSAL_DIR") or CACHE_DIR / "rehearsal")


def _documents() -> list[str]:
    from curriculum.utils.offline import offline_corpus

    return [d.strip() for d in offline_corpus().split("\n\n") if len(d.split()) >= 8]


def _train_bpe(vocab_size: int, special: list[str]):
    """A byte-level BPE (GPT-2's algorithm) trained on the offline corpus: a `tokenizers.Tokenizer`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = "\n\n".join(_documents())
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator((text[i : i + 10_000] for i in range(0, len(text), 10_000)), trainer)
    return bpe


def _snapshot(hub: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in a Hugging Face cache, laid out as huggingface_hub lays it
    out (models--org--name/{refs/main, snapshots/<revision>/}), with refs/main pointing at it."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(FAKE_REVISION)
    snap = repo / "snapshots" / FAKE_REVISION
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def _build_gpt2(hub: Path, bpe) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    eos = "<|endoftext|>"
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token=eos, eos_token=eos, unk_token=eos, model_max_length=1024)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=64, n_layer=2, n_head=4,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, architectures=["GPT2LMHeadModel"])
    snap = _snapshot(hub, "gpt2")
    GPT2LMHeadModel(cfg).save_pretrained(snap)
    tok.save_pretrained(snap)


def _build_attn_only(hub: Path, bpe) -> None:
    """TL's legacy format: a TL-style config.json (no model_type) and a `model_final.pth` state dict
    with HookedTransformer's parameter names and per-head shapes; plus the tokenizer it names."""
    import torch
    from transformers import PreTrainedTokenizerFast

    tok_repo = "NeelNanda/gpt-neox-tokenizer-digits"
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", pad_token="<|padding|>")
    tok_dir = _snapshot(hub, tok_repo)
    tok.save_pretrained(tok_dir)
    # the real repo's layout: tokenizer.json, a one-line tokenizer_config.json, special_tokens_map.json, no config.json
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    specials = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (tok_dir / "special_tokens_map.json").write_text(json.dumps(specials))
    d_model, n_heads, d_head, n_ctx, n_layers, d_vocab = 64, 8, 8, 2048, 2, len(tok)
    cfg = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "d_head": d_head, "d_mlp": -1,
           "n_ctx": n_ctx, "d_vocab": d_vocab, "act_fn": "solu_ln", "attn_only": True, "normalization_type": "LN",
           "positional_embedding_type": "standard", "tokenizer_name": tok_repo, "model_name": "Attn_Only_2L512W_C4_Code"}
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g) * 0.02
    sd = {"embed.W_E": rand(d_vocab, d_model), "pos_embed.W_pos": rand(n_ctx, d_model)}
    for layer in range(n_layers):
        b = f"blocks.{layer}"
        sd |= {f"{b}.ln1.w": torch.ones(d_model), f"{b}.ln1.b": torch.zeros(d_model)}
        for m in "QKV":
            sd[f"{b}.attn.W_{m}"] = rand(n_heads, d_model, d_head)
            sd[f"{b}.attn.b_{m}"] = torch.zeros(n_heads, d_head)
        sd |= {f"{b}.attn.W_O": rand(n_heads, d_head, d_model), f"{b}.attn.b_O": torch.zeros(d_model)}
    sd |= {"ln_final.w": torch.ones(d_model), "ln_final.b": torch.zeros(d_model),
           "unembed.W_U": rand(d_model, d_vocab), "unembed.b_U": torch.zeros(d_vocab)}
    snap = _snapshot(hub, "NeelNanda/Attn_Only_2L512W_C4_Code")
    (snap / "config.json").write_text(json.dumps(cfg, indent=1))
    torch.save(sd, snap / "model_final.pth")


def _build_clip(hub: Path) -> None:
    """CLIP's classes and processor (CLIPTokenizer's BPE with </w> word ends; CLIPImageProcessor at
    224 px), tiny towers. Vocabulary: the 256 byte symbols, alone and word-final, and the specials."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    symbols = sorted(ByteLevel.alphabet())
    vocab = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={s: i for i, s in enumerate(vocab)}, merges=[], model_max_length=77)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tok)
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": len(vocab) - 2,
                         "eos_token_id": len(vocab) - 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "image_size": 224, "patch_size": 32},
        projection_dim=32,
    )
    snap = _snapshot(hub, "openai/clip-vit-base-patch32")
    CLIPModel(cfg).save_pretrained(snap)
    processor.save_pretrained(snap)


def _build_distilbert(hub: Path) -> None:
    """The SST-2 sentiment classifier's classes: DistilBERT with a 2-way head (NEGATIVE, POSITIVE) and
    its uncased WordPiece tokenizer, over the corpus's commonest words."""
    import collections
    import re

    import torch
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizer,
    )

    counts = collections.Counter(w for d in _documents() for w in re.findall(r"[a-z]+", d.lower()))
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in counts for c in w})
    vocab = special + [w for w, _ in counts.most_common(3000)] + [f"##{c}" for c in chars]
    vocab += [c for c in chars if c not in vocab] + list(".,!?'\"-:;()0123456789")
    vocab = list(dict.fromkeys(vocab))
    tok = DistilBertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True, model_max_length=512)
    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                           id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
                           architectures=["DistilBertForSequenceClassification"], finetuning_task="sst-2")
    snap = _snapshot(hub, "distilbert/distilbert-base-uncased-finetuned-sst-2-english")
    DistilBertForSequenceClassification(cfg).save_pretrained(snap)
    tok.save_pretrained(snap)


def _build_mnist(root: Path, n_train: int = 6000, n_test: int = 1000) -> None:
    """MNIST's raw IDX files in torchvision's layout (<root>/MNIST/raw/), images made from sklearn's
    8x8 digits upscaled to 28x28 and shifted by a pixel or two, so a model can still learn them."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)[:, 0]
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        idx = rng.integers(0, len(x), n)
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i, j in enumerate(idx):
            dy, dx = rng.integers(2, 7, 2)
            images[i, dy : dy + 20, dx : dx + 20] = (x[j].numpy() * 255).round().astype(np.uint8)
        labels = bunch.target[idx].astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(np.array([2051, n, 28, 28], dtype=">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, n], dtype=">i4").tobytes() + labels.tobytes())


def _build_files(out: Path) -> None:
    """Hub datasets as JSON lines; the by-URL files under urls/<host>/<path>."""
    docs = _documents()
    for name, config in HUB_DATASETS.items():
        path = out / "datasets" / name / (config or "default") / "train.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    for url, kind in URL_FILES.items():  # laid out as `curriculum.utils.offline.resource_url` maps them
        parts = urlparse(url)
        path = out / "urls" / parts.hostname / parts.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "corpus":
            path.write_text("\n\n".join(docs)[:400_000])
        else:  # HellaSwag's validation format, one JSON object a line
            rng = random.Random(0)
            rows = []
            for i in range(300):
                words = rng.choice([d for d in docs if len(d.split()) > 60]).split()
                start = rng.randrange(len(words) - 40)
                endings = [" ".join(words[a : a + 8]) for a in (start + 24, start + 32, start + 40 - 8, 0)]
                label = rng.randrange(4)
                endings[0], endings[label] = endings[label], endings[0]
                ctx = " ".join(words[start : start + 24])
                rows.append({"ind": i, "activity_label": "Reading", "ctx_a": ctx, "ctx_b": "", "ctx": ctx,
                             "split": "val", "split_type": "indomain", "label": label, "endings": endings,
                             "source_id": f"rehearsal~{i}"})
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def build(out: Path) -> Path:
    """Write every local resource into `out` (replacing an older build); returns `out`."""
    out = Path(out).resolve()
    stamp = out / "BUILT"
    if stamp.is_file() and stamp.read_text().strip() == FORMAT_VERSION:
        return out
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=".tmp", dir=out.parent if out.parent.exists() else None))
    try:
        hub = tmp / "hf" / "hub"
        bpe = _train_bpe(2048, ["<|endoftext|>", "<|padding|>"])
        _build_gpt2(hub, bpe)
        _build_attn_only(hub, bpe)
        _build_clip(hub)
        _build_distilbert(hub)
        _build_mnist(tmp / "torchvision")
        _build_files(tmp)
        (tmp / "BUILT").write_text(FORMAT_VERSION)
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------
# The MediaWiki API stand-in
# ---------------------------------------------------------------------------------------------
class MediaWikiGraph:
    """Answers MediaWiki action-API queries from the shipped page graph (data/chapter3/wiki/pages.json).

    Supported: action=query with titles (|-separated), redirects (case/underscore variants resolve,
    reported in `normalized`), prop=extracts (explaintext, exintro, exchars), prop=links (plnamespace,
    pllimit incl. "max", plcontinue, pltitles), prop=info, continue; action=parse with page and
    prop=text|links|wikitext; format=json with formatversion 1 or 2. Anything else gets the API's
    own error shape (`{"error": {"code": ..., "info": ...}}`).
    """

    def __init__(self, path: Path | None = None):
        path = path or ROOT / "data" / "chapter3" / "wiki" / "pages.json"
        from curriculum.solutions.chapter3.wiki import main_content, page_links, plain_text

        data = json.loads(Path(path).read_text())
        self.pages = {}
        for page in data["pages"]:  # each page is its wikitext; the extract and the links come from its main content
            content = main_content(page["wikitext"])
            self.pages[page["title"]] = {"wikitext": page["wikitext"], "content": plain_text(content),
                                         "links": list(page_links(content))}
        self.ids = {t: i + 1 for i, t in enumerate(self.pages)}

    def _resolve(self, title: str) -> str | None:
        key = " ".join(title.replace("_", " ").split()).lower()
        return next((t for t in self.pages if t.lower() == key), None)

    def answer(self, params: dict[str, str]) -> dict:
        action = params.get("action")
        if action == "query":
            return self._query(params)
        if action == "parse":
            return self._parse(params)
        return {"error": {"code": "badvalue", "info": f"Unrecognized value for parameter \"action\": {action}."}}

    def _query(self, p: dict[str, str]) -> dict:
        v2 = p.get("formatversion") == "2"
        props = set(filter(None, p.get("prop", "").split("|")))
        unknown = props - {"extracts", "links", "info"}
        if unknown:
            return {"error": {"code": "badvalue", "info": f"the rehearsal's stand-in does not serve prop={'|'.join(sorted(unknown))}"}}
        limit_raw = p.get("pllimit", "10")
        limit = 500 if limit_raw == "max" else int(limit_raw)
        namespaces = set(p.get("plnamespace", "").split("|")) - {""}
        only = set(p.get("pltitles", "").split("|")) - {""}
        start = int(p.get("plcontinue", "0|0|").split("|")[-1] or 0) if "plcontinue" in p else 0
        pages, normalized, result = [], [], {}
        for raw in p.get("titles", "").split("|"):
            title = self._resolve(raw)
            shown = " ".join(raw.replace("_", " ").split())
            shown = shown[:1].upper() + shown[1:]
            if shown != raw:
                normalized.append({"from": raw, "to": shown})
            if title is None:
                pages.append({"ns": 0, "title": shown, "missing": True if v2 else ""})
                continue
            page = self.pages[title]
            entry: dict[str, Any] = {"pageid": self.ids[title], "ns": 0, "title": title}
            if "extracts" in props and "plcontinue" not in p:
                text = page["content"].split("\n\n")[0] if "exintro" in p else page["content"]
                entry["extract"] = text[: int(p["exchars"])] if "exchars" in p else text
            if "info" in props:
                entry |= {"contentmodel": "wikitext", "pagelanguage": "en", "length": len(page["content"])}
            if "links" in props:
                links = [t for t in page["links"] if not only or t in only]
                if namespaces and "0" not in namespaces:
                    links = []
                batch = links[start : start + limit]
                if batch:
                    entry["links"] = [{"ns": 0, "title": t} for t in batch]
                if start + limit < len(links):
                    result["continue"] = {"plcontinue": f"{self.ids[title]}|0|{start + limit}", "continue": "||"}
            pages.append(entry)
        query: dict[str, Any] = {"pages": pages if v2 else {str(e.get("pageid", -1 - i)): e for i, e in enumerate(pages)}}
        if normalized:
            query["normalized"] = normalized
        return {"batchcomplete": True if v2 else "", **result, "query": query}

    def _parse(self, p: dict[str, str]) -> dict:
        title = self._resolve(p.get("page", ""))
        if title is None:
            return {"error": {"code": "missingtitle", "info": "The page you specified doesn't exist."}}
        page, v2 = self.pages[title], p.get("formatversion") == "2"
        props = set(p.get("prop", "text|links").split("|"))
        out: dict[str, Any] = {"title": title, "pageid": self.ids[title]}
        if "links" in props:
            out["links"] = [{"ns": 0, "title": t, "exists": True} if v2 else {"ns": 0, "*": t, "exists": ""} for t in page["links"]]
        body = "".join(f"<p>{para}</p>" for para in page["content"].split("\n\n"))
        body += "".join(f'<a href="/wiki/{t.replace(" ", "_")}" title="{t}">{t}</a> ' for t in page["links"])
        if "text" in props:
            out["text"] = body if v2 else {"*": body}
        if "wikitext" in props:
            out["wikitext"] = page["wikitext"] if v2 else {"*": page["wikitext"]}
        return {"parse": out}


class _WikiHandler(BaseHTTPRequestHandler):
    graph: MediaWikiGraph

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/w/api.php":
            self.send_error(404)
            return
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = json.dumps(self.graph.answer(params)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def mediawiki_server(graph: MediaWikiGraph | None = None) -> Iterator[str]:
    """A MediaWiki API stand-in on 127.0.0.1; yields its api.php URL."""
    handler = type("Handler", (_WikiHandler,), {"graph": graph or MediaWikiGraph()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/w/api.php"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------
# The stand-in for the real API's model
# ---------------------------------------------------------------------------------------------
def instance_of(schema: dict, defs: dict | None = None, depth: int = 0) -> Any:
    """A small value that validates against a JSON schema (what a real model's structured output must do)."""
    defs = defs if defs is not None else schema.get("$defs", schema.get("definitions", {}))
    if "$ref" in schema:
        return instance_of(defs[schema["$ref"].split("/")[-1]], defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return instance_of(schema[key][0], defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: instance_of(v, defs, depth + 1) for k, v in props.items()}
    if kind == "array":
        n = max(schema.get("minItems", 1), 1)
        return [instance_of(schema.get("items", {"type": "string"}), defs, depth + 1) for _ in range(n)]
    if kind == "string":
        return "A" * max(schema.get("minLength", 1), 1)
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    return None


def stand_in_model(request: dict) -> Any:
    """What the rehearsal's "real API" answers: structurally valid, content-free replies. A tool call
    when tools are offered and none has been answered yet in this turn, schema-valid JSON for
    structured output, a parseable transcript or score line where the system prompt asks for one (sections
    3.4 and 3.1), else a short text in the multiple-choice answer format."""
    from curriculum.utils.openai_server import ToolCall, response_schema, system_message

    messages = request.get("messages", [])
    tools = request.get("tools") or []
    if tools and request.get("tool_choice") != "none" and not (messages and messages[-1].get("role") == "tool"):
        fn = tools[0]["function"]
        return ToolCall(fn["name"], instance_of(fn.get("parameters", {"type": "object"})))
    if (schema := response_schema(request)) is not None:
        return instance_of(schema)
    system = system_message(request)
    if "<OUTPUT>" in system:  # the scratchpad-and-output format (section 3.4): a transcript it can parse
        return "<SCRATCHPAD_REASONING>A rehearsal reply.</SCRATCHPAD_REASONING>\n<OUTPUT><rejected/></OUTPUT>"
    if "SCORE:" in system:  # a grader asked for a score line (section 3.1)
        return "A rehearsal grade.\nSCORE: 7"
    return "ANSWER: A"


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
def rehearsal_env(out: Path, cache: Path, openai_url: str, wiki_url: str) -> dict[str, str]:
    """The environment a learner with internet would have, every source pointed at the local copies."""
    out = Path(out)
    return {
        "CURRICULUM_REHEARSAL": "1",
        "CURRICULUM_OFFLINE": "0",
        "CURRICULUM_QUICK": os.environ.get("CURRICULUM_QUICK", "1"),
        "CURRICULUM_CACHE": str(cache),  # fresh: every download path runs
        "HF_HOME": str(out / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "CURRICULUM_DATASETS_MIRROR": str(out / "datasets"),
        "CURRICULUM_URL_MIRROR": (out / "urls").as_uri(),
        "CURRICULUM_TORCHVISION_ROOT": str(out / "torchvision"),
        "CURRICULUM_MEDIAWIKI_API": wiki_url,
        "OPENAI_BASE_URL": openai_url,
        "OPENAI_API_KEY": PLACEHOLDER_KEY,
        "PYTHONPATH": os.pathsep.join([str(SITE_DIR), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(OPENAI_BASE_URL, CURRICULUM_MEDIAWIKI_API) of the two stand-in servers, running."""
    from curriculum.utils.openai_server import LoopbackServer

    with LoopbackServer(stand_in_model) as api, mediawiki_server() as wiki:
        yield api.base_url, wiki


def solution_notebooks() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("chapters/*/*_solutions.ipynb"))


def run(notebooks: list[str], out: Path, workers: str = "auto", extra: list[str] | None = None) -> int:
    """Build if needed, start the servers, and run the notebooks under nbval in rehearsal mode."""
    t0 = time.time()
    out = build(out)
    print(f"rehearsal resources in {out} ({time.time() - t0:.0f}s)", flush=True)
    cache = Path(tempfile.mkdtemp(prefix="curriculum-rehearsal-cache-"))
    try:
        with servers() as (api, wiki):
            env = {**os.environ, **rehearsal_env(out, cache, api, wiki)}
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax", "-n", workers,
                   "--dist", "loadfile", "-o", "addopts=", "-q", "--durations=0", *(extra or []), *notebooks]
            print(" ".join(cmd), flush=True)
            rc = subprocess.call(cmd, cwd=ROOT, env=env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"rehearsal of {len(notebooks)} notebooks took {time.time() - t0:.0f}s (exit {rc})", flush=True)
    return rc


def probe_loaders() -> list[str]:
    """Call every loader's online branch in this process (run under the rehearsal's environment) and
    return their descriptions; any stand-in raises RehearsalFallback. The fast check of `probe`."""
    from curriculum.solutions.chapter1.mc_eval import load_mc_examples
    from curriculum.solutions.chapter1.train_data import prepare_data
    from curriculum.solutions.chapter3.wiki import load_wiki
    from curriculum.solutions.chapter4.clip import pretrained_zero_shot
    from curriculum.utils.image_data import load_image_dataset
    from curriculum.utils.interp_models import load_interp_model
    from curriculum.utils.offline import (
        load_gpt2,
        load_text_corpus,
        load_tokenizer,
        rehearsal,
    )
    from curriculum.utils.secrets import llm_endpoint

    assert rehearsal(), "probe_loaders runs under CURRICULUM_REHEARSAL=1"
    seen = [load_tokenizer(), load_text_corpus(), load_gpt2(), load_interp_model(), load_mc_examples(20), load_wiki()]
    images = load_image_dataset("mnist", online_limit=50)
    seen.append(images)
    info = prepare_data("roneneldan/TinyStories", max_tokens=5_000, val_every=20)
    out = [x.description for x in seen] + [f"prepared {info.corpus}: {info.n_train_tokens} tokens"]
    out.append(f"pretrained CLIP zero-shot accuracy {pretrained_zero_shot(images.value, n_images=8):.2f}")
    from curriculum.solutions.chapter2.rlhf import classifier_reward, load_sentiment_classifier

    classifier = load_sentiment_classifier()
    scores = classifier_reward(*classifier.value, ["a lovely day", "a dreadful day"])
    out.append(f"{classifier.description}: POSITIVE logits {[round(float(v), 3) for v in scores]}")
    from curriculum.solutions.chapter3.wiki import OfflineWiki

    title = OfflineWiki().titles[0]
    page = seen[5].value.get_page(title.lower().replace(" ", "_"))  # normalised, extract and every link batch
    out.append(f"wiki page {page.title!r}: {len(page.text)} characters, {len(page.links)} links")
    with llm_endpoint("gpt-4o-mini") as llm:
        assert llm.real, llm.why
        reply = llm.client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": "hi"}])
        out.append(f"LLM endpoint real={llm.real}: {reply.choices[0].message.content!r}")
    return out


def probe(out: Path) -> int:
    """Build if needed, start the servers, and run `probe_loaders` in a fresh process under the rehearsal."""
    out = build(out)
    cache = Path(tempfile.mkdtemp(prefix="curriculum-rehearsal-cache-"))
    try:
        with servers() as (api, wiki):
            env = {**os.environ, **rehearsal_env(out, cache, api, wiki)}
            code = "from curriculum.tools.rehearsal import probe_loaders\nfor line in probe_loaders(): print('[real]', line)"
            return subprocess.call([sys.executable, "-c", code], cwd=ROOT, env=env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curriculum.tools.rehearsal", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the local resources")
    b.add_argument("dir", nargs="?", type=Path)
    e = sub.add_parser("env", help="print `export` lines for a shell (the servers are not started)")
    e.add_argument("dir", nargs="?", type=Path)
    pr = sub.add_parser("probe", help="call every loader's online branch once, outside the notebooks (~1 min)")
    pr.add_argument("dir", nargs="?", type=Path)
    r = sub.add_parser("run", help="run solution notebooks in rehearsal mode (all of them by default)")
    r.add_argument("notebooks", nargs="*")
    r.add_argument("--ci", action="store_true", help="a short list, one notebook per kind of online resource (CI_NOTEBOOKS)")
    r.add_argument("--dir", type=Path)
    r.add_argument("-n", "--workers", default="auto")
    args = parser.parse_args(argv)
    out = args.dir or default_dir()
    if args.command == "build":
        print(build(out))
        return 0
    if args.command == "env":
        env = rehearsal_env(out, Path(tempfile.gettempdir()) / "curriculum-rehearsal-cache", "http://127.0.0.1:PORT/v1",
                            "http://127.0.0.1:PORT/w/api.php")
        print("\n".join(f"export {k}={v!r}" for k, v in env.items()))
        return 0
    if args.command == "probe":
        return probe(out)
    notebooks = list(CI_NOTEBOOKS) if args.ci else (args.notebooks or solution_notebooks())
    return run(notebooks, out, args.workers)


if __name__ == "__main__":
    sys.exit(main())
