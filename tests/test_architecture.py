"""The code's shape, checked: stages import only lower stages, neutral modules import no stage, functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recitebench"
STAGES = ["data", "models", "train", "recall", "experiment", "report"]  # lowest first
ENTRY = {"cli", "commands", "__main__"}  # the CLI may import any stage


def _imported_stages(path: Path) -> set[str]:
    """Top-level recitebench modules or packages a file imports (relative or absolute)."""
    pkg = path.relative_to(SRC).parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[: len(pkg) - node.level + 1]) if node.level <= len(pkg) + 1 else []
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts[0]] if parts else [a.name for a in node.names]
            elif node.module and node.module.startswith("recitebench."):
                names = [node.module.split(".")[1]]
            else:
                continue
            out.update(names)
    return out


def _files():
    return sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(SRC)))
def test_stages_import_only_lower_stages(path):
    parts = path.relative_to(SRC).parts
    own = parts[0] if len(parts) > 1 else Path(parts[0]).stem
    if own in ENTRY:
        return
    imported = {m for m in _imported_stages(path) if m in STAGES}
    if own not in STAGES:  # a neutral module
        assert not imported, f"{path.name} is neutral but imports stage(s) {sorted(imported)}"
        return
    higher = {m for m in imported if STAGES.index(m) > STAGES.index(own)}
    assert not higher, f"{own} imports higher stage(s) {sorted(higher)}"


def test_no_function_longer_than_80_lines():
    long = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not long, long
