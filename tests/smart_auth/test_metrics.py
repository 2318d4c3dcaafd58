"""/metrics: operational gauges for anyone, counts of clinical data only for a token that may search
Patient and ImagingStudy through system/ or user/ scopes (not a patient user's)."""

from __future__ import annotations

import httpx
import pytest

from tests.smart import bearer, issue_token
from tests.smart_auth.conftest import World

COUNTS = ('level="patients"} 2', 'level="studies"} 2', 'level="instances"} 3')


def test_public_metrics_carry_no_clinical_counts(world: World) -> None:
    r = httpx.get(f"{world.base}/metrics", timeout=10)
    assert r.status_code == 200
    assert "facade_stored_bytes" in r.text and "facade_studies_unpublished" in r.text
    assert "facade_index_rows" not in r.text and "patients" not in r.text


@pytest.mark.parametrize(
    ("scope", "fhir_user"),
    [
        ("system/*.rs", None),
        ("user/*.rs", "Practitioner/p1"),
        ("system/Patient.s system/ImagingStudy.s", None),
    ],
)
def test_a_system_or_user_token_sees_the_counts(world: World, scope: str, fhir_user: str | None) -> None:
    token = issue_token(world.services, scope, fhir_user=fhir_user)
    r = httpx.get(f"{world.base}/metrics", headers=bearer(token), timeout=10)
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    assert all(c in r.text for c in COUNTS), r.text
    assert "facade_stored_bytes" in r.text


def test_other_tokens_see_no_counts(world: World) -> None:
    patient = issue_token(world.services, "patient/*.rs", patient=world.alice)
    patient_user = issue_token(world.services, "user/*.rs", fhir_user=f"Patient/{world.alice}")
    narrow = issue_token(world.services, "system/ImagingStudy.rs")
    for token in (patient, patient_user, narrow):
        r = httpx.get(f"{world.base}/metrics", headers=bearer(token), timeout=10)
        assert r.status_code == 403 and "insufficient_scope" in r.headers["www-authenticate"]
        assert "facade_index_rows" not in r.text
    bad = httpx.get(f"{world.base}/metrics", headers=bearer("not-a-token"), timeout=10)
    assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]
    assert "facade_index_rows" not in bad.text
