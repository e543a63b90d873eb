"""Parsing and answering for the C{/jobs} routes (the routes live in L{enttok.api.app})."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from enttok.api.errors import APIError
from enttok.api.requests import json_bytes, query_arg, read_json
from enttok.jobs.engine import JobEngine, JobFinished, JobNotFound
from enttok.jobs.model import STATUSES, Job
from enttok.jobs.registry import UnknownJobType
from enttok.validation import ValidationError

MAX_LIMIT = 200


def _query(request: IRequest, name: str) -> list[str]:
    values = request.args.get(name.encode("ascii"), [])
    return [v for raw in values for v in raw.decode("utf-8", "replace").split(",") if v]


def _int_query(request: IRequest, name: str, default: int | None, low: int,
               high: int) -> int | None:
    raw = query_arg(request, name)
    if raw is None:
        return default
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise APIError(400, "invalid_query", f"{name} must be an integer from {low} to {high}",
                       {"field": name})
    return int(raw)


def submit(engine: JobEngine, request: IRequest) -> Deferred[bytes]:
    body = read_json(request)
    if not isinstance(body, dict):
        raise APIError(400, "invalid_body", "expected an object {type, payload}")
    unknown = sorted(set(body) - {"type", "payload"})
    if unknown:
        raise APIError(400, "invalid_body", f"unknown field {unknown[0]!r}",
                       {"field": unknown[0]})
    job_type = body.get("type")
    if not isinstance(job_type, str):
        raise APIError(400, "invalid_body", "type must be a string", {"field": "type"})
    try:
        d = engine.submit(job_type, body.get("payload"))
    except UnknownJobType as e:
        raise APIError(400, "unknown_job_type", f"unknown job type {job_type!r}",
                       {"field": "type", "known": e.known}) from None
    except ValidationError as e:
        raise APIError(400, "invalid_payload", e.message, {"field": e.field}) from None

    def answer(submitted: tuple[Job, bool]) -> bytes:
        job, coalesced = submitted
        return json_bytes(request, {**job.to_json(), "coalesced": coalesced},
                          200 if coalesced else 201)

    return d.addCallback(answer)


def listing(engine: JobEngine, request: IRequest) -> Deferred[bytes]:
    statuses = _query(request, "status")
    bad = next((s for s in statuses if s not in STATUSES), None)
    if bad is not None:
        raise APIError(400, "invalid_query", f"unknown status {bad!r}",
                       {"field": "status", "known": list(STATUSES)})
    limit = _int_query(request, "limit", 50, 1, MAX_LIMIT)
    cursor = _int_query(request, "cursor", None, 1, 2**62)
    d = engine.list_jobs(statuses, _query(request, "type"), limit or 50, cursor)
    return d.addCallback(lambda page: json_bytes(request, {
        "jobs": [job.to_json() for job in page[0]],
        "next_cursor": None if page[1] is None else str(page[1])}))


def detail(engine: JobEngine, request: IRequest, job_id: str) -> Deferred[bytes]:
    d = engine.get(job_id)
    d.addCallback(lambda found: json_bytes(request, {
        **found[0].to_json(), "events": [e.to_json() for e in found[1]]}))
    return d.addErrback(_job_errors, job_id)


def cancel(engine: JobEngine, request: IRequest, job_id: str) -> Deferred[bytes]:
    read_json(request, required=False)
    d = engine.cancel(job_id)
    d.addCallback(lambda job: json_bytes(request, job.to_json(),
                                         200 if job.status == "canceled" else 202))
    return d.addErrback(_job_errors, job_id)


def _job_errors(failure: Failure, job_id: str) -> Any:
    if failure.check(JobNotFound):
        raise APIError(404, "job_not_found", f"no job {job_id!r}", {"job_id": job_id})
    if failure.check(JobFinished):
        finished = failure.value
        assert isinstance(finished, JobFinished)
        status = finished.job.status
        raise APIError(409, "job_finished", f"job {job_id} is already {status}",
                       {"job_id": job_id, "status": status})
    return failure
