"""Deferred indexing (`Ingest.accept`): durable before the answer, indexed in batches behind it,
refusals decided before the answer, held files indexed again after a crash."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from facade.wiring import Services
from storage.blobs import FileBlobStore
from storage.dicom_index.models import InstanceReplacementRow, InstanceRow, PatientMismatchRow, StudyRow
from storage.errors import Conflict
from storage.usecases.ingest import Expect, Source
from tests.dicom_factory import make_instance, new_uid, write

CSTORE = Source("c-store", "MODALITY")


def accept(services: Services, path: Path) -> None:
    with services.ingest.staging() as staging:
        staging.write(path.read_bytes())
        services.ingest.accept(staging, CSTORE, Expect())


def instances(services: Services) -> int:
    with services.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(InstanceRow)) or 0)


def test_accepted_instances_are_indexed_by_the_time_drain_returns(services: Services, tmp_path: Path) -> None:
    study, series = new_uid(), new_uid()
    for n in range(40):
        ds = make_instance(study_uid=study, series_uid=series, instance_number=n + 1)
        accept(services, write(ds, tmp_path / f"{n}.dcm"))
    assert services.ingest.drain(10)
    assert instances(services) == 40
    with services.db.read() as s:
        assert s.scalar(select(StudyRow.num_instances)) == 40
    assert services.blobs.held() == []
    assert list(services.ingest.staging_dir().iterdir()) == []


def test_concurrent_associations_share_transactions(services: Services, tmp_path: Path) -> None:
    """Four senders at once: every instance indexed once, the counts exact."""
    study, series = new_uid(), [new_uid() for _ in range(4)]
    files = [
        write(make_instance(study_uid=study, series_uid=uid, instance_number=n), tmp_path / f"{uid}-{n}.dcm")
        for uid in series
        for n in range(1, 26)
    ]
    errors: list[BaseException] = []

    def send(part: list[Path]) -> None:
        try:
            for path in part:
                accept(services, path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(files[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert services.ingest.drain(10)
    assert instances(services) == 100
    with services.db.read() as s:
        assert (s.scalar(select(StudyRow.num_instances)), s.scalar(select(StudyRow.num_series))) == (100, 4)


def test_another_patient_is_refused_before_the_answer_held_or_indexed(
    services: Services, tmp_path: Path
) -> None:
    """The study's first instance may still be held, not indexed: the refusal is the same."""
    study = new_uid()
    accept(
        services,
        write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="A"), tmp_path / "a.dcm"),
    )
    other = write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="B"), tmp_path / "b.dcm")
    with pytest.raises(Conflict, match="different Patient ID"):
        accept(services, other)
    assert services.ingest.drain(10)
    with pytest.raises(Conflict, match="different Patient ID"):
        accept(services, other)
    assert instances(services) == 1
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(PatientMismatchRow)) == 0


def test_a_series_of_another_study_is_refused_while_held(services: Services, tmp_path: Path) -> None:
    series = new_uid()
    accept(services, write(make_instance(study_uid=new_uid(), series_uid=series), tmp_path / "a.dcm"))
    with pytest.raises(Conflict, match="different study"):
        accept(services, write(make_instance(study_uid=new_uid(), series_uid=series), tmp_path / "b.dcm"))
    assert services.ingest.drain(10)
    assert instances(services) == 1


def held_by_a_process_gone(services: Services, *paths: Path, calling_ae: str = "") -> None:
    """Files held by another store on the same blobs (another process) that stopped or crashed
    before indexing them: its held directory's lock is free."""
    gone = FileBlobStore(services.blobs.root)
    for path in paths:
        staged = services.ingest.staging_dir() / path.name
        shutil.copyfile(path, staged)
        gone.hold(staged, calling_ae.encode().hex())
    assert services.blobs.held() == []  # still its own while it lives
    gone.close()


def test_held_files_are_indexed_on_start_once(services: Services, tmp_path: Path) -> None:
    """What a crash leaves: files held (acknowledged) and never indexed. `recover` indexes them,
    with the calling AE title their names keep; doing it again finds nothing left."""
    study, series = new_uid(), new_uid()
    paths = [
        write(make_instance(study_uid=study, series_uid=series, instance_number=n), tmp_path / f"{n}.dcm")
        for n in range(3)
    ]
    held_by_a_process_gone(services, *paths, calling_ae="MODALITY")
    assert len(services.blobs.held()) == 3
    assert instances(services) == 0
    assert services.ingest.recover() == 3
    assert services.ingest.recover() == 0
    assert list((services.blobs.root / ".held").iterdir()) == []  # the gone store's directory too
    with services.db.read() as s:
        rows = list(s.scalars(select(InstanceRow)))
    assert [(r.received_via, r.calling_ae) for r in rows] == [("c-store", "MODALITY")] * 3
    for row in rows:
        assert services.blobs.size(row.blob_key) > 0


def test_a_held_file_indexed_before_the_crash_is_a_duplicate(services: Services, tmp_path: Path) -> None:
    """A crash after the index committed, before the held file was released."""
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "a.dcm")
    accept(services, path)
    assert services.ingest.drain(10)
    held_by_a_process_gone(services, path)
    assert services.ingest.recover() == 1
    assert instances(services) == 1
    assert services.blobs.held() == []


def test_an_unreadable_held_file_stays(services: Services, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    held_by_a_process_gone(services, junk)
    held = services.blobs.held()
    assert len(held) == 1
    assert services.ingest.recover() == 0
    assert services.blobs.held() == held


def test_a_live_process_keeps_its_held_files(services: Services, tmp_path: Path) -> None:
    """Two processes on one data directory: one starting never takes what the other holds."""
    other = FileBlobStore(services.blobs.root)
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "a.dcm")
    staged = services.ingest.staging_dir() / "a.dcm"
    shutil.copyfile(path, staged)
    held = other.hold(staged, "")
    assert services.ingest.recover() == 0
    assert held.exists()
    other.close()
    assert services.ingest.recover() == 1


def test_one_instance_three_times_in_one_batch(services: Services, tmp_path: Path) -> None:
    """Held files indexed in one batch (as `recover` indexes them) that name one SOP instance
    three times, the same bytes twice and then other bytes, beside a new one: a duplicate, then a
    replacement, each seeing the arrival before it in the same transaction; the counts exact."""
    study, series, sop = new_uid(), new_uid(), new_uid()
    first = write(make_instance(study_uid=study, series_uid=series, sop_uid=sop), tmp_path / "a.dcm")
    twin = tmp_path / "b.dcm"
    shutil.copyfile(first, twin)
    other = make_instance(study_uid=study, series_uid=series, sop_uid=sop, instance_number=7)
    new = make_instance(study_uid=study, series_uid=series, instance_number=2)
    held_by_a_process_gone(
        services, first, twin, write(other, tmp_path / "c.dcm"), write(new, tmp_path / "d.dcm")
    )
    assert services.ingest.recover() == 4
    with services.db.read() as s:
        rows = {r.sop_uid: r for r in s.scalars(select(InstanceRow))}
        replacements = s.scalar(select(func.count()).select_from(InstanceReplacementRow))
        study_row = s.scalars(select(StudyRow)).one()
    assert set(rows) == {sop, new.SOPInstanceUID}
    assert rows[sop].instance_number == 7 and replacements == 1
    assert (study_row.num_instances, study_row.num_series) == (2, 1)
    assert services.blobs.held() == []
    assert {services.blobs.size(r.blob_key) > 0 for r in rows.values()} == {True}
