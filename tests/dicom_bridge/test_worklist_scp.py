"""Modality Worklist C-FIND SCP (PS3.4 K.6; IHE RAD-5) through the serving composition, against
dcmtk's findscu -W and pynetdicom, with orders written as rows (`tests.orders`)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from facade.settings import Settings
from facade.wiring import Services
from tests.orders import procedure, seed
from tests.tools import require_tool

WORKLIST = "1.2.840.10008.5.1.4.31"
PENDING = 0xFF00
TODAY = date.today().strftime("%Y%m%d")
TOMORROW = (date.today() + timedelta(days=1)).strftime("%Y%m%d")
SPS = "ScheduledProcedureStepSequence[0]"


def mwl(port: int, out: Path, *keys: str, extra: tuple[str, ...] = ()) -> list[Dataset]:
    """findscu -W's responses, extracted to files and read back."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [require_tool("findscu"), "-W", "-aec", "FACADE", "-X", "-od", str(out), *extra]
    for key in keys:
        cmd += ["-k", key]
    done = subprocess.run(
        [*cmd, "127.0.0.1", str(port)], check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def accessions(responses: list[Dataset]) -> list[str]:
    return sorted(str(r.AccessionNumber) for r in responses)


@pytest.fixture
def orders(services: Services) -> None:
    """Four open steps and a completed one, of two patients:
    A1 CT on CT1 today 09:30, A2 MR on MR1 today 14:00, A3 CT on CT1 tomorrow 08:00 (Alice);
    B1 CT on CT1 and CT2 today 11:00, B2 CT on CT1 today 10:00 but completed (Bob)."""
    seed(services, procedure("A1", start_date=TODAY, start_time="093000"))
    seed(
        services, procedure("A2", modality="MR", station_aets=("MR1",), start_date=TODAY, start_time="140000")
    )
    seed(services, procedure("A3", start_date=TOMORROW, start_time="080000"))
    bob = {"patient_id": "PID-2", "name": "Probe^Bob", "birth_date": "19700202", "sex": "M"}
    seed(services, procedure("B1", station_aets=("CT1", "CT2"), start_date=TODAY, start_time="110000"), **bob)
    seed(services, procedure("B2", start_date=TODAY, start_time="100000"), status="COMPLETED", **bob)


@pytest.mark.usefixtures("orders")
def test_station_and_today(port: int, tmp_path: Path) -> None:
    found = mwl(
        port, tmp_path, "AccessionNumber", f"{SPS}.ScheduledStationAETitle=CT1",
        f"{SPS}.ScheduledProcedureStepStartDate={TODAY}", f"{SPS}.ScheduledProcedureStepStartTime",
    )  # fmt: skip
    assert accessions(found) == ["A1", "B1"]
    step = found[0].ScheduledProcedureStepSequence[0]
    assert step.ScheduledProcedureStepStartDate == TODAY and step.ScheduledProcedureStepStartTime


@pytest.mark.usefixtures("orders")
def test_a_date_range_and_a_combined_datetime_range(port: int, tmp_path: Path) -> None:
    both_days = mwl(
        port, tmp_path / "a", "AccessionNumber", f"{SPS}.ScheduledProcedureStepStartDate={TODAY}-{TOMORROW}"
    )
    assert accessions(both_days) == ["A1", "A2", "A3", "B1"]
    # today 12:00 to tomorrow 09:00: one range, not a date range and a time range
    overnight = mwl(
        port, tmp_path / "b", "AccessionNumber", f"{SPS}.ScheduledProcedureStepStartDate={TODAY}-{TOMORROW}",
        f"{SPS}.ScheduledProcedureStepStartTime=1200-0900",
    )  # fmt: skip
    assert accessions(overnight) == ["A2", "A3"]


@pytest.mark.usefixtures("orders")
def test_modality(port: int, tmp_path: Path) -> None:
    assert accessions(mwl(port, tmp_path, "AccessionNumber", f"{SPS}.Modality=MR")) == ["A2"]


@pytest.mark.usefixtures("orders")
def test_patient_name_wildcard_and_patient_id(port: int, tmp_path: Path) -> None:
    assert accessions(mwl(port, tmp_path / "a", "AccessionNumber", "PatientName=probe*")) == ["B1"]
    assert accessions(mwl(port, tmp_path / "b", "AccessionNumber", "PatientID=PID-1")) == ["A1", "A2", "A3"]


@pytest.mark.usefixtures("orders")
def test_accession_and_requested_procedure_id(port: int, tmp_path: Path) -> None:
    assert accessions(mwl(port, tmp_path / "a", "AccessionNumber=A2")) == ["A2"]
    found = mwl(port, tmp_path / "b", "AccessionNumber", "RequestedProcedureID=RP-A3")
    assert accessions(found) == ["A3"]
    assert found[0].RequestedProcedureID == "RP-A3"


@pytest.mark.usefixtures("orders")
def test_universal_keys_return_what_the_step_has(port: int, tmp_path: Path) -> None:
    found = mwl(
        port, tmp_path, "AccessionNumber=A1", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
        "StudyInstanceUID", "RequestedProcedureDescription", "AdmissionID", "PatientWeight",
        "ScheduledProcedureStepSequence",
    )  # fmt: skip
    (item,) = found
    assert (str(item.PatientName), item.PatientID, item.PatientBirthDate, item.PatientSex) == (
        "Testperson^Alice", "PID-1", "19800101", "F",
    )  # fmt: skip
    assert item.RequestedProcedureDescription == "CT Head" and item.AdmissionID == "ADM-1"
    assert item.StudyInstanceUID.startswith("1.2.826.0.1.3680043.10.543.")
    assert item.PatientWeight in (None, "")  # asked, not held: empty
    assert "RequestedProcedureID" not in item  # not asked
    (step,) = item.ScheduledProcedureStepSequence  # an empty sequence key: the whole item
    assert (step.ScheduledStationAETitle, step.Modality, step.ScheduledProcedureStepID) == (
        "CT1",
        "CT",
        "SPS-A1",
    )
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "P-HEAD"
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"


@pytest.mark.usefixtures("orders")
def test_a_step_for_two_stations_is_found_by_each(port: int, tmp_path: Path) -> None:
    ct2 = mwl(port, tmp_path / "a", "AccessionNumber", f"{SPS}.ScheduledStationAETitle=CT2")
    assert accessions(ct2) == ["B1"]
    assert list(ct2[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle) == ["CT1", "CT2"]
    ct1 = mwl(port, tmp_path / "b", "AccessionNumber", f"{SPS}.ScheduledStationAETitle=CT1")
    assert "B1" in accessions(ct1)


def test_a_title_between_others_and_not_a_prefix(services: Services, port: int, tmp_path: Path) -> None:
    seed(services, procedure("M1", station_aets=("CT10", "CT3", "CT20")))
    assert accessions(mwl(port, tmp_path / "a", "AccessionNumber", f"{SPS}.ScheduledStationAETitle=CT3")) == [
        "M1"
    ]
    assert (
        accessions(mwl(port, tmp_path / "b", "AccessionNumber", f"{SPS}.ScheduledStationAETitle=CT1")) == []
    )
    assert accessions(
        mwl(port, tmp_path / "c", "AccessionNumber", f"{SPS}.ScheduledStationAETitle=CT2*")
    ) == ["M1"]


@pytest.mark.usefixtures("orders")
def test_completed_steps_are_hidden_unless_asked_for(port: int, tmp_path: Path) -> None:
    assert "B2" not in accessions(mwl(port, tmp_path / "a", "AccessionNumber", "PatientID=PID-2"))
    done = mwl(port, tmp_path / "b", "AccessionNumber", f"{SPS}.ScheduledProcedureStepStatus=COMPLETED")
    assert accessions(done) == ["B2"]


def test_a_non_ascii_name_with_its_character_set(services: Services, port: int, tmp_path: Path) -> None:
    seed(services, procedure("U1"), patient_id="PID-U", name="Müller^Jörg")
    seed(services, procedure("U2"), patient_id="PID-V", name="Muller^Jorg")
    found = mwl(
        port, tmp_path, "SpecificCharacterSet=ISO_IR 192", "PatientName=Müll*", "AccessionNumber",
    )  # fmt: skip
    assert accessions(found) == ["U1"]
    assert found[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(found[0].PatientName) == "Müller^Jörg"
    # the same query in Latin-1 finds the same, answered in UTF-8
    identifier = Dataset()
    identifier.SpecificCharacterSet = "ISO_IR 100"
    identifier.PatientName = "müller*"
    identifier.AccessionNumber = ""
    (pending, final) = find(port, identifier)
    assert pending[0] == PENDING and pending[1] is not None and pending[1].AccessionNumber == "U1"
    assert str(pending[1].PatientName) == "Müller^Jörg"
    assert final[0] == 0x0000


def find(port: int, identifier: Dataset) -> list[tuple[int, Dataset | None]]:
    """pynetdicom's MWL C-FIND: every (status, identifier), the final one included."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(WORKLIST, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert assoc.is_established
    try:
        return [(int(status.Status), ds) for status, ds in assoc.send_c_find(identifier, WORKLIST)]
    finally:
        assoc.release()


@pytest.mark.one_backend
def test_a_bad_identifier_is_refused_with_a_comment(port: int) -> None:
    identifier = Dataset()
    identifier.StudyInstanceUID = "1.2.*"
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(WORKLIST, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    try:
        ((status, _),) = list(assoc.send_c_find(identifier, WORKLIST))
    finally:
        assoc.release()
    assert status.Status == 0xA900
    assert "StudyInstanceUID" in status.ErrorComment


@pytest.mark.one_backend
def test_a_cancel_is_honoured(services: Services, port: int, tmp_path: Path) -> None:
    base = procedure("C1")
    steps = tuple(replace(base.steps[0], sps_id=f"S{n}") for n in range(600))
    seed(services, replace(base, steps=steps))
    found = mwl(port, tmp_path, "AccessionNumber", extra=("--cancel", "1"))
    assert 1 <= len(found) < 600


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """ORM orders name no station: CT's is CT1."""
    return settings.model_copy(update={"worklist_stations": {"CT": ["CT1"]}})


def test_orders_that_hl7_brought_in(services: Services, port: int, tmp_path: Path) -> None:
    """ORM^O01 and OMI^O23 through the HL7 inbox, then the worklist: the ORM's step on the station
    the settings name for CT, each OMI step on its IPC stations; a cancel hides the ORM's."""
    from tests.hl7_samples import omi, orm

    inbox = services.hl7_inbox
    for message in (orm(accession="ORM-1"), omi(accession="OMI-1")):
        assert b"MSA|AA" in inbox.receive(message.encode(), "127.0.0.1:1")
    keys = ("AccessionNumber", "PatientName", f"{SPS}.ScheduledProcedureStepStartDate=20261203")
    ct1 = mwl(
        port, tmp_path / "a", *keys, f"{SPS}.ScheduledStationAETitle=CT1", f"{SPS}.ScheduledProcedureStepID"
    )
    steps = sorted(
        (str(r.AccessionNumber), r.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID) for r in ct1
    )
    assert steps == [("OMI-1", "SPS-2b"), ("ORM-1", "SPS-1")]
    mr2 = mwl(port, tmp_path / "b", *keys, f"{SPS}.ScheduledStationAETitle=MR2", "PatientID")
    assert [(str(r.AccessionNumber), r.PatientID, str(r.PatientName)) for r in mr2] == [
        ("OMI-1", "PAT-2", "Roe^Richard")
    ]
    cancel = orm("CA", msg_id="MSG0002", accession="ORM-1", order_status="CA")
    assert b"MSA|AA" in inbox.receive(cancel.encode(), "127.0.0.1:1")
    assert accessions(mwl(port, tmp_path / "c", *keys, f"{SPS}.ScheduledStationAETitle=CT1")) == ["OMI-1"]


@pytest.mark.usefixtures("orders")
def test_the_calling_ae_as_station_when_configured(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    """FACADE_WORKLIST_CALLING_AE_AS_STATION: a modality that asks without a Scheduled Station AE
    Title gets its own steps (by its calling AE title), not every station's; a query that names
    a station is answered as asked. Off (the default), whoever asks gets every open step."""
    station = f"{SPS}.ScheduledStationAETitle=CT1"
    assert asked_by("CT2", settings, services, tmp_path / "off", on=False) == ["A1", "A2", "A3", "B1"]
    assert asked_by("CT2", settings, services, tmp_path / "ct2", on=True) == ["B1"]
    assert asked_by("MR1", settings, services, tmp_path / "mr1", on=True) == ["A2"]
    assert asked_by("CT2", settings, services, tmp_path / "named", station, on=True) == ["A1", "A3", "B1"]


def asked_by(aet: str, settings: Settings, services: Services, out: Path, *keys: str, on: bool) -> list[str]:
    """The accessions a worklist query from `aet` gets, with the setting on or off."""
    from facade.serve import start_dicom

    configured = settings.model_copy(update={"dicom_port": 0, "worklist_calling_ae_as_station": on})
    server = start_dicom(configured, services)
    try:
        return accessions(mwl(server.server_address[1], out, "AccessionNumber", *keys, extra=("-aet", aet)))
    finally:
        server.shutdown()
