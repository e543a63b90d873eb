"""Parse one Obsidian-style Markdown note into a L{ParsedNote}.

Pure and blocking: no I/O, safe to call from worker threads.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import unquote

from attrs import frozen

T = TypeVar("T")

_BOM = b"\xef\xbb\xbf"
_MAX_FRONTMATTER_NODES = 10_000
_MAX_FRONTMATTER_DEPTH = 50


class NotText(Exception):
    """The content is not a UTF-8 text file; the message says why."""


@frozen
class Task:
    """A Markdown checkbox item; C{line} is 1-based in the whole file."""

    text: str
    done: bool
    line: int


@frozen
class Link:
    """An outgoing link; C{kind} is C{"wiki"} or C{"markdown"}."""

    target: str
    kind: str


@frozen
class ParsedNote:
    """Everything the indexer needs from one note."""

    title: str
    frontmatter: dict[str, Any]
    tags: tuple[str, ...]
    links: tuple[Link, ...]
    tasks: tuple[Task, ...]
    date: str | None
    body: str
    warnings: tuple[str, ...]


def parse_note(rel_path: str, raw: bytes) -> ParsedNote:
    """Parse the note stored at C{rel_path} (posix-style, vault-relative) with bytes C{raw}.

    @raise NotText: C{raw} holds a NUL byte or is not valid UTF-8.
    """
    text = decode_text(raw)
    frontmatter, body, body_line, warnings = split_frontmatter(text)
    lines = body.split("\n")
    code = fence_flags(lines)
    file_name = unicodedata.normalize("NFC", rel_path.rsplit("/", 1)[-1])
    return ParsedNote(
        title=_title(frontmatter, lines, code, file_name),
        frontmatter=frontmatter,
        tags=_tags(frontmatter, lines, code),
        links=_links(lines, code),
        tasks=_tasks(lines, code, body_line),
        date=_note_date(file_name, frontmatter),
        body=body,
        warnings=tuple(warnings),
    )


def decode_text(raw: bytes) -> str:
    """Return C{raw} as NFC text with C{"\\n"} newlines and no BOM.

    @raise NotText: C{raw} holds a NUL byte or is not valid UTF-8.
    """
    if b"\x00" in raw:
        raise NotText("binary content: contains NUL bytes")
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotText(f"not valid UTF-8 (byte offset {e.start})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


# -- frontmatter ---------------------------------------------------------------------------


@functools.cache
def _frontmatter_load() -> Callable[[str], Any]:
    """
    C{yaml.load} with safe YAML that keeps timestamps as the strings written (always
    JSON-safe, and an impossible date such as 2026-02-30 does not make the whole block
    invalid).

    Built at the first front matter: PyYAML is not imported while the daemon starts.
    """
    import yaml

    safe: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available

    class FrontmatterLoader(safe):
        pass

    FrontmatterLoader.add_constructor(
        "tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)
    return functools.partial(yaml.load, Loader=FrontmatterLoader)


_FM_START = re.compile(r"---[ \t]*\n")
_FM_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


def split_frontmatter(text: str) -> tuple[dict[str, Any], str, int, list[str]]:
    """Split normalised C{text} into C{(frontmatter, body, body_line, warnings)}.

    C{body_line} is the 1-based file line on which the body starts.
    """
    start = _FM_START.match(text)
    end = _FM_END.search(text, start.end()) if start else None
    if start is None or end is None:
        return {}, text, 1, []
    block = text[start.end():end.start()]
    body = text[end.end() + 1:]
    body_line = text.count("\n", 0, end.end()) + 2
    try:
        # PyYAML raises more than YAMLError on hostile input (ValueError, RecursionError...),
        # and a broken block must never make the note unparseable.
        loaded = _frontmatter_load()(block)
    except Exception as e:
        return {}, body, body_line, [f"invalid YAML frontmatter: {_one_line(e)}"]
    if loaded is None:
        return {}, body, body_line, []
    if not isinstance(loaded, dict):
        kind = type(loaded).__name__
        return {}, body, body_line, [f"invalid YAML frontmatter: a {kind}, not a mapping"]
    try:
        return _json_safe_mapping(loaded, [0], 0), body, body_line, []
    except _TooComplex as e:
        return {}, body, body_line, [f"invalid YAML frontmatter: {e}"]


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


class _TooComplex(Exception):
    pass


def _json_safe_mapping(value: dict[Any, Any], budget: list[int], depth: int) -> dict[str, Any]:
    return {_json_key(k): _json_safe(v, budget, depth + 1) for k, v in value.items()}


def _json_safe(value: Any, budget: list[int], depth: int) -> Any:
    """Copy a loaded YAML value into plain JSON types (aliases can make cycles and
    exponentially large trees, hence the node budget and depth limit)."""
    budget[0] += 1
    if budget[0] > _MAX_FRONTMATTER_NODES or depth > _MAX_FRONTMATTER_DEPTH:
        raise _TooComplex("too large or too deeply nested (recursive aliases?)")
    if isinstance(value, dict):
        return _json_safe_mapping(value, budget, depth)
    if isinstance(value, list | tuple):
        return [_json_safe(v, budget, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return [_json_safe(v, budget, depth + 1) for v in sorted(value, key=repr)]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    return str(key)


# -- Markdown structure --------------------------------------------------------------------

_FENCE_OPEN = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]|$)")


def fence_flags(lines: Sequence[str]) -> list[bool]:
    """Return, for each line, whether it belongs to a fenced code block (fences included).

    An unclosed fence runs to the end, as in CommonMark; fences may be indented (lists).
    """
    flags = [False] * len(lines)
    fence = ""
    for i, line in enumerate(lines):
        if fence:
            flags[i] = True
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.lstrip(fence[0]):
                fence = ""
            continue
        m = _FENCE_OPEN.match(line)
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = m.group(1)
            flags[i] = True
    return flags


def heading(line: str) -> tuple[int, str] | None:
    """Return C{(level, text)} if C{line} is an ATX heading (check fences first)."""
    m = _ATX.match(line)
    if m is None:
        return None
    text = line[m.end():].strip()
    # Drop an optional closing sequence ("## Title ##"), without a backtracking regex.
    unclosed = text.rstrip("#")
    if not unclosed or unclosed[-1] in " \t":
        text = unclosed.rstrip()
    return len(m.group(1)), text


def _prose(lines: Sequence[str], code: Sequence[bool]) -> Iterator[tuple[int, str]]:
    """Yield C{(index, line)} for lines outside code fences, with inline code blanked."""
    for i, line in enumerate(lines):
        if not code[i]:
            yield i, _INLINE_CODE.sub(_blank, line) if "`" in line else line


_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)")


def _blank(m: re.Match[str]) -> str:
    return " " * len(m.group(0))


def _title(frontmatter: dict[str, Any], lines: Sequence[str], code: Sequence[bool],
           file_name: str) -> str:
    title = frontmatter.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    for i, line in enumerate(lines):
        if not code[i]:
            found = heading(line)
            if found and found[0] == 1 and found[1]:
                return found[1]
    return file_name[:-3] if file_name.lower().endswith(".md") else file_name


# -- tags ----------------------------------------------------------------------------------

_TAG_BODY = re.compile(r"[\w/-]+")
_INLINE_TAG = re.compile(r"(?<!\S)#([\w/-]+)")
# Link targets and URLs are blanked before looking for tags: "x/y#frag", "[[N#H]]", "(#a)".
# (Character classes exclude the opening bracket so that no pattern can backtrack
# quadratically on a long hostile line.)
_NOT_TAG_CONTEXT = re.compile(
    r"\[\[[^\[\]]*\]\]|\]\([^()]*\)|(?<![\w+.-])[a-zA-Z][\w+.-]*+://\S*"
)


def _valid_tag(tag: str) -> bool:
    return bool(_TAG_BODY.fullmatch(tag)) and not all(c.isdigit() for c in tag)


def _frontmatter_tags(value: Any) -> Iterator[str]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            for word in re.split(r"[\s,]+", str(item)):
                tag = word.lstrip("#")
                if _valid_tag(tag):
                    yield tag


def _tags(frontmatter: dict[str, Any], lines: Sequence[str],
          code: Sequence[bool]) -> tuple[str, ...]:
    found = list(_frontmatter_tags(frontmatter.get("tags")))
    for _, line in _prose(lines, code):
        if "#" in line:
            line = _NOT_TAG_CONTEXT.sub(_blank, line)
            found.extend(t for t in _INLINE_TAG.findall(line) if _valid_tag(t))
    return tuple(_unique(found, key=str.casefold))


def _unique(items: Iterable[T], key: Callable[[T], Hashable] = lambda item: item) -> list[T]:
    """Drop repeated items (by C{key}), keeping the order of first appearance."""
    seen: set[Hashable] = set()
    result = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            result.append(item)
    return result


# -- links ---------------------------------------------------------------------------------

_WIKILINK = re.compile(r"!?\[\[([^\[\]\n]+?)\]\]")
_IMAGE = re.compile(r"!\[[^\[\]]*\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\s*\)")
_MD_LINK = re.compile(
    r"\[[^\[\]]*\]\(\s*(<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_SCHEME = re.compile(r"[a-zA-Z][\w+.-]*:")


def _links(lines: Sequence[str], code: Sequence[bool]) -> tuple[Link, ...]:
    links: list[tuple[str, str]] = []
    for _, line in _prose(lines, code):
        if "[[" in line:
            for m in _WIKILINK.finditer(line):
                target = m.group(1).split("|", 1)[0].rstrip("\\").split("#", 1)[0].strip()
                links.append((target, "wiki"))
            line = _WIKILINK.sub(_blank, line)
        if "](" in line:
            for m in _MD_LINK.finditer(_IMAGE.sub(_blank, line)):
                links.append((_markdown_target(m.group(1)), "markdown"))
    return tuple(Link(target, kind) for target, kind in _unique(links) if target)


def _markdown_target(target: str) -> str:
    if target.startswith("<"):
        target = target[1:-1].strip()
    if _SCHEME.match(target):
        return target
    # A relative path: percent-decoded, without its "#heading" part.
    return unquote(target.split("#", 1)[0])


# -- tasks and date ------------------------------------------------------------------------

_TASK = re.compile(r"[ \t]*(?:>[ \t]*)*(?:[-*+]|\d{1,9}[.)])[ \t]+\[([ xX])\](?:[ \t]+(.*))?$")


def _tasks(lines: Sequence[str], code: Sequence[bool], first_line: int) -> tuple[Task, ...]:
    tasks = []
    for i, line in enumerate(lines):
        if not code[i] and "[" in line:
            m = _TASK.match(line)
            if m:
                text = (m.group(2) or "").strip()
                tasks.append(Task(text=text, done=m.group(1) != " ", line=first_line + i))
    return tuple(tasks)


_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


def _calendar_date(m: re.Match[str]) -> str | None:
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return None


def _note_date(file_name: str, frontmatter: dict[str, Any]) -> str | None:
    for m in _ISO_DATE.finditer(file_name):
        found = _calendar_date(m)
        if found:
            return found
    value = frontmatter.get("date")
    if isinstance(value, date | datetime):
        value = value.isoformat()
    written = _ISO_DATE.match(value.strip()) if isinstance(value, str) else None
    return _calendar_date(written) if written else None
