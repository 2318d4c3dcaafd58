"""Quality control for administrators: what ingest kept but flagged (`facade qa …`). Reads only."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database
from storage.dicom_index.mismatches import PatientMismatch, count_patient_mismatches, patient_mismatches

__all__ = ["Mismatches", "PatientMismatch", "Qa"]


@dataclass(frozen=True)
class Mismatches:
    total: int
    newest: list[PatientMismatch]  # at most the limit asked for, newest first


class Qa:
    def __init__(self, db: Database) -> None:
        self._db = db

    def patient_mismatches(self, limit: int | None = None) -> Mismatches:
        """Instances kept in a study of another patient (FACADE_PATIENT_MISMATCH=accept)."""
        with self._db.read() as session:
            return Mismatches(count_patient_mismatches(session), patient_mismatches(session, limit=limit))
