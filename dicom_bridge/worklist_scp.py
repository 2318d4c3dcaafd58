"""Modality Worklist C-FIND SCP (PS3.4 K.4, K.6; IHE RAD-5): identifier -> a worklist query
(`mapping.dicom.worklist`) -> the worklist use case -> one pending response per scheduled step.

pynetdicom hands every C-FIND, of whatever SOP class, to the one EVT_C_FIND handler: the
Query/Retrieve SCP (`find_scp`) passes the Modality Worklist ones to `respond` here.

Statuses as every C-FIND of ours answers them (`find_responses`): one pending response per
scheduled step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from dicom_bridge.find_responses import (
    UNABLE_TO_PROCESS,
    FindRequest,
    Response,
    answer,
    facts_of,
    read_query,
)
from dicom_bridge.statuses import failure
from mapping.dicom.worklist import BadIdentifier, worklist_query
from storage.usecases.worklist import Worklist


class WorklistScp:
    def __init__(self, worklist: Worklist, *, calling_ae_as_station: bool = False) -> None:
        """`calling_ae_as_station`: a query naming no Scheduled Station AE Title is answered with
        the calling AE title's steps (FACADE_WORKLIST_CALLING_AE_AS_STATION)."""
        self._worklist, self._calling_as_station = worklist, calling_ae_as_station

    def respond(self, request: FindRequest) -> Iterator[Response]:
        started = time.perf_counter()
        facts = facts_of(request) | {"model": "worklist"}
        query, refusal = read_query(worklist_query, request, BadIdentifier, "mwl_find", facts)
        if query is None:
            yield refusal or (failure(UNABLE_TO_PROCESS, "no query"), None)
            return
        calling = request.calling_ae.strip() if self._calling_as_station else None
        yield from answer(self._worklist.find(query, calling_ae=calling), request, "mwl_find", facts, started)
