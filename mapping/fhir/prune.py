"""FHIR forbids empty elements: drop None, '' and empty containers before validation."""

from __future__ import annotations

from typing import Any

_EMPTY: tuple[Any, ...] = (None, "", [], {})


def prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in _EMPTY}
    if isinstance(value, list):
        return [v for v in (prune(v) for v in value) if v not in _EMPTY]
    return value
