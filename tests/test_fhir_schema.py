"""The R4 validation helper itself: it must be able to fail."""

from typing import Any

import pytest

from tests.fhir_schema import assert_valid_r4

STUDY: dict[str, Any] = {
    "resourceType": "ImagingStudy",
    "id": "1.2.3",
    "status": "available",
    "subject": {"reference": "Patient/p1"},
}


def test_valid_resources_pass() -> None:
    assert_valid_r4({"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"})
    assert_valid_r4(STUDY)
    assert_valid_r4({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": STUDY}]})


@pytest.mark.parametrize(
    "bad",
    [
        {"resourceType": "Patient", "nickname": "x"},  # unknown element
        {"resourceType": "Patient", "birthDate": 12},  # wrong type
        {"resourceType": "Patient", "birthDate": "1970-13-01"},  # pattern of the primitive
        {"resourceType": "ImagingStudy", "status": "available"},  # no subject
        {"resourceType": "ImagingStudy", "subject": {"reference": "Patient/p1"}},  # no status
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": {"resourceType": "Patient", "gender": "robot"}}],
        },
    ],
)
def test_invalid_resources_fail(bad: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_valid_r4(bad)
