"""One instance into the DICOM index, in the caller's transaction.

This runs once per received instance, so it is SQLAlchemy Core on a Connection with
statements built once at import (their compiled form and cache key are memoised):
five or six statements per instance, no ORM unit of work; in a `Batch` (several instances in
one transaction) each study and series row is read and its counters written once.

Locks, in this order, so that concurrent associations never deadlock and counters
stay exact on PostgreSQL: the instance rows (if known), the patient row (when it
is created or changed), new series rows, then, at the batch's flush, the study row (its
counter UPDATE) and the series rows. Publishing takes patient before
study as well. A race lost on a unique key raises IntegrityError, and
`Database.transact` runs the whole transaction again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, NamedTuple, cast

from sqlalchemy import Connection, Row, Table, bindparam, delete, insert, or_, select, update

from mapping.dicom.facts import InstanceHeader, PatientFacts, same_patient
from storage.db import Database
from storage.dicom_index.models import (
    InstanceReplacementRow,
    InstanceRow,
    PatientMismatchRow,
    PatientRow,
    SeriesRow,
    StudyRow,
)
from storage.errors import Conflict
from storage.prepared import BoundQuery, PreparedInsert, PreparedQuery, Writes
from storage.schema import Stamp

PATIENT, STUDY = cast(Table, PatientRow.__table__), cast(Table, StudyRow.__table__)
SERIES, INSTANCE = cast(Table, SeriesRow.__table__), cast(Table, InstanceRow.__table__)
REPLACEMENT = cast(Table, InstanceReplacementRow.__table__)
MISMATCH = cast(Table, PatientMismatchRow.__table__)
_PATIENT_ATTRS = ("name", "birth_date", "sex")

Outcome = Literal["stored", "duplicate", "replaced"]
MismatchPolicy = Literal["refuse", "accept"]
"""An instance of a stored study that names another patient: refused (Conflict), or kept in the
study with a `patient_mismatch` row."""

_INSTANCE_BY_UID = (
    select(INSTANCE.c.pk, INSTANCE.c.sha256, INSTANCE.c.series_pk, INSTANCE.c.blob_key)
    .where(INSTANCE.c.sop_uid == bindparam("uid"))
    .with_for_update()
)
_INSTANCES_BY_UIDS = (  # a batch's stored instances, read at once (`Batch.prefetch`)
    select(INSTANCE.c.sop_uid, INSTANCE.c.pk, INSTANCE.c.sha256, INSTANCE.c.series_pk, INSTANCE.c.blob_key)
    .where(INSTANCE.c.sop_uid.in_(bindparam("uids", expanding=True)))
    .with_for_update()
)
_STUDY_BY_UID = (
    select(
        STUDY, PATIENT.c.id_system, PATIENT.c.patient_id, PATIENT.c.name, PATIENT.c.birth_date, PATIENT.c.sex
    )
    .join(PATIENT, PATIENT.c.pk == STUDY.c.patient_pk)
    .where(STUDY.c.study_uid == bindparam("uid"))
)
_SERIES_BY_UID = select(SERIES).where(SERIES.c.series_uid == bindparam("uid"))
_PATIENT_OF_STUDY = PATIENT.join(STUDY, STUDY.c.patient_pk == PATIENT.c.pk)
_FIT = select(  # one row: the series' study, the study and its patient, each NULL when not stored
    *(
        select(column).select_from(table).where(where).scalar_subquery().label(name)
        for name, column, table, where in (
            ("series_study_pk", SERIES.c.study_pk, SERIES, SERIES.c.series_uid == bindparam("series")),
            ("pk", STUDY.c.pk, STUDY, STUDY.c.study_uid == bindparam("study")),
            ("patient_pk", PATIENT.c.pk, _PATIENT_OF_STUDY, STUDY.c.study_uid == bindparam("study")),
            ("patient_id", PATIENT.c.patient_id, _PATIENT_OF_STUDY, STUDY.c.study_uid == bindparam("study")),
            ("id_system", PATIENT.c.id_system, _PATIENT_OF_STUDY, STUDY.c.study_uid == bindparam("study")),
        )
    )
)
# the patient of an instance, an order or an ADT message: prepared (`storage.prepared`), every
# HL7 order runs them
_PATIENT_BY_IDENTITY = PreparedQuery(
    select(PATIENT.c.pk, PATIENT.c.fhir_id, PATIENT.c.merged_into, *(PATIENT.c[k] for k in _PATIENT_ATTRS))
    .where(PATIENT.c.id_system == bindparam("system"), PATIENT.c.patient_id == bindparam("pid"))
    .with_for_update()
)
_PATIENT_BY_PK = PreparedQuery(
    select(PATIENT.c.pk, PATIENT.c.fhir_id, PATIENT.c.merged_into, *(PATIENT.c[k] for k in _PATIENT_ATTRS))
    .where(PATIENT.c.pk == bindparam("pk"))
    .with_for_update()
)
_INSERT_PATIENT = PreparedInsert(
    insert(PATIENT).returning(PATIENT.c.pk),
    (
        *_PATIENT_ATTRS,
        "fhir_id",
        "id_system",
        "patient_id",
        "created_at",
        "changed_at",
        "change_seq",
        "published_seq",
    ),
)
_INSERT_STUDY = insert(STUDY).returning(STUDY.c.pk)
_INSERT_SERIES = insert(SERIES).returning(SERIES.c.pk)
_INSERT_INSTANCE = insert(INSTANCE).returning(INSTANCE.c.pk)
_INSERT_INSTANCES = insert(INSTANCE)  # a batch's new instances, one executemany at `Batch.flush`
_TOUCH_STUDY = (
    update(STUDY)
    .where(STUDY.c.pk == bindparam("b_pk"))
    .values(
        change_seq=STUDY.c.change_seq + 1,
        changed_at=bindparam("b_now", type_=Stamp),
        num_series=STUDY.c.num_series + bindparam("b_series"),
        num_instances=STUDY.c.num_instances + bindparam("b_instances"),
    )
)
_TOUCH_SERIES = (
    update(SERIES)
    .where(SERIES.c.pk == bindparam("b_pk"))
    .values(
        changed_at=bindparam("b_now", type_=Stamp),
        num_instances=SERIES.c.num_instances + bindparam("b_instances"),
    )
)
_SERIES_MODALITIES = (
    select(SERIES.c.modality).where(SERIES.c.study_pk == bindparam("study")).order_by(SERIES.c.pk)
)


SERIES_ELSEWHERE = "the series is already stored in a different study"
OTHER_PATIENT = "the study is already stored for a different Patient ID or issuer"


@dataclass(frozen=True)
class Indexed:
    outcome: Outcome
    instance_pk: int | None  # None: inserted by a batch, its key not read back
    superseded_key: str | None  # blob to delete after the commit
    mismatch: bool = False  # kept in its study although it named another patient


@dataclass(frozen=True)
class Arrival:
    """Where the bytes are and how they came."""

    blob_key: str
    size: int
    sha256: str
    via: str
    calling_ae: str | None
    now: datetime


@dataclass
class Batch:
    """Several arrivals indexed in one transaction (`index_instance(..., batch=)`): each study and
    series row is read once, and their counters and change marks are written once per batch, at
    `flush` (before the commit), instead of once per instance. Rows read are reused as read: a
    newest-wins update may then be written again, never lost. The batch's instances may be looked
    up at once beforehand (`prefetch`), and new instance rows are inserted together at `flush`
    (their keys are then not read back: `Indexed.instance_pk` is None)."""

    studies: dict[str, Row[Any]] = field(default_factory=dict)
    series: dict[str, Row[Any]] = field(default_factory=dict)
    study_counts: dict[int, list[int]] = field(default_factory=dict)  # pk -> [series, instances]
    series_counts: dict[int, int] = field(default_factory=dict)  # pk -> instances
    now: datetime | None = None
    instances: dict[str, Any] = field(default_factory=dict)  # SOP UID -> its stored row, None or _INSERTING
    inserts: list[dict[str, Any]] = field(default_factory=list)  # new instance rows, for `flush`

    def prefetch(self, conn: Connection, sop_uids: list[str]) -> None:
        """Look the instances of `sop_uids` up in one statement (locked, as one by one)."""
        found = {r.sop_uid: r for r in conn.execute(_INSTANCES_BY_UIDS, {"uids": sorted(set(sop_uids))})}
        self.instances.update({uid: found.get(uid) for uid in sop_uids})

    def flush(self, conn: Connection) -> None:
        """Insert the new instances and write the counters and change marks gathered so far;
        forget the study and series rows read."""
        if self.inserts:
            conn.execute(_INSERT_INSTANCES, self.inserts)
            self.inserts.clear()
        for pk, (new_series, instances) in self.study_counts.items():
            conn.execute(
                _TOUCH_STUDY,
                {"b_pk": pk, "b_now": self.now, "b_series": new_series, "b_instances": instances},
            )
        for pk, instances in self.series_counts.items():
            conn.execute(_TOUCH_SERIES, {"b_pk": pk, "b_now": self.now, "b_instances": instances})
        self.studies.clear()
        self.series.clear()
        self.study_counts.clear()
        self.series_counts.clear()

    def touch_study(self, pk: int, new_series: bool, enters: bool, now: datetime) -> None:
        counts = self.study_counts.setdefault(pk, [0, 0])
        counts[0] += int(new_series)
        counts[1] += int(enters)
        self.now = max(now, self.now) if self.now is not None else now

    def touch_series(self, pk: int, enters: bool, now: datetime) -> None:
        self.series_counts[pk] = self.series_counts.get(pk, 0) + int(enters)
        self.now = max(now, self.now) if self.now is not None else now


def index_instance(
    conn: Connection,
    h: InstanceHeader,
    a: Arrival,
    mismatch: MismatchPolicy = "refuse",
    *,
    batch: Batch | None = None,
) -> Indexed:
    """Index one arrival. An instance of a stored study belongs to the study's patient: with no
    Patient ID, or the same one (and no other issuer), it is simply stored; one that names another
    patient is refused, or with `mismatch="accept"` kept in the study and recorded in
    `patient_mismatch` in this same transaction (the patient row is left as it is). With `batch`,
    one of several in this transaction: the caller flushes the batch before committing; without,
    the instance is a batch of its own."""
    alone = batch is None
    rows = Batch() if batch is None else batch
    inst = _stored_instance(conn, h.instance.sop_uid, rows)
    if inst is not None and inst.sha256 == a.sha256:  # a concurrent twin committed first
        return Indexed("duplicate", inst.pk, None)
    if inst is not None:
        rows.flush(conn)  # a replacement reads (and may delete) series by their counters
    # Series before study: a series committed between the two reads then has its study visible
    # too; the other order could see the series but not its study and refuse a valid instance.
    series = _read(conn, _SERIES_BY_UID, h.series.series_uid, rows.series)
    study = _read(conn, _STUDY_BY_UID, h.study.study_uid, rows.studies)
    mismatched = _mismatched(
        h,
        None if series is None else series.study_pk,
        None if study is None else _Stored(study.pk, study.patient_pk, study.patient_id, study.id_system),
        partial(_merged_into, conn),
    )
    if mismatched and mismatch != "accept":
        raise Conflict(OTHER_PATIENT)
    moved = inst is not None and (series is None or inst.series_pk != series.pk)
    enters = inst is None or moved
    if study is not None and mismatched:
        _record_mismatch(conn, h, a, study)
        patient_pk = int(study.patient_pk)
    else:
        patient_pk = _patient(conn, h.patient, study, a.now)
    study_pk = _study(conn, h, study, patient_pk, a.now, new_series=series is None, enters=enters, batch=rows)
    series_pk = _series(conn, h, series, study_pk, a.now, enters=enters, batch=rows)
    indexed = _instance(conn, h, a, inst, series_pk, mismatched=mismatched, moved=moved, batch=batch)
    if alone:
        rows.flush(conn)
    return indexed


def _instance(
    conn: Connection,
    h: InstanceHeader,
    a: Arrival,
    inst: Row[Any, Any, Any, Any] | None,  # its pk, sha256, series and blob key: `_INSTANCE_BY_UID`
    series_pk: int,
    *,
    mismatched: bool,
    moved: bool,
    batch: Batch | None,
) -> Indexed:
    """The instance row: inserted (in a batch, at its flush), or replaced (recorded; moved out
    of its old series)."""
    values = _instance_values(h, a) | {"series_pk": series_pk}
    uid = h.instance.sop_uid
    if inst is None:
        params = values | {"sop_uid": uid, "created_at": a.now}
        if batch is not None:
            batch.inserts.append(params)
            batch.instances[uid] = _INSERTING  # `_stored_instance` flushes before reading it
            return Indexed("stored", None, None, mismatched)
        return Indexed("stored", conn.execute(_INSERT_INSTANCE, params).scalar_one(), None, mismatched)
    if batch is not None:
        batch.instances.pop(uid, None)  # replaced: read again if it comes again
    old = conn.execute(
        select(SERIES.c.series_uid, STUDY.c.study_uid)
        .join(STUDY, STUDY.c.pk == SERIES.c.study_pk)
        .where(SERIES.c.pk == inst.series_pk)
    ).first()
    conn.execute(
        insert(REPLACEMENT).values(
            sop_uid=h.instance.sop_uid,
            old_sha256=inst.sha256,
            new_sha256=a.sha256,
            old_study_uid=old.study_uid if old else "",
            new_study_uid=h.study.study_uid,
            old_series_uid=old.series_uid if old else "",
            new_series_uid=h.series.series_uid,
            received_via=a.via,
            replaced_at=a.now,
        )
    )
    conn.execute(update(INSTANCE).where(INSTANCE.c.pk == inst.pk).values(**values))
    if moved:
        _move_out(conn, inst.series_pk, a.now)
    return Indexed("replaced", inst.pk, inst.blob_key, mismatched)


_UNREAD, _INSERTING = object(), object()  # `Batch.instances`: not prefetched; inserted at flush


def _stored_instance(conn: Connection, uid: str, rows: Batch) -> Any:
    """The stored instance of `uid` (its pk, sha256, series and blob key), locked: prefetched by
    the batch, or read (after the batch's pending inserts, when one of them is this UID)."""
    prefetched = rows.instances.get(uid, _UNREAD)
    if prefetched is _INSERTING:
        rows.flush(conn)  # the same instance came twice in this batch: the first is inserted now
    elif prefetched is not _UNREAD:
        return prefetched
    rows.instances.pop(uid, None)
    return conn.execute(_INSTANCE_BY_UID, {"uid": uid}).first()


def _read(conn: Connection, query: Any, uid: str, cache: dict[str, Row[Any]]) -> Row[Any] | None:
    """A study or series row by UID, from the batch's rows when read before in it."""
    if uid in cache:
        return cache[uid]
    row = conn.execute(query, {"uid": uid}).first()
    if row is not None:
        cache[uid] = row
    return row


class FitCheck:
    """Conflict when `index_instance` would refuse an instance as the committed index stands
    (decided before an instance whose indexing is deferred is acknowledged); whether its study
    is stored. One statement, compiled once (`Database.lookup`), no lock; a second only for an
    instance naming another patient than its study's (was that patient merged into it?)."""

    def __init__(self, db: Database) -> None:
        self._db, self._fit = db, db.lookup(_FIT)

    def __call__(self, h: InstanceHeader, mismatch: MismatchPolicy = "refuse") -> bool:
        row = self._fit.one(series=h.series.series_uid, study=h.study.study_uid)
        series_study_pk, pk, patient_pk, patient_id, id_system = cast(tuple[Any, ...], row)
        study = None if pk is None else _Stored(pk, patient_pk, patient_id, id_system)
        if _mismatched(h, series_study_pk, study, self._merged_into) and mismatch != "accept":
            raise Conflict(OTHER_PATIENT)
        return study is not None

    def _merged_into(self, facts: PatientFacts, patient_pk: int) -> bool:
        with self._db.peek() as conn:
            return _merged_into(conn, facts, patient_pk)


class _Stored(NamedTuple):
    """The stored study an instance names, with its patient's identity."""

    pk: int
    patient_pk: int
    patient_id: str | None
    id_system: str | None


def _mismatched(
    h: InstanceHeader,
    series_study_pk: int | None,
    study: _Stored | None,
    merged_into: Callable[[PatientFacts, int], bool],
) -> bool:
    """Whether the instance names another patient than its stored study's (and not one merged
    into it); Conflict when its series is stored in another study."""
    if series_study_pk is not None and (study is None or series_study_pk != study.pk):
        raise Conflict(SERIES_ELSEWHERE)
    return (
        study is not None
        and not same_patient(h.patient, study.patient_id, study.id_system)
        and not merged_into(h.patient, int(study.patient_pk))
    )


def _patient(conn: Connection, facts: PatientFacts, study: Row[Any] | None, now: datetime) -> int:
    """Patient ID + issuer picks the patient; a study keeps the patient it was first stored for
    (the caller has checked that the instance fits it)."""
    if study is None:
        return _patient_by_identity(conn, facts, now)[0]
    _update_demographics(conn, study.patient_pk, study._mapping, facts, now)
    return int(study.patient_pk)


def _patient_by_identity(
    conn: Connection, facts: PatientFacts, now: datetime, looked_up: list[Any] | None = None
) -> tuple[int, str]:
    """The patient of `facts`' Patient ID + issuer (the survivor, if it was merged), created when
    new (no Patient ID: always new), its demographics updated: (pk, FHIR id). `looked_up`: the
    rows of `patient_lookup(facts)`, when the caller has read them already."""
    if facts.patient_id is None:
        return _new_patient(conn, facts, now)
    if looked_up is None:
        looked_up = _PATIENT_BY_IDENTITY.all(conn, {"system": facts.id_system, "pid": facts.patient_id})
    found = looked_up[0] if looked_up else None
    if found is None:
        return _new_patient(conn, facts, now)
    if found.merged_into is not None:  # merged (ADT^A40): its images and orders go to the survivor
        found = _PATIENT_BY_PK.first(conn, {"pk": found.merged_into})
        assert found is not None
    _update_demographics(conn, found.pk, found._asdict(), facts, now)
    return int(found.pk), str(found.fhir_id)


def _update_demographics(
    conn: Connection, pk: int, current: Mapping[Any, Any], facts: PatientFacts, now: datetime
) -> None:
    changes = newest_wins(current, _demographics(facts))
    if changes:
        conn.execute(
            update(PATIENT)
            .where(PATIENT.c.pk == pk)
            .values(**changes, change_seq=PATIENT.c.change_seq + 1, changed_at=now)
        )


def _demographics(facts: PatientFacts) -> dict[str, Any]:
    return {"name": facts.name[:512], "birth_date": facts.birth_date[:8], "sex": facts.sex[:16]}


def patient_of(
    conn: Connection, facts: PatientFacts, now: datetime, looked_up: list[Any] | None = None
) -> tuple[int, str]:
    """The patient an order (or an ADT message) names, created when new, its demographics
    updated (newest wins, empty values never blank stored ones): (pk, FHIR id), in one or two
    statements. The caller has checked that `facts` has a Patient ID. `looked_up`: the rows of
    `patient_lookup(facts)`, read by the caller with its other lookups (`query_all`)."""
    return _patient_by_identity(conn, facts, now, looked_up)


def patient_lookup(facts: PatientFacts) -> BoundQuery | None:
    """The statement `patient_of` starts with (None: there is nothing to look up)."""
    if facts.patient_id is None:
        return None
    return _PATIENT_BY_IDENTITY, {"system": facts.id_system, "pid": facts.patient_id}


def touch_studies(conn: Connection, study_uids: set[str], accessions: set[str], now: datetime) -> int:
    """Mark the studies of these UIDs or accession numbers changed, so their ImagingStudy is
    derived and published again (an order about them arrived or changed: `basedOn`); how many."""
    uids, numbers = sorted(u for u in study_uids if u), sorted(a for a in accessions if a)
    if not uids and not numbers:
        return 0
    return _touch(len(uids), len(numbers)).rowcount(conn, _touch_params(uids, numbers, now))


def touch_studies_later(study_uids: set[str], accessions: set[str], now: datetime) -> Writes:
    """`touch_studies` as a write to run with the caller's next ones (`storage.prepared.insert_all`)."""
    uids, numbers = sorted(u for u in study_uids if u), sorted(a for a in accessions if a)
    if not uids and not numbers:
        return []
    return [(_touch(len(uids), len(numbers)), [_touch_params(uids, numbers, now)])]


def _touch_params(uids: list[str], numbers: list[str], now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {f"u{n}": uid for n, uid in enumerate(uids)}
    return params | {f"a{n}": number for n, number in enumerate(numbers)} | {"b_now": now}


_TOUCHES: dict[tuple[int, int], PreparedQuery] = {}


def _touch(uids: int, numbers: int) -> PreparedQuery:
    """The prepared update for that many UIDs and accession numbers (an order names one or two
    of each: a few shapes, each compiled once)."""
    known = _TOUCHES.get((uids, numbers))
    if known is not None:
        return known
    match = [STUDY.c.study_uid == bindparam(f"u{n}") for n in range(uids)]
    match += [STUDY.c.accession == bindparam(f"a{n}") for n in range(numbers)]
    prepared = PreparedQuery(
        update(STUDY)
        .where(or_(*match))
        .values(change_seq=STUDY.c.change_seq + 1, changed_at=bindparam("b_now", type_=Stamp))
    )
    if len(_TOUCHES) < 64:  # a message naming many more is rare: not remembered
        _TOUCHES[(uids, numbers)] = prepared
    return prepared


def _merged_into(conn: Connection, facts: PatientFacts, patient_pk: int) -> bool:
    """Whether the instance's Patient ID names a patient that was merged into `patient_pk`: a
    modality still sending under the old ID after an ADT^A40 sends for the survivor."""
    if facts.patient_id is None:
        return False
    found = conn.execute(
        select(PATIENT.c.merged_into).where(
            PATIENT.c.id_system == facts.id_system, PATIENT.c.patient_id == facts.patient_id
        )
    ).first()
    return found is not None and found.merged_into == patient_pk


def merge_patients(conn: Connection, prior_pk: int, survivor_pk: int, now: datetime) -> int:
    """Fold the prior patient into the survivor (ADT^A40): its studies move (and will publish
    again with the survivor as subject), patients merged into it before now point at the
    survivor, and both patients publish again (links). Returns how many studies moved."""
    moved = conn.execute(
        update(STUDY)
        .where(STUDY.c.patient_pk == prior_pk)
        .values(patient_pk=survivor_pk, change_seq=STUDY.c.change_seq + 1, changed_at=now)
    ).rowcount
    conn.execute(
        update(PATIENT)
        .where(PATIENT.c.merged_into == prior_pk)
        .values(merged_into=survivor_pk, change_seq=PATIENT.c.change_seq + 1, changed_at=now)
    )
    conn.execute(
        update(PATIENT)
        .where(PATIENT.c.pk == prior_pk)
        .values(merged_into=survivor_pk, change_seq=PATIENT.c.change_seq + 1, changed_at=now)
    )
    conn.execute(
        update(PATIENT)
        .where(PATIENT.c.pk == survivor_pk)
        .values(change_seq=PATIENT.c.change_seq + 1, changed_at=now)
    )
    return int(moved or 0)


@dataclass(frozen=True)
class KnownPatient:
    pk: int
    fhir_id: str
    merged_into: int | None


def known_patient(conn: Connection, id_system: str | None, patient_id: str) -> KnownPatient | None:
    """The patient of that Patient ID and system, locked, or None."""
    row = conn.execute(
        select(PATIENT.c.pk, PATIENT.c.fhir_id, PATIENT.c.merged_into)
        .where(PATIENT.c.id_system == id_system, PATIENT.c.patient_id == patient_id)
        .with_for_update()
    ).first()
    return KnownPatient(int(row.pk), str(row.fhir_id), row.merged_into) if row is not None else None


def clear_patient(conn: Connection, pk: int, attributes: set[str], now: datetime) -> None:
    """Blank demographics an update explicitly nulled (HL7 `""`)."""
    values = {k: "" for k in attributes if k in _PATIENT_ATTRS}
    if values:
        conn.execute(
            update(PATIENT)
            .where(PATIENT.c.pk == pk)
            .values(**values, change_seq=PATIENT.c.change_seq + 1, changed_at=now)
        )


def _record_mismatch(conn: Connection, h: InstanceHeader, a: Arrival, study: Row[Any]) -> None:
    """What an administrator needs to sort the instance out; PHI, so here and never in a log. Values
    are cut to the columns' lengths (a Patient ID is LO, 64 characters)."""
    conn.execute(
        insert(MISMATCH).values(
            received_at=a.now,
            sop_uid=h.instance.sop_uid,
            study_uid=h.study.study_uid,
            study_id_system=study.id_system,
            study_patient_id=study.patient_id,
            instance_id_system=_cut(h.patient.id_system, 255),
            instance_patient_id=_cut(h.patient.patient_id, 64),
            received_via=a.via,
            calling_ae=a.calling_ae,
        )
    )


def _cut(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def _new_patient(conn: Connection, facts: PatientFacts, now: datetime) -> tuple[int, str]:
    fhir_id = str(uuid.uuid4())
    pk = _INSERT_PATIENT.one(
        conn,
        _demographics(facts)
        | {
            "fhir_id": fhir_id,
            "id_system": facts.id_system,
            "patient_id": facts.patient_id,
            "created_at": now,
            "changed_at": now,
            "change_seq": 1,
            "published_seq": 0,
        },
    )
    return int(pk), fhir_id


def _study(
    conn: Connection,
    h: InstanceHeader,
    study: Row[Any] | None,
    patient_pk: int,
    now: datetime,
    *,
    new_series: bool,
    enters: bool,
    batch: Batch,
) -> int:
    s = h.study
    incoming: dict[str, Any] = {
        "study_date": s.study_date[:8],
        "study_time": s.study_time[:16],
        "tz_offset": s.tz_offset[:5],
        "accession": s.accession[:16],
        "accession_system": s.accession_system,
        "accession_assigner": s.accession_assigner,
        "study_id": s.study_id[:16],
        "description": s.description[:64],
        "referring_physician": s.referring_physician[:512],
        "reason": s.reason[:64],
    }
    codes = [{"system": c.system, "code": c.code, "display": c.display} for c in s.procedure_codes]
    if study is None:
        return int(
            conn.execute(
                _INSERT_STUDY,
                incoming
                | {
                    "study_uid": s.study_uid,
                    "patient_pk": patient_pk,
                    "procedure_codes": codes,
                    "modalities": h.series.modality[:16],
                    "num_series": 1,
                    "num_instances": 1,
                    "created_at": now,
                    "changed_at": now,
                    "change_seq": 1,
                    "published_seq": 0,
                },
            ).scalar_one()
        )
    batch.touch_study(int(study.pk), new_series, enters, now)
    changes = newest_wins(study._mapping, incoming)
    if codes and codes != study.procedure_codes:
        changes["procedure_codes"] = codes
    if changes:
        conn.execute(update(STUDY).where(STUDY.c.pk == study.pk).values(**changes))
    return int(study.pk)


def _series(
    conn: Connection,
    h: InstanceHeader,
    series: Row[Any] | None,
    study_pk: int,
    now: datetime,
    *,
    enters: bool,
    batch: Batch,
) -> int:
    f = h.series
    incoming: dict[str, Any] = {
        "modality": f.modality[:16],
        "series_number": f.series_number,
        "description": f.description[:64],
        "body_part": f.body_part[:16],
        "laterality": f.laterality[:16],
        "series_date": f.series_date[:8],
        "series_time": f.series_time[:16],
        "performing_physician": f.performing_physician[:512],
    }
    if series is None:
        pk = conn.execute(
            _INSERT_SERIES,
            incoming
            | {
                "series_uid": f.series_uid,
                "study_pk": study_pk,
                "num_instances": 1,
                "created_at": now,
                "changed_at": now,
            },
        ).scalar_one()
        refresh_modalities(conn, study_pk)
        return int(pk)
    batch.touch_series(int(series.pk), enters, now)
    changes = newest_wins(series._mapping, incoming)
    if changes:
        conn.execute(update(SERIES).where(SERIES.c.pk == series.pk).values(**changes))
        if "modality" in changes:
            refresh_modalities(conn, study_pk)
    return int(series.pk)


def _move_out(conn: Connection, series_pk: int, now: datetime) -> None:
    """A replacement moved the instance to another series: the old series (and study) lose it.
    Runs after the instance row points at its new series, so an emptied series can go."""
    old = conn.execute(
        select(SERIES.c.study_pk, SERIES.c.num_instances).where(SERIES.c.pk == series_pk)
    ).first()
    if old is None:
        return
    emptied = old.num_instances <= 1
    conn.execute(
        _TOUCH_STUDY, {"b_pk": old.study_pk, "b_now": now, "b_series": -int(emptied), "b_instances": -1}
    )
    if emptied:
        conn.execute(delete(SERIES).where(SERIES.c.pk == series_pk))
    else:
        conn.execute(_TOUCH_SERIES, {"b_pk": series_pk, "b_now": now, "b_instances": -1})
    refresh_modalities(conn, old.study_pk)


def refresh_modalities(conn: Connection, study_pk: int) -> None:
    """ModalitiesInStudy (0008,0061): the distinct modalities of the study's series, in series order."""
    rows = conn.scalars(_SERIES_MODALITIES, {"study": study_pk})
    modalities = "\\".join(m for m in dict.fromkeys(rows) if m)[:255]
    conn.execute(update(STUDY).where(STUDY.c.pk == study_pk).values(modalities=modalities))


def _instance_values(h: InstanceHeader, a: Arrival) -> dict[str, Any]:
    f = h.instance
    return {
        "sop_class_uid": f.sop_class_uid,
        "instance_number": f.instance_number,
        "title": f.title[:255],
        "transfer_syntax_uid": f.transfer_syntax_uid,
        "character_set": f.character_set[:255],
        "rows": f.rows,
        "columns": f.columns,
        "number_of_frames": f.number_of_frames,
        "blob_key": a.blob_key,
        "size": a.size,
        "sha256": a.sha256,
        "received_via": a.via,
        "calling_ae": a.calling_ae,
        "changed_at": a.now,
    }


def newest_wins(current: Mapping[Any, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    """The incoming values that differ from the stored ones; empty values never blank stored ones."""
    return {k: v for k, v in incoming.items() if v not in (None, "") and current[k] != v}
