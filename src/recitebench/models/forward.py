"""Run a causal LM's body and head separately, so the head (and its vocabulary-sized logits)
is computed only where a target token is scored: ~20% fewer head FLOPs and far less memory
for a 152k vocabulary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def unwrap(model):
    """The underlying Transformers model of a PEFT, DDP or compiled wrapper."""
    for attr in ("module", "_orig_mod"):
        while hasattr(model, attr) and isinstance(getattr(model, attr), torch.nn.Module):
            model = getattr(model, attr)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


@contextlib.contextmanager
def evaluating(model) -> Iterator[None]:
    """Eval mode and no autograd inside the block; the model's own mode is restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def split_supported(model) -> bool:
    m = unwrap(model)
    cfg = m.config
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return False  # head has extra arithmetic we would skip
    return _body(m) is not None and m.get_output_embeddings() is not None


def _body(m):
    prefix = getattr(m, "base_model_prefix", None)
    body = getattr(m, prefix, None) if prefix else None
    return body if isinstance(body, torch.nn.Module) and body is not m else None


def hidden_states(model, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Last hidden states [B, T, H] with plain causal attention (right padding is never attended); packed rows pass
    position ids that restart per poem, from which Transformers builds the per-poem mask."""
    body = _body(unwrap(model))
    return body(input_ids=input_ids, use_cache=False, **_positions(position_ids)).last_hidden_state


def _positions(position_ids: torch.Tensor | None) -> dict:
    # passed only when packed: not every architecture's forward takes position_ids
    return {} if position_ids is None else {"position_ids": position_ids}


def logits_at(model, input_ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, position_ids=None
              ) -> torch.Tensor:
    """Logits at positions (rows[i], cols[i]) only: [N, V]."""
    m = unwrap(model)
    if split_supported(m):
        h = hidden_states(model, input_ids, position_ids)[rows, cols]
        return m.get_output_embeddings()(h)
    return model(input_ids=input_ids, use_cache=False, **_positions(position_ids)).logits[rows, cols]
