"""Every refusal on /fhir is an OperationOutcome with the right status (one table)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from fhir_api.responses import fhir_json, operation_outcome
from smart_auth.resource_server.guard import www_authenticate
from storage.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InsufficientScope,
    Invalid,
    NotFound,
    PreconditionFailed,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)

log = logging.getLogger(__name__)

_HTTP: dict[type[DomainError], tuple[int, str]] = {
    NotFound: (404, "not-found"),
    Gone: (410, "deleted"),
    Invalid: (400, "invalid"),
    Conflict: (409, "conflict"),
    PreconditionFailed: (412, "conflict"),
    Unprocessable: (422, "business-rule"),
    Unauthenticated: (401, "login"),
    Forbidden: (403, "forbidden"),
    InsufficientScope: (403, "forbidden"),
    TooLarge: (413, "too-costly"),
    Unavailable: (503, "transient"),
}
_HTTP_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported", 415: "not-supported"}


def install(app: FastAPI, *, realm: str) -> None:
    app.state.realm = realm
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_bug)


def on_domain_error(request: Request, exc: Exception) -> Response:
    status, code = (
        _HTTP.get(type(exc), (400, "processing")) if isinstance(exc, DomainError) else (500, "exception")
    )
    headers = None
    if isinstance(exc, Unauthenticated | InsufficientScope):
        headers = {"WWW-Authenticate": www_authenticate(exc, request.app.state.realm)}
    return fhir_json(operation_outcome(code, str(exc)), status=status, headers=headers)


def on_validation_error(request: Request, exc: Exception) -> Response:
    return fhir_json(operation_outcome("invalid", "the request is malformed"), status=400)


def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "processing")
    text = "this interaction is not supported" if exc.status_code == 405 else str(exc.detail)
    return fhir_json(
        operation_outcome(code, text),
        status=exc.status_code,
        headers=dict(exc.headers) if exc.headers else None,
    )


def on_bug(request: Request, exc: Exception) -> Response:
    log.error("http.failed", exc_info=exc, extra={"method": request.method})
    return fhir_json(operation_outcome("exception", "internal error"), status=500)
