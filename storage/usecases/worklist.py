"""Worklist: the Modality Worklist (PS3.4 K.6) answered from the orders, a page at a time.

SQL narrows (`storage.orders.worklist`), `mapping.dicom.worklist` builds each step's item and
decides whether it matches; each page is read in a read-only transaction of its own, so a
caller that stops iterating (a C-CANCEL) stops the reading.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator

from pydicom import Dataset

from mapping.dicom.worklist import WorklistPatient, WorklistQuery, worklist_item
from mapping.order.facts import procedure_from_json, step_from_json
from storage.db import Database
from storage.orders import worklist as orders_worklist


class Worklist:
    def __init__(self, db: Database, *, page_size: int = 200, remembered: int = 20_000) -> None:
        self._db, self._page_size = db, page_size
        # built items by what they are a function of (Candidate.key): modalities ask the same
        # morning query again and again, and building an item costs more than matching it
        self._items: OrderedDict[tuple[object, ...], Dataset] = OrderedDict()
        self._capacity, self._lock = remembered, threading.Lock()

    def find(self, query: WorklistQuery, *, calling_ae: str | None = None) -> Iterator[Dataset]:
        """The response identifiers of the steps matching `query`, in the order they were stored.
        `calling_ae`: a query that names no Scheduled Station AE Title gets only the steps
        scheduled for this title (for modalities that ask without one and would otherwise see
        every station's worklist: dcm4chee's "Calling AET as Scheduled Station AET", Orthanc's
        FilterIssuerAet)."""
        station = calling_ae if calling_ae and query.names_no_station else None
        after = 0
        while True:
            with self._db.read() as session:
                candidates = orders_worklist.page(
                    session, query, after=after, size=self._page_size, station=station
                )
            responses = []
            for candidate in candidates:
                if station is not None and station not in candidate.step.get("station_aets", ()):
                    continue
                item = self._item(candidate)
                if query.matches(item):
                    responses.append(query.response(item))
            yield from responses
            if len(candidates) < self._page_size:
                return
            after = candidates[-1].pk

    def _item(self, candidate: orders_worklist.Candidate) -> Dataset:
        """The step's item, built once per version of what it shows (never changed once built:
        matching and responses only read it)."""
        key = candidate.key
        with self._lock:
            known = self._items.get(key)
            if known is not None:
                self._items.move_to_end(key)
                return known
        item = _item(candidate)
        with self._lock:
            self._items[key] = item
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return item


def _item(candidate: orders_worklist.Candidate) -> Dataset:
    step = step_from_json(candidate.step)
    procedure = procedure_from_json(candidate.procedure, (step,))
    patient = WorklistPatient(
        name=candidate.patient_name,
        patient_id=candidate.patient_id,
        birth_date=candidate.birth_date,
        sex=candidate.sex,
        issuer=procedure.patient_issuer,
    )
    return worklist_item(patient, procedure, step, candidate.status)
