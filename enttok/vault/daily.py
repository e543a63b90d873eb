"""Daily notes on disk: where a day's note lives, what state it is in, and safe appends.

Blocking: run these on a worker thread. An append never loses the user's text: the
new content goes to a temporary file in the note's folder, is fsynced, and is
renamed over the note only if the note is still what the client saw; a crash
leaves the old note or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import PurePosixPath
from typing import Any

from attrs import frozen

from enttok.common.paths import on_disk
from enttok.validation import ValidationError
from enttok.vault.walker import is_inside

DEFAULT_PATTERN = "daily/YYYY-MM-DD.md"
DEFAULT_HEADING = "## Suggestions"
#: Temporary files are hidden (the walker and the watcher skip them) and end thus.
TEMP_SUFFIX = ".enttok-tmp"
MAX_LINE = 2000
MAX_TEMPLATE = 1024 * 1024
#: Mode of a note this module creates (a replaced note keeps its own).
NEW_NOTE_MODE = 0o644

Pause = Callable[[str], None]

_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class NoteProblem(Exception):
    """The note cannot be written as asked; C{code} is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@frozen
class NoteState:
    """A note as it is on disk now (C{path}: vault-relative, NFC)."""

    path: str
    exists: bool
    sha256: str | None = None
    mtime_ns: int | None = None
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        # mtime_ns as a string: nanoseconds since 1970 are past JavaScript's 2**53.
        return {"path": self.path, "exists": self.exists, "sha256": self.sha256,
                "mtime_ns": None if self.mtime_ns is None else str(self.mtime_ns),
                "size": self.size}


@frozen
class Base:
    """What the client saw of the note: its hash, its mtime, or both (or no file)."""

    sha256: str | None = None
    mtime_ns: int | None = None

    def matches(self, state: NoteState) -> bool:
        if self.sha256 is None and self.mtime_ns is None:
            return not state.exists
        return state.exists and self.sha256 in (None, state.sha256) and (
            self.mtime_ns in (None, state.mtime_ns))


class NoteChanged(Exception):
    """The note is not what the client saw; C{state} is what it is now."""

    def __init__(self, state: NoteState) -> None:
        super().__init__(f"{state.path} changed since it was read")
        self.state = state


@frozen
class Appended:
    state: NoteState
    created: bool
    appended: int
    skipped: int


# -- settings checks -----------------------------------------------------------------------


