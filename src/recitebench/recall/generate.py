"""Recitation by real greedy decoding: the reference the certified path must agree with."""

from __future__ import annotations

import torch

from ..models.formatting import Encoded


@torch.no_grad()
def greedy_generate(model, items: list[Encoded], *, device, pad_id: int, eos_id: int, batch_size: int = 32,
                    extra_tokens: int = 16, prefix_ids: list[list[int]] | None = None, progress=None) -> list[list[int]]:
    """Greedy continuation token ids for each item (left-padded batches, sorted by length).

    Each poem's budget is its length (with its end token) plus `extra_tokens`, so a model that
    recites the poem and then fails to stop is seen failing to stop. `prefix_ids[i]`, output tokens
    greedy decoding is already known to produce (from a teacher-forced pass), are fed instead of decoded.
    """
    was_training = model.training
    model.eval()
    prefix_ids = prefix_ids or [[] for _ in items]
    out: list[list[int] | None] = [None] * len(items)
    order = sorted(range(len(items)), key=lambda i: (len(items[i].target_ids) - len(prefix_ids[i]),
                                                     len(items[i].prompt_ids) + len(prefix_ids[i])))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        prompts = [items[i].prompt_ids + prefix_ids[i] for i in idx]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for b, p in enumerate(prompts):
            input_ids[b, width - len(p):] = torch.tensor(p)
            attn[b, width - len(p):] = 1
        budget = max(len(items[i].target_ids) - len(prefix_ids[i]) for i in idx) + extra_tokens
        gen = model.generate(input_ids=input_ids.to(device), attention_mask=attn.to(device), do_sample=False,
                             num_beams=1, max_new_tokens=budget, eos_token_id=eos_id, pad_token_id=pad_id,
                             temperature=None, top_p=None, top_k=None)
        gen = gen[:, width:].tolist()
        for b, i in enumerate(idx):
            # Each poem gets exactly its own budget, whatever batch it landed in: outputs do not depend on batching.
            seq = (prefix_ids[i] + gen[b])[: len(items[i].target_ids) + extra_tokens]
            if eos_id in seq:
                seq = seq[: seq.index(eos_id) + 1]
            out[i] = seq
        if progress is not None:
            progress(len(idx))
    model.train(was_training)
    return out  # type: ignore[return-value]


def vllm_generate(model_dir: str, items: list[Encoded], *, eos_id: int, extra_tokens: int = 16) -> list[list[int]]:
    """The same greedy recitation through vLLM (optional dependency), for large-scale probing."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
    except ImportError:
        from ..errors import RecitebenchError

        raise RecitebenchError("--backend vllm needs vLLM installed (pip install 'recitebench[vllm]')") from None
    llm = LLM(model=model_dir, dtype="auto", seed=0)
    params = [SamplingParams(temperature=0.0, max_tokens=len(it.target_ids) + extra_tokens, stop_token_ids=[eos_id],
                             skip_special_tokens=False) for it in items]
    outs = llm.generate([TokensPrompt(prompt_token_ids=it.prompt_ids) for it in items], params)
    result = []
    for o in outs:
        ids = list(o.outputs[0].token_ids)
        if eos_id in ids:
            ids = ids[: ids.index(eos_id) + 1]
        result.append(ids)
    return result
