"""The layer-wise probe (logit lens): at which depth does a recitation become decodable?

The paper's Universal Approximation view makes a memory a function the network fits from input to output; the
logit lens (nostalgebraist 2020) reads that function part-way: the hidden state after layer l, put through the
model's own final norm and output head, gives a distribution over the next token. Per layer, for each poem, this
module scores the poem's tokens (and its end token) teacher-forced after the prompt: bits per poem (-log2 p) and the
share of tokens that are the lens's top-1. Layer 0 is the embedding output; the last layer is the model itself (its
hidden state is already normed, so the lens there is the model's own logits: tests/test_dynamics.py checks it
against the recitation's bits). A held-out set scored beside the members shows what is memory rather than language.
"""

from __future__ import annotations

import math
import time

import torch

from ..batching import pad_rows
from ..config import to_dict
from ..data.frozen import load_frozen
from ..errors import RecitebenchError
from ..io import write_json
from ..lock import writing
from ..models.config import ModelConfig
from ..models.formatting import Encoded, encode_many
from ..models.forward import evaluating
from ..provenance import provenance
from .config import LensConfig
from .controls import check_unseen
from .extract import probe_setup
from .recite import prepare

FORMAT = "recitebench-lens/1"
NORMS = ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.final_layernorm")


def final_norm(model) -> torch.nn.Module:
    """The norm the model applies before its head (Llama/Qwen2, BLOOM/GPT-2, GPT-NeoX, Phi)."""
    for path in NORMS:
        mod = model
        for part in path.split("."):
            mod = getattr(mod, part, None)
        if isinstance(mod, torch.nn.Module):
            return mod
    raise RecitebenchError(f"the logit lens needs the model's final norm; {type(model).__name__} has none of "
                           f"{', '.join(NORMS)}")


def lens(lcfg: LensConfig, mcfg: ModelConfig | None = None, *, log=print) -> dict:
    """Per layer: bits per poem and top-1 share of the members (and of a held-out set); OUT/lens.json."""
    rcfg, where, out = probe_setup(lcfg, mcfg, "lens")  # RUN/lens (RunDir.lens)
    with writing(out, "lens folder"):
        t0 = time.perf_counter()
        job = prepare(rcfg, where)
        sets = {"members": job.items}
        if lcfg.heldout:
            held = load_frozen(lcfg.heldout)
            check_unseen(held.poems, job.data, "the probed set (held-out poems must be non-members)")
            sets["heldout"] = encode_many(job.tok, held.poems[: lcfg.limit] if lcfg.limit else held.poems,
                                          job.mcfg.template)
        result = {"kind": FORMAT, "config": to_dict(lcfg), "model": job.info,
                  "dataset": {"path": str(job.data.path), "poems_sha256": job.data.sha256}}
        for name, items in sets.items():
            result[name] = layer_scores(job.model, items, job.scoring.pad_id, job.device, lcfg.batch_size)
            last = result[name][-1]
            log(f"{name}: {len(items)} poems; last layer {last['bits_per_poem']:.1f} bits per poem, top-1 "
                f"{last['top1']:.1%}")
        result.update({"seconds": round(time.perf_counter() - t0, 3), **provenance()})
        write_json(out / "lens.json", result)
    log(f"wrote {out}/lens.json")
    return result


def layer_scores(model, items: list[Encoded], pad_id: int, device, batch_size: int) -> list[dict]:
    """[{layer, bits_per_poem, top1, per_poem_bits}] for layer 0 (embeddings) .. L (the model's output)."""
    norm, head = final_norm(model), model.get_output_embeddings()
    bits: list[list[float]] = []  # [layer][poem]
    hits: list[list[float]] = []
    with evaluating(model):
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            ids = pad_rows([it.prompt_ids + it.target_ids[:-1] for it in batch], pad_id).to(device)
            mask = pad_rows([[1] * (len(it.prompt_ids) + len(it.target_ids) - 1) for it in batch], 0).to(device)
            states = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            for layer, h in enumerate(states):
                b, t = _poem_scores(h, batch, norm if layer < len(states) - 1 else None, head)
                if len(bits) <= layer:
                    bits.append([])
                    hits.append([])
                bits[layer] += b
                hits[layer] += t
    return [{"layer": layer, "bits_per_poem": sum(b) / len(b), "top1": sum(t) / len(t),
             "per_poem_bits": [round(x, 4) for x in b]} for layer, (b, t) in enumerate(zip(bits, hits))]


def _poem_scores(h: torch.Tensor, batch: list[Encoded], norm, head) -> tuple[list[float], list[float]]:
    """Per poem of the batch: bits of its tokens and the top-1 share, under the lens at this layer's states."""
    bits, top1 = [], []
    for b, it in enumerate(batch):
        p, n = len(it.prompt_ids), len(it.target_ids)
        x = h[b, p - 1 : p - 1 + n]
        logits = head(norm(x) if norm is not None else x).float()
        logp = torch.log_softmax(logits, dim=-1)
        tgt = torch.tensor(it.target_ids, device=logits.device)
        bits.append(float(-logp.gather(1, tgt[:, None]).sum()) / math.log(2))
        top1.append(float((logits.argmax(-1) == tgt).float().mean()))
    return bits, top1
