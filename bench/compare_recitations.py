"""Compare two recitations of the same poems poem by poem (e.g. --decoder static vs --decoder generate).

    python bench/compare_recitations.py RUN/recite RUN/recite_hf

Prints how many poems have the same exact-match verdict and the same predicted text; exits 1 if any verdict differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(folder) -> dict:
    """A recitation's samples.jsonl, by poem id."""
    return {
        r["id"]: r for r in map(json.loads, (Path(folder) / "samples.jsonl").read_text(encoding="utf-8").splitlines())
    }


def text(sample: dict) -> str:
    """The recited text; a certified poem's sample says "= target"."""
    return sample["target"] if sample["prediction"] == "= target" else sample["prediction"]


def main() -> int:
    a, b = load(sys.argv[1]), load(sys.argv[2])
    common = sorted(a.keys() & b.keys())
    verdicts = sum(a[k]["exact"] == b[k]["exact"] for k in common)
    decoded = [k for k in common if a[k]["decided_by"] == "generated" or b[k]["decided_by"] == "generated"]
    same_text = sum(text(a[k]) == text(b[k]) for k in decoded)
    print(
        f"{len(common)} poems in both: same verdict {verdicts}/{len(common)}; "
        f"same text on the {len(decoded)} decoded ones {same_text}/{len(decoded)}"
    )
    return 0 if verdicts == len(common) else 1


if __name__ == "__main__":
    sys.exit(main())
