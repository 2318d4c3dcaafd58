"""FHIR R4 search parameters we support, and how their values are read from a resource.

Pure: a resource's JSON in, index values out. The store writes what `index_values`
returns into the search tables; the query parser refuses any name not listed here;
the CapabilityStatement is generated from the same table, so it cannot claim more
than the server does. Definitions follow R4 `search-parameters.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

ParamType = Literal["token", "string", "date", "reference", "quantity"]
Json = dict[str, Any]


@dataclass(frozen=True)
class Token:
    system: str | None
    code: str


@dataclass(frozen=True)
class Ref:
    target_type: str
    target_id: str


@dataclass(frozen=True)
class Period:
    """A FHIR Period: indexed as one range, from its start's low to its end's high (no start: from
    the beginning of time; no end: ongoing, to the end of time), FHIR R4 3.1.1.4.1.1."""

    start: str | None
    end: str | None


@dataclass(frozen=True)
class Quantity:
    """A Quantity as indexed: its value as written (FHIR decimal text), `system` / `code` (UCUM)
    and the human `unit`."""

    value: str
    system: str | None
    code: str | None
    unit: str | None


IndexValue = Token | str | Ref | Period | Quantity  # a date is indexed from its FHIR string


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    definition_id: str  # id of the R4 SearchParameter, e.g. "ImagingStudy-modality"
    expression: str  # FHIRPath, for the CapabilityStatement and readers of this table
    extract: Callable[[Json], Iterator[IndexValue]]
    targets: tuple[str, ...] = field(default=())  # reference parameters: allowed target types
    # reference parameters searchable by `:identifier` (R4 3.1.1.4.9): where Reference.identifier is
    identifier_path: str | None = None

    @property
    def definition(self) -> str:
        return f"http://hl7.org/fhir/SearchParameter/{self.definition_id}"


def _walk(node: Any, path: list[str]) -> Iterator[Any]:
    """Every value at `path` below `node`, flattening lists (a tiny FHIRPath for plain paths)."""
    if not path:
        if isinstance(node, list):
            yield from node
        elif node is not None:
            yield node
        return
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
    elif isinstance(node, dict):
        yield from _walk(node.get(path[0]), path[1:])


def _at(path: str) -> Callable[[Json], Iterator[Any]]:
    parts = path.split(".")
    return lambda resource: _walk(resource, parts)


def tokens_of(value: Any, implicit_system: str | None = None) -> Iterator[Token]:
    """Token values of a code, Coding, CodeableConcept, Identifier, boolean, id or uri."""
    if isinstance(value, bool):
        yield Token(None, "true" if value else "false")
    elif isinstance(value, str):
        yield Token(implicit_system, value)
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value["coding"]:
                yield from tokens_of(coding)
        elif "code" in value:
            yield Token(value.get("system"), value["code"])
        elif "value" in value:  # Identifier
            yield Token(value.get("system"), value["value"])


def identifier_of_type(value: Any) -> Iterator[Token]:
    """`identifier:of-type` rows: system 'typeSystem|typeCode', code = identifier value."""
    if isinstance(value, dict) and "value" in value:
        for coding in (value.get("type") or {}).get("coding", []):
            if coding.get("code"):
                yield Token(f"{coding.get('system', '')}|{coding['code']}", value["value"])


def references_of(value: Any, targets: tuple[str, ...]) -> Iterator[Ref]:
    """Relative literal references 'Type/id' to one of `targets`."""
    ref = value.get("reference") if isinstance(value, dict) else None
    if isinstance(ref, str) and ref.count("/") == 1:
        kind, rid = ref.split("/")
        if kind in targets:
            yield Ref(kind, rid)


def strings_of(value: Any) -> Iterator[str]:
    """Searchable strings of a string or HumanName / Address-like element."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in (
            "text",
            "family",
            "given",
            "prefix",
            "suffix",
            "line",
            "city",
            "state",
            "postalCode",
            "country",
        ):
            part = value.get(key)
            for item in part if isinstance(part, list) else [part]:
                if isinstance(item, str):
                    yield item


def _token(path: str, implicit_system: str | None = None) -> Callable[[Json], Iterator[IndexValue]]:
    at = _at(path)
    return lambda r: (t for v in at(r) for t in tokens_of(v, implicit_system))


def _string(path: str) -> Callable[[Json], Iterator[IndexValue]]:
    at = _at(path)
    return lambda r: (s for v in at(r) for s in strings_of(v))


