"""The settle worker's run: everything pending up to its bound, in several short transactions."""

from __future__ import annotations

from sqlalchemy import func, select

from facade.settle import PER_RUN, PER_TRANSACTION, settle
from facade.wiring import Services
from storage.dicom_index.models import PatientRow
from tests.hl7_samples import orm


def test_a_run_publishes_more_than_one_transaction_holds(services: Services) -> None:
    count = PER_TRANSACTION * 2 + 10
    assert count <= PER_RUN
    for n in range(count):  # an order for a new patient each: a Patient to publish each
        ack = services.hl7_inbox.receive(
            orm(
                msg_id=f"M{n}", patient_id=f"P{n}", placer=f"PL{n}", filler=f"F{n}", accession=f"A{n}"
            ).encode(),
            "x",
        )
        assert b"MSA|AA|" in ack
    assert settle(services.publisher) == count
    with services.db.read() as session:
        pending = select(func.count()).where(PatientRow.published_seq < PatientRow.change_seq)
        assert session.scalar(pending) == 0
    assert settle(services.publisher) == 0
