"""Greedy decoding with a static KV cache and, on a GPU, one CUDA graph per decode step.

Hugging Face `generate()` runs each token's forward pass from Python: ~25 kernels per layer,
launched one by one, so a 0.5B model decodes at the CPU's speed (tens of ms per token), whatever
the GPU. For the Llama family (Llama, Qwen2, Mistral-style: pre-norm RMSNorm, rotary, SwiGLU,
grouped-query attention) this module runs the same arithmetic with the model's own modules and
weights, but every buffer is preallocated: prompts are prefilled into a fixed-size cache, and the
step (embed -> layers -> head -> arg-max -> write the token) is captured once and replayed, one
launch per token for the whole batch. Rows are right-padded and each row attends only its own
positions, so a row's output does not depend on the batch it is in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..batching import cut_at_end, pad_rows
from ..models.formatting import Encoded
from ..models.forward import evaluating, unwrap

FAMILY = ("llama", "qwen2", "mistral")


def supported(model) -> bool:
    """True when the model is a plain Llama-family decoder this module reproduces exactly."""
    m = unwrap(model)
    cfg = m.config
    if cfg.model_type not in FAMILY or type(m).__name__ not in {
        "LlamaForCausalLM",
        "Qwen2ForCausalLM",
        "MistralForCausalLM",
    }:
        return False
    if getattr(cfg, "use_sliding_window", False) or (
        cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None)
    ):
        return False  # windowed attention would need the window in the mask
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return False
    if getattr(cfg, "mlp_bias", False) or getattr(cfg, "pretraining_tp", 1) != 1:
        return False
    return type(m.model.rotary_emb).__name__.endswith("RotaryEmbedding")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class StaticDecoder:
    """Greedy decoding of up to `rows` sequences of at most `capacity` tokens (prompt + output)."""

    def __init__(self, model, rows: int, capacity: int, device):
        m = unwrap(model)
        self.m, self.body, self.device = m, m.model, torch.device(device)
        cfg = m.config
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dtype = m.get_input_embeddings().weight.dtype
        self.rows, self.capacity = rows, capacity
        shape = (rows, self.n_kv, capacity, self.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.body.layers]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.body.layers]
        self.token = torch.zeros(rows, dtype=torch.long, device=device)  # the token fed at the next step
        self.pos = torch.zeros(rows, dtype=torch.long, device=device)  # its position
        self.slots = torch.arange(capacity, device=device)
        self.row_idx = torch.arange(rows, device=device)
        self.graph = None
        self.warm_steps = 0

    def _layer_step(self, li: int, layer, x, cos, sin, mask, write):
        """One decoder layer on x [B, T, H]; `write(li, k, v)` stores the new keys/values and returns the cache."""
        a = layer.self_attn
        b, t, _ = x.shape
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = a.k_proj(h).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = a.v_proj(h).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        c, s = cos.unsqueeze(1), sin.unsqueeze(1)
        q, k = q * c + _rotate_half(q) * s, k * c + _rotate_half(k) * s
        keys, values = write(li, k, v)
        rep = self.n_heads // self.n_kv
        if rep > 1:  # grouped-query attention, as HF's repeat_kv does it (no data-dependent sizes: capturable)
            n, tk = keys.shape[0], keys.shape[2]
            keys = (
                keys[:, :, None]
                .expand(n, self.n_kv, rep, tk, self.head_dim)
                .reshape(n, self.n_heads, tk, self.head_dim)
            )
            values = (
                values[:, :, None]
                .expand(n, self.n_kv, rep, tk, self.head_dim)
                .reshape(n, self.n_heads, tk, self.head_dim)
            )
        if mask is None:
            o = F.scaled_dot_product_attention(q, keys, values, is_causal=True, scale=a.scaling)
        else:
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=a.scaling)
        x = x + a.o_proj(o.transpose(1, 2).reshape(b, t, -1))
        return x + layer.mlp(layer.post_attention_layernorm(x))

    @torch.no_grad()
    def prefill(self, seqs: list[list[int]], pad_id: int) -> None:
        """Run the prompts (right-padded, causal) into the cache; set each row's first decode input."""
        ids = pad_rows(list(seqs) + [[]] * (self.rows - len(seqs)), pad_id).to(self.device)
        width = ids.shape[1]
        x = self.body.embed_tokens(ids)
        positions = torch.arange(width, device=self.device).expand(self.rows, width)
        cos, sin = self.body.rotary_emb(x, positions)

        def write(li, k, v):
            self.keys[li][:, :, :width] = k
            self.values[li][:, :, :width] = v
            return k, v

        for li, layer in enumerate(self.body.layers):
            x = self._layer_step(li, layer, x, cos, sin, None, write)
        last = torch.tensor([len(s) - 1 for s in seqs] + [0] * (self.rows - len(seqs)), device=self.device)
        h = self.body.norm(x[self.row_idx, last])
        self.token.copy_(self.m.lm_head(h).float().argmax(-1))
        self.pos.copy_(last + 1)

    def _step(self) -> torch.Tensor:
        """Feed `token` at `pos`, return the arg-max next token; all state is updated in place."""
        x = self.body.embed_tokens(self.token[:, None])
        cos, sin = self.body.rotary_emb(x, self.pos[:, None])
        mask = (self.slots[None, :] <= self.pos[:, None])[:, None, None, :]  # each row sees its own past only

        def write(li, k, v):
            self.keys[li][self.row_idx, :, self.pos] = k[:, :, 0]
            self.values[li][self.row_idx, :, self.pos] = v[:, :, 0]
            return self.keys[li], self.values[li]

        for li, layer in enumerate(self.body.layers):
            x = self._layer_step(li, layer, x, cos, sin, mask, write)
        nxt = self.m.lm_head(self.body.norm(x[:, 0])).float().argmax(-1)
        self.token.copy_(nxt)
        self.pos.add_(1)
        return nxt

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        if self.device.type != "cuda":
            return self._step()
        if self.graph is None:
            # Two real steps warm the kernels up (on a side stream, as capture requires); the third is captured.
            if self.warm_steps < 2:
                self.warm_steps += 1
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    out = self._step().clone()
                torch.cuda.current_stream().wait_stream(s)
                return out
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._out = self._step()
        self.graph.replay()
        return self._out.clone()


