"""Section 1.1: GPT-2 from scratch, and sampling from it.

Read top to bottom: it is the order the notebook teaches. Parameter names and shapes follow
TransformerLens (`W_Q: [n_heads, d_model, d_head]`, `blocks.{l}.attn.hook_pattern`, ...), so the
weights of a TransformerBridge in compatibility mode load straight in, and what a learner sees
here carries over to the interpretability sections.

Fenced regions (`# EXERCISE:` ... `# END EXERCISE`) are what the exercise notebook leaves blank.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint


@dataclass
class Config:
    """GPT-2 small by default. `attn_impl="sdpa"` uses the fused kernel (flash attention on GPU)."""

    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_head: int = 64
    d_mlp: int = 3072
    d_vocab: int = 50257
    n_ctx: int = 1024
    layer_norm_eps: float = 1e-5
    init_range: float = 0.02
    attn_impl: Literal["manual", "sdpa"] = "manual"
    tie_embeddings: bool = False  # GPT-2 ties W_U = W_E^T; TransformerLens (and section 1.1) keeps a separate copy

    def __post_init__(self):
        if self.n_heads * self.d_head != self.d_model:
            raise ValueError(
                f"n_heads * d_head must equal d_model, got {self.n_heads} * {self.d_head} != {self.d_model}"
            )
        if self.attn_impl not in ("manual", "sdpa"):
            raise ValueError(f"attn_impl must be 'manual' or 'sdpa', got {self.attn_impl!r}")

    @property
    def eps(self) -> float:
        """TransformerLens's name for layer_norm_eps, so code written for its config reads ours."""
        return self.layer_norm_eps


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class LayerNorm(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]: the divisor sqrt(variance + eps)
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]: centred and divided, before w and b

    def forward(self, residual: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        # EXERCISE: centre over d_model, divide by sqrt(biased variance + eps) (through self.hook_scale), then self.hook_normalized, scale by w and shift by b
        residual = residual - residual.mean(dim=-1, keepdim=True)
        # GPT-2 uses the biased (population) variance, as torch.nn.LayerNorm does
        scale = self.hook_scale((residual.pow(2).mean(dim=-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt())
        return self.hook_normalized(residual / scale) * self.w + self.b
        # END EXERCISE


class Embed(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        nn.init.normal_(self.W_E, std=cfg.init_range)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        # EXERCISE: look up each token's row of W_E
        return self.W_E[tokens]
        # END EXERCISE


class PosEmbed(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
        nn.init.normal_(self.W_pos, std=cfg.init_range)

    def forward(self, tokens: Int[Tensor, "batch pos"], offset: int = 0) -> Float[Tensor, "batch pos d_model"]:
        """`offset` is the position of the first token: non-zero when earlier tokens sit in a KV cache."""
        # EXERCISE: rows offset .. offset+pos of W_pos, repeated over the batch
        batch, seq_len = tokens.shape
        return einops.repeat(self.W_pos[offset : offset + seq_len], "pos d_model -> batch pos d_model", batch=batch)
        # END EXERCISE


def apply_causal_mask(
    attn_scores: Float[Tensor, "batch n_heads query_pos key_pos"],
) -> Float[Tensor, "batch n_heads query_pos key_pos"]:
    """Set scores where the key comes after the query to -inf.

    The queries are the *last* query_pos positions of the key_pos positions (with a KV cache,
    earlier keys come from the cache), so query i sits at absolute position key_pos - query_pos + i.
    """
    # EXERCISE: mask (to -inf) every key j > query i's absolute position; mind the offset when query_pos < key_pos
    n_q, n_k = attn_scores.shape[-2:]
    if n_q == 1:  # a single query is the newest position (a cached decoding step): it may see every key
        return attn_scores
    q_pos = torch.arange(n_k - n_q, n_k, device=attn_scores.device)[:, None]
    k_pos = torch.arange(n_k, device=attn_scores.device)[None, :]
    return attn_scores.masked_fill(k_pos > q_pos, float("-inf"))
    # END EXERCISE


class Attention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        # [n_heads, d_model, d_head] as TransformerLens indexes them, stored d_model-major: the einsum
        # below multiplies x by a [d_model, n_heads * d_head] matrix, which is then a view of the
        # weights, not a fresh copy per call (a copy costs as much memory traffic as the matmul itself
        # when generating one token at a time).
        self.W_Q = nn.Parameter(torch.empty(cfg.d_model, cfg.n_heads, cfg.d_head).transpose(0, 1))
        self.W_K = nn.Parameter(torch.empty(cfg.d_model, cfg.n_heads, cfg.d_head).transpose(0, 1))
        self.W_V = nn.Parameter(torch.empty(cfg.d_model, cfg.n_heads, cfg.d_head).transpose(0, 1))
        self.W_O = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_head, cfg.d_model))
        self.b_Q = nn.Parameter(torch.zeros(cfg.n_heads, cfg.d_head))
        self.b_K = nn.Parameter(torch.zeros(cfg.n_heads, cfg.d_head))
        self.b_V = nn.Parameter(torch.zeros(cfg.n_heads, cfg.d_head))
        self.b_O = nn.Parameter(torch.zeros(cfg.d_model))
        for w in (self.W_Q, self.W_K, self.W_V, self.W_O):
            nn.init.normal_(w, std=cfg.init_range)
        # The activations interpretability reads, with TransformerLens's names and shapes:
        self.hook_q = HookPoint()  # [batch, query_pos, n_heads, d_head]
        self.hook_k = HookPoint()  # [batch, key_pos, n_heads, d_head] (new positions only, before the cache)
        self.hook_v = HookPoint()  # [batch, key_pos, n_heads, d_head]
        self.hook_pattern = HookPoint()  # [batch, n_heads, query_pos, key_pos]; "manual" path only
        self.hook_z = HookPoint()  # [batch, query_pos, n_heads, d_head]: each head's mix of values

    def forward(
        self,
        normalized_resid_pre: Float[Tensor, "batch pos d_model"],
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        """With a `kv_cache`, call `k, v = kv_cache.update(k, v)` right after computing k and v: it
        returns the keys and values of every position so far (the KV cache section explains it).

        `attn_impl="sdpa"` takes the fused path (`forward_fused`, given); the plain path below is the
        one interpretability reads, since only it materialises the pattern."""
        if self.cfg.attn_impl == "sdpa":
            return self.forward_fused(normalized_resid_pre, kv_cache)
        # EXERCISE: q, k, v as [batch, pos, n_heads, d_head] (einsum with W_Q/W_K/W_V plus biases) through hook_q/k/v; k, v = kv_cache.update(k, v) if a cache is given; scaled scores, causal mask, softmax over keys through self.hook_pattern; weighted sum of v through self.hook_z; W_O summed over heads, plus b_O
        x = normalized_resid_pre
        q = self.hook_q(einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q)
        k = self.hook_k(einops.einsum(x, self.W_K, "b p d, h d e -> b p h e") + self.b_K)
        v = self.hook_v(einops.einsum(x, self.W_V, "b p d, h d e -> b p h e") + self.b_V)
        if kv_cache is not None:
            # with a cache, k and v become the keys/values of every position so far
            k, v = kv_cache.update(k, v)
        attn_scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(self.cfg.d_head)
        pattern = self.hook_pattern(apply_causal_mask(attn_scores).softmax(dim=-1))
        z = self.hook_z(einops.einsum(pattern, v, "b h q k, b k h e -> b q h e"))
        return einops.einsum(z, self.W_O, "b q h e, h e d -> b q d") + self.b_O
        # END EXERCISE

    def forward_fused(
        self,
        normalized_resid_pre: Float[Tensor, "batch pos d_model"],
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        """The same layer through PyTorch's fused attention kernel (flash attention on a GPU): what
        section 1.2 trains with. It never materialises the pattern, so `hook_pattern` records nothing
        here (every other hook does); interpretability needs the plain path."""
        if self.hook_pattern._forward_hooks:
            warnings.warn("attn_impl='sdpa' never computes the attention pattern, so hook_pattern records "
                          "nothing; build the model with attn_impl='manual' to read patterns", stacklevel=3)
        x = normalized_resid_pre
        q = self.hook_q(self._project(x, self.W_Q, self.b_Q))
        k = self.hook_k(self._project(x, self.W_K, self.b_K))
        v = self.hook_v(self._project(x, self.W_V, self.b_V))
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)
        # the kernel wants [batch, n_heads, pos, d_head]. Its is_causal mask is aligned top-left, only
        # right when there are as many queries as keys; one query (a cached decoding step) may see
        # every key, so it needs no mask; otherwise pass the offset mask.
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        n_q, n_k = q.shape[-2], k.shape[-2]
        if n_q == n_k:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif n_q == 1:
            z = F.scaled_dot_product_attention(q, k, v)
        else:
            allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).tril(diagonal=n_k - n_q)
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        z = self.hook_z(z.transpose(1, 2))
        # sum over heads as one [pos, n_heads * d_head] @ [n_heads * d_head, d_model] product
        return z.flatten(-2) @ self.W_O.flatten(0, 1) + self.b_O

    @staticmethod
    def _project(
        x: Float[Tensor, "batch pos d_model"], W: Float[Tensor, "n_heads d_model d_head"], b: Float[Tensor, "n_heads d_head"]
    ) -> Float[Tensor, "batch pos n_heads d_head"]:
        """einsum("b p d, h d e -> b p h e") + b as one plain matmul: W stored d_model-major makes
        W.transpose(0, 1).flatten(1) a free [d_model, n_heads * d_head] view. Same numbers, fewer small
        operations than einsum's permute-and-batched-matmul, which shows when decoding one token at a time."""
        n_heads, _, d_head = W.shape
        return (x @ W.transpose(0, 1).flatten(1)).unflatten(-1, (n_heads, d_head)) + b


class MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        nn.init.normal_(self.W_in, std=cfg.init_range)
        nn.init.normal_(self.W_out, std=cfg.init_range)

    def forward(self, normalized_resid_mid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        # EXERCISE: linear in, GELU (GPT-2 uses the tanh approximation: approximate="tanh"), linear out
        # a plain matmul acts on the last axis at every position: the einsum "b p d, d m -> b p m" in one call
        pre = normalized_resid_mid @ self.W_in + self.b_in
        post = F.gelu(pre, approximate="tanh")
        return post @ self.W_out + self.b_out
        # END EXERCISE


class TransformerBlock(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()  # every hook here is [batch, pos, d_model]
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self, resid_pre: Float[Tensor, "batch pos d_model"], kv_cache: LayerKVCache | None = None
    ) -> Float[Tensor, "batch pos d_model"]:
        # EXERCISE: pre-norm residual block: resid_mid = resid_pre + attn(ln1(.)), resid_post = resid_mid + mlp(ln2(.)); pass kv_cache to attn and route the stream and both sublayer outputs through the hooks
        resid_pre = self.hook_resid_pre(resid_pre)
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid_pre), kv_cache))
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(resid_mid)))
        return self.hook_resid_post(resid_mid + mlp_out)
        # END EXERCISE


