"""The job types the engine knows: payload schema, handler, lock and merge rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from attrs import frozen
from twisted.internet.defer import Deferred

from enttok import validation
from enttok.validation import Schema

if TYPE_CHECKING:
    from enttok.jobs.context import JobContext

Handler = Callable[["JobContext"], "Deferred[Any] | Any"]
Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


class UnknownJobType(KeyError):
    """No job type of that name is registered."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = sorted(known)


@frozen
class JobType:
    """
    One kind of job.

    @ivar lock: jobs with the same lock never run at the same time (C{None}: no lock).
    @ivar merge: combines a new payload into a queued job's payload, instead of queuing.
    @ivar check: validation that needs context (e.g. paths inside the vault); returns
        the payload normalised, or raises L{enttok.validation.ValidationError}.
    """

    name: str
    payload: Schema
    handler: Handler
    lock: str | None = None
    merge: Merge | None = None
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    description: str = ""

    def validate(self, payload: Any) -> dict[str, Any]:
        """
        Return the payload with defaults filled in.

        @raise enttok.validation.ValidationError: naming the bad field.
        """
        if payload is None:
            payload = {}
        clean = validation.merge(validation.defaults(self.payload), payload, self.payload,
                                 "payload.")
        return clean if self.check is None else self.check(clean)


class JobRegistry:
    """The registered job types, by name."""

    def __init__(self, types: Iterable[JobType] = ()) -> None:
        self._types: dict[str, JobType] = {}
        for job_type in types:
            self.register(job_type)

    def register(self, job_type: JobType) -> None:
        if job_type.name in self._types:
            raise ValueError(f"job type {job_type.name!r} registered twice")
        self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType:
        """@raise UnknownJobType: when C{name} is not registered."""
        try:
            return self._types[name]
        except KeyError:
            raise UnknownJobType(name, self._types) from None

    def names(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types
