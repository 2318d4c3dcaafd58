"""Record a Modality Performed Procedure Step (IHE RAD-6 / RAD-7; PS3.4 F.7): keep the step,
move the scheduled step it carries out and that order's ServiceRequest along
(`mapping.order.progress`), and publish both the ServiceRequest and the step's Procedure, all in
one transaction, so that the N-CREATE / N-SET response means every effect is committed.

The PPS state machine (PS3.4 F.7.2): created IN PROGRESS; changed by N-SETs while IN PROGRESS;
once COMPLETED or DISCONTINUED it may no longer be updated. Linking (reference §6): each item
of the Scheduled Step Attributes Sequence names a worklist entry by SPS ID, with the Requested
Procedure ID, accession number and Study Instance UID of its order; a PPS none of whose items
names a known step is IHE's unscheduled case: kept, with a Procedure that is based on nothing,
for the Patient its own Patient ID and issuer name (found or created as an arriving instance's).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from pydicom import Dataset
from sqlalchemy.orm import Session

from mapping.dicom.facts import patient_facts
from mapping.dicom.mpps import (
    FINAL_STATES,
    BadPps,
    PerformedFacts,
    PpsStatus,
    Refusal,
    apply_set,
    check_create,
    performed_facts,
)
from mapping.fhir.procedure import procedure_from_pps
from mapping.order.progress import request_status_after, step_status_after
from storage.clock import utcnow
from storage.db import Database
from storage.dicom_index.reader import patient_fhir_id
from storage.dicom_index.writer import patient_of, touch_studies
from storage.errors import Conflict, Invalid, NotFound
from storage.fhir_store.store import FhirStore
from storage.mpps import store as performed
from storage.mpps.store import StoredPps
from storage.orders import store as order_rows
from storage.orders.store import StoredOrder
from storage.usecases.ingest import PatientIdentity
from storage.usecases.orders import Orders

log = logging.getLogger(__name__)


class InvalidPps(Invalid):
    """A data set the PPS state machine or its attribute rules refuse (`kind`: "missing",
    "no value", "invalid"; `keyword`: the attribute)."""

    def __init__(self, bad: BadPps) -> None:
        super().__init__(bad.text)
        self.kind: Refusal = bad.kind
        self.keyword = bad.keyword


class DuplicatePps(Conflict):
    """An N-CREATE of a SOP Instance UID already created."""


class NoSuchPps(NotFound):
    """An N-SET of a SOP Instance UID never created."""


class PpsFinal(Conflict):
    """An N-SET of a step already COMPLETED or DISCONTINUED (PS3.4 F.7.2.2.2)."""


@dataclass(frozen=True)
class Recorded:
    sop_uid: str
    status: PpsStatus
    procedure_id: str  # the FHIR Procedure
    service_requests: tuple[str, ...]  # the orders it carries out; empty: unscheduled


@dataclass(frozen=True)
class _Link:
    step_pk: int
    order: StoredOrder


class Mpps:
    def __init__(
        self,
        db: Database,
        orders: Orders,
        fhir: FhirStore,
        identity: PatientIdentity,
        *,
        site_zone: tzinfo,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db, self._orders, self._fhir = db, orders, fhir
        self._identity, self._zone, self._now = identity, site_zone, now

    def create(self, sop_uid: str, ds: Dataset, *, calling_ae: str = "") -> Recorded:
        """N-CREATE: a new step, IN PROGRESS. Raises InvalidPps, DuplicatePps."""
        try:
            check_create(ds)
            facts = performed_facts(ds)
        except BadPps as bad:
            raise InvalidPps(bad) from bad
        dataset = ds.to_json_dict()
        now = self._now()

        def work(session: Session) -> Recorded:
            if performed.by_sop_uid(session, sop_uid) is not None:
                raise DuplicatePps("this Performed Procedure Step SOP Instance exists already")
            links = self._links(session, facts)
            if links:
                patient_pk = links[0].order.patient_pk
            else:
                patient = patient_facts(
                    ds,
                    default_system=self._identity.default_system,
                    issuer_system=self._identity.issuer_system,
                )
                patient_pk, _ = patient_of(session.connection(), patient, now)
            stored = performed.add(
                session,
                sop_uid=sop_uid,
                facts=facts,
                dataset=dataset,
                scheduled_step_pk=links[0].step_pk if links else None,
                patient_pk=patient_pk,
                fhir_id=str(uuid.uuid4()),
                calling_ae=calling_ae,
                now=now,
            )
            # a stored study now has the Procedure that made it (ImagingStudy.procedureReference)
            touch_studies(session.connection(), {facts.study_uid}, set(), now)
            return self._follow(session, stored, facts, links, now)

        return self._db.transact(work)

    def set(self, sop_uid: str, modification: Dataset) -> Recorded:
        """N-SET: the step's attributes changed, maybe its final status. Raises NoSuchPps,
        PpsFinal, InvalidPps."""
        now = self._now()

        def work(session: Session) -> Recorded:
            stored = performed.by_sop_uid(session, sop_uid)
            if stored is None:
                raise NoSuchPps("no such Performed Procedure Step SOP Instance")
            if stored.status in FINAL_STATES:
                raise PpsFinal("Performed Procedure Step Object may no longer be updated")
            try:
                merged = apply_set(Dataset.from_json(stored.dataset), modification)
                facts = performed_facts(merged)
            except BadPps as bad:
                raise InvalidPps(bad) from bad
            links = self._links(session, facts)
            updated = performed.update(
                session,
                stored,
                facts=facts,
                dataset=merged.to_json_dict(),
                scheduled_step_pk=links[0].step_pk if links else None,
                now=now,
            )
            return self._follow(session, updated, facts, links, now)

        return self._db.transact(work)

    def get(self, sop_uid: str) -> Dataset:
        """N-GET: the step as the last N-SET left it (PS3.4 F.7.2; PS3.7 10.1.2). Raises NoSuchPps."""
        with self._db.read() as session:
            stored = performed.find(session, sop_uid)
        if stored is None:
            raise NoSuchPps("no such Performed Procedure Step SOP Instance")
        return Dataset.from_json(stored.dataset)

    def move_patient(
        self, session: Session, prior_pk: int, survivor_pk: int, survivor_fhir_id: str, now: datetime
    ) -> int:
        """A merge moved the patient (`storage.usecases.patients`): its performed steps follow, and
        their Procedures name the survivor. In the caller's transaction; how many moved."""
        moved = performed.move_patient(session, prior_pk, survivor_pk, now)
        for stored in moved:
            facts = performed_facts(Dataset.from_json(stored.dataset))
            based_on = [link.order.fhir_id for link in self._links(session, facts)]
            self._publish(session, stored, facts, survivor_fhir_id, based_on, now)
        return len(moved)

    def _publish(  # noqa: PLR0917
        self,
        session: Session,
        stored: StoredPps,
        facts: PerformedFacts,
        subject: str,
        based_on: list[str],
        now: datetime,
    ) -> None:
        body = procedure_from_pps(
            facts,
            resource_id=stored.fhir_id,
            sop_uid=stored.sop_uid,
            subject=subject,
            based_on=based_on,
            site_zone=self._zone,
        ).model_dump(mode="json", exclude_none=True)
        self._fhir.put(session, body, now=now)

    def _links(self, session: Session, facts: PerformedFacts) -> list[_Link]:
        """The scheduled steps the PPS carries out, each once (IHE's group case names several)."""
        found: dict[int, _Link] = {}
        for ref in facts.steps:
            hit = order_rows.step_for(
                session,
                sps_id=ref.sps_id,
                study_uid=ref.study_uid,
                accession=ref.accession,
                requested_procedure_id=ref.requested_procedure_id,
            )
            if hit is not None:
                found.setdefault(hit[0], _Link(hit[0], hit[1]))
        return list(found.values())

    def _follow(
        self, session: Session, stored: StoredPps, facts: PerformedFacts, links: list[_Link], now: datetime
    ) -> Recorded:
        """Move each linked step and its order along, republish their ServiceRequests, and
        publish the Procedure."""
        requests: dict[int, str] = {}
        for link in links:
            current = order_rows.step_status(session, link.step_pk)
            order_rows.set_step_status(session, link.step_pk, step_status_after(current, facts.status), now)
            order = order_rows.by_pk(session, link.order.pk)
            status = request_status_after(order.status, order.step_statuses)
            if status != order.status:
                order = order_rows.set_status(session, order, status=status, step_status=None, now=now)
            self._orders.publish(session, order, patient_fhir_id(session, order.patient_pk), now)
            requests[order.pk] = order.fhir_id
        subject = patient_fhir_id(session, stored.patient_pk)
        self._publish(session, stored, facts, subject, list(requests.values()), now)
        log.info(
            "mpps.recorded",
            extra={
                "sop_instance_uid": stored.sop_uid,
                "pps_status": facts.status,
                "procedure": stored.fhir_id,
                "count": len(links),
            },
        )
        return Recorded(stored.sop_uid, facts.status, stored.fhir_id, tuple(requests.values()))
