"""Patients from ADT (IHE RAD-1, RAD-12): updates (A01, A04, A05, A08, A31) change the one patient
the DICOM index, the orders and the worklist share; a merge (A40) folds a prior patient into a
survivor: its studies, orders and worklist entries move, its Patient becomes `active: false`
with a `replaced-by` link, the survivor `replaces` it (FHIR R4 Patient.link).

Merges as real feeds send them (reference §8.3): a repeated A40 changes nothing; an A40 whose
MRG names the PID's own patient, or an inverse one (the survivor was merged into the prior
patient) or one whose survivor was merged elsewhere, is refused (the feed must say which
identity lives); a prior patient we never saw is recorded as merged, so that images and orders
that still come under its ID land on the survivor.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from mapping.hl7.adt import Merge, PatientUpdate
from storage.dicom_index.writer import clear_patient, known_patient, merge_patients, patient_of
from storage.errors import Conflict
from storage.usecases.mpps import Mpps
from storage.usecases.orders import Orders

log = logging.getLogger(__name__)


class MergeRefused(Conflict):
    """A merge we will not apply; `sequence`: the MRG segment's position (1-based)."""

    def __init__(self, text: str, *, sequence: int) -> None:
        super().__init__(text)
        self.text, self.sequence = text, sequence


class Patients:
    def __init__(self, orders: Orders, mpps: Mpps | None = None) -> None:
        self._orders, self._mpps = orders, mpps

    def update(self, session: Session, update: PatientUpdate, now: datetime) -> None:
        conn = session.connection()
        pk, _ = patient_of(conn, update.patient, now)
        clear_patient(conn, pk, set(update.cleared), now)
        if update.details.sent:
            self._orders.update_details(session, pk, update.details.sent, now)

    def merge(self, session: Session, merge: Merge, now: datetime) -> None:
        conn = session.connection()
        survivor = known_patient(conn, merge.survivor.id_system, merge.survivor.patient_id or "")
        prior = known_patient(conn, merge.prior.id_system, merge.prior.patient_id or "")
        if survivor is not None and survivor.merged_into is not None:
            inverse = prior is not None and survivor.merged_into == prior.pk
            raise MergeRefused(
                "inverse merge: the surviving patient was merged into the prior one"
                if inverse
                else "the surviving patient was itself merged into another patient",
                sequence=merge.sequence,
            )
        survivor_pk, survivor_fhir_id = patient_of(conn, merge.survivor, now)
        if prior is not None and prior.merged_into == survivor_pk:
            log.info("patient.merge_repeated", extra={"count": 0})
            return
        if prior is not None and prior.merged_into is not None:
            raise MergeRefused(
                "the prior patient was already merged into another patient", sequence=merge.sequence
            )
        prior_pk = prior.pk if prior is not None else patient_of(conn, merge.prior, now)[0]
        studies = merge_patients(conn, prior_pk, survivor_pk, now)
        orders = self._orders.move_patient(session, prior_pk, survivor_pk, survivor_fhir_id, now)
        if self._mpps is not None:  # the performed steps too, and their Procedures
            self._mpps.move_patient(session, prior_pk, survivor_pk, survivor_fhir_id, now)
        log.info("patient.merged", extra={"count": studies, "matches": orders})
