"""An instance of a stored study that names no patient, or another one, through every door with real
peers: storescu (C-STORE), dicomweb-client and httpx (STOW-RS), `facade import`; and
`facade qa mismatches` as an administrator runs it. FACADE_PATIENT_MISMATCH: refuse (default) or
accept."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset, dcmread
from sqlalchemy import func, select

from dicom_bridge.ae import AeConfig, storage_ae
from dicom_bridge.storage_scp import StorageScp
from facade.importer import run_import
from facade.settings import Settings
from facade.wiring import Services
from mapping.dicom.part10 import peek_file_meta
from storage.dicom_index.models import InstanceRow, PatientMismatchRow, PatientRow, SeriesRow, StudyRow
from storage.fhir_store.visibility import ALL
from storage.usecases.ingest import Source
from tests.dicom_bridge.test_stow import (
    FAILED_SOP,
    FAILURE_REASON,
    REFERENCED_SOP,
    SOP_INSTANCE,
    content_type,
    items,
    multipart,
    part10,
)
from tests.dicom_factory import make_instance, new_uid, write
from tests.smart import bearer
from tests.tools import require_tool

NODELAY = {**os.environ, "TCP_NODELAY": "1"}
STORESCU_CFG = Path(__file__).parents[2] / "docs" / "storescu.cfg"
CONFLICT = 0xC001
REASON = "the study is already stored for a different Patient ID or issuer"
OTHER_ID = "OTHER-7731"  # the mismatching Patient ID: must reach the table, never the log


@pytest.fixture
def policy() -> str:
    """FACADE_PATIENT_MISMATCH for the test; `@pytest.mark.parametrize("policy", ["accept"])` changes it."""
    return "refuse"


@pytest.fixture
def settings(settings: Settings, policy: str) -> Settings:
    return Settings(**(settings.model_dump() | {"patient_mismatch": policy}))


@pytest.fixture
def scp_port(services: Services) -> Iterator[int]:
    server = storage_ae(AeConfig()).start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=StorageScp(services.ingest).handlers()
    )
    yield server.server_address[1]
    server.shutdown()


def storescu(port: int, *files: Path, calling_ae: str = "MODALITY1") -> subprocess.CompletedProcess[str]:
    """dcmtk's storescu as the house runs it (its configuration, TCP_NODELAY); one association."""
    return subprocess.run(
        [
            require_tool("storescu"),
            "-xf",
            str(STORESCU_CFG),
            "Facade",
            "-d",  # the responses in full: their status codes
            "-nh",  # go on after a refusal: one association sends every file
            "-aet",
            calling_ae,
            "-aec",
            "FACADE",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        env=NODELAY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def known_study(services: Services, tmp_path: Path) -> tuple[str, Path]:
    """A study stored for Patient ID A (issuer HOSP_A) through the import door; its UID and file."""
    study = new_uid()
    first = make_instance(study_uid=study, series_uid=new_uid(), patient_id="A", IssuerOfPatientID="HOSP_A")
    path = write(first, tmp_path / "first.dcm")
    services.ingest.staged(_copy(path, services), Source("import"))
    return study, path


def _copy(path: Path, services: Services) -> Path:
    target = services.ingest.staging_dir() / f"{new_uid()}.dcm"
    target.write_bytes(path.read_bytes())
    return target


def instance_of(study: str, **kw: object) -> Dataset:
    return make_instance(study_uid=study, series_uid=new_uid(), **kw)  # type: ignore[arg-type]


def study_of(services: Services, sop_uid: str) -> str | None:
    """The study the index holds the instance in (None: not stored)."""
    with services.db.read() as s:
        return s.scalar(
            select(StudyRow.study_uid)
            .join(SeriesRow, SeriesRow.study_pk == StudyRow.pk)
            .join(InstanceRow, InstanceRow.series_pk == SeriesRow.pk)
            .where(InstanceRow.sop_uid == sop_uid)
        )


def data_set_bytes_of(data: bytes) -> bytes:
    """The data set of a Part 10 file (C-STORE carries no file meta: the SCP writes its own)."""
    return data[peek_file_meta(data[: 1 << 20]).dataset_offset :]


def counts(services: Services) -> tuple[int, int, int]:
    """Patients, instances, mismatch rows."""
    with services.db.read() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(t)) or 0
            for t in (PatientRow, InstanceRow, PatientMismatchRow)
        )


