"""Query/Retrieve C-FIND SCP, Patient Root and Study Root (PS3.4 C.4.1): identifier -> plan
(`mapping.dicom.query_keys`) -> the query use case -> one pending response per match.

pynetdicom has one EVT_C_FIND handler per AE, whatever the SOP class: the C-FINDs of other
SOP classes (the Modality Worklist) go to the handler `others` names for theirs.

Statuses (PS3.4 C.4.1.1.4): 0xFF00 per match, 0x0000 at the end, 0xFE00 when the peer's
C-CANCEL arrived (checked before every response), 0xA900 for an identifier we cannot answer
(a level the model does not have, a value its VR cannot take), 0xA700 when the database is
unavailable, 0xC000 for an identifier that cannot be decoded and for our own failures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import cast

from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.events import Event, EventHandlerType

from dicom_bridge.ae import QUERY_FIND
from dicom_bridge.statuses import failure
from mapping.dicom.query_keys import BadIdentifier, Model, plan_from_identifier, response_identifier
from storage.errors import DomainError
from storage.usecases.query import Query

log = logging.getLogger(__name__)

PENDING, SUCCESS, CANCEL = 0xFF00, 0x0000, 0xFE00
OUT_OF_RESOURCES, IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS = 0xA700, 0xA900, 0xC000
MODELS: dict[str, Model] = dict(zip(QUERY_FIND, ("patient", "study"), strict=True))

Response = tuple[int | Dataset, Dataset | None]
FindHandler = Callable[[Event], Iterator[Response]]


class FindScp:
    def __init__(
        self, query: Query, ae_title: str, *, others: Mapping[str, FindHandler] | None = None
    ) -> None:
        self._query, self._ae_title = query, ae_title
        self._others = dict(others or {})

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_C_FIND, self.on_c_find)]

    def on_c_find(self, event: Event) -> Iterator[Response]:
        started = time.perf_counter()
        request = cast(C_FIND, event.request)
        facts: dict[str, object] = {
            "calling_ae": event.assoc.requestor.ae_title,
            "peer": event.assoc.requestor.address,
        }
        other = self._others.get(str(request.AffectedSOPClassUID))
        if other is not None:
            yield from other(event)
            return
        model = MODELS.get(str(request.AffectedSOPClassUID))
        if model is None:  # pynetdicom routes only the contexts we accept: not reached
            yield failure(IDENTIFIER_MISMATCH, "not a query model of this SCP"), None
            return
        try:
            identifier = event.identifier
            plan = plan_from_identifier(model, identifier)
        except BadIdentifier as exc:
            log.warning("c_find.refused", extra=facts | {"status": IDENTIFIER_MISMATCH, "reason": str(exc)})
            yield failure(IDENTIFIER_MISMATCH, str(exc)), None
            return
        except Exception as exc:
            log.warning(
                "c_find.refused", extra=facts | {"status": UNABLE_TO_PROCESS, "error": type(exc).__name__}
            )
            yield failure(UNABLE_TO_PROCESS, "the identifier cannot be decoded"), None
            return
        facts |= {"model": model, "level": plan.level}
        count = 0
        try:
            for record in self._query.find(plan):
                if event.is_cancelled:
                    log.info("c_find.cancelled", extra=facts | {"matches": count})
                    yield CANCEL, None
                    return
                yield (
                    PENDING,
                    response_identifier(
                        plan, record, stored_charset=record.get("charset") or "", retrieve_ae=self._ae_title
                    ),
                )
                count += 1
        except DomainError as exc:
            log.warning(
                "c_find.failed", extra=facts | {"status": OUT_OF_RESOURCES, "error": type(exc).__name__}
            )
            yield failure(OUT_OF_RESOURCES, str(exc)), None
            return
        except Exception:
            log.exception("c_find.failed", extra=facts | {"status": UNABLE_TO_PROCESS})
            yield failure(UNABLE_TO_PROCESS, "internal error"), None
            return
        if event.is_cancelled:
            yield CANCEL, None
            return
        log.info(
            "c_find.done",
            extra=facts | {"matches": count, "ms": round((time.perf_counter() - started) * 1000, 2)},
        )
        yield SUCCESS, None
