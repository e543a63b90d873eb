"""C{GET /connectors}: every connector with its settings state, cursor summary and last job."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

from enttok.api.requests import json_bytes, refuse_unknown_args
from enttok.connectors import activity, cursors
from enttok.connectors.interface import IConnector, job_type_name
from enttok.jobs import store as job_store
from enttok.jobs.model import TERMINAL, Job
from enttok.store import Database


def _last_job(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    finished = job.updated_at if job.status in TERMINAL else None
    return {"job_id": job.job_id, "status": job.status, "finished_at": finished}


def _last_error(job: Job | None) -> dict[str, Any] | None:
    """The error of the last finished sync, when it failed."""
    if job is None or job.status != "failed" or not job.error:
        return None
    return {"code": str(job.error.get("code", "failed")),
            "message": str(job.error.get("message", ""))}


def connector_states(conn: sqlite3.Connection, connectors: Sequence[IConnector],
                     settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The C{connectors} list of C{GET /connectors} (runs on the database thread)."""
    answer = []
    for connector in connectors:
        job_type = job_type_name(connector.connector_id)
        state = activity.get_state(conn, connector.state_key)
        latest = job_store.list_jobs(conn, types=[job_type], limit=1)[0]
        finished = job_store.list_jobs(conn, statuses=sorted(TERMINAL), types=[job_type],
                                       limit=1)[0]
        answer.append({
            "id": connector.connector_id,
            "name": connector.display_name,
            "job_type": job_type,
            "configured": bool(connector.configured(settings)),
            "enabled": bool(connector.enabled(settings)),
            "interval_minutes": connector.interval_minutes(settings) or None,
            "last_sync_at": state.last_sync_at,
            "cursor_summary": cursors.summarize(connector.connector_id, state.cursor),
            "last_job": _last_job(latest[0] if latest else None),
            "last_error": _last_error(finished[0] if finished else None),
        })
    return answer


def listing(db: Database, connectors: Sequence[IConnector], settings: Mapping[str, Any],
            request: IRequest) -> Deferred[bytes]:
    refuse_unknown_args(request, set())
    d = db.run(connector_states, connectors, settings)
    return d.addCallback(lambda found: json_bytes(request, {"connectors": found}))
