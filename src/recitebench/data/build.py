"""Build a frozen dataset: read -> validate -> dedupe -> ambiguity guard -> length rule -> sample -> write.

Every filter's before/after counts go into the manifest, so a reader can see exactly how the
2,000 poems were chosen out of the corpus.
"""

from __future__ import annotations

import collections
import os
import random
import re
from pathlib import Path
from typing import Any

from .. import __version__
from ..cards import dataset_card
from ..config import to_dict
from ..errors import RecitebenchError
from ..io import atomic_dir, read_json, sha256_file, write_json, write_jsonl
from ..lock import writing
from ..provenance import provenance
from ..text import BIDI_CONTROLS
from .config import DataConfig
from .disjoint import exclude, parse_parts, split, unique_texts
from .frozen import FORMAT, PARTS_FORMAT
from .presets import COLUMN_ALIASES, get_preset, parse_columns, placeholders, target_template
from .random_strings import random_manifest, random_rows, token_manifest, token_rows, write_symbol_tokenizer
from .sources import BadRow, Row, open_source, resolve_spec


def _resolve_columns(first: dict, wanted: tuple[str, ...], explicit: dict[str, str], where: str
                     ) -> tuple[dict[str, str], list[str]]:
    """(field -> source column, the fields that were guessed). A field comes from --columns, else its own name,
    else the one alias present (two present: an error that asks for --columns); a field outside the alias table
    (a custom template's placeholder) is a column name itself."""
    cols, guessed = {}, []
    available = ", ".join(map(str, first))
    for field in wanted:
        if field in explicit or field not in COLUMN_ALIASES:
            col = explicit.get(field, field)
            if col not in first:
                what = f"for field {field!r}" if field in COLUMN_ALIASES else "named by the template"
                raise RecitebenchError(f"{where}: unknown column {col!r} {what} (columns: {available})")
            cols[field] = col
            continue
        hits = [field] if field in first else [a for a in COLUMN_ALIASES[field] if a in first]
        if len(hits) > 1:
            raise RecitebenchError(
                f"{where}: field {field!r} could be column {hits[0]!r} or {hits[1]!r}; choose with --columns "
                f"{field}=COLUMN"
            )
        if not hits:
            if field == "id":
                continue
            raise RecitebenchError(
                f"{where}: no column for field {field!r} (tried {', '.join(COLUMN_ALIASES[field])}; "
                f"columns: {available}); map it with --columns {field}=COLUMN"
            )
        cols[field] = hits[0]
        if hits[0] != field:
            guessed.append(field)
    return cols, guessed


def prompt_format(preset, cfg: DataConfig) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """(prompt template, target template, the prompt's fields, every field either names): the preset's template
    and its content field unless --prompt-template / --target replace them."""
    # a typed backslash-n means a line break: what a template written on a command line needs
    prompt = (cfg.prompt_template or preset.template).replace("\\n", "\n")
    target = target_template(cfg.target).replace("\\n", "\n")
    prompt_fields = placeholders(prompt, "prompt_template")
    return prompt, target, prompt_fields, tuple(dict.fromkeys(prompt_fields + placeholders(target, "target")))


def _field(row: Row, field: str, column: str, strip: bool) -> str:
    if column not in row.fields:
        raise BadRow(f"{row.where}: missing field {column!r}")
    val = row.fields[column]
    if field == "content" and isinstance(val, list) and all(isinstance(v, str) for v in val):
        val = "\n".join(val)  # chinese-poetry style 'paragraphs'
    if val is None:
        raise BadRow(f"{row.where}: field {column!r} is null")
    if not isinstance(val, str):
        raise BadRow(f"{row.where}: field {column!r} must be text, got {type(val).__name__} {val!r:.40}")
    if strip:
        val = val.strip()
    if not val:
        raise BadRow(f"{row.where}: field {column!r} is empty")
    return val


def _length_histogram(lengths: list[int], width: int = 32) -> dict[str, int]:
    hist: dict[str, int] = collections.Counter()
    for n in lengths:
        lo = (n - 1) // width * width + 1 if n > 0 else 0
        hist[f"{lo}-{lo + width - 1}"] += 1
    return dict(sorted(hist.items(), key=lambda kv: int(kv[0].split("-")[0])))


SPECIAL_TOKEN_TEXT = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|\[(?:CLS|SEP|PAD|MASK|UNK|BOS|EOS)\]")


DATASET_FILES = ("poems.jsonl", "manifest.json", "tokenizer", "README.md")


