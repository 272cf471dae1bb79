"""Recitation by real greedy decoding: the reference the certified path must agree with."""

from __future__ import annotations

from ..batching import cut_at_end, pad_rows
from ..errors import RecitebenchError
from ..models.formatting import Encoded
from ..models.forward import evaluating


def greedy_generate(model, items: list[Encoded], *, device, pad_id: int, end_ids: tuple[int, ...],
                    batch_size: int = 32, extra_tokens: int = 16, prefix_ids: list[list[int]] | None = None,
                    progress=None) -> list[list[int]]:
    """Greedy continuation token ids for each item (left-padded batches, sorted by length).

    Each poem's budget is its length (with its end token) plus `extra_tokens`, so a model that
    recites the poem and then fails to stop is seen failing to stop. `prefix_ids[i]`, output tokens
    greedy decoding is already known to produce (from a teacher-forced pass), are fed instead of decoded.
    """
    prefix_ids = prefix_ids or [[] for _ in items]
    out: list[list[int] | None] = [None] * len(items)
    order = sorted(
        range(len(items)),
        key=lambda i: (len(items[i].target_ids) - len(prefix_ids[i]), len(items[i].prompt_ids) + len(prefix_ids[i])),
    )
    with evaluating(model):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            prompts = [items[i].prompt_ids + prefix_ids[i] for i in idx]
            input_ids = pad_rows(prompts, pad_id, left=True)
            attn = pad_rows([[1] * len(p) for p in prompts], 0, left=True)
            width = input_ids.shape[1]
            budget = max(len(items[i].target_ids) - len(prefix_ids[i]) for i in idx) + extra_tokens
            gen = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attn.to(device),
                do_sample=False,
                num_beams=1,
                max_new_tokens=budget,
                eos_token_id=list(end_ids),
                pad_token_id=pad_id,
                temperature=None,
                top_p=None,
                top_k=None,
            )
            gen = gen[:, width:].tolist()
            for b, i in enumerate(idx):
                # Each poem gets exactly its own budget, whatever batch it landed in: outputs do not depend on batching.
                out[i] = cut_at_end((prefix_ids[i] + gen[b])[: len(items[i].target_ids) + extra_tokens], end_ids)
            if progress is not None:
                progress(len(idx))
    return out  # type: ignore[return-value]


def vllm_generate(
    model_dir: str,
    items: list[Encoded],
    *,
    end_ids: tuple[int, ...],
    extra_tokens: int = 16,
    prefix_ids: list[list[int]] | None = None,
) -> list[list[int]]:
    """The same greedy recitation through vLLM (optional dependency), for large-scale probing."""
    try:
        from vllm import LLM, SamplingParams  # optional dependency
        from vllm.inputs import TokensPrompt
    except ImportError:
        raise RecitebenchError("--backend vllm needs vLLM installed (pip install 'recitebench[vllm]')") from None
    prefix_ids = prefix_ids or [[] for _ in items]
    llm = LLM(model=model_dir, dtype="auto", seed=0)
    params = [
        SamplingParams(
            temperature=0.0,
            max_tokens=len(it.target_ids) + extra_tokens - len(pre),
            stop_token_ids=list(end_ids),
            skip_special_tokens=False,
        )
        for it, pre in zip(items, prefix_ids)
    ]
    outs = llm.generate(
        [TokensPrompt(prompt_token_ids=it.prompt_ids + pre) for it, pre in zip(items, prefix_ids)], params
    )
    return [cut_at_end(pre + list(o.outputs[0].token_ids), end_ids) for o, pre in zip(outs, prefix_ids)]
