"""Query/Retrieve C-FIND SCP, Patient Root and Study Root (PS3.4 C.4.1): identifier -> plan
(`mapping.dicom.query_keys`) -> the query use case -> one pending response per match.

pynetdicom has one EVT_C_FIND handler per AE, whatever the SOP class: the C-FINDs of other
SOP classes (the Modality Worklist) go to the handler `others` names for theirs.

Statuses as every C-FIND of ours answers them (`find_responses`): one pending response per
match.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import cast

from pynetdicom import evt
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.events import Event, EventHandlerType

from dicom_bridge.ae import QUERY_FIND
from dicom_bridge.find_responses import (
    IDENTIFIER_MISMATCH,
    UNABLE_TO_PROCESS,
    Response,
    answer,
    facts_of,
    read_query,
)
from dicom_bridge.statuses import failure
from mapping.dicom.query_keys import BadIdentifier, Model, plan_from_identifier, response_identifier
from storage.usecases.query import Query

log = logging.getLogger(__name__)

MODELS: dict[str, Model] = dict(zip(QUERY_FIND, ("patient", "study"), strict=True))

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
        other = self._others.get(str(request.AffectedSOPClassUID))
        if other is not None:
            yield from other(event)
            return
        facts = facts_of(event)
        model = MODELS.get(str(request.AffectedSOPClassUID))
        if model is None:  # pynetdicom routes only the contexts we accept: not reached
            yield failure(IDENTIFIER_MISMATCH, "not a query model of this SCP"), None
            return
        plan, refusal = read_query(
            partial(plan_from_identifier, model), event, BadIdentifier, "c_find", facts
        )
        if plan is None:
            yield refusal or (failure(UNABLE_TO_PROCESS, "no query"), None)
            return
        facts |= {"model": model, "level": plan.level}
        responses = (
            response_identifier(
                plan, record, stored_charset=record.get("charset") or "", retrieve_ae=self._ae_title
            )
            for record in self._query.find(plan)
        )
        yield from answer(responses, event, "c_find", facts, started)
