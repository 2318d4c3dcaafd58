"""SQLAlchemy model of the audit trail: one row per audited event, whatever door it came through.

No PHI: who (SMART client and fhirUser, or the calling AE title), what action, the outcome, the
peer address, counts, and the resource types, ids and UIDs of a request path. Never query
strings, names, birth dates, patient IDs or accession numbers (they can be in a query string or
a data set, so neither is recorded).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Id, Stamp


class AuditEventRow(Base):
    """One access to /fhir, /dicomweb, /wado or /auth (allowed or refused), or one DICOM
    association. Paths hold only resource types, ids and UIDs."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    recorded: Mapped[datetime] = mapped_column(Stamp)
    source: Mapped[str] = mapped_column(String(16))  # fhir | dicomweb | wado | auth | dimse
    action: Mapped[str] = mapped_column(String(32))  # read | search | ... | token | association
    method: Mapped[str] = mapped_column(String(8))  # the HTTP method; "" for DIMSE
    path: Mapped[str] = mapped_column(String(500))  # the HTTP path; "" for DIMSE
    status: Mapped[int] = mapped_column(Integer)  # the HTTP status; 0 for DIMSE
    # HTTP: allowed | refused | failed; a DICOM association: released | aborted | rejected
    outcome: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(String(64))  # SMART client, or calling AE title
    user: Mapped[str | None] = mapped_column(String(110))
    patient: Mapped[str | None] = mapped_column(String(64))
    peer: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(200))
    # what an event carried, e.g. {"stored": 3, "refused": 1, "failed": 0} for an association
    counts: Mapped[dict[str, int] | None] = mapped_column(JSON)


Index("ix_audit_event_recorded", AuditEventRow.recorded)
Index("ix_audit_event_patient", AuditEventRow.patient)
