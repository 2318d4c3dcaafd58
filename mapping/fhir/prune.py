"""FHIR forbids empty elements: drop None, '' and empty containers before validation."""

from __future__ import annotations

from typing import Any


def prune(value: Any) -> Any:
    """`value` without None, '' and the dicts and lists that are empty or become so (other
    values, 0 and False among them, stay). Loops rather than comprehensions that compare each
    value with every empty form: it runs on the path each order's ACK waits for."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(item, dict | list):
                inner = prune(item)
                if inner:
                    out[key] = inner
            elif item is not None and item != "":
                out[key] = item
        return out
    if isinstance(value, list):
        kept = []
        for item in value:
            if isinstance(item, dict | list):
                inner = prune(item)
                if inner:
                    kept.append(inner)
            elif item is not None and item != "":
                kept.append(item)
        return kept
    return value
