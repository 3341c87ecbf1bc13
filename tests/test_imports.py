"""numpool's modules import each other without a circle, imports inside functions included.

The graph is read from the source with ``ast``, not from ``sys.modules``: an
import inside a function counts as much as one at the top, because an import
that only dodges a circle at load time still ties the two modules together.

An edge ``A -> B`` is drawn for every import in ``A`` (module level, inside
functions and methods, ``importlib.import_module("literal")``) that names
``B``; ``if TYPE_CHECKING:`` blocks do not count. Packages count as modules
(their ``__init__``), and importing ``numpool.a.b`` also runs ``numpool.a``'s
``__init__``: that parent edge is drawn too, except to the importer's own
packages, which are already being imported when it runs. ``from .a import b``
draws ``-> numpool.a`` and, when ``b`` is a submodule, ``-> numpool.a.b``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import numpool

ROOT = Path(numpool.__file__).parent

#: imports by a computed name, which ``ast`` cannot read: (importer, what it imports)
DYNAMIC = {
    # backends._load(): importlib.import_module(f"{__name__}.{name}") for each backend
    "numpool.backends": lambda modules: {
        m for m in modules if m.startswith("numpool.backends.") and "._" not in m
    },
    # integrations._register_joblib(): importlib.import_module(f"{__name__}.joblib")
    "numpool.integrations": lambda modules: {"numpool.integrations.joblib"} & set(modules),
}

#: runtime modules, which drive the planner and the backends
RUNTIME = {"numpool", "numpool._api", "numpool._pool", "numpool._runner", "numpool._engine"}


@dataclass(frozen=True)
class Edge:
    """One import: ``src`` imports ``dst`` at ``where`` (file:line, in function)."""

    src: str
    dst: str
    where: str


def module_name(path: Path, root: Path, package: str) -> str:
    """``numpool.a.b`` for ``root/a/b.py``; a package's ``__init__.py`` is the package."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """(node, enclosing function) of every import and import_module call, skipping
    ``if TYPE_CHECKING:`` blocks."""

    def walk(node: ast.AST, func: str) -> Iterator[tuple[ast.AST, str]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from walk(child, func)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            func = f"{func}.{node.name}" if func else node.name
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)):
            yield node, func
        for child in ast.iter_child_nodes(node):
            yield from walk(child, func)

    yield from walk(tree, "")


def _import_module_arg(call: ast.Call) -> ast.expr | None:
    """The name argument of ``importlib.import_module(...)``/``import_module(...)``."""
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return call.args[0] if name == "import_module" and call.args else None


def _resolve(name: str | None, level: int, package: str) -> str:
    """The absolute name of ``from <level dots><name> import ...`` in ``package``."""
    if level == 0:
        return name or ""
    parts = package.split(".")
    parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def import_graph(root: Path, package: str) -> tuple[set[str], list[Edge], list[str]]:
    """(modules, edges between them, import_module calls with a computed name)."""
    files = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    edges: list[Edge] = []
    computed: list[str] = []
    for src, path in files.items():
        own = src if path.name == "__init__.py" else src.rpartition(".")[0]
        for node, func in _imports(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(root.parent)}:{getattr(node, 'lineno', 0)}"
            where += f" in {func}()" if func else " (module level)"
            named: list[str] = []  # what the import names (a name from a module: the module)
            if isinstance(node, ast.Import):
                named = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module, node.level, own)
                named = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            elif isinstance(node, ast.Call) and (arg := _import_module_arg(node)) is not None:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    bare = arg.value.lstrip(".")
                    named = [_resolve(bare or None, len(arg.value) - len(bare), own)]
                else:
                    computed.append(f"{src} ({where})")
            for target in named:
                if target not in modules:
                    continue  # another package's module
                # the parents' __init__ run first, except the importer's own (running)
                implied = [p for p in _parents(target) if p not in _parents(src)]
                for dst in {*implied, target} - {src}:
                    edges.append(Edge(src, dst, where))
        for dst in sorted(DYNAMIC[src](modules) if src in DYNAMIC else ()):
            edges.append(Edge(src, dst, f"{path.relative_to(root.parent)} (computed name)"))
    return modules, edges, computed


def circles(modules: set[str], edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    succ: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        succ[e.src].add(e.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return sorted(found)


def describe(found: list[list[str]], edges: list[Edge]) -> str:
    """Each circle's modules, then every import between two of them, with its place."""
    lines = []
    for component in found:
        members = set(component)
        lines.append(f"circle of {len(component)} modules: {', '.join(component)}")
        inner = sorted(
            {e for e in edges if e.src in members and e.dst in members},
            key=lambda e: (e.src, e.dst, e.where),
        )
        lines += [f"    {e.src} -> {e.dst}    ({e.where})" for e in inner]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph() -> tuple[set[str], list[Edge], list[str]]:
    return import_graph(ROOT, "numpool")


