"""Types for Twisted's coroutines."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeAlias, TypeVar

from twisted.internet.defer import Deferred

T = TypeVar("T")

#: What an C{@inlineCallbacks} function written to return C{T} is, before the
#: decorator: it yields Deferreds and returns C{T}, so the decorated function
#: returns C{Deferred[T]}.
Yielding: TypeAlias = Generator[Deferred[Any], Any, T]
