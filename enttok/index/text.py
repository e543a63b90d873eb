"""Text handling for full-text search, the same for indexing and for queries.

Korean (and other CJK) text is indexed as overlapping character bigrams, the
strategy of Lucene's CJK analyzer: "회의를" becomes "회의 의를", so a two-syllable
query such as "회의" matches "회의를" and "회의록", which the plain unicode61
tokenizer (the particle stays attached) and the trigram tokenizer (three
characters at least) both miss. Latin text goes through unicode61 + porter, so
"indexing" finds "index". English stop words are left out of queries that have
other words. See docs/search.md.
"""

from __future__ import annotations

import re
import unicodedata

_CJK = (r"\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
        r"\uac00-\ud7a3\uf900-\ufaff")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_TERM = re.compile(f"[{_CJK}]+|[^\\W{_CJK}]+")
_LATIN_TERM = re.compile(r"^[^\W_]+$")

MAX_QUERY_CHARS = 500
MAX_TERMS = 32
#: English words left out of a query that has other words: Lucene's English stop
#: words and the question words of sentence-like queries ("how do we ...").
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
    "about", "can", "could", "did", "do", "does", "from", "how", "i", "my", "our", "should",
    "so", "we", "what", "when", "where", "which", "who", "why", "would", "you", "your",
})


def bigrams(run: str) -> list[str]:
    """A CJK run as overlapping bigrams (a single character stays as it is)."""
    if len(run) < 2:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def fts_text(text: str) -> str:
    """Text as it is stored in the FTS index: NFC, CJK runs as bigrams."""
    text = unicodedata.normalize("NFC", text)
    return _CJK_RUN.sub(lambda m: " " + " ".join(bigrams(m.group())) + " ", text)


def query_terms(query: str) -> list[str]:
    """
    The search terms of a query, NFC-normalised, lower-cased, in order, unique;
    without stop words, unless the query has nothing else.
    """
    found = _TERM.findall(unicodedata.normalize("NFC", query).lower())
    terms = list(dict.fromkeys(t for t in found if t.strip("_")))
    kept = [t for t in terms if t not in STOP_WORDS]
    return (kept or terms)[:MAX_TERMS]


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def _term_query(term: str) -> str:
    if _CJK_RUN.fullmatch(term):
        if len(term) == 1:
            return _quote(term) + "*"
        return _quote(" ".join(bigrams(term)))
    if len(term) >= 2 and _LATIN_TERM.match(term):
        return _quote(term) + "*"
    return _quote(term)


def fts_query(terms: list[str], any_term: bool = False) -> str:
    """An FTS5 MATCH expression: every term (or any, with C{any_term})."""
    return (" OR " if any_term else " AND ").join(_term_query(t) for t in terms)


def highlight(text: str, terms: list[str], width: int = 200) -> tuple[str, list[list[int]]]:
    """
    A snippet of C{text} around the densest cluster of matches.

    @return: the snippet and the C{[start, end)} offsets of the matches in it.
    """
    # Matched case-insensitively in the text itself: lower() can change the length
    # of a string ("İ" becomes two characters), which would shift the offsets.
    text = unicodedata.normalize("NFC", text)
    needles = [_stem(t) for t in terms if t]
    spans = sorted(
        (m.start(), m.end())
        for n in set(needles) if n
        for m in re.finditer(re.escape(n), text, re.IGNORECASE)
    )
    start = 0
    if spans:
        best = max(range(len(spans)),
                   key=lambda i: sum(1 for s in spans if spans[i][0] <= s[0] < spans[i][0] + width))
        start = max(0, spans[best][0] - width // 4)
        start = _word_start(text, start)
    end = min(len(text), start + width)
    snippet = text[start:end]
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    offsets = [[s - start + len(prefix), e - start + len(prefix)]
               for s, e in spans if start <= s and e <= end]
    merged: list[list[int]] = []
    for span in offsets:
        if merged and span[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span[1])
        else:
            merged.append(span)
    return prefix + snippet.replace("\n", " ") + suffix, merged


def _stem(term: str) -> str:
    """A crude prefix that finds inflected forms of a Latin term in plain text."""
    if _CJK_RUN.fullmatch(term) or len(term) <= 4:
        return term
    return term[: max(4, len(term) - 3)]


def _word_start(text: str, i: int) -> int:
    """Move C{i} back to the start of its word (at most 20 characters)."""
    limit = max(0, i - 20)
    while i > limit and not text[i - 1].isspace():
        i -= 1
    return i
