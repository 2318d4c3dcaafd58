"""The orders repository: requested procedures and their scheduled steps, in the caller's
transaction. An order is looked up the way HL7 messages name it (reference §2: "Match updates /
cancels on ORC-2/ORC-3 + issuer"): by placer order number, else filler order number, else
accession number; the row is locked so two messages about one order apply one after the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Select, Table, bindparam, delete, insert, or_, select
from sqlalchemy.orm import Session

from mapping.fhir.imaging_study import OrderBasis
from mapping.order.facts import (
    EntityId,
    RequestedProcedure,
    RequestStatus,
    ScheduledStep,
    StepStatus,
    procedure_from_json,
    procedure_json,
    step_from_json,
    step_json,
)
from storage.orders.models import RequestedProcedureRow, ScheduledStepRow
from storage.prepared import BoundQuery, PreparedInsert, PreparedQuery, Writes

PROCEDURE, STEP = cast(Table, RequestedProcedureRow.__table__), cast(Table, ScheduledStepRow.__table__)
_PROCEDURE_COLUMNS = ("fhir_id", "patient_pk", "created_at", "placer", "filler", "accession", "study_uid")
_INSERT_PROCEDURE = PreparedInsert(
    insert(PROCEDURE).returning(PROCEDURE.c.pk), (*_PROCEDURE_COLUMNS, "status", "facts", "changed_at")
)
_STEP_COLUMNS = ("procedure_pk", "sps_id", "status", "modality", "start_date", "start_time", "station_aets")
_INSERT_STEP = PreparedInsert(insert(STEP), (*_STEP_COLUMNS, "facts", "changed_at"))


def _find_by(columns: tuple[str, ...]) -> Select[Any]:
    """The rows any of `columns` (placer, filler, accession) names, newest first, locked."""
    return (
        select(PROCEDURE)
        .where(or_(*(PROCEDURE.c[column] == bindparam(column) for column in columns)))
        .order_by(PROCEDURE.c.pk.desc())
        .with_for_update()
    )


_FIND: dict[tuple[str, ...], PreparedQuery] = {
    columns: PreparedQuery(_find_by(columns))
    for columns in (
        ("placer", "filler", "accession"),
        ("placer", "filler"),
        ("placer", "accession"),
        ("filler", "accession"),
        ("placer",),
        ("filler",),
        ("accession",),
    )
}


@dataclass(frozen=True)
class StoredOrder:
    pk: int
    fhir_id: str
    patient_pk: int
    status: RequestStatus
    procedure: RequestedProcedure  # with its steps
    step_statuses: tuple[StepStatus, ...]  # in the order of `procedure.steps`


def find(
    session: Session, procedure: RequestedProcedure, looked_up: list[Any] | None = None
) -> StoredOrder | None:
    """The stored order `procedure` names (placer, else filler, else accession), locked. One
    statement fetches every candidate row of the three numbers; the precedence is decided here.
    `looked_up`: the rows of `find_lookup(procedure)`, when the caller has read them already."""
    named = _named(procedure)
    lookup = find_lookup(procedure)
    if lookup is None:
        return None
    rows = looked_up if looked_up is not None else lookup[0].all(session.connection(), lookup[1])
    for column, entity in named:
        for row in rows:
            if getattr(row, column) != entity.value:
                continue
            stored = _stored(session, row)
            if _same(column, stored.procedure, entity):
                return stored
    return None


def find_lookup(procedure: RequestedProcedure) -> BoundQuery | None:
    """The statement `find` reads the candidates with (None: the procedure names no number)."""
    named = _named(procedure)
    if not named:
        return None
    return _FIND[tuple(column for column, _ in named)], {column: entity.value for column, entity in named}


def _named(procedure: RequestedProcedure) -> list[tuple[str, EntityId]]:
    keys = (("placer", procedure.placer), ("filler", procedure.filler), ("accession", procedure.accession))
    return [(column, entity) for column, entity in keys if entity.value]


def by_fhir_id(session: Session, fhir_id: str) -> StoredOrder | None:
    row = session.scalar(select(RequestedProcedureRow).where(RequestedProcedureRow.fhir_id == fhir_id))
    return _stored(session, row) if row is not None else None


def step_for(
    session: Session, *, sps_id: str, study_uid: str, accession: str, requested_procedure_id: str
) -> tuple[int, StoredOrder] | None:
    """The scheduled step a performed step names (an item of its Scheduled Step Attributes
    Sequence, reference §6): the step with that SPS ID whose requested procedure has the Study
    Instance UID, accession number and requested procedure ID the item gives (an empty key, on
    either side, does not decide), newest order first; the step's pk and its order, locked."""
    if not sps_id:
        return None
    rows = session.execute(
        select(ScheduledStepRow.pk, RequestedProcedureRow)
        .join(RequestedProcedureRow, RequestedProcedureRow.pk == ScheduledStepRow.procedure_pk)
        .where(ScheduledStepRow.sps_id == sps_id[:64])
        .order_by(RequestedProcedureRow.pk.desc(), ScheduledStepRow.pk)
        .with_for_update()
    ).all()
    for step_pk, row in rows:
        keys = (
            (study_uid, row.study_uid),
            (accession, row.accession),
            (requested_procedure_id, row.facts.get("requested_procedure_id") or ""),
        )
        if all(not given or not stored or given == stored for given, stored in keys):
            return step_pk, _stored(session, row)
    return None


