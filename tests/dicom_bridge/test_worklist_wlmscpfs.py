"""The yardstick: DCMTK's wlmscpfs serving the same worklist entries as files, asked the same
queries by findscu -W as our SCP. The same steps must match, with the same values for the keys
both return.

wlmscpfs binds every address on a port it is given (not port 0), so it runs with its findscu
clients in a private network namespace (`unshare -n`, loopback only), as bench/ runs Orthanc.
Its .wl files are written with pydicom from the same facts the orders are seeded with.

Known and kept difference: DCMTK matches person names case-sensitively; we ignore case (PS3.4
C.2.2.2.1 leaves it to the SCP; a name typed in capitals at the modality must still be found).
"""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from facade.wiring import Services
from mapping.dicom.worklist import WorklistPatient, worklist_item
from mapping.order.facts import RequestedProcedure
from tests.dicom_bridge.test_worklist_scp import SPS, TODAY, TOMORROW, accessions, mwl
from tests.orders import procedure, seed
from tests.tools import missing, require_tool

WORKLIST = "1.2.840.10008.5.1.4.31"


@dataclass(frozen=True)
class Entry:
    order: RequestedProcedure
    patient_id: str
    name: str
    birth_date: str
    sex: str


ALICE = ("PID-1", "Testperson^Alice", "19800101", "F")
BOB = ("PID-2", "Probe^Bob", "19700202", "M")
ENTRIES = (
    Entry(procedure("A1", start_date=TODAY, start_time="093000"), *ALICE),
    Entry(
        procedure("A2", modality="MR", station_aets=("MR1",), start_date=TODAY, start_time="140000"), *ALICE
    ),
    Entry(procedure("A3", start_date=TOMORROW, start_time="080000"), *ALICE),
    Entry(procedure("B1", station_aets=("CT1", "CT2"), start_date=TODAY, start_time="110000"), *BOB),
    Entry(procedure("U1", start_date=TODAY, start_time="150000"), "PID-3", "Müller^Jörg", "19900303", "M"),
)

COMMON = (
    "AccessionNumber",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "RequestedProcedureID",
)
STEP = tuple(
    f"{SPS}.{k}"
    for k in (
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "Modality",
        "ScheduledProcedureStepID",
    )
)
QUERIES: dict[str, tuple[str, ...]] = {
    "station and today": (
        f"{SPS}.ScheduledStationAETitle=CT1",
        f"{SPS}.ScheduledProcedureStepStartDate={TODAY}",
    ),
    "a date range": (f"{SPS}.ScheduledProcedureStepStartDate={TODAY}-{TOMORROW}",),
    "a combined datetime range": (
        f"{SPS}.ScheduledProcedureStepStartDate={TODAY}-{TOMORROW}",
        f"{SPS}.ScheduledProcedureStepStartTime=1200-0900",
    ),
    "modality": (f"{SPS}.Modality=MR",),
    "a name wildcard": ("PatientName=Test*",),
    "patient id": ("PatientID=PID-2",),
    "accession": ("AccessionNumber=A3",),
    "requested procedure id": ("RequestedProcedureID=RP-A2",),
    "the second of two stations": (f"{SPS}.ScheduledStationAETitle=CT2",),
    "universal": (),
}
EXPECTED = {
    "station and today": ["A1", "B1", "U1"],
    "a date range": ["A1", "A2", "A3", "B1", "U1"],
    "a combined datetime range": ["A2", "A3", "U1"],  # today 12:00 to tomorrow 09:00
    "modality": ["A2"],
    "a name wildcard": ["A1", "A2", "A3"],
    "patient id": ["B1"],
    "accession": ["A3"],
    "requested procedure id": ["A2"],
    "the second of two stations": ["B1"],
    "universal": ["A1", "A2", "A3", "B1", "U1"],
}


def _with_return_keys(keys: tuple[str, ...]) -> list[str]:
    asked = {k.split("=")[0] for k in keys}
    return list(keys) + [k for k in (*COMMON, *STEP) if k not in asked]


