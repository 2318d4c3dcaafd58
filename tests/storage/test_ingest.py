"""The shared ingest path, end to end through the real database and blob store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import Connection, func, select

from facade.settings import Settings
from facade.wiring import Services, build_services
from mapping.dicom.facts import header_from_dataset, local_issuer_system
from storage.dicom_index.models import (
    InstanceReplacementRow,
    InstanceRow,
    PatientMismatchRow,
    PatientRow,
    StudyRow,
)
from storage.dicom_index.writer import Arrival, index_instance
from storage.errors import Conflict, Gone, Invalid
from storage.fhir_store.visibility import ALL
from storage.usecases.ingest import Expect, Ingest, Source
from tests.dicom_factory import make_instance, new_uid, write

IMPORT = Source("import")


def stage(services: Services, path: Path) -> Path:
    """A copy of `path` in the staging area (ingest consumes what it is given)."""
    target = services.ingest.staging_dir() / f"{new_uid()}.dcm"
    shutil.copyfile(path, target)
    return target


def ingest(services: Services, path: Path, **kw: object) -> object:
    return services.ingest.staged(stage(services, path), IMPORT, **kw)  # type: ignore[arg-type]


def test_a_whole_deflated_file_is_stored(services: Services, tmp_path: Path) -> None:
    source = Path(get_testdata_file("image_dfl.dcm", download=False) or "")
    assert ingest(services, shutil.copy(source, tmp_path / "dfl.dcm")).outcome == "stored"  # type: ignore[attr-defined]


def test_stored_bytes_are_the_received_file(services: Services, tmp_path: Path) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    path = write(ds, tmp_path / "a.dcm")
    stored = services.ingest.staged(stage(services, path), IMPORT)
    assert stored.outcome == "stored"
    with services.db.read() as s:
        row = s.scalar(select(InstanceRow))
        assert row is not None
        key, ts = row.blob_key, row.transfer_syntax_uid
    with services.blobs.open(key) as f:
        assert f.read() == path.read_bytes()
    assert ts == "1.2.840.10008.1.2.1"
    assert list(services.ingest.staging_dir().iterdir()) == []


def test_same_bytes_again_is_an_idempotent_duplicate(services: Services, tmp_path: Path) -> None:
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "a.dcm")
    first = ingest(services, path)
    again = ingest(services, path)
    assert (first.outcome, again.outcome) == ("stored", "duplicate")  # type: ignore[attr-defined]
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(InstanceRow)) == 1
        assert s.scalar(select(StudyRow.num_instances)) == 1


def test_different_bytes_replace_and_are_recorded(services: Services, tmp_path: Path) -> None:
    study, series, sop = new_uid(), new_uid(), new_uid()
    old = write(make_instance(study_uid=study, series_uid=series, sop_uid=sop), tmp_path / "old.dcm")
    new = write(
        make_instance(study_uid=study, series_uid=series, sop_uid=sop, SeriesDescription="Fixed"),
        tmp_path / "new.dcm",
    )
    ingest(services, old)
    with services.db.read() as s:
        old_key = s.scalar(select(InstanceRow.blob_key))
    assert ingest(services, new).outcome == "replaced"  # type: ignore[attr-defined]
    with services.db.read() as s:
        row = s.scalar(select(InstanceRow))
        assert row is not None
        assert s.scalar(select(func.count()).select_from(InstanceReplacementRow)) == 1
        assert s.scalar(select(StudyRow.num_instances)) == 1
        new_key = row.blob_key
    assert new_key != old_key
    assert not services.blobs.path(old_key).exists()  # type: ignore[arg-type]
    with services.blobs.open(new_key) as f:
        assert f.read() == new.read_bytes()


def test_replacement_moving_to_another_series_keeps_counts_right(services: Services, tmp_path: Path) -> None:
    study, sop = new_uid(), new_uid()
    first, second = new_uid(), new_uid()
    ingest(services, write(make_instance(study_uid=study, series_uid=first, sop_uid=sop), tmp_path / "a.dcm"))
    ingest(
        services,
        write(
            make_instance(study_uid=study, series_uid=second, sop_uid=sop, modality="CT"), tmp_path / "b.dcm"
        ),
    )
    with services.db.read() as s:
        row = s.scalar(select(StudyRow))
        assert row is not None
        assert (row.num_series, row.num_instances, row.modalities) == (1, 1, "CT")


@pytest.mark.parametrize(
    "missing", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"]
)
def test_missing_uid_is_refused(services: Services, tmp_path: Path, missing: str) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    delattr(ds, missing)
    path = tmp_path / "bad.dcm"
    ds.preamble = b"\0" * 128  # a well-formed Part 10 file that only lacks the UID
    ds.save_as(path, enforce_file_format=False)
    with pytest.raises(Invalid, match=missing):
        ingest(services, path)
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(InstanceRow)) == 0


def test_crafted_uid_cannot_escape_the_store(services: Services, tmp_path: Path) -> None:
    ds = make_instance(study_uid="../../etc", series_uid=new_uid())
    with pytest.raises(Invalid, match="Study Instance UID"):
        ingest(services, write(ds, tmp_path / "evil.dcm"))


@pytest.mark.parametrize(
    "mangle", ["no_preamble", "truncated", "truncated_large", "truncated_deflated", "not_dicom", "empty"]
)
def test_malformed_files_are_refused(services: Services, tmp_path: Path, mangle: str) -> None:
    good = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "good.dcm").read_bytes()
    large = write(
        make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=256, columns=256),
        tmp_path / "large.dcm",
    ).read_bytes()  # pixel data big enough to be read deferred
    deflated = Path(get_testdata_file("image_dfl.dcm", download=False) or "").read_bytes()
    data = {
        "no_preamble": good[128:],
        "truncated": good[:-1000],
        "truncated_large": large[: len(large) // 2],
        "truncated_deflated": deflated[: len(deflated) // 2],
        "not_dicom": b"hello world" * 100,
        "empty": b"",
    }[mangle]
    path = tmp_path / "bad.dcm"
    path.write_bytes(data)
    with pytest.raises(Invalid):
        ingest(services, path)


def test_request_and_data_set_must_agree(services: Services, tmp_path: Path) -> None:
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "a.dcm")
    with pytest.raises(Invalid, match="differs from the request"):
        ingest(services, path, expect=Expect(sop_instance_uid="1.2.3"))
    with pytest.raises(Conflict, match="target study"):
        ingest(services, path, expect=Expect(study_uid="1.2.3"))


def test_patients_match_by_id_and_issuer(services: Services, tmp_path: Path) -> None:
    for n, issuer in enumerate(["", "", "HOSP_B", "1.2.826.0.1.99"]):
        attrs = {"IssuerOfPatientID": issuer} if issuer else {}
        ingest(
            services,
            write(
                make_instance(study_uid=new_uid(), series_uid=new_uid(), patient_id="SAME", **attrs),
                tmp_path / f"{n}.dcm",
            ),
        )
    with services.db.read() as s:
        systems = sorted(s.scalars(select(PatientRow.id_system)))
    assert systems == ["urn:facade:issuer:HOSP_B", "urn:facade:patient-id", "urn:oid:1.2.826.0.1.99"]


def test_studies_without_patient_id_get_a_patient_each(services: Services, tmp_path: Path) -> None:
    for n in range(2):
        ingest(
            services,
            write(
                make_instance(study_uid=new_uid(), series_uid=new_uid(), patient_id=None),
                tmp_path / f"{n}.dcm",
            ),
        )
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(PatientRow)) == 2


def test_names_are_decoded_per_character_set(services: Services, tmp_path: Path) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Zoë"
    ingest(services, write(ds, tmp_path / "utf8.dcm"))
    latin = make_instance(study_uid=new_uid(), series_uid=new_uid(), patient_id="L1")
    latin.SpecificCharacterSet = "ISO_IR 100"
    latin.PatientName = "Gómez^José"
    ingest(services, write(latin, tmp_path / "latin1.dcm"))
    with services.db.read() as s:
        names = sorted(s.scalars(select(PatientRow.name)))
    assert names == ["Gómez^José", "Müller^Zoë"]


def test_a_study_emptied_by_a_replacement_reads_as_gone(services: Services, tmp_path: Path) -> None:
    sop, old_study, new_study = new_uid(), new_uid(), new_uid()
    ingest(
        services,
        write(make_instance(study_uid=old_study, series_uid=new_uid(), sop_uid=sop), tmp_path / "a.dcm"),
    )
    assert (
        services.search.read("ImagingStudy", old_study, visibility=ALL).version_id == 1
    )  # published, still provisional
    ingest(
        services,
        write(make_instance(study_uid=new_study, series_uid=new_uid(), sop_uid=sop), tmp_path / "b.dcm"),
    )
    with pytest.raises(Gone):
        services.search.read("ImagingStudy", old_study, visibility=ALL)
    history = services.search.history("ImagingStudy", old_study, visibility=ALL)
    assert [(v.version_id, v.body) for v in history] == [(2, None)]  # the provisional v1 was not retained
    assert services.search.read("ImagingStudy", new_study, visibility=ALL).body["numberOfInstances"] == 1  # type: ignore[index]


def test_a_study_keeps_its_patient_and_the_refused_file_is_removed(
    services: Services, tmp_path: Path
) -> None:
    study = new_uid()
    ingest(
        services,
        write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="A"), tmp_path / "a.dcm"),
    )
    with pytest.raises(Conflict, match="different Patient ID"):
        ingest(
            services,
            write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="B"), tmp_path / "b.dcm"),
        )
    root = services.ingest.staging_dir().parent
    files = [p for p in root.rglob("*.dcm") if ".staging" not in p.parts]
    with services.db.read() as s:
        assert [str(p.relative_to(root)) for p in files] == [s.scalar(select(InstanceRow.blob_key))]
    assert list(services.ingest.staging_dir().iterdir()) == []


@pytest.fixture
def accepting(services: Services) -> Iterator[Ingest]:
    """The same archive's ingest with FACADE_PATIENT_MISMATCH=accept."""
    settings = Settings(**(services.settings.model_dump() | {"patient_mismatch": "accept"}))
    other = build_services(settings, migrate=False)
    yield other.ingest
    other.close()