def _date(path: str) -> Callable[[Json], Iterator[IndexValue]]:
    at = _at(path)
    return lambda r: (v for v in at(r) if isinstance(v, str))


def _period(path: str) -> Callable[[Json], Iterator[IndexValue]]:
    at = _at(path)
    return lambda r: (Period(v.get("start"), v.get("end")) for v in at(r) if isinstance(v, dict))


def _quantity(path: str) -> Callable[[Json], Iterator[IndexValue]]:
    at = _at(path)
    return lambda r: (
        Quantity(str(v["value"]), v.get("system"), v.get("code"), v.get("unit"))
        for v in at(r)
        if isinstance(v, dict)
        and isinstance(v.get("value"), int | float | Decimal)
        and not isinstance(v["value"], bool)
    )


def _effective(r: Json) -> Iterator[IndexValue]:
    """`effective[x]`: a dateTime or instant as a date, a Period as one range."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        if isinstance(r.get(key), str):
            yield r[key]
    period = r.get("effectivePeriod")
    if isinstance(period, dict):
        yield Period(period.get("start"), period.get("end"))


def _ref(path: str, targets: tuple[str, ...]) -> Callable[[Json], Iterator[IndexValue]]:
    at = _at(path)
    return lambda r: (x for v in at(r) for x in references_of(v, targets))


_GENDER = "http://hl7.org/fhir/administrative-gender"
_IMAGING_STATUS = "http://hl7.org/fhir/imagingstudy-status"
_ENDPOINT_STATUS = "http://hl7.org/fhir/endpoint-status"
_SUBJECTS = ("Patient", "Group", "Device")
_BASED_ON = ("CarePlan", "ServiceRequest", "Appointment", "AppointmentResponse", "Task")
_REQUESTERS = ("Practitioner", "PractitionerRole", "Organization", "Patient", "RelatedPerson", "Device")
_REQUEST_STATUS = "http://hl7.org/fhir/request-status"
_REQUEST_INTENT = "http://hl7.org/fhir/request-intent"
_REQUEST_PRIORITY = "http://hl7.org/fhir/request-priority"
_EVENT_STATUS = "http://hl7.org/fhir/event-status"
_REPORT_STATUS = "http://hl7.org/fhir/diagnostic-report-status"
_OBSERVATION_STATUS = "http://hl7.org/fhir/observation-status"
_RESULT_SUBJECTS = ("Patient", "Group", "Device", "Location")
_REPORT_BASED_ON = (
    "CarePlan",
    "ImmunizationRecommendation",
    "MedicationRequest",
    "NutritionOrder",
    "ServiceRequest",
)
_PERFORMERS = ("Practitioner", "PractitionerRole", "Organization", "CareTeam")
_OBSERVATION_PERFORMERS = (*_PERFORMERS, "Patient", "RelatedPerson")
_DERIVED_FROM = (
    "DocumentReference",
    "ImagingStudy",
    "Media",
    "QuestionnaireResponse",
    "Observation",
    "MolecularSequence",
)
_PART_OF = (
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationStatement",
    "Procedure",
    "Immunization",
    "ImagingStudy",
)
_OBSERVATION_BASED_ON = (
    "CarePlan",
    "DeviceRequest",
    "ImmunizationRecommendation",
    "MedicationRequest",
    "NutritionOrder",
    "ServiceRequest",
)


def _params(*params: SearchParam) -> dict[str, SearchParam]:
    return {p.name: p for p in params}


REGISTRY: dict[str, dict[str, SearchParam]] = {
    "ImagingStudy": _params(
        SearchParam(
            "identifier", "token", "clinical-identifier", "ImagingStudy.identifier", _token("identifier")
        ),
        SearchParam(
            "patient",
            "reference",
            "clinical-patient",
            "ImagingStudy.subject.where(resolve() is Patient)",
            _ref("subject", ("Patient",)),
            ("Patient",),
        ),
        SearchParam(
            "subject",
            "reference",
            "ImagingStudy-subject",
            "ImagingStudy.subject",
            _ref("subject", _SUBJECTS),
            _SUBJECTS,
        ),
        SearchParam("started", "date", "ImagingStudy-started", "ImagingStudy.started", _date("started")),
        SearchParam(
            "status", "token", "ImagingStudy-status", "ImagingStudy.status", _token("status", _IMAGING_STATUS)
        ),
        SearchParam(
            "modality",
            "token",
            "ImagingStudy-modality",
            "ImagingStudy.series.modality",
            _token("series.modality"),
        ),
        SearchParam(
            "bodysite",
            "token",
            "ImagingStudy-bodysite",
            "ImagingStudy.series.bodySite",
            _token("series.bodySite"),
        ),
        SearchParam(
            "series", "token", "ImagingStudy-series", "ImagingStudy.series.uid", _token("series.uid")
        ),
        SearchParam(
            "instance",
            "token",
            "ImagingStudy-instance",
            "ImagingStudy.series.instance.uid",
            _token("series.instance.uid"),
        ),
        SearchParam(
            "dicom-class",
            "token",
            "ImagingStudy-dicom-class",
            "ImagingStudy.series.instance.sopClass",
            _token("series.instance.sopClass"),
        ),
        SearchParam(
            "reason", "token", "ImagingStudy-reason", "ImagingStudy.reasonCode", _token("reasonCode")
        ),
        SearchParam(
            "basedon",
            "reference",
            "ImagingStudy-basedon",
            "ImagingStudy.basedOn",
            _ref("basedOn", _BASED_ON),
            _BASED_ON,
        ),
        SearchParam(
            "endpoint",
            "reference",
            "ImagingStudy-endpoint",
            "ImagingStudy.endpoint | ImagingStudy.series.endpoint",
            lambda r: (
                x
                for path in ("endpoint", "series.endpoint")
                for v in _at(path)(r)
                for x in references_of(v, ("Endpoint",))
            ),
            ("Endpoint",),
        ),
    ),
    "Patient": _params(
        SearchParam("identifier", "token", "Patient-identifier", "Patient.identifier", _token("identifier")),
        SearchParam("name", "string", "Patient-name", "Patient.name", _string("name")),
        SearchParam("family", "string", "individual-family", "Patient.name.family", _string("name.family")),
        SearchParam("given", "string", "individual-given", "Patient.name.given", _string("name.given")),
        SearchParam("birthdate", "date", "individual-birthdate", "Patient.birthDate", _date("birthDate")),
        SearchParam("gender", "token", "individual-gender", "Patient.gender", _token("gender", _GENDER)),
    ),
    "ServiceRequest": _params(
        SearchParam(
            "identifier", "token", "clinical-identifier", "ServiceRequest.identifier", _token("identifier")
        ),
        SearchParam(
            "patient",
            "reference",
            "clinical-patient",
            "ServiceRequest.subject.where(resolve() is Patient)",
            _ref("subject", ("Patient",)),
            ("Patient",),
        ),
        SearchParam(
            "subject",
            "reference",
            "ServiceRequest-subject",
            "ServiceRequest.subject",
            _ref("subject", _SUBJECTS),
            _SUBJECTS,
        ),
        SearchParam(
            "status",
            "token",
            "ServiceRequest-status",
            "ServiceRequest.status",
            _token("status", _REQUEST_STATUS),
        ),
        SearchParam(
            "intent",
            "token",
            "ServiceRequest-intent",
            "ServiceRequest.intent",
            _token("intent", _REQUEST_INTENT),
        ),
        SearchParam("code", "token", "clinical-code", "ServiceRequest.code", _token("code")),
        SearchParam(
            "requester",
            "reference",
            "ServiceRequest-requester",
            "ServiceRequest.requester",
            _ref("requester", _REQUESTERS),
            _REQUESTERS,
            identifier_path="requester.identifier",
        ),
        SearchParam(
            "category", "token", "ServiceRequest-category", "ServiceRequest.category", _token("category")
        ),
        SearchParam(
            "priority",
            "token",
            "ServiceRequest-priority",
            "ServiceRequest.priority",
            _token("priority", _REQUEST_PRIORITY),
        ),
        SearchParam(
            "authored", "date", "ServiceRequest-authored", "ServiceRequest.authoredOn", _date("authoredOn")
        ),
        SearchParam(
            "occurrence",
            "date",
            "ServiceRequest-occurrence",
            "ServiceRequest.occurrence",
            _date("occurrenceDateTime"),
        ),
    ),
    "Procedure": _params(
        SearchParam(
            "identifier", "token", "clinical-identifier", "Procedure.identifier", _token("identifier")
        ),
        SearchParam(
            "patient",
            "reference",
            "clinical-patient",
            "Procedure.subject.where(resolve() is Patient)",
            _ref("subject", ("Patient",)),
            ("Patient",),
        ),
        SearchParam(
            "subject",
            "reference",
            "Procedure-subject",
            "Procedure.subject",
            _ref("subject", ("Patient", "Group")),
            ("Patient", "Group"),
        ),
        SearchParam(
            "status", "token", "Procedure-status", "Procedure.status", _token("status", _EVENT_STATUS)
        ),
        SearchParam("date", "date", "clinical-date", "Procedure.performed", _period("performedPeriod")),
        SearchParam(
            "based-on",
            "reference",
            "Procedure-based-on",
            "Procedure.basedOn",
            _ref("basedOn", ("CarePlan", "ServiceRequest")),
            ("CarePlan", "ServiceRequest"),
        ),
        SearchParam("code", "token", "clinical-code", "Procedure.code", _token("code")),
    ),
    "DiagnosticReport": _params(
        SearchParam(
            "identifier", "token", "clinical-identifier", "DiagnosticReport.identifier", _token("identifier")
        ),
        SearchParam(
            "patient",
            "reference",
            "clinical-patient",
            "DiagnosticReport.subject.where(resolve() is Patient)",
            _ref("subject", ("Patient",)),
            ("Patient",),
        ),
        SearchParam(
            "subject",
            "reference",
            "DiagnosticReport-subject",
            "DiagnosticReport.subject",
            _ref("subject", _RESULT_SUBJECTS),
            _RESULT_SUBJECTS,
        ),
        SearchParam(
            "status",
            "token",
            "DiagnosticReport-status",
            "DiagnosticReport.status",
            _token("status", _REPORT_STATUS),
        ),
        SearchParam("code", "token", "clinical-code", "DiagnosticReport.code", _token("code")),
        SearchParam(
            "category", "token", "DiagnosticReport-category", "DiagnosticReport.category", _token("category")
        ),
        SearchParam("date", "date", "clinical-date", "DiagnosticReport.effective", _effective),
        SearchParam("issued", "date", "DiagnosticReport-issued", "DiagnosticReport.issued", _date("issued")),
        SearchParam(
            "based-on",
            "reference",
            "DiagnosticReport-based-on",
            "DiagnosticReport.basedOn",
            _ref("basedOn", _REPORT_BASED_ON),
            _REPORT_BASED_ON,
        ),
        SearchParam(
            "result",
            "reference",
            "DiagnosticReport-result",
            "DiagnosticReport.result",
            _ref("result", ("Observation",)),
            ("Observation",),
        ),
        SearchParam(
            "performer",
            "reference",
            "DiagnosticReport-performer",
            "DiagnosticReport.performer",
            _ref("performer", _PERFORMERS),
            _PERFORMERS,
        ),
        SearchParam(
            "results-interpreter",
            "reference",
            "DiagnosticReport-results-interpreter",
            "DiagnosticReport.resultsInterpreter",
            _ref("resultsInterpreter", _PERFORMERS),
            _PERFORMERS,
        ),
        SearchParam(
            "conclusion",
            "token",
            "DiagnosticReport-conclusion",
            "DiagnosticReport.conclusionCode",
            _token("conclusionCode"),
        ),
    ),
    "Observation": _params(
        SearchParam(
            "identifier", "token", "clinical-identifier", "Observation.identifier", _token("identifier")
        ),
        SearchParam(
            "patient",
            "reference",
            "clinical-patient",
            "Observation.subject.where(resolve() is Patient)",
            _ref("subject", ("Patient",)),
            ("Patient",),
        ),
        SearchParam(
            "subject",
            "reference",
            "Observation-subject",
            "Observation.subject",
            _ref("subject", _RESULT_SUBJECTS),
            _RESULT_SUBJECTS,
        ),
        SearchParam("code", "token", "clinical-code", "Observation.code", _token("code")),
        SearchParam("category", "token", "Observation-category", "Observation.category", _token("category")),
        SearchParam("date", "date", "clinical-date", "Observation.effective", _effective),
        SearchParam(
            "status",
            "token",
            "Observation-status",
            "Observation.status",
            _token("status", _OBSERVATION_STATUS),
        ),
        SearchParam(
            "derived-from",
            "reference",
            "Observation-derived-from",
            "Observation.derivedFrom",
            _ref("derivedFrom", _DERIVED_FROM),
            _DERIVED_FROM,
        ),
        SearchParam(
            "part-of",
            "reference",
            "Observation-part-of",
            "Observation.partOf",
            _ref("partOf", _PART_OF),
            _PART_OF,
        ),
        SearchParam(
            "has-member",
            "reference",
            "Observation-has-member",
            "Observation.hasMember",
            _ref("hasMember", ("Observation", "QuestionnaireResponse", "MolecularSequence")),
            ("Observation", "QuestionnaireResponse", "MolecularSequence"),
        ),
        SearchParam(
            "based-on",
            "reference",
            "Observation-based-on",
            "Observation.basedOn",
            _ref("basedOn", _OBSERVATION_BASED_ON),
            _OBSERVATION_BASED_ON,
        ),
        SearchParam(
            "performer",
            "reference",
            "Observation-performer",
            "Observation.performer",
            _ref("performer", _OBSERVATION_PERFORMERS),
            _OBSERVATION_PERFORMERS,
        ),
        SearchParam(
            "value-quantity",
            "quantity",
            "Observation-value-quantity",
            "(Observation.value as Quantity) | (Observation.value as SampledData)",
            _quantity("valueQuantity"),
        ),
        SearchParam(
            "component-code",
            "token",
            "Observation-component-code",
            "Observation.component.code",
            _token("component.code"),
        ),
        SearchParam(
            "component-value-quantity",
            "quantity",
            "Observation-component-value-quantity",
            "(Observation.component.value as Quantity) | (Observation.component.value as SampledData)",
            _quantity("component.valueQuantity"),
        ),
    ),
    "Practitioner": _params(
        SearchParam(
            "identifier", "token", "Practitioner-identifier", "Practitioner.identifier", _token("identifier")
        ),
        SearchParam("name", "string", "Practitioner-name", "Practitioner.name", _string("name")),
        SearchParam(
            "family", "string", "individual-family", "Practitioner.name.family", _string("name.family")
        ),
        SearchParam("given", "string", "individual-given", "Practitioner.name.given", _string("name.given")),
    ),
    "Endpoint": _params(
        SearchParam(
            "identifier", "token", "Endpoint-identifier", "Endpoint.identifier", _token("identifier")
        ),
        SearchParam("name", "string", "Endpoint-name", "Endpoint.name", _string("name")),
        SearchParam(
            "status", "token", "Endpoint-status", "Endpoint.status", _token("status", _ENDPOINT_STATUS)
        ),
        SearchParam(
            "connection-type",
            "token",
            "Endpoint-connection-type",
            "Endpoint.connectionType",
            _token("connectionType"),
        ),
    ),
}

# Per type, each parameter's type: what the query builder needs of the registry.
PARAM_TYPES: dict[str, dict[str, str]] = {
    res_type: {name: param.type for name, param in params.items()} for res_type, params in REGISTRY.items()
}

# The Patient compartment (R4 CompartmentDefinition/patient) of the types we serve: the parameter
# that names the patient ("_id" for Patient itself). Types not listed are outside it.
PATIENT_COMPARTMENT: dict[str, str] = {
    "ImagingStudy": "patient",
    "Patient": "_id",
    "ServiceRequest": "patient",
    "Procedure": "patient",
    "DiagnosticReport": "patient",
    "Observation": "patient",
}

# Modifier-indexed variants written beside the plain parameter.
OF_TYPE = "identifier:of-type"

# References `_include` may follow, per type: "Type:param" -> parameter.
INCLUDES: dict[str, tuple[str, ...]] = {
    "ImagingStudy": ("patient", "subject", "endpoint", "basedon"),
    "ServiceRequest": ("patient", "subject"),
    "Procedure": ("patient", "subject", "based-on"),
    "DiagnosticReport": ("patient", "subject", "result", "based-on", "performer", "results-interpreter"),
    "Observation": ("patient", "subject", "derived-from", "part-of", "has-member", "based-on"),
}

# Resources clients write over FHIR (create, update); every other type is derived and read-only.
WRITABLE: tuple[str, ...] = ("DiagnosticReport", "Observation")


def index_values(resource: Json) -> Iterator[tuple[str, ParamType, IndexValue]]:
    """(parameter name, type, value) for every value `resource` is searchable by."""
    params = REGISTRY.get(resource["resourceType"], {})
    for param in params.values():
        for value in param.extract(resource):
            yield param.name, param.type, value
        if param.identifier_path:
            for ident in _at(param.identifier_path)(resource):
                for token in tokens_of(ident):
                    yield f"{param.name}:identifier", "token", token
    if "identifier" in params:
        for ident in resource.get("identifier", []):
            for token in identifier_of_type(ident):
                yield OF_TYPE, "token", token
