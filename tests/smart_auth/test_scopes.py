"""The scope grammar (SMART scopes-and-launch-context): what is understood, dropped, narrowed."""

from __future__ import annotations

import pytest

from smart_auth.scopes import fhir_user_reference, grantable, narrowed, parse_scopes
from smart_auth.server.registry import APP_SCOPE

SERVED = ("ImagingStudy", "Patient", "Endpoint", "Practitioner")


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_scopes(
        text, served=SERVED, valid_query=lambda t, q: all(n in ("modality", "status") for n, _ in q)
    )


def test_v2_v1_and_context_scopes() -> None:
    s = parse(
        "launch/patient openid fhirUser offline_access patient/ImagingStudy.rs user/*.read system/Patient.r"
    )
    assert s.launch_context == {"patient"} and s.openid and s.fhir_user and s.offline
    by_text = {r.text: r for r in s.resources}
    assert by_text["patient/ImagingStudy.rs"].perms == {"r", "s"}
    assert by_text["user/*.read"].perms == {"r", "s"} and by_text["user/*.read"].v1
    assert s.permits("Patient", "r") and not s.permitting("Patient", "c")
    assert (
        tuple(str(s).split())
        == s.texts
        == tuple(
            [
                "launch/patient",
                "openid",
                "fhirUser",
                "offline_access",
                "patient/ImagingStudy.rs",
                "user/*.read",
                "system/Patient.r",
            ]
        )
    )


@pytest.mark.parametrize(
    "text",
    [
        "patient/ImagingStudy.sr",  # out of order
        "patient/ImagingStudy.dus",
        "patient/ImagingStudy.x",
        "patient/Medication.rs",  # a type we do not serve
        "patient/*.rs?modality=CT",  # a constraint on every type
        "patient/ImagingStudy.rs?modality:not=CT",  # modifiers are experimental
        "patient/ImagingStudy.rs?subject.name=x",  # chains too
        "patient/ImagingStudy.rs?_filter=x",
        "patient/ImagingStudy.rs?bodysite=x",  # not a valid search here
        "group/ImagingStudy.rs",
        "patient/ImagingStudy",
    ],
)
def test_what_cannot_be_honoured_exactly_is_dropped(text: str) -> None:
    assert parse(text).resources == () and parse(text).texts == ()


def test_granular_scope_keeps_its_constraint() -> None:
    (scope,) = parse(
        "user/ImagingStudy.rs?modality=http://dicom.nema.org/resources/ontology/DCM|CT"
    ).resources
    assert scope.query == (("modality", "http://dicom.nema.org/resources/ontology/DCM|CT"),)


def test_uri_form() -> None:
    (scope,) = parse("http://smarthealthit.org/fhir/scopes/patient/ImagingStudy.rs").resources
    assert scope.res_type == "ImagingStudy"


def test_refresh_narrowing_is_a_literal_subset() -> None:
    granted = "launch/patient patient/ImagingStudy.rs offline_access"
    assert narrowed(granted, None) == granted and narrowed(granted, "  ") == granted
    assert narrowed(granted, "patient/ImagingStudy.rs") == "patient/ImagingStudy.rs"
    assert narrowed(granted, granted) == granted
    assert narrowed(granted, "patient/ImagingStudy.read") is None  # never rewritten v1 <-> v2
    assert narrowed(granted, "patient/*.rs") is None


def test_a_client_policy_bounds_what_is_granted() -> None:
    policy = parse(APP_SCOPE)
    asked = parse(
        "launch/patient patient/ImagingStudy.rs patient/*.cruds system/*.rs user/Patient.read openid"
    )
    assert grantable(asked, policy, ehr_launch=False) == [
        "launch/patient",
        "patient/ImagingStudy.rs",
        "user/Patient.read",
        "openid",
    ]
    assert "online_access" not in grantable(parse("online_access"), policy, ehr_launch=False)
    assert grantable(parse("online_access"), policy, ehr_launch=True) == ["online_access"]


def test_the_code_flow_never_grants_system_scopes_whatever_the_policy() -> None:
    policy = parse(f"{APP_SCOPE} system/*.rs")
    asked = parse("patient/*.rs system/*.rs system/Patient.read")
    assert grantable(asked, policy, ehr_launch=False) == ["patient/*.rs"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Practitioner/p1", "Practitioner/p1"),
        ("https://ehr.example.org/fhir/Patient/p2/", "Patient/p2"),
        ("Person/x", None),  # not a kind asked for
        ("Patient/", None),  # no id: refused, never an exception
        ("p1", None),
    ],
)
def test_a_fhir_user_is_read_as_kind_and_id(value: str, expected: str | None) -> None:
    assert fhir_user_reference(value, ("Practitioner", "Patient")) == expected
