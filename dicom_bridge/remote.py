"""Query/Retrieve SCU against a remote AE (PS3.4 C.4, Study Root): C-FIND, C-GET (we are the
storage SCP of the association, SCP/SCU role selection PS3.7 D.3.3.4) and C-MOVE, plus C-ECHO.

What a C-GET brings in is handed to a callback *inside* the C-STORE sub-operation: the peer hears
success only after that callback returned (the caller stores through the ingest use case, so
success means committed). Every failure is `RemoteError`, with a PHI-free reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.uid import UID
from pynetdicom import AE, StoragePresentationContexts, _config, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.presentation import PresentationContext

from dicom_bridge.ae import (
    MAX_CONTEXTS,
    UNCOMPRESSED_LE,
    VERIFICATION,
    preferred_transfer_syntaxes,
    sending_contexts,
)
from dicom_bridge.storage_scp import discard_partial
from storage.usecases.peers import RemoteAe

log = logging.getLogger(__name__)

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
_PENDING = (0xFF00, 0xFF01)
_CANCELLED = 0xFE00


class RemoteError(Exception):
    """The remote AE could not be asked, or refused: the message says why (no PHI)."""


@dataclass(frozen=True)
class ScuConfig:
    ae_title: str  # ours: the calling AE title (and the C-MOVE destination)
    connect_timeout: float = 10.0  # s: TCP connection, and the A-ASSOCIATE answer
    response_timeout: float = 60.0  # s: each DIMSE response, and an idle association
    max_pdu: int = 262144


@dataclass(frozen=True)
class Counts:
    """A retrieve's final status and sub-operation counts (PS3.4 C.4.2.1.5, C.4.3.1.3)."""

    status: int
    completed: int = 0
    failed: int = 0
    warning: int = 0


Progress = Callable[[int, int], None]  # (sub-operations done, total as the peer last said)
Receive = Callable[[Event], int | Dataset]  # a C-STORE sub-operation -> its status


def _ae(config: ScuConfig) -> AE:
    ae = AE(ae_title=config.ae_title)
    ae.connection_timeout = config.connect_timeout
    ae.acse_timeout = config.connect_timeout
    ae.dimse_timeout = config.response_timeout
    ae.network_timeout = config.response_timeout
    ae.maximum_pdu_size = config.max_pdu
    return ae


@contextmanager
def associated(
    peer: RemoteAe,
    config: ScuConfig,
    contexts: list[PresentationContext],
    *,
    roles: list[Any] | None = None,
    handlers: list[EventHandlerType] | None = None,
) -> Iterator[Association]:
    """An established association with `peer`, released on leaving (aborted on an exception)."""
    ae = _ae(config)
    ae.requested_contexts = contexts
    seen = {"connected": False, "accepted": False}

    def mark(what: str) -> Callable[[Event], None]:
        return lambda _event: seen.__setitem__(what, True)

    assoc = ae.associate(
        peer.host,
        peer.port,
        ae_title=peer.ae_title,
        ext_neg=roles or [],
        evt_handlers=[(evt.EVT_CONN_OPEN, mark("connected")), (evt.EVT_ACCEPTED, mark("accepted"))]
        + (handlers or []),
    )
    where = f"{peer.ae_title} at {peer.host}:{peer.port}"
    if not assoc.is_established:
        facts = {"called_ae": peer.ae_title, "host": peer.host, "port": peer.port}
        if not seen["connected"]:
            log.warning("remote.unreachable", extra=facts)
            raise RemoteError(
                f"{where} cannot be reached (no connection within {config.connect_timeout:g} s)"
            )
        if assoc.is_rejected:
            primitive = assoc.acceptor.primitive
            reason = (
                f"{primitive.result_str}: {primitive.reason_str}" if primitive is not None else "rejected"
            )
            log.warning("remote.rejected", extra=facts | {"reason": reason})
            raise RemoteError(f"{where} rejected the association ({reason})")
        if seen["accepted"]:
            log.warning("remote.no_context", extra=facts)
            raise RemoteError(f"{where} accepted none of the proposed presentation contexts")
        log.warning("remote.aborted", extra=facts)
        raise RemoteError(f"{where} aborted the association or did not answer it")
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    if assoc.is_established:
        assoc.release()


def echo(peer: RemoteAe, config: ScuConfig) -> None:
    """C-ECHO (PS3.4 A.4); RemoteError unless the peer answers success."""
    with associated(peer, config, [_context(VERIFICATION, UNCOMPRESSED_LE)]) as assoc:
        status = assoc.send_c_echo()
        if "Status" not in status:
            raise RemoteError(_no_answer(peer, config))
        if status.Status != 0x0000:
            raise RemoteError(f"{peer.ae_title} answered the C-ECHO with status 0x{status.Status:04X}")


def find(peer: RemoteAe, config: ScuConfig, identifier: Dataset) -> list[Dataset]:
    """C-FIND (Study Root): every pending response's identifier, in the peer's order."""
    with associated(peer, config, [_context(STUDY_ROOT_FIND, UNCOMPRESSED_LE)]) as assoc:
        found: list[Dataset] = []
        for status, answer in assoc.send_c_find(identifier, STUDY_ROOT_FIND):
            code = _status_of(peer, config, status)
            if code in _PENDING:
                if answer is not None:
                    found.append(answer)
                continue
            if code != 0x0000:
                raise RemoteError(f"{peer.ae_title} answered the C-FIND with {_describe(code, status)}")
        log.info("remote.found", extra={"called_ae": peer.ae_title, "count": len(found)})
        return found


