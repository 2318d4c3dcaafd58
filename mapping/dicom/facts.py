"""DICOM instance header -> the facts the index keeps (PS3.3 C.7.1-C.7.3, C.12.1).

Pure: no I/O. Text values are already decoded per SpecificCharacterSet by pydicom
when the dataset was read; DA/TM values stay as DICOM strings and are converted
where a FHIR element needs them (`mapping.dicom.dates`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from mapping.dicom.raw_header import RawHeader
from mapping.dicom.uid import is_oid

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


@dataclass(frozen=True)
class Code:
    """One item of a DICOM code sequence (PS3.3 8.8), system already a URI when known."""

    system: str | None
    code: str
    display: str | None = None


@dataclass(frozen=True)
class PatientFacts:
    patient_id: str | None  # (0010,0020)
    id_system: str | None  # resolved from the issuer, None when there is no Patient ID
    name: str  # (0010,0010) decoded, with '=' between component groups
    birth_date: str  # (0010,0030) DA
    sex: str  # (0010,0040) M / F / O
    issuer_stated: bool = False  # the instance names an issuer ((0010,0024) or (0010,0021)): id_system
    # is then its own, not the configured default for Patient IDs without one


@dataclass(frozen=True)
class StudyFacts:
    study_uid: str  # (0020,000D)
    study_date: str  # (0008,0020) DA
    study_time: str  # (0008,0030) TM
    tz_offset: str  # (0008,0201) &ZZXX
    accession: str  # (0008,0050)
    accession_system: str | None  # (0008,0051) universal entity
    accession_assigner: str | None  # (0008,0051) local namespace
    study_id: str  # (0020,0010)
    description: str  # (0008,1030)
    referring_physician: str  # (0008,0090)
    procedure_codes: tuple[Code, ...]  # (0008,1032)
    reason: str  # (0040,1002)


@dataclass(frozen=True)
class SeriesFacts:
    series_uid: str  # (0020,000E)
    modality: str  # (0008,0060)
    series_number: int | None  # (0020,0011)
    description: str  # (0008,103E)
    body_part: str  # (0018,0015)
    laterality: str  # (0020,0060)
    series_date: str  # (0008,0021)
    series_time: str  # (0008,0031)
    performing_physician: str  # (0008,1050)


@dataclass(frozen=True)
class InstanceFacts:
    sop_uid: str  # (0008,0018)
    sop_class_uid: str  # (0008,0016)
    instance_number: int | None  # (0020,0013)
    title: str  # R4 mapping: (0040,A043) meaning | (0042,0010) | (0008,0008)
    transfer_syntax_uid: str  # (0002,0010)
    character_set: str  # (0008,0005)
    rows: int | None
    columns: int | None
    number_of_frames: int | None


@dataclass(frozen=True)
class InstanceHeader:
    """Everything the index learns from one instance."""

    patient: PatientFacts
    study: StudyFacts
    series: SeriesFacts
    instance: InstanceFacts
    missing: tuple[str, ...] = field(default=())  # required UIDs absent from the header


Header = Dataset | RawHeader
"""A whole data set, or the few top-level elements of `HEADER_KEYWORDS` (all that is read here)."""

HEADER_KEYWORDS = (
    "SpecificCharacterSet",
    "ImageType",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyDate",
    "SeriesDate",
    "StudyTime",
    "SeriesTime",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "Modality",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
    "StudyDescription",
    "ProcedureCodeSequence",
    "SeriesDescription",
    "PerformingPhysicianName",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "PatientBirthDate",
    "PatientSex",
    "BodyPartExamined",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyID",
    "SeriesNumber",
    "InstanceNumber",
    "Laterality",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "ReasonForTheRequestedProcedure",
    "ConceptNameCodeSequence",
    "DocumentTitle",
)
"""The top-level attributes `header_from_dataset` reads, in tag order."""

IssuerResolver = Callable[[str], str]
"""Maps a local IssuerOfPatientID (LO) to a URI; supplied by the composition root."""


def header_from_dataset(ds: Header, *, default_system: str, issuer_system: IssuerResolver) -> InstanceHeader:
    """Facts of one instance. `missing` lists absent required UIDs instead of raising."""
    missing = tuple(
        kw
        for kw in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID")
        if not _text(ds, kw)
    )
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return InstanceHeader(
        patient=patient_facts(ds, default_system=default_system, issuer_system=issuer_system),
        study=StudyFacts(
            study_uid=_text(ds, "StudyInstanceUID"),
            study_date=_text(ds, "StudyDate"),
            study_time=_text(ds, "StudyTime"),
            tz_offset=_text(ds, "TimezoneOffsetFromUTC"),
            accession=_text(ds, "AccessionNumber"),
            accession_system=_universal_entity(_first_item(ds, "IssuerOfAccessionNumberSequence")),
            accession_assigner=_text(
                _first_item(ds, "IssuerOfAccessionNumberSequence"), "LocalNamespaceEntityID"
            )
            or None,
            study_id=_text(ds, "StudyID"),
            description=_text(ds, "StudyDescription"),
            referring_physician=_person(ds, "ReferringPhysicianName"),
            procedure_codes=_codes(ds, "ProcedureCodeSequence"),
            reason=_text(ds, "ReasonForTheRequestedProcedure"),
        ),
        series=SeriesFacts(
            series_uid=_text(ds, "SeriesInstanceUID"),
            modality=_text(ds, "Modality"),
            series_number=_int(ds, "SeriesNumber"),
            description=_text(ds, "SeriesDescription"),
            body_part=_text(ds, "BodyPartExamined").upper(),
            laterality=_text(ds, "Laterality").upper(),
            series_date=_text(ds, "SeriesDate"),
            series_time=_text(ds, "SeriesTime"),
            performing_physician=_person(ds, "PerformingPhysicianName"),
        ),
        instance=InstanceFacts(
            sop_uid=_text(ds, "SOPInstanceUID"),
            sop_class_uid=_text(ds, "SOPClassUID"),
            instance_number=_int(ds, "InstanceNumber"),
            title=instance_title(ds),
            transfer_syntax_uid=transfer_syntax,
            character_set=_joined(ds, "SpecificCharacterSet"),
            rows=_int(ds, "Rows"),
            columns=_int(ds, "Columns"),
            number_of_frames=_int(ds, "NumberOfFrames"),
        ),
        missing=missing,
    )


def patient_facts(ds: Header, *, default_system: str, issuer_system: IssuerResolver) -> PatientFacts:
    """Patient ID qualified by its issuer: (0010,0024) universal entity, else (0010,0021), else default."""
    patient_id = _text(ds, "PatientID") or None
    system = stated = None
    if patient_id is not None:
        stated = _universal_entity(_first_item(ds, "IssuerOfPatientIDQualifiersSequence")) or _issuer_uri(
            _text(ds, "IssuerOfPatientID"), issuer_system
        )
        system = stated or default_system
    return PatientFacts(
        patient_id=patient_id,
        id_system=system,
        name=_person(ds, "PatientName"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex").upper(),
        issuer_stated=stated is not None,
    )


def same_patient(facts: PatientFacts, patient_id: str | None, id_system: str | None) -> bool:
    """Whether an instance's Patient ID and issuer fit the patient a study is stored for: no
    Patient ID (absent or empty) fits any patient, and so does the same Patient ID without an
    issuer; a different non-empty Patient ID, or a stated issuer that resolves to another system,
    does not."""
    if facts.patient_id is None:
        return True
    if facts.patient_id != patient_id:
        return False
    return not facts.issuer_stated or facts.id_system == id_system


def local_issuer_system(base: str, overrides: dict[str, str]) -> IssuerResolver:
    """Default resolver: configured URI for a local issuer, else `<base>:<percent-encoded issuer>`."""

    def resolve(issuer: str) -> str:
        return overrides.get(issuer) or f"{base}:{quote(issuer, safe='')}"

    return resolve


def instance_title(ds: Header) -> str:
    """FHIR R4 ImagingStudy.series.instance.title: SR concept name, document title, else image type."""
    concept = _first_item(ds, "ConceptNameCodeSequence")
    if concept is not None and _text(concept, "CodeMeaning"):
        return _text(concept, "CodeMeaning")
    if _text(ds, "DocumentTitle"):
        return _text(ds, "DocumentTitle")
    return _joined(ds, "ImageType")


def _issuer_uri(issuer: str, resolve: IssuerResolver) -> str | None:
    if not issuer:
        return None
    if is_oid(issuer):
        return f"urn:oid:{issuer}"
    if _URI.match(issuer):
        return issuer
    return resolve(issuer)


def _universal_entity(item: Dataset | None) -> str | None:
    """HL7 v2 HD-style universal id (PS3.3 10.14): ISO -> urn:oid:, UUID -> urn:uuid:, URI as is."""
    if item is None:
        return None
    return universal_entity_uri(_text(item, "UniversalEntityID"), _text(item, "UniversalEntityIDType"))


def universal_entity_uri(uid: str, kind: str) -> str | None:
    """An HD universal id and its type (HL7 table 0301) as a URI, or None when it is not one."""
    kind = kind.upper()
    if not uid:
        return None
    if kind == "ISO" and is_oid(uid):
        return f"urn:oid:{uid}"
    if kind == "UUID":
        return f"urn:uuid:{uid.lower()}"
    if kind in {"URI", "URL"} and _URI.match(uid):
        return uid
    return None


def issuer_uri(issuer: str, resolve: IssuerResolver) -> str | None:
    """A local issuer (IssuerOfPatientID, an HD namespace id) as a URI: an OID or URI as such,
    else what the site configured for it."""
    return _issuer_uri(issuer, resolve)


_CODING_SCHEMES = {
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "SCT": "http://snomed.info/sct",
    "SRT": "http://snomed.info/srt",
    "LN": "http://loinc.org",
    "UCUM": "http://unitsofmeasure.org",
    "RADLEX": "http://radlex.org",
    "RADLEX_PLAYBOOK": "http://www.radlex.org",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "C4": "http://www.ama-assn.org/go/cpt",
}


def coding_system(designator: str) -> str | None:
    """PS3.16 Table 8-1 coding scheme designator -> FHIR system URI (None when unknown)."""
    return _CODING_SCHEMES.get(designator.upper())


def _codes(ds: Header, keyword: str) -> tuple[Code, ...]:
    out = []
    for item in ds.get(keyword) or ():
        value = _text(item, "CodeValue") or _text(item, "LongCodeValue") or _text(item, "URNCodeValue")
        if value:
            out.append(
                Code(
                    system=coding_system(_text(item, "CodingSchemeDesignator")),
                    code=value,
                    display=_text(item, "CodeMeaning") or None,
                )
            )
    return tuple(out)


def _first_item(ds: Header | None, keyword: str) -> Dataset | None:
    seq = ds.get(keyword) if ds is not None else None
    return seq[0] if seq else None


def _text(ds: Header | None, keyword: str) -> str:
    """A single-valued text element, stripped; '' when absent, empty or multi-valued garbage."""
    if ds is None:
        return ""
    value = ds.get(keyword)
    if value is None:
        return ""
    if type(value) is str:  # the common case, without the abstract base class check below
        return value.strip()
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else ""
    return str(value).strip()


def _joined(ds: Header, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _person(ds: Header, keyword: str) -> str:
    value = ds.get(keyword)
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    if value is None:
        return ""
    return str(value if isinstance(value, PersonName) else PersonName(str(value))).strip()


def _int(ds: Header, keyword: str) -> int | None:
    value = ds.get(keyword)
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
