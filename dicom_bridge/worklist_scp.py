"""Modality Worklist C-FIND SCP (PS3.4 K.4, K.6; IHE RAD-5): identifier -> a worklist query
(`mapping.dicom.worklist`) -> the worklist use case -> one pending response per scheduled step.

pynetdicom hands every C-FIND, of whatever SOP class, to the one EVT_C_FIND handler: the
Query/Retrieve SCP (`find_scp`) passes the Modality Worklist ones to `on_c_find` here.

Statuses (PS3.4 K.4.1.1.4, C.4.1.1.4): 0xFF00 per item, 0x0000 at the end, 0xFE00 when the peer's
C-CANCEL arrived (checked before every response), 0xA900 for an identifier we cannot answer (a
value its VR cannot take), 0xA700 when the database is unavailable, 0xC000 for an identifier that
cannot be decoded and for our own failures. No PHI in the logs: counts and AE titles only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from pydicom import Dataset
from pynetdicom.events import Event

from dicom_bridge.statuses import failure
from mapping.dicom.worklist import BadIdentifier, worklist_query
from storage.errors import DomainError
from storage.usecases.worklist import Worklist

log = logging.getLogger(__name__)

PENDING, SUCCESS, CANCEL = 0xFF00, 0x0000, 0xFE00
OUT_OF_RESOURCES, IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS = 0xA700, 0xA900, 0xC000

Response = tuple[int | Dataset, Dataset | None]


class WorklistScp:
    def __init__(self, worklist: Worklist) -> None:
        self._worklist = worklist

    def on_c_find(self, event: Event) -> Iterator[Response]:
        started = time.perf_counter()
        facts: dict[str, object] = {
            "calling_ae": event.assoc.requestor.ae_title,
            "peer": event.assoc.requestor.address,
            "model": "worklist",
        }
        try:
            query = worklist_query(event.identifier)
        except BadIdentifier as exc:
            log.warning("mwl_find.refused", extra=facts | {"status": IDENTIFIER_MISMATCH, "reason": str(exc)})
            yield failure(IDENTIFIER_MISMATCH, str(exc)), None
            return
        except Exception as exc:
            log.warning(
                "mwl_find.refused", extra=facts | {"status": UNABLE_TO_PROCESS, "error": type(exc).__name__}
            )
            yield failure(UNABLE_TO_PROCESS, "the identifier cannot be decoded"), None
            return
        count = 0
        try:
            for response in self._worklist.find(query):
                if event.is_cancelled:
                    log.info("mwl_find.cancelled", extra=facts | {"matches": count})
                    yield CANCEL, None
                    return
                yield PENDING, response
                count += 1
        except DomainError as exc:
            log.warning(
                "mwl_find.failed", extra=facts | {"status": OUT_OF_RESOURCES, "error": type(exc).__name__}
            )
            yield failure(OUT_OF_RESOURCES, str(exc)), None
            return
        except Exception:
            log.exception("mwl_find.failed", extra=facts | {"status": UNABLE_TO_PROCESS})
            yield failure(UNABLE_TO_PROCESS, "internal error"), None
            return
        if event.is_cancelled:
            yield CANCEL, None
            return
        log.info(
            "mwl_find.done",
            extra=facts | {"matches": count, "ms": round((time.perf_counter() - started) * 1000, 2)},
        )
        yield SUCCESS, None
