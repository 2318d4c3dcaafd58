"""Worklist: the Modality Worklist (PS3.4 K.6) answered from the orders, a page at a time.

SQL narrows (`storage.orders.worklist`), `mapping.dicom.worklist` builds each step's item and
decides whether it matches; each page is read in a read-only transaction of its own, so a
caller that stops iterating (a C-CANCEL) stops the reading.

Items, and the responses made of them for the keys a query returns, are remembered by what they
are a function of: modalities ask the same morning query again and again. A remembered response
is a `FrozenDataset`, which also remembers how it was encoded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from functools import partial
from typing import Generic, TypeVar

from pydicom import Dataset

from mapping.dicom.frozen import FrozenDataset
from mapping.dicom.worklist import WorklistPatient, WorklistQuery, worklist_item
from mapping.order.facts import procedure_from_json, step_from_json
from storage.db import Database
from storage.orders import worklist as orders_worklist


class Worklist:
    def __init__(self, db: Database, *, page_size: int = 200, remembered: int = 20_000) -> None:
        self._db, self._page_size = db, page_size
        # items by what they are a function of (Candidate.key); responses by item and keys asked
        self._items: _Remembered[Dataset] = _Remembered(remembered)
        self._responses: _Remembered[FrozenDataset] = _Remembered(remembered)

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
                item = self._items.get(candidate.key, partial(_item, candidate))
                if query.matches(item):
                    made = partial(_response, query, item)
                    responses.append(self._responses.get((candidate.key, query.requested), made))
            yield from responses
            if len(candidates) < self._page_size:
                return
            after = candidates[-1].pk


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


def _response(query: WorklistQuery, item: Dataset) -> FrozenDataset:
    return FrozenDataset(query.response(item))


T = TypeVar("T")


class _Remembered(Generic[T]):
    """The last `capacity` values made, by key (what they are a function of; never changed once
    made: callers only read them)."""

    def __init__(self, capacity: int) -> None:
        self._values: OrderedDict[Hashable, T] = OrderedDict()
        self._capacity, self._lock = capacity, threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            known = self._values.get(key)
            if known is not None:
                self._values.move_to_end(key)
                return known
        value = make()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._capacity:
                self._values.popitem(last=False)
        return value
