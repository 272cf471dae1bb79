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
    eval_every: int = 1000  # steps between two measurements of memorised bits (with annealing: between two saves)
    tolerance: float = 0.01  # converged: memorised bits grew by less than this share over the last quarter of steps
    warmup: int = 500
    schedule: str = "constant"  # constant, or inverse-sqrt: lr x sqrt(decay_steps / step) once step > decay_steps
    decay_steps: int = 1000  # inverse-sqrt: where the decay starts (it has no end, so the cap does not shape it)
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # per model
    precision: str = "fp32"  # fp32 (TF32 matmuls off) or bf16 (bf16 autocast compute, fp32 weights and optimizer)
    graphs: bool = True  # one CUDA graph per step on a GPU
    seed: int = 0  # the batches' sampling (initialisations follow each point's own seed)
    compile: bool = False  # torch.compile the forward and loss (fuses the elementwise passes), then graph the step
    # > 0: every measurement is of an annealed copy (its rate falls linearly to 0 over this many steps; training goes
    # on from before the anneal), taken at budgets 4/3 apart from min_steps * 3/4, so convergence compares the bits
    # the model reaches when annealed after T steps with those after 3T/4: what a longer budget would add
    anneal_steps: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {self.anneal_steps}")

    def next_measurement(self, step: int) -> int:
        """The step of the measurement after `step`: every eval_every steps, or with annealing at budgets 4/3 apart
        (rounded up to 100 steps, so the previous budget is at most 3/4 of the next)."""
        if not self.anneal_steps:
            return step + self.eval_every
        first = max(100, math.ceil(0.75 * self.min_steps / 100) * 100)
        if step < first:
            return first
        return math.ceil(step * 4 / 3 / 100) * 100


SCHEDULES = ("constant", "inverse-sqrt")


def lr_scale(t: torch.Tensor, s: StackedSettings) -> torch.Tensor:
    """The learning-rate multiplier at step t (1-based, a device tensor so a graph replays it): linear warmup, then
    constant or inverse square root. Inverse-sqrt decays without a horizon: its rate at 3/4 of any step count is
    only 15 % above the rate at that count, so a flat last quarter is the model's plateau, not a rate run to zero."""
    scale = (t / max(1, s.warmup)).clamp(max=1.0)
    if s.schedule == "inverse-sqrt":
        scale = scale * (s.decay_steps / t.clamp(min=s.decay_steps)).sqrt()
    return scale


