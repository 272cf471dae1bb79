"""The teacher-forced certification pass: one forward pass decides most poems, and gives every poem's code length.

If, at every poem position, the arg-max of the model's next-token logits is the poem's own
next token (the end token included), greedy decoding from the prompt must follow exactly that
path: the recitation is certified correct without generating it. At each position the poem
token's logit is compared with the best other token's; a position where it does not lead by more
than `margin` is not certified, because a batched forward and an incremental decode may round
differently there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import length_batches, pad_rows
from .formatting import Encoded
from .forward import evaluating, hidden_states, logits_at, split_supported, unwrap


@dataclass(frozen=True)
class Scoring:
    """How the teacher-forced pass runs and what it may certify: built once by a training run and once by a
    recitation, and handed to every pass (the recall check, the base bits, certification, a reference, the draft
    decoder), so they cannot disagree on a setting."""

    device: torch.device
    pad_id: int
    end_ids: tuple[int, ...] = ()  # any of these ends a recitation (a poem holding one inside is never certified)
    margin: float = 0.0  # logit lead a position needs to be certified
    autocast_dtype: torch.dtype | None = None
    batch_size: int = 256  # most sequences per batch
    batch_tokens: int | None = 16384  # most padded tokens per batch
    logits_fn: Callable | None = None  # (input_ids, rows, cols) -> logits, for an FSDP root module


@dataclass
class TeacherResult:
    id: str
    certified: bool  # arg-max path == poem + end token, with every margin above the threshold
    all_argmax_correct: bool  # the same without the margin rule
    prefix_tokens: int  # poem tokens predicted correctly before the first miss (the end token is not counted)
    token_accuracy: float  # share of target tokens whose arg-max is right
    loss: float  # mean cross-entropy over the target tokens
    nll_sum: float  # summed cross-entropy (nats) over the target tokens, end token included
    min_margin: float  # smallest lead of the poem token's logit over the best other's (negative: another wins)
    safe_prefix: int  # leading target tokens that greedy decoding provably reproduces (arg-max right, gap > margin)


def _position_stats(model, input_ids, rows, cols, tgt, logits_fn, chunk: int = 4096):
    """(arg-max correct, lead of the target logit over the best other, NLL) at each scored position.

    The head runs on chunks of positions, so a large batch never holds [positions, vocabulary]
    fp32 logits at once (1.2 GB per 2,000 positions for a 152k vocabulary). Comparisons use the
    logits' own dtype, which is exact (every bf16 value is an fp32 value); only the loss needs an
    fp32 pass. One max over the other tokens replaces a top-2 search.
    """
    if logits_fn is not None or not split_supported(model):
        parts = [logits_fn(input_ids, rows, cols) if logits_fn else logits_at(model, input_ids, rows, cols)]
        targets = [tgt]
    else:
        h = hidden_states(model, input_ids)[rows, cols]
        head = unwrap(model).get_output_embeddings()
        parts = (head(h[i : i + chunk]) for i in range(0, len(h), chunk))
        targets = [tgt[i : i + chunk] for i in range(0, len(h), chunk)]
    correct, gap, nll = [], [], []
    for logits, y in zip(parts, targets):
        nll.append(torch.nn.functional.cross_entropy(logits.float(), y, reduction="none"))
        target_logit = logits.gather(1, y[:, None]).squeeze(1).float()
        # In place: the logits are not needed after this.
        best_other = logits.scatter_(1, y[:, None], float("-inf")).amax(dim=-1).float()
        lead = target_logit - best_other
        correct.append(lead > 0)
        gap.append(lead)
    return torch.cat(correct), torch.cat(gap), torch.cat(nll)  # on the device: read back once, after every batch


def teacher_forced(model, items: list[Encoded], scoring: Scoring) -> list[TeacherResult]:
    """Per poem: what the arg-max path and the margins prove, and the code length (one pass, batched by length).

    A poem is never certified when its tokens do not decode back to its text (the tokenizer normalised it) or when
    one of `scoring.end_ids` stands inside it (greedy decoding would stop there): real decoding decides those.
    """
    out: list[TeacherResult | None] = [None] * len(items)
    lengths = [it.length for it in items]
    order: list[int] = []
    parts: list[tuple[torch.Tensor, ...]] = []
    with evaluating(model):
        # No host-device sync inside the loop (inputs go through pinned memory, results stay on the device), so the
        # host prepares and launches the next batch while the GPU runs this one.
        for idx in length_batches(lengths, max_rows=scoring.batch_size, max_tokens=scoring.batch_tokens):
            parts.append(_batch_stats(model, [items[i] for i in idx], scoring))
            order += idx
    if not parts:
        return []
    correct, gap, nll = (torch.cat(p).cpu().numpy() for p in zip(*parts))
    start = 0
    for i in order:
        n = len(items[i].target_ids)
        r = _result(items[i].id, correct[start : start + n], gap[start : start + n], nll[start : start + n],
                    scoring.margin)
        r.certified = r.certified and certifiable(items[i], scoring.end_ids)
        out[i] = r
        start += n
    return out  # type: ignore[return-value]


def certifiable(item: Encoded, end_ids: tuple[int, ...]) -> bool:
    """Whether reproducing the poem's tokens is the same as reproducing its text and stopping at its end."""
    return item.round_trip and not any(t in end_ids for t in item.target_ids[:-1])


def _batch_stats(model, batch: list[Encoded], scoring: Scoring):
    """Per scored position of the batch, poem after poem: (arg-max correct, lead, NLL) as device tensors."""
    device, dtype = scoring.device, scoring.autocast_dtype
    input_ids = _to_device(pad_rows([it.prompt_ids + it.target_ids[:-1] for it in batch], scoring.pad_id), device)
    rows, cols, targets = [], [], []
    for b, it in enumerate(batch):
        p, n = len(it.prompt_ids), len(it.target_ids)
        rows += [b] * n
        cols += list(range(p - 1, p - 1 + n))
        targets += it.target_ids
    rows_t, cols_t, tgt = (_to_device(torch.tensor(v), device) for v in (rows, cols, targets))
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not None):
        return _position_stats(model, input_ids, rows_t, cols_t, tgt, scoring.logits_fn)


def _to_device(t: torch.Tensor, device) -> torch.Tensor:
    """Host -> GPU without a sync: a copy from pageable memory waits for the stream, one from pinned memory does not."""
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _result(poem_id: str, correct: np.ndarray, gap: np.ndarray, nll: np.ndarray, margin: float) -> TeacherResult:
    n = len(correct)
    safe_all = correct & (gap > margin)
    # the first miss, counted in poem tokens as recitation counts them (a perfect poem scores its length, not +1)
    prefix = min(n - 1, n if correct.all() else int(np.argmin(correct)))
    safe = n if safe_all.all() else int(np.argmin(safe_all))
    return TeacherResult(
        poem_id,
        safe == n,
        bool(correct.all()),
        prefix,
        float(correct.mean()),
        float(nll.mean()),
        float(nll.astype(np.float64).sum()),
        float(gap.min()),
        safe,
    )