def by_pk(session: Session, pk: int) -> StoredOrder:
    return _stored(session, session.get_one(RequestedProcedureRow, pk))


def set_step_status(session: Session, step_pk: int, status: StepStatus, now: datetime) -> None:
    """One scheduled step's status (an MPPS moved it)."""
    step = session.get_one(ScheduledStepRow, step_pk)
    if step.status != status:
        step.status, step.changed_at = status, now
        session.flush()


def step_status(session: Session, step_pk: int) -> StepStatus:
    return session.get_one(ScheduledStepRow, step_pk).status  # type: ignore[return-value]


def bases_of_study(session: Session, study_uid: str, accession: str) -> list[OrderBasis]:
    """The orders a study was made for: same Study Instance UID, or same Accession Number
    (reference §6: images are linked to their order by either), oldest first; orders entered
    in error are no basis."""
    match = RequestedProcedureRow.study_uid == study_uid
    if accession:
        match = or_(match, RequestedProcedureRow.accession == accession)
    rows = session.scalars(
        select(RequestedProcedureRow)
        .where(match, RequestedProcedureRow.status != "entered-in-error")
        .order_by(RequestedProcedureRow.pk)
    ).all()
    out = []
    for row in rows:
        procedure = procedure_from_json(row.facts)
        out.append(
            OrderBasis(
                service_request=row.fhir_id,
                code=procedure.code,
                description=procedure.description,
                referrer=procedure.referring_physician.name or procedure.requesting_physician.name,
            )
        )
    return out


def add(
    session: Session,
    *,
    fhir_id: str,
    patient_pk: int,
    procedure: RequestedProcedure,
    status: RequestStatus,
    step_status: StepStatus,
    now: datetime,
    later: Writes | None = None,
) -> StoredOrder:
    """A new order and its steps: two prepared statements (the steps in one). `later`: the
    steps' insert is added there, for the caller to run with its next writes."""
    conn = session.connection()
    pk = _INSERT_PROCEDURE.one(
        conn,
        {"fhir_id": fhir_id, "patient_pk": patient_pk, "created_at": now} | _columns(procedure, status, now),
    )
    steps = [_step_values(pk, step, step_status, now) for step in procedure.steps]
    if later is not None:
        later.append((_INSERT_STEP, steps))
    else:
        _INSERT_STEP.many(conn, steps)
    return StoredOrder(pk, fhir_id, patient_pk, status, procedure, (step_status,) * len(procedure.steps))


def replace(
    session: Session,
    order: StoredOrder,
    *,
    patient_pk: int,
    procedure: RequestedProcedure,
    status: RequestStatus,
    step_status: StepStatus | None,
    now: datetime,
) -> StoredOrder:
    """New facts for a known order: steps are matched by SPS ID (kept, with their status unless
    `step_status` says otherwise), new ones added SCHEDULED, those no longer named removed."""
    row = session.get_one(RequestedProcedureRow, order.pk)
    row.patient_pk = patient_pk
    for key, value in _columns(procedure, status, now).items():
        setattr(row, key, value)
    current = {s.sps_id: s for s in session.scalars(_steps_of(order.pk))}
    for step in procedure.steps:
        existing = current.pop(step.sps_id, None)
        if existing is None:
            session.add(_step_row(order.pk, step, step_status or "SCHEDULED", now))
            continue
        existing.facts, existing.changed_at = step_json(step), now
        existing.modality, existing.start_date, existing.start_time = (
            step.modality,
            step.start_date,
            step.start_time,
        )
        existing.station_aets = "\\".join(step.station_aets)
        if step_status is not None:
            existing.status = step_status
    for gone in current.values():
        session.delete(gone)
    session.flush()
    return _stored(session, row)


