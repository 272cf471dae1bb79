"""K same-shape Qwen2-architecture models trained at once, in one graph: the capacity sweep's engine.

A capacity point is a tiny model (0.1M-1M parameters) trained for thousands of exposures of each sequence; one such
model alone leaves an H200 idle between kernel launches. Here the weights of K models (the sweep's sizes x seeds x
learning rates of one architecture) are stacked along a leading dimension, so every matrix product is one batched
product over the K models, each with its own data, initialisation and learning rate, and a whole step (sampling,
forward, backward, per-model clipping, AdamW) is one CUDA-graph replay. Copy k computes exactly what
`Qwen2ForCausalLM` computes with copy k's weights (tests/test_capacity.py checks the logits), so its bits are a
Qwen2 model's bits.

Data are uniformly random token sequences (`data build --preset random-tokens`); copy k trains on the first n_k
sequences of its seed's set, sampled with replacement on the device. A sequence is scored in full: the input is
<bos> + its first S-1 tokens and the targets are its S tokens, so its code length under the model is compared with
its true entropy S*log2(V).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Arch:
    """The Qwen2 architecture fields the engine needs (read from a config.json)."""

    vocab: int  # embedding rows: the symbols and the specials of the symbol tokenizer
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    rope_theta: float = 10000.0
    eps: float = 1e-6
    tie: bool = True

    @classmethod
    def from_config(cls, cfg: dict, vocab: int) -> Arch:
        if cfg.get("model_type") not in ("qwen2", "llama"):
            raise ValueError(f"the stacked engine builds Qwen2/Llama-architecture models, not "
                             f"{cfg.get('model_type')!r}")
        heads = cfg["num_attention_heads"]
        return cls(vocab, cfg["hidden_size"], cfg["num_hidden_layers"], heads, cfg.get("num_key_value_heads", heads),
                   cfg["intermediate_size"], float(cfg.get("rope_theta", 10000.0)),
                   float(cfg.get("rms_norm_eps", 1e-6)), bool(cfg.get("tie_word_embeddings", True)))

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name (Transformers' Qwen2 naming) -> shape of one copy."""
        d, hd = self.hidden, self.head_dim
        out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (self.vocab, d)}
        for i in range(self.layers):
            p = f"model.layers.{i}."
            out.update({
                p + "input_layernorm.weight": (d,),
                p + "self_attn.q_proj.weight": (self.heads * hd, d), p + "self_attn.q_proj.bias": (self.heads * hd,),
                p + "self_attn.k_proj.weight": (self.kv_heads * hd, d),
                p + "self_attn.k_proj.bias": (self.kv_heads * hd,),
                p + "self_attn.v_proj.weight": (self.kv_heads * hd, d),
                p + "self_attn.v_proj.bias": (self.kv_heads * hd,),
                p + "self_attn.o_proj.weight": (d, self.heads * hd),
                p + "post_attention_layernorm.weight": (d,),
                p + "mlp.gate_proj.weight": (self.ffn, d), p + "mlp.up_proj.weight": (self.ffn, d),
                p + "mlp.down_proj.weight": (d, self.ffn),
            })
        out["model.norm.weight"] = (d,)
        if not self.tie:
            out["lm_head.weight"] = (self.vocab, d)
        return out

    def parameters(self) -> int:
        return sum(math.prod(s) for s in self.shapes().values())