def check_writable(out: Path) -> None:
    """Before any reading: OUT must be (or become) a folder we may write."""
    if out.exists() and not out.is_dir():
        raise RecitebenchError(f"{out}: --out names an existing file; give a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise RecitebenchError(f"{out}: cannot create the output folder ({parent} is not a writable folder)")


def check_output(out: Path, cfg: DataConfig, overwrite: bool) -> None:
    """OUT holds no other dataset (or --overwrite), nor anything but a dataset."""
    manifest = out / "manifest.json"
    if not out.is_dir() or not any(out.iterdir()):
        return
    mine = set(DATASET_FILES) | set(parse_parts(cfg.parts) if cfg.parts else ())
    other = sorted(p.name for p in out.iterdir() if p.name not in mine)
    if other:  # the folder is replaced whole: never one that holds anything but a dataset
        raise RecitebenchError(f"{out}: the folder holds other files ({', '.join(other[:3])}); choose an empty or "
                               f"new --out")
    if overwrite:
        return
    try:
        same = read_json(manifest).get("config") == to_dict(cfg)
    except ValueError:
        same = False
    if not same:
        raise RecitebenchError(f"{out}: holds a dataset built with other settings; pass --overwrite to replace it")


def build_dataset(cfg: DataConfig, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write OUT/poems.jsonl and OUT/manifest.json (one writer at a time, the folder replaced whole, so a failure
    at any point, a full disk included, leaves the previous dataset or nothing); return the manifest."""
    out = Path(out)
    check_writable(out)
    with writing(out, "dataset folder"):
        check_output(out, cfg, overwrite)
        return _build(cfg, out)


def _build(cfg: DataConfig, out: Path) -> dict[str, Any]:
    if cfg.preset == "random":
        rows = random_rows(cfg)
        manifest = {"format": FORMAT, **random_manifest(cfg, rows), "preset": "random", "config": to_dict(cfg),
                    "seed": cfg.seed}
    elif cfg.preset == "random-tokens":
        rows = token_rows(cfg)
        manifest = {"format": FORMAT, **token_manifest(cfg, rows), "preset": "random-tokens", "config": to_dict(cfg),
                    "seed": cfg.seed}
    else:
        rows, manifest = sample_corpus(cfg)
    if cfg.exposures:
        rows = assign_exposures(rows, cfg.exposures, cfg.seed)
        manifest = {**manifest, "exposures": {str(x): sum(r["exposures"] == x for r in rows) for x in cfg.exposures}}
    with atomic_dir(out) as tmp:
        if not cfg.parts:
            return _write_dataset(tmp, rows, manifest, cfg)
        parts = parse_parts(cfg.parts)
        sliced = split(rows, parts)
        written = {name: _write_dataset(tmp / name, part, {**manifest, "part": name, "parts": parts}, cfg)
                   for name, part in sliced.items()}
        top = {"format": PARTS_FORMAT, "config": to_dict(cfg), "seed": cfg.seed, "source": manifest.get("source"),
               "counts": manifest.get("counts"), "excluded": manifest.get("excluded"),
               "parts": {name: {"n": len(sliced[name]), "poems_sha256": w["poems_sha256"]}
                         for name, w in written.items()},
               "provenance": provenance(timestamp=False), "package_version": __version__}
        write_json(tmp / "manifest.json", top)
        return top


def assign_exposures(rows: list[dict], levels: list[int], seed: int) -> list[dict]:
    """Each poem's exposures per epoch: one seeded shuffle cut into len(levels) equal shares (the first shares one
    poem larger when n does not divide), so no level holds systematically shorter or earlier poems."""
    order = list(range(len(rows)))
    random.Random(f"recitebench:exposures:{seed}").shuffle(order)
    level = {}
    for rank, i in enumerate(order):
        level[i] = levels[rank * len(levels) // len(rows)]
    return [{**r, "exposures": level[i]} for i, r in enumerate(rows)]


def _write_dataset(folder: Path, rows: list[dict], manifest: dict, cfg: DataConfig) -> dict[str, Any]:
    """poems.jsonl and manifest.json (with the rows' own length and character statistics) into `folder`."""
    manifest = {**manifest,
                "special_token_strings": special_token_strings(rows),
                "bidi_controls": bidi_controls(rows),
                "length_histogram_chars": _length_histogram([r["chars"] for r in rows]),
                "length_chars": {"min": min(r["chars"] for r in rows), "max": max(r["chars"] for r in rows),
                                 "median": sorted(r["chars"] for r in rows)[len(rows) // 2]},
                "package_version": __version__}
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.preset == "random-tokens":
        write_symbol_tokenizer(folder / "tokenizer", cfg.vocab)
    write_jsonl(folder / "poems.jsonl", rows)
    manifest["poems_sha256"] = sha256_file(folder / "poems.jsonl")
    manifest["provenance"] = provenance(timestamp=False)  # same arguments, same bytes: no wall-clock time
    write_json(folder / "manifest.json", manifest)
    (folder / "README.md").write_text(dataset_card(manifest, len(rows)), encoding="utf-8")
    return manifest


def too_few_hint(counts: dict, cfg: DataConfig, ambiguous_inputs: int) -> str:
    """Which flag would let more poems through: the filter that dropped the most names it."""
    drops = {"length": counts.get("after_ambiguity_guard", 0) - counts.get("after_length_rule", 0),
             "ambiguity": counts.get("after_dedupe", 0) - counts.get("after_ambiguity_guard", 0)}
    hints = [f"lower --n (now {cfg.n})"]
    if drops["length"]:
        hints.append(f"widen --max-chars/--min-chars (the length rule dropped {drops['length']})")
    if drops["ambiguity"] and cfg.ambiguous == "drop":
        hints.append(f"pass --ambiguous disambiguate (inputs shared by different poems dropped {drops['ambiguity']} "
                     f"poems of {ambiguous_inputs} inputs)")
    return "to get enough: " + ", or ".join(hints)


def filter_candidates(records: list[dict], cfg: DataConfig, source: str, counts: dict) -> tuple[list, dict, dict]:
    """(the records every filter keeps, the exclusion's record, the ambiguous inputs); too few for `n` is an error
    that names the filter to relax."""
    unique = dedupe(records)
    counts["after_dedupe"] = len(unique)
    unique, excluded = exclude(unique, cfg.exclude, counts)
    if cfg.parts:
        unique = unique_texts(unique, counts)
    kept, ambiguous = ambiguity_guard(unique, cfg.ambiguous)
    counts["after_ambiguity_guard"] = len(kept)
    candidates = length_rule(kept, cfg)
    counts["after_length_rule"] = len(candidates)
    if len(candidates) < cfg.n:
        raise RecitebenchError(f"{source}: only {len(candidates)} poems pass the filters, {cfg.n} requested (counts: "
                               f"{dict(counts)}); {too_few_hint(counts, cfg, len(ambiguous))}")
    return candidates, excluded, ambiguous


def check_corpus(cfg: DataConfig) -> int | None:
    """What a dry run asks of a corpus dataset: building it would find enough poems (the build's own filters and
    error, nothing sampled or written); the number of candidates, or None for a corpus that is not a local file (a
    dry run downloads nothing: a hub dataset is read at the build)."""
    source = resolve_spec(cfg.source)
    if not Path(source).is_file():
        return None
    fmt = prompt_format(get_preset(cfg.preset), cfg)
    key = (source, Path(source).stat().st_mtime_ns, fmt, cfg.columns, cfg.strip, cfg.skip_bad_rows)
    if key not in _PARSED:
        while len(_PARSED) >= 2:  # a parsed corpus holds hundreds of MB: the two last read (a spec's CN and EN)
            _PARSED.popitem(last=False)
        _PARSED[key] = read_records(source, fmt, cfg, {})[0]
    records = [dict(r) for r in _PARSED[key]]  # the length rule writes into its records
    return len(filter_candidates(records, cfg, source, collections.OrderedDict())[0])


# parsed corpora of check_corpus (one process dry-running many specs of the same corpora reads each once)
_PARSED: collections.OrderedDict = collections.OrderedDict()


def sample_corpus(cfg: DataConfig) -> tuple[list[dict], dict]:
    """(rows, manifest fields) of a dataset sampled from a poem corpus."""
    preset = get_preset(cfg.preset)
    source = resolve_spec(cfg.source)
    counts: dict[str, int] = collections.OrderedDict()
    fmt = prompt_format(preset, cfg)
    prompt, target, prompt_fields, _ = fmt
    records, mapping, bad_examples = read_records(source, fmt, cfg, counts)
    candidates, excluded, ambiguous = filter_candidates(records, cfg, source, counts)
    rows = frozen_rows([candidates[i] for i in pick(len(candidates), cfg)], prompt_fields)
    counts["sampled"] = len(rows)
    return rows, {
        "format": FORMAT,
        "source": source,
        "source_sha256": sha256_file(source) if Path(source).is_file() else None,
        **({"source_info": mapping["source_info"]} if mapping.get("source_info") else {}),
        "preset": preset.name,
        "template": prompt,
        **({"target_template": target} if cfg.target else {}),
        "columns": mapping["columns"],
        "columns_guessed": mapping["guessed"],
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "counts": dict(counts),
        "ambiguous_inputs": {
            "policy": cfg.ambiguous,
            "inputs": len(ambiguous),
            "poems": sum(len(v) for v in ambiguous.values()),
            "examples": sorted(ambiguous)[:10],
        },
        "bad_rows": {"skipped": counts["bad_rows_skipped"], "examples": bad_examples},
        **({"excluded": excluded} if excluded else {}),
    }


def pick(n_candidates: int, cfg: DataConfig) -> list[int]:
    """Indices of the sampled candidates. Nested: a prefix of one seeded shuffle (N=250 is inside N=500), in that
    order (also for parts: they are its consecutive slices); otherwise random.sample in corpus order (the original
    rule: its datasets keep their bytes)."""
    if cfg.nested or cfg.parts:
        order = list(range(n_candidates))
        random.Random(cfg.seed).shuffle(order)
        return order[: cfg.n]
    return sorted(random.Random(cfg.seed).sample(range(n_candidates), cfg.n))


def bidi_controls(rows: list[dict]) -> dict:
    """Poems holding a bidirectional control character (the report shows each as a visible mark)."""
    hits = [(r["id"], m) for r in rows for m in BIDI_CONTROLS.findall(r["prompt"] + "\n" + r["target"])]
    return {"poems": len({i for i, _ in hits}), "examples": [f"U+{ord(m):04X} (poem {i})" for i, m in hits[:10]]}


def special_token_strings(rows: list[dict]) -> dict:
    """Poems whose text contains what looks like a tokenizer's special token: recitebench tokenises it as text."""
    hits = [(r["id"], m) for r in rows for m in SPECIAL_TOKEN_TEXT.findall(r["prompt"] + "\n" + r["target"])]
    return {"poems": len({i for i, _ in hits}), "examples": [f"{m} (poem {i})" for i, m in hits[:10]]}


def read_records(source: str, fmt: tuple, cfg: DataConfig, counts: dict) -> tuple[list[dict], dict, list[str]]:
    """(valid records with prompt and target, the column mapping used and what was guessed, examples of skipped bad
    rows); `fmt` is prompt_format's answer."""
    explicit = parse_columns(cfg.columns)
    prompt, target, _, fields = fmt
    bad_examples: list[str] = []
    records: list[dict] = []
    cols: dict[str, str] | None = None
    guessed: list[str] = []
    n_read = 0
    source_info: dict = {}
    for row in open_source(source, source_info):
        n_read += 1
        try:
            if row.error:
                raise BadRow(row.error)
            if cols is None:
                cols, guessed = _resolve_columns(row.fields, fields + ("id",), explicit, row.where)
            rec = {f: _field(row, f, cols[f], cfg.strip) for f in fields}
        except BadRow as e:
            if not cfg.skip_bad_rows:
                raise RecitebenchError(f"{e} (use --skip-bad-rows to skip and count such rows)") from None
            if len(bad_examples) < 20:
                bad_examples.append(str(e))
            continue
        sid = row.fields.get(cols["id"]) if "id" in cols else None
        rec["source_id"] = str(sid) if sid is not None else None
        rec["source_row"] = row.index
        rec["prompt"] = prompt.format(**rec)
        rec["target"] = target.format(**rec)
        records.append(rec)
    counts["read"] = n_read
    counts["bad_rows_skipped"] = n_read - len(records)
    counts["valid"] = len(records)
    if not records:
        raise RecitebenchError(f"{source}: no usable rows")
    return records, {"columns": cols or {}, "guessed": guessed, "source_info": source_info}, bad_examples


def dedupe(records: list[dict]) -> list[dict]:
    """Exact duplicates (same input, same poem) are one memory, not an ambiguity."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in records:
        key = (r["prompt"], r["target"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def ambiguity_guard(records: list[dict], policy: str) -> tuple[list[dict], dict[str, list[dict]]]:
    """Over the whole corpus: an input names one poem or it names none (drop), or inputs are numbered."""
    by_prompt: dict[str, list[dict]] = collections.defaultdict(list)
    for r in records:
        by_prompt[r["prompt"]].append(r)
    ambiguous = {p: rs for p, rs in by_prompt.items() if len(rs) > 1}
    if policy == "drop":
        return [r for r in records if r["prompt"] not in ambiguous], ambiguous
    kept = []
    for r in records:
        group = ambiguous.get(r["prompt"])
        kept.append(dict(r, prompt=f"{r['prompt']} ({group.index(r) + 1})") if group else r)
    return kept, ambiguous


def length_rule(records: list[dict], cfg: DataConfig) -> list[dict]:
    """Records within the character (and, with a tokenizer, token) limits; `chars`/`tokens` are added."""
    tok = _length_tokenizer(cfg.tokenizer) if (cfg.max_tokens or cfg.min_tokens) else None
    out = []
    for r in records:
        r["chars"] = len(r["prompt"]) + len(r["target"])
        if not _within(r["chars"], cfg.min_chars, cfg.max_chars):
            continue
        if tok is not None:
            r["tokens"] = sum(len(tok(r[k], add_special_tokens=False)["input_ids"]) for k in ("prompt", "target"))
            if not _within(r["tokens"], cfg.min_tokens, cfg.max_tokens):
                continue
        out.append(r)
    return out


def _within(n: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or n >= lo) and (hi is None or n <= hi)


def _length_tokenizer(ref: str | None):
    """The tokenizer of the token-length rule (any Transformers tokenizer: only lengths are counted)."""
    from transformers import AutoTokenizer  # heavy import, only for the token rule

    try:
        return AutoTokenizer.from_pretrained(ref)
    except (OSError, ValueError) as e:
        raise RecitebenchError(f"{ref}: cannot load tokenizer: {str(e).splitlines()[0]}") from None


def frozen_rows(chosen: list[dict], fields: tuple[str, ...]) -> list[dict]:
    """The rows of poems.jsonl: id, prompt, target, the preset's fields and where each came from."""
    ids = [c["source_id"] for c in chosen]
    use_source_ids = all(ids) and len(set(ids)) == len(ids)
    rows = []
    for c in chosen:
        row = {
            "id": c["source_id"] if use_source_ids else f"row-{c['source_row']}",
            "prompt": c["prompt"],
            "target": c["target"],
        }
        row.update({f: c[f] for f in fields})
        row.update({k: c[k] for k in ("source_id", "source_row", "chars", "tokens") if k in c})
        rows.append(row)
    return rows


def build_summary(man: dict, out) -> str:
    """What `data build` prints: the counts at each filter, the hash, and which source columns fed which field
    (guessed ones marked)."""
    c = man["counts"]
    if man.get("format") == PARTS_FORMAT:
        parts = ", ".join(f"{name} {p['n']} ({out}/{name})" for name, p in man["parts"].items())
        ex = man.get("excluded") or {}
        left = f"; left out {ex['by_id']} by id and {ex['by_text']} by text" if ex else ""
        repeated = c.get("after_exclude", c["after_dedupe"]) - c["after_text_dedupe"]
        return (f"wrote {c['sampled']} poems in parts: {parts}; no poem text in two parts ({repeated} repeated "
                f"texts dropped{left})")
    lines = [f"wrote {c['sampled']} poems to {out}/poems.jsonl (read {c['read']}, valid {c['valid']}, "
             f"unambiguous {c['after_ambiguity_guard']}, within length {c['after_length_rule']}); "
             f"sha256 {man['poems_sha256'][:12]}"]
    ex = man.get("excluded")
    if ex:
        names = ", ".join(d["path"] for d in ex["datasets"])
        lines.append(f"left out the poems of {names}: {ex['by_id']} by id, {ex['by_text']} by the same text under "
                     f"another id")
    amb = man.get("ambiguous_inputs") or {}
    if amb.get("policy") == "drop" and amb.get("poems"):
        lines.append(f"dropped {amb['poems']} poems whose input ({amb['inputs']} inputs) is shared by different poems "
                     f"(a recitation could not tell them apart); --ambiguous disambiguate keeps them, numbered")
    if man.get("columns"):
        guessed = set(man.get("columns_guessed", []))
        pairs = [f"{f}={col}" + (" (guessed)" if f in guessed else "") for f, col in man["columns"].items()]
        lines.append("columns: " + ", ".join(pairs) + ("; set them with --columns FIELD=COLUMN" if guessed else ""))
    return "\n".join(lines)
