"""C-FIND SCP (PS3.4 C.4.1) through the serving composition, against findscu and pynetdicom."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from facade.wiring import Services
from mapping.dicom.facts import header_from_dataset
from storage.dicom_index.writer import Arrival, index_instance
from tests.archive import store
from tests.dicom_factory import make_instance, new_uid
from tests.reactor import reactor_resumed
from tests.tools import require_tool

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
PENDING = 0xFF00


@pytest.fixture
def archive(services: Services, tmp_path: Path) -> dict[str, Any]:
    """Three studies of two patients: Alice (MR study of 2 series, CT study), Bob (CT study)."""
    a1, a2, b1 = new_uid(), new_uid(), new_uid()
    s11, s12, s21, s31 = new_uid(), new_uid(), new_uid(), new_uid()
    alice = {"patient_id": "PID-A", "patient_name": "Testperson^Alice"}
    bob = {"patient_id": "PID-B", "patient_name": "Probe^Bob"}
    tiny = {"rows": 4, "columns": 4}
    for n in (1, 2):
        store(services, tmp_path, study_uid=a1, series_uid=s11, instance_number=n, **alice, **tiny)
    store(services, tmp_path, study_uid=a1, series_uid=s12, series_number=2, modality="SR", **alice, **tiny)
    store(
        services, tmp_path, study_uid=a2, series_uid=s21, modality="CT", StudyDate="20231224",
        StudyTime="083000", AccessionNumber="ACC-2", **alice, **tiny,
    )  # fmt: skip
    store(
        services, tmp_path, study_uid=b1, series_uid=s31, modality="CT", StudyDate="20240401",
        StudyTime="170000", AccessionNumber="ACC-3", **bob, **tiny,
    )  # fmt: skip
    return {"alice": (a1, a2), "bob": b1, "series": (s11, s12, s21, s31)}


def findscu(port: int, out: Path, model: str, *keys: str, extra: tuple[str, ...] = ()) -> list[Dataset]:
    """findscu's responses, extracted to files and read back."""
    out.mkdir(parents=True, exist_ok=True)
    flag = {"patient": "-P", "study": "-S"}[model]
    cmd = [require_tool("findscu"), flag, "-aec", "FACADE", "-X", "-od", str(out), *extra]
    for key in keys:
        cmd += ["-k", key]
    done = subprocess.run(
        [*cmd, "127.0.0.1", str(port)], check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def find(port: int, model: str, identifier: Dataset) -> list[tuple[int, Dataset | None]]:
    """pynetdicom's C-FIND: every (status, identifier), the final one included."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(model, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert assoc.is_established
    try:
        return [(int(status.Status), ds) for status, ds in assoc.send_c_find(identifier, model)]
    finally:
        assoc.release()


def query(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_study_level_by_patient_id_with_counts_and_modalities(
    port: int, archive: dict[str, Any], tmp_path: Path
) -> None:
    found = findscu(
        port, tmp_path / "r", "study",
        "QueryRetrieveLevel=STUDY", "PatientID=PID-A", "StudyInstanceUID", "PatientName", "StudyDate",
        "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
        "SOPClassesInStudy", "AccessionNumber",
    )  # fmt: skip
    by_uid = {str(ds.StudyInstanceUID): ds for ds in found}
    a1, a2 = archive["alice"]
    assert set(by_uid) == {a1, a2}
    mr = by_uid[a1]
    assert list(mr.ModalitiesInStudy) == ["MR", "SR"]
    assert (mr.NumberOfStudyRelatedSeries, mr.NumberOfStudyRelatedInstances) == (2, 3)
    assert str(mr.PatientName) == "Testperson^Alice"
    assert mr.RetrieveAETitle == "FACADE"
    assert mr.QueryRetrieveLevel == "STUDY"
    ct = by_uid[a2]
    assert (ct.ModalitiesInStudy, ct.StudyDate, ct.AccessionNumber) == ("CT", "20231224", "ACC-2")
    assert ct.SOPClassesInStudy == CT_IMAGE
    assert "PatientBirthDate" not in ct, "only what was asked, and the unique keys"


NAME_CASES = [
    ("Testperson^Alice", {"alice"}),
    ("TESTPERSON^ALICE", {"alice"}),  # names ignore case
    ("testperson*", {"alice"}),
    ("?robe^B*", {"bob"}),
    ("*", {"alice", "bob"}),
    ("Testperson", set()),  # single value matching is exact, not a prefix
]


def test_patient_name_matching(port: int, archive: dict[str, Any]) -> None:
    for name, expected in NAME_CASES:
        answers = find(port, PATIENT_ROOT, query("PATIENT", PatientName=name, PatientID=""))
        assert answers[-1] == (0x0000, None)
        ids = {str(ds.PatientID) for status, ds in answers if status == PENDING and ds is not None}
        assert ids == {{"alice": "PID-A", "bob": "PID-B"}[who] for who in expected}, name


DATE_CASES = [
    ("20231224", "", {"a2"}),
    ("20240101-20241231", "", {"a1", "b1"}),  # a1 is 20240305
    ("-20231231", "", {"a2"}),
    ("20240401-", "", {"b1"}),
    ("", "1600-", {"b1"}),
    ("", "-08", {"a2"}),  # an hour bound covers the hour
    ("20230101-20241231", "0800-1100", {"a1", "a2"}),
]


def test_date_and_time_ranges(port: int, archive: dict[str, Any]) -> None:
    names = {archive["alice"][0]: "a1", archive["alice"][1]: "a2", archive["bob"]: "b1"}
    for date, time_, expected in DATE_CASES:
        answers = find(port, STUDY_ROOT, query("STUDY", StudyDate=date, StudyTime=time_, StudyInstanceUID=""))
        found = {names[str(ds.StudyInstanceUID)] for s, ds in answers if s == PENDING and ds}
        assert found == expected, (date, time_)


def test_series_level_uid_list_and_counts(port: int, archive: dict[str, Any]) -> None:
    a1 = archive["alice"][0]
    s11, s12, _, s31 = archive["series"]
    answers = find(
        port,
        STUDY_ROOT,
        query(
            "SERIES",
            StudyInstanceUID=a1,
            SeriesInstanceUID=[s11, s31],
            Modality="",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    pending = [ds for s, ds in answers if s == PENDING and ds is not None]
    assert [
        (str(ds.SeriesInstanceUID), ds.Modality, ds.NumberOfSeriesRelatedInstances) for ds in pending
    ] == [(s11, "MR", 2)], "s31 belongs to another study"
    every = find(port, STUDY_ROOT, query("SERIES", StudyInstanceUID=a1, SeriesInstanceUID=""))
    assert {str(ds.SeriesInstanceUID) for s, ds in every if s == PENDING and ds} == {s11, s12}


def test_image_level_and_patient_level_counts(port: int, archive: dict[str, Any]) -> None:
    a1 = archive["alice"][0]
    s11 = archive["series"][0]
    images = find(
        port,
        STUDY_ROOT,
        query("IMAGE", StudyInstanceUID=a1, SeriesInstanceUID=s11, SOPInstanceUID="", InstanceNumber="2"),
    )
    pending = [ds for s, ds in images if s == PENDING and ds is not None]
    assert len(pending) == 1 and pending[0].InstanceNumber == 2
    patients = find(
        port,
        PATIENT_ROOT,
        query(
            "PATIENT",
            PatientID="PID-A",
            NumberOfPatientRelatedStudies="",
            NumberOfPatientRelatedSeries="",
            NumberOfPatientRelatedInstances="",
        ),
    )
    [alice] = [ds for s, ds in patients if s == PENDING and ds is not None]
    assert (
        alice.NumberOfPatientRelatedStudies,
        alice.NumberOfPatientRelatedSeries,
        alice.NumberOfPatientRelatedInstances,
    ) == (2, 3, 4)


def test_modalities_in_study_matching(port: int, archive: dict[str, Any]) -> None:
    def studies(modalities: Any) -> set[str]:
        answers = find(port, STUDY_ROOT, query("STUDY", ModalitiesInStudy=modalities, StudyInstanceUID=""))
        return {str(ds.StudyInstanceUID) for s, ds in answers if s == PENDING and ds is not None}

    a1, a2 = archive["alice"]
    assert studies("CT") == {a2, archive["bob"]}
    assert studies("SR") == {a1}
    assert studies(["SR", "CT"]) == {a1, a2, archive["bob"]}
    assert studies("C*") == {a2, archive["bob"]}


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        ("ISO_IR 100", "Müller^Jörg"),
        ("ISO_IR 192", "Ødegård^Zoë=王^小明"),
        ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう"),  # PS3.5 H.3.1
    ],
)
def test_names_come_back_as_stored_in_their_character_set(
    port: int, services: Services, tmp_path: Path, charset: str, name: str
) -> None:
    study = new_uid()
    store(
        services, tmp_path, study_uid=study, series_uid=new_uid(), patient_name=name,
        SpecificCharacterSet=charset.split("\\") if "\\" in charset else charset, rows=4, columns=4,
    )  # fmt: skip
    found = findscu(
        port, tmp_path / "r", "study", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}", "PatientName"
    )
    assert len(found) == 1
    [ds] = found
    expected = charset.split("\\") if "\\" in charset else charset
    assert ds.SpecificCharacterSet == expected
    assert str(ds.PatientName) == name


def test_a_name_in_another_script_is_found_by_any_group(
    port: int, services: Services, tmp_path: Path
) -> None:
    study = new_uid()
    store(
        services, tmp_path, study_uid=study, series_uid=new_uid(), patient_id="PID-J",
        patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう", SpecificCharacterSet=["", "ISO 2022 IR 87"],
        rows=4, columns=4,
    )  # fmt: skip
    for name in ("山田*", "やまだ^たろう", "YAMADA^TAROU", "Yamada^Tarou=山田^太郎"):
        identifier = query("STUDY", PatientName=name, StudyInstanceUID="")
        identifier.SpecificCharacterSet = "ISO_IR 192"
        answers = find(port, STUDY_ROOT, identifier)
        assert [str(ds.StudyInstanceUID) for s, ds in answers if s == PENDING and ds] == [study], name


REFUSED = [
    (STUDY_ROOT, query("PATIENT", PatientID="")),  # no PATIENT level in Study Root
    (PATIENT_ROOT, query("EVERYTHING", PatientID="")),
    (STUDY_ROOT, query("STUDY", StudyDate="2024-03-05")),
    (STUDY_ROOT, query("STUDY", StudyInstanceUID="1.2.*")),
    (STUDY_ROOT, query("STUDY", StudyDate="20240101-2024")),
]


def test_identifiers_we_cannot_answer_are_refused(port: int) -> None:
    for model, identifier in REFUSED:
        answers = find(port, model, identifier)
        assert [s for s, _ in answers] == [0xA900], identifier


def test_nothing_matches_is_a_plain_success(port: int, archive: dict[str, Any]) -> None:
    assert find(port, STUDY_ROOT, query("STUDY", PatientID="NOBODY")) == [(0x0000, None)]


@pytest.fixture
def big_series(services: Services) -> tuple[str, str, int]:
    """One series of 2,000 instances, indexed as ingest indexes them but without their files
    (C-FIND reads the index only): enough responses that a cancel always arrives mid-answer."""
    study, series, count = new_uid(), new_uid(), 2000
    ds = make_instance(study_uid=study, series_uid=series, rows=1, columns=1)
    del ds.PixelData
    now = datetime.now(UTC)
    with services.db.write_connection() as conn:
        for n in range(count):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
            ds.InstanceNumber = n + 1
            header = header_from_dataset(ds, default_system="urn:test", issuer_system=lambda i: f"urn:{i}")
            index_instance(conn, header, Arrival(f"k{n}", 1, "0" * 64, "import", None, now))
    return study, series, count


def test_cancel_stops_the_responses(port: int, big_series: tuple[str, str, int]) -> None:
    study, series, count = big_series
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(STUDY_ROOT, ExplicitVRLittleEndian)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert assoc.is_established
    try:
        identifier = query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID="")
        statuses = []
        for status, _ in assoc.send_c_find(identifier, STUDY_ROOT, msg_id=7):
            statuses.append(int(status.Status))
            if len(statuses) == 1:
                assoc.send_c_cancel(7, query_model=STUDY_ROOT)
        assert statuses[0] == PENDING
        assert statuses[-1] == 0xFE00
        assert len(statuses) - 1 < count
        reactor_resumed(assoc)  # tests/reactor.py: pynetdicom's race between two requests
        assert assoc.send_c_echo().Status == 0x0000, "the association carries on"
    finally:
        assoc.release()


def test_findscu_cancel_is_honoured(port: int, big_series: tuple[str, str, int], tmp_path: Path) -> None:
    study, series, count = big_series
    found = findscu(
        port, tmp_path / "r", "study", "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study}",
        f"SeriesInstanceUID={series}", "SOPInstanceUID", extra=("--cancel", "1"),
    )  # fmt: skip
    assert 1 <= len(found) < count
