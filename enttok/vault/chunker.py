"""Split a note body into heading-aware chunks for full-text search and embeddings.

The rules are deliberately simple so that the output is predictable:

  - The body is an outline of ATX headings (those inside code fences do not count).
  - A heading's whole subtree that fits in C{target_tokens} is one chunk.
  - Otherwise its own text and its children are packed in order: small neighbours share a
    chunk while it stays within the target, a large child is chunked on its own (same
    rules, recursively), and a section's own text longer than C{max_tokens} is split at
    paragraph, then line, sentence, word and finally token boundaries, each piece
    repeating about C{overlap_tokens} of the previous piece's tail.
  - A code fence is never split, even when it is longer than C{max_tokens}.

A chunk's text only depends on the sections it covers and packing is decided within one
parent at a time, so editing a section changes the chunks that cover it and, at most, the
grouping of small sections after it under the same parent; other chunks (and their hashes)
stay the same.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from attrs import define, field, frozen

from enttok.vault.parser import fence_flags, heading

_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
)
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
# Finer and finer places to cut a text that is too long (each pattern matches a separator).
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"[.!?\u3002\uff01\uff1f\u2026]+[\"'\u201d\u2019)\]]*\s+")
_SPACE = re.compile(r"\s+")
_SEPARATORS = (_LINE, _SENTENCE, _SPACE)
_SENTENCE_OR_LINE = re.compile(rf"{_SENTENCE.pattern}|\n")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


@frozen
class Chunk:
    """One piece of a note.

    @ivar ordinal: position in the note, from 0.
    @ivar heading_path: texts of the enclosing headings, outermost first.
    @ivar embed_text: the heading path joined with C{" > "}, a blank line, then C{text}.
    @ivar content_hash: SHA-256 hex digest of C{embed_text} (UTF-8).
    @ivar token_count: L{approx_tokens} of C{text}.
    """

    ordinal: int
    heading_path: tuple[str, ...]
    text: str
    embed_text: str
    content_hash: str
    token_count: int


def approx_tokens(text: str) -> int:
    """Estimate tokens: one per Latin word or number, punctuation mark, or CJK/Hangul character."""
    return sum(1 for _ in _TOKEN.finditer(text))


def chunk_note(body: str, target_tokens: int = 250, max_tokens: int = 320,
               overlap_tokens: int = 40) -> list[Chunk]:
    """Chunk a note body (frontmatter already removed); see the module docstring.

    Every chunk's C{text} has at most C{max_tokens} tokens, unless it holds a single code
    fence that is longer. A blank body gives C{[]}.

    @raise ValueError: the sizes are inconsistent (C{0 < target <= max}, C{overlap >= 0}).
    """
    if not 0 < target_tokens <= max_tokens or overlap_tokens < 0:
        raise ValueError("need 0 < target_tokens <= max_tokens and overlap_tokens >= 0")
    if not body.strip():
        return []
    packer = _Packer(target_tokens, max_tokens, overlap_tokens)
    packer.emit(_outline(body))
    return [_chunk(i, path, text) for i, (path, text) in enumerate(packer.pieces)]


def _chunk(ordinal: int, path: tuple[str, ...], text: str) -> Chunk:
    embed_text = f"{' > '.join(path)}\n\n{text}" if path else text
    return Chunk(
        ordinal=ordinal,
        heading_path=path,
        text=text,
        embed_text=embed_text,
        content_hash=hashlib.sha256(embed_text.encode("utf-8")).hexdigest(),
        token_count=approx_tokens(text),
    )


# -- the outline ---------------------------------------------------------------------------


@frozen
class _Section:
    """A heading line (C{None} for the text before the first heading) and its own text."""

    path: tuple[str, ...]
    heading: str | None
    content: str
    content_tokens: int
    tokens: int


@define
class _Node:
    section: _Section
    level: int
    children: list[_Node] = field(factory=list)
    total: int = 0

    def sections(self) -> list[_Section]:
        """This node's section and all its descendants', in document order."""
        found = [self.section]
        for child in self.children:
            found.extend(child.sections())
        return found


def _section(path: tuple[str, ...], heading_line: str | None, lines: list[str]) -> _Section:
    content = "\n".join(lines)
    tokens = approx_tokens(content)
    extra = approx_tokens(heading_line) if heading_line else 0
    return _Section(path, heading_line, content, tokens, tokens + extra)


def _sections(body: str) -> list[tuple[int, _Section]]:
    """The sections of C{body} with their heading levels, the first one (level 0) holding
    the text before any heading."""
    lines = body.split("\n")
    code = fence_flags(lines)
    found: list[tuple[int, _Section]] = []
    stack: list[tuple[int, str]] = []
    level, heading_line, own = 0, None, []
    for line, in_code in zip(lines, code, strict=True):
        parsed = None if in_code else heading(line)
        if parsed is None:
            own.append(line)
            continue
        found.append((level, _section(tuple(t for _, t in stack), heading_line, own)))
        level = parsed[0]
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append(parsed)
        heading_line, own = line, []
    found.append((level, _section(tuple(t for _, t in stack), heading_line, own)))
    return found


def _outline(body: str) -> _Node:
    """Build the heading tree of C{body}; the root holds the text before any heading."""
    sections = _sections(body)
    root = _Node(sections[0][1], 0)
    stack = [root]
    for level, section in sections[1:]:
        while stack[-1].level >= level:
            stack.pop()
        node = _Node(section, level)
        stack[-1].children.append(node)
        stack.append(node)
    _total(root)
    return root


def _total(node: _Node) -> int:
    node.total = node.section.tokens + sum(_total(child) for child in node.children)
    return node.total


# -- packing -------------------------------------------------------------------------------


@define
class _Packer:
    target: int
    max: int
    overlap: int
    pieces: list[tuple[tuple[str, ...], str]] = field(factory=list)

    def emit(self, node: _Node) -> None:
        """Chunk C{node}'s subtree."""
        if node.total <= self.target:
            self._add(node.sections())
            return
        own = node.section
        items: list[tuple[int, list[_Section], _Node | None]] = [
            (child.total, child.sections(), child) for child in node.children]
        if own.content.strip():
            items.insert(0, (own.tokens, [own], None))
        group: list[_Section] = []
        size = 0
        for tokens, sections, child in items:
            if tokens > self.target or size + tokens > self.target:
                self._add(group)
                group, size = [], 0
            if tokens <= self.target:
                group.extend(sections)
                size += tokens
            elif child is not None:
                self.emit(child)
            else:
                self._split(own)
        self._add(group)

    def _add(self, sections: Sequence[_Section]) -> None:
        """Add one chunk covering C{sections} (consecutive, in document order)."""
        found = _render(sections)
        if found is not None:
            self.pieces.append(found)

    def _split(self, section: _Section) -> None:
        """Add the chunks of one section's own text, which is longer than the target."""
        if section.content_tokens <= self.max:
            self.pieces.append((section.path, _clean(section.content)))
            return
        for piece in _pack(_units(section.content, self.target), self.target, self.max,
                           self.overlap):
            self.pieces.append((section.path, piece))


