"""Our CapabilityStatement (FHIR R4 CapabilityStatement), generated from the search registry
so that it states exactly what the server does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mapping.fhir.dates import instant
from mapping.fhir.models import FHIR_VERSION, CapabilityStatement
from mapping.fhir.prune import prune
from mapping.fhir.search_params import INCLUDES, REGISTRY, WRITABLE

_COMMON = [
    {"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"},
    {
        "name": "_lastUpdated",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
        "type": "date",
    },
]
_DOCS = {
    "ImagingStudy": "Published from the DICOM index: one per study, id = Study Instance UID. "
    "Read-only; a read shows every instance committed so far.",
    "Patient": "One per Patient ID and issuer seen in DICOM (a study without Patient ID gets its own). "
    "Read-only.",
    "ServiceRequest": "One per requested procedure of an HL7 order (ORM^O01, OMI^O23) received over MLLP; "
    "identifiers: placer (PLAC), filler (FILL), accession (ACSN), Study Instance UID (urn:dicom:uid). "
    "Read-only.",
    "Procedure": "One per Modality Performed Procedure Step (MPPS N-CREATE / N-SET) a modality reported; "
    "identifier: the PPS SOP Instance UID (urn:dicom:uid); basedOn: the ServiceRequest of its "
    "scheduled step. "
    "Read-only.",
    "Practitioner": "The practitioners who sign in here (their fhirUser). Read-only.",
    "Endpoint": "The DICOMweb service of this server (dicom-wado-rs). Read-only.",
    "DiagnosticReport": "Written by clients (a reporting app: create, conditional create, update with "
    "If-Match); status lifecycle registered -> partial / preliminary -> final -> amended / corrected / "
    "appended, cancelled, entered-in-error; other changes are refused with 422. References to resources "
    "this server does not hold are kept as written.",
    "Observation": "Written by clients (create, conditional create, update with If-Match). References to "
    "resources this server does not hold are kept as written.",
}
_READ = ("read", "vread", "history-instance", "search-type")
_WRITE = ("create", "update")


def revincludes(res_type: str) -> list[str]:
    """`_revinclude` values for a search on `res_type`: every reference parameter that may point
    at it."""
    return [
        f"{source}:{name}"
        for source, params in REGISTRY.items()
        for name, param in params.items()
        if param.type == "reference" and res_type in param.targets
    ]


def capability_statement(
    *, fhir_base: str, software_version: str, published: datetime, security: dict[str, Any] | None = None
) -> CapabilityStatement:
    """`security`: CapabilityStatement.rest.security (SMART service, oauth-uris extension)."""
    resources: list[dict[str, Any]] = []
    for res_type, params in REGISTRY.items():
        resources.append(
            {
                "type": res_type,
                "documentation": _DOCS.get(res_type),
                "interaction": [{"code": c} for c in (*_READ, *(_WRITE if res_type in WRITABLE else ()))],
                "versioning": "versioned-update" if res_type in WRITABLE else "versioned",
                "readHistory": True,
                "updateCreate": res_type in WRITABLE,
                "conditionalCreate": res_type in WRITABLE or None,
                "conditionalRead": "not-match",
                "searchInclude": [f"{res_type}:{p}" for p in INCLUDES.get(res_type, ())] or None,
                "searchRevInclude": revincludes(res_type) or None,
                "searchParam": _COMMON
                + [{"name": p.name, "definition": p.definition, "type": p.type} for p in params.values()],
            }
        )
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(published),
        "publisher": "fhir-imaging-facade",
        "kind": "instance",
        "software": {"name": "fhir-imaging-facade", "version": software_version},
        "implementation": {"description": "FHIR R4 imaging facade over a DICOM archive", "url": fhir_base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": security,
                "documentation": (
                    "Search supports _count, _offset, _sort, _include, _revinclude, _summary=count and "
                    "_total. "
                    "Unknown parameters are refused unless the request says Prefer: handling=lenient."
                ),
                "resource": resources,
            }
        ],
    }
    return CapabilityStatement.model_validate(prune(body))
