"""Disjoint poem sets: leave out the poems of other frozen datasets, and split one draw into named parts.

Memorised bits mean memory only against a reference that has not seen the members, and a held-out control only
controls if its poems are not members: so a poem is identified by its id *and* by its normalised text (the same poem
under another title or id is the same memory), and no text can land in two parts of one draw.
"""

from __future__ import annotations

import re
import unicodedata

from .frozen import load_frozen

PART_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def text_key(text: str) -> str:
    """A poem's identity for overlap checks: NFKC, whitespace runs removed, case folded."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def parse_parts(spec: str) -> dict[str, int]:
    """'member=2000,heldout=500' -> {'member': 2000, 'heldout': 500} (order kept: the draw is sliced in it)."""
    parts: dict[str, int] = {}
    for item in spec.split(","):
        name, sep, size = item.strip().partition("=")
        if not sep or not PART_NAME.match(name) or not size.strip().isdigit() or int(size) <= 0:
            raise ValueError(f"parts: {item.strip()!r} is not NAME=SIZE (a lower-case name, a positive size), e.g. "
                             f"member=2000,heldout=500,reference=8000")
        if name in parts:
            raise ValueError(f"parts: {name!r} named twice")
        parts[name] = int(size)
    return parts


def excluded_keys(folders: list[str]) -> tuple[set[str], set[str], list[dict]]:
    """(source ids, text keys, what was read) of the frozen datasets to leave out."""
    ids: set[str] = set()
    texts: set[str] = set()
    read = []
    for folder in folders:
        ds = load_frozen(folder)
        ids |= {str(p["source_id"]) for p in ds.poems if p.get("source_id")}
        texts |= {text_key(p["target"]) for p in ds.poems}
        read.append({"path": str(folder), "poems": len(ds.poems), "poems_sha256": ds.sha256})
    return ids, texts, read


def exclude(records: list[dict], folders: list[str], counts: dict) -> tuple[list[dict], dict]:
    """Records whose source id or normalised poem text occurs in none of `folders`; the manifest's record of it."""
    if not folders:
        return records, {}
    ids, texts, read = excluded_keys(folders)
    by_id = by_text = 0
    kept = []
    for r in records:
        if r.get("source_id") and str(r["source_id"]) in ids:
            by_id += 1
        elif text_key(r["target"]) in texts:
            by_text += 1  # the same poem under another id
        else:
            kept.append(r)
    counts["after_exclude"] = len(kept)
    return kept, {"datasets": read, "by_id": by_id, "by_text": by_text}


def unique_texts(records: list[dict], counts: dict) -> list[dict]:
    """One record per normalised poem text (the first), so parts of one draw share no poem."""
    seen: set[str] = set()
    kept = []
    for r in records:
        key = text_key(r["target"])
        if key not in seen:
            seen.add(key)
            kept.append(r)
    counts["after_text_dedupe"] = len(kept)
    return kept


def split(rows: list[dict], parts: dict[str, int]) -> dict[str, list[dict]]:
    """Consecutive slices of the draw (a seeded shuffle), in the order the parts are named."""
    out, start = {}, 0
    for name, size in parts.items():
        out[name] = rows[start : start + size]
        start += size
    return out