def test_no_import_circles(graph) -> None:
    """No numpool module imports itself through others, even inside a function."""
    modules, edges, _ = graph
    found = circles(modules, edges)
    assert not found, "import circles:\n" + describe(found, edges)


def test_every_computed_import_is_declared(graph) -> None:
    """An import_module() of a computed name is listed in DYNAMIC, so the graph has it."""
    _, _, computed = graph
    assert all(c.split()[0] in DYNAMIC for c in computed), computed


def test_the_planner_imports_neither_backends_nor_the_runtime(graph) -> None:
    """planner/ decides from data: it imports no backend and nothing that runs calls."""
    _, edges, _ = graph
    bad = [
        e
        for e in edges
        if e.src.startswith("numpool.planner")
        and (e.dst.startswith("numpool.backends") or e.dst in RUNTIME)
    ]
    assert not bad, "\n".join(f"{e.src} -> {e.dst} ({e.where})" for e in bad)


def test_backends_import_nothing_of_the_planner(graph) -> None:
    """A backend declares facts; the runtime turns them into the planner's data."""
    _, edges, _ = graph
    bad = [
        e
        for e in edges
        if e.src.startswith("numpool.backends") and e.dst.startswith("numpool.planner")
    ]
    assert not bad, "\n".join(f"{e.src} -> {e.dst} ({e.where})" for e in bad)


def test_the_leaves_import_nothing_of_numpool(graph) -> None:
    """The exceptions, the version and the backend names are importable from anywhere."""
    _, edges, _ = graph
    leaves = {"numpool._errors", "numpool._version", "numpool._cpus"}
    bad = [e for e in edges if e.src in leaves]
    assert not bad, "\n".join(f"{e.src} -> {e.dst} ({e.where})" for e in bad)


def test_the_backend_names_are_the_registered_backends() -> None:
    """_checks knows the backends by name without importing them: the names must agree."""
    from numpool import backends
    from numpool._checks import BACKEND_NAMES

    assert list(BACKEND_NAMES) == backends.names()


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Imports in functions, submodules named by from-imports and parent packages count;
    TYPE_CHECKING imports do not."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": "A = 1\ndef f():\n    from .sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import c\n"
            "import importlib\nclass K:\n    def m(self):\n"
            "        importlib.import_module('pkg.c')\n"
        ),
        "c.py": "from . import a\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    modules, edges, computed = import_graph(pkg, "pkg")
    pairs = {(e.src, e.dst) for e in edges}
    assert pairs == {
        ("pkg", "pkg.a"),
        ("pkg.a", "pkg.sub"),
        ("pkg.a", "pkg.sub.b"),
        ("pkg.sub.b", "pkg.c"),
        ("pkg.c", "pkg.a"),
    }
    assert not computed
    (where,) = [e.where for e in edges if e.src == "pkg.sub.b"]
    assert where.endswith("in K.m()")
    assert circles(modules, edges) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


#: what ``import numpool`` leaves for the first use that needs it (each costs a
#: process 3-9 ms at import: multiprocessing and its executor only when processes
#: start, psutil on a first call, the rest when the machine is measured)
NOT_AT_IMPORT = (
    "concurrent.futures.process",
    "multiprocessing",
    "psutil",
    "secrets",
    "statistics",
    "tempfile",
)


def _imported_by(steps: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter imported while it ran ``steps`` after
    ``import sys, numpy as np`` (what NumPy itself imports, on the NumPy installed,
    is not numpool's)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "before = set(sys.modules)\n"
        f"{steps}\n"
        f"print(sorted(m for m in {watched!r} if m in set(sys.modules) - before))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    got: list[str] = ast.literal_eval(r.stdout.strip())
    return got


def test_import_numpool_leaves_what_a_first_call_does_not_need() -> None:
    assert _imported_by("import numpool", NOT_AT_IMPORT) == []


#: what reading the backends' facts and a first call on threads leave unimported (the
#: processes backend's module is imported, its machinery only where workers start:
#: ~20 ms, which auto's first call paid in every process)
NOT_AT_FIRST_CALL = (
    "concurrent.futures.process",
    "multiprocessing",
    "numpool.backends._context",
    "psutil",
    "socket",
    "subprocess",
    "uuid",
)


def test_a_first_call_and_the_backends_facts_leave_what_workers_need() -> None:
    steps = (
        "import numpool\n"
        "from numpool import backends\n"
        "for cls in backends.auto_choices():\n"
        "    cls.unavailable(np.exp)\n"
        "numpool.apply(np.exp, np.ones(100_000), backend='threads')\n"
        "assert 'numpool.backends.processes' in sys.modules"
    )
    assert _imported_by(steps, NOT_AT_FIRST_CALL) == []
