"""Query: the DICOM index searched as C-FIND (and QIDO-RS) ask, a page at a time.

Each page (up to `PAGE_SIZE` records) is read in a read-only transaction of its own and its
records are checked against the plan's conditions (`mapping.dicom.matching`) before they are
handed out: a caller that stops iterating (a C-CANCEL) stops the reading. A caller that sees
every study (C-FIND; a token with every ImagingStudy) reads on a bare connection, without an ORM
session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mapping.dicom.matching import matches
from mapping.dicom.query_keys import MULTI_VALUED, FindPlan
from storage.db import Database
from storage.dicom_index import query as index_query
from storage.fhir_store.visibility import ALL, Visibility
from storage.usecases.search import Search

__all__ = ["Match", "Query", "Visibility"]

Match = dict[str, Any]
# records read at a time: each page costs a transaction and a statement (~0.5 ms of Python) besides
# its rows (~10 us each); a page of 1,000 records is ~2 MB, and a C-CANCEL waits for at most one
PAGE_SIZE = 1000
MIN_PAGE = 50  # records read at a time when a caller wants only a few more


class Query:
    def __init__(
        self, db: Database, search: Search, *, page_size: int = PAGE_SIZE, min_page: int = MIN_PAGE
    ) -> None:
        self._db, self._search, self._page_size, self._min_page = db, search, page_size, min_page

    def find(
        self, plan: FindPlan, *, visibility: Visibility = ALL, wanted: int | None = None
    ) -> Iterator[Match]:
        """The index records matching `plan`, in the order they were first stored, of the studies
        `visibility` shows (the FHIR read rules of their ImagingStudy: a patient token's QIDO
        sees its patient's studies only, counts and `limit` included). `wanted`: how many the
        caller reads at most (a QIDO-RS `offset` + `limit` + 1): pages are no larger than what
        is still wanted (at least `min_page`), as the SQL keeps nearly only matches."""
        after, handed = 0, 0
        statement = index_query.prepared(plan)  # once for all the pages
        whole = self._search.sees_whole("ImagingStudy", visibility)
        while True:
            size = self._page_size
            if wanted is not None:
                size = min(size, max(wanted - handed, self._min_page))
            if whole:  # nothing to decide per study: a bare connection, no ORM session to set up
                with self._db.read_connection() as conn:
                    records = index_query.page(conn, plan, after=after, size=size, prepared=statement)
                matching = [r for r in records if _satisfies(plan, r)]
            else:
                with self._db.read() as session:
                    conn = session.connection()
                    records = index_query.page(conn, plan, after=after, size=size, prepared=statement)
                    matching = [r for r in records if _satisfies(plan, r)]
                    if matching:
                        seen = self._search.visible_among(
                            session, "ImagingStudy", sorted({r["study_uid"] for r in matching}), visibility
                        )
                        matching = [r for r in matching if r["study_uid"] in seen]
            handed += len(matching)
            yield from matching
            if len(records) < size:
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
