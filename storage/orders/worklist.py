"""The Modality Worklist over the orders: a worklist query -> pages of candidate steps.

The SQL only narrows, as the index query does (`storage.dicom_index.query`): by SPS start date
(the date bounds of a date key or of the combined start range), modality, status (the open
states when the query names none), station AE title, accession number and patient ID; every
candidate is then checked by `mapping.dicom.worklist`, the one definition of a match. Pages
follow the step's primary key, so a long answer is read a page at a time and a cancelled one
stops reading.

The patient is the DICOM index's `patient` table, named here as a lightweight table of the
columns the worklist reads: the orders aggregate does not import the index's models (each
aggregate stands alone), and the foreign key `requested_procedure.patient_pk` is what ties them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, column, func, or_, select, table, true
from sqlalchemy.orm import Session

from mapping.dicom.matching import AnyOf, Condition, Range, Single
from mapping.dicom.worklist import WorklistQuery
from mapping.order.facts import OPEN_STEP_STATES
from storage.orders.models import RequestedProcedureRow, ScheduledStepRow

# the DICOM index's patient rows, as far as the worklist reads them
patient = table(
    "patient",
    column("pk"),
    column("patient_id"),
    column("name"),
    column("birth_date"),
    column("sex"),
)
_ESCAPE = "!"
_MAX_LIST = 1000


@dataclass(frozen=True)
class Candidate:
    """One scheduled step with its procedure and patient, as stored."""

    pk: int
    status: str
    step: dict[str, Any]  # ScheduledStep facts
    procedure: dict[str, Any]  # RequestedProcedure facts, without steps
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    changed: tuple[datetime, datetime] = (datetime.min, datetime.min)  # the step's, the procedure's

    @property
    def key(self) -> tuple[object, ...]:
        """What the step's worklist item is a function of: a change of any of it changes this."""
        return (
            self.pk,
            self.status,
            self.changed,
            self.patient_id,
            self.patient_name,
            self.birth_date,
            self.sex,
        )


def page(
    session: Session, query: WorklistQuery, *, after: int, size: int, station: str | None = None
) -> list[Candidate]:
    """Up to `size` candidate steps whose primary key is above `after`, in key order; only those
    scheduled for `station` too when given."""
    where = [*_narrowing(query), _station(Single(station)) if station else true()]
    return _candidates(session, where, after=after, size=size)


def open_steps(session: Session, *, after: int, size: int) -> list[Candidate]:
    """Up to `size` steps not yet completed or discontinued whose primary key is above `after`,
    in key order: what the worklist builds ahead of queries."""
    return _candidates(session, [ScheduledStepRow.status.in_(OPEN_STEP_STATES)], after=after, size=size)


def newest_step(session: Session) -> int:
    """The primary key of the newest scheduled step (0: none): new steps have higher keys."""
    return int(session.scalar(select(func.max(ScheduledStepRow.pk))) or 0)


def _candidates(
    session: Session, where: list[ColumnElement[bool]], *, after: int, size: int
) -> list[Candidate]:
    step, procedure = ScheduledStepRow, RequestedProcedureRow
    stmt = (
        select(
            step.pk,
            step.status,
            step.facts,
            procedure.facts.label("procedure_facts"),
            patient.c.patient_id,
            patient.c.name,
            patient.c.birth_date,
            patient.c.sex,
            step.changed_at,
            procedure.changed_at.label("procedure_changed_at"),
        )
        .select_from(step)
        .join(procedure, procedure.pk == step.procedure_pk)
        .join(patient, patient.c.pk == procedure.patient_pk)
        .where(step.pk > after, *where)
        .order_by(step.pk)
        .limit(size)
    )
    return [
        Candidate(
            pk, status, step_facts, procedure_facts, pid or "", name or "", birth or "", sex or "", (s, p)
        )
        for pk, status, step_facts, procedure_facts, pid, name, birth, sex, s, p in session.execute(stmt)
    ]


def _narrowing(query: WorklistQuery) -> list[ColumnElement[bool]]:
    sps, top = query.sps, query.conditions
    step, procedure = ScheduledStepRow, RequestedProcedureRow
    where: list[ColumnElement[bool]] = []
    start = sps.start
    if start is not None:
        if start.low is not None:
            where.append(step.start_date >= start.low[0])
        if start.high is not None:
            where.append(step.start_date <= start.high[0])
        where.append(step.start_date != "")
    else:
        where.append(_equal(step.start_date, sps.of("ScheduledProcedureStepStartDate")))
    where.append(_equal(step.modality, sps.of("Modality")))
    if query.status_asked:
        where.append(_equal(step.status, sps.of("ScheduledProcedureStepStatus")))
    else:
        where.append(step.status.in_(OPEN_STEP_STATES))
    where.append(_station(sps.of("ScheduledStationAETitle")))
    where.append(_equal(procedure.accession, top.of("AccessionNumber")))
    where.append(_equal(patient.c.patient_id, top.of("PatientID")))
    return where


def _equal(col: Any, cond: Condition) -> ColumnElement[bool]:
    """Single values and lists of them as `=` / `IN`, a date range as bounds; else no narrowing."""
    if isinstance(cond, Single):
        return col == cond.value  # type: ignore[no-any-return]
    singles = [o.value for o in cond.options if isinstance(o, Single)] if isinstance(cond, AnyOf) else []
    if isinstance(cond, AnyOf) and len(singles) == len(cond.options) <= _MAX_LIST:
        return col.in_(singles)  # type: ignore[no-any-return]
    if isinstance(cond, Range):
        parts = [col != ""]
        if cond.low is not None:
            parts.append(col >= cond.low)
        if cond.high is not None:
            parts.append(col <= cond.high)
        return and_(*parts)
    return true()


def _station(cond: Condition) -> ColumnElement[bool]:
    """Scheduled Station AE Title: the column holds the step's titles '\\'-joined, so one title
    is the whole value, the first, the last or one between."""
    titles = [cond.value] if isinstance(cond, Single) else []
    if isinstance(cond, AnyOf) and all(isinstance(o, Single) for o in cond.options):
        titles = [o.value for o in cond.options if isinstance(o, Single)]
    if not titles:
        return true()
    col = ScheduledStepRow.station_aets
    options: list[ColumnElement[bool]] = []
    for title in titles:
        like = _literal(title)
        options += [
            col == title,
            col.like(f"{like}\\%", escape=_ESCAPE),
            col.like(f"%\\{like}", escape=_ESCAPE),
            col.like(f"%\\{like}\\%", escape=_ESCAPE),
        ]
    return or_(*options)


def _literal(text: str) -> str:
    """`text` as a LIKE pattern matching itself only."""
    return "".join(_ESCAPE + c if c in ("%", "_", _ESCAPE) else c for c in text)
