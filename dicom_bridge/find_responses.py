"""How every C-FIND SCP of ours answers (PS3.4 C.4.1.1.4, K.4.1.1.4): the Query/Retrieve one
(`find_scp`) and the Modality Worklist one (`worklist_scp`) differ only in the identifier they
read and the use case they ask.

A request reaches them as a `FindRequest`, whichever path received it: pynetdicom's
(`from_event`) or the facade's own (`dicom_bridge.fast_association`).

0xFF00 per match, 0x0000 at the end, 0xFE00 when the peer's C-CANCEL arrived (checked before
every response), 0xA900 for an identifier we cannot answer (a value its VR cannot take, a level
the model lacks), 0xC000 for one that cannot be decoded and for our own failures, 0xA700 when the
database is unavailable. No PHI in the logs: counts, statuses and AE titles only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast, runtime_checkable

from pydicom import Dataset
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.events import Event

from dicom_bridge.statuses import failure
from mapping.dicom.find_identifier import Identifier
from storage.errors import DomainError

log = logging.getLogger(__name__)

PENDING, SUCCESS, CANCEL = 0xFF00, 0x0000, 0xFE00
OUT_OF_RESOURCES, IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS = 0xA700, 0xA900, 0xC000

Response = tuple[int | Dataset, Dataset | Identifier | None]  # a match: a data set, or written when sent
Q = TypeVar("Q")


@dataclass(frozen=True)
class FindRequest:
    """One C-FIND request, as the SCPs see it."""

    sop_class_uid: str
    calling_ae: str
    peer: str
    identifier: Callable[[], Dataset]  # decoded when asked (it may fail: 0xC000)
    is_cancelled: Callable[[], bool]  # has the peer's C-CANCEL of this request arrived?


Responses = Generator[Response, None, None]
FindHandler = Callable[[FindRequest], Iterator[Response]]


@runtime_checkable
class FindResponder(Protocol):
    """What answers C-FINDs (`find_scp.FindScp`), to whichever path received them."""

    def answers(self, sop_class_uid: str) -> bool: ...

    def respond(self, request: FindRequest) -> Responses: ...


def from_event(event: Event) -> FindRequest:
    """pynetdicom's EVT_C_FIND event as a `FindRequest`."""
    request = cast(C_FIND, event.request)
    return FindRequest(
        sop_class_uid=str(request.AffectedSOPClassUID),
        calling_ae=str(event.assoc.requestor.ae_title),
        peer=str(event.assoc.requestor.address),
        identifier=lambda: event.identifier,
        is_cancelled=lambda: event.is_cancelled,
    )


def facts_of(request: FindRequest) -> dict[str, object]:
    return {"calling_ae": request.calling_ae, "peer": request.peer}


def read_query(
    read: Callable[[Dataset], Q],
    request: FindRequest,
    bad: type[Exception],
    name: str,
    facts: dict[str, object],
) -> tuple[Q | None, Response | None]:
    """The query the identifier asks, or (None and) the failure response that refuses it (`bad`:
    the exception of an identifier we understand but cannot answer, 0xA900)."""
    try:
        return read(request.identifier()), None
    except bad as exc:
        log.warning(f"{name}.refused", extra=facts | {"status": IDENTIFIER_MISMATCH, "reason": str(exc)})
        return None, (failure(IDENTIFIER_MISMATCH, str(exc)), None)
    except Exception as exc:
        log.warning(
            f"{name}.refused", extra=facts | {"status": UNABLE_TO_PROCESS, "error": type(exc).__name__}
        )
        return None, (failure(UNABLE_TO_PROCESS, "the identifier cannot be decoded"), None)


def answer(
    responses: Iterator[Dataset] | Iterator[Identifier],
    request: FindRequest,
    name: str,
    facts: dict[str, object],
    started: float,
) -> Iterator[Response]:
    """The pending responses, then the final status; what the use case raises becomes one."""
    count = 0
    try:
        for response in responses:
            if request.is_cancelled():
                log.info(f"{name}.cancelled", extra=facts | {"matches": count})
                yield CANCEL, None
                return
            yield PENDING, response
            count += 1
    except DomainError as exc:
        log.warning(f"{name}.failed", extra=facts | {"status": OUT_OF_RESOURCES, "error": type(exc).__name__})
        yield failure(OUT_OF_RESOURCES, str(exc)), None
        return
    except Exception:
        log.exception(f"{name}.failed", extra=facts | {"status": UNABLE_TO_PROCESS})
        yield failure(UNABLE_TO_PROCESS, "internal error"), None
        return
    if request.is_cancelled():
        yield CANCEL, None
        return
    log.info(
        f"{name}.done",
        extra=facts | {"matches": count, "ms": round((time.perf_counter() - started) * 1000, 2)},
    )
    yield SUCCESS, None