class Unembed(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        nn.init.normal_(self.W_U, std=cfg.init_range)
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab), requires_grad=False)

    def forward(self, normalized_resid_final: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        # EXERCISE: project the residual stream onto the vocabulary with W_U, plus b_U
        return einops.einsum(normalized_resid_final, self.W_U, "b p d, d v -> b p v") + self.b_U
        # END EXERCISE


class GPT2(HookedRootModule):
    """A HookedRootModule, so `model.run_with_cache(tokens)` works as on a TransformerLens model."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.embed = Embed(cfg)
        self.pos_embed = PosEmbed(cfg)
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        # tied: logits read W_E^T (nanoGPT/HF GPT-2); untied: a separate W_U (TransformerLens)
        self.unembed = None if cfg.tie_embeddings else Unembed(cfg)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]: the token embeddings
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]: the position embeddings
        self.setup()

    # Stacked weights under TransformerLens's names (`model.W_O[layer]` is [n_heads, d_head, d_model]),
    # so interpretability code written for a TransformerLens model reads this one too.
    def _stack(self, name: str) -> Tensor:
        return torch.stack([getattr(block.attn, name) for block in self.blocks])

    W_Q = property(lambda self: self._stack("W_Q"))  # [n_layers, n_heads, d_model, d_head]
    W_K = property(lambda self: self._stack("W_K"))
    W_V = property(lambda self: self._stack("W_V"))
    W_O = property(lambda self: self._stack("W_O"))  # [n_layers, n_heads, d_head, d_model]
    b_Q = property(lambda self: self._stack("b_Q"))  # [n_layers, n_heads, d_head]
    b_K = property(lambda self: self._stack("b_K"))
    b_V = property(lambda self: self._stack("b_V"))
    b_O = property(lambda self: self._stack("b_O"))  # [n_layers, d_model]
    W_E = property(lambda self: self.embed.W_E)  # [d_vocab, d_model]
    W_pos = property(lambda self: self.pos_embed.W_pos)  # [n_ctx, d_model]

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.embed.W_E.T if self.unembed is None else self.unembed.W_U

    @property
    def b_U(self) -> Float[Tensor, "d_vocab"]:
        return self.W_U.new_zeros(self.cfg.d_vocab) if self.unembed is None else self.unembed.b_U

    def forward(
        self, tokens: Int[Tensor, "batch pos"], kv_cache: KVCache | None = None
    ) -> Float[Tensor, "batch pos d_vocab"]:
        if tokens.ndim != 2:
            raise ValueError(f"tokens should be [batch, pos], got shape {tuple(tokens.shape)}: add a batch axis with tokens[None]")
        offset = kv_cache.length if kv_cache is not None else 0
        if offset + tokens.shape[1] > self.cfg.n_ctx:
            raise ValueError(f"{offset + tokens.shape[1]} positions exceed the context length n_ctx={self.cfg.n_ctx}")
        # EXERCISE: embed (through hook_embed) + pos_embed with offset (through hook_pos_embed), the blocks (each with its kv_cache[layer] if a cache is given), ln_final, then unembed (tied: residual @ W_E^T, or the given self.tied_readout)
        residual = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens, offset))
        for layer, block in enumerate(self.blocks):
            residual = block(residual, kv_cache[layer] if kv_cache is not None else None)
        residual = self.ln_final(residual)
        if self.unembed is None:
            # logits = residual @ W_E^T, through the given tied_readout (same numbers, faster decoding steps)
            return self.tied_readout(residual, kv_cache)
        return self.unembed(residual)
        # END EXERCISE

    def tied_readout(
        self, residual: Float[Tensor, "batch pos d_model"], kv_cache: KVCache | None = None
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """The tied read-out, `residual @ W_E^T`.

        A decoding step on a CPU (one new position, a KV cache, no gradient) is a matrix-vector
        product, whose speed is how fast the weights stream from memory, and a CPU streams a contiguous
        [d_model, d_vocab] matrix through it faster than the transposed view of W_E's [d_vocab, d_model]
        (the KV cache section measures both). The cache makes that copy once per generation
        (`KVCache.readout_matrix`). Training, prompts and GPUs use W_E itself: a matrix-matrix product
        runs as fast on W_E's own layout (in training, slightly faster), and the copy would cost memory."""
        W_E = self.embed.W_E
        decoding_on_cpu = kv_cache is not None and residual.shape[1] == 1 and residual.device.type == "cpu"
        if not decoding_on_cpu or torch.is_grad_enabled():
            return residual @ W_E.T
        return residual @ kv_cache.readout_matrix(W_E)


def config_from_bridge(bridge_cfg) -> Config:
    """Our Config for the shape of a TransformerBridge's model (`bridge.cfg`)."""
    return Config(
        d_model=bridge_cfg.d_model, n_layers=bridge_cfg.n_layers, n_heads=bridge_cfg.n_heads,
        d_head=bridge_cfg.d_head, d_mlp=bridge_cfg.d_mlp, d_vocab=bridge_cfg.d_vocab, n_ctx=bridge_cfg.n_ctx,
    )


def load_gpt2_weights(model: GPT2, tl_params: dict[str, Tensor]) -> GPT2:
    """Copy TransformerLens-named weights (`bridge.tl_parameters()` in compatibility mode with
    `no_processing=True`, or a HookedTransformer-style state dict) into our model."""
    # EXERCISE: our parameter names equal TransformerLens's, so load_state_dict can do it; skip keys we don't have (e.g. unembed.* when tied), but fail on a missing key of ours
    ours = model.state_dict()
    missing = [k for k in ours if k not in tl_params]
    if missing:
        raise KeyError(f"weights for {missing[:3]}... are missing from the TransformerLens parameters")
    model.load_state_dict({k: tl_params[k] for k in ours})
    return model
    # END EXERCISE


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def lm_cross_entropy(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
    """Mean next-token loss: position i predicts token i+1, so the last position has no target."""
    # EXERCISE: log_softmax over the vocabulary; take the log-prob of the *next* token at each position; mean of the negatives
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    target_log_probs = log_probs.gather(-1, tokens[:, 1:, None])[..., 0]
    return -target_log_probs.mean()
    # END EXERCISE


def random_batches(
    tokens: Int[Tensor, "n_tokens"], batch_size: int, seq_len: int, generator: torch.Generator
) -> Int[Tensor, "batch seq"]:
    """A batch of random windows of a long token stream (the nanoGPT way to read a corpus)."""
    if tokens.numel() <= seq_len:
        raise ValueError(f"the corpus has {tokens.numel()} tokens, fewer than seq_len={seq_len}+1")
    starts = torch.randint(0, tokens.numel() - seq_len, (batch_size,), generator=generator)
    return torch.stack([tokens[s : s + seq_len] for s in starts.tolist()])


def train_lm(
    model: GPT2,
    train_tokens: Int[Tensor, "n_tokens"],
    val_tokens: Int[Tensor, "n_tokens"],
    steps: int,
    batch_size: int,
    seq_len: int,
    lr: float = 1e-3,
    eval_every: int = 50,
    eval_batches: int = 4,
    seed: int = 0,
) -> dict[str, list[float]]:
    """A minimal AdamW training loop (section 1.2 builds the production version).

    Returns `{"train_loss": one float per step, "val_loss": one float per evaluation, "val_step":
    the step of each evaluation}`. Evaluate at every `eval_every`-th step (0 included) and at the
    last step. Draw every batch, training and validation, from `gen` with `random_batches`."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_step": []}
    # EXERCISE: for each step: a batch from random_batches(train_tokens, ..., gen), loss = lm_cross_entropy(model(batch), batch), zero_grad / backward / step, record loss.item(); at step % eval_every == 0 and at the last step, the mean loss of eval_batches validation batches under torch.no_grad()
    for step in (bar := tqdm(range(steps), desc="training")):
        model.train()
        batch = random_batches(train_tokens, batch_size, seq_len, gen).to(device)
        loss = lm_cross_entropy(model(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["train_loss"].append(loss.item())
        if step % eval_every == 0 or step == steps - 1:
            model.eval()
            with torch.no_grad():  # a few batches, so the curve shows the model and not the batch
                vals = [random_batches(val_tokens, batch_size, seq_len, gen).to(device) for _ in range(eval_batches)]
                history["val_loss"].append(sum(lm_cross_entropy(model(v), v).item() for v in vals) / eval_batches)
                history["val_step"].append(step)
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{history['val_loss'][-1]:.3f}")
    # END EXERCISE
    return history


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


def apply_temperature(logits: Float[Tensor, "batch d_vocab"], temperature: float) -> Float[Tensor, "batch d_vocab"]:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for temperature 0), got {temperature}")
    # EXERCISE: divide the logits by the temperature
    return logits / temperature
    # END EXERCISE


def apply_frequency_penalty(
    input_ids: Int[Tensor, "batch seq"], logits: Float[Tensor, "batch d_vocab"], freq_penalty: float
) -> Float[Tensor, "batch d_vocab"]:
    """OpenAI-style: subtract freq_penalty times the number of times each token already appeared."""
    # EXERCISE: count each token's occurrences per batch row (torch.bincount or scatter_add_ with minlength=d_vocab) and subtract freq_penalty * count
    counts = torch.zeros_like(logits).scatter_add_(-1, input_ids, torch.ones_like(input_ids, dtype=logits.dtype))
    return logits - freq_penalty * counts
    # END EXERCISE


def top_k_filter(logits: Float[Tensor, "batch d_vocab"], k: int) -> Float[Tensor, "batch d_vocab"]:
    """Keep the k largest logits per row; set the rest to -inf."""
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    # EXERCISE: find the k-th largest logit per row (torch.topk) and mask everything strictly below it to -inf
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))
    # END EXERCISE


def top_p_filter(logits: Float[Tensor, "batch d_vocab"], top_p: float, min_tokens_to_keep: int = 1) -> Float[Tensor, "batch d_vocab"]:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability sums to >= top_p."""
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    # EXERCISE: sort descending, cumulative probs; remove a token if the mass *before* it already reaches top_p (always keep min_tokens_to_keep); map back to vocabulary order
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = (cum_probs - sorted_logits.softmax(dim=-1)) >= top_p  # mass strictly before this token
    remove[..., :min_tokens_to_keep] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    # END EXERCISE


@dataclass
class SamplingConfig:
    """temperature=0 means greedy. top_k/top_p of None switch those filters off."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    freq_penalty: float = 0.0


def sample_next_token(
    input_ids: Int[Tensor, "batch seq"],
    logits: Float[Tensor, "batch d_vocab"],
    cfg: SamplingConfig,
    generator: torch.Generator | None = None,
) -> Int[Tensor, "batch"]:
    """The next token of each row. Greedy (the argmax of the raw logits) when temperature is 0;
    otherwise, in this order: frequency penalty (if non-zero), temperature, top-k (if set), top-p (if
    set), then one draw per row from the softmax with `torch.multinomial(..., generator=generator)`.
    Returns a `[batch]` tensor of token ids."""
    # EXERCISE: greedy if cfg.temperature == 0; else penalty -> temperature -> top-k -> top-p on the logits, then torch.multinomial(softmax, 1, generator=generator)
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = apply_frequency_penalty(input_ids, logits, cfg.freq_penalty) if cfg.freq_penalty else logits
    logits = apply_temperature(logits, cfg.temperature)
    if cfg.top_k is not None:
        logits = top_k_filter(logits, cfg.top_k)
    if cfg.top_p is not None:
        logits = top_p_filter(logits, cfg.top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
    # END EXERCISE


@torch.no_grad()
def generate(
    model: GPT2,
    input_ids: Int[Tensor, "batch seq"],
    max_new_tokens: int,
    cfg: SamplingConfig = SamplingConfig(temperature=0.0),
    use_cache: bool = False,
    seed: int | None = None,
    progress: bool = False,
) -> Int[Tensor, "batch seq_plus_new"]:
    """Append `max_new_tokens` tokens to every row of `input_ids`, one `sample_next_token` per step,
    and return prompt and continuation together, `[batch, seq + max_new_tokens]`.

    With `use_cache`, `cache` remembers the keys and values of every token the model has seen, so
    each step feeds the model only what it has not seen: the whole prompt at the first step, then
    just the newest token (the KV cache section explains why that gives the same logits)."""
    model.eval()
    generator = None
    if seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(seed)
    tokens = input_ids
    cache = KVCache.empty(model.cfg.n_layers) if use_cache else None
    # EXERCISE: max_new_tokens times: logits of the last position (feed only tokens[:, -1:] once the cache holds the prompt), sample_next_token(tokens, logits, cfg, generator), append it to tokens
    for _ in tqdm(range(max_new_tokens), desc="generating", disable=not progress):
        # with a cache, the model only needs the tokens it has not seen yet
        new = tokens if cache is None or cache.length == 0 else tokens[:, -1:]
        logits = model(new, kv_cache=cache)[:, -1]
        next_token = sample_next_token(tokens, logits, cfg, generator)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
    # END EXERCISE
    return tokens


@torch.no_grad()
def beam_search(
    model: GPT2, input_ids: Int[Tensor, "1 seq"], num_beams: int, max_new_tokens: int
) -> tuple[Int[Tensor, "num_beams seq_plus_new"], Float[Tensor, "num_beams"]]:
    """Keep the num_beams continuations of highest total log-probability; return them best first."""
    if input_ids.shape[0] != 1:
        raise ValueError(f"beam search takes one prompt, shape [1, seq]; got batch {input_ids.shape[0]}")
    model.eval()
    beams, scores = input_ids, torch.zeros(1, device=input_ids.device)
    for _ in range(max_new_tokens):
        # EXERCISE: extend every beam by every token (scores + next-token log-probs), keep the top num_beams over the flattened (beam, token) grid
        log_probs = model(beams)[:, -1].log_softmax(dim=-1)  # [beams, d_vocab]
        candidates = (scores[:, None] + log_probs).flatten()
        scores, flat_idx = candidates.topk(num_beams)
        beam_idx, token = flat_idx // log_probs.shape[-1], flat_idx % log_probs.shape[-1]
        beams = torch.cat([beams[beam_idx], token[:, None]], dim=1)
        # END EXERCISE
    return beams, scores


# ---------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------


class LayerKVCache:
    """The keys and values one attention layer has computed so far."""

    def __init__(self):
        self.k: Float[Tensor, "batch pos n_heads d_head"] | None = None
        self.v: Float[Tensor, "batch pos n_heads d_head"] | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[1]

    def update(
        self, k: Float[Tensor, "batch new n_heads d_head"], v: Float[Tensor, "batch new n_heads d_head"]
    ) -> tuple[Float[Tensor, "batch pos n_heads d_head"], Float[Tensor, "batch pos n_heads d_head"]]:
        # EXERCISE: append the new keys/values along the position axis (the first call just stores them); return all keys and values so far
        self.k = k if self.k is None else torch.cat([self.k, k], dim=1)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=1)
        return self.k, self.v
        # END EXERCISE


class KVCache:
    """One LayerKVCache per layer; `length` is how many positions the model has already seen."""

    def __init__(self, layers: list[LayerKVCache]):
        self.layers = layers
        self._readout: tuple | None = None  # (W_E, its version and address, the [d_model, d_vocab] copy)

    def readout_matrix(self, W_E: Float[Tensor, "d_vocab d_model"]) -> Float[Tensor, "d_model d_vocab"]:
        """W_E^T as a contiguous copy, made at the first decoding step and reused for the rest of the
        generation; made again if W_E is replaced or changed in place (its version counter moves)."""
        stamp = (W_E._version, W_E.data_ptr(), W_E.device, W_E.dtype)
        if self._readout is None or self._readout[0] is not W_E or self._readout[1] != stamp:
            self._readout = (W_E, stamp, W_E.detach().T.contiguous())
        return self._readout[2]

    @classmethod
    def empty(cls, n_layers: int) -> KVCache:
        return cls([LayerKVCache() for _ in range(n_layers)])

    def __getitem__(self, layer: int) -> LayerKVCache:
        return self.layers[layer]

    @property
    def length(self) -> int:
        return self.layers[0].length
