"""Indexed patient -> FHIR R4 Patient (PS3.3 C.7.1.1; FHIR Patient)."""

from __future__ import annotations

from typing import Any

from mapping.dicom.dates import fhir_date
from mapping.dicom.facts import PatientFacts
from mapping.dicom.person_name import human_names
from mapping.fhir.models import Patient

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_GENDER = {"M": "male", "F": "female", "O": "other"}


def patient_from_index(
    facts: PatientFacts, *, resource_id: str, replaced_by: str | None = None, replaces: tuple[str, ...] = ()
) -> Patient:
    """Identifier = Patient ID in its issuer's system (type MR); absent sex stays absent. A patient
    merged into another (HL7 ADT^A40) is `active: false` with a `replaced-by` link; the survivor
    links `replaces` to each patient merged into it (FHIR R4 Patient.link)."""
    body: dict[str, Any] = {"resourceType": "Patient", "id": resource_id}
    if replaced_by is not None:
        body["active"] = False
    links = [{"other": {"reference": f"Patient/{replaced_by}"}, "type": "replaced-by"}] if replaced_by else []
    links += [{"other": {"reference": f"Patient/{old}"}, "type": "replaces"} for old in replaces]
    if facts.patient_id and facts.id_system:
        body["identifier"] = [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": facts.id_system,
                "value": facts.patient_id,
            }
        ]
    names = human_names(facts.name)
    if names:
        body["name"] = names
    if facts.sex in _GENDER:
        body["gender"] = _GENDER[facts.sex]
    birth = fhir_date(facts.birth_date)
    if birth:
        body["birthDate"] = birth
    if links:
        body["link"] = links
    return Patient.model_validate(body)
