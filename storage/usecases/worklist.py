"""Worklist: the Modality Worklist (PS3.4 K.6) answered from the orders, a page at a time.

SQL narrows (`storage.orders.worklist`), `mapping.dicom.worklist` builds each step's item and
decides whether it matches; each page is read in a read-only transaction of its own, so a
caller that stops iterating (a C-CANCEL) stops the reading.

Items, and the responses made of them for the keys a query returns, are remembered by what they
are a function of: modalities ask the same morning query again and again. A remembered response
is a `FrozenDataset`, which also remembers how it was encoded.

They are also built ahead of queries (`warm`, run by a worker of each serving process): the
items of the open steps added since the last run, and their responses for the return keys
asked lately. A modality's first query of the day then finds them made (building an item is
most of what a first query cost: ~0.26 ms each, 50 of them for a station and day). A step that
changes afterwards (its order, status, patient) gets a new item when next asked, as before.

Building ahead yields to arriving orders (`warm(yield_to_orders=True)`, as `facade serve` runs
it): while new steps keep appearing, look after look (a RIS sending a burst of orders), runs are
put off, up to `MAX_DEFERRAL`, and a run under way stops between pages when steps appear
meanwhile, so that the serving processes do not
take the interpreter and the cores from the MLLP connection that writes those orders. Nothing is
lost by waiting: a query builds what it needs, as it did before warming existed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from functools import partial
from typing import Generic, TypeVar

from pydicom import Dataset

from mapping.dicom.frozen import FrozenDataset
from mapping.dicom.worklist import ItemConditions, Requested, WorklistPatient, WorklistQuery, worklist_item
from mapping.order.facts import procedure_from_json, step_from_json
from storage.db import Database
from storage.orders import worklist as orders_worklist

ASKED = 2  # sets of return keys whose responses are built ahead (the latest asked)
MAX_DEFERRAL = 30.0  # seconds building ahead is put off at most while orders keep arriving


class Worklist:
    def __init__(self, db: Database, *, page_size: int = 200, remembered: int = 20_000) -> None:
        self._db, self._page_size, self._capacity = db, page_size, remembered
        # items by what they are a function of (Candidate.key); responses by item and keys asked
        self._items: _Remembered[Dataset] = _Remembered(remembered)
        self._responses: _Remembered[FrozenDataset] = _Remembered(remembered)
        # warming: the last step built ahead; for each set of return keys asked lately, the last
        # step whose response was built ahead (0: none yet)
        self._warm_lock, self._asked_lock = threading.Lock(), threading.Lock()
        self._warmed_to, self._warmed = 0, 0
        self._asked: OrderedDict[tuple[Requested, ...], int] = OrderedDict()
        self._answering = 0  # queries being answered (warming waits for them)
        # yielding to orders: the newest step seen at the last look, and since when runs are put off
        self._newest_seen: int | None = None
        self._was_arriving = False  # steps were added in the interval before the last look
        self._deferred_since: float | None = None

    def warm(self, *, yield_to_orders: bool = False) -> int:
        """Build the items of the open steps added since the last run, and their responses for
        the return keys asked lately, no more items in all than half of what is remembered (a
        bigger worklist is built as it is asked); how many were built. Yields to queries: while
        one is being answered, building waits (a query would otherwise share the interpreter
        with it). With `yield_to_orders`: nothing while steps keep being added (up to
        MAX_DEFERRAL; then runs go ahead while the orders last), and a run stops between pages
        when new steps appeared meanwhile."""
        with self._warm_lock:
            if yield_to_orders and self._defer():
                return 0
            built = 0
            if self._warmed < self._capacity // 2:
                built += self._warm(self._warmed_to, asked=None, yielding=yield_to_orders)
            with self._asked_lock:
                asked = [(keys, to) for keys, to in self._asked.items() if to < self._warmed_to]
            for keys, to in asked:
                built += self._warm(to, asked=keys, yielding=yield_to_orders)
            return built

    def _defer(self) -> bool:
        """Whether to put this run off: steps were added since the last look and in the interval
        before too (orders keep arriving; one order, or a load of many at once, is built at
        once), and the first run put off is less than MAX_DEFERRAL ago."""
        arriving = self._orders_arriving()
        sustained, self._was_arriving = arriving and self._was_arriving, arriving
        if not sustained:
            self._deferred_since = None
            return False
        now = time.monotonic()
        if self._deferred_since is None:
            self._deferred_since = now
        return now - self._deferred_since < MAX_DEFERRAL

    def _orders_arriving(self) -> bool:
        """Whether steps were added since the last look (one indexed read of the newest key)."""
        with self._db.read() as session:
            newest = orders_worklist.newest_step(session)
        before, self._newest_seen = self._newest_seen, newest
        return before is not None and newest > before

    def _warm(self, after: int, *, asked: tuple[Requested, ...] | None, yielding: bool = False) -> int:
        """Items (or, for `asked`, responses) of the open steps above `after`."""
        built = 0
        while True:
            with self._db.read() as session:
                candidates = orders_worklist.open_steps(session, after=after, size=self._page_size)
            more = len(candidates) == self._page_size
            if asked is not None:
                candidates = [c for c in candidates if c.pk <= self._warmed_to]
            for candidate in candidates:
                self._wait_for_queries()
                item = self._items.get(candidate.key, partial(_item, candidate))
                if asked is not None:
                    self._responses.get((candidate.key, asked), partial(_frozen, asked, item))
            built += len(candidates)
            if candidates:
                after = candidates[-1].pk
            with self._asked_lock:
                if asked is None:
                    self._warmed_to = max(self._warmed_to, after)
                    self._warmed += len(candidates)
                elif asked in self._asked:
                    self._asked[asked] = max(self._asked[asked], after if candidates else self._warmed_to)
            if not more or not candidates or (asked is None and self._warmed >= self._capacity // 2):
                return built
            if yielding and self._deferred_since is None and self._orders_arriving():
                # arriving while this run built: the next runs are put off (up to MAX_DEFERRAL)
                self._was_arriving, self._deferred_since = True, time.monotonic()
                return built

    def _wait_for_queries(self) -> None:
        """Wait (a little at a time, 1 s at most) while a query is being answered."""
        for _ in range(200):
            if not self._answering:
                return
            time.sleep(0.005)

    def find(self, query: WorklistQuery, *, calling_ae: str | None = None) -> Iterator[Dataset]:
        """The response identifiers of the steps matching `query`, in the order they were stored.
        `calling_ae`: a query that names no Scheduled Station AE Title gets only the steps
        scheduled for this title (for modalities that ask without one and would otherwise see
        every station's worklist: dcm4chee's "Calling AET as Scheduled Station AET", Orthanc's
        FilterIssuerAet)."""
        station = calling_ae if calling_ae and query.names_no_station else None
        self._note_asked(query.requested)
        with self._asked_lock:
            self._answering += 1
        try:
            yield from self._find(query, station)
        finally:
            with self._asked_lock:
                self._answering -= 1

    def _find(self, query: WorklistQuery, station: str | None) -> Iterator[Dataset]:
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

    def _note_asked(self, requested: tuple[Requested, ...]) -> None:
        """Remember a set of return keys (the latest ASKED): `warm` builds their responses."""
        with self._asked_lock:
            if requested in self._asked:
                self._asked.move_to_end(requested)
                return
            self._asked[requested] = 0
            while len(self._asked) > ASKED:
                self._asked.popitem(last=False)


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


def _frozen(requested: tuple[Requested, ...], item: Dataset) -> FrozenDataset:
    """The response for return keys `requested` (a response depends on nothing else of a query)."""
    return FrozenDataset(WorklistQuery(ItemConditions(), requested, status_asked=False).response(item))


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
