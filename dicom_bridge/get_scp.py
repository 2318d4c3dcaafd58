"""Query/Retrieve C-GET SCP, Patient Root and Study Root (PS3.4 C.4.3): the identifier's unique
keys -> the instances (the query use case) -> C-STORE sub-operations on the same association.

Each instance goes in its stored transfer syntax when the peer accepted it for its SOP class;
else, when the peer accepted an uncompressed one, decompressed (pydicom with pylibjpeg) or
re-encoded; never in a syntax the association did not accept. An instance that cannot be given
so is a failed sub-operation. pynetdicom counts the sub-operations and sends the final status
(PS3.4 C.4.3.1.3: 0x0000 all sent, 0xB000 some failed, 0xA702 none sent); a C-CANCEL answers
0xFE00 with the counts so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, cast

from pydicom import Dataset
from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET
from pynetdicom.events import Event, EventHandlerType

from mapping.dicom.query_keys import BadIdentifier, Model, retrieve_plan
from storage.errors import DomainError
from storage.usecases.query import Match, Query
from storage.usecases.retrieve import CannotTranscode, Retrieve

log = logging.getLogger(__name__)

GET_MODELS: dict[str, Model] = {
    "1.2.840.10008.5.1.4.1.2.1.3": "patient",  # Patient Root Query/Retrieve Information Model - GET
    "1.2.840.10008.5.1.4.1.2.2.3": "study",  # Study Root Query/Retrieve Information Model - GET
}
PENDING, CANCEL = 0xFF00, 0xFE00
OUT_OF_RESOURCES, IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS = 0xA701, 0xA900, 0xC000
MAX_SUBOPERATIONS = 65535  # Number of ... Suboperations are US (PS3.4 C.4.3.1.3)
UNSENDABLE: Any = "unsendable"  # yielded for an instance we cannot send (None would be skipped)


class GetScp:
    def __init__(self, query: Query, retrieve: Retrieve) -> None:
        self._query, self._retrieve = query, retrieve

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_C_GET, self.on_c_get)]

    def on_c_get(self, event: Event) -> Iterator[int | tuple[int | Dataset, Any]]:
        started = time.perf_counter()
        request = cast(C_GET, event.request)
        facts: dict[str, object] = {
            "calling_ae": event.assoc.requestor.ae_title,
            "peer": event.assoc.requestor.address,
        }
        model = GET_MODELS.get(str(request.AffectedSOPClassUID), "study")
        try:
            plan = retrieve_plan(model, event.identifier)
            instances = list(self._query.find(plan))
        except BadIdentifier as exc:
            log.warning("c_get.refused", extra=facts | {"status": IDENTIFIER_MISMATCH, "reason": str(exc)})
            yield 1
            yield failure(IDENTIFIER_MISMATCH, str(exc)), None
            return
        except DomainError as exc:
            log.warning(
                "c_get.failed", extra=facts | {"status": OUT_OF_RESOURCES, "error": type(exc).__name__}
            )
            yield 1
            yield failure(OUT_OF_RESOURCES, str(exc)), None
            return
        if len(instances) > MAX_SUBOPERATIONS:
            yield 1
            yield failure(UNABLE_TO_PROCESS, f"more than {MAX_SUBOPERATIONS} instances: ask for less"), None
            return
        yield len(instances)
        sent = failed = 0
        for record in instances:
            if event.is_cancelled:
                log.info("c_get.cancelled", extra=facts | {"sent": sent, "failed": failed})
                yield CANCEL, None
                return
            ds = sendable(self._retrieve, event.assoc, record)
            if ds is None:
                failed += 1
                yield PENDING, UNSENDABLE  # not a Dataset: pynetdicom counts a failed sub-operation
            else:
                sent += 1
                yield PENDING, ds
        log.info(
            "c_get.done",
            extra=facts
            | {"instances": sent, "count": failed, "ms": round((time.perf_counter() - started) * 1000, 2)},
        )


def sendable(retrieve: Retrieve, assoc: Association | None, record: Match) -> Dataset | None:
    """The instance as `assoc` can carry it, or None (no association, no accepted context for its
    SOP class, no way from its transfer syntax to one accepted, its file gone or undecodable)."""
    if assoc is None:
        return None
    stored = UID(record["transfer_syntax"])
    accepted = [
        cx.transfer_syntax[0]
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == record["sop_class_uid"] and cx.as_scu
    ]
    uncompressed = any(not UID(t).is_compressed for t in accepted)
    as_stored = stored in accepted or (not stored.is_compressed and uncompressed)
    if not as_stored and not uncompressed:
        return None
    try:
        return retrieve.dataset(record["blob_key"], decompress=not as_stored)
    except (DomainError, CannotTranscode) as exc:
        why = {"sop_instance_uid": record["sop_uid"], "error": type(exc).__name__}
        log.warning("retrieve.instance_failed", extra=why)
        return None


def failure(status: int, comment: str) -> Dataset:
    """A failure status with an Error Comment (0000,0902): LO, at most 64 characters."""
    rsp = Dataset()
    rsp.Status = status
    rsp.ErrorComment = comment[:64]
    return rsp
