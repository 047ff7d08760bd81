"""The package's shape: imports point down the flow, no cycles, short functions.

Read from the source with ``ast`` (nothing is imported), so every import counts: module level,
inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "activity"

#: The flow, lowest first: a module may import from its own layer or the ones before it.
LAYERS = ["base", "data", "transforms", "features", "temporal", "inference", "evaluation", "workflows", "serve", "cli"]
BASE = {"errors", "io", "config", "registry", "distributed", "progress"}
ENTRY = {"__main__"}  # python -m activity: the command line
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = ["activity", *f.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return 0
    if parts[1] in ENTRY:
        return LAYERS.index("cli")
    return LAYERS.index(parts[1])


def _target(name: str) -> str:
    """The module an imported dotted name lives in (``activity.cli.output`` or its package)."""
    while name not in MODULES:
        name = name.rsplit(".", 1)[0]
    return name


def imports(module: str) -> set[str]:
    """The package modules ``module`` imports, anywhere in its source."""
    tree = ast.parse(MODULES[module].read_text())
    facade = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
              for n in ast.walk(f)} if module == "activity" else set()  # the package's lazy re-exports
    out = set()
    for node in ast.walk(tree):
        if id(node) in facade:
            continue
        if isinstance(node, ast.Import):
            out |= {_target(a.name) for a in node.names if a.name.split(".")[0] == "activity"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "activity":
            out |= {_target(f"{node.module}.{a.name}") for a in node.names}
    out.discard(module)
    return out


GRAPH = {m: imports(m) for m in MODULES}


def test_the_layers_cover_every_subpackage():
    assert {m.split(".")[1] for m in MODULES if m.count(".")} <= set(LAYERS) | BASE | ENTRY


def upward(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a later step of the flow."""
    return sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts if layer(t) > layer(m))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk closes, as the list of modules around it."""
    found, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                found.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_imports_only_point_down_the_flow():
    assert not upward(GRAPH)


def test_no_import_cycles():
    assert not cycles(GRAPH), "; ".join(" -> ".join(c) for c in cycles(GRAPH))


def test_the_checks_catch_what_they_are_for():
    fake = {"activity.inference.recognizer": {"activity.inference.timeline", "activity.features.extract"},
            "activity.inference.timeline": {"activity.inference.recognizer"},
            "activity.features.extract": {"activity.cli.main"}, "activity.cli.main": set()}
    assert cycles(fake) == [["activity.inference.recognizer", "activity.inference.timeline", "activity.inference.recognizer"]]
    assert upward(fake) == ["activity.features.extract -> activity.cli.main"]
    # and the graph is read right: a module imported inside a function, a module named by `from PACKAGE import`
    assert "activity.workflows" in GRAPH["activity.cli.commands"]
    assert "activity.cli.output" in GRAPH["activity.cli.demo"]
    assert "activity.inference.recognizer" not in GRAPH["activity.inference.timeline"]  # it types with a protocol


def outside_the_workflows(graph: dict[str, set[str]], module: str = "activity.cli.commands") -> list[str]:
    """What ``module`` imports of the package besides :mod:`activity.workflows` and the CLI's own modules."""
    return sorted(t for t in graph[module] if t != "activity.workflows" and not t.startswith("activity.cli"))


def test_the_commands_call_only_the_workflows():
    """Every command is a workflow call and some printing: a notebook or a server gets the same from the same call."""
    assert outside_the_workflows(GRAPH) == []
    assert outside_the_workflows(GRAPH, "activity.serve.app") == ["activity.serve.reports"]  # the server too
    assert outside_the_workflows({"activity.cli.commands": {"activity.workflows", "activity.cli.output",
                                                             "activity.inference.explain"}}) == ["activity.inference.explain"]


def _long_functions() -> list[str]:
    out = []
    for module, f in MODULES.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
                n = node.end_lineno - start + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{module}.{node.name}: {n} lines")
    return out


def test_no_function_is_longer_than_60_lines_without_its_docstring():
    assert not _long_functions()
