"""Models for section 1.3 (interpretability), as TransformerLens 4 `TransformerBridge`s.

`load_interp_model()` returns, through `curriculum.utils.offline.use_real_resources()`:
- online: TransformerLens's 2-layer attention-only model trained on C4 + code
  (`NeelNanda/Attn_Only_2L512W_C4_Code`, 2 layers x 8 heads, d_model 512, via `boot_tl_legacy`;
  rehearsed with a small random model of the same layout (`python -m curriculum.tools.rehearsal`);
  if it cannot be built, the shipped model is used and the loader says so);
- offline: the project's own 2-layer attention-only model shipped in data/interp/ (2 layers x 4 heads,
  d_model 64, vocabulary 320, trained in minutes on CPU by `python -m curriculum.solutions.chapter1.induction_model` on repeated
  random tokens mixed with the offline text corpus, so it has real induction heads). It was trained on
  49-token contexts: keep prompts to at most 49 tokens (later positional embeddings are untrained).

`load_shipped_induction_model()` always returns the shipped model: checks use it so that their
expected numbers do not depend on the network.

Both come back in compatibility mode (`enable_compatibility_mode()`): LayerNorm folded into the
next weights and writing weights centred, as HookedTransformer did, so direct logit attribution
and the QK/OV circuit analyses mean what the ARENA material says they mean, and hooks such as
`blocks.0.attn.hook_z` have the [batch, pos, head, d_head] shape.
"""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path

from curriculum.utils.offline import Loaded, require_real, use_real_resources

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "interp"
ONLINE_MODEL = "NeelNanda/Attn_Only_2L512W_C4_Code"
ONLINE_TOKENIZER = "NeelNanda/gpt-neox-tokenizer-digits"  # what its config.json names


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(DATA_DIR / "tokenizer")


@functools.lru_cache(maxsize=2)
def _shipped(compatibility_mode: bool):
    from safetensors.torch import load_file
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
    from transformer_lens.model_bridge.sources.native import NativeModel

    meta = json.loads((DATA_DIR / "config.json").read_text())
    cfg = TransformerBridgeConfig.from_dict(meta["bridge_config"])
    # Load the weights into the plain torch module first: the bridge wraps its submodules in place.
    native = NativeModel(cfg)
    native.load_state_dict(load_file(DATA_DIR / "attn_only_2l.safetensors"))
    bridge = build_bridge_from_module(native, architecture="TransformerLensNative", tl_config=cfg,
                                      tokenizer=_tokenizer(), model_name="attn-only-2l-offline")
    bridge.eval()
    if compatibility_mode:
        bridge.enable_compatibility_mode(disable_warnings=True)
    return bridge


def load_shipped_induction_model(compatibility_mode: bool = True):
    """The shipped offline model as a TransformerBridge (cached: treat it as read-only)."""
    if not (DATA_DIR / "attn_only_2l.safetensors").exists():
        raise FileNotFoundError(
            f"{DATA_DIR / 'attn_only_2l.safetensors'} is missing: run `python -m curriculum.solutions.chapter1.induction_model`"
        )
    return _shipped(compatibility_mode)


@contextlib.contextmanager
def _repo_files_from_cache(repo_id: str):
    """With HF_HUB_OFFLINE=1, answer `HfApi.list_repo_files(repo_id)` from the local snapshot.

    TransformerLens 4's `boot_tl_legacy` lists the repo's files through the hub API to find the
    weights, which fails offline even when the whole repo is cached (a learner on a plane, or the
    rehearsal). Online this does nothing."""
    from huggingface_hub import HfApi, constants, snapshot_download

    if not constants.HF_HUB_OFFLINE:
        yield
        return
    root = Path(snapshot_download(repo_id, local_files_only=True))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    original = HfApi.list_repo_files

    def list_repo_files(self, repo, *args, **kwargs):
        return files if repo == repo_id else original(self, repo, *args, **kwargs)

    HfApi.list_repo_files = list_repo_files
    try:
        yield
    finally:
        HfApi.list_repo_files = original


def load_interp_model() -> Loaded:
    """A 2-layer attention-only model with induction heads: TL's pretrained one online, ours offline."""
    if use_real_resources():
        from transformer_lens.model_bridge import TransformerBridge
        from transformer_lens.model_bridge.sources import tl_legacy  # noqa: F401 - attaches boot_tl_legacy

        try:
            # The tokenizer repo holds only tokenizer files, and transformers 5's AutoTokenizer (which
            # boot_tl_legacy calls, and calls again to add a BOS token unless add_bos_token is set)
            # insists on a config.json: load it with the class it names, BOS on, as TL would.
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(ONLINE_TOKENIZER, add_bos_token=True)
            with _repo_files_from_cache(ONLINE_MODEL):
                bridge = TransformerBridge.boot_tl_legacy(ONLINE_MODEL, tokenizer=tokenizer)
        except (NotImplementedError, OSError, ValueError) as e:  # e.g. a layout the native bridge cannot build
            print(f"could not load {ONLINE_MODEL} ({type(e).__name__}: {e}); using the shipped offline model")
            why = f"{ONLINE_MODEL} could not be loaded ({type(e).__name__}: {e})"
            require_real(why)
        else:
            bridge.eval()
            bridge.enable_compatibility_mode(disable_warnings=True)
            return Loaded(bridge, True, f"{ONLINE_MODEL}: 2 layers x 8 heads, d_model 512, attention-only, pretrained")
    bridge = load_shipped_induction_model()
    c = bridge.cfg
    return Loaded(bridge, False, f"shipped attention-only model: {c.n_layers} layers x {c.n_heads} heads, "
                  f"d_model {c.d_model}, vocab {c.d_vocab} (trained offline by curriculum/solutions/chapter1/induction_model.py)")
