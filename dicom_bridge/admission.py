"""Who may associate: limits on associations in total and per peer address (PS3.8 7.1.1.9).

pynetdicom counts every accepted TCP connection against its limit, including connections that
never send an A-ASSOCIATE-RQ, so a handful of idle sockets locked real senders out until its
ACSE timeout closed them. Here only connections that asked to associate count; those that never
ask are closed by the ARTIM timer (`AeConfig.acse_timeout`). Refusals are A-ASSOCIATE-RJ,
rejected-transient, service-provider (presentation), local-limit-exceeded: the peer may retry.

Both receive paths count against the same limits: pynetdicom's associations are its acceptor
threads that received an A-ASSOCIATE-RQ, the fast path's (`dicom_bridge.fast_association`) are held
here from `enter` to `leave`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType

log = logging.getLogger(__name__)

_TRANSIENT, _PRESENTATION, _LOCAL_LIMIT = 0x02, 0x03, 0x02


class Admission:
    def __init__(self, max_associations: int, max_per_peer: int) -> None:
        self._max, self._per_peer = max_associations, max_per_peer
        self._fast: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_REQUESTED, self.on_requested)]

    def on_requested(self, event: Event) -> None:
        """Refuse the association over a limit; this one is already among those counted."""
        assoc = event.assoc
        peer = assoc.requestor.address
        with self._lock:
            refusal = self._refusal(assoc.ae, peer, extra=0)
        if refusal is None:
            return
        _log_refusal(peer, _calling_ae(assoc), *refusal)
        assoc.acse.send_reject(*REJECTION)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def enter(self, ae: AE, peer: str, calling_ae: str | None) -> bool:
        """A fast-path association asks in: counted (True) until `leave`, or refused (False, and
        then answered with `REJECTION`)."""
        with self._lock:
            refusal = self._refusal(ae, peer, extra=1)
            if refusal is None:
                self._fast[peer] += 1
                return True
        _log_refusal(peer, calling_ae, *refusal)
        return False

    def leave(self, peer: str) -> None:
        with self._lock:
            self._fast[peer] -= 1
            if self._fast[peer] <= 0:
                del self._fast[peer]

    def _refusal(self, ae: AE, peer: str, *, extra: int) -> tuple[str, int] | None:
        requested = [a for a in ae.active_associations if _requested(a)]
        total = len(requested) + self._fast.total() + extra
        from_peer = sum(1 for a in requested if a.requestor.address == peer) + self._fast[peer] + extra
        if total > self._max:
            return "max_associations", total
        if from_peer > self._per_peer:
            return "max_associations_per_peer", from_peer
        return None


REJECTION = (_TRANSIENT, _PRESENTATION, _LOCAL_LIMIT)  # result, source, reason of A-ASSOCIATE-RJ


def _log_refusal(peer: str, calling_ae: str | None, reason: str, count: int) -> None:
    log.warning(
        "association.refused",
        extra={"peer": peer, "calling_ae": calling_ae, "reason": reason, "count": count},
    )


def _requested(assoc: Association) -> bool:
    """An acceptor whose peer sent an A-ASSOCIATE-RQ and that is not finished."""
    return (
        assoc.is_acceptor
        and assoc.requestor.primitive is not None
        and not (assoc.is_rejected or assoc.is_aborted or assoc.is_released)
    )


def _calling_ae(assoc: Association) -> str | None:
    rq = assoc.requestor.primitive  # received; pynetdicom copies its titles only when negotiating
    return rq.calling_ae_title if rq is not None else None
