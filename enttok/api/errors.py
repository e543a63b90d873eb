"""One error type and one JSON shape for every failure the API reports."""

from __future__ import annotations

import errno
import json
import sqlite3
from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from enttok.store.db import is_damage

log = Logger(namespace="enttok.api")


class APIError(Exception):
    """
    A failure to report to the client as C{{"error": {code, message, details}}}.

    @ivar status: the HTTP status code.
    @ivar code: a stable, machine-readable error code.
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> bytes:
    """Encode the one error shape."""
    error = {"code": code, "message": message, "details": details}
    return json.dumps({"error": error}).encode("utf-8")


def render_error(request: IRequest, error: APIError) -> bytes:
    """Set status and headers on C{request} and return the error's body."""
    request.setResponseCode(error.status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return error_body(error.code, error.message, error.details)


def disk_full(error: BaseException) -> bool:
    """Whether C{error} says the disk is full (SQLite's words, or the OS's)."""
    if isinstance(error, sqlite3.OperationalError):
        return "database or disk is full" in str(error)
    return isinstance(error, OSError) and error.errno == errno.ENOSPC


_WERKZEUG_CODES = {404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(app: Klein) -> None:
    """Make C{app} answer every failure, expected or not, in the one JSON shape."""

    @app.handle_errors(APIError)
    def api_error(self: Any, request: IRequest, failure: Failure) -> bytes:
        assert isinstance(failure.value, APIError)
        return render_error(request, failure.value)

    @app.handle_errors(HTTPException)
    def http_error(self: Any, request: IRequest, failure: Failure) -> bytes:
        he = failure.value
        assert isinstance(he, HTTPException)
        status = he.code or 500
        details = None
        if isinstance(he, MethodNotAllowed) and he.valid_methods:
            request.setHeader(b"allow", ", ".join(he.valid_methods).encode("ascii"))
            details = {"allowed": list(he.valid_methods)}
        message = {404: "no such route", 405: "method not allowed on this route"}.get(
            status, he.name)
        code = _WERKZEUG_CODES.get(status, "http_error")
        return render_error(request, APIError(status, code, message, details))

    @app.handle_errors(Exception)
    def unexpected(self: Any, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if error is not None and disk_full(error):
            log.warn("cannot answer {method} {path}: the disk is full",
                     method=request.method, path=request.path)
            return render_error(request, APIError(
                507, "disk_full", "the disk that holds the data folder is full"))
        if error is not None and is_damage(error):
            return render_error(request, APIError(
                503, "database_damaged", "the index database is damaged; restart the app "
                "to repair it (the index is rebuilt from the vault)"))
        log.failure("unexpected error answering {method} {path}", failure,
                    method=request.method, path=request.path)
        return render_error(request, APIError(500, "internal", "internal error; see the log"))