def static_greedy(model, items: list[Encoded], *, device, pad_id: int, end_ids: tuple[int, ...], batch_size: int = 128,
                  extra_tokens: int = 16, prefix_ids: list[list[int]] | None = None, progress=None,
                  check_every: int = 16) -> list[list[int]]:
    """Greedy continuations, exactly as `greedy_generate` defines them (per-poem budget, prefixes fed, not decoded)."""
    prefix_ids = prefix_ids or [[] for _ in items]
    out: list[list[int] | None] = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt_ids) + len(items[i].target_ids))
    ends = torch.tensor(list(end_ids), device=device)
    with evaluating(model):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            seqs = [items[i].prompt_ids + prefix_ids[i] for i in idx]
            # Each poem may output its length plus extra_tokens, the proven prefix included.
            budgets = [len(items[i].target_ids) + extra_tokens - len(prefix_ids[i]) for i in idx]
            gen = _decode_batch(model, seqs, budgets, device, pad_id, ends, check_every)
            for r, i in enumerate(idx):
                out[i] = cut_at_end(prefix_ids[i] + gen[r][: budgets[r]], end_ids)
            if progress is not None:
                progress(len(idx))
    return out  # type: ignore[return-value]


def _decode_batch(
    model, seqs: list[list[int]], budgets: list[int], device, pad_id: int, ends: torch.Tensor, check_every: int
) -> list[list[int]]:
    # Finished rows keep stepping until the batch stops, so every row needs room for the longest budget.
    capacity = max(len(s) for s in seqs) + max(budgets) + 1
    dec = StaticDecoder(model, len(seqs), capacity, device)
    dec.prefill(seqs, pad_id)
    steps = [dec.token.clone()]
    finished = torch.isin(steps[0], ends)
    for t in range(1, max(budgets)):
        steps.append(dec.step())
        finished |= torch.isin(steps[-1], ends)
        if t % check_every == 0 and bool(finished.all()):  # one sync per check_every tokens
            break
    return torch.stack(steps, dim=1).tolist()
