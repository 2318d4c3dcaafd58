"""The DIMSE door of the audit trail: one event per DICOM association, fed to the audit use case.

An association's event says who (the calling AE title), from where (the peer address), how it
ended (released, aborted or rejected) and what its C-STOREs came to: how many instances were
stored, refused (a failure status for the peer's data: cannot understand, conflict, out of
resources) and failed (our error, 0xC211 / 0x0110); and, when it asked for them, what its
queries and retrieves came to: `queries` (C-FIND requests answered) and `found` (matches sent),
`retrieves` (C-GET and C-MOVE requests answered), `retrieved` and `not_retrieved` (the
sub-operations their final responses counted as completed or failed). The counts are taken from
the responses as they are sent, so they are what the peer was told; nothing of a data set or an
identifier (no patient, study or instance identifier) is recorded. A connection that never asks
to associate leaves no event.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.pdu import A_RELEASE_RQ

from storage.usecases.audit import Audit, AuditEvent

_C_STORE_RSP, _C_FIND_RSP, _C_GET_RSP, _C_MOVE_RSP = 0x8001, 0x8020, 0x8010, 0x8021  # PS3.7 9.3, E
_PENDING = {0xFF00, 0xFF01}
_FAILED = {0xC211, 0x0110}  # an exception in our handler; a processing failure: ours, not the peer's
_WARNINGS = {0xB000, 0xB006, 0xB007}  # stored, with a warning (PS3.4 B.2.3)


def outcome_of_store(status: int) -> str:
    """What a C-STORE response status says of the instance: stored, refused or failed."""
    if status == 0x0000 or status in _WARNINGS:
        return "stored"
    return "failed" if status in _FAILED else "refused"


def store_counts() -> dict[str, int]:
    """The counts every association's event starts with."""
    return {"stored": 0, "refused": 0, "failed": 0}


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=store_counts)
    ended: bool = False
    release_asked: bool = False


class AssociationAudit:
    """pynetdicom handlers (notifications only: they never change an answer) that record each
    association once, when it ends."""

    def __init__(self, audit: Audit) -> None:
        self._audit = audit
        # per association, dropped with it: a handler of a vanished peer never leaks an entry
        self._tallies: weakref.WeakKeyDictionary[Association, _Tally] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_DIMSE_SENT, self.on_dimse_sent),
            (evt.EVT_PDU_RECV, self.on_pdu_recv),
            (evt.EVT_RELEASED, self.on_ended, ["released"]),
            (evt.EVT_ABORTED, self.on_ended, ["aborted"]),
            (evt.EVT_REJECTED, self.on_ended, ["rejected"]),
            (evt.EVT_CONN_CLOSE, self.on_conn_close),
        ]

    def on_dimse_sent(self, event: Event) -> None:
        command = event.message.command_set
        field, status = command.get("CommandField"), int(command.get("Status", 0xC211))
        if field == _C_STORE_RSP:
            self._count(event.assoc, outcome_of_store(status))
        elif field == _C_FIND_RSP:
            self._count(event.assoc, "found" if status in _PENDING else "queries")
        elif field in (_C_GET_RSP, _C_MOVE_RSP) and status not in _PENDING:
            self._count(event.assoc, "retrieves")
            done = int(command.get("NumberOfCompletedSuboperations") or 0)
            done += int(command.get("NumberOfWarningSuboperations") or 0)
            self._count(event.assoc, "retrieved", done)
            self._count(event.assoc, "not_retrieved", int(command.get("NumberOfFailedSuboperations") or 0))

    def _count(self, assoc: Association, what: str, n: int = 1) -> None:
        if n:
            counts = self._tally(assoc).counts
            with self._lock:
                counts[what] = counts.get(what, 0) + n

    def on_pdu_recv(self, event: Event) -> None:
        """The peer asked to release. pynetdicom queues its reply before it sets `is_released` and
        fires EVT_RELEASED: a peer that gets the reply and closes first would otherwise be
        recorded as aborted by `on_conn_close`."""
        if isinstance(event.pdu, A_RELEASE_RQ):
            self._tally(event.assoc).release_asked = True

    def on_ended(self, event: Event, outcome: str) -> None:
        self._end(event.assoc, outcome)

    def on_conn_close(self, event: Event) -> None:
        """A connection that closed after asking to associate, without release, abort or
        rejection being seen: released when the peer had asked to release (and closed on our
        reply before pynetdicom said so), else aborted (the peer vanished)."""
        assoc = event.assoc
        with self._lock:
            tally = self._tallies.get(assoc)
        if tally is not None or assoc.requestor.primitive is not None:
            self._end(assoc, "released" if tally is not None and tally.release_asked else "aborted")

    def _tally(self, assoc: Association) -> _Tally:
        with self._lock:
            tally = self._tallies.get(assoc)
            if tally is None:
                tally = self._tallies[assoc] = _Tally()
            return tally

    def _end(self, assoc: Association, outcome: str) -> None:
        tally = self._tally(assoc)
        with self._lock:
            if tally.ended:  # pynetdicom may signal an abort twice, and the close follows
                return
            tally.ended = True
        self.record(outcome, _calling_ae(assoc), assoc.requestor.address, dict(tally.counts))

    def record(self, outcome: str, calling_ae: str | None, peer: str | None, counts: dict[str, int]) -> None:
        """One association's event; the fast receive path (`dicom_bridge.fast_association`) calls it
        with counts it keeps the same way (`outcome_of_store` of each C-STORE response sent)."""
        self._audit.record(
            AuditEvent(
                source="dimse",
                action="association",
                outcome=outcome,
                client_id=(calling_ae or "").strip() or None,
                peer=peer or None,
                counts=counts,
            )
        )


def _calling_ae(assoc: Association) -> str | None:
    """The calling AE title as received (pynetdicom copies it to the requestor only when it
    negotiates, which a rejected association never reaches)."""
    rq = assoc.requestor.primitive
    title = rq.calling_ae_title if rq is not None else assoc.requestor.ae_title
    return str(title).strip() or None
