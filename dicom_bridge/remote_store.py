"""The C-STORE sub-operations of our C-GET (`dicom_bridge.remote`) -> the shared ingest path.

As in the storage SCP, the peer hears success (0x0000) only after `Ingest.store` returned: the
blob fsynced and the index transaction committed. Outcomes are counted per study.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import cast

from pydicom import Dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event

from dicom_bridge.statuses import status_of
from dicom_bridge.storage_scp import receive
from storage.errors import DomainError
from storage.usecases.ingest import Expect, Ingest, Source

log = logging.getLogger(__name__)

_BUG = 0xC211


class RetrievedInstances:
    """Stores what a C-GET from `calling_ae` brings in, expecting the study being retrieved."""

    def __init__(self, ingest: Ingest, peer_ae: str) -> None:
        self._ingest, self._source = ingest, Source("c-get", peer_ae)
        self._lock = threading.Lock()
        self._study: str | None = None
        self.outcomes: dict[str, Counter[str]] = {}  # study UID -> stored / duplicate / replaced / failed

    def expect(self, study_uid: str) -> None:
        """The study the next C-GET asks for: an instance of another one is refused."""
        with self._lock:
            self._study = study_uid
            self.outcomes.setdefault(study_uid, Counter())

    def on_c_store(self, event: Event) -> int | Dataset:
        request = cast(C_STORE, event.request)
        study = self._study
        facts = {
            "calling_ae": self._source.calling_ae,
            "sop_instance_uid": str(request.AffectedSOPInstanceUID or ""),
        }
        try:
            with self._ingest.staging() as staging:
                receive(event, staging)
                stored = self._ingest.store(
                    staging,
                    self._source,
                    Expect(
                        sop_class_uid=str(request.AffectedSOPClassUID or "") or None,
                        sop_instance_uid=str(request.AffectedSOPInstanceUID or "") or None,
                        study_uid=study,
                    ),
                )
        except DomainError as exc:
            status = status_of(exc)
            log.warning("c_get.refused", extra=facts | {"status": status, "error": type(exc).__name__})
            return self._refused(event, study, status, str(exc))
        except Exception:
            log.exception("c_get.failed", extra=facts | {"status": _BUG})
            return self._refused(event, study, _BUG, "internal error; the instance was not stored")
        self._count(study, stored.outcome)
        log.info("c_get.stored", extra=facts | {"outcome": stored.outcome})
        return 0x0000

    def _refused(self, event: Event, study: str | None, status: int, comment: str) -> Dataset:
        """Count the failure, and delete the file pynetdicom received into when staging did not
        take it over (chunked receive: see `dicom_bridge.ae`)."""
        self._count(study, "failed")
        with suppress(AttributeError, OSError):
            Path(event.dataset_path).unlink(missing_ok=True)
        rsp = Dataset()
        rsp.Status = status
        rsp.ErrorComment = comment[:64]  # LO
        return rsp

    def _count(self, study: str | None, outcome: str) -> None:
        with self._lock:
            self.outcomes.setdefault(study or "", Counter())[outcome] += 1
