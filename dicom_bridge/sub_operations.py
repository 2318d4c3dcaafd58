"""What C-GET and C-MOVE share (PS3.4 C.4.2, C.4.3): the instances a retrieve identifier names,
and the C-STORE sub-operations that send them.

Each instance goes in its stored transfer syntax when the association carrying it accepted that
for its SOP class; else, when it accepted an uncompressed one, decompressed (pydicom with
pylibjpeg) or re-encoded; never in a syntax the association did not accept. An instance that
cannot be given so is a failed sub-operation. pynetdicom counts the sub-operations and sends the
final status (0x0000 all sent, 0xB000 some failed, 0xA702 none sent); a C-CANCEL, checked before
each sub-operation, answers 0xFE00 with the counts so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from pydicom import Dataset
from pydicom.uid import UID
from pynetdicom.association import Association
from pynetdicom.events import Event

from mapping.dicom.query_keys import BadIdentifier, Model, retrieve_plan
from storage.errors import DomainError
from storage.usecases.query import Match, Query
from storage.usecases.retrieve import CannotTranscode, Retrieve

log = logging.getLogger(__name__)

PENDING, CANCEL = 0xFF00, 0xFE00
OUT_OF_RESOURCES, IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS = 0xA701, 0xA900, 0xC000
MAX_SUBOPERATIONS = 65535  # Number of ... Suboperations are US (PS3.4 C.4.3.1.3)
UNSENDABLE: Any = "unsendable"  # yielded for an instance we cannot send (None would be skipped)

Refusal = tuple[int, str]  # a failure status and its Error Comment


def instances_named(query: Query, model: Model, identifier: Dataset) -> tuple[list[Match], Refusal | None]:
    """The instances the identifier's unique keys name, or why the retrieve is refused."""
    try:
        instances = list(query.find(retrieve_plan(model, identifier)))
    except BadIdentifier as exc:
        return [], (IDENTIFIER_MISMATCH, str(exc))
    except DomainError as exc:
        return [], (OUT_OF_RESOURCES, str(exc))
    if len(instances) > MAX_SUBOPERATIONS:
        return [], (UNABLE_TO_PROCESS, f"more than {MAX_SUBOPERATIONS} instances: ask for less")
    return instances, None


def sub_operations(
    event: Event,
    retrieve: Retrieve,
    instances: list[Match],
    *,
    carrier: Callable[[], Association | None],
    facts: dict[str, object],
    name: str,
) -> Iterator[tuple[int, Any]]:
    """The (status, data set) pairs pynetdicom turns into C-STOREs on the association `carrier`
    gives (the requestor's for C-GET, the one opened to the destination for C-MOVE)."""
    started = time.perf_counter()
    sent = failed = 0
    for record in instances:
        if event.is_cancelled:
            log.info(f"{name}.cancelled", extra=facts | {"sent": sent, "failed": failed})
            yield CANCEL, None
            return
        ds = sendable(retrieve, carrier(), record)
        if ds is None:
            failed += 1
            yield PENDING, UNSENDABLE  # not a Dataset: pynetdicom counts a failed sub-operation
        else:
            sent += 1
            yield PENDING, ds
    ms = round((time.perf_counter() - started) * 1000, 2)
    log.info(f"{name}.done", extra=facts | {"sent": sent, "failed": failed, "ms": ms})


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
