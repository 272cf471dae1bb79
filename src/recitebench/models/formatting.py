"""How a (prompt, poem) pair becomes token ids; training and recitation share this one function.

The prompt and poem are tokenised separately and concatenated, so the ids a model sees at
recitation time are exactly the prompt ids it was trained on (no merge across the boundary).
Corpus text is tokenised as text: a literal "<|endoftext|>" inside a poem is characters, never the
end token (`split_special_tokens`); only a chat template's own markers are parsed as special tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Encoded:
    id: str
    prompt_ids: list[int]
    target_ids: list[int]  # the poem's tokens followed by the end token
    round_trip: bool = True  # the poem's tokens decode back to its exact text (False: the tokenizer normalised it)

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.target_ids)


def prompt_text(tok, prompt: str, template: str) -> str:
    if template == "chat":
        if not getattr(tok, "chat_template", None):
            from ..errors import RecitebenchError

            raise RecitebenchError(f"tokenizer {tok.name_or_path!r} has no chat template; use --template plain")
        return tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt + "\n"


def encode_many(tok, poems: list[dict], template: str) -> list[Encoded]:
    """Every poem of a dataset in two batched tokenizer calls (the Rust tokenizer runs them in parallel)."""
    if not poems:
        return []
    prompts = [prompt_text(tok, p["prompt"], template) for p in poems]
    if template == "chat":  # the template's markers must be parsed; the prompt text inside them is corpus text
        prompt_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tok(prompts, add_special_tokens=True, split_special_tokens=True)["input_ids"]
    targets = tok([p["target"] for p in poems], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    texts = tok.batch_decode(targets, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    out = []
    for p, ids, t, text in zip(poems, prompt_ids, targets, texts):
        ids = list(ids)
        if template != "chat" and ids and tok.eos_token_id is not None and ids[-1] == tok.eos_token_id and len(ids) > 1:
            ids = ids[:-1]  # some tokenizers append an end token; the prompt must stay open
        out.append(Encoded(p["id"], ids, list(t) + [tok.eos_token_id], round_trip=text == p["target"]))
    return out


def end_token_ids(tok, model=None) -> tuple[int, ...]:
    """Every token that ends a recitation: the trained end token first, then the model's generation_config ones."""
    ends = [tok.eos_token_id]
    cfg_ends = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for t in cfg_ends if isinstance(cfg_ends, (list, tuple)) else [cfg_ends]:
        if t is not None and t not in ends:
            ends.append(int(t))
    return tuple(ends)


def decode_prediction(tok, ids: list[int], end_ids: tuple[int, ...] | None = None) -> tuple[str, bool]:
    """(text before the first end token, whether an end token was produced)."""
    end_ids = end_ids or (tok.eos_token_id,)
    stop = next((k for k, t in enumerate(ids) if t in end_ids), None)
    text = tok.decode(ids[:stop] if stop is not None else ids, skip_special_tokens=False,
                      clean_up_tokenization_spaces=False)
    return text, stop is not None
