"""What C-GET and C-MOVE share (PS3.4 C.4.2, C.4.3): the instances a retrieve identifier names,
and the C-STORE sub-operations that send them, on pynetdicom's association path and on ours
(`fast_get`) alike.

Which accepted presentation context an instance goes on, and in what transfer syntax, is
`sending`, for every sender (C-GET on both paths, C-MOVE's association to its destination): its
stored syntax when a context for its SOP class accepted it; else an uncompressed little endian
one, decoded (pydicom with pylibjpeg) or re-encoded; else a lossless compressed one we encode
(RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless: `mapping.dicom.transcode`); never in a syntax
the association did not accept, never lossy. An instance that cannot be given so (no such
context, its file gone, pixel data the decoder or encoder refuses) is a failed sub-operation.
pynetdicom counts the sub-operations and sends the final status (0x0000 all sent, 0xB000 some
failed, 0xA702 none sent); a C-CANCEL, checked before each sub-operation, answers 0xFE00 with the
counts so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pynetdicom.association import Association
from pynetdicom.events import Event

from mapping.dicom.query_keys import BadIdentifier, Model, retrieve_plan
from storage.errors import DomainError
from storage.usecases.query import Match, Query
from storage.usecases.retrieve import CannotTranscode, Retrieve, Way, way

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
    """The instance as `assoc` can carry it (its file meta naming the syntax `sending` chose, so
    that pynetdicom takes that context), or None (no association, no way to a context it
    accepted, its file gone or undecodable)."""
    if assoc is None:
        return None
    contexts = [
        (cx.context_id, str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
        for cx in assoc.accepted_contexts
        if cx.as_scu
    ]
    choice = sending(record, contexts)
    return None if choice is None else prepared(retrieve, record, choice.syntax)


@dataclass(frozen=True)
class Sending:
    """The accepted presentation context an instance goes on, its syntax, and how it gets there."""

    context_id: int
    syntax: str
    way: Way


_PREFERENCE = (Way.AS_STORED, Way.DECODE, Way.ENCODE)


def sending(record: Match, contexts: Iterable[tuple[int | None, str, str]]) -> Sending | None:
    """The context to send `record` on, of `contexts` (id, abstract syntax, transfer syntax)
    accepted with us as the sender: one that accepted its stored syntax, else one of an
    uncompressed little endian syntax (decoded or re-encoded), else one of a lossless compressed
    syntax we encode; the lowest context id (the requestor's order) among equals. None: there is
    no way to any."""
    usable = sorted(
        (cid, syntax)
        for cid, abstract, syntax in contexts
        if cid is not None and abstract == record["sop_class_uid"]
    )
    ways = [(cid, syntax, way(str(record["transfer_syntax"]), syntax)) for cid, syntax in usable]
    for wanted in _PREFERENCE:
        for cid, syntax, how in ways:
            if how is wanted:
                return Sending(cid, syntax, how)
    return None


def prepared(retrieve: Retrieve, record: Match, syntax: str) -> Dataset | None:
    """The instance read whole and converted into `syntax`; None (logged) when its file is gone
    or it cannot be given so."""
    try:
        return retrieve.dataset(str(record["blob_key"]), syntax)
    except (DomainError, CannotTranscode) as exc:
        why = {"sop_instance_uid": record["sop_uid"], "error": type(exc).__name__}
        log.warning("retrieve.instance_failed", extra=why)
        return None
