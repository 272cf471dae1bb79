"""Typed stage configs: one dataclass per stage, YAML fills them, CLI flags override.

Each field carries a one-line help text in its metadata; the CLI is generated from it, so
`--help` and the dataclass can never disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import RecitebenchError

T = TypeVar("T")


def opt(default: Any, help: str, *, choices: tuple | None = None, example: str | None = None) -> Any:
    """A config field with its one-line documentation."""
    meta = {"help": help, "choices": choices, "example": example}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp: Any) -> tuple[type, bool]:
    """(scalar type, optional?) for str | None style annotations."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one --flag per dataclass field; defaults are SUPPRESSed so only given flags override."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        tp, optional = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f.metadata.get("help", "")
        if f.metadata.get("example"):
            help_text += f" (e.g. {f.metadata['example']})"
        help_text += f" [default: {default}]"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
        if tp is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if typing.get_origin(tp) is list:
            kw["nargs"] = "+"
            tp = typing.get_args(tp)[0]
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        kw["type"] = _parse_optional(tp) if optional else tp
        kw["metavar"] = f.name.upper() if not kw.get("choices") else None
        group.add_argument(flag, **kw)


def _parse_optional(tp: type):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "") else tp(text)

    parse.__name__ = tp.__name__
    return parse


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML mapping that names one key twice is an error, not a silent last-one-wins (one run instead of two)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1}; first on line "
                    f"{seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader) or {}  # a SafeLoader subclass
    except FileNotFoundError:
        raise RecitebenchError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise RecitebenchError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError as e:
        raise RecitebenchError(f"{path}: not a text file (byte {e.start} is not UTF-8); expected YAML") from None
    except yaml.constructor.ConstructorError as e:
        raise RecitebenchError(f"{path}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise RecitebenchError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RecitebenchError(f"{path}: expected a mapping of option: value at the top level")
    return data


def sections(values: dict, classes: dict[str, type], where: str) -> dict[str, dict]:
    """A config file's values per stage config: sectioned (`train: {...}`, `model: {...}`) or flat (each field goes
    to the config that has it). Unknown keys are errors naming the key: a flat `epochs: 2` is never ignored."""
    # `model: tiny` is ModelConfig's field, `model: {model: tiny}` its section: a section's value is a mapping
    if any(k in classes and isinstance(v, dict) for k, v in values.items()):
        extra = sorted(str(k) for k in values if k not in classes)
        if extra:
            raise RecitebenchError(f"{where}: {extra[0]!r} is neither a section ({', '.join(classes)}) nor allowed "
                                   f"beside sections; put fields inside their section, or write a flat file")
        out = {}
        for name in classes:
            section = values.get(name)
            if section is not None and not isinstance(section, dict):
                raise RecitebenchError(f"{where}: {name}: must be a mapping of field: value")
            out[name] = dict(section or {})
        return out
    fields = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in classes.items()}
    out = {name: {} for name in classes}
    for key, value in values.items():
        owners = [name for name in classes if key in fields[name]]
        if not owners:
            known = sorted(set().union(*fields.values()))
            raise RecitebenchError(f"{where}: unknown field {key!r} (a section: {', '.join(classes)}; or a field: "
                                   f"{', '.join(known)})")
        for name in owners:
            out[name][key] = value
    return out


def build(cls: type[T], values: dict | None = None, *, where: str = "config") -> T:
    """Build a config from a dict, rejecting unknown keys with the name of the offending field."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise RecitebenchError(
            f"{where}: unknown field {unknown[0]!r} for {cls.__name__} "
            f"(known: {', '.join(sorted(n for n in names if not n.startswith('_')))})"
        )
    hints = typing.get_type_hints(cls)
    for key, val in list(values.items()):
        tp, optional = _base_type(hints[key])
        if val is None:
            if not optional:
                raise RecitebenchError(f"{where}: field {key!r} must not be null")
            continue
        if tp is float and isinstance(val, int) and not isinstance(val, bool):
            values[key] = float(val)
        elif tp in (int, float, str, bool) and not isinstance(val, tp) or (tp is int and isinstance(val, bool)):
            raise RecitebenchError(f"{where}: field {key!r} must be {tp.__name__}, got {val!r}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as e:
        raise RecitebenchError(f"{where}: {e}") from None


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def merge(
    cls: type[T],
    *,
    saved: dict | None = None,
    yaml: dict | None = None,
    flags: argparse.Namespace | None = None,
    where: str = "config",
) -> T:
    """The one merge rule of every subcommand: a resumed run's saved config, then the YAML file, then the flags
    given on the command line (each later one wins), validated as one config."""
    values = {**(saved or {}), **(yaml or {})}
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({k: v for k, v in vars(flags or argparse.Namespace()).items() if k in names})
    return build(cls, values, where=where)


def check_positive(cfg: Any, *names: str) -> None:
    """Raise ValueError for a named field that is set (not None) but not positive (call from __post_init__)."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def check_choices(cfg: Any) -> None:
    """Raise ValueError for a field whose value is not one of its declared choices (call from __post_init__)."""
    for f in dataclasses.fields(cfg):
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            raise ValueError(f"{f.name} must be one of {', '.join(map(str, choices))}; got {getattr(cfg, f.name)!r}")
