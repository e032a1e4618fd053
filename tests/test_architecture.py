"""The shape of core: no import circle, the default model named once, no literal list of algorithms."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vsep_core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports are not imports at run time
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_circle_between_core_modules_at_import_time():
    graph = _import_graph(top_level_only=True)
    # a package's __init__ re-exporting its submodules is not a circle of the design
    for name in list(graph):
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".") and not t.startswith(name + ".")}
    assert _cycles(graph) == []


def test_the_facade_and_the_ensemble_runner_do_not_import_each_other():
    graph = _import_graph(top_level_only=False)
    assert "vsep_core.separator" not in graph["vsep_core.ensemble_run"]


def _grep(text: str) -> list[str]:
    out = subprocess.run(["git", "grep", "-l", "-F", text, "--", "src/"], cwd=SRC.parents[1], capture_output=True,
                         text=True)
    return out.stdout.split()


def test_the_default_model_is_named_in_one_place():
    from vsep_core.config import DEFAULT_MODEL_FILENAME

    assert _grep(DEFAULT_MODEL_FILENAME) == ["src/vsep_core/config.py"]


def test_no_literal_list_of_ensemble_algorithms():
    # the built-in algorithms are registered once (ensemble.py); nothing else spells them as a list
    assert [p for p in _grep('"median_wave", "min_wave"') if p] == []


def test_the_circle_finder_finds_circles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
