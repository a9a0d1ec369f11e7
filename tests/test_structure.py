"""The architecture drawn from the code: modules as rooms, imports as arrows. No circle; no arrow
from a lower layer back up."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "atml"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every atml module → the atml modules it imports (at any depth in its code)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name, found = module_name(path), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("atml"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("atml"))
        graph[name] = found
    return {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}


def test_the_import_graph_has_no_circle():
    graph = imports()
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                pytest.fail("import circle: " + " → ".join([*trail[trail.index(target) :], target]))
            if target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize(
    "lower, upper",
    [
        ("atml.analysis", "atml."),  # pure functions: no atml module at all beyond analysis itself
        ("atml.seed_summary", "atml.report"),
        ("atml.models", "atml.experiments"),
        ("atml.data", "atml.experiments"),
        ("atml.training", "atml.experiments"),
        ("atml.cli", "atml.experiments."),  # the CLI reaches experiments through the registry only
        ("atml.cli", "atml.models"),
    ],
)
def test_no_import_from_a_lower_layer_back_up(lower, upper):
    for module, targets in imports().items():
        if module == lower or module.startswith(lower + "."):
            bad = [t for t in targets if t.startswith(upper) and not t.startswith(lower)]
            assert not bad, f"{module} imports {bad}"
