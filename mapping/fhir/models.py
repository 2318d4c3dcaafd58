"""The one place FHIR classes come from.

fhir.resources 7+ (pydantic 2) has no R4 package; its R4B classes are the R4 wire
model for every resource we serve (ImagingStudy, Patient, Endpoint, ServiceRequest, Procedure,
OperationOutcome, Bundle, CapabilityStatement are unchanged between 4.0.1 and 4.3.0 in the elements
we emit). Tests also check every emitted resource against the official R4 schema.
"""

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest

FHIR_VERSION = "4.0.1"

__all__ = [
    "FHIR_VERSION",
    "Bundle",
    "CapabilityStatement",
    "Endpoint",
    "ImagingStudy",
    "OperationOutcome",
    "Patient",
    "Practitioner",
    "Procedure",
    "ServiceRequest",
]
