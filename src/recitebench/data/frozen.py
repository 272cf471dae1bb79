"""Read a frozen dataset back, checking that it is one and that it was not edited since."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import RecitebenchError
from ..io import read_json, sha256_file

FORMAT = "recitebench-frozen-dataset/1"
PARTS_FORMAT = "recitebench-frozen-parts/1"


@dataclass
class FrozenDataset:
    path: Path
    manifest: dict
    poems: list[dict]

    @property
    def sha256(self) -> str:
        return self.manifest["poems_sha256"]


def poem_hash(poem: dict) -> str:
    """A poem's identity by content (its prompt and target text): what a record of per-poem figures is matched on,
    so a poem of another dataset under the same id never takes its place."""
    import hashlib

    return hashlib.sha256(f"{poem['prompt']}\x00{poem['target']}".encode()).hexdigest()[:16]


def load_frozen(path: str | Path) -> FrozenDataset:
    path = Path(path)
    man_path, poems_path = path / "manifest.json", path / "poems.jsonl"
    parts = _parts_of(man_path)
    if parts is not None:
        names = ", ".join(f"{path}/{name}" for name in parts)
        raise RecitebenchError(f"{path}: a dataset split into parts; name one of them ({names})")
    if not path.is_dir() or not man_path.is_file() or not poems_path.is_file():
        raise RecitebenchError(
            f"{path}: not a frozen dataset (expected manifest.json and poems.jsonl; "
            f"make one with `recitebench data build --out {path}`)"
        )
    try:
        manifest = read_json(man_path)
    except json.JSONDecodeError as e:
        raise RecitebenchError(f"{man_path}:{e.lineno}: broken JSON ({e.msg})") from None
    if manifest.get("format") != FORMAT:
        raise RecitebenchError(f"{man_path}: not a recitebench manifest (format {manifest.get('format')!r})")
    if sha256_file(poems_path) != manifest.get("poems_sha256"):
        raise RecitebenchError(
            f"{poems_path}: sha256 differs from manifest.json: the dataset was changed after it was frozen"
        )
    poems = []
    with open(poems_path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            obj = json.loads(line)
            for key in ("id", "prompt", "target"):
                unconditional = key == "prompt" and manifest.get("preset") == "random-tokens"  # no key prompt
                if not isinstance(obj.get(key), str) or not (obj[key] or unconditional):
                    raise RecitebenchError(f"{poems_path}:{i}: field {key!r} missing or empty")
            poems.append(obj)
    return FrozenDataset(path, manifest, poems)


def _parts_of(man_path: Path) -> list[str] | None:
    """The part names when `man_path` is the manifest of a draw split into parts (`data build --parts`), else None
    (no manifest, or an unreadable one: the checks after this name what is wrong with it)."""
    try:
        manifest = read_json(man_path)
    except (ValueError, OSError):
        return None
    return list(manifest.get("parts", {})) if manifest.get("format") == PARTS_FORMAT else None
