"""The worklist built ahead of queries (`Worklist.warm`): the items of new open steps, then their
responses for the return keys asked lately; what a query answers is the same either way, and a
step that changed after it was built is answered as it is now."""

from __future__ import annotations

import pytest
from pydicom import Dataset

from facade.wiring import Services
from mapping.dicom.worklist import worklist_query
from storage.usecases import worklist as worklist_module
from storage.usecases.worklist import Worklist
from tests.hl7_samples import orm


def query() -> Dataset:
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.PatientName = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = ""
    sps.ScheduledProcedureStepStartDate = ""
    sps.ScheduledProcedureStepStatus = ""
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def order(services: Services, n: int, control: str = "NW") -> None:
    message = orm(control, msg_id=f"M{n}{control}", placer=f"PL{n}", filler=f"F{n}", accession=f"A{n}")
    assert b"MSA|AA|" in services.hl7_inbox.receive(message.encode(), "test")


def answered(worklist: Worklist) -> list[Dataset]:
    return list(worklist.find(worklist_query(query())))


def test_items_then_responses_are_built_ahead_and_answer_the_same(services: Services) -> None:
    cold = Worklist(services.db)
    for n in range(3):
        order(services, n)
    worklist = Worklist(services.db)
    assert worklist.warm() == 3  # the items
    assert worklist.warm() == 0  # nothing new, no keys asked yet
    first = answered(worklist)
    assert worklist.warm() == 3  # the responses for the keys just asked
    again = answered(worklist)
    assert [r.AccessionNumber for r in first] == [r.AccessionNumber for r in again] == ["A0", "A1", "A2"]
    assert [r.to_json_dict() for r in again] == [r.to_json_dict() for r in answered(cold)]

    order(services, 3)  # a new step: its item and response, in one run
    assert worklist.warm() == 2
    built = answered(worklist)
    assert [r.AccessionNumber for r in built] == ["A0", "A1", "A2", "A3"]
    assert all(a is b for a, b in zip(built, answered(worklist), strict=True))  # remembered


def test_a_step_changed_after_it_was_built_is_answered_as_it_is_now(services: Services) -> None:
    order(services, 0)
    order(services, 1)
    worklist = Worklist(services.db)
    answered(worklist)
    while worklist.warm():
        pass
    order(services, 0, "CA")  # cancelled: no longer an open step
    assert [r.AccessionNumber for r in answered(worklist)] == ["A1"]


def test_building_ahead_yields_while_orders_keep_arriving(services: Services) -> None:
    order(services, 0)
    worklist = Worklist(services.db)
    assert worklist.warm(yield_to_orders=True) == 1  # the first look never waits
    order(services, 1)  # one order since the last look: built at once
    assert worklist.warm(yield_to_orders=True) == 1
    order(services, 2)  # and again: orders keep arriving, put off
    assert worklist.warm(yield_to_orders=True) == 0
    order(services, 3)
    assert worklist.warm(yield_to_orders=True) == 0
    assert [r.AccessionNumber for r in answered(worklist)] == ["A0", "A1", "A2", "A3"]  # queries build
    assert worklist.warm(yield_to_orders=True) == 2 + 4  # a pause: the two items, the 4 responses
    assert worklist.warm() == 0


def test_building_ahead_goes_ahead_once_put_off_long_enough(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    worklist = Worklist(services.db)
    assert worklist.warm(yield_to_orders=True) == 0
    for n in range(2):
        order(services, n)
        assert worklist.warm(yield_to_orders=True) == 1 - n  # the second: put off
    monkeypatch.setattr(worklist_module, "MAX_DEFERRAL", 0.0)
    order(services, 2)  # still arriving, but put off for long enough
    assert worklist.warm(yield_to_orders=True) == 2
