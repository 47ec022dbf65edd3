"""The package's import directions, read from the source: interfaces (cli, web) → app →
evaluate/train → pipeline → model → warp → stage → face3d → io, execute and threads → errors;
nothing imports upward, the interfaces import only the use cases, io, execute and threads know
no faces, and there are no cycles.
The package root is the one exception: its ``facereenact.animate`` is a façade over the use case
(imported inside the function, so ``import facereenact`` stays light)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facereenact"

#: Each part of the package and its layer; a module may import its own part and lower layers.
LAYER_OF = {
    "errors": 0,
    "__init__": 0,
    "io": 1,
    "execute": 1,
    "threads": 1,
    "face3d": 2,
    "stage": 3,
    "warp": 4,
    "model": 5,
    "pipeline": 6,
    "evaluate": 7,
    "train": 7,
    "app": 8,
    # the web page's server is started by the command line's ``serve``: the command line sits
    # above it, and the page never imports the command line
    "web": 9,
    "cli": 10,
    "__main__": 11,
}
#: What the interfaces may import: the use cases, the evaluation and training entry points, the
#: execution backends, the errors and the package version.
INTERFACE_MAY_IMPORT = {"app", "evaluate", "train", "execute", "errors", "__init__", "cli", "web"}
#: The package root's one-call API (``facereenact.animate``) may reach the use case it wraps.
ROOT_FACADE = {"facereenact.app.api", "facereenact.app.animate"}
#: Parts that must know nothing of faces (and so of anything above the errors and io).
FACELESS = {"io": {"io", "errors"}, "execute": {"execute", "errors"}, "threads": {"threads"}}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    name = ".".join(relative.parts)
    return name.removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """Every module of the package → the package's modules it imports (anywhere in the file)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "facereenact":
                found[module].add(node.module)
                found[module].update(f"{node.module}.{alias.name}" for alias in node.names if (PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")).exists())
            elif isinstance(node, ast.Import):
                found[module].update(alias.name for alias in node.names if alias.name.split(".")[0] == "facereenact")
        found.setdefault(module, set())
    return found


IMPORTS = _imports()


def test_every_part_has_a_layer() -> None:
    assert {_part(m) for m in IMPORTS} <= set(LAYER_OF)


@pytest.mark.parametrize("module", sorted(IMPORTS))
def test_nothing_imports_upward(module: str) -> None:
    mine = _part(module)
    allowed = ROOT_FACADE if module == "facereenact" else set()
    upward = sorted(m for m in IMPORTS[module] if _part(m) != mine and LAYER_OF[_part(m)] >= LAYER_OF[mine] and m not in allowed)
    assert not upward, f"{module} imports {upward} from its own layer or above"
    if mine in {"cli", "web"}:
        beyond = sorted(m for m in IMPORTS[module] if _part(m) not in INTERFACE_MAY_IMPORT)
        assert not beyond, f"{module} is an interface: it imports the use cases (facereenact.app), not {beyond}"
    if mine in FACELESS:
        beyond = sorted(m for m in IMPORTS[module] if _part(m) not in FACELESS[mine])
        assert not beyond, f"{module} must know nothing of faces, yet imports {beyond}"


def test_no_cycles() -> None:
    graph = {m: {i for i in IMPORTS[m] if i in IMPORTS and i != m} for m in IMPORTS}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' → '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