@dataclass
class PointResult:
    point: Point
    curve: list[dict]  # per measurement: step, memorized_bits, nll_bits
    converged: bool
    converged_step: int | None
    memorized_bits: float  # at convergence (else at the last measurement: a lower bound; 0 once diverged)
    dataset_bits: float
    diverged_step: int | None = None  # its loss became infinite or NaN here (it left the stack)


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
    """Train the points of one architecture together until each one's memorised bits stop growing (or the cap).

    A point that converged leaves the stack (its result is final: it is reported at convergence), so the GPU's work
    goes to the points still learning. With `state_path`, the stack is saved at every measurement and a new trainer
    on the same points and settings continues from there (a run longer than one job's time limit)."""

    def __init__(self, arch: Arch, points: list[Point], data: dict[int, torch.Tensor], bos: int, bits_per_seq: float,
                 settings: StackedSettings, device, log=print, state_path=None):
        self.arch, self.points, self.s, self.device, self.log, self.bos = arch, points, settings, device, log, bos
        self.state_path = state_path
        torch.manual_seed(settings.seed)  # the device's generator too: same settings, same batches
        rows = max(p.n for p in points)
        self.data = torch.stack([data[p.seed][:rows] for p in points]).to(device)  # [K, rows, S]
        self.n = torch.tensor([p.n for p in points], device=device, dtype=torch.float32)
        self.bits_per_seq = bits_per_seq  # S log2(V): the true entropy of every sequence
        self.active = list(range(len(points)))  # the points still in the stack (indices into `points`)
        self.w = init_weights(arch, [p.seed for p in points], device)
        self.opt = AdamW(list(self.w.values()), torch.tensor([p.lr for p in points], device=device), settings)
        self._attach_grads()
        self.dtype = torch.bfloat16 if settings.precision == "bf16" else None
        self.mult = torch.ones((), device=device)  # the anneal's factor on every rate, read by the captured step
        self.graph = None
        self.nll = torch.compile(sequence_nll, dynamic=False) if settings.compile else sequence_nll

    def _attach_grads(self) -> None:
        self.params = list(self.w.values())
        self.opt.params = self.params
        for p in self.params:  # gradients live outside the graph and are zeroed inside it
            p.grad = torch.zeros_like(p)
        self.karange = torch.arange(len(self.active), device=self.device)[:, None]
        self.rows = torch.tensor(self.active, device=self.device)

    def _keep(self, rows: list[int]) -> None:
        """Shrink the stack to `rows` (weights, optimizer moments, rates, data); the graph is captured again."""
        idx = torch.tensor(rows, device=self.device)
        self.w = {n: t.detach()[idx].clone().requires_grad_() for n, t in self.w.items()}
        self.opt.m = [m[idx].clone() for m in self.opt.m]
        self.opt.v = [v[idx].clone() for v in self.opt.v]
        self.opt.lrs, self.data, self.n = self.opt.lrs[idx], self.data[idx], self.n[idx]
        self.active = [self.active[r] for r in rows]
        self._attach_grads()
        self.graph = None

    def _step(self) -> torch.Tensor:
        torch._foreach_zero_([p.grad for p in self.params])
        # every point draws its batch from its own row of one draw over all points, so a point's batches do not
        # depend on which others are still in the stack
        draw = torch.rand(len(self.points), self.s.batch, device=self.device)[self.rows]
        idx = (draw * self.n[:, None]).long()  # with replacement, on the device
        nll = self.nll(self.arch, self.w, self.data[self.karange, idx], self.bos, self.dtype)  # [K, B]
        loss = nll.mean(1) / self.data.shape[2]
        loss.sum().backward()  # copies share no weight: each one's gradient is its own loss's
        self.opt.step(lr_scale(self.opt.t + 1, self.s) * self.mult)
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
        mem = torch.zeros(len(self.active), device=self.device, dtype=torch.float64)
        total = torch.zeros_like(mem)
        for r0 in range(0, self.data.shape[1], chunk):
            seqs = self.data[:, r0 : r0 + chunk]
            bits = sequence_nll(self.arch, self.w, seqs, self.bos, self.dtype).double() / LN2
            mask = (torch.arange(r0, r0 + seqs.shape[1], device=self.device)[None, :] < self.n[:, None]).double()
            mem += ((self.bits_per_seq - bits).clamp(min=0) * mask).sum(1)
            total += (bits * mask).sum(1)
        return mem, total

    def annealed_measure(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`measure` of a copy of the stack annealed over anneal_steps (rate falling linearly to 0); the stack is
        then put back as it was before the anneal (in place, so the captured step stays valid)."""
        saved = [t.detach().clone() for t in (*self.params, *self.opt.m, *self.opt.v, self.opt.t)]
        rng = self._rng_state()  # the trunk's batches after the anneal are the ones it would have drawn without it
        a = self.s.anneal_steps
        for i in range(a):
            self.mult.fill_(1.0 - i / a)
            self.step()
        out = self.measure()
        with torch.no_grad():
            for t, v in zip((*self.params, *self.opt.m, *self.opt.v, self.opt.t), saved):
                t.copy_(v)
        self.mult.fill_(1.0)
        self._set_rng_state(rng)
        return out

    def _rng_state(self) -> tuple:
        return torch.get_rng_state(), torch.cuda.get_rng_state() if self.device.type == "cuda" else None

    def _set_rng_state(self, state: tuple) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1])

    def _fingerprint(self) -> str:
        """What a saved state must match to be continued; the cap is left out, so a cap can be raised."""
        from dataclasses import replace

        return repr((self.arch, self.points, replace(self.s, max_steps=0), self.bits_per_seq,
                     tuple(self.data.shape[1:])))

    def save(self, progress: dict) -> None:
        """The whole stack and its progress, written whole (a kill mid-write leaves the previous state)."""
        import os

        if self.state_path is None:
            return
        state = {"fingerprint": self._fingerprint(), "active": self.active, "progress": progress,
                 "w": {n: t.detach().cpu() for n, t in self.w.items()}, "m": [m.cpu() for m in self.opt.m],
                 "v": [v.cpu() for v in self.opt.v], "t": self.opt.t.cpu(), "rng": self._rng_state()[0],
                 "cuda_rng": self._rng_state()[1]}
        tmp = f"{self.state_path}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)

    def saved_state_fits(self) -> bool:
        """Whether the state at `state_path` was saved for these points and settings (`load` continues it)."""
        state = torch.load(self.state_path, weights_only=False, map_location="cpu")
        return state["fingerprint"] == self._fingerprint()

    def load(self) -> dict | None:
        """Continue from a saved state of the same points and settings; its progress, or None to start afresh."""
        import os

        if self.state_path is None or not os.path.isfile(self.state_path):
            return None
        state = torch.load(self.state_path, weights_only=False)
        if state["fingerprint"] != self._fingerprint():
            raise ValueError(f"{self.state_path}: saved for other points or settings; remove it to start again")
        self._keep([self.active.index(j) for j in state["active"]])
        self.w = {n: t.to(self.device).requires_grad_() for n, t in state["w"].items()}
        self.opt.m = [m.to(self.device) for m in state["m"]]
        self.opt.v = [v.to(self.device) for v in state["v"]]
        self.opt.t = state["t"].to(self.device)
        self._attach_grads()
        self._set_rng_state((state["rng"], state["cuda_rng"]))
        return state["progress"]

    def _record(self, progress: dict, started: float) -> list[int]:
        """Measure the stack, append to each active point's curve, and return the rows that stay in the stack: not
        converged and not diverged (a non-finite loss; such a rate stores nothing, so it counts 0 bits)."""
        import time

        step, curves, done, diverged = progress["step"], progress["curves"], progress["done"], progress["diverged"]
        mem, total = (x.tolist() for x in self.measure())
        if self.s.anneal_steps:  # the trunk's own bits stay in the curve beside the annealed copy's
            trunk, (mem, total) = mem, (x.tolist() for x in self.annealed_measure())
        for r, j in enumerate(self.active):
            if not math.isfinite(total[r]):
                diverged[j] = step
                curves[j].append({"step": step, "memorized_bits": 0.0, "nll_bits": None})
                continue
            curves[j].append({"step": step, "memorized_bits": round(mem[r], 3), "nll_bits": round(total[r], 3)})
            if self.s.anneal_steps:
                curves[j][-1]["trunk_memorized_bits"] = round(trunk[r], 3)
            if converged(curves[j], self.s):
                done[j] = step
        keep = [r for r, j in enumerate(self.active) if done[j] is None and diverged[j] is None]
        marks = ["*" if done[j] else "!" if diverged[j] else "" for j in range(len(self.points))]
        self.log(f"step {step}: memorised bits " + ", ".join(
            f"{c[-1]['memorized_bits']:,.0f}{m}" for c, m in zip(curves, marks))
            + f" (* converged, ! diverged; {len(keep)} still in the stack; {time.perf_counter() - started:.0f} s)")
        return keep

    def _measure_and_shrink(self, progress: dict, started: float) -> None:
        keep = self._record(progress, started)
        if len(keep) < len(self.active) and keep:
            self._keep(keep)
        elif not keep:
            self.active = []

    def run(self) -> tuple[list[PointResult], dict]:
        """Train until every model converged or the cap; (per point results, throughput)."""
        import time

        s, t0 = self.s, time.perf_counter()
        k = len(self.points)
        progress = self.load() or {"step": 0, "curves": [[] for _ in range(k)], "done": [None] * k,
                                   "diverged": [None] * k, "train_s": 0.0, "wall_s": 0.0, "tokens": 0}
        if progress["step"]:
            self.log(f"resumed at step {progress['step']} ({len(self.active)} points still in the stack)")
        wall0 = progress["wall_s"]  # over every invocation that trained this stack
        while progress["step"] < s.max_steps and self.active:
            target = progress.get("next", 0)  # the next measurement; the state is saved every eval_every steps too
            if target <= progress["step"]:
                target = s.next_measurement(progress["step"])
            target = progress["next"] = min(target, s.max_steps)
            t1, n = time.perf_counter(), min(s.eval_every, target - progress["step"])
            for _ in range(n):
                self.step()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            progress["train_s"] += time.perf_counter() - t1
            progress["tokens"] += len(self.active) * s.batch * self.data.shape[2] * n
            progress["step"] += n
            if progress["step"] >= target:
                self._measure_and_shrink(progress, t0)
            progress["wall_s"] = wall0 + time.perf_counter() - t0
            self.save(progress)
        results = []
        for j, p in enumerate(self.points):
            curve, at = progress["curves"][j], progress["done"][j]
            last = next(c for c in curve if c["step"] == at) if at else curve[-1]
            results.append(PointResult(p, curve, at is not None, at, last["memorized_bits"], p.n * self.bits_per_seq,
                                       progress["diverged"][j]))
        train_s, tokens = progress["train_s"], progress["tokens"]
        return results, {"steps": progress["step"], "train_seconds": round(train_s, 3), "models": len(self.points),
                         "wall_seconds": round(progress["wall_s"], 3),
                         "tokens": tokens, "tokens_per_s": tokens / train_s if train_s else None}


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
