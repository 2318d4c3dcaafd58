"""Query: the DICOM index searched as C-FIND (and QIDO-RS) ask, a page at a time.

Each page is read in a read-only transaction of its own and its records are checked against
the plan's conditions (`mapping.dicom.matching`) before they are handed out: a caller that stops
iterating (a C-CANCEL) stops the reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mapping.dicom.matching import matches
from mapping.dicom.query_keys import MULTI_VALUED, FindPlan
from storage.db import Database
from storage.dicom_index import query as index_query

Match = dict[str, Any]


class Query:
    def __init__(self, db: Database, *, page_size: int = 200) -> None:
        self._db, self._page_size = db, page_size

    def find(self, plan: FindPlan) -> Iterator[Match]:
        """The index records matching `plan`, in the order they were first stored."""
        after = 0
        while True:
            with self._db.read() as session:
                records = index_query.page(session, plan, after=after, size=self._page_size)
            for record in records:
                if _satisfies(plan, record):
                    yield record
            if len(records) < self._page_size:
                return
            after = records[-1]["pk"]


def _satisfies(plan: FindPlan, record: Match) -> bool:
    for field, (key, cond) in plan.conditions.items():
        value = record.get(field)
        text = "" if value is None else str(value)
        stored: str | list[str] = text.split("\\") if field in MULTI_VALUED else text
        if not matches(cond, key.vr, stored):
            return False
    return True
