"""Query/Retrieve C-GET SCP, Patient Root and Study Root (PS3.4 C.4.3): the identifier's unique
keys -> the instances (the query use case) -> C-STORE sub-operations on the same association,
as `dicom_bridge.sub_operations` sends them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.dimse_primitives import C_GET
from pynetdicom.events import Event, EventHandlerType

from dicom_bridge.statuses import failure
from dicom_bridge.sub_operations import instances_named, sub_operations
from mapping.dicom.query_keys import Model
from storage.usecases.query import Query
from storage.usecases.retrieve import Retrieve

log = logging.getLogger(__name__)

GET_MODELS: dict[str, Model] = {
    "1.2.840.10008.5.1.4.1.2.1.3": "patient",  # Patient Root Query/Retrieve Information Model - GET
    "1.2.840.10008.5.1.4.1.2.2.3": "study",  # Study Root Query/Retrieve Information Model - GET
}


class GetScp:
    """pynetdicom's EVT_C_GET handler; the facade's own association path (`fast_get`) asks it for
    `query` and `retrieve` and sends the sub-operations itself."""

    def __init__(self, query: Query, retrieve: Retrieve) -> None:
        self.query, self.retrieve = query, retrieve

    def answers(self, sop_class_uid: str) -> bool:
        return sop_class_uid in GET_MODELS

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_C_GET, self.on_c_get)]

    def on_c_get(self, event: Event) -> Iterator[Any]:
        request = cast(C_GET, event.request)
        requestor = event.assoc.requestor
        facts: dict[str, object] = {"calling_ae": requestor.ae_title, "peer": requestor.address}
        model = GET_MODELS.get(str(request.AffectedSOPClassUID), "study")
        instances, refusal = instances_named(self.query, model, event.identifier)
        if refusal is not None:
            log.warning("c_get.refused", extra=facts | {"status": refusal[0], "reason": refusal[1]})
            yield 1
            yield failure(*refusal), None
            return
        yield len(instances)
        yield from sub_operations(
            event, self.retrieve, instances, carrier=lambda: event.assoc, facts=facts, name="c_get"
        )
