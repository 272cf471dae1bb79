"""Recitation by real greedy decoding: the reference the certified path must agree with."""

from __future__ import annotations

from transformers import GenerationConfig

from ..batching import cut_at_end, pad_rows
from ..errors import RecitebenchError
from ..models.formatting import Encoded
from ..models.forward import evaluating


def greedy_generate(model, items: list[Encoded], *, device, pad_id: int, end_ids: tuple[int, ...],
                    batch_size: int = 32, extra_tokens: int = 16, prefix_ids: list[list[int]] | None = None,
                    progress=None, clean: bool = True, max_new: int | None = None) -> list[list[int]]:
    """Greedy continuation token ids for each item (left-padded batches, sorted by length).

    Each poem's budget is its length (with its end token) plus `extra_tokens`, so a model that
    recites the poem and then fails to stop is seen failing to stop. `prefix_ids[i]`, output tokens
    greedy decoding is already known to produce (from a teacher-forced pass), are fed instead of decoded.
    `clean=False` decodes with the model's own generation_config instead of plain greedy settings.
    `max_new`: at most this many tokens after each prefix (a probe scoring the next m tokens needs no more; greedy
    decoding is causal, so they are the first m of an uncapped run).
    """
    prefix_ids = prefix_ids or [[] for _ in items]

    def own_budget(i: int) -> int:
        left = len(items[i].target_ids) - len(prefix_ids[i]) + extra_tokens
        return left if max_new is None else min(left, max_new)

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
            budget = max(own_budget(i) for i in idx)
            if clean:
                gen = _generate_greedy(model, input_ids.to(device), attn.to(device), budget, end_ids, pad_id)
            else:
                gen = model.generate(input_ids=input_ids.to(device), attention_mask=attn.to(device),
                                     max_new_tokens=budget)
            gen = gen[:, width:].tolist()
            for b, i in enumerate(idx):
                # Each poem gets exactly its own budget, whatever batch it landed in: outputs do not depend on batching.
                out[i] = cut_at_end(prefix_ids[i] + gen[b][: own_budget(i)], end_ids)
            if progress is not None:
                progress(len(idx))
    return out  # type: ignore[return-value]


def _generate_greedy(model, input_ids, attn, budget: int, end_ids: tuple[int, ...], pad_id: int):
    """generate() under exactly the greedy settings: generate() fills every unset field of the config it is given
    from the model's saved generation_config, so for the call the model's own is a blank one (and one config is
    passed, not a config plus keywords, which Transformers deprecates)."""
    saved = model.generation_config
    model.generation_config = GenerationConfig(pad_token_id=pad_id, eos_token_id=list(end_ids))
    try:
        return model.generate(input_ids=input_ids, attention_mask=attn,
                              generation_config=GenerationConfig(**greedy_settings(budget, end_ids, pad_id)))
    finally:
        model.generation_config = saved


# Settings a saved generation_config.json may hold that change what greedy decoding outputs.
GREEDY_NEUTRAL = {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                  "encoder_repetition_penalty": 1.0, "length_penalty": 1.0, "bad_words_ids": None,
                  "suppress_tokens": None, "begin_suppress_tokens": None, "forced_bos_token_id": None,
                  "forced_eos_token_id": None, "min_length": 0, "min_new_tokens": None, "sequence_bias": None,
                  "exponential_decay_length_penalty": None, "renormalize_logits": False,
                  "temperature": None, "top_k": None, "top_p": None, "typical_p": None, "epsilon_cutoff": None,
                  "eta_cutoff": None, "diversity_penalty": None}


SAMPLING_ONLY = ("temperature", "top_k", "top_p", "typical_p", "epsilon_cutoff", "eta_cutoff")


def greedy_settings(max_new_tokens: int, end_ids: tuple[int, ...], pad_id: int) -> dict:
    """Plain greedy decoding, whatever the model's saved generation_config says: the one definition."""
    return {**GREEDY_NEUTRAL, "max_new_tokens": max_new_tokens, "eos_token_id": list(end_ids), "pad_token_id": pad_id}


def generation_overrides(model) -> dict:
    """The model's own generation settings that plain greedy recitation overrides (recorded in results.json).

    A field the model leaves unset (None) overrides nothing; sampling parameters matter only with do_sample.
    """
    cfg = getattr(model, "generation_config", None)
    if cfg is None:
        return {}
    sampling = bool(getattr(cfg, "do_sample", False))
    out = {}
    for key, neutral in GREEDY_NEUTRAL.items():
        value = getattr(cfg, key, None)
        if value is not None and value != neutral and (sampling or key not in SAMPLING_ONLY):
            out[key] = value
    return out


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
        raise RecitebenchError("--decoder vllm needs vLLM installed (pip install 'recitebench[vllm]')") from None
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