def init_weights(arch: Arch, seeds: list[int], device, init_std: float = 0.02) -> dict[str, torch.Tensor]:
    """Stacked fp32 weights [K, ...]: Qwen2's initialisation (normal(0, 0.02) matrices, zero biases, unit norms),
    copy k drawn from its own seed on the CPU (the same numbers on every device)."""
    out = {}
    for name, shape in arch.shapes().items():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            out[name] = torch.ones((len(seeds), *shape))
        elif name.endswith(".bias"):
            out[name] = torch.zeros((len(seeds), *shape))
        else:
            out[name] = torch.empty((len(seeds), *shape))
    for k, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(seed)
        for t in out.values():
            if t.dim() > 2:  # matrices (and the embedding)
                t[k].normal_(0.0, init_std, generator=g)
    return {n: t.to(device).requires_grad_() for n, t in out.items()}


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen2RMSNorm over the last dim; w [K, d] broadcast over the copy's rows."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return w[:, None, None, :].to(dtype) * x.to(dtype)


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """x [K, B, T, in] @ w[K, out, in]^T (+ b [K, out]) as one batched product."""
    k, bsz, t, n = x.shape
    y = torch.bmm(x.reshape(k, bsz * t, n), w.transpose(1, 2).to(x.dtype)).reshape(k, bsz, t, -1)
    return y if b is None else y + b[:, None, None, :].to(y.dtype)


def _rope(t_len: int, head_dim: int, theta: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.int64).float() / head_dim))
    freqs = torch.arange(t_len, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


def hidden_states(arch: Arch, w: dict[str, torch.Tensor], ids: torch.Tensor, dtype=None) -> torch.Tensor:
    """Final hidden states [K, B, T, d] of every copy on its own ids [K, B, T] (causal attention, no padding)."""
    k, bsz, t = ids.shape
    emb = w["model.embed_tokens.weight"]
    x = emb[torch.arange(k, device=ids.device)[:, None, None], ids]
    if dtype is not None:
        x = x.to(dtype)
    cos, sin = _rope(t, arch.head_dim, arch.rope_theta, ids.device)
    hd, rep = arch.head_dim, arch.heads // arch.kv_heads
    for i in range(arch.layers):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], arch.eps)
        q = _linear(h, w[p + "self_attn.q_proj.weight"], w[p + "self_attn.q_proj.bias"]).view(k, bsz, t, -1, hd)
        kk = _linear(h, w[p + "self_attn.k_proj.weight"], w[p + "self_attn.k_proj.bias"]).view(k, bsz, t, -1, hd)
        v = _linear(h, w[p + "self_attn.v_proj.weight"], w[p + "self_attn.v_proj.bias"]).view(k, bsz, t, -1, hd)
        q, kk = _rotate(q, cos[:, None, :], sin[:, None, :]), _rotate(kk, cos[:, None, :], sin[:, None, :])
        q, kk, v = (z.reshape(k * bsz, t, -1, hd).transpose(1, 2) for z in (q, kk, v))
        if rep > 1:
            kk, v = kk.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        a = F.scaled_dot_product_attention(q, kk, v, is_causal=True)
        a = a.transpose(1, 2).reshape(k, bsz, t, -1)
        x = x + _linear(a, w[p + "self_attn.o_proj.weight"])
        h = _rms(x, w[p + "post_attention_layernorm.weight"], arch.eps)
        x = x + _linear(F.silu(_linear(h, w[p + "mlp.gate_proj.weight"])) * _linear(h, w[p + "mlp.up_proj.weight"]),
                        w[p + "mlp.down_proj.weight"])
    return _rms(x, w["model.norm.weight"], arch.eps)


def logits(arch: Arch, w: dict[str, torch.Tensor], ids: torch.Tensor, dtype=None) -> torch.Tensor:
    head = w["model.embed_tokens.weight"] if arch.tie else w["lm_head.weight"]
    return _linear(hidden_states(arch, w, ids, dtype), head)


def sequence_nll(arch: Arch, w: dict[str, torch.Tensor], seqs: torch.Tensor, bos: int, dtype=None) -> torch.Tensor:
    """Summed cross-entropy (nats, fp32) of each sequence's S tokens after <bos>: [K, B]."""
    ids = torch.cat([torch.full_like(seqs[..., :1], bos), seqs[..., :-1]], dim=-1)
    lg = logits(arch, w, ids, dtype).float()
    return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), seqs.reshape(-1), reduction="none").view(seqs.shape).sum(-1)


