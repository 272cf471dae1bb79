"""The paper's prompt formats, as data: a template and the fields it needs."""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..errors import RecitebenchError


@dataclass(frozen=True)
class Preset:
    name: str
    template: str  # str.format template over the canonical fields
    description: str


PRESETS: dict[str, Preset] = {
    "cn-poems": Preset(
        "cn-poems",
        "Dictation: Dynasty: {dynasty} Author: {author} Title: {title}",
        "Chinese poems as in the paper: dynasty + author + title -> poem",
    ),
    "en-poems": Preset(
        "en-poems",
        "Dictation: Author: {author} Title: {title}",
        "English poems as in the paper: author + title -> poem",
    ),
}

# Column names seen in public poem corpora, tried in order when no --columns mapping is given. A field whose own
# name is a column takes it; otherwise exactly one alias must be present (two make the guess an error).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "dynasty": ("dynasty", "era", "period"),
    "author": ("author", "poet", "writer"),
    "title": ("title", "name", "rhythmic"),
    "content": ("content", "poem", "text", "body", "paragraphs"),
    "id": ("id", "uid", "poem_id"),
}


RESERVED = ("id", "prompt", "target", "chars", "tokens", "source_id", "source_row")  # keys of a poems.jsonl row


def aliases_help() -> str:
    """The alias table in one line, for --help and error messages."""
    return "; ".join(f"{f}: {', '.join(a)}" for f, a in COLUMN_ALIASES.items())


def target_template(target: str | None) -> str:
    """--target as a template: a bare column name becomes {name}; none means the content field."""
    target = target or "content"
    return target if "{" in target else "{" + target + "}"


def placeholders(template: str, where: str) -> tuple[str, ...]:
    """The {names} of a str.format template, in order, each once; positional or reserved names are errors."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise ValueError(f"{where}: not a format template ({e}): {template!r}") from None
    for name in names:
        if not name.isidentifier():
            raise ValueError(f"{where}: placeholder {{{name}}} must name a column, e.g. {{author}}")
        if name in RESERVED:
            raise ValueError(f"{where}: {{{name}}} is a reserved name ({', '.join(RESERVED)}); rename the column")
    return tuple(dict.fromkeys(names))


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise RecitebenchError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None


def parse_columns(text: str | None) -> dict[str, str]:
    """'author=poet,title=name' -> {'author': 'poet', 'title': 'name'}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise RecitebenchError(f"--columns: expected FIELD=COLUMN pairs separated by commas, got {part!r}")
        field, col = (s.strip() for s in part.split("=", 1))
        if field not in COLUMN_ALIASES:
            raise RecitebenchError(f"--columns: unknown field {field!r} (known: {', '.join(COLUMN_ALIASES)})")
        out[field] = col
    return out


def describe_presets() -> str:
    """`recitebench ls --presets`."""
    return "\n".join(f"{name:10s} {p.template}    ({p.description})" for name, p in PRESETS.items())
