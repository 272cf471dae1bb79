"""The `--decoder` choice, resolved once to a callable: (poems, proven prefixes) -> greedy output ids.

Every decoder returns, per poem, its proven prefix followed by the greedy tokens, cut after the first
end token and at the poem's budget (its length plus `extra_tokens`): the same definition of greedy
recitation whichever runs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from tqdm.auto import tqdm

from ..errors import RecitebenchError
from ..models.certify import Scoring
from ..models.formatting import Encoded
from .config import ReciteConfig
from .draft import draft_decode
from .generate import greedy_generate, vllm_generate
from .static_decode import static_greedy
from .static_decode import supported as static_supported

DecodeFn = Callable[[list[Encoded], list[list[int]]], list[list[int]]]


@dataclass
class Decoder:
    name: str  # the decoder that finishes poems: static, generate or vllm (draft hands its leftovers to it)
    decode: DecodeFn
    by_draft: int = 0  # poems the draft decoder finished itself


def resolve_decoder(rcfg: ReciteConfig, model, *, model_dir: str, scoring: Scoring, clean: bool = True) -> Decoder:
    """The one place the decoder option is interpreted. `clean=False`: HF generate() with the model's own settings."""
    name = rcfg.decoder
    if not clean:
        return Decoder("generate", _hf_decoder(greedy_generate, rcfg, model, scoring, clean=False))
    if name in ("auto", "draft"):
        base = "static" if static_supported(model) else "generate"
    elif name == "static" and not static_supported(model):
        raise RecitebenchError(
            f"--decoder static supports Llama/Qwen2-family models without sliding windows, not "
            f"{type(model).__name__}; use --decoder generate"
        )
    else:
        base = name
    if base == "vllm":
        if not os.path.isdir(model_dir):
            raise RecitebenchError("--decoder vllm needs a model folder (a run's model/ or a local checkpoint)")

        def fn(items: list[Encoded], pre: list[list[int]]) -> list[list[int]]:
            return vllm_generate(model_dir, items, end_ids=scoring.end_ids, extra_tokens=rcfg.extra_tokens,
                                 prefix_ids=pre)

    else:
        fn = _hf_decoder(static_greedy if base == "static" else greedy_generate, rcfg, model, scoring)
    decoder = Decoder(base, fn)
    if name == "draft":
        decoder.decode = _with_draft(decoder, fn, rcfg, model, scoring)
    return decoder


def _hf_decoder(fn, rcfg: ReciteConfig, model, scoring: Scoring, **kw) -> DecodeFn:
    def decode(items: list[Encoded], prefixes: list[list[int]]) -> list[list[int]]:
        if not items:
            return []
        with tqdm(total=len(items), unit="poem", desc="decoding", disable=None, mininterval=1.0) as bar:
            return fn(
                model,
                items,
                device=scoring.device,
                pad_id=scoring.pad_id,
                end_ids=scoring.end_ids,
                batch_size=rcfg.gen_batch_size,
                extra_tokens=rcfg.extra_tokens,
                prefix_ids=prefixes,
                progress=bar.update,
                **kw,
            )

    return decode


def _with_draft(decoder: Decoder, finish: DecodeFn, rcfg: ReciteConfig, model, scoring: Scoring) -> DecodeFn:
    """Draft-verified decoding first; poems with a step within the margin go to `finish` from that step."""

    def decode(items: list[Encoded], prefixes: list[list[int]]) -> list[list[int]]:
        if not items:
            return []
        done, handoff = draft_decode(model, items, [len(p) for p in prefixes], scoring, rcfg.extra_tokens)
        decoder.by_draft += len(done)
        rest = sorted(handoff)
        out = dict(done)
        out.update(zip(rest, finish([items[k] for k in rest], [handoff[k] for k in rest])))
        return [out[k] for k in range(len(items))]

    return decode
