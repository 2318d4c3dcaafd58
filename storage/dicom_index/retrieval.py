"""Reading the DICOM index for retrieval (WADO-RS): which stored instances a study, series or
instance URL names, with what a retrieve needs of each (blob key, transfer syntax, patient).

The three UIDs are matched together: a series UID under another study, or an instance under
another series, names nothing. Instances come in DICOM order (series number, instance number,
UID), as `reader.series_views` lists them for the ImagingStudy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select

from storage.dicom_index.models import InstanceRow, PatientRow, SeriesRow, StudyRow


@dataclass(frozen=True)
class StoredInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str  # as stored
    blob_key: str
    size: int
    patient_fhir_id: str


def stored_instances(
    conn: Connection, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> list[StoredInstance]:
    """The instances under `study_uid` (and `series_uid`, and `sop_uid` when given); empty when
    the UIDs name nothing."""
    stmt = statement(series_uid is not None, sop_uid is not None)
    params = {"study": study_uid, "series": series_uid, "sop": sop_uid}
    return [StoredInstance(*row) for row in conn.execute(stmt, params)]


@cache
def statement(by_series: bool, by_sop: bool) -> Select[*tuple[Any, ...]]:
    """The lookup for a study, series or instance URL, built once (its UIDs bound at execution):
    every WADO-RS request runs one. Parameters `study`, `series`, `sop`; the columns of a
    `StoredInstance`, in its order."""
    stmt = (
        select(
            StudyRow.study_uid,
            SeriesRow.series_uid,
            InstanceRow.sop_uid,
            InstanceRow.sop_class_uid,
            InstanceRow.transfer_syntax_uid,
            InstanceRow.blob_key,
            InstanceRow.size,
            PatientRow.fhir_id,
        )
        .join(SeriesRow, SeriesRow.study_pk == StudyRow.pk)
        .join(InstanceRow, InstanceRow.series_pk == SeriesRow.pk)
        .join(PatientRow, PatientRow.pk == StudyRow.patient_pk)
        .where(StudyRow.study_uid == bindparam("study"))
    )
    if by_series:
        stmt = stmt.where(SeriesRow.series_uid == bindparam("series"))
    if by_sop:
        stmt = stmt.where(InstanceRow.sop_uid == bindparam("sop"))
    return stmt.order_by(
        SeriesRow.series_number.is_(None),
        SeriesRow.series_number,
        SeriesRow.series_uid,
        InstanceRow.instance_number.is_(None),
        InstanceRow.instance_number,
        InstanceRow.sop_uid,
    )
