"""Every FHIR resource we emit must be valid R4: checked against the fhir.resources R4B model and
the official R4 JSON schema (fetched by .ci/fetch-fhir-schema into .cache/fhir-r4)."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from jsonschema import Draft6Validator

from tests.tools import missing

SCHEMA = Path(__file__).resolve().parent.parent / ".cache" / "fhir-r4" / "fhir.schema.json"


@lru_cache(maxsize=1)
def _definitions() -> dict[str, Any]:
    if not SCHEMA.exists():
        missing("official FHIR R4 JSON schema not fetched: run .ci/fetch-fhir-schema")
    schema = json.loads(SCHEMA.read_text())
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0", "not the R4 schema"
    return dict(_admit_4_0_1(schema["definitions"]))


def _admit_4_0_1(node: Any) -> Any:
    """The package carries the schema generated from R4 4.0.0: its FHIRVersion enums end at
    '4.0.0', before the 4.0.1 technical correction added '4.0.1'. Admit exactly that code."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and "4.0.0" in enum and "4.0.1" not in enum:
            node["enum"] = [*enum, "4.0.1"]
        for value in node.values():
            _admit_4_0_1(value)
    elif isinstance(node, list):
        for value in node:
            _admit_4_0_1(value)
    return node


@cache
def _validator(resource_type: str) -> Draft6Validator:
    definitions = _definitions()
    if resource_type not in definitions:
        raise AssertionError(f"{resource_type} is not an R4 resource type")
    return Draft6Validator({"$ref": f"#/definitions/{resource_type}", "definitions": definitions})


def assert_valid_r4(resource: dict[str, Any]) -> None:
    """Fail with a readable message unless `resource` is valid R4 (Bundle entries included)."""
    resource_type = resource.get("resourceType")
    assert isinstance(resource_type, str), "no resourceType"
    try:
        get_fhir_model_class(resource_type).model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError says which element
        raise AssertionError(f"{resource_type} fails the fhir.resources model: {exc}") from exc
    errors = sorted(_validator(resource_type).iter_errors(resource), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in errors[:10]]
        raise AssertionError(f"{resource_type} fails the R4 JSON schema:\n" + "\n".join(lines))
    if resource_type == "Bundle":
        for entry in resource.get("entry", []):
            if "resource" in entry:
                assert_valid_r4(entry["resource"])