def qa_mismatches(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`facade qa mismatches` in a process of its own, on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACADE_")}
    env |= {
        "FACADE_DATA_DIR": str(settings.data_dir),
        "FACADE_DATABASE_URL": settings.resolved_database_url(),
        "FACADE_PATIENT_MISMATCH": settings.patient_mismatch,
    }
    return subprocess.run(
        [sys.executable, "-m", "facade.cli", "qa", "mismatches", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# C-STORE


def test_storescu_without_patient_id_stores_into_the_known_study(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    study, _ = known_study(services, tmp_path)
    empty = write(instance_of(study, patient_id=""), tmp_path / "empty.dcm")
    absent = write(instance_of(study, patient_id=None), tmp_path / "absent.dcm")
    same_without_issuer = write(instance_of(study, patient_id="A"), tmp_path / "same.dcm")
    sent = storescu(scp_port, empty, absent, same_without_issuer)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    for path in (empty, absent, same_without_issuer):
        ds = dcmread(path)
        assert study_of(services, ds.SOPInstanceUID) == study
        with services.db.read() as s:
            key = s.scalar(select(InstanceRow.blob_key).where(InstanceRow.sop_uid == ds.SOPInstanceUID))
        assert key is not None
        with services.blobs.open(key) as f:  # stored unchanged: no Patient ID filled in
            assert data_set_bytes_of(f.read()) == data_set_bytes_of(path.read_bytes())
    assert counts(services) == (1, 4, 0)  # one patient, no mismatch
    body = services.search.read("ImagingStudy", study, visibility=ALL).body
    assert body is not None and body["numberOfInstances"] == 4


def test_storescu_with_another_patient_id_is_refused_0xc001_by_default(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    study, _ = known_study(services, tmp_path)
    other = write(instance_of(study, patient_id=OTHER_ID), tmp_path / "other.dcm")
    other_issuer = write(
        instance_of(study, patient_id="A", IssuerOfPatientID="HOSP_B"), tmp_path / "issuer.dcm"
    )
    sent = storescu(scp_port, other, other_issuer)
    out = sent.stdout + sent.stderr
    assert out.count("Received Store Response") == 2, out  # both sent (-nh), one association
    assert set(re.findall(r"DIMSE Status\s*:\s*(0x[0-9a-f]{4})", out)) == {"0xc001"}, out
    assert counts(services) == (1, 1, 0)
    listed = qa_mismatches(services.settings)
    assert listed.returncode == 0, listed.stderr
    assert "No patient mismatches recorded." in listed.stdout
    assert "FACADE_PATIENT_MISMATCH=refuse" in listed.stdout


@pytest.mark.parametrize("policy", ["accept"])
def test_storescu_with_another_patient_id_is_kept_and_listed_when_accepted(
    scp_port: int, services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study, _ = known_study(services, tmp_path)
    other = write(instance_of(study, patient_id=OTHER_ID), tmp_path / "other.dcm")
    sop = dcmread(other).SOPInstanceUID
    with caplog.at_level(logging.INFO):
        sent = storescu(scp_port, other, calling_ae="CT_ROOM_2")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert study_of(services, sop) == study
    assert counts(services) == (1, 2, 1)  # no patient made for OTHER_ID
    with services.db.read() as s:
        key = s.scalar(select(InstanceRow.blob_key).where(InstanceRow.sop_uid == sop))
    assert key is not None
    with services.blobs.open(key) as f:  # stored unchanged, its Patient ID included
        assert data_set_bytes_of(f.read()) == data_set_bytes_of(other.read_bytes())
    body = services.search.read("ImagingStudy", study, visibility=ALL).body
    assert body is not None and body["numberOfInstances"] == 2
    with services.db.read() as s:
        (patient_fhir_id,) = s.scalars(select(PatientRow.fhir_id))
    assert body["subject"]["reference"] == f"Patient/{patient_fhir_id}"  # the study's patient
    assert "ingest.patient_mismatch" in [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if OTHER_ID in str(r.__dict__)]  # PHI: the table only

    listed = qa_mismatches(services.settings)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split("  ")[0] == "Received (UTC)"
    (row,) = [line for line in lines if sop in line]
    assert study in row
    assert "A (urn:facade:issuer:HOSP_A)" in row  # the patient the study belongs to
    assert f"{OTHER_ID} (urn:facade:patient-id)" in row  # what the instance carried
    assert "c-store" in row and "CT_ROOM_2" in row
    assert OTHER_ID not in listed.stderr


# STOW-RS


def test_stow_stores_no_patient_id_and_fails_another_with_0xc001(
    http: httpx.Client, services: Services, tmp_path: Path
) -> None:
    study, _ = known_study(services, tmp_path)
    empty, other = instance_of(study, patient_id=""), instance_of(study, patient_id=OTHER_ID)
    r = http.post("/studies", content=multipart(part10(empty), part10(other)), headers=content_type())
    assert r.status_code == 202  # some stored, some failed (PS3.18 10.5.3)
    assert [i[SOP_INSTANCE]["Value"] for i in items(r, REFERENCED_SOP)] == [[empty.SOPInstanceUID]]
    (failed,) = items(r, FAILED_SOP)
    assert failed[SOP_INSTANCE]["Value"] == [other.SOPInstanceUID]
    assert failed[FAILURE_REASON]["Value"] == [CONFLICT]
    assert study_of(services, empty.SOPInstanceUID) == study
    assert study_of(services, other.SOPInstanceUID) is None
    assert counts(services) == (1, 2, 0)


@pytest.mark.parametrize("policy", ["accept"])
def test_stow_keeps_another_patient_id_when_accepted(
    live_http: str, token: str, services: Services, tmp_path: Path
) -> None:
    study, _ = known_study(services, tmp_path)
    other = instance_of(study, patient_id=OTHER_ID, IssuerOfPatientID="1.2.826.0.1.77")
    client = DICOMwebClient(url=f"{live_http}/dicomweb", headers=bearer(token))
    response = client.store_instances(datasets=[other], study_instance_uid=study)
    assert "FailedSOPSequence" not in response
    assert [i.ReferencedSOPInstanceUID for i in response.ReferencedSOPSequence] == [other.SOPInstanceUID]
    assert study_of(services, other.SOPInstanceUID) == study
    found = services.qa.patient_mismatches()
    assert found.total == 1
    (m,) = found.newest
    assert (m.sop_uid, m.study_uid, m.received_via, m.calling_ae) == (
        other.SOPInstanceUID,
        study,
        "stow-rs",
        None,
    )
    assert (m.study_patient_id, m.study_id_system) == ("A", "urn:facade:issuer:HOSP_A")
    assert (m.instance_patient_id, m.instance_id_system) == (OTHER_ID, "urn:oid:1.2.826.0.1.77")


# facade import


def run_facade_import(settings: Settings, *paths: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = logging.getLogger().handlers[:]
    try:
        code = run_import(settings, list(paths), out=out, err=err)
    finally:
        logging.getLogger().handlers[:] = saved
    return code, out.getvalue()


def test_facade_import_reports_another_patient_and_imports_no_patient_id(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    study, _ = known_study(services, tmp_path)
    src = tmp_path / "src"
    empty = write(instance_of(study, patient_id=""), src / "empty.dcm")
    other = write(instance_of(study, patient_id=OTHER_ID), src / "other.dcm")
    code, summary = run_facade_import(settings, src)
    assert code == 1  # one file rejected
    assert f"1  {REASON}" in summary
    assert f"{other}: {REASON}" in summary
    assert str(empty) not in summary
    assert study_of(services, dcmread(empty).SOPInstanceUID) == study
    assert counts(services) == (1, 2, 0)


@pytest.mark.parametrize("policy", ["accept"])
def test_facade_import_keeps_another_patient_when_accepted(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    study, _ = known_study(services, tmp_path)
    anonymous = new_uid()  # a study stored without Patient ID, then an instance naming one
    write(
        make_instance(study_uid=anonymous, series_uid=new_uid(), patient_id=None), tmp_path / "src" / "1.dcm"
    )
    write(instance_of(anonymous, patient_id=OTHER_ID), tmp_path / "src" / "2.dcm")
    write(instance_of(study, patient_id=OTHER_ID), tmp_path / "src" / "3.dcm")
    code, summary = run_facade_import(settings, tmp_path / "src")
    assert code == 0, summary
    assert counts(services) == (2, 4, 2)
    assert [
        (m.study_uid, m.received_via, m.instance_patient_id) for m in services.qa.patient_mismatches().newest
    ] == [
        (study, "import", OTHER_ID),
        (anonymous, "import", OTHER_ID),
    ]
    everything = qa_mismatches(settings)
    assert everything.returncode == 0, everything.stderr
    (row,) = [line for line in everything.stdout.splitlines() if anonymous in line]
    assert re.split(r"\s{2,}", row)[3:] == [
        "(no Patient ID)",
        f"{OTHER_ID} (urn:facade:patient-id)",
        "import",
        "-",
    ]
    newest = qa_mismatches(settings, "--limit", "1")
    assert study in newest.stdout and anonymous not in newest.stdout
    assert "(1 of 2 shown, newest first; --limit 0 shows all)" in newest.stdout
