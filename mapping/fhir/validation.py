"""Is a resource a client sent valid FHIR R4? The fhir.resources model of its type decides the
structure (elements, cardinalities, data types, unknown elements); the required bindings that
model does not check (status codes) are checked here. Pure: JSON in, problems out, each naming
the element it is about (`DiagnosticReport.code`, `Observation.component[1].code`)."""

from __future__ import annotations

from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from mapping.fhir.result_status import STATUSES

MAX_PROBLEMS = 10


def problems(body: Any, res_type: str) -> list[str]:
    """What is wrong with `body` as a resource of `res_type`, the empty list when nothing is."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    sent = body.get("resourceType")
    if sent != res_type:
        return [f"resourceType is {sent!r}, not {res_type!r}"]
    found: list[str] = []
    try:
        get_fhir_model_class(res_type).model_validate(body)
    except pydantic.ValidationError as exc:
        found += [f"{res_type}{_path(e['loc'])}: {_message(e)}" for e in exc.errors()[:MAX_PROBLEMS]]
    except (TypeError, ValueError) as exc:  # what the model raises outside pydantic's own errors
        found.append(f"{res_type}: {exc}")
    allowed = STATUSES.get(res_type)
    status = body.get("status")
    if allowed is not None and isinstance(status, str) and status not in allowed:
        found.append(f"{res_type}.status: '{status}' is not one of {', '.join(allowed)}")
    return found


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _message(error: Any) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "is not an element of this resource"
    if kind == "missing":
        return "is required"
    return str(error.get("msg", "is invalid"))
