"""Group commit, on SQLite and PostgreSQL: works that arrive together share one transaction and
one commit, each in a savepoint; a work that raises leaves the others committed and its own
caller gets its exception; a work that loses a race runs again alone."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from facade.wiring import Services
from storage.fhir_store.models import FhirResourceRow
from storage.group_commit import GroupCommit

ROW = {
    "res_type": "Basic",
    "version_id": 1,
    "last_updated": datetime(2026, 1, 1, tzinfo=UTC),
    "deleted": False,
    "provisional": False,
    "body": "{}",
}
WORKS = 6


class Refused(Exception):
    pass


def ids(services: Services) -> list[str]:
    with services.db.read() as session:
        return sorted(
            session.scalars(select(FhirResourceRow.res_id).where(FhirResourceRow.res_type == "Basic"))
        )


def test_works_that_arrive_together_share_a_commit(services: Services) -> None:
    group = GroupCommit(services.db)
    commits: list[int] = []

    def count(_conn: Any) -> None:
        commits.append(1)

    event.listen(services.db.engine, "commit", count)
    outcomes: dict[int, Any] = {}

    def first(session: Session) -> str:
        deadline = time.monotonic() + 10  # the others queue behind this one, the leader
        while len(group._queue) < WORKS - 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        session.execute(insert(FhirResourceRow).values(**ROW, res_id="w-0"))
        return "w-0"

    def work(n: int) -> Any:
        def run(session: Session) -> str:
            session.execute(insert(FhirResourceRow).values(**ROW, res_id=f"w-{n}"))
            if n % 3 == 2:
                raise Refused(f"w-{n}")
            return f"w-{n}"

        return run

    def call(n: int) -> None:
        try:
            outcomes[n] = group.transact(first if n == 0 else work(n))
        except Refused as exc:
            outcomes[n] = exc

    leader = threading.Thread(target=call, args=(0,))
    leader.start()
    deadline = time.monotonic() + 10
    while not group._leading and time.monotonic() < deadline:
        time.sleep(0.005)
    others = [threading.Thread(target=call, args=(n,)) for n in range(1, WORKS)]
    for t in others:
        t.start()
    for t in [leader, *others]:
        t.join(30)
    event.remove(services.db.engine, "commit", count)
    assert ids(services) == ["w-0", "w-1", "w-3", "w-4"]
    assert {n: str(o) for n, o in outcomes.items()} == {n: f"w-{n}" for n in range(WORKS)}
    assert [type(outcomes[n]) for n in (2, 5)] == [Refused, Refused]
    assert len(commits) == 2  # the leader's, then the five queued behind it together


def test_a_work_that_loses_a_race_runs_again_alone(services: Services) -> None:
    group = GroupCommit(services.db)
    with services.db.write() as session:
        session.execute(insert(FhirResourceRow).values(**ROW, res_id="taken"))
    attempts: list[str] = []

    def leader(session: Session) -> str:
        deadline = time.monotonic() + 10  # the two others queue behind it, one batch
        while len(group._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        return "leader"

    def taken_then_free(session: Session) -> str:
        res_id = "taken" if not attempts else "free"  # the unique key collides the first time
        attempts.append(res_id)
        session.execute(insert(FhirResourceRow).values(**ROW, res_id=res_id))
        return res_id

    def plain(session: Session) -> str:
        session.execute(insert(FhirResourceRow).values(**ROW, res_id="plain"))
        return "plain"

    results: list[str] = []

    def call(work: Any) -> None:
        results.append(group.transact(work))

    first = threading.Thread(target=call, args=(leader,))
    first.start()
    deadline = time.monotonic() + 10
    while not group._leading and time.monotonic() < deadline:
        time.sleep(0.005)
    threads = [threading.Thread(target=call, args=(w,)) for w in (taken_then_free, plain)]
    for t in threads:
        t.start()
    for t in [first, *threads]:
        t.join(30)
    assert attempts == ["taken", "free"]  # in the batch, then alone
    assert sorted(results) == ["free", "leader", "plain"]
    assert ids(services) == ["free", "plain", "taken"]
