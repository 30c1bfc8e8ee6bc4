"""The shape of common/: dependencies point down, no import circle, no parsed-flags object travelling deep."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# bottom to top; a module may import from its own layer and the layers below it
LAYERS = [
    {"errors", "runtime", "assets", "config"},
    {"data"},
    {"model"},
    {"train"},
    {"evaluate"},
    {"report"},
    {"tasks"},
    {"run"},
    {"serve"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in (ROOT / "common").rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The modules of common/ that `path` imports (anywhere in it, function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("common"):
            for alias in node.names:  # `from common.data import tokens` imports the submodule common.data.tokens
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found & known


def layer(name: str) -> int:
    top = name.split(".")[1] if "." in name else ""
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_common_has_no_import_circle():
    graph = {name: imports(path, set(modules())) - {name} for name, path in modules().items()}
    # a package's __init__ re-exports its modules: an edge pkg -> pkg.module is not a way back up
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_dependencies_point_down():
    wrong = [
        (name, other)
        for name, path in modules().items()
        if name != "common"
        for other in imports(path, set(modules()))
        if other != "common" and layer(other) > layer(name)
    ]
    assert not wrong, wrong


def test_every_subpackage_says_what_it_is_for():
    for init in (ROOT / "common").glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), init


def test_no_parsed_flags_object_and_no_hand_kept_flag_lists():
    for path in [*(ROOT / "common").rglob("*.py"), *(ROOT / "recipes").glob("*.py")]:
        text = path.read_text()
        assert "getattr(args" not in text and "argparse.Namespace" not in text, path
        for old_list in ("_NOT_FROM_CONFIG", "_NOT_SEARCHABLE", "_SEARCH_FLAGS", "_FOLD_FLAGS", "without_flags"):
            assert old_list not in text, (path, old_list)


def test_trl_is_a_reference_for_tests_and_benchmarks_never_a_dependency_of_the_recipes():
    for path in [*(ROOT / "common").rglob("*.py"), *(ROOT / "recipes").glob("*.py")]:
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(name == "trl" or name.startswith("trl.") for name in imported), path


def test_recipes_stay_short_and_never_call_themselves():
    for path in (ROOT / "recipes").glob("[!_]*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 100, path
        assert "kfold.run" not in text and "search.run" not in text, path