def set_status(
    session: Session,
    order: StoredOrder,
    *,
    status: RequestStatus,
    step_status: StepStatus | None,
    now: datetime,
) -> StoredOrder:
    """A status change: the order's, and each of its steps' that is not final yet."""
    row = session.get_one(RequestedProcedureRow, order.pk)
    row.status, row.changed_at = status, now
    if step_status is not None:
        for step in session.scalars(_steps_of(order.pk)):
            if step.status not in ("COMPLETED", "DISCONTINUED", "CANCELED"):
                step.status, step.changed_at = step_status, now
    session.flush()
    return _stored(session, row)


def move_patient(session: Session, prior_pk: int, survivor_pk: int, now: datetime) -> list[StoredOrder]:
    """Every order of the prior patient now belongs to the survivor (a merge)."""
    rows = session.scalars(
        select(RequestedProcedureRow).where(RequestedProcedureRow.patient_pk == prior_pk).with_for_update()
    ).all()
    for row in rows:
        row.patient_pk, row.changed_at = survivor_pk, now
    session.flush()
    return [_stored(session, row) for row in rows]


def update_details(session: Session, patient_pk: int, details: dict[str, Any], now: datetime) -> int:
    """New values for some facts of the patient's open orders (`active`, `on-hold`, `draft`):
    the steps' worklist entries show them. Returns how many orders changed."""
    rows = session.scalars(
        select(RequestedProcedureRow)
        .where(
            RequestedProcedureRow.patient_pk == patient_pk,
            RequestedProcedureRow.status.in_(("active", "on-hold", "draft")),
        )
        .with_for_update()
    ).all()
    plain = procedure_json(_with(procedure_from_json(rows[0].facts), details)) if rows else {}
    changed = 0
    for row in rows:
        # as the JSON column gives them back (lists, not tuples): an unchanged value changes nothing
        facts = {
            **row.facts,
            **{k: list(plain[k]) if isinstance(plain[k], tuple) else plain[k] for k in details},
        }
        if facts != row.facts:
            row.facts, row.changed_at = facts, now
            changed += 1
    session.flush()
    return changed


def _with(procedure: RequestedProcedure, details: dict[str, Any]) -> RequestedProcedure:
    return dataclasses.replace(procedure, **details)


def remove_all(session: Session) -> None:
    """For tests and resets: every order and step."""
    session.execute(delete(ScheduledStepRow))
    session.execute(delete(RequestedProcedureRow))


def _same(column: str, stored: RequestedProcedure, entity: EntityId) -> bool:
    if column == "placer":
        return stored.placer.same_as(entity)
    if column == "filler":
        return stored.filler.same_as(entity)
    return stored.accession.same_as(entity)


def _columns(procedure: RequestedProcedure, status: RequestStatus, now: datetime) -> dict[str, object]:
    return {
        "placer": procedure.placer.value[:64],
        "filler": procedure.filler.value[:64],
        "accession": procedure.accession.value[:64],
        "study_uid": procedure.study_uid,
        "status": status,
        "facts": procedure_json(procedure),
        "changed_at": now,
    }


def _step_row(procedure_pk: int, step: ScheduledStep, status: StepStatus, now: datetime) -> ScheduledStepRow:
    return ScheduledStepRow(**_step_values(procedure_pk, step, status, now))


def _step_values(procedure_pk: int, step: ScheduledStep, status: StepStatus, now: datetime) -> dict[str, Any]:
    return {
        "procedure_pk": procedure_pk,
        "sps_id": step.sps_id[:64],
        "status": status,
        "modality": step.modality[:16],
        "start_date": step.start_date[:8],
        "start_time": step.start_time[:16],
        "station_aets": "\\".join(step.station_aets)[:255],
        "facts": step_json(step),
        "changed_at": now,
    }


def _steps_of(procedure_pk: int) -> Select[ScheduledStepRow]:
    return (
        select(ScheduledStepRow)
        .where(ScheduledStepRow.procedure_pk == procedure_pk)
        .order_by(ScheduledStepRow.pk)
    )


def _stored(session: Session, row: RequestedProcedureRow | Row[Any]) -> StoredOrder:
    steps: Sequence[ScheduledStepRow] = session.scalars(_steps_of(row.pk)).all()
    procedure = procedure_from_json(row.facts, tuple(step_from_json(s.facts) for s in steps))
    return StoredOrder(
        pk=row.pk,
        fhir_id=row.fhir_id,
        patient_pk=row.patient_pk,
        status=row.status,  # type: ignore[arg-type]
        procedure=procedure,
        step_statuses=tuple(s.status for s in steps),  # type: ignore[misc]
    )
