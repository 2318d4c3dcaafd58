"""Query/Retrieve C-MOVE SCP, Patient Root and Study Root (PS3.4 C.4.2): the identifier's unique
keys -> the instances (the query use case) -> C-STORE sub-operations on a new association to the
Move Destination, which must be registered (`facade ae add`): an unknown one is 0xA801.

For each SOP class to send we propose one context of the uncompressed syntaxes, one per stored
transfer syntax (so a destination can take a compressed instance as stored), then one per
lossless syntax we encode into (RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless: for a
destination that takes only those); each instance goes as `sub_operations.sending` chooses, as
for C-GET: as stored, else decoded or re-encoded into an uncompressed syntax, else encoded
losslessly, never in one the destination did not accept; one that cannot be is a failed
sub-operation. pynetdicom associates, counts the sub-operations and sends the final status
(0x0000, 0xB000 some failed, 0xA702 none sent, 0xA801 the destination cannot be reached); a
C-CANCEL answers 0xFE00 with the counts so far.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

from pynetdicom import build_context, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.presentation import PresentationContext

from dicom_bridge.ae import UNCOMPRESSED_LE, no_delay, sending_contexts
from dicom_bridge.statuses import failure
from dicom_bridge.sub_operations import instances_named, sub_operations
from mapping.dicom.query_keys import Model
from mapping.dicom.transcode import LOSSLESS, can_compress
from storage.usecases.peers import Peers
from storage.usecases.query import Match, Query
from storage.usecases.retrieve import Retrieve

log = logging.getLogger(__name__)

MOVE_MODELS: dict[str, Model] = {
    "1.2.840.10008.5.1.4.1.2.1.2": "patient",  # Patient Root Query/Retrieve Information Model - MOVE
    "1.2.840.10008.5.1.4.1.2.2.2": "study",  # Study Root Query/Retrieve Information Model - MOVE
}


class MoveScp:
    def __init__(self, query: Query, retrieve: Retrieve, peers: Peers) -> None:
        self._query, self._retrieve, self._peers = query, retrieve, peers

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_C_MOVE, self.on_c_move)]

    def on_c_move(self, event: Event) -> Iterator[Any]:
        request = cast(C_MOVE, event.request)
        requestor = event.assoc.requestor
        facts: dict[str, object] = {"calling_ae": requestor.ae_title, "peer": requestor.address}
        name = str(request.MoveDestination or "").strip()
        destination = self._peers.get(name) if name else None
        if destination is None:
            log.warning("c_move.unknown_destination", extra=facts | {"called_ae": name, "status": 0xA801})
            yield None, None  # pynetdicom answers 0xA801, Move Destination unknown
            return
        facts["called_ae"] = destination.ae_title
        model = MOVE_MODELS.get(str(request.AffectedSOPClassUID), "study")
        instances, refusal = instances_named(self._query, model, event.identifier)
        accepted: list[Association] = []

        def on_accepted(sub: Event) -> None:
            accepted.append(sub.assoc)

        contexts = proposed_contexts(instances) if refusal is None else [build_context(_VERIFICATION)]
        handlers = [(evt.EVT_ACCEPTED, on_accepted), (evt.EVT_CONN_OPEN, no_delay)]
        options = {"contexts": contexts, "evt_handlers": handlers}
        # pynetdicom associates with the destination after the second yield, and has no earlier
        # place for a refusal: for one we propose Verification only (every storage SCP we know
        # accepts it), then answer the failure on the requestor's association
        yield destination.host, destination.port, options
        if refusal is not None:
            log.warning("c_move.refused", extra=facts | {"status": refusal[0], "reason": refusal[1]})
            yield 1
            yield failure(*refusal), None
            return
        yield len(instances)
        carrier = lambda: accepted[0] if accepted else None  # noqa: E731 - read once associated
        yield from sub_operations(
            event, self._retrieve, instances, carrier=carrier, facts=facts, name="c_move"
        )


_VERIFICATION = "1.2.840.10008.1.1"


def proposed_contexts(instances: list[Match]) -> list[PresentationContext]:
    """For each SOP class to send: the uncompressed syntaxes, each syntax the instances are
    stored in in a context of its own, then each lossless syntax we encode into
    (`sending_contexts`); Verification when there is nothing."""
    by_class: dict[str, set[str]] = {}
    for record in instances:
        by_class.setdefault(record["sop_class_uid"], set()).add(record["transfer_syntax"])
    syntaxes = {sop_class: sorted(by_class[sop_class]) for sop_class in sorted(by_class)}
    encoded = [ts for ts in LOSSLESS if can_compress(ts)]
    return sending_contexts(syntaxes, UNCOMPRESSED_LE, then=encoded) or [build_context(_VERIFICATION)]