def patient_rows(services: Services) -> list[tuple[str | None, str | None, str]]:
    with services.db.read() as s:
        return [
            (p.id_system, p.patient_id, p.name) for p in s.scalars(select(PatientRow).order_by(PatientRow.pk))
        ]


def test_an_instance_without_patient_id_joins_the_stored_study(services: Services, tmp_path: Path) -> None:
    study = new_uid()
    ingest(
        services,
        write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="A"), tmp_path / "a.dcm"),
    )
    for n, pid in enumerate(["", None]):
        ds = make_instance(study_uid=study, series_uid=new_uid(), patient_id=pid)
        assert ingest(services, write(ds, tmp_path / f"{n}.dcm")).outcome == "stored"  # type: ignore[attr-defined]
    assert patient_rows(services) == [("urn:facade:patient-id", "A", "Testperson^Alice")]
    with services.db.read() as s:
        assert s.scalar(select(StudyRow.num_instances)) == 3
        assert s.scalar(select(func.count()).select_from(PatientMismatchRow)) == 0


def test_a_study_stored_without_patient_id_refuses_one_that_names_a_patient(
    services: Services, tmp_path: Path
) -> None:
    """No Patient ID fits any patient; a Patient ID does not fit a study of a patient without one."""
    study = new_uid()
    ingest(
        services,
        write(make_instance(study_uid=study, series_uid=new_uid(), patient_id=""), tmp_path / "a.dcm"),
    )
    ingest(
        services,
        write(make_instance(study_uid=study, series_uid=new_uid(), patient_id=None), tmp_path / "b.dcm"),
    )
    with pytest.raises(Conflict, match="different Patient ID"):
        ingest(
            services,
            write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="A"), tmp_path / "c.dcm"),
        )
    assert patient_rows(services) == [(None, None, "Testperson^Alice")]


