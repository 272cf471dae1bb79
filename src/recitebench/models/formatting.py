"""How a (prompt, poem) pair becomes token ids; training and recitation share this one function.

The prompt and poem are tokenised separately and concatenated, so the ids a model sees at
recitation time are exactly the prompt ids it was trained on (no merge across the boundary).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Encoded:
    id: str
    prompt_ids: list[int]
    target_ids: list[int]  # the poem's tokens followed by the end token

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
    """`encode` for a whole dataset in two batched tokenizer calls (the Rust tokenizer runs them in parallel)."""
    if not poems:
        return []
    prompts = [prompt_text(tok, p["prompt"], template) for p in poems]
    prompt_ids = tok(prompts, add_special_tokens=template != "chat")["input_ids"]
    targets = tok([p["target"] for p in poems], add_special_tokens=False)["input_ids"]
    out = []
    for p, ids, t in zip(poems, prompt_ids, targets):
        ids = list(ids)
        if template != "chat" and ids and tok.eos_token_id is not None and ids[-1] == tok.eos_token_id and len(ids) > 1:
            ids = ids[:-1]  # some tokenizers append an end token; the prompt must stay open
        out.append(Encoded(p["id"], ids, list(t) + [tok.eos_token_id]))
    return out


def decode_prediction(tok, ids: list[int]) -> tuple[str, bool]:
    """(text before the first end token, whether an end token was produced)."""
    eos = tok.eos_token_id
    stopped = eos in ids
    if stopped:
        ids = ids[: ids.index(eos)]
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False), stopped
