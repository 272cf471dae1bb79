"""The code's shape, checked: stages import only lower stages, neutral modules import no stage, the report reads
files only, no module imports itself through a circle (local imports included), functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recitebench"
STAGES = ["data", "models", "train", "recall", "experiment", "report"]  # lowest first
ENTRY = {"cli", "commands", "__main__"}  # the CLI may import any stage


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["recitebench", *parts])


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(path: Path) -> set[str]:
    """Every recitebench module a file imports, at any depth (a function's local import counts), as dotted names:
    `from .x import y` gives recitebench...x.y when y is a module, else recitebench...x."""
    here = _module_name(path).split(".")
    package = here if _is_package(path) else here[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + (node.module.split(".") if node.module else []))
            elif node.module and node.module.split(".")[0] == "recitebench":
                mod = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                out.add(sub if sub in MODULES else mod)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "recitebench")
    return {m for m in out if m in MODULES}


def _files():
    return sorted(p for p in SRC.rglob("*.py"))


MODULES = {_module_name(p): p for p in _files()}



def _top(module: str) -> str:
    """The stage package, or the neutral module's name (recitebench.schema -> schema)."""
    return module.split(".")[1] if module.count(".") else module


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(SRC)))
def test_stages_import_only_lower_stages(path):
    own = _top(_module_name(path))
    if own in ENTRY or own == "recitebench":
        return
    imported = {_top(m) for m in _imports(path)} & set(STAGES)
    if own not in STAGES:  # a neutral module
        assert not imported, f"{path.name} is neutral but imports stage(s) {sorted(imported)}"
        return
    higher = {m for m in imported if STAGES.index(m) > STAGES.index(own)}
    assert not higher, f"{own} imports higher stage(s) {sorted(higher)}"


def test_report_imports_no_stage():
    """The report reads run folders (through the neutral schema, rundir and lock modules), nothing else."""
    bad = {f"{_module_name(p)} -> {m}" for p in _files() if _top(_module_name(p)) == "report"
           for m in _imports(p) if _top(m) in STAGES and _top(m) != "report"}
    assert not bad, sorted(bad)


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself): Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def _graph() -> dict[str, set[str]]:
    """Module -> modules it imports; a package's __init__ is not an edge of its own submodules' imports of
    siblings (importing recitebench.x.y runs recitebench.x first, but that is not a circle unless __init__ imports
    back)."""
    return {m: _imports(p) - {m} for m, p in MODULES.items()}


def test_no_import_circle():
    circles = import_circles(_graph())
    assert not circles, circles


def test_the_circle_finder_finds_circles():
    # the rule would pass vacuously if the finder were broken: a local import that closes a circle must be found
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []
    src = "def f():\n    from .runner import do_run\n"
    tree = ast.parse(src)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "runner" for n in ast.walk(tree))


def test_no_function_longer_than_80_lines():
    long = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not long, long
