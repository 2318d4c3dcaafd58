"""Query/Retrieve C-FIND SCP, Patient Root and Study Root (PS3.4 C.4.1): identifier -> plan
(`mapping.dicom.query_keys`) -> the query use case -> one pending response per match.

pynetdicom has one EVT_C_FIND handler per AE, whatever the SOP class: the C-FINDs of other
SOP classes (the Modality Worklist) go to the handler `others` names for theirs. The facade's own
association path (`dicom_bridge.fast_association`) asks `respond` directly.

Statuses as every C-FIND of ours answers them (`find_responses`): one pending response per
match.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from functools import partial

from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.events import Event, EventHandlerType

from dicom_bridge.ae import QUERY_FIND
from dicom_bridge.find_responses import (
    IDENTIFIER_MISMATCH,
    UNABLE_TO_PROCESS,
    FindHandler,
    FindRequest,
    Responses,
    answer,
    facts_of,
    from_event,
    read_query,
)
from dicom_bridge.statuses import failure
from mapping.dicom.find_identifier import FindIdentifiers, Identifier
from mapping.dicom.query_keys import BadIdentifier, Model, plan_from_identifier
from storage.usecases.query import Query

log = logging.getLogger(__name__)

MODELS: dict[str, Model] = dict(zip(QUERY_FIND, ("patient", "study"), strict=True))


class FindScp:
    def __init__(
        self, query: Query, ae_title: str, *, others: Mapping[str, FindHandler] | None = None
    ) -> None:
        self._query, self._ae_title = query, ae_title
        self._others = dict(others or {})

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_C_FIND, self.on_c_find)]

    def answers(self, sop_class_uid: str) -> bool:
        """Is there a C-FIND of this SOP class that `respond` answers?"""
        return sop_class_uid in MODELS or sop_class_uid in self._others

    def on_c_find(self, event: Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """pynetdicom's EVT_C_FIND handler (it is given data sets)."""
        for status, match in self.respond(from_event(event)):
            yield status, match.dataset() if isinstance(match, Identifier) else match

    def respond(self, request: FindRequest) -> Responses:
        """The responses to one C-FIND, of whatever SOP class `answers`."""
        started = time.perf_counter()
        other = self._others.get(request.sop_class_uid)
        if other is not None:
            yield from other(request)
            return
        facts = facts_of(request)
        model = MODELS.get(request.sop_class_uid)
        if model is None:  # pynetdicom routes only the contexts we accept: not reached
            yield failure(IDENTIFIER_MISMATCH, "not a query model of this SCP"), None
            return
        plan, refusal = read_query(
            partial(plan_from_identifier, model), request, BadIdentifier, "c_find", facts
        )
        if plan is None:
            yield refusal or (failure(UNABLE_TO_PROCESS, "no query"), None)
            return
        facts |= {"model": model, "query_level": plan.level}
        identifiers = FindIdentifiers(plan, retrieve_ae=self._ae_title)
        responses = (Identifier(identifiers, record) for record in self._query.find(plan))
        yield from answer(responses, request, "c_find", facts, started)