def test_another_issuer_for_the_same_patient_id_is_refused(services: Services, tmp_path: Path) -> None:
    study = new_uid()
    first = make_instance(study_uid=study, series_uid=new_uid(), patient_id="A", IssuerOfPatientID="HOSP_A")
    ingest(services, write(first, tmp_path / "a.dcm"))
    other = make_instance(study_uid=study, series_uid=new_uid(), patient_id="A", IssuerOfPatientID="HOSP_B")
    with pytest.raises(Conflict, match="different Patient ID or issuer"):
        ingest(services, write(other, tmp_path / "b.dcm"))
    same = make_instance(study_uid=study, series_uid=new_uid(), patient_id="A", IssuerOfPatientID="HOSP_A")
    assert ingest(services, write(same, tmp_path / "c.dcm")).outcome == "stored"  # type: ignore[attr-defined]


def test_accepted_mismatch_keeps_the_study_and_its_patient_as_they_were(
    services: Services, accepting: Ingest, tmp_path: Path
) -> None:
    study = new_uid()
    ingest(
        services,
        write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="A"), tmp_path / "a.dcm"),
    )
    other = write(
        make_instance(study_uid=study, series_uid=new_uid(), patient_id="B", patient_name="Else^Body"),
        tmp_path / "b.dcm",
    )
    assert accepting.staged(stage(services, other), Source("c-store", "MOD1")).outcome == "stored"
    assert accepting.staged(stage(services, other), Source("c-store", "MOD1")).outcome == "duplicate"
    assert patient_rows(services) == [("urn:facade:patient-id", "A", "Testperson^Alice")]  # not renamed
    with services.db.read() as s:
        assert s.scalar(select(StudyRow.num_instances)) == 2
        (row,) = s.scalars(select(PatientMismatchRow))  # the resend of the same bytes adds none
        assert (row.study_uid, row.study_patient_id, row.instance_patient_id) == (study, "A", "B")
        assert (row.received_via, row.calling_ae) == ("c-store", "MOD1")
    imaging_study = services.search.read("ImagingStudy", study, visibility=ALL).body
    assert imaging_study is not None
    patient_ref = imaging_study["subject"]["reference"]  # the study's patient, as before
    patient = services.search.read("Patient", patient_ref.split("/")[1], visibility=ALL).body
    assert patient is not None and [i["value"] for i in patient["identifier"]] == ["A"]


