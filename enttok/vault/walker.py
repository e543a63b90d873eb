"""Find the Markdown notes of a vault folder, quickly and safely.

Blocking: run it on a worker thread.
"""

from __future__ import annotations

import operator
import os
import stat
import unicodedata
from collections.abc import Callable
from typing import NamedTuple

from attrs import frozen

SKIPPED_DIRS = frozenset({"node_modules"})


class FileEntry(NamedTuple):
    """A note file; C{rel_path} is POSIX-style and NFC-normalised, C{abs_path} is as on disk.

    A named tuple: a scan makes one per note (20,000 and more), at a third of the
    cost of a frozen attrs class.
    """

    rel_path: str
    abs_path: str
    size: int
    mtime_ns: int


@frozen
class WalkWarning:
    """Something under C{rel_path} was skipped; C{message} says why."""

    rel_path: str
    message: str


def is_inside(root: str, path: str) -> bool:
    """Whether C{path}, with symlinks resolved, is C{root} or below it (also resolved)."""
    real_root = os.path.normcase(os.path.realpath(root))
    real = os.path.normcase(os.path.realpath(path))
    return _contains(real_root, real)


def _contains(real_root: str, real: str) -> bool:
    try:
        return os.path.commonpath([real_root, real]) == real_root
    except ValueError:  # different drives, or relative and absolute
        return False


def list_notes(root: str | os.PathLike[str], should_stop: Callable[[], bool] = lambda: False,
               max_bytes: int = 5 * 1024 * 1024) -> tuple[list[FileEntry], list[WalkWarning]]:
    """The C{.md} files below C{root}, and a L{WalkWarning} for each one skipped.

    Hidden entries (C{.obsidian}, C{.git}, C{.trash}...) and C{node_modules} are ignored.
    The order is deterministic: a folder's notes by name, then its subfolders by name,
    depth first. Symlinks are followed only when they resolve inside C{root}; symlinked
    folders are walked after the real tree, and no real folder is walked twice (so loops
    end). C{should_stop} is called before each folder is read; the walk ends when it
    returns true.

    @param max_bytes: larger files give a warning instead of an entry.
    @raise OSError: C{root} itself cannot be listed.
    """
    top = os.path.abspath(os.fspath(root))
    walk = _Walk(os.path.normcase(os.path.realpath(top)), max_bytes)
    walk.first_visit(top)
    files: list[FileEntry] = []
    warnings: list[WalkWarning] = []
    add, warn = files.append, warnings.append
    pending = [("", top)]
    while pending and not should_stop():
        rel_dir, abs_dir = pending.pop()
        prefix = rel_dir + "/" if rel_dir else ""
        try:
            names, entries, clashes = _listing(abs_dir)
        except OSError as e:
            if not rel_dir:
                raise
            warn(WalkWarning(rel_dir, f"cannot read folder: {e.strerror or e}"))
            names, entries, clashes = [], [], []  # symlinked folders may still be waiting
        for name in clashes:
            warn(WalkWarning(prefix + name, "skipped: another entry has the same name after "
                                            "Unicode normalisation"))
        subdirs: list[tuple[str, str]] = []
        # The common case inline (a scan's time is mostly this loop): DirEntry
        # answers is_file/is_dir without a system call on most file systems.
        for name, entry in zip(names, entries, strict=True):
            try:
                if name.endswith(_NOTE_SUFFIXES) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_size <= max_bytes:
                        add(FileEntry(prefix + name, entry.path, st.st_size, st.st_mtime_ns))
                    else:
                        warn(too_large(prefix + name, st.st_size))
                elif entry.is_dir(follow_symlinks=False):
                    if name not in SKIPPED_DIRS and walk.first_visit(entry.path):
                        subdirs.append((prefix + name, entry.path))
                elif entry.is_symlink():
                    walk.symlink(prefix + name, entry, add, warn)
            except FileNotFoundError:  # removed while we were looking
                continue
            except OSError as e:
                warn(WalkWarning(prefix + name, f"cannot read: {e.strerror or e}"))
        # Depth-first in name order: push subfolders in reverse so the first is walked next.
        pending.extend(reversed(subdirs))
        # Symlinked folders wait until the real tree is done, so that notes keep their
        # real paths and a link to a folder already walked is not followed.
        while not pending and walk.linked:
            rel_link, abs_link = walk.linked.pop(0)
            try:
                first = walk.first_visit(abs_link)
            except OSError as e:  # the linked folder went away meanwhile
                warn(WalkWarning(rel_link, f"cannot read folder: {e.strerror or e}"))
                continue
            if first:
                pending.append((rel_link, abs_link))
    return files, warnings


