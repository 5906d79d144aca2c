"""The import graph of ``trm_bounds``: no cycle, and the layer rule (issue 16).

Every module's in-package imports are read with :mod:`ast` -- at module level *and* inside
functions (a function-local import hides an edge, it does not remove it) -- and resolved to
the module they load: ``from trm_bounds.x import y`` is an edge to ``trm_bounds.x.y`` when
that is a module, else to ``trm_bounds.x``.  A package's ``__init__`` is the module named
after the package.  Nothing is imported, so the test needs no extra and no CPU-specific
behaviour.

Layer rule: the core (bounds, symbolic, divergences, instances, engines, report, certify,
planner) never imports plot, studies, evaluate, logs or cli; plot never imports studies;
nothing in ``trm_bounds`` imports ``experiments``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "trm_bounds"

#: Edges ``(importer, imported)`` that still lie on an import cycle, each owned by another
#: change of issue 16 (evaluate/run <-> evaluate/ray_engine: the evaluate engineer; plot <->
#: studies: the plot engineer).  The lead empties this set when those branches are merged;
#: the test fails on any cycle through an edge not listed here, and on a listed edge that no
#: longer lies on a cycle (so the set cannot go stale).
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()

#: Imports that still break the layer rule, each removed by another change of issue 16 (plot
#: draws a statistic of a study and reruns studies: the plot engineer).  Emptied by the lead
#: at merge like :data:`KNOWN_CYCLE_EDGES`; a listed import that is gone fails the test.
KNOWN_LAYER_BREAKS: set[tuple[str, str]] = set()

CORE = ("bounds", "symbolic", "divergences", "instances", "engines", "report", "certify",
        "planner")
UPPER = ("plot", "studies", "evaluate", "logs", "cli")


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(base: str, names: list[str]) -> set[str]:
    """The modules ``from base import names`` loads (``base`` itself, or its submodules)."""
    subs = {f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES}
    return subs if len(subs) == len(names) else subs | {base}


def _is_type_checking(node: ast.AST) -> bool:
    """An ``if TYPE_CHECKING:`` block (its imports never run)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str) -> set[str]:
    """The in-package modules ``name`` imports anywhere in its source (plus ``experiments``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {id(n) for node in ast.walk(tree) if _is_type_checking(node)
                   for n in ast.walk(node)}  # fmt: skip
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("trm_bounds", "experiments"):
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] == "experiments":
                out.add(base)
            elif base.split(".")[0] == "trm_bounds":
                out |= _resolve(base, [a.name for a in node.names])
    out.discard(name)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_graph_is_read():
    """The parser sees the package's imports (a broken parser would find no cycle)."""
    assert "trm_bounds.bounds.compute" in GRAPH["trm_bounds.bounds"]
    assert "trm_bounds.bounds.validate" in GRAPH["trm_bounds.bounds.compute"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    """No cycle among trm_bounds modules, up to the listed edges other changes remove."""
    pruned = {v: {w for w in ws if (v, w) not in KNOWN_CYCLE_EDGES} for v, ws in GRAPH.items()}
    cycles = _cycles(pruned)
    assert not cycles, "import cycle(s): " + "; ".join(" <-> ".join(c) for c in cycles)
    on_cycle = {(v, w) for comp in _cycles(GRAPH) for v in comp for w in GRAPH[v] if w in comp}
    stale = KNOWN_CYCLE_EDGES - on_cycle
    assert not stale, f"no longer on a cycle, remove from KNOWN_CYCLE_EDGES: {sorted(stale)}"


def _layer(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def _breaks(name: str) -> list[str]:
    """The imports of ``name`` that break the layer rule."""
    layer, targets = _layer(name), GRAPH[name]
    bad = [t for t in targets if t.split(".")[0] == "experiments"]
    if layer in CORE:
        bad += [t for t in targets if _layer(t) in UPPER]
    if layer == "plot":
        bad += [t for t in targets if _layer(t) == "studies"]
    return sorted(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_layer_rule(name):
    """Core never imports the upper layers; plot never imports studies; no experiments."""
    bad = [t for t in _breaks(name) if (name, t) not in KNOWN_LAYER_BREAKS]
    assert not bad, f"{name} ({_layer(name) or 'top'}) imports {bad}"


def test_known_layer_breaks_are_current():
    stale = {(v, w) for v, w in KNOWN_LAYER_BREAKS if w not in _breaks(v)}
    assert not stale, f"gone, remove from KNOWN_LAYER_BREAKS: {sorted(stale)}"


def test_layer_rule_is_checked():
    """The rule bites: a core module importing cli, plot importing a study, are found."""
    GRAPH["trm_bounds.bounds.table"].add("trm_bounds.cli")
    GRAPH["trm_bounds.plot.style"].add("trm_bounds.studies.worst_case")
    try:
        assert _breaks("trm_bounds.bounds.table") == ["trm_bounds.cli"]
        assert _breaks("trm_bounds.plot.style") == ["trm_bounds.studies.worst_case"]
    finally:
        GRAPH["trm_bounds.bounds.table"].discard("trm_bounds.cli")
        GRAPH["trm_bounds.plot.style"].discard("trm_bounds.studies.worst_case")
