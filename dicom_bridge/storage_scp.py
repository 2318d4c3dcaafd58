"""Storage SCP: C-STORE requests -> the shared ingest path (PS3.4 Annex B).

Success (0x0000) is sent only after `Ingest.staged` returned, i.e. after the blob
was fsynced and the index transaction committed.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import cast

from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event, EventHandlerType

from dicom_bridge.statuses import status_of
from storage.errors import DomainError
from storage.usecases.ingest import Expect, Ingest, Source

log = logging.getLogger(__name__)

_BUG = 0xC211  # pynetdicom's "exception in handler", and ours for bugs


class StorageScp:
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_C_STORE, self.on_c_store),
            (evt.EVT_ACCEPTED, _on_association, ["accepted"]),
            (evt.EVT_REJECTED, _on_association, ["rejected"]),
            (evt.EVT_ABORTED, _on_association, ["aborted"]),
            (evt.EVT_RELEASED, _on_association, ["released"]),
            (evt.EVT_CONN_CLOSE, _discard_partial),
        ]

    def on_c_store(self, event: Event) -> int | Dataset:
        started = time.perf_counter()
        request = cast(C_STORE, event.request)
        facts = {
            "calling_ae": event.assoc.requestor.ae_title,
            "peer": event.assoc.requestor.address,
            "sop_instance_uid": str(request.AffectedSOPInstanceUID or ""),
        }
        try:
            path = self._staged_file(event)
            stored = self._ingest.staged(
                path,
                Source("c-store", event.assoc.requestor.ae_title),
                Expect(
                    sop_class_uid=str(request.AffectedSOPClassUID or "") or None,
                    sop_instance_uid=str(request.AffectedSOPInstanceUID or "") or None,
                ),
            )
        except DomainError as exc:
            status = status_of(exc)
            log.warning(
                "c_store.refused",
                extra=facts | {"status": status, "error": type(exc).__name__, "reason": str(exc)},
            )
            return _failure(status, str(exc))
        except Exception:
            log.exception("c_store.failed", extra=facts | {"status": _BUG})
            return _failure(_BUG, "internal error; the instance was not stored")
        log.info(
            "c_store.stored",
            extra=facts | {"outcome": stored.outcome, "ms": round((time.perf_counter() - started) * 1000, 2)},
        )
        return 0x0000

    def _staged_file(self, event: Event) -> Path:
        """The received data set as a Part 10 file that ingest may take over.

        With chunked receive (the default, see `dicom_bridge.ae`) pynetdicom already wrote
        it to a file; else it is written from memory into the staging directory.
        """
        try:
            return Path(event.dataset_path)
        except AttributeError:
            pass
        fd, name = tempfile.mkstemp(dir=self._ingest.staging_dir(), suffix=".dcm")
        with os.fdopen(fd, "wb") as f:
            f.write(event.encoded_dataset(include_meta=True))
        return Path(name)


def _failure(status: int, comment: str) -> Dataset:
    """A failure status with an Error Comment (0000,0902): LO, at most 64 characters."""
    rsp = Dataset()
    rsp.Status = status
    rsp.ErrorComment = comment[:64]
    return rsp


def _discard_partial(event: Event) -> None:
    """On a closed connection, delete the files of data sets that will never be stored: the one
    being received when the peer aborted or vanished, and any received but not yet handled (no
    answer can reach the peer now). pynetdicom writes them (chunked receive) and leaves them."""
    dimse = event.assoc.dimse
    files = [getattr(dimse.message, "_data_set_file", None)]  # the message being decoded
    while True:
        try:  # decoded requests not yet handled: primitives
            files.append(getattr(dimse.msg_queue.get_nowait()[1], "_dataset_file", None))
        except queue.Empty:
            break
    for file in files:
        if file is None:
            continue
        with suppress(OSError):
            file.close()
        Path(file.name).unlink(missing_ok=True)
        log.info("c_store.partial_discarded", extra={"peer": event.assoc.requestor.address})


def _on_association(event: Event, what: str) -> None:
    requestor = event.assoc.requestor
    log.info(f"association.{what}", extra={"calling_ae": requestor.ae_title, "peer": requestor.address})
