"""Every place poems come from, behind one interface: `open_source(spec)` yields raw rows.

Spec forms:
  path/to/file.{jsonl,json,csv,parquet}[.gz|.xz]   a local file
  hf:OWNER/NAME[:SPLIT][?name=C&revision=R&data_files=GLOB]
                                                  a Hugging Face dataset (datasets.load_dataset; a config name,
                                                  a revision, data files; what it resolved to is recorded)
  hf:/local/dir[:SPLIT]                           the same loader on a local dataset folder, or
                                                  datasets.load_from_disk on a `save_to_disk` folder
  shared:cn_poems | shared:en_poems               the corpora in ../shared/data (RECITEBENCH_SHARED overrides)
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import lzma
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecitebenchError
from ..paths import shared_dir

FILE_FORMATS = ("jsonl", "json", "csv", "parquet")


@dataclass
class Row:
    """One raw record and where it came from, so an error can name the file and line."""

    where: str  # e.g. "poems.jsonl:17"
    index: int  # 0-based position in the source
    fields: dict[str, Any]
    error: str | None = None  # why the row cannot be read (the reader keeps going; the builder decides)


class BadRow(RecitebenchError):
    """A row that cannot be read; `--skip-bad-rows` counts and skips these."""


def resolve_spec(spec: str) -> str:
    """Turn `shared:NAME` into a real path; other specs pass through."""
    if spec.startswith("shared:"):
        name = spec.split(":", 1)[1]
        base = shared_dir() / "data"
        for cand in (base / name, base / f"{name}.jsonl.xz", base / f"{name}.jsonl"):
            if cand.is_file():
                return str(cand)
        known = sorted({c.name.split(".")[0] for c in base.glob("*.jsonl*")}) if base.is_dir() else []
        have = (f"known: {', '.join('shared:' + k for k in known)}" if known
                else "set RECITEBENCH_SHARED to the shared/ folder")
        raise RecitebenchError(f"{spec}: no such corpus in {base} ({have})")
    return spec


def detect_format(path: Path) -> tuple[str, str | None]:
    """(format, compression) from the file name, e.g. poems.jsonl.xz -> ("jsonl", "xz")."""
    suffixes = [s.lstrip(".").lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in ("gz", "xz"):
        compression = suffixes.pop()
    fmt = suffixes[-1] if suffixes else ""
    if fmt == "ndjson":
        fmt = "jsonl"
    if fmt not in FILE_FORMATS:
        raise RecitebenchError(
            f"{path}: unknown file type {path.name!r} (expected .jsonl/.json/.csv/.parquet, optionally .gz or .xz)"
        )
    if fmt == "parquet" and compression:
        raise RecitebenchError(f"{path}: parquet files carry their own compression; remove the .{compression} layer")
    return fmt, compression


def _open_text(path: Path, compression: str | None):
    if compression == "gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    if compression == "xz":
        return lzma.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _read_all_text(path: Path, compression: str | None) -> str:
    try:
        with _open_text(path, compression) as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise RecitebenchError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise RecitebenchError(f"{path}: cannot read: {e}") from None


def _open_binary(path: Path, compression: str | None):
    if compression == "gz":
        return gzip.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


def _iter_jsonl(path: Path, compression: str | None) -> Iterator[Row]:
    # Lines are split as bytes and decoded one by one, so an undecodable byte is pinned to its line.
    try:
        f = _open_binary(path, compression)
    except OSError as e:
        raise RecitebenchError(f"{path}: cannot read: {e}") from None
    with f:
        lineno = 0
        while True:
            lineno += 1
            try:
                raw = f.readline()
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise RecitebenchError(f"{path}:{lineno}: cannot read: {e}") from None
            if not raw:
                return
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Row(where, lineno - 1, {}, error=f"{where}: not UTF-8 text (byte {e.start}: {e.reason})")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield Row(where, lineno - 1, {}, error=f"{where}: broken JSON line ({e.msg} at column {e.colno})")
                continue
            if not isinstance(obj, dict):
                yield Row(where, lineno - 1, {}, error=f"{where}: expected a JSON object, got {type(obj).__name__}")
                continue
            yield Row(where, lineno - 1, obj)


def _iter_json(path: Path, compression: str | None) -> Iterator[Row]:
    text = _read_all_text(path, compression)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecitebenchError(f"{path}:{e.lineno}: broken JSON ({e.msg} at column {e.colno})") from None
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise RecitebenchError(f"{path}: expected a JSON list of objects (or an object holding exactly one list)")
        obj = lists[0]
    if not isinstance(obj, list):
        raise RecitebenchError(f"{path}: expected a JSON list of objects")
    for i, item in enumerate(obj):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            yield Row(where, i, {}, error=f"{where}: expected a JSON object, got {type(item).__name__}")
        else:
            yield Row(where, i, item)


def _iter_csv(path: Path, compression: str | None) -> Iterator[Row]:
    text = _read_all_text(path, compression).removeprefix("\ufeff")  # a byte-order mark is not part of a name
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise RecitebenchError(f"{path}: empty CSV file (no header row)")
    twice = sorted({c for c in reader.fieldnames if reader.fieldnames.count(c) > 1})
    if twice:  # DictReader would keep the last column of each name without a word
        raise RecitebenchError(f"{path}:1: the header names column {twice[0]!r} more than once; rename one")
    try:
        for i, rec in enumerate(reader):
            where = f"{path}:{reader.line_num}"
            if None in rec:  # more cells than header columns
                yield Row(where, i, {}, error=f"{where}: row has more cells than the header has columns")
                continue
            yield Row(where, i, dict(rec))
    except csv.Error as e:
        raise RecitebenchError(f"{path}:{reader.line_num}: broken CSV ({e})") from None


def _iter_parquet(path: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RecitebenchError(f"{path}: reading Parquet needs pyarrow (pip install 'recitebench[hf]')") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for a corrupt file
        raise RecitebenchError(f"{path}: cannot read Parquet: {str(e).splitlines()[0]}") from None
    for i, rec in enumerate(table.to_pylist()):
        yield Row(f"{path}[row {i}]", i, rec)


HF_OPTIONS = ("name", "revision", "data_files")


def parse_hf(spec: str) -> tuple[str, str, dict[str, str]]:
    """`hf:REF[:SPLIT][?k=v&...]` -> (ref, split, load_dataset options)."""
    from urllib.parse import parse_qsl

    ref, _, query = spec[3:].partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    unknown = sorted(set(options) - set(HF_OPTIONS))
    if unknown:
        raise RecitebenchError(f"{spec}: unknown option {unknown[0]!r} (hf: takes {', '.join(HF_OPTIONS)})")
    split = "train"
    # "owner/name:split" but not a Windows drive or a bare local path containing ':'
    if ":" in ref and not Path(ref).exists():
        ref, split = ref.rsplit(":", 1)
    return ref, split, options


def _load_hf(spec: str, ref: str, split: str, options: dict):
    try:
        import datasets  # lazy: the GPU image and minimal installs lack it
    except ImportError:
        raise RecitebenchError(
            f"{spec}: Hugging Face sources need the datasets package (pip install 'recitebench[hf]')"
        ) from None
    try:
        if (Path(ref) / "dataset_dict.json").is_file() or (Path(ref) / "state.json").is_file():
            if options:
                raise RecitebenchError(f"{spec}: a save_to_disk folder takes no {', '.join(options)}")
            ds = datasets.load_from_disk(ref)  # a save_to_disk folder: a Dataset or a DatasetDict
            return ds[split] if isinstance(ds, datasets.DatasetDict) else ds, "load_from_disk"
        return datasets.load_dataset(ref, split=split, **options), "load_dataset"
    except RecitebenchError:
        raise
    except Exception as e:  # hub, network and format errors come in many types
        raise RecitebenchError(
            f"{spec}: cannot load dataset: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None


def _iter_hf(spec: str, info: dict | None = None) -> Iterator[Row]:
    ref, split, options = parse_hf(spec)
    ds, how = _load_hf(spec, ref, split, options)
    if info is not None:  # what the spec resolved to, for the manifest
        info.update({"kind": "huggingface", "loader": how, "ref": ref, "split": split, **options,
                     "fingerprint": getattr(ds, "_fingerprint", None), "rows": ds.num_rows,
                     "cache_files": [Path(c["filename"]).name for c in getattr(ds, "cache_files", [])][:8],
                     "resolved_revision": _cached_revision(ds)})
    for i, rec in enumerate(ds):
        yield Row(f"{spec}[{split} row {i}]", i, dict(rec))


def _cached_revision(ds) -> str | None:
    """The commit a hub dataset was read at, from its cache path (datasets keeps each commit in a folder named by
    its hash); None for local sources."""
    import re

    for c in getattr(ds, "cache_files", []):
        for part in Path(c["filename"]).parts:
            if re.fullmatch(r"[0-9a-f]{40}", part):
                return part
    return None


def open_source(spec: str, info: dict | None = None) -> Iterator[Row]:
    """Yield the raw rows of a source; a row that cannot be parsed carries `error`. `info`, if given, receives what
    a Hugging Face source resolved to (options, fingerprint, revision)."""
    spec = resolve_spec(spec)
    if spec.startswith("hf:"):
        yield from _iter_hf(spec, info)
        return
    path = Path(spec)
    if not path.exists():
        raise RecitebenchError(f"{path}: source file not found")
    if path.is_dir():
        raise RecitebenchError(f"{path}: is a directory; for a local Hugging Face dataset folder use hf:{path}")
    fmt, compression = detect_format(path)
    if fmt == "jsonl":
        yield from _iter_jsonl(path, compression)
    elif fmt == "json":
        yield from _iter_json(path, compression)
    elif fmt == "csv":
        yield from _iter_csv(path, compression)
    else:
        yield from _iter_parquet(path)
