"""
The layer order of docs/architecture.md: no module imports from a higher layer.

Every module under C{enttok/} is parsed with C{ast}; every import counts, also
those inside functions and under C{TYPE_CHECKING}.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "enttok"

#: Lowest first. A layer holds groups (module prefixes); a module may import
#: from any lower layer and from its own group, not from a peer group.
LAYERS: list[list[str]] = [
    ["enttok", "enttok.common"],
    ["enttok.validation", "enttok.threads", "enttok.periodic", "enttok.runtime",
     "enttok.logs", "enttok.config", "enttok.lifecycle"],
    ["enttok.store"],
    ["enttok.events"],
    ["enttok.jobs"],
    ["enttok.vault"],
    ["enttok.index", "enttok.connectors", "enttok.maintenance"],
    ["enttok.plugins"],
    ["enttok.connectors.loader", "enttok.suggest", "enttok.settings"],
    ["enttok.jobs.scheduler"],
    ["enttok.api", "enttok.events.websocket"],
    ["enttok.service"],
    ["enttok.tap", "enttok.frozen", "enttok.__main__"],
]


def group_of(module: str) -> tuple[int, str] | None:
    """The layer and group (longest matching prefix) of C{module}."""
    best: tuple[int, str] | None = None
    for level, groups in enumerate(LAYERS):
        for group in groups:
            inside = module == group or (group != "enttok" and module.startswith(group + "."))
            if inside and (best is None or len(group) > len(best[1])):
                best = (level, group)
    return best


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str, root: Path = ROOT) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported(source: str, module: str, is_package: bool,
             exists: Any = is_module) -> Iterator[tuple[int, str]]:
    """C{(line, module)} for every C{enttok} module C{source} imports, anywhere."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield node.lineno, full if exists(full) else base


#: What modules outside C{enttok/index/} may import from it: the facade
#: (C{VaultIndex}), search, the job types, the index's service, and the model,
#: vector and embedder seams the service tree wires. The rest (the hnsw mirrors,
#: the model set, the embedding pipeline, the SQL, the workers) is the index's own.
INDEX_PUBLIC = frozenset(f"enttok.index.{name}" for name in (
    "indexer", "search", "jobs", "service", "watcher", "models", "vectors",
    "vector_client", "embedder", "text"))


def index_internals(source: str, module: str, is_package: bool = False,
                    exists: Any = is_module) -> list[str]:
    """The imports of index internals by C{module} (outside C{enttok.index}), one line each."""
    if module == "enttok.index" or module.startswith("enttok.index."):
        return []
    return [f"{module}:{line} imports {target}, inside enttok/index/"
            for line, target in imported(source, module, is_package, exists)
            if target.startswith("enttok.index.") and not any(
                target == public or target.startswith(public + ".") for public in INDEX_PUBLIC)]


def upward_imports(source: str, module: str, is_package: bool = False,
                   exists: Any = is_module) -> list[str]:
    """The imports of C{module} that break the layer order, one line each."""
    own = group_of(module)
    if own is None:
        return [f"{module} is in no layer"]
    problems = []
    for line, target in imported(source, module, is_package, exists):
        if target != "enttok" and not target.startswith("enttok."):
            continue
        theirs = group_of(target)
        if theirs is None:
            problems.append(f"{module}:{line} imports {target}, which is in no layer")
        elif theirs[0] > own[0] or (theirs[0] == own[0] and theirs[1] != own[1]):
            problems.append(f"{module}:{line} imports {target} "
                            f"(layer {theirs[0]} {theirs[1]} from layer {own[0]} {own[1]})")
    return problems


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield module_name(path), path


class LayerTests(SynchronousTestCase):
    """The package keeps its layer order."""

    def test_no_upward_import(self) -> None:
        problems = [p for name, path in modules()
                    for p in upward_imports(path.read_text(encoding="utf-8"), name,
                                            path.name == "__init__.py")]
        self.assertEqual(problems, [])

    def test_index_internals_stay_inside(self) -> None:
        problems = [p for name, path in modules()
                    for p in index_internals(path.read_text(encoding="utf-8"), name,
                                             path.name == "__init__.py")]
        self.assertEqual(problems, [])

    def test_an_import_of_index_internals_is_found(self) -> None:
        source = ("from enttok.index.mirror import VectorMirror\n"
                  "from enttok.index import store\n"
                  "from enttok.index.indexer import VaultIndex\n")
        self.assertEqual(len(index_internals(source, "enttok.api.search")), 2)
        self.assertEqual(index_internals(source, "enttok.index.search"), [])

    def test_every_module_has_a_layer(self) -> None:
        self.assertEqual([name for name, _ in modules() if group_of(name) is None], [])

    def test_every_group_is_documented(self) -> None:
        doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
        missing = [g for groups in LAYERS for g in groups
                   if g != "enttok" and g.removeprefix("enttok.") not in doc]
        self.assertEqual(missing, [])

    def test_upward_import_in_a_function_is_found(self) -> None:
        source = "def f():\n    from enttok.api.guard import Guard\n"
        self.assertEqual(len(upward_imports(source, "enttok.events.websocket")), 1)
        self.assertEqual(len(upward_imports(source, "enttok.lifecycle")), 1)
        self.assertEqual(upward_imports(source, "enttok.service"), [])

    def test_peer_groups_do_not_import_each_other(self) -> None:
        source = "import enttok.index.search\n"
        self.assertEqual(len(upward_imports(source, "enttok.connectors.github.sync")), 1)
        self.assertEqual(upward_imports(source, "enttok.index.jobs"), [])

    def test_relative_and_submodule_imports_resolve(self) -> None:
        self.assertEqual(len(upward_imports("from .. import api\n", "enttok.store.db")), 1)
        engine = "enttok.jobs.engine"
        self.assertEqual(len(upward_imports("from enttok import suggest\n", engine)), 1)
        self.assertEqual(upward_imports("from enttok import __version__\n", engine), [])
        self.assertEqual(upward_imports("from . import db\n", "enttok.store", True), [])
