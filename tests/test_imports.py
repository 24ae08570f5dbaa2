"""The import graph between llmviz's modules, read from their source with `ast`: every `import` and `from ... import`
at any depth (module level, inside functions and methods, under `if`), relative ones resolved. It has no cycle, and
the core (the model itself) imports nothing from the layers built on it: views, serve and training.

A package's `__init__` that Python runs before one of its modules is not counted as an import of that module's
importer: only what the source names is."""

from __future__ import annotations

import ast
from pathlib import Path

import llmviz

ROOT = Path(llmviz.__file__).resolve().parent
ABOVE_CORE = ("llmviz.views", "llmviz.serve", "llmviz.training")


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name, for its __init__.py)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("llmviz", *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The llmviz modules one module's source imports: `from P import x` is an import of module P.x when there
    is one, else of P; a relative import is resolved against the module's package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for a in node.names:
                found.add(f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as the list of modules around it (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        state[n] = 2
        path.pop()
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_the_import_graph_reads_every_kind_of_import():
    g = import_graph()
    assert len(g) > 40 and "llmviz.core.model" in g and "llmviz.core.arch" in g  # packages by their own name
    assert "llmviz.core.graph" in g["llmviz.core.model"]  # from .graph import ... (relative, module level)
    assert "llmviz.core.arch" in g["llmviz.io.huggingface"]  # from ..core.arch import architecture
    assert "llmviz.core.arch.gpt2" in g["llmviz.core.arch"]  # from . import gpt2: the module, not the package
    assert "llmviz.io.huggingface" in g["llmviz.io.loading"]  # imported inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_llmviz_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_core_imports_nothing_from_the_layers_above_it():
    wrong = sorted(f"{name} imports {m}" for name, deps in import_graph().items()
                   if name.startswith("llmviz.core") for m in deps if m.startswith(ABOVE_CORE))
    assert not wrong, "\n".join(wrong)


def test_config_sits_below_the_architectures_and_the_graph():
    """Every architecture reads ModelConfig, so config imports none of them (it may import the ops), and neither does
    scope.py, through which they declare their tensors: the graph, above them, finds the architecture of its config."""
    g = import_graph()
    lows = [m for m in g if m in ("llmviz.core.config", "llmviz.core.scope") or m.startswith("llmviz.core.ops")]
    assert len(lows) > 8
    for low in lows:
        assert not {m for m in g[low] if m.startswith(("llmviz.core.arch", "llmviz.core.graph", "llmviz.core.model"))}, low
    assert "llmviz.core.arch" in g["llmviz.core.graph"]
    assert {"llmviz.core.config", "llmviz.core.scope"} <= g["llmviz.core.arch.neox"]
