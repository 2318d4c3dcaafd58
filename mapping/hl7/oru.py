"""A DiagnosticReport -> ORU^R01, the radiology result as a RIS or EHR takes it (v2.5.1 ch. 7.3.1;
IHE RAD-128 for the fields, reference §4): MSH, PID, PV1, ORC, OBR, OBX.

- ORC-1 `RE`, ORC-5 `CM`; ORC-2/OBR-2 and ORC-3/OBR-3 the placer and filler order numbers of the
  ServiceRequest the report is `basedOn` (identifier types PLAC / FILL), OBR-18 its accession
  (ACSN); OBR-4 the ServiceRequest's code, else the report's; OBR-7 `effective[x]`; OBR-22
  `issued` (else now); OBR-24 `RAD`; OBR-25 `F` for a final report, `C` for an amended,
  corrected or appended one (the whole report is sent again; receivers replace it by OBR-3);
  OBR-32 the first `resultsInterpreter` (identifier & name).
- OBX: the report text (`presentedForm` text/plain, LOINC 18782-3) and the impression
  (`conclusion`, LOINC 19005-8), as TX one line per OBX or as one FT OBX with `\\.br\\`; an
  `application/pdf` presentedForm as ED `^application^pdf^Base64^…`; the Study Instance UID as
  ST `113014^DICOM Study^DCM`. OBX-11 follows OBR-25.

Written as ER7 directly, like the ACK (`mapping/hl7/ack.py`): hl7apy builds slowly. Every text is
escaped (`\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`). Characters the destination's character set cannot carry
are spelled without their accents (NFKD), else `?`: ASCII is what HL7 assumes without MSH-18, and
UTF-8 goes only to a receiver that agreed (its profile says so).
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mapping.hl7.charsets import Charset, charset_named
from mapping.hl7.er7 import escape

Json = dict[str, Any]
VERSIONS = ("2.5.1", "2.3.1")
TEXT_STYLES = ("tx", "ft")
# what a destination takes: ORU^R01 results, application ACKs to the orders it sent (enhanced mode)
MESSAGE_KINDS = ("oru", "ack")
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DICOM_UID = "urn:dicom:uid"
FINAL_STATUSES = ("final", "amended", "corrected", "appended")
REPORT_TEXT = "18782-3^Radiology Study observation^LN"
IMPRESSION = "19005-8^Radiology Imaging study [Impression] (narrative)^LN"
PDF_REPORT = "18748-4^Diagnostic imaging study^LN"
STUDY_UID = "113014^DICOM Study^DCM"
# FHIR code systems -> HL7 table 0396
_CODING_SYSTEMS = {
    "http://loinc.org": "LN",
    "http://snomed.info/sct": "SCT",
    "http://radlex.org": "RADLEX",
    "http://www.radlex.org": "RPID",
    "http://dicom.nema.org/resources/ontology/DCM": "DCM",
    "http://www.ama-assn.org/go/cpt": "C4",
    "http://hl7.org/fhir/sid/icd-10": "I10",
}
_SEX = {"male": "M", "female": "F", "other": "O", "unknown": "U"}


@dataclass(frozen=True)
class OruProfile:
    """What one destination takes: HL7 version, report text as TX lines or one FT, character set
    (an MSH-18 name), the receiving application / facility for MSH-5 / MSH-6, and which messages
    it receives (`MESSAGE_KINDS`: ORU^R01 results, application ACKs; both unless narrowed)."""

    version: str = "2.5.1"
    text: Literal["tx", "ft"] = "tx"
    charset: str = "ASCII"
    receiving_application: str = ""
    receiving_facility: str = ""
    receives: tuple[str, ...] = MESSAGE_KINDS

    def problem(self) -> str | None:
        """Why this profile cannot be used, or None."""
        if self.version not in VERSIONS:
            return f"version {self.version!r}: 2.5.1 or 2.3.1"
        if self.text not in TEXT_STYLES:
            return f"text {self.text!r}: tx or ft"
        if charset_named(self.charset) is None:
            return f"charset {self.charset!r}: ASCII, 8859/1 ... 8859/9, UNICODE UTF-8"
        if not self.receives or any(kind not in MESSAGE_KINDS for kind in self.receives):
            return f"receives {','.join(self.receives)!r}: oru, ack or both"
        return None

    def to_json(self) -> Json:
        return {
            "version": self.version,
            "text": self.text,
            "charset": self.charset,
            "receiving_application": self.receiving_application,
            "receiving_facility": self.receiving_facility,
            "receives": list(self.receives),
        }

    @classmethod
    def from_json(cls, data: Json) -> OruProfile:
        text = str(data.get("text", "tx")).lower()
        return cls(
            version=str(data.get("version", "2.5.1")),
            text="ft" if text == "ft" else "tx",
            charset=str(data.get("charset", "ASCII")),
            receiving_application=str(data.get("receiving_application", "")),
            receiving_facility=str(data.get("receiving_facility", "")),
            # a profile written before destinations chose got both
            receives=tuple(str(k) for k in data.get("receives", MESSAGE_KINDS)),
        )


@dataclass(frozen=True)
class Sender:
    """MSH-3 / MSH-4: who we are."""

    application: str = "FACADE"
    facility: str = ""


def result_status(report: Json, *, correction: bool = False) -> str:
    """OBR-25 (table 0123) for a report's status: F final, C amended / corrected / appended, or
    a final report sent again with another content (`correction`)."""
    return "F" if report.get("status") == "final" and not correction else "C"


def build_oru(
    report: Json,
    *,
    patient: Json | None,
    order: Json | None,
    study_uid: str | None,
    profile: OruProfile,
    sender: Sender,
    control_id: str,
    now: datetime,
    correction: bool = False,
) -> bytes:
    """The ORU^R01 of a final (or amended, corrected, appended) DiagnosticReport, encoded in the
    profile's character set. `order`: the ServiceRequest of `basedOn`; `study_uid`: the Study
    Instance UID of the report's ImagingStudy (the caller resolves it); `correction`: a report
    sent before goes again (OBR-25 `C` even when its status stayed final)."""
    if report.get("status") not in FINAL_STATUSES:
        raise ValueError("only a final, amended, corrected or appended report is sent")
    charset = charset_named(profile.charset)
    if charset is None or profile.problem() is not None:
        raise ValueError(profile.problem() or "unknown character set")
    status = result_status(report, correction=correction)
    segments = [
        _msh(profile, sender, charset, control_id, now),
        _pid(patient, report, sender),
        "PV1|1|U",
        _orc(order),
        _obr(report, order, status, now),
    ]
    segments += list(_obx(report, study_uid, profile, status))
    return _encoded("\r".join(segments) + "\r", charset)


def _msh(profile: OruProfile, sender: Sender, charset: Charset, control_id: str, now: datetime) -> str:
    fields = [
        "MSH",
        "^~\\&",
        escape(sender.application),
        escape(sender.facility),
        escape(profile.receiving_application),
        escape(profile.receiving_facility),
        now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000"),
        "",
        "ORU^R01^ORU_R01",
        escape(control_id),
        "P",
        profile.version,
    ]
    if charset.hl7 != "ASCII":
        fields += [""] * 5 + [charset.hl7]
    return "|".join(fields)


def _pid(patient: Json | None, report: Json, sender: Sender) -> str:
    """PID-3 every identifier of the Patient; a Patient with none (or none we could read) is
    named by its FHIR id, assigned by us (MSH-3): PID-3 is required, and the receiver decides."""
    patient = patient or {}
    ids = "~".join(_cx(i) for i in patient.get("identifier", []) if isinstance(i, dict) and i.get("value"))
    if not ids:
        reference = str((report.get("subject") or {}).get("reference", ""))
        own = str(patient.get("id", "")) or reference.removeprefix("Patient/")
        ids = f"{escape(own)}^^^{escape(sender.application)}" if own else ""
    names = [n for n in patient.get("name", []) if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    birth = str(patient.get("birthDate", "")).replace("-", "")[:8]
    sex = _SEX.get(str(patient.get("gender", "")), "")
    return "|".join(["PID", "1", "", ids, "", _xpn(name) if name else "", "", birth, sex])


def _cx(identifier: Json) -> str:
    """PID-3 (CX): value ^^^ assigning authority (HD: namespace & universal id & type) ^ type."""
    system = str(identifier.get("system", ""))
    namespace = str(identifier.get("assigner", {}).get("display", ""))
    universal, kind = "", ""
    if system.startswith("urn:oid:"):
        universal, kind = system.removeprefix("urn:oid:"), "ISO"
    elif system:
        universal, kind = system, "URI"
    authority = "&".join(escape(p) for p in (namespace, universal, kind)).rstrip("&")
    type_code = _code_of(identifier.get("type"), V2_0203)
    return "^".join([escape(str(identifier["value"])), "", "", authority, escape(type_code)]).rstrip("^")


def _xpn(name: Json) -> str:
    """XPN: family ^ given ^ further given ^ suffix ^ prefix."""
    given = [str(g) for g in name.get("given", [])]
    parts = [
        str(name.get("family", "")) or (str(name.get("text", "")) if not given else ""),
        given[0] if given else "",
        " ".join(given[1:]),
        " ".join(str(s) for s in name.get("suffix", [])),
        " ".join(str(p) for p in name.get("prefix", [])),
    ]
    return "^".join(escape(p) for p in parts).rstrip("^")


def _order_numbers(order: Json | None) -> tuple[str, str, str]:
    """ORC-2 / ORC-3 (EI: value ^ namespace) and OBR-18 (the accession) of a ServiceRequest."""
    found = {"PLAC": "", "FILL": "", "ACSN": ""}
    for identifier in (order or {}).get("identifier", []):
        kind = _code_of(identifier.get("type"), V2_0203)
        if kind in found and not found[kind] and identifier.get("value"):
            value = escape(str(identifier["value"]))
            if kind != "ACSN":
                value += _ei_authority(identifier)
            found[kind] = value
    return found["PLAC"], found["FILL"], found["ACSN"]


def _ei_authority(identifier: Json) -> str:
    """EI-2..4 (namespace ^ universal id ^ type) from an identifier's assigner and system."""
    namespace = str(identifier.get("assigner", {}).get("display", ""))
    system = str(identifier.get("system", ""))
    universal, kind = ("", "")
    if system.startswith("urn:oid:"):
        universal, kind = system.removeprefix("urn:oid:"), "ISO"
    elif system:
        universal, kind = system, "URI"
    return ("^" + "^".join(escape(p) for p in (namespace, universal, kind))).rstrip("^")


