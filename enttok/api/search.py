"""Parsing and answering for C{/search} and C{/index/status}."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from enttok.api.errors import APIError
from enttok.api.requests import json_bytes, query_arg, query_day, refuse_unknown_args
from enttok.index.embedder import EmbedderUnavailable
from enttok.index.indexer import VaultIndex
from enttok.index.search import MODES, Searcher, SearchQuery
from enttok.index.text import MAX_QUERY_CHARS

_PARAMS = {"q", "k", "mode", "path_prefix", "tag", "date_from", "date_to"}


def parse_query(request: IRequest) -> SearchQuery:
    """@raise APIError: 400 naming the bad parameter."""
    refuse_unknown_args(request, _PARAMS)
    q = (query_arg(request, "q") or "").strip()
    if not q:
        raise APIError(400, "invalid_query", "q must not be empty", {"field": "q"})
    if len(q) > MAX_QUERY_CHARS:
        raise APIError(400, "invalid_query", f"q is longer than {MAX_QUERY_CHARS} characters",
                       {"field": "q"})
    k_text = query_arg(request, "k") or "10"
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (k_text.isascii() and k_text.isdigit()) or not 1 <= int(k_text) <= 100:
        raise APIError(400, "invalid_query", "k must be an integer from 1 to 100",
                       {"field": "k"})
    mode = query_arg(request, "mode") or "hybrid"
    if mode not in MODES:
        raise APIError(400, "invalid_query", f"mode must be one of {', '.join(MODES)}",
                       {"field": "mode"})
    first, last = query_day(request, "date_from"), query_day(request, "date_to")
    return SearchQuery(q=q, k=int(k_text), mode=mode,
                       path_prefix=query_arg(request, "path_prefix"),
                       tag=query_arg(request, "tag"),
                       date_from=None if first is None else first.isoformat(),
                       date_to=None if last is None else last.isoformat())


def search(searcher: Searcher, request: IRequest) -> Deferred[bytes]:
    query = parse_query(request)
    d: Deferred[Any] = searcher.search(query)

    def unavailable(failure: Failure) -> None:
        failure.trap(EmbedderUnavailable)
        raise APIError(503, "model_unavailable", f"vector search is unavailable: "
                       f"{failure.getErrorMessage()}; use mode=fts or hybrid")

    d.addErrback(unavailable)
    return d.addCallback(lambda result: json_bytes(request, result))


def status(index: VaultIndex, request: IRequest) -> Deferred[bytes]:
    return index.status().addCallback(lambda s: json_bytes(request, s))
