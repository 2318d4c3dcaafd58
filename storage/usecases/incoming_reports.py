"""Reports in: an ORU^R01 from a RIS or a reporting system becomes, or updates, the
DiagnosticReport of its order, in the HL7 inbox's transaction (acknowledged after commit).

- The patient is PID-3's, made as an A04 would when we do not know them yet.
- The order is found by its placer, filler or accession number (as for an order message); its
  report is then `ServiceRequest`-based and keyed by the order, so every later ORU for the order
  (preliminary, final, a correction) updates the same DiagnosticReport. Without an order, the
  report is keyed by the numbers the OBR names (filler, else placer, else accession).
- An order of another patient is refused (AE 206), as is a status change the lifecycle forbids
  (`mapping.fhir.result_status`: a final report changes only as a correction, OBR-25 C).
- The study: an OBX 113014 names it, else the order's, else (no order we know) the patient's one
  study with the OBR-18 accession number.
- A report that came in over HL7 is not queued to go out again as ORU (the RIS that sent it is
  the source; sending it back would loop).
"""

from __future__ import annotations

import uuid
from datetime import datetime, tzinfo

from sqlalchemy.orm import Session

from mapping.fhir.report_from_hl7 import report_from_hl7
from mapping.fhir.result_status import transition_problem
from mapping.hl7.errors import NOT_ALLOWED, Hl7Error
from mapping.hl7.results import ReportFacts, ResultMessage
from mapping.order.facts import RequestedProcedure
from storage.dicom_index import reader as index_reader
from storage.dicom_index.writer import patient_of
from storage.fhir_store.store import FhirStore
from storage.orders import store as orders

_NAMESPACE = uuid.UUID("8a3f3f56-63b4-4f0e-9d0c-5c1f6f7c0b21")  # ids of reports that came by HL7


class IncomingReports:
    def __init__(self, fhir: FhirStore, site_zone: tzinfo) -> None:
        self._fhir, self._zone = fhir, site_zone

    def apply(self, session: Session, message: ResultMessage, now: datetime) -> list[str]:
        """Store the DiagnosticReport of every OBR; their ids. Raises Hl7Error (AE): the caller
        rolls back, a message applies whole or not at all."""
        patient_pk, patient_id = patient_of(session.connection(), message.patient, now)
        return [self._one(session, report, patient_pk, patient_id, now) for report in message.reports]

    def _one(
        self, session: Session, report: ReportFacts, patient_pk: int, patient_id: str, now: datetime
    ) -> str:
        probe = RequestedProcedure(
            control="RE",
            order_status="CM",
            placer=report.placer,
            filler=report.filler,
            accession=report.accession,
        )
        order = orders.find(session, probe)
        if order is not None and order.patient_pk != patient_pk:
            raise Hl7Error.error(
                NOT_ALLOWED,
                "the order this report names belongs to another patient",
                segment="PID",
                field=3,
            )
        key = f"order:{order.fhir_id}" if order is not None else _key(report)
        resource_id = str(uuid.uuid5(_NAMESPACE, key))
        study_uid = report.study_uid or (order.procedure.study_uid if order is not None else "")
        if not study_uid and report.accession.value:  # no order we know: the patient's study of OBR-18
            found = index_reader.studies_of_accession(session, report.accession.value, patient_pk)
            study_uid = found[0] if len(found) == 1 else ""
        body = report_from_hl7(
            report,
            resource_id=resource_id,
            subject=patient_id,
            based_on=order.fhir_id if order is not None else None,
            imaging_study=study_uid or None,
            site_zone=self._zone,
        )
        current = self._fhir.read(session, "DiagnosticReport", resource_id)
        if current is not None and current.body is not None:
            problem = transition_problem("DiagnosticReport", current.body, body)
            if problem is not None:
                raise Hl7Error.error(
                    NOT_ALLOWED, f"OBR-25: {problem}", segment="OBR", sequence=report.sequence, field=25
                )
        self._fhir.put(session, body, now=now)
        return resource_id


def _key(report: ReportFacts) -> str:
    for name, entity in (
        ("filler", report.filler),
        ("placer", report.placer),
        ("accession", report.accession),
    ):
        if entity.value:
            return f"{name}:{entity.namespace}|{entity.universal_id}|{entity.value}"
    raise AssertionError("mapping.hl7.results refuses an OBR that names no order")