def _orc(order: Json | None) -> str:
    placer, filler, _ = _order_numbers(order)
    return "|".join(["ORC", "RE", placer, filler, "", "CM"])


def _obr(report: Json, order: Json | None, status: str, now: datetime) -> str:
    placer, filler, accession = _order_numbers(order)
    code = _ce((order or {}).get("code")) or _ce(report.get("code"))
    effective = report.get("effectiveDateTime") or report.get("effectivePeriod", {}).get("start", "")
    issued = _ts(str(report.get("issued", ""))) or now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    fields = ["OBR", "1", placer, filler, code, "", "", _ts(str(effective))]
    fields += [""] * 10 + [accession]  # OBR-8 .. OBR-17, OBR-18
    fields += ["", "", "", issued, "", "RAD", status]  # OBR-19 .. OBR-25
    fields += [""] * 6 + [_interpreter(report)]  # OBR-26 .. OBR-31, OBR-32
    return "|".join(fields).rstrip("|")


def _interpreter(report: Json) -> str:
    """OBR-32 (NDL; v2.3.1 CM): its first component, the person as `id & family & given`. A
    display `Family, Given` is split at the comma; any other display is the family name whole."""
    for ref in report.get("resultsInterpreter", []):
        if not isinstance(ref, dict):
            continue
        ident = str(ref.get("identifier", {}).get("value", ""))
        display = str(ref.get("display", ""))
        family, _, given = display.partition(",") if "," in display else (display, "", "")
        if ident or display:
            return "&".join(escape(p.strip()) for p in (ident, family, given)).rstrip("&")
    return ""


