"""Reading the DICOM index for retrieval (WADO-RS): which stored instances a study, series or
instance URL names, with what a retrieve needs of each (blob key, transfer syntax, patient).

The three UIDs are matched together: a series UID under another study, or an instance under
another series, names nothing. Instances come in DICOM order (series number, instance number,
UID), as `reader.series_views` lists them for the ImagingStudy.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

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
    session: Session, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> list[StoredInstance]:
    """The instances under `study_uid` (and `series_uid`, and `sop_uid` when given); empty when
    the UIDs name nothing."""
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
        .where(StudyRow.study_uid == study_uid)
    )
    if series_uid is not None:
        stmt = stmt.where(SeriesRow.series_uid == series_uid)
    if sop_uid is not None:
        stmt = stmt.where(InstanceRow.sop_uid == sop_uid)
    stmt = stmt.order_by(
        SeriesRow.series_number.is_(None),
        SeriesRow.series_number,
        SeriesRow.series_uid,
        InstanceRow.instance_number.is_(None),
        InstanceRow.instance_number,
        InstanceRow.sop_uid,
    )
    return [StoredInstance(*row) for row in session.execute(stmt)]