_NOTE_SUFFIXES = (".md", ".MD", ".Md", ".mD")


def too_large(rel: str, size: int) -> WalkWarning:
    return WalkWarning(rel, f"file too large: {size} bytes")

_NAME = operator.attrgetter("name")


def _listing(path: str) -> tuple[list[str], list[os.DirEntry[str]], list[str]]:
    """
    The visible entries of folder C{path}, sorted by NFC name: C{(NFC names,
    entries, clashes)}, where clashes are the names of entries left out because
    an earlier entry has the same NFC name.
    """
    with os.scandir(path) as it:
        entries = [e for e in it if not e.name.startswith(".")]
    entries.sort(key=_NAME)
    names = list(map(_NAME, entries))
    if all(map(str.isascii, names)):  # the common case: names already NFC and unique
        return names, entries, []
    pairs = sorted(((unicodedata.normalize("NFC", e.name), e.name, e) for e in entries),
                   key=lambda pair: pair[:2])
    names, entries, clashes = [], [], []
    for nfc, _, entry in pairs:
        if names and names[-1] == nfc:
            clashes.append(nfc)
        else:
            names.append(nfc)
            entries.append(entry)
    return names, entries, clashes


class _Walk:
    """State of one walk: folders already seen and symlinked folders still to follow."""

    def __init__(self, real_root: str, max_bytes: int) -> None:
        self.real_root = real_root
        self.max_bytes = max_bytes
        self.linked: list[tuple[str, str]] = []
        self._visited: set[tuple[int, int]] = set()

    def symlink(self, rel: str, entry: os.DirEntry[str], add: Callable[[FileEntry], None],
                warn: Callable[[WalkWarning], None]) -> None:
        """A symlink: a note or a folder to follow later if it stays inside the vault."""
        is_note = entry.name.endswith(_NOTE_SUFFIXES)
        try:
            st = os.stat(entry.path)
        except OSError:
            if is_note:
                warn(WalkWarning(rel, "skipped: broken symlink"))
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if not (is_dir or (is_note and stat.S_ISREG(st.st_mode))):
            return
        real = os.path.normcase(os.path.realpath(entry.path))
        if not _contains(self.real_root, real):
            warn(WalkWarning(rel, "skipped: symlink to outside the vault"))
        elif not is_dir:
            if st.st_size <= self.max_bytes:
                add(FileEntry(rel, entry.path, st.st_size, st.st_mtime_ns))
            else:
                warn(too_large(rel, st.st_size))
        elif entry.name not in SKIPPED_DIRS:
            self.linked.append((rel, entry.path))

    def first_visit(self, path: str) -> bool:
        """Whether the folder at C{path} (symlinks followed) was not seen before; marks it."""
        # os.stat, not DirEntry.stat, which has no inode number on Windows.
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        if key in self._visited:
            return False
        self._visited.add(key)
        return True


def note_folders(root: str | os.PathLike[str]) -> list[str]:
    """
    The folders below C{root} that may hold notes, each after its parent (blocking).

    Hidden folders and C{node_modules} are left out, as by L{list_notes}; symlinked
    folders too: the real folders they point to inside the vault are listed anyway.
    Folders that cannot be read are skipped.
    """
    found: list[str] = []
    pending = [os.fspath(root)]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                subfolders = sorted(e.path for e in it if not e.name.startswith(".")
                                    and e.name not in SKIPPED_DIRS
                                    and e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        found.extend(subfolders)
        pending.extend(reversed(subfolders))
    return found

