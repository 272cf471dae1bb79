"""Controls for memorised bits on natural text: a trained reference that has not seen the members, and held-out
non-members scored beside them.

Against a reference trained on disjoint poems of the same kind (Morris et al. 2025's generalisation oracle), a
member's bits under the reference minus its bits under the model are what training on *that* poem added. The same
difference on held-out poems the model never saw is generalisation, not memory, so it is reported beside the member
figure (its per-poem mean is the part of the member figure that any poem of the kind would get). Membership inference
(members vs held-out poems) from the per-token loss, plain and calibrated by the reference (Carlini et al. 2022's
reference-model attack), gives an AUC with a bootstrap interval: 0.5 means the model treats members like strangers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..data.disjoint import text_key
from ..data.frozen import FrozenDataset, load_frozen
from ..errors import RecitebenchError
from ..models.certify import teacher_forced
from ..models.config import ModelConfig
from ..models.formatting import encode_many
from ..rundir import RunDir
from ..stats import auc_interval

LN2 = float(np.log(2.0))


def check_unseen(poems: list[dict], other: FrozenDataset, what: str) -> None:
    """Refuse when any of `poems` is in `other` (same id or the same normalised text under another id)."""
    ids = {p["id"] for p in other.poems} | {str(p["source_id"]) for p in other.poems if p.get("source_id")}
    texts = {text_key(p["target"]) for p in other.poems}
    shared = [p["id"] for p in poems if p["id"] in ids or (p.get("source_id") and str(p["source_id"]) in ids)
              or text_key(p["target"]) in texts]
    if shared:
        raise RecitebenchError(f"{other.path}: {len(shared)} of the recited poems are in {what} (e.g. "
                               f"{', '.join(shared[:3])}); build the sets disjoint (`data build --parts`, or "
                               f"`--exclude`)")


def trained_reference(ref: str) -> tuple[ModelConfig, FrozenDataset] | None:
    """A reference given as a training run folder: (its final model, the dataset it was trained on); else None."""
    run = RunDir(ref)
    if not (run.path / "config.yaml").is_file() or not run.has_model():
        return None
    saved = run.read_config()
    template = saved.get("model", {}).get("template", "plain")
    mcfg = ModelConfig(model=str(run.model), init="pretrained", template=template)
    return mcfg, load_frozen(saved["train"]["data"])


def heldout_set(setting: str | None, data: FrozenDataset) -> FrozenDataset | None:
    """The held-out dataset a recitation scores: `none`, a folder, or (unset) the `heldout` part beside a dataset
    that is a part of one `data build --parts` draw."""
    if setting == "none":
        return None
    if setting:
        return load_frozen(setting)
    sibling = Path(data.path).parent / "heldout"
    if data.manifest.get("part") and data.manifest.get("part") != "heldout" and "heldout" in data.manifest.get(
            "parts", {}) and sibling.is_dir():
        return load_frozen(sibling)
    return None


@dataclasses.dataclass
class Scored:
    """Per poem of one set: code length under the model and the reference (bits), and target tokens."""

    ids: list[str]
    model_bits: list[float]
    ref_bits: list[float] | None
    tokens: list[int]

    def gain(self) -> np.ndarray | None:
        return None if self.ref_bits is None else np.asarray(self.ref_bits) - np.asarray(self.model_bits)

    def per_token_loss(self) -> np.ndarray:
        return np.asarray(self.model_bits) / np.maximum(1, np.asarray(self.tokens))


def score_set(model, tok, template: str, scoring, poems: list[dict]) -> tuple[list[float], list[int]]:
    """(bits per poem, target tokens per poem, the end token included) from one teacher-forced pass."""
    items = encode_many(tok, poems, template)
    res = teacher_forced(model, items, scoring)
    return [r.nll_sum / LN2 for r in res], [len(it.target_ids) for it in items]


def _set_summary(s: Scored) -> dict:
    gain = s.gain()
    out = {"n": len(s.ids), "model_bits": round(float(np.sum(s.model_bits)), 3),
           "bits_per_token": float(np.sum(s.model_bits) / max(1, np.sum(s.tokens)))}
    if gain is not None:
        out.update({"reference_bits": round(float(np.sum(s.ref_bits)), 3),
                    "gain_bits_per_poem": float(gain.mean()),  # unclipped: a poem may cost more than before
                    "memorized_bits": round(float(np.clip(gain, 0, None).sum()), 3)})
    return out


def control_summary(members: Scored, heldout: Scored, reference: str | None, heldout_ds: FrozenDataset) -> dict:
    """results.json's `controls`: both sets' bits, the held-out gain, and membership AUCs with intervals."""
    out = {"heldout": {"path": str(heldout_ds.path), "poems_sha256": heldout_ds.sha256},
           "reference": reference, "members": _set_summary(members), "nonmembers": _set_summary(heldout)}
    labels = "members have lower per-token loss"
    out["mia_auc"] = {"loss": auc_interval(-members.per_token_loss(), -heldout.per_token_loss()), "score": labels}
    if members.ref_bits is not None and heldout.ref_bits is not None:
        calibrated = [g / np.maximum(1, np.asarray(s.tokens)) for g, s in ((members.gain(), members),
                                                                           (heldout.gain(), heldout))]
        out["mia_auc"]["calibrated"] = auc_interval(calibrated[0], calibrated[1])
        net = members.gain().mean() - heldout.gain().mean()
        out["member_minus_heldout_gain_bits_per_poem"] = float(net)  # memory net of what any such poem gets
    return out
