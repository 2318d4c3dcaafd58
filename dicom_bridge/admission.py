"""Who may associate: limits on associations in total and per peer address (PS3.8 7.1.1.9).

pynetdicom counts every accepted TCP connection against its limit, including connections that
never send an A-ASSOCIATE-RQ, so a handful of idle sockets locked real senders out until its
ACSE timeout closed them. Here only connections that asked to associate count; those that never
ask are closed by the ARTIM timer (`AeConfig.acse_timeout`). Refusals are A-ASSOCIATE-RJ,
rejected-transient, service-provider (presentation), local-limit-exceeded: the peer may retry.
"""

from __future__ import annotations

import logging

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType

log = logging.getLogger(__name__)

_TRANSIENT, _PRESENTATION, _LOCAL_LIMIT = 0x02, 0x03, 0x02


class Admission:
    def __init__(self, max_associations: int, max_per_peer: int) -> None:
        self._max, self._per_peer = max_associations, max_per_peer

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_REQUESTED, self.on_requested)]

    def on_requested(self, event: Event) -> None:
        """Refuse the association over a limit; this one is already among those counted."""
        assoc = event.assoc
        peer = assoc.requestor.address
        requested = [a for a in assoc.ae.active_associations if _requested(a)]
        from_peer = sum(1 for a in requested if a.requestor.address == peer)
        if len(requested) > self._max:
            reason = "max_associations"
        elif from_peer > self._per_peer:
            reason = "max_associations_per_peer"
        else:
            return
        log.warning(
            "association.refused",
            extra={
                "peer": peer,
                "calling_ae": _calling_ae(assoc),
                "reason": reason,
                "count": len(requested) if reason == "max_associations" else from_peer,
            },
        )
        assoc.acse.send_reject(_TRANSIENT, _PRESENTATION, _LOCAL_LIMIT)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()


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
