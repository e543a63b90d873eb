"""The job record, its states and the transitions between them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from attrs import define, field

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"

STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED})

#: Which status may follow which. C{running -> queued} is a requeue after an
#: interruption (shutdown or crash), never a user action.
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, CANCELED, FAILED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELED, QUEUED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELED: frozenset(),
}


class IllegalTransition(Exception):
    """A status change that the state machine does not allow."""


def check_transition(old: str, new: str) -> None:
    """@raise IllegalTransition: unless C{old -> new} is allowed."""
    if new not in TRANSITIONS.get(old, frozenset()):
        raise IllegalTransition(f"{old} -> {new}")


def job_id_for(seconds: float, number: int) -> str:
    """The spec's id: C{job_YYYYMMDD_NNN} (more digits past 999)."""
    return f"job_{datetime.fromtimestamp(seconds, UTC):%Y%m%d}_{number:03d}"


def payload_key(job_type: str, payload: Any) -> str:
    """A canonical key: equal for jobs of the same type and payload."""
    return job_type + "\n" + json.dumps(payload, sort_keys=True, separators=(",", ":"))


@define
class Job:
    """One job, as stored and as the API shows it."""

    job_id: str
    type: str
    status: str
    created_at: str
    updated_at: str
    payload: dict[str, Any]
    progress: float = 0.0
    message: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    key: str = field(default="", repr=False)

    def to_json(self) -> dict[str, Any]:
        """The spec's job record (plus C{attempts})."""
        return {
            "job_id": self.job_id,
            "type": self.type,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "progress": self.progress,
            "message": self.message,
            "payload": self.payload,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
        }