def _render(sections: Sequence[_Section]) -> tuple[tuple[str, ...], str] | None:
    """The heading path and text of a chunk made of C{sections}, or C{None} if blank.

    The path is the common prefix of the sections' paths; the first section's heading line
    is left out when it is the last element of that path, every other one is kept.
    """
    kept = [s for s in sections if s.heading is not None or s.content.strip()]
    if not kept:
        return None
    path = _common_prefix(s.path for s in kept)
    parts = []
    for i, s in enumerate(kept):
        if s.heading is not None and not (i == 0 and s.path == path):
            parts.append(s.heading)
        parts.append(s.content)
    text = _clean("\n".join(parts))
    if not text and kept[0].heading is not None:
        # A lone heading without text: the heading line itself, under its parent's path.
        return path[:-1], _clean(kept[0].heading)
    return (path, text) if text else None


def _common_prefix(paths: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    it = iter(paths)
    prefix = next(it)
    for path in it:
        n = 0
        while n < min(len(prefix), len(path)) and prefix[n] == path[n]:
            n += 1
        prefix = prefix[:n]
    return prefix


def _clean(text: str) -> str:
    """Drop leading blank lines and trailing whitespace (keeps a first line's indent)."""
    return _LEADING_BLANK_LINES.sub("", text).rstrip()


# -- splitting one long section -----------------------------------------------------------


@frozen
class _Unit:
    """A slice of a section's text (with its trailing separator); C{fence}: a code block."""

    text: str
    tokens: int
    fence: bool


def _units(content: str, limit: int) -> list[_Unit]:
    """Cut C{content} into consecutive units of at most C{limit} tokens each, except code
    fences, which stay whole. Paragraphs are kept together when they fit."""
    lines = content.split("\n")
    code = fence_flags(lines)
    units: list[_Unit] = []
    block: list[str] = []
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        block.append(line if last else line + "\n")
        if not (last or code[i] != code[i + 1]
                or (not code[i] and not line.strip() and lines[i + 1].strip())):
            continue
        text = "".join(block)
        block = []
        if code[i]:
            units.append(_Unit(text, approx_tokens(text), True))
        else:
            units.extend(_fine(text, limit, 0))
    return units


def _fine(text: str, limit: int, level: int) -> list[_Unit]:
    """Split plain C{text} at the finest needed separator until each unit fits C{limit}."""
    tokens = approx_tokens(text)
    if tokens <= limit:
        return [_Unit(text, tokens, False)]
    if level == len(_SEPARATORS):
        cuts = [m.start() for m in _TOKEN.finditer(text)][limit::limit]
    else:
        cuts = [m.end() for m in _SEPARATORS[level].finditer(text) if m.end() < len(text)]
    if not cuts:
        return _fine(text, limit, level + 1)
    units = []
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        units.extend(_fine(text[start:end], limit, level + 1))
    return units


def _pack(units: Sequence[_Unit], target: int, max_tokens: int, overlap: int) -> list[str]:
    """Join C{units} into pieces of about C{target} tokens (never more than C{max_tokens},
    except a lone long fence), each starting with the tail of the previous piece."""
    pieces: list[str] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        oversize = unit.fence and unit.tokens > max_tokens
        if current and (size + unit.tokens > target or oversize):
            pieces.append(_clean("".join(u.text for u in current)))
            budget = 0 if oversize else min(overlap, max_tokens - unit.tokens)
            current = [_tail(current, budget)]
            size = current[0].tokens
        current.append(unit)
        size += unit.tokens
    pieces.append(_clean("".join(u.text for u in current)))
    return [p for p in pieces if p]


def _tail(units: Sequence[_Unit], tokens: int) -> _Unit:
    """About the last C{tokens} tokens of C{units} (at most half of them), from a word start,
    and never from inside a code fence."""
    after_fence = list(units)
    for i, unit in enumerate(units):
        if unit.fence:
            after_fence = list(units[i + 1:])
    count = min(tokens, sum(u.tokens for u in after_fence) // 2)
    if count <= 0:
        return _Unit("", 0, False)
    first, covered = len(after_fence), 0
    while covered < count:
        first -= 1
        covered += after_fence[first].tokens
    text = "".join(u.text for u in after_fence[first:])
    start = [m.start() for m in _TOKEN.finditer(text)][-count]
    # Prefer starting at a sentence or line (if that keeps half of the overlap), else at
    # the next word.
    for pattern, least in ((_SENTENCE_OR_LINE, max(1, count // 2)), (_SPACE, 1)):
        if _starts_at(pattern, text, start):
            break
        cut = pattern.search(text, start)
        if cut is not None and approx_tokens(text[cut.end():]) >= least:
            start = cut.end()
            break
    tail = text[start:]
    return _Unit(tail, approx_tokens(tail), False)


def _starts_at(separator: re.Pattern[str], text: str, start: int) -> bool:
    """Whether C{text[start:]} begins right after a C{separator}, or C{start} is 0."""
    before = text[max(0, start - 16):start]
    return start == 0 or any(m.end() == len(before) for m in separator.finditer(before))
