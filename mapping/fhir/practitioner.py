"""A user who signs in here -> FHIR R4 Practitioner (their `fhirUser`, SMART App Launch 2.2)."""

from __future__ import annotations

from typing import Any


def practitioner_from_user(resource_id: str, display_name: str) -> dict[str, Any]:
    """Practitioner JSON for a user known by a free-text name: the last word is the family name,
    the words before it the given names, the whole kept as `text` (no parsing beyond that). A
    blank name gives no `name` (FHIR strings are never empty)."""
    body: dict[str, Any] = {"resourceType": "Practitioner", "id": resource_id, "active": True}
    parts = display_name.split()
    if parts:
        human: dict[str, Any] = {"text": " ".join(parts), "family": parts[-1]}
        if len(parts) > 1:
            human["given"] = parts[:-1]
        body["name"] = [human]
    return body
