"""The status lifecycles of results clients write (R4 value sets diagnostic-report-status and
observation-status, required bindings) and which changes an update may make.

A result moves forward: registered -> partial / preliminary -> final -> amended / corrected /
appended; it may be cancelled before it is final, and marked entered-in-error at any time. A
final result never goes back to a preliminary state, and its content changes only with a status
that says so (amended, corrected, appended): an update that changes a final report and keeps it
`final` is refused. `unknown` says nothing about the lifecycle and is not constrained.
"""

from __future__ import annotations

from typing import Any

_REPORT = (
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
)
_OBSERVATION = (
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
)
STATUSES: dict[str, tuple[str, ...]] = {"DiagnosticReport": _REPORT, "Observation": _OBSERVATION}

_OPEN = ("registered", "partial", "preliminary")
_CHANGED = ("amended", "corrected", "appended")
# from -> the statuses an update may set
_NEXT: dict[str, frozenset[str]] = {
    "registered": frozenset({*_OPEN, "final", *_CHANGED, "cancelled", "entered-in-error"}),
    "partial": frozenset({"partial", "preliminary", "final", *_CHANGED, "cancelled", "entered-in-error"}),
    "preliminary": frozenset({"partial", "preliminary", "final", *_CHANGED, "cancelled", "entered-in-error"}),
    "final": frozenset({"final", *_CHANGED, "entered-in-error"}),
    "amended": frozenset({*_CHANGED, "entered-in-error"}),
    "corrected": frozenset({*_CHANGED, "entered-in-error"}),
    "appended": frozenset({*_CHANGED, "entered-in-error"}),
    "cancelled": frozenset({"cancelled", "entered-in-error"}),
    "entered-in-error": frozenset({"entered-in-error"}),
}


def transition_problem(res_type: str, before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """Why an update from `before` to `after` breaks the lifecycle, None when it does not."""
    old, new = before.get("status"), after.get("status")
    if not isinstance(old, str) or not isinstance(new, str) or "unknown" in (old, new):
        return None
    allowed = _NEXT.get(old)
    if allowed is None:
        return None
    if new not in allowed:
        return f"{res_type}.status cannot change from {old} to {new}"
    if old == new == "final" and _content(before) != _content(after):
        return f"a final {res_type} changes only as amended, corrected or appended"
    if old in ("cancelled", "entered-in-error") and _content(before) != _content(after):
        return f"a {old} {res_type} cannot be changed"
    return None


def _content(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("meta", "id", "text")}