def test_the_mismatch_row_commits_with_the_instance_or_not_at_all(services: Services, tmp_path: Path) -> None:
    """Accepting writes the instance and its mismatch row in one transaction: when that transaction
    fails after indexing, neither is left."""
    study = new_uid()
    ingest(
        services,
        write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="A"), tmp_path / "a.dcm"),
    )
    ds = make_instance(study_uid=study, series_uid=new_uid(), patient_id="B")
    h = header_from_dataset(
        ds, default_system="urn:facade:patient-id", issuer_system=local_issuer_system("urn:facade:issuer", {})
    )
    arrival = Arrival("k", 1, "0" * 64, "import", None, datetime.now(UTC))

    def index_then_fail(conn: Connection) -> None:
        assert index_instance(conn, h, arrival, "accept").mismatch
        raise RuntimeError("the commit never happens")

    with pytest.raises(RuntimeError):
        services.db.transact_core(index_then_fail)
    with services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(PatientMismatchRow)) == 0
        assert s.scalar(select(func.count()).select_from(InstanceRow)) == 1
        assert s.scalar(select(StudyRow.num_instances)) == 1


def test_a_failed_duplicate_keeps_the_stored_file(services: Services, tmp_path: Path) -> None:
    """A resend of stored bytes that is then refused must not delete the bytes the index points to."""
    study, series = new_uid(), new_uid()
    path = write(make_instance(study_uid=study, series_uid=series, patient_id="A"), tmp_path / "a.dcm")
    ingest(services, path)
    with pytest.raises(Conflict, match="target study"):
        ingest(services, path, expect=Expect(study_uid="1.2.3"))
    with services.db.read() as s:
        key = s.scalar(select(InstanceRow.blob_key))
    assert key is not None
    with services.blobs.open(key) as f:
        assert f.read() == path.read_bytes()


def test_staging_removes_whatever_was_not_stored(services: Services, tmp_path: Path) -> None:
    """The staging block of the use case: its file is gone after the block, whether the instance was
    stored, refused, or the adapter failed before storing it."""
    staging_dir = services.ingest.staging_dir()
    with pytest.raises(RuntimeError), services.ingest.staging() as staging:
        staging.write(b"half a data set")
        assert staging.path.parent == staging_dir
        raise RuntimeError("the peer went away")
    assert list(staging_dir.iterdir()) == []
    with pytest.raises(Invalid), services.ingest.staging() as staging:
        staging.write(b"not DICOM")
        services.ingest.store(staging, IMPORT)
    assert list(staging_dir.iterdir()) == []
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "a.dcm")
    with services.ingest.staging() as staging:
        staging.write(path.read_bytes())
        assert services.ingest.store(staging, IMPORT).outcome == "stored"
    assert list(staging_dir.iterdir()) == []
    with services.db.read() as s:
        key = s.scalar(select(InstanceRow.blob_key))
    assert key is not None
    assert services.blobs.path(key).stat().st_mode & 0o777 == 0o600  # the owner's alone, as staged


def test_staging_adopts_a_file_written_elsewhere(services: Services, tmp_path: Path) -> None:
    """As the C-STORE door does with the file pynetdicom received: taken over (here by rename, same file
    system), stored, and the original name is gone."""
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "received.dcm")
    data = path.read_bytes()
    with services.ingest.staging() as staging:
        staging.adopt(path)
        stored = services.ingest.store(staging, Source("c-store", "MODALITY"))
    assert not path.exists()
    assert list(services.ingest.staging_dir().iterdir()) == []
    with services.db.read() as s:
        key = s.scalar(select(InstanceRow.blob_key).where(InstanceRow.pk == stored.instance_pk))
    assert key is not None
    with services.blobs.open(key) as f:
        assert f.read() == data