@dataclass(frozen=True)
class Point:
    """One model of the stack: the first n sequences of seed's set, at learning rate lr, initialised from seed."""

    n: int
    seed: int
    lr: float


@dataclass
class StackedSettings:
    batch: int = 256  # sequences per step per model
    max_steps: int = 40000  # the cap: a model not converged by then is reported as not converged
    min_steps: int = 2000  # no convergence is declared before this
    eval_every: int = 1000  # steps between two measurements of memorised bits
    tolerance: float = 0.01  # converged: memorised bits grew by less than this share over the last quarter of steps
    warmup: int = 500
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # per model
    precision: str = "fp32"  # fp32 (TF32 matmuls off) or bf16 (bf16 autocast compute, fp32 weights and optimizer)
    graphs: bool = True  # one CUDA graph per step on a GPU
    seed: int = 0  # the batches' sampling (initialisations follow each point's own seed)
    compile: bool = False  # torch.compile the forward and loss (fuses the elementwise passes), then graph the step


@dataclass
class PointResult:
    point: Point
    curve: list[dict]  # per measurement: step, memorized_bits, nll_bits
    converged: bool
    converged_step: int | None
    memorized_bits: float  # at convergence (else at the last measurement: a lower bound)
    dataset_bits: float


class AdamW:
    """AdamW over stacked weights with one learning rate per model (copies never mix: every operation is
    elementwise, and clipping is per model)."""

    def __init__(self, params: list[torch.Tensor], lrs: torch.Tensor, s: StackedSettings):
        self.params, self.s = params, s
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.lrs = lrs  # [K] on the device
        self.t = torch.zeros((), device=lrs.device)  # the step count lives on the device: graphs replay it

    def step(self, scale: torch.Tensor) -> None:
        """One update; `scale` [K] multiplies every model's learning rate (warmup)."""
        b1, b2 = self.s.betas
        self.t += 1
        grads = [p.grad for p in self.params]
        if self.s.grad_clip > 0:
            sq = sum(g.pow(2).flatten(1).sum(1) for g in grads)
            clip = (self.s.grad_clip / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            grads = [g * clip.view(-1, *[1] * (g.dim() - 1)) for g in grads]
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        lr = self.lrs * scale
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                view = (-1, *[1] * (p.dim() - 1))
                upd = (m / bc1) / ((v / bc2).sqrt() + 1e-8)
                if self.s.weight_decay:
                    upd = upd + self.s.weight_decay * p
                p.sub_(lr.view(view) * upd)


class StackedTrainer:
    """Train the points of one architecture together until each one's memorised bits stop growing (or the cap)."""

    def __init__(self, arch: Arch, points: list[Point], data: dict[int, torch.Tensor], bos: int, bits_per_seq: float,
                 settings: StackedSettings, device, log=print):
        self.arch, self.points, self.s, self.device, self.log, self.bos = arch, points, settings, device, log, bos
        torch.manual_seed(settings.seed)  # the device's generator too: same settings, same batches
        k = len(points)
        rows = max(p.n for p in points)
        self.data = torch.stack([data[p.seed][:rows] for p in points]).to(device)  # [K, rows, S]
        self.n = torch.tensor([p.n for p in points], device=device, dtype=torch.float32)
        self.bits_per_seq = bits_per_seq  # S log2(V): the true entropy of every sequence
        self.w = init_weights(arch, [p.seed for p in points], device)
        self.params = list(self.w.values())
        for p in self.params:  # gradients live outside the graph and are zeroed inside it
            p.grad = torch.zeros_like(p)
        self.opt = AdamW(self.params, torch.tensor([p.lr for p in points], device=device), settings)
        self.dtype = torch.bfloat16 if settings.precision == "bf16" else None
        self.karange = torch.arange(k, device=device)[:, None]
        self.graph = None
        self.nll = torch.compile(sequence_nll, dynamic=False) if settings.compile else sequence_nll

    def _step(self) -> torch.Tensor:
        torch._foreach_zero_([p.grad for p in self.params])
        k, b = len(self.points), self.s.batch
        idx = (torch.rand(k, b, device=self.device) * self.n[:, None]).long()  # with replacement, on the device
        nll = self.nll(self.arch, self.w, self.data[self.karange, idx], self.bos, self.dtype)  # [K, B]
        loss = nll.mean(1) / self.data.shape[2]
        loss.sum().backward()  # copies share no weight: each one's gradient is its own loss's
        scale = ((self.opt.t + 1) / max(1, self.s.warmup)).clamp(max=1.0)
        self.opt.step(scale)
        return loss.detach()

    def step(self) -> None:
        if self.device.type != "cuda" or not self.s.graphs:
            self._step()
            return
        if self.graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm the kernels up outside the capture
                for _ in range(3):
                    self._step()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._step()
        self.graph.replay()

    @torch.no_grad()
    def measure(self, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Per model: memorised bits sum_i max(0, S log2 V - bits_i) over its n sequences, and its bits [K]."""
        mem = torch.zeros(len(self.points), device=self.device, dtype=torch.float64)
        total = torch.zeros_like(mem)
        for r0 in range(0, self.data.shape[1], chunk):
            seqs = self.data[:, r0 : r0 + chunk]
            bits = sequence_nll(self.arch, self.w, seqs, self.bos, self.dtype).double() / LN2
            mask = (torch.arange(r0, r0 + seqs.shape[1], device=self.device)[None, :] < self.n[:, None]).double()
            mem += ((self.bits_per_seq - bits).clamp(min=0) * mask).sum(1)
            total += (bits * mask).sum(1)
        return mem, total

    def run(self) -> tuple[list[PointResult], dict]:
        """Train until every model converged or the cap; (per point results, throughput)."""
        import time

        k, s = len(self.points), self.s
        curves: list[list[dict]] = [[] for _ in range(k)]
        done: list[int | None] = [None] * k
        step, t0 = 0, time.perf_counter()
        train_s = 0.0
        while step < s.max_steps and not all(d is not None for d in done):
            t1 = time.perf_counter()
            for _ in range(min(s.eval_every, s.max_steps - step)):
                self.step()
                step += 1
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            train_s += time.perf_counter() - t1
            mem, total = (x.tolist() for x in self.measure())
            for j in range(k):
                curves[j].append({"step": step, "memorized_bits": round(mem[j], 3), "nll_bits": round(total[j], 3)})
                if done[j] is None and converged(curves[j], s):
                    done[j] = step
            self.log(f"step {step}: memorised bits " + ", ".join(f"{m:,.0f}" + ("*" if d else "")
                                                                for m, d in zip(mem, done))
                     + f" (* converged; {time.perf_counter() - t0:.0f} s)")
        tokens = k * s.batch * self.data.shape[2] * step
        results = []
        for j, p in enumerate(self.points):
            at = next(c for c in curves[j] if c["step"] == done[j]) if done[j] else curves[j][-1]
            results.append(PointResult(p, curves[j], done[j] is not None, done[j], at["memorized_bits"],
                                       p.n * self.bits_per_seq))
        return results, {"steps": step, "train_seconds": round(train_s, 3), "models": k,
                         "tokens_per_s": tokens / train_s if train_s else None}


def converged(curve: list[dict], s: StackedSettings) -> bool:
    """Memorised bits changed by less than `tolerance` of their value over the last quarter of the steps so far (a
    drop is no convergence: a loss spike is not a plateau)."""
    now = curve[-1]
    if now["step"] < s.min_steps:
        return False
    then = [c for c in curve if c["step"] <= 0.75 * now["step"]]
    if not then:
        return False
    return abs(now["memorized_bits"] - then[-1]["memorized_bits"]) < s.tolerance * max(now["memorized_bits"], 1.0)
