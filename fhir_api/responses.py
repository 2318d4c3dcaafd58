"""FHIR JSON responses and OperationOutcome (FHIR R4 3.1.0 RESTful API, 2.21 OperationOutcome)."""

from __future__ import annotations

from email.utils import format_datetime
from typing import Any

from fastapi import Request, Response

from mapping.fhir import json_text
from storage.usecases.search import StoredResource

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}


def fhir_json(
    body: dict[str, Any],
    *,
    status: int = 200,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    pretty = request is not None and request.query_params.get("_pretty") == "true"
    text = json_text.dumps(body, indent=2 if pretty else None)
    return Response(text, status_code=status, media_type=FHIR_JSON, headers=headers)


def resource_response(found: StoredResource, request: Request) -> Response:
    """A read or vread: the resource with its ETag and Last-Modified; 304 when the client has it."""
    headers = {"ETag": found.etag, "Last-Modified": format_datetime(found.last_updated, usegmt=True)}
    if found.etag in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return fhir_json(found.to_json(), request=request, headers=headers)


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """One issue; `code` from http://hl7.org/fhir/issue-type. `diagnostics` may quote what the
    client sent: whitespace other than space, tab, CR and LF becomes a space (an R4 string is
    `[ \\r\\n\\t\\S]+`)."""
    text = "".join(" " if c.isspace() and c not in " \r\n\t" else c for c in diagnostics)
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text or code}],
    }


def wants_unsupported_format(request: Request) -> str | None:
    """The format asked for by `_format` or Accept when it is not JSON, else None."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        return None if fmt.split(";")[0].strip() in _JSON_FORMATS else fmt
    accept = request.headers.get("accept", "")
    if not accept:
        return None
    types = [part.split(";")[0].strip() for part in accept.split(",")]
    if any(t in _JSON_FORMATS or t in ("*/*", "application/*") for t in types):
        return None
    return accept


def _etags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}