def check_pattern(value: Any, field: str) -> str:
    """A settings check: a vault-relative C{.md} path with YYYY, MM and DD in it."""
    if not isinstance(value, str) or not 0 < len(value) <= 512:
        raise ValidationError(field, "expected a path of 1 to 512 characters")
    parts = value.split("/")
    if (value.startswith("/") or "\\" in value or "\x00" in value
            or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
        raise ValidationError(field, "expected a vault-relative path without '..', "
                              "hidden folders or empty parts, e.g. daily/YYYY-MM-DD.md")
    if not value.lower().endswith(".md") or not all(t in value for t in ("YYYY", "MM", "DD")):
        raise ValidationError(field, "expected a .md path holding YYYY, MM and DD")
    return unicodedata.normalize("NFC", value)


def check_heading(value: Any, field: str) -> str:
    """A settings or request check: one Markdown ATX heading line (C{## Title})."""
    if (not isinstance(value, str) or len(value) > 200 or "\n" in value or "\r" in value
            or not (heading_key(value) or (0, ""))[1]):
        raise ValidationError(field, "expected one Markdown heading line such as "
                              "'## Suggestions'")
    return value.strip()


def check_lines(value: Any, field: str) -> list[str]:
    """A request check: 1 to 500 single lines of text."""
    if not isinstance(value, list) or not 0 < len(value) <= 500:
        raise ValidationError(field, "expected an array of 1 to 500 lines")
    for i, line in enumerate(value):
        if not isinstance(line, str) or not line.strip():
            raise ValidationError(f"{field}[{i}]", "expected a non-empty string")
        if len(line) > MAX_LINE or any(c in line for c in "\r\n\x00\u2028\u2029"):
            raise ValidationError(f"{field}[{i}]", f"expected one line of at most "
                                  f"{MAX_LINE} characters")
    return [line.rstrip() for line in value]


def heading_key(line: str) -> tuple[int, str] | None:
    """(level, normalised text) of an ATX heading line, else C{None}."""
    m = _HEADING.fullmatch(line.rstrip("\r\n"))
    if m is None:
        return None
    title = re.sub(r"\s+", " ", unicodedata.normalize("NFC", m.group(2) or "")).strip()
    return len(m.group(1)), title.casefold()


# -- where and what ------------------------------------------------------------------------


def note_path(pattern: str, day: date) -> str:
    """The vault-relative path of C{day}'s note under C{pattern} (YYYY, MM, DD)."""
    return (pattern.replace("YYYY", f"{day.year:04d}").replace("MM", f"{day.month:02d}")
            .replace("DD", f"{day.day:02d}"))


def render_template(text: str, day: date, rel: str) -> str:
    """Fill in C{{{date}}}, C{{{date:FORMAT}}} (YYYY MM DD dddd ddd) and C{{{title}}}."""

    def fill(m: re.Match[str]) -> str:
        if m.group(1) == "title":
            return PurePosixPath(rel).stem
        fmt = (m.group(2) or "YYYY-MM-DD").strip()
        weekday = _WEEKDAYS[day.weekday()]
        return re.sub(r"YYYY|MM|DD|dddd|ddd", lambda t: {
            "YYYY": f"{day.year:04d}", "MM": f"{day.month:02d}", "DD": f"{day.day:02d}",
            "dddd": weekday, "ddd": weekday[:3]}[t.group(0)], fmt)

    return re.sub(r"\{\{\s*(date|title)(?::([^}]*))?\s*\}\}", fill, text)


def locate(root: str, rel: str, other: str | None) -> str:
    """C{rel} if that note exists or C{other} does not (C{other}: where the index saw one)."""
    if other is None or other == rel or os.path.lexists(on_disk(root, rel)):
        return rel
    return other if os.path.lexists(on_disk(root, other)) else rel


def _target(root: str, rel: str) -> str:
    """The file to replace: C{rel} on disk, through a symlink, checked to be in the vault."""
    path = on_disk(root, rel)
    if os.path.islink(path):
        path = os.path.realpath(path)
    folder = os.path.dirname(path)
    existing = folder
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not is_inside(root, existing) or not is_inside(root, path):
        raise NoteProblem("outside_vault", f"{rel!r} leads outside the vault")
    if os.path.exists(path) and not os.path.isfile(path):
        raise NoteProblem("not_a_file", f"{rel!r} is not a regular file")
    return path


def _state(rel: str, data: bytes | None, st: os.stat_result | None) -> NoteState:
    if data is None or st is None:
        return NoteState(rel, False)
    return NoteState(rel, True, hashlib.sha256(data).hexdigest(), st.st_mtime_ns, st.st_size)


def _read(path: str) -> tuple[bytes | None, os.stat_result | None]:
    """The file's bytes and the stat taken from the same open file (C{None}s if missing)."""
    try:
        with open(path, "rb") as f:
            return f.read(), os.fstat(f.fileno())
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        raise NoteProblem("not_a_file", f"{path!r} is a folder") from None


def read_state(root: str, rel: str) -> NoteState:
    """The note's current state (C{root}: the vault's real path)."""
    return _state(rel, *_read(_target(root, rel)))


# -- appending -----------------------------------------------------------------------------


def insert_lines(text: str, heading: str, lines: Sequence[str]) -> tuple[str, int, int]:
    """
    C{text} with C{lines} at the end of C{heading}'s section (the first heading of
    that level and title outside code fences), or under a new C{heading} at the end.
    Lines already in the note (or repeated) are skipped; nothing else changes.

    @return: the new text, how many lines were added, how many skipped.
    """
    present = {line.strip() for line in text.splitlines()}
    new: list[str] = []
    for line in lines:
        if line.strip() not in present:
            present.add(line.strip())
            new.append(line)
    skipped = len(lines) - len(new)
    if not new:
        return text, 0, skipped
    nl = "\r\n" if "\r\n" in text else "\n"
    at = _section_end(text, heading)
    if at is None:
        prefix = text
        if prefix.strip():
            prefix += "" if prefix.endswith(("\n", "\r")) else nl
            prefix += "" if prefix.endswith(("\n\n", "\r\n\r\n")) else nl
        return prefix + heading + nl + nl.join(new) + nl, len(new), skipped
    before = text[:at]
    if not before.endswith(("\n", "\r")):
        before += nl
    return before + nl.join(new) + nl + text[at:], len(new), skipped


def _section_end(text: str, heading: str) -> int | None:
    """Offset just after the last non-blank line of C{heading}'s section, if it is there."""
    wanted = heading_key(heading)
    fence: str | None = None
    found = False
    offset = end = 0
    for number, line in enumerate(text.splitlines(keepends=True)):
        offset += len(line)
        first = line.lstrip(" ")[:1]
        m = _FENCE.match(line) if first in ("`", "~") else None
        if number == 0 and line.strip() == "---":
            fence = "---"  # front matter, whose "# ..." lines are YAML comments
        elif fence == "---":
            if line.strip() in ("---", "..."):
                fence = None
        elif fence is not None:
            # Closed by a bare fence of its kind, at least as long (CommonMark).
            closing = line.strip()
            if set(closing) == {fence[0]} and len(closing) >= len(fence):
                fence = None
        elif m:
            fence = m.group(1)
        else:
            key = heading_key(line) if first == "#" else None
            if key is not None and found and wanted is not None and key[0] <= wanted[0]:
                return end
            if key is not None and key == wanted and not found:
                found, end = True, offset
                continue
        if found and line.strip():
            end = offset
    return end if found else None


def _no_pause(stage: str) -> None:
    pass


def append(root: str, rel: str, lines: Sequence[str], heading: str, base: Base,
           template: str | None, day: date, pause: Pause = _no_pause) -> Appended:
    """
    Append C{lines} under C{heading} in the note at C{rel}, creating it from
    C{template} (already read) if it does not exist.

    @param root: the vault's real path.
    @param base: what the client saw; the note must still be that.
    @param pause: called at each stage of the write (tests stop the process there).
    @raise NoteChanged: the note is not C{base} (nothing was written).
    @raise NoteProblem: the note is not UTF-8 text, or leads outside the vault.
    """
    path = _target(root, rel)
    data, st = _read(path)
    state = _state(rel, data, st)
    if not base.matches(state):
        raise NoteChanged(state)
    created = data is None
    if data is None:
        text = render_template(template or "", day, rel)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteProblem("note_not_utf8", f"{rel} is not UTF-8 text; not changed") from None
    new_text, added, skipped = insert_lines(text, heading, lines)
    if added == 0 and not created:
        return Appended(state, False, 0, skipped)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not is_inside(root, os.path.dirname(path)):  # a folder swapped for a link meanwhile
        raise NoteProblem("outside_vault", f"{rel!r} leads outside the vault")
    _replace(path, rel, new_text.encode("utf-8"), st, pause)
    return Appended(read_state(root, rel), created, added, skipped)


def _replace(path: str, rel: str, data: bytes, seen: os.stat_result | None,
             pause: Pause) -> None:
    """Write C{data} to a temporary file, fsync it, and rename it over C{path} if
    C{path} is still as C{seen} (C{None}: absent); fsync the folder."""
    folder, name = os.path.split(path)
    _remove_leftovers(folder, name)
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            pause("written")
            os.fsync(f.fileno())
        os.chmod(temp, NEW_NOTE_MODE if seen is None else stat.S_IMODE(seen.st_mode))
        pause("synced")
        _still(path, rel, seen)
        if seen is None:
            _create(temp, path, rel)
        else:
            os.replace(temp, path)
        pause("renamed")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def _still(path: str, rel: str, seen: os.stat_result | None) -> None:
    """@raise NoteChanged: C{path} is no longer as C{seen} (an editor saved it meanwhile)."""
    try:
        now: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        now = None
    same = (now is None and seen is None) or (
        now is not None and seen is not None
        and (now.st_ino, now.st_size, now.st_mtime_ns) == (seen.st_ino, seen.st_size,
                                                           seen.st_mtime_ns))
    if not same:
        raise NoteChanged(_state(rel, *_read(path)))


def _create(temp: str, path: str, rel: str) -> None:
    """Rename C{temp} to C{path} unless C{path} appeared meanwhile (a hard link fails
    then; file systems without hard links fall back to a plain rename)."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise NoteChanged(_state(rel, *_read(path))) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                           errno.EMLINK):
            raise
        os.replace(temp, path)
        return
    os.unlink(temp)


def _remove_leftovers(folder: str, name: str) -> None:
    """Delete temporary files an earlier crash left beside the note."""
    prefix = f".{name}."
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (where folders can be opened: not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_template(root: str, template: str | None) -> str | None:
    """
    The template's text (C{None}: no template set).

    @param template: an absolute path, or one relative to the vault (C{root}).
    @raise NoteProblem: it cannot be read as UTF-8 text.
    """
    if not template:
        return None
    if os.path.isabs(template):
        path = template
    else:
        rel = unicodedata.normalize("NFC", template.replace("\\", "/")).strip("/")
        path = on_disk(root, rel)
        if not is_inside(root, path):
            raise NoteProblem("template_unreadable", f"template {template!r} is outside the vault")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_TEMPLATE:
                raise NoteProblem("template_unreadable", f"template {template!r} is not a "
                                  f"file of at most {MAX_TEMPLATE} bytes")
            return f.read(MAX_TEMPLATE).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise NoteProblem("template_unreadable",
                          f"cannot read the template {template!r}: {reason}") from None
