"""Storage SCP: C-STORE requests -> the shared ingest path (PS3.4 Annex B).

Success (0x0000) is sent only after `Ingest.accept` returned, i.e. after the bytes were held
durably and every refusal the index would make was made; the index itself follows in batches
(`storage.usecases.deferred_index`), complete before a release is confirmed.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.pdu_primitives import A_RELEASE

from dicom_bridge.statuses import failure, status_of
from storage.errors import DomainError, Invalid
from storage.usecases.ingest import Expect, Ingest, Source, Staging

log = logging.getLogger(__name__)

_BUG = 0xC211  # pynetdicom's "exception in handler", and ours for bugs


_C_STORE_RQ, _C_STORE_RSP = 0x0001, 0x8001  # Command Field (PS3.7 9.3.1)
_DRAIN_TIMEOUT = 30.0  # seconds a release waits for the index (the instances are durable regardless)


class StorageScp:
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        # Stands in for a request UID that pynetdicom cannot hold (see `on_dimse_recv`); random, so
        # that no sender's UID is ever taken for it.
        self._unusable_uid = f"2.25.{uuid.uuid4().int}"

    @property
    def ingest(self) -> Ingest:
        """What a C-STORE is stored by (`dicom_bridge.fast_association` calls it too)."""
        return self._ingest

    def handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_DIMSE_RECV, self.on_dimse_recv),
            (evt.EVT_DIMSE_SENT, self.on_dimse_sent),
            (evt.EVT_C_STORE, self.on_c_store),
            (evt.EVT_ACSE_RECV, self.on_acse_recv),
            (evt.EVT_ACCEPTED, on_association, ["accepted"]),
            (evt.EVT_REJECTED, on_association, ["rejected"]),
            (evt.EVT_ABORTED, on_association, ["aborted"]),
            (evt.EVT_RELEASED, on_association, ["released"]),
            (evt.EVT_CONN_CLOSE, discard_partial),
        ]

    def on_dimse_recv(self, event: Event) -> None:
        """A C-STORE-RQ whose Affected SOP Instance UID is longer than a UID may be (PS3.5 9.1):
        pynetdicom would fail to convert it and abort the association with no status. Put a
        stand-in there, so the request reaches `on_c_store`, which answers it with a failure."""
        command = event.message.command_set
        uid = command.get("AffectedSOPInstanceUID")
        if command.get("CommandField") == _C_STORE_RQ and uid is not None and len(str(uid)) > 64:
            command.AffectedSOPInstanceUID = self._unusable_uid

    def on_dimse_sent(self, event: Event) -> None:
        """The answer to such a request must not name the stand-in: the Affected SOP Instance UID
        of a C-STORE-RSP is optional (U), and when present must equal the request's (PS3.7 9.3.1.2)."""
        message = event.message
        command = message.command_set
        if command.get("CommandField") == _C_STORE_RSP and command.get("AffectedSOPInstanceUID") == (
            self._unusable_uid
        ):
            del command.AffectedSOPInstanceUID
            message._set_command_group_length()  # encode_msg follows this event: keep it exact

    def on_c_store(self, event: Event) -> int | Dataset:
        request = cast(C_STORE, event.request)
        requestor = event.assoc.requestor
        unusable = request.AffectedSOPInstanceUID == self._unusable_uid
        status, comment = store_instance(
            self._ingest,
            Request(
                calling_ae=requestor.ae_title,
                peer=requestor.address,
                sop_class_uid=str(request.AffectedSOPClassUID or ""),
                sop_instance_uid="" if unusable else str(request.AffectedSOPInstanceUID or ""),
                uid_too_long=unusable,
            ),
            receive=lambda staging: receive(event, staging),
            skip=lambda: self._discard(event),
        )
        return status if comment is None else failure(status, comment)

    def on_acse_recv(self, event: Event) -> None:
        """The peer asks to release: the instances it sent are durable already (each was answered
        only then), and indexed before the release is confirmed, so that a sender that released
        finds every one of them in queries and FHIR reads."""
        primitive = getattr(event, "primitive", None)  # set by pynetdicom for this event
        if isinstance(primitive, A_RELEASE) and primitive.result is None:
            release_requested(self._ingest, event.assoc.requestor.address)

    @staticmethod
    def _discard(event: Event) -> None:
        """Delete the received data set that pynetdicom wrote to a file (chunked receive)."""
        with suppress(AttributeError):
            Path(event.dataset_path).unlink(missing_ok=True)


