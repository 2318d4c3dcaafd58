"""IHE Scheduled Workflow end to end, with real peers: a RIS sends an order over MLLP
(`mllp_send`), the modality finds it in its worklist (`findscu -W`), makes its images from the
entry and sends them (`storescu`); FHIR shows the ImagingStudy based on the ServiceRequest, for
the same Patient. A patient update (ADT^A08) shows in the worklist at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydicom import Dataset, dcmread
from sqlalchemy import select

from facade.settings import Settings
from facade.wiring import Services
from storage.orders.models import RequestedProcedureRow
from tests.dicom_factory import make_instance, new_uid, write
from tests.hl7_samples import adt, orm
from tests.smart import bearer
from tests.tools import require_tool

MLLP_SEND = str(Path(sys.executable).with_name("mllp_send"))
SPS = "ScheduledProcedureStepSequence[0]"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worklist_stations": {"CT": ["CT1"]}})


def send_hl7(port: int, text: str, tmp_path: Path) -> bytes:
    file = tmp_path / "message.hl7"
    file.write_text(text.replace("\r", "\n"))
    done = subprocess.run(
        [MLLP_SEND, "--loose", "--file", str(file), "--port", str(port), "127.0.0.1"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return done.stdout


def worklist(port: int, out: Path, *, extra: list[str] | None = None) -> list[Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    keys = [
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "ReferringPhysicianName",
        f"{SPS}.ScheduledStationAETitle=CT1",
        f"{SPS}.ScheduledProcedureStepStartDate=20261203",
        f"{SPS}.Modality",
        f"{SPS}.ScheduledProcedureStepID",
        *(extra or []),
    ]
    cmd = [require_tool("findscu"), "-W", "-aet", "CT1", "-aec", "FACADE", "-X", "-od", str(out)]
    for key in keys:
        cmd += ["-k", key]
    done = subprocess.run(
        [*cmd, "127.0.0.1", str(port)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert done.returncode == 0, done.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_order_worklist_images_fhir(
    mllp_port: int, port: int, live_http: str, token: str, tmp_path: Path
) -> None:
    ack = send_hl7(mllp_port, orm(study_uid=None), tmp_path)
    assert b"MSA|AA|MSG0001" in ack
    (entry,) = worklist(port, tmp_path / "mwl")
    assert (entry.PatientID, entry.IssuerOfPatientID, str(entry.PatientName)) == ("PAT-1", "HOSP", "Doe^Jane")
    assert entry.AccessionNumber == "ACC-1" and entry.StudyInstanceUID.startswith("2.25.")

    # the modality: a CT image made from the entry (IHE RAD-8: the attributes copied as they are)
    image = make_instance(
        study_uid=entry.StudyInstanceUID,
        series_uid=new_uid(),
        modality="CT",
        patient_id=entry.PatientID,
        patient_name=str(entry.PatientName),
        IssuerOfPatientID=entry.IssuerOfPatientID,
        AccessionNumber=entry.AccessionNumber,
        PatientBirthDate=entry.PatientBirthDate,
        PatientSex=entry.PatientSex,
    )
    path = write(image, tmp_path / "ct.dcm")
    sent = subprocess.run(
        [require_tool("storescu"), "-aet", "CT1", "-aec", "FACADE", "127.0.0.1", str(port), str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert sent.returncode == 0, sent.stderr

    fhir = httpx.Client(base_url=f"{live_http}/fhir", headers=bearer(token), timeout=30)
    (request,) = [
        e["resource"] for e in fhir.get("/ServiceRequest", params={"identifier": "ACC-1"}).json()["entry"]
    ]
    study = fhir.get(f"/ImagingStudy/{entry.StudyInstanceUID}").raise_for_status().json()
    assert study["basedOn"] == [{"reference": f"ServiceRequest/{request['id']}"}]
    assert study["subject"] == request["subject"]  # one patient: the order's and the images'
    patients = fhir.get("/Patient", params={"identifier": "PAT-1"}).json()
    assert len(patients["entry"]) == 1

    # a patient update from the RIS shows in the worklist at once
    assert b"MSA|AA" in send_hl7(mllp_port, adt("A08", msg_id="ADT-2", name="Doe-Smith^Jane"), tmp_path)
    (renamed,) = worklist(port, tmp_path / "mwl-2")
    assert str(renamed.PatientName) == "Doe-Smith^Jane"


def test_a_name_sent_with_character_set_switches_reaches_fhir_and_the_worklist(
    mllp_port: int, port: int, live_http: str, token: str, tmp_path: Path
) -> None:
    """PID-5 in JIS X 0208 between `\\M2442\\` and `\\C2842\\` (ISO 2022 in HL7 escapes) is the
    kanji in the Patient and in the worklist entry, which says its character set (UTF-8)."""
    family, given = ("山田".encode("iso2022_jp")[3:-3].decode(), "太郎".encode("iso2022_jp")[3:-3].decode())
    name = f"\\M2442\\{family}\\C2842\\^\\M2442\\{given}\\C2842\\"
    assert b"MSA|AA|MSG0001" in send_hl7(mllp_port, orm(name=name), tmp_path)
    (entry,) = worklist(port, tmp_path / "mwl")
    assert str(entry.PatientName) == "山田^太郎" and entry.SpecificCharacterSet == "ISO_IR 192"
    fhir = httpx.Client(base_url=f"{live_http}/fhir", headers=bearer(token), timeout=30)
    (patient,) = [e["resource"] for e in fhir.get("/Patient", params={"identifier": "PAT-1"}).json()["entry"]]
    assert patient["name"][0]["family"] == "山田" and patient["name"][0]["given"] == ["太郎"]

    # a switch to a set we cannot decode (ESC $ A, GB 2312 in G0) is refused, naming PID-5
    unknown = send_hl7(mllp_port, orm(msg_id="MSG0002", patient_id="PAT-9", name="\\M2441\\0A^X"), tmp_path)
    assert b"MSA|AE|MSG0002" in unknown and b"\rERR|PID^1^5^103&" in unknown, unknown
    assert "entry" not in fhir.get("/Patient", params={"identifier": "PAT-9"}).json()


def _with_details(message: str) -> str:
    """The ORM with allergies (AL1, after PV1) and body weight / height (OBX, after the OBR)."""
    segments = message.rstrip("\r").split("\r")
    pv1 = next(i for i, s in enumerate(segments) if s.startswith("PV1"))
    segments[pv1 + 1 : pv1 + 1] = ["AL1|1|DA|C0009^Iodinated contrast^L|SV", "AL1|2|DA|^Latex"]
    obr = next(i for i, s in enumerate(segments) if s.startswith("OBR"))
    segments[obr + 1 : obr + 1] = [
        "OBX|1|NM|29463-7^Body weight^LN||154|[lb_av]^pound^UCUM|||||F",
        "OBX|2|NM|8302-2^Body height^LN||172.5|cm|||||F",
    ]
    return "\r".join(segments) + "\r"


DETAILS = ["Allergies", "PatientWeight", "PatientSize", "CurrentPatientLocation", "RouteOfAdmissions"]


def test_allergies_weight_height_and_visit_reach_the_worklist_and_an_a08_updates_them(
    mllp_port: int, port: int, tmp_path: Path
) -> None:
    assert b"MSA|AA|MSG0001" in send_hl7(mllp_port, _with_details(orm()), tmp_path)
    (entry,) = worklist(port, tmp_path / "mwl", extra=[*DETAILS, "AdmissionID"])
    assert list(entry.Allergies) == ["Iodinated contrast", "Latex"]
    assert (entry.PatientWeight, entry.PatientSize) == (69.853, 1.725)  # 154 lb, 172.5 cm
    assert (entry.CurrentPatientLocation, entry.RouteOfAdmissions, entry.AdmissionID) == ("RAD", "O", "V123")

    # the ward admits the patient: a new weight, a bed, inpatient; no AL1, so the allergies stay
    update = (
        adt("A08", msg_id="ADT-3") + "PV1||I|WARD2^12^B\rOBX|1|NM|29463-7^Body weight^LN||72.4|kg|||||F\r"
    )
    assert b"MSA|AA|ADT-3" in send_hl7(mllp_port, update, tmp_path)
    (updated,) = worklist(port, tmp_path / "mwl-2", extra=DETAILS)
    assert (updated.PatientWeight, updated.PatientSize) == (72.4, 1.725)
    assert (updated.CurrentPatientLocation, updated.RouteOfAdmissions) == ("WARD2^12^B", "I")
    assert list(updated.Allergies) == ["Iodinated contrast", "Latex"]

    # a weight in a unit we cannot convert is refused, naming OBX-6; nothing changes
    stones = adt("A08", msg_id="ADT-4") + "OBX|1|NM|29463-7^Body weight^LN||11|st|||||F\r"
    refused = send_hl7(mllp_port, stones, tmp_path)
    assert b"MSA|AE|ADT-4" in refused and b"OBX^1^6" in refused, refused
    (same,) = worklist(port, tmp_path / "mwl-3", extra=DETAILS)
    assert same.PatientWeight == 72.4


def test_an_a08_repeating_what_the_order_said_changes_no_order(
    mllp_port: int, services: Services, tmp_path: Path
) -> None:
    assert b"MSA|AA|MSG0001" in send_hl7(mllp_port, _with_details(orm()), tmp_path)
    with services.db.read() as session:
        before = session.scalar(select(RequestedProcedureRow.changed_at))
    same = (
        adt("A08", msg_id="ADT-5") + "PV1||O|RAD\rAL1|1|DA|C0009^Iodinated contrast^L|SV\rAL1|2|DA|^Latex\r"
    )
    assert b"MSA|AA|ADT-5" in send_hl7(mllp_port, same, tmp_path)
    with services.db.read() as session:
        assert session.scalar(select(RequestedProcedureRow.changed_at)) == before
