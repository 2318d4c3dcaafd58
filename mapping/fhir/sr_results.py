"""One DICOM SR or Encapsulated PDF -> the FHIR R4 resources it results in (the one entry point).

`sr_resources(ds, ctx)` returns plain FHIR JSON dicts, pruned of empty elements: the
Observations of the document (TID 1500 groups and measurements, loose NUMs of a text SR, the
dose summary of a dose SR) and, last, one DiagnosticReport whose `result` lists the top-level
ones. Numbers are `decimal.Decimal` (the value as written; serialise them as JSON numbers
without a float, see the README). Ids are deterministic (`sr_common`), so mapping the same
document again gives the same resources. It never raises: what cannot be read is left out and
said in `SrMapping.warnings` (positions and codes only, never a value of the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset

from mapping.dicom.sr.concepts import IRRADIATION_EVENTS
from mapping.dicom.sr.content import Document, read_document, text_of
from mapping.dicom.sr.dose import dose_report
from mapping.dicom.sr.kind import SrKind, sr_kind
from mapping.dicom.sr.pdf import pdf_document
from mapping.dicom.sr.text_report import text_report
from mapping.dicom.sr.tid1500 import loose_measurements, measurement_groups
from mapping.fhir.diagnostic_report import diagnostic_report, pdf_form, report_code, text_form
from mapping.fhir.dose_summary import dose_observation
from mapping.fhir.observation import Shared, group_resources, measurement_observation
from mapping.fhir.prune import prune
from mapping.fhir.sr_common import SrContext, issued, report_status, resource_id, when

__all__ = ["SrContext", "SrMapping", "map_sr", "predecessor_uids", "sr_resources"]


@dataclass
class SrMapping:
    kind: SrKind | None
    resources: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def sr_resources(ds: Dataset, ctx: SrContext) -> list[dict[str, Any]]:
    """The Observations and the DiagnosticReport of one SR / PDF; [] for any other instance."""
    return map_sr(ds, ctx).resources


def map_sr(ds: Dataset, ctx: SrContext) -> SrMapping:
    kind = sr_kind(ds)
    out = SrMapping(kind)
    if kind is None:
        return out
    try:
        if kind == "pdf":
            out.resources = _pdf(ds, ctx)
        else:
            doc = read_document(ds, shallow=IRRADIATION_EVENTS if kind == "dose" else frozenset())
            out.resources = _document(doc, kind, ctx)
            out.warnings = doc.warnings
    except Exception as exc:  # a mapper bug must not take ingest down: nothing, said
        out.resources, out.warnings = [], [*out.warnings, f"not mapped: {type(exc).__name__}"]
    out.resources = [prune(r) for r in out.resources]
    return out


def predecessor_uids(ds: Dataset) -> tuple[str, ...]:
    """The SOP Instance UIDs of Predecessor Documents (0040,A360): what a correction replaces,
    for the caller to find the anchor of its ids (`SrContext.anchor_uid`)."""
    out = []
    for study in ds.get("PredecessorDocumentsSequence") or ():
        for series in study.get("ReferencedSeriesSequence") or ():
            for sop in series.get("ReferencedSOPSequence") or ():
                uid = text_of(sop, "ReferencedSOPInstanceUID")
                if uid:
                    out.append(uid)
    return tuple(out)


def _document(doc: Document, kind: SrKind, ctx: SrContext) -> list[dict[str, Any]]:
    shared = Shared.of(doc, ctx)
    observations: list[dict[str, Any]] = []
    top: list[str] = []
    if kind == "dose":
        obs = dose_observation(shared, dose_report(doc), resource_id(shared.anchor, "dose-summary"))
        observations.append(obs)
        top.append(obs["id"])
    else:
        if kind == "measurement":
            seen: dict[str, int] = {}
            for group in measurement_groups(doc):
                resources = group_resources(shared, group, seen)
                observations += resources
                top.append(resources[0]["id"])
        for m in loose_measurements(doc):
            obs = measurement_observation(shared, m, resource_id(shared.anchor, f"item/{m.position}"))
            observations.append(obs)
            top.append(obs["id"])
    text = text_report(doc) if kind == "text" else None
    title = doc.title.meaning if doc.title else ""
    report = diagnostic_report(
        rid=resource_id(shared.anchor, "report"),
        sop_instance=doc.sop_instance,
        code=report_code(doc.title),
        status=report_status(doc.preliminary, doc.completion, doc.verification),
        ctx=ctx,
        effective=shared.effective(""),
        issued=shared.issued,
        results=top,
        conclusion=text.conclusion if text else "",
        forms=[f for f in [text_form(text.narrative(), title)] if f] if text else (),
        interpreters=doc.observers,
        performers=text.person_observers if text else (),
    )
    return _unique([*observations, report], doc.warnings)


def _unique(resources: list[dict[str, Any]], warnings: list[str]) -> list[dict[str, Any]]:
    """One resource per id: two items claiming one Observation UID (a malformed SR) keep the
    first, so one transaction never writes an id twice."""
    seen: set[str] = set()
    out = []
    for resource in resources:
        if resource["id"] in seen:
            warnings.append(f"duplicate {resource['resourceType']} id {resource['id']} dropped")
            continue
        seen.add(resource["id"])
        out.append(resource)
    return out


def _pdf(ds: Dataset, ctx: SrContext) -> list[dict[str, Any]]:
    pdf = pdf_document(ds)
    anchor = ctx.anchor_uid or pdf.sop_instance
    flagged = pdf.completion or pdf.verification
    status = report_status("", pdf.completion, pdf.verification) if flagged else "final"
    form = pdf_form(pdf.data, pdf.title, pdf.mime_type)
    report = diagnostic_report(
        rid=resource_id(anchor, "report"),
        sop_instance=pdf.sop_instance,
        code=report_code(pdf.code, pdf.title),
        status=status,
        ctx=ctx,
        effective=when("", pdf.content_date, pdf.content_time, offset=pdf.tz_offset, ctx=ctx),
        issued=issued(pdf.content_date, pdf.content_time, offset=pdf.tz_offset, ctx=ctx),
        results=(),
        forms=[form] if form else (),
    )
    return [report]
