"""Orders: apply what an order message says (new order, change, cancel, status) to the patient,
the requested procedures and their scheduled steps (the worklist), and publish each
procedure's ServiceRequest, all in the caller's transaction, so that an acknowledgement means
every effect is committed (`storage/usecases/hl7_inbox.py` acknowledges).

The patient is the DICOM index's: the Patient ID and its issuer pick it, as for an arriving
instance, so the study a modality later sends for this order lands on the same Patient.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from mapping.fhir.service_request import service_request_from_order
from mapping.order.control import RefusedControl, change_for
from mapping.order.facts import OrderMessage, RequestedProcedure, ScheduledStep
from storage.dicom_index.writer import patient_lookup, patient_of, touch_studies_later
from storage.errors import Conflict
from storage.fhir_store.store import FhirStore
from storage.orders import store as orders
from storage.orders.store import StoredOrder
from storage.prepared import Writes, query_all

log = logging.getLogger(__name__)


class OrderRefused(Conflict):
    """An order control that cannot apply: `index` is the 1-based position of the procedure (its
    ORC) in the message, `field` the ORC field at fault, `unknown` when no such order exists."""

    def __init__(self, text: str, *, index: int, field: int, unknown: bool) -> None:
        super().__init__(text)
        self.text, self.index, self.field, self.unknown = text, index, field, unknown


def generated_uid() -> str:
    """A Study Instance UID for an order that brings none (PS3.5 B.2: 2.25 + a UUID)."""
    return f"2.25.{uuid.uuid4().int}"


class Orders:
    def __init__(
        self, fhir: FhirStore, site_zone: tzinfo, *, new_uid: Callable[[], str] = generated_uid
    ) -> None:
        self._fhir, self._zone, self._new_uid = fhir, site_zone, new_uid

    def apply(self, session: Session, message: OrderMessage, now: datetime) -> list[str]:
        """Apply every procedure of `message`; the ServiceRequest ids touched. Raises OrderRefused
        (the caller rolls back: a message applies whole or not at all)."""
        conn = session.connection()
        # the patient and the first procedure's order are read together (one round trip)
        lookups = [patient_lookup(message.patient)]
        lookups += [orders.find_lookup(message.procedures[0])] if message.procedures else []
        wanted = [lookup for lookup in lookups if lookup is not None]
        read = iter(query_all(conn, wanted))
        found = [next(read) if lookup is not None else None for lookup in lookups]
        patient_pk, patient_fhir_id = patient_of(conn, message.patient, now, found[0])
        touched = []
        for index, procedure in enumerate(message.procedures, start=1):
            before = orders.find(session, procedure, found[1] if index == 1 else None)
            # writes whose results nobody reads go with the ServiceRequest's (one round trip)
            later: Writes = []
            stored = self._apply_one(session, procedure, before, index, patient_pk, now, later)
            keys = [stored.procedure] + ([before.procedure] if before is not None else [])
            later += touch_studies_later({p.study_uid for p in keys}, {p.accession.value for p in keys}, now)
            new = before is None or before.pk != stored.pk
            self.publish(session, stored, patient_fhir_id, now, new=new, also=later)
            touched.append(stored.fhir_id)
            log.info(
                "order.applied",
                extra={
                    "control": procedure.control,
                    "service_request": stored.fhir_id,
                    "status": stored.status,
                },
            )
        return touched

    def publish(
        self,
        session: Session,
        stored: StoredOrder,
        patient_fhir_id: str,
        now: datetime,
        *,
        new: bool = False,
        also: Writes | None = None,
    ) -> None:
        """Store the ServiceRequest of an order as it stands (a new version when it changed;
        `new`: the order was just created; `also`: writes to run with it)."""
        body = service_request_from_order(
            stored.procedure,
            resource_id=stored.fhir_id,
            status=stored.status,
            subject=patient_fhir_id,
            site_zone=self._zone,
        )
        self._fhir.put(session, body, now=now, new=new, also=also)

    def update_details(
        self, session: Session, patient_pk: int, details: dict[str, Any], now: datetime
    ) -> int:
        """An ADT update's allergies, weight, size, location, admission (`mapping.hl7.details`)
        into the patient's orders still open, so their worklist entries answer them. Returns how
        many orders changed."""
        changed = orders.update_details(session, patient_pk, details, now)
        log.info("order.details_updated", extra={"count": changed})
        return changed

    def move_patient(
        self, session: Session, prior_pk: int, survivor_pk: int, survivor_fhir_id: str, now: datetime
    ) -> int:
        """A merge moved the patient: its orders (and their worklist entries) follow, and their
        ServiceRequests name the survivor. Returns how many orders moved."""
        moved = orders.move_patient(session, prior_pk, survivor_pk, now)
        for stored in moved:
            self.publish(session, stored, survivor_fhir_id, now)
        return len(moved)

    def _apply_one(  # noqa: PLR0917
        self,
        session: Session,
        procedure: RequestedProcedure,
        current: StoredOrder | None,
        index: int,
        patient_pk: int,
        now: datetime,
        later: Writes,
    ) -> StoredOrder:
        try:
            change = change_for(
                procedure.control,
                procedure.order_status,
                current.status if current else None,
                list(current.step_statuses) if current else [],
            )
        except RefusedControl as exc:
            raise OrderRefused(exc.text, index=index, field=exc.field, unknown=exc.unknown) from exc
        if change.action == "create" or current is None:
            complete = self._completed(procedure, None)
            return orders.add(
                session,
                fhir_id=str(uuid.uuid4()),
                patient_pk=patient_pk,
                procedure=complete,
                status=change.request_status,
                step_status=change.step_status or "SCHEDULED",
                now=now,
                later=later,
            )
        if change.action == "update":
            return orders.replace(
                session,
                current,
                patient_pk=patient_pk,
                procedure=self._completed(procedure, current.procedure),
                status=change.request_status,
                step_status=change.step_status,
                now=now,
            )
        return orders.set_status(
            session, current, status=change.request_status, step_status=change.step_status, now=now
        )

    def _completed(
        self, procedure: RequestedProcedure, before: RequestedProcedure | None
    ) -> RequestedProcedure:
        """What the order lacks and the worklist needs: the Study Instance UID (kept from the
        stored order on a change, else generated) and SPS IDs (the requested procedure ID, or
        the accession, numbered when there are several steps)."""
        study_uid = (before.study_uid if before is not None else "") or procedure.study_uid or self._new_uid()
        base = procedure.requested_procedure_id or procedure.accession.value or procedure.placer.value
        steps: list[ScheduledStep] = []
        for n, step in enumerate(procedure.steps, start=1):
            sps_id = step.sps_id or (base if len(procedure.steps) == 1 else f"{base}.{n}")
            steps.append(replace(step, sps_id=sps_id[:16]))
        return replace(procedure, study_uid=study_uid, steps=tuple(steps))
