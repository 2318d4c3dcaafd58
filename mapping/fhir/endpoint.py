"""Our DICOMweb service as a FHIR R4 Endpoint (ImagingStudy.endpoint; connection type dicom-wado-rs)."""

from __future__ import annotations

from mapping.fhir.models import Endpoint

CONNECTION_TYPES = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
DICOMWEB_ENDPOINT_ID = "dicomweb"


def dicomweb_endpoint(base_url: str) -> Endpoint:
    """`address` is the DICOMweb base: no `/studies`, no trailing slash (ImagingStudy notes)."""
    return Endpoint.model_validate(
        {
            "resourceType": "Endpoint",
            "id": DICOMWEB_ENDPOINT_ID,
            "status": "active",
            "name": "DICOMweb (WADO-RS, QIDO-RS, STOW-RS)",
            "connectionType": {"system": CONNECTION_TYPES, "code": "dicom-wado-rs"},
            "payloadType": [{"text": "DICOM"}],
            "payloadMimeType": ["application/dicom"],
            "address": f"{base_url.rstrip('/')}/dicomweb",
        }
    )