def _write_files(folder: Path) -> None:
    """One .wl file per entry, in the called AE title's folder, with the lockfile wlmscpfs wants."""
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for entry in ENTRIES:
        patient = WorklistPatient(entry.name, entry.patient_id, "", entry.birth_date, entry.sex)
        ds = worklist_item(patient, entry.order, entry.order.steps[0], "SCHEDULED")
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = WORKLIST
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{entry.order.accession.value}.wl", enforce_file_format=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ask_wlmscpfs(tmp_path: Path, queries: dict[str, list[str]]) -> dict[str, list[Dataset]]:
    """Every query asked of wlmscpfs, inside one private network namespace."""
    wlmscpfs, findscu, echoscu = (require_tool(t) for t in ("wlmscpfs", "findscu", "echoscu"))
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        missing("unshare (util-linux) and ip (iproute2) are needed to run wlmscpfs in its own network")
    _write_files(tmp_path / "wlistdb" / "FACADE")
    port = _free_port()
    lines = [
        "ip link set lo up || exit 3",
        f"{wlmscpfs} -s -csk -dfp {tmp_path / 'wlistdb'} {port} & pid=$!",
        f"for i in $(seq 100); do {echoscu} -aec FACADE 127.0.0.1 {port} 2>/dev/null && break;"
        " sleep 0.05; done",
    ]
    for n, keys in enumerate(queries.values()):
        out = tmp_path / "dcmtk" / str(n)
        out.mkdir(parents=True)
        args = " ".join(f"-k {shlex.quote(k)}" for k in keys)
        lines.append(f"{findscu} -W -aec FACADE -X -od {out} {args} 127.0.0.1 {port} || status=1")
    lines.append('kill $pid; exit "${status:-0}"')
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", "\n".join(lines)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode == 3 or "Operation not permitted" in done.stderr:
        missing(f"no private network namespace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return {
        name: [dcmread(p) for p in sorted((tmp_path / "dcmtk" / str(n)).glob("rsp*.dcm"))]
        for n, name in enumerate(queries)
    }


def _values(ds: Dataset) -> dict[str, Any]:
    """The non-empty values of a response, sequences' items flattened by keyword path."""
    out: dict[str, Any] = {}
    for element in ds:
        if element.keyword == "SpecificCharacterSet":
            continue
        if element.VR == "SQ":
            for item in element.value:
                out |= {f"{element.keyword}.{k}": v for k, v in _values(item).items()}
        elif element.value not in (None, ""):
            value = element.value
            out[element.keyword] = [str(v) for v in value] if element.VM > 1 else str(value).strip()
    return out


@pytest.mark.one_backend
def test_wlmscpfs_matches_the_same_steps_with_the_same_values(
    services: Services, port: int, tmp_path: Path
) -> None:
    for entry in ENTRIES:
        seed(services, entry.order, patient_id=entry.patient_id, name=entry.name,
             birth_date=entry.birth_date, sex=entry.sex)  # fmt: skip
    queries = {name: _with_return_keys(keys) for name, keys in QUERIES.items()}
    theirs = _ask_wlmscpfs(tmp_path, queries)
    for n, (name, keys) in enumerate(queries.items()):
        ours = mwl(port, tmp_path / "facade" / str(n), *keys)
        assert accessions(ours) == accessions(theirs[name]) == EXPECTED[name], name
        by_accession = {str(r.AccessionNumber): r for r in theirs[name]}
        for response in ours:
            mine, dcmtk = _values(response), _values(by_accession[str(response.AccessionNumber)])
            common = mine.keys() & dcmtk.keys()
            assert len(common) >= len(COMMON) + len(STEP) - 1, name
            assert {k: mine[k] for k in common} == {k: dcmtk[k] for k in common}, name
            assert mine.keys() == dcmtk.keys(), name
    # the one difference: person names ignore case here, not in DCMTK
    lower = {"lower-case name": _with_return_keys(("PatientName=test*",))}
    assert _ask_wlmscpfs(tmp_path / "again", lower)["lower-case name"] == []
    assert accessions(mwl(port, tmp_path / "facade" / "lower", *lower["lower-case name"])) == [
        "A1",
        "A2",
        "A3",
    ]