def release_requested(ingest: Ingest, peer: str) -> None:
    """Before a release is confirmed, on both receive paths: wait (a while) until what the peer
    sent is indexed; its instances are durable regardless."""
    if not ingest.drain(_DRAIN_TIMEOUT):
        log.warning("c_store.index_behind", extra={"peer": peer})


@dataclass(frozen=True)
class Request:
    """What a C-STORE-RQ's command set says (PS3.7 9.1.1.1), as both receive paths read it."""

    calling_ae: str
    peer: str
    sop_class_uid: str
    sop_instance_uid: str
    uid_too_long: bool = False  # the Affected SOP Instance UID has more than 64 characters


class PeerGone(Exception):
    """The data set's sender went away before its last fragment: nothing is stored or answered."""


def store_instance(
    ingest: Ingest, request: Request, *, receive: Callable[[Staging], None], skip: Callable[[], None]
) -> tuple[int, str | None]:
    """One C-STORE: `receive` writes the Part 10 file into staging (or `skip` drops a data set we
    refuse unread), then `Ingest.accept`. The status to answer and its Error Comment (None for
    success): the one mapping of both receive paths (pynetdicom's and `dicom_bridge.fast_association`'s).
    `PeerGone` from `receive` passes through: the staged part is removed, no status is due."""
    started = time.perf_counter()
    facts = {
        "calling_ae": request.calling_ae,
        "peer": request.peer,
        "sop_instance_uid": request.sop_instance_uid,
    }
    try:
        if request.uid_too_long:
            skip()
            raise Invalid("the Affected SOP Instance UID is longer than 64 characters")
        with ingest.staging(in_place=True) as staging:
            receive(staging)
            ingest.accept(
                staging,
                Source("c-store", request.calling_ae),
                Expect(
                    sop_class_uid=request.sop_class_uid or None,
                    sop_instance_uid=request.sop_instance_uid or None,
                ),
            )
    except PeerGone:
        raise
    except DomainError as exc:
        status = status_of(exc)
        log.warning(
            "c_store.refused",
            extra=facts | {"status": status, "error": type(exc).__name__, "reason": str(exc)},
        )
        return status, str(exc)[:64]
    except Exception:
        log.exception("c_store.failed", extra=facts | {"status": _BUG})
        return _BUG, "internal error; the instance was not stored"
    log.info("c_store.stored", extra=facts | {"ms": round((time.perf_counter() - started) * 1000, 2)})
    return 0x0000, None


def receive(event: Event, staging: Staging) -> None:
    """The received data set as a Part 10 file in `staging`. With chunked receive (set where the AE
    is built, `dicom_bridge.ae`) pynetdicom already wrote it to a file of its own, in the system
    temporary directory: adopted (a rename on the same file system, else a copy). Else it is
    written from memory."""
    try:
        path = event.dataset_path
    except AttributeError:
        path = None
    if path is not None:
        staging.adopt(Path(path))
    else:
        staging.write(event.encoded_dataset(include_meta=True))


def discard_partial(event: Event) -> None:
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


def on_association(event: Event, what: str) -> None:
    """EVT_ACCEPTED / _REJECTED / _ABORTED / _RELEASED: `log_association`."""
    requestor = event.assoc.requestor
    log_association(what, requestor.ae_title, requestor.address)


def log_association(what: str, calling_ae: str | None, peer: str | None) -> None:
    """`association.accepted` / `.rejected` / `.aborted` / `.released`, for both receive paths."""
    log.info(f"association.{what}", extra={"calling_ae": calling_ae, "peer": peer})
