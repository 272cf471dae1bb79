"""The exposure dose: recall and memorised bits against how often a poem occurred per epoch.

A dose set (`data build --exposures 1 2 4 ...`) records each poem's exposures per training epoch; training repeats
each poem that often in every epoch (train/batching.py). Carlini et al. find extraction log-linear in duplicates and
Allen-Zhu & Li ~1 bit/parameter of knowledge at 100 exposures vs ~2 at 1,000; this is the same curve for
recitation: per level, exact recall (Wilson interval), memorised bits per poem and their share of the reference's
bits (comparable across levels whose poems differ in length), and the fewest exposures per epoch
at which exact recall reaches 50 % and 90 % (at the levels' resolution; None when no level reaches it). For a
trained run the levels also carry the exposures over the whole training (per epoch x the epochs trained): a poem
seen 8 times per epoch for 4 epochs was seen 32 times.
"""

from __future__ import annotations

from ..stats import wilson_interval


def dose_summary(poems: list[dict], exact: list[bool], memorized: list[float] | None,
                 reference: list[float] | None = None, epochs: int | None = None) -> dict:
    """results.json `by_exposure` for a dose set ({} for a set without exposures); `epochs`: how many the recited
    model was trained for (None: not known, e.g. a model recited without its run)."""
    if not any("exposures" in p for p in poems):
        return {}
    levels = sorted({int(p.get("exposures", 1)) for p in poems})
    rows = []
    for x in levels:
        idx = [i for i, p in enumerate(poems) if int(p.get("exposures", 1)) == x]
        k = sum(exact[i] for i in idx)
        row = {"exposures": x, "n": len(idx), "exact_count": k, "exact": k / len(idx),
               "exact_ci95": wilson_interval(k, len(idx))}
        if epochs:
            row["exposures_total"] = x * epochs
        if memorized is not None and reference is not None:  # the share, since poems of a level differ in length
            row["memorized_bits_per_poem"] = sum(memorized[i] for i in idx) / len(idx)
            row["memorized_fraction"] = sum(memorized[i] for i in idx) / max(sum(reference[i] for i in idx), 1e-9)
        rows.append(row)
    out = {"levels": rows, "exposures_for_50": _first(rows, 0.5), "exposures_for_90": _first(rows, 0.9)}
    if epochs:
        out |= {"epochs": epochs, "total_exposures_for_50": _first(rows, 0.5, "exposures_total"),
                "total_exposures_for_90": _first(rows, 0.9, "exposures_total")}
    return out


def _first(rows: list[dict], share: float, key: str = "exposures") -> int | None:
    return next((r[key] for r in rows if r["exact"] >= share), None)
