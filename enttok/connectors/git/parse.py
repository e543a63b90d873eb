"""Parsing C{git log -z --numstat} output (whole or in any chunks) and C{git patch-id} output."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from attrs import frozen

#: Each commit starts with RS, then NUL-separated fields (subjects never hold NUL).
FORMAT = "%x1e%H%x00%P%x00%ae%x00%an%x00%ad%x00%cd%x00%s%x00"
#: The options that go with L{FORMAT}: dates in the local time zone, which
#: git runs in as UTC (see L{enttok.connectors.git.process.git_environ}).
LOG_OPTIONS = ("-z", "--numstat", "--no-renames", "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
               f"--format={FORMAT}")
_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_FIELDS = 7
_RS = b"\x1e"
_HEADER = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?\x00")
#: File names kept per commit (the counts cover them all).
MAX_FILES = 50


class BadLogOutput(ValueError):
    """git wrote something that is not what L{FORMAT} asks for."""


@frozen
class Commit:
    """One commit as C{git log} described it; times are ISO-8601 UTC."""

    sha: str
    parents: tuple[str, ...]
    author_email: str
    author_name: str
    authored_at: str
    committed_at: str
    subject: str
    files: tuple[str, ...]
    files_changed: int
    insertions: int
    deletions: int


def utc(stamp: str) -> str:
    """
    A git date as C{...Z} in UTC: as it comes with L{LOG_OPTIONS} (checked
    only), or strict ISO with an offset (C{2024-05-01T10:00:00+09:00}).
    """
    if _UTC.fullmatch(stamp):
        return stamp
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        raise BadLogOutput(f"bad date {stamp!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def parse_record(record: bytes) -> Commit:
    """
    One commit: L{FORMAT}'s fields (after the RS), then its C{--numstat -z}
    lines (C{added TAB deleted TAB path NUL}; C{-} counts for binary files).
    """
    parts = record.split(b"\x00", _FIELDS)
    if len(parts) != _FIELDS + 1:
        raise BadLogOutput(f"a commit record with {len(parts)} fields")
    sha, parents, email, name, authored, committed, subject, rest = parts
    files: list[str] = []
    count = insertions = deletions = 0
    for entry in rest.lstrip(b"\x00\n").split(b"\x00"):
        if not entry:
            continue
        fields = entry.split(b"\t", 2)
        if len(fields) != 3:
            raise BadLogOutput(f"bad numstat entry {entry[:80]!r}")
        added, deleted, path = fields
        count += 1
        insertions += int(added) if added != b"-" else 0
        deletions += int(deleted) if deleted != b"-" else 0
        if len(files) < MAX_FILES:
            files.append(_text(path))
    return Commit(_text(sha), tuple(_text(parents).split()), _text(email), _text(name),
                  utc(_text(authored)), utc(_text(committed)), _text(subject).strip(),
                  tuple(files), count, insertions, deletions)


class LogParser:
    """
    Fed C{git log} output in chunks of any size; hands each complete commit to
    C{on_commit} as soon as the next one starts (call L{close} at the end).
    """

    def __init__(self, on_commit: Callable[[Commit], None]) -> None:
        self.on_commit = on_commit
        self._pending = b""
        self._started = False

    def feed(self, data: bytes) -> None:
        buffer = self._pending + data
        if not self._started:
            if not buffer:
                return
            if not buffer.startswith(_RS):
                raise BadLogOutput(f"unexpected output {buffer[:80]!r}")
            self._started = True
        # The last record may be incomplete: keep it for the next chunk.
        end = buffer.rfind(_RS)
        while end > 0 and not _HEADER.match(buffer, end + 1):
            end = buffer.rfind(_RS, 0, end)  # an RS inside a subject or a file name
        if end <= 0:
            self._pending = buffer
            return
        self._pending = buffer[end:]
        self._emit(buffer[:end])

    def _emit(self, records: bytes) -> None:
        pieces = records.split(_RS)
        current: bytes | None = None
        for piece in pieces[1:]:
            if current is not None and not _HEADER.match(piece):
                current += _RS + piece
                continue
            if current is not None:
                self.on_commit(parse_record(current))
            current = piece
        if current is not None:
            self.on_commit(parse_record(current))

    def close(self) -> None:
        """The output ended: the last record is complete."""
        if self._pending:
            self._emit(self._pending)
        self._pending = b""


def parse_log(output: bytes) -> list[Commit]:
    """Every commit of a whole C{git log} output (with L{LOG_OPTIONS})."""
    commits: list[Commit] = []
    parser = LogParser(commits.append)
    parser.feed(output)
    parser.close()
    return commits


def parse_patch_ids(output: bytes) -> dict[str, str]:
    """C{git patch-id} output (C{patch-id SP commit} lines) as C{{commit: patch-id}}."""
    ids: dict[str, str] = {}
    for line in output.decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) == 2:
            ids[fields[1]] = fields[0]
    return ids