def _obx(report: Json, study_uid: str | None, profile: OruProfile, status: str) -> Iterator[str]:
    rows: list[tuple[str, str, str]] = []  # (value type, OBX-3, OBX-5)
    sections = [(REPORT_TEXT, text) for text in _plain_texts(report)]
    if report.get("conclusion"):
        sections.append((IMPRESSION, str(report["conclusion"])))
    for observation_id, text in sections:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
        if profile.text == "ft":
            rows.append(("FT", observation_id, "\\.br\\".join(escape(line) for line in lines)))
        else:
            rows += [("TX", observation_id, escape(line)) for line in lines]
    for data in _pdfs(report):
        rows.append(("ED", PDF_REPORT, f"^application^pdf^Base64^{data}"))
    if study_uid:
        rows.append(("ST", STUDY_UID, escape(study_uid)))
    for n, (kind, observation_id, value) in enumerate(rows, start=1):
        yield "|".join(["OBX", str(n), kind, observation_id, "1", value, "", "", "", "", "", status])


def _plain_texts(report: Json) -> Iterable[str]:
    for form in report.get("presentedForm", []):
        if str(form.get("contentType", "")).split(";")[0].strip() == "text/plain" and form.get("data"):
            try:
                yield base64.b64decode("".join(str(form["data"]).split()), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                continue  # not text after all: nothing to send rather than garbage


def _pdfs(report: Json) -> Iterable[str]:
    for form in report.get("presentedForm", []):
        if str(form.get("contentType", "")).split(";")[0].strip() == "application/pdf" and form.get("data"):
            data = "".join(str(form["data"]).split())
            try:
                base64.b64decode(data, validate=True)
            except binascii.Error:
                continue
            yield data  # the base64 alphabet holds no delimiter


def _ce(concept: Any) -> str:
    """CE / CWE: code ^ text ^ coding system (table 0396; `L` local when unknown)."""
    if not isinstance(concept, dict):
        return ""
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict) and c.get("code")]
    text = str(concept.get("text", ""))
    if not codings:
        return f"^{escape(text)}" if text else ""
    coding = codings[0]
    system = _CODING_SYSTEMS.get(str(coding.get("system", "")), "L")
    parts = [str(coding["code"]), str(coding.get("display", "")) or text, system]
    return "^".join(escape(p) for p in parts)


def _code_of(concept: Any, system: str) -> str:
    if not isinstance(concept, dict):
        return ""
    for coding in concept.get("coding", []):
        if isinstance(coding, dict) and coding.get("system") == system and coding.get("code"):
            return str(coding["code"])
    return ""


def _ts(value: str) -> str:
    """A FHIR date / dateTime / instant -> HL7 DTM (`YYYYMMDDHHMMSS[.S]+ZZZZ`, as precise as given)."""
    if not value:
        return ""
    if len(value) <= 10:
        return value.replace("-", "")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    digits = moment.strftime("%Y%m%d%H%M%S")
    if moment.tzinfo is None:
        return digits
    return digits + moment.strftime("%z")


def _encoded(message: str, charset: Charset) -> bytes:
    try:
        return message.encode(charset.codec)
    except UnicodeEncodeError:
        return "".join(_fit(c, charset.codec) for c in message).encode(charset.codec)


def _fit(char: str, codec: str) -> str:
    try:
        char.encode(codec)
        return char
    except UnicodeEncodeError:
        plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        try:
            plain.encode(codec)
            return plain or "?"
        except UnicodeEncodeError:
            return "?"
