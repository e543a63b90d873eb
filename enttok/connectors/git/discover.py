"""Which folders to sync: the listed ones, and those found under search roots (blocking)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from attrs import frozen

#: Folders never searched (dependencies and caches hold many vendored repositories).
SKIPPED = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "vendor",
                     "Library", "AppData"})
#: Folders looked at per search, at most: a root like C{~} must not take minutes.
MAX_FOLDERS = 20_000


@frozen
class Candidates:
    """Folders that may be repositories (git decides), and what was wrong with others."""

    paths: list[str]
    warnings: list[str]


def _is_repo(path: str) -> bool:
    return os.path.exists(os.path.join(path, ".git")) or (
        path.endswith(".git") and os.path.isfile(os.path.join(path, "HEAD")))


def _search(root: str, depth: int, found: list[str], warnings: list[str]) -> None:
    """Breadth first, C{depth} levels below C{root}, not inside repositories."""
    level = [root]
    seen = 0
    for current_depth in range(depth + 1):
        below: list[str] = []
        for folder in level:
            if _is_repo(folder):
                found.append(folder)
                continue
            if current_depth == depth:
                continue
            try:
                with os.scandir(folder) as entries:
                    names = sorted(e.name for e in entries
                                   if e.is_dir(follow_symlinks=False)
                                   and not e.name.startswith(".") and e.name not in SKIPPED)
            except OSError:
                continue  # unreadable: nothing to find there
            for name in names:
                seen += 1
                if seen > MAX_FOLDERS:
                    warnings.append(f"{root}: stopped after {MAX_FOLDERS} folders; "
                                    f"list repositories or lower search_depth")
                    return
                below.append(os.path.join(folder, name))
        level = below


def candidates(repositories: Sequence[str], roots: Sequence[str], depth: int) -> Candidates:
    """
    The listed C{repositories} that exist, then the repositories found under
    C{roots} (at most C{depth} levels down), each once, by real path.
    """
    paths: list[str] = []
    warnings: list[str] = []
    for path in repositories:
        if not os.path.isdir(path):
            warnings.append(f"{path}: no such folder")
            continue
        paths.append(path)
    for root in roots:
        if not os.path.isdir(root):
            warnings.append(f"{root}: no such folder (search root)")
            continue
        _search(root, depth, paths, warnings)
    unique: dict[str, str] = {}
    for path in paths:
        unique.setdefault(os.path.realpath(path), path)
    return Candidates(list(unique), warnings)