def get_contexts(sop_classes: Sequence[str] = ()) -> tuple[list[PresentationContext], list[Any]]:
    """Study Root GET, the storage SOP classes with the SCP role proposed for each (PS3.7 D.3.3.4),
    in every transfer syntax we accept as SCP.

    Known classes (the studies' SOPClassesInStudy): one context of the native syntaxes each, and
    one context per encapsulated syntax, as many as 128 contexts allow, so that the peer can send
    a compressed instance as it stores it (an acceptor takes one syntax per context). Unknown:
    pynetdicom's common storage classes, each one context of every syntax (the peer chooses)."""
    syntaxes = [str(ts) for ts in preferred_transfer_syntaxes()]
    native = [ts for ts in syntaxes if not UID(ts).is_encapsulated]
    classes = list(dict.fromkeys(sop_classes))[: MAX_CONTEXTS - 1]
    contexts = [_context(STUDY_ROOT_GET, UNCOMPRESSED_LE)]
    if not classes:
        classes = [str(c.abstract_syntax) for c in StoragePresentationContexts][: MAX_CONTEXTS - 1]
        contexts += [_context(uid, syntaxes) for uid in classes]
    else:
        contexts += sending_contexts(dict.fromkeys(classes, syntaxes), native, room=MAX_CONTEXTS - 1)
    return contexts, [build_role(uid, scp_role=True) for uid in classes]


def study_identifier(study_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


class Getter:
    """One association for C-GETs of several studies; `receive` answers each C-STORE; `sop_classes`:
    those the studies hold, when the peer said (else pynetdicom's common storage classes)."""

    def __init__(
        self, peer: RemoteAe, config: ScuConfig, receive: Receive, sop_classes: Sequence[str] = ()
    ) -> None:
        self._peer, self._config, self._receive = peer, config, receive
        self._sop_classes = sop_classes

    @contextmanager
    def open(self) -> Iterator[Callable[[str, Progress], Counts]]:
        # Receive each data set straight into a file, as our SCP does (see dicom_bridge.ae)
        _config.STORE_RECV_CHUNKED_DATASET = True
        contexts, roles = get_contexts(self._sop_classes)
        handlers: list[EventHandlerType] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, discard_partial),  # a data set the peer stopped sending midway
        ]
        with associated(self._peer, self._config, contexts, roles=roles, handlers=handlers) as assoc:

            def get(study_uid: str, progress: Progress) -> Counts:
                responses = assoc.send_c_get(study_identifier(study_uid), STUDY_ROOT_GET)
                return _retrieve(self._peer, self._config, "C-GET", responses, progress)

            yield get

    def _on_store(self, event: Event) -> int | Dataset:
        return self._receive(event)


def move(peer: RemoteAe, config: ScuConfig, study_uid: str, destination: str, progress: Progress) -> Counts:
    """C-MOVE (Study Root) of one study to `destination` (an AE title the peer knows)."""
    with associated(peer, config, [_context(STUDY_ROOT_MOVE, UNCOMPRESSED_LE)]) as assoc:
        responses = assoc.send_c_move(study_identifier(study_uid), destination, STUDY_ROOT_MOVE)
        return _retrieve(peer, config, "C-MOVE", responses, progress)


def _retrieve(
    peer: RemoteAe,
    config: ScuConfig,
    what: str,
    responses: Iterator[tuple[Dataset, Dataset | None]],
    progress: Progress,
) -> Counts:
    for status, _identifier in responses:
        code = _status_of(peer, config, status)
        counts = _counts(code, status)
        done = counts.completed + counts.failed + counts.warning
        if code in _PENDING:
            progress(done, done + int(status.get("NumberOfRemainingSuboperations", 0) or 0))
            continue
        progress(done, done)
        if code == 0xA801:
            raise RemoteError(
                f"{peer.ae_title} does not know the move destination {config.ae_title}: "
                f"register it there (AE title {config.ae_title}, our DICOM host and port)"
            )
        if code not in (0x0000, 0xB000, 0xA702, _CANCELLED) and not done:
            raise RemoteError(f"{peer.ae_title} answered the {what} with {_describe(code, status)}")
        return counts
    raise RemoteError(_no_answer(peer, config))


def _counts(code: int, status: Dataset) -> Counts:
    def n(keyword: str) -> int:
        return int(status.get(keyword, 0) or 0)

    return Counts(
        code,
        n("NumberOfCompletedSuboperations"),
        n("NumberOfFailedSuboperations"),
        n("NumberOfWarningSuboperations"),
    )


def _status_of(peer: RemoteAe, config: ScuConfig, status: Dataset) -> int:
    if "Status" not in status:  # pynetdicom: no response in time, or the association ended
        raise RemoteError(_no_answer(peer, config))
    return int(status.Status)


def _no_answer(peer: RemoteAe, config: ScuConfig) -> str:
    return f"{peer.ae_title} did not answer within {config.response_timeout:g} s, or ended the association"


def _describe(code: int, status: Dataset) -> str:
    comment = status.get("ErrorComment")
    return f"status 0x{code:04X}" + (f" ({comment})" if comment else "")


def _context(abstract_syntax: str, syntaxes: list[str]) -> PresentationContext:
    return build_context(abstract_syntax, syntaxes)
