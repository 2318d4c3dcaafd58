"""C-FIND on the facade's own association path (`dicom_bridge.fast_association`) against
pynetdicom's, serving the same archive and worklist in the same test: the same responses, byte
for byte as findscu writes them, in every transfer syntax and PDU size, the same statuses for
refusals, the same audit counts; and which associations take it."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicom_bridge.fast_server import FastServer
from facade.wiring import Services
from tests.archive import store
from tests.dicom_bridge.raw_peer import abort_received, after_meta, associate_raw, audit_counts
from tests.orders import procedure, seed
from tests.tools import dcmtk

STUDY_ROOT = str(StudyRootQueryRetrieveInformationModelFind)
PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.1"
WORKLIST = "1.2.840.10008.5.1.4.31"
SPS = "ScheduledProcedureStepSequence[0]"


@pytest.fixture
def archive(services: Services, tmp_path: Path) -> None:
    """Two patients, three studies; names in Latin-1 and in Japanese (ISO 2022 IR 87); and two
    worklist steps."""
    tiny = {"rows": 4, "columns": 4}
    study = "1.2.826.0.1.3680043.10.543.7001"
    for n in (1, 2):
        store(
            services, tmp_path, study_uid=study, series_uid=f"{study}.1", instance_number=n,
            patient_id="PID-A", patient_name="Müller^Jürgen", SpecificCharacterSet="ISO_IR 100", **tiny,
        )  # fmt: skip
    store(
        services, tmp_path, study_uid=f"{study}.2", series_uid=f"{study}.2.1", modality="CT",
        StudyDate="20231224", AccessionNumber="ACC-2", patient_id="PID-A", patient_name="Müller^Jürgen",
        SpecificCharacterSet="ISO_IR 100", **tiny,
    )  # fmt: skip
    store(
        services, tmp_path, study_uid=f"{study}.3", series_uid=f"{study}.3.1", modality="CT",
        patient_id="PID-Y", patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう",
        SpecificCharacterSet=["", "ISO 2022 IR 87"], **tiny,
    )  # fmt: skip
    seed(services, procedure("W1", start_date="20261203", start_time="093000"))
    seed(services, procedure("W2", station_aets=("CT1", "CT2"), start_date="20261203", start_time="110000"))


def findscu(port: int, out: Path, flag: str, *keys: str, extra: tuple[str, ...] = ()) -> list[bytes]:
    """The response identifiers findscu wrote (-X), as bytes after their file meta information
    (which names a fresh instance UID per file), in the order they came."""
    out.mkdir(parents=True, exist_ok=True)
    done = dcmtk(
        "findscu",
        port,
        flag,
        "-aec",
        "FACADE",
        "-X",
        "-od",
        str(out),
        *extra,
        *(a for k in keys for a in ("-k", k)),
    )
    assert done.returncode == 0, done.stderr
    return [after_meta(p.read_bytes()) for p in sorted(out.glob("rsp*.dcm"))]


QUERIES: list[tuple[str, tuple[str, ...]]] = [
    ("-S", ("QueryRetrieveLevel=STUDY", "PatientID=PID-A", "PatientName", "StudyDate", "ModalitiesInStudy",
            "NumberOfStudyRelatedInstances", "SpecificCharacterSet")),
    ("-S", ("QueryRetrieveLevel=STUDY", "PatientID=PID-Y", "PatientName", "SpecificCharacterSet",
            "StudyInstanceUID")),
    ("-P", ("QueryRetrieveLevel=PATIENT", "PatientID=PID*", "PatientName", "NumberOfPatientRelatedStudies")),
    ("-S", ("QueryRetrieveLevel=IMAGE", "StudyInstanceUID=1.2.826.0.1.3680043.10.543.7001",
            "SeriesInstanceUID=1.2.826.0.1.3680043.10.543.7001.1", "SOPInstanceUID", "InstanceNumber")),
    ("-W", ("AccessionNumber", "PatientName", f"{SPS}.ScheduledStationAETitle=CT1",
            f"{SPS}.ScheduledProcedureStepStartDate=20261203", f"{SPS}.ScheduledProcedureStepStartTime")),
]  # fmt: skip


@pytest.mark.usefixtures("archive")
@pytest.mark.parametrize(("flag", "keys"), QUERIES)
@pytest.mark.parametrize("option", ["-xi", "-xe", "-xb"])
def test_findscu_gets_the_same_responses_from_both_paths(
    servers: dict[bool, ThreadedAssociationServer],
    tmp_path: Path,
    flag: str,
    keys: tuple[str, ...],
    option: str,
) -> None:
    """-xi Implicit VR alone, -xe Explicit, -xb Big Endian first; a 4 KB max PDU on one side."""
    extra = (option, "-pdu", "4096") if option == "-xb" else (option,)
    ours = findscu(servers[True].server_address[1], tmp_path / "ours", flag, *keys, extra=extra)
    theirs = findscu(servers[False].server_address[1], tmp_path / "theirs", flag, *keys, extra=extra)
    assert ours and ours == theirs
    assert isinstance(servers[True], FastServer) and servers[True].fast_associations == 1


def pynetdicom_find(port: int, model: str, identifier: Dataset, syntax: str) -> list[tuple[int, str, Any]]:
    """pynetdicom's C-FIND: every (status, error comment, identifier), the final one included."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(model, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert assoc.is_established
    try:
        return [
            (int(status.Status), str(status.get("ErrorComment", "")), ds)
            for status, ds in assoc.send_c_find(identifier, model)
        ]
    finally:
        assoc.release()


def identifier(**keys: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.usefixtures("archive")
@pytest.mark.parametrize(
    ("model", "ds"),
    [
        (STUDY_ROOT, identifier(QueryRetrieveLevel="STUDY", PatientID="PID-A", StudyInstanceUID="")),
        (STUDY_ROOT, identifier(QueryRetrieveLevel="PATIENT", PatientID="PID-A")),  # 0xA900, a comment
        (STUDY_ROOT, identifier(QueryRetrieveLevel="STUDY", StudyDate="2023-2024")),  # 0xA900
        (PATIENT_ROOT, identifier(PatientID="PID-A")),  # no level: refused
        (WORKLIST, identifier(AccessionNumber="W*", PatientName="")),
    ],
)
@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
)
def test_pynetdicom_gets_the_same_answers_from_both_paths(
    servers: dict[bool, ThreadedAssociationServer], model: str, ds: Dataset, syntax: str
) -> None:
    ours = pynetdicom_find(servers[True].server_address[1], model, ds, syntax)
    theirs = pynetdicom_find(servers[False].server_address[1], model, ds, syntax)
    assert ours == theirs
    assert ours[-1][0] != 0xFF00


def test_a_find_with_another_service_goes_to_pynetdicom(
    servers: dict[bool, ThreadedAssociationServer], services: Services
) -> None:
    """C-FIND with C-MOVE on one association: pynetdicom's (the C-FIND is answered all the same);
    with storage and Verification: ours."""
    server = servers[True]
    assert isinstance(server, FastServer)
    for contexts, fast in (
        ((StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelMove), 0),
        ((StudyRootQueryRetrieveInformationModelFind, MRImageStorage, Verification), 1),
    ):
        ae = AE(ae_title="TESTSCU")
        for context in contexts:
            ae.add_requested_context(context, ImplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", server.server_address[1], ae_title="FACADE")
        assert assoc.is_established
        statuses = [
            int(s.Status) for s, _ in assoc.send_c_find(identifier(QueryRetrieveLevel="STUDY"), STUDY_ROOT)
        ]
        assoc.release()
        assert statuses == [0x0000]
        assert server.fast_associations == fast


@pytest.mark.usefixtures("archive")
def test_the_audit_counts_queries_and_matches_alike(
    servers: dict[bool, ThreadedAssociationServer], services: Services
) -> None:
    for server in servers.values():
        pynetdicom_find(
            server.server_address[1], STUDY_ROOT, identifier(QueryRetrieveLevel="SERIES", PatientID="PID-A",
            StudyInstanceUID="1.2.826.0.1.3680043.10.543.7001"), ExplicitVRLittleEndian,
        )  # fmt: skip

    ours, theirs = audit_counts(services, 2)
    assert ours == theirs and ours["queries"] == 1 and ours["found"] == 1


def test_a_request_while_a_find_is_answered_is_aborted(
    servers: dict[bool, ThreadedAssociationServer], services: Services, tmp_path: Path
) -> None:
    """No asynchronous operations window was granted: a C-ECHO-RQ sent behind a C-FIND-RQ, before
    its responses, breaks the protocol; the association is aborted (service provider, unexpected
    PDU) and the server goes on."""
    for n in range(3):
        store(
            services,
            tmp_path,
            study_uid="1.2.826.0.1.3680043.10.543.7009",
            series_uid="1.2.826.0.1.3680043.10.543.7009.1",
            instance_number=n + 1,
            rows=2,
            columns=2,
        )
    server = servers[True]
    find_rq = command(0x0020, STUDY_ROOT, data_set=True)
    echo_rq = command(0x0030, str(Verification), data_set=False)
    ds = identifier(
        QueryRetrieveLevel="IMAGE", StudyInstanceUID="1.2.826.0.1.3680043.10.543.7009", SOPInstanceUID=""
    )
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, True
    write_dataset(fp, ds)
    context = build_context(STUDY_ROOT, ImplicitVRLittleEndian)
    with associate_raw(server.server_address[1], context=context) as sock:
        sock.sendall(pdv(find_rq, 0x03) + pdv(fp.getvalue(), 0x02) + pdv(echo_rq, 0x03))
        assert abort_received(sock) == (2, 2)
    assert pynetdicom_find(server.server_address[1], STUDY_ROOT, ds, ExplicitVRLittleEndian)[-1][0] == 0x0000


def command(field: int, sop_class: str, *, data_set: bool) -> bytes:
    uid = sop_class.encode() + b"\0" * (len(sop_class) % 2)
    body = (
        struct.pack("<HHI", 0, 0x0002, len(uid)) + uid
        + struct.pack("<HHIH", 0, 0x0100, 2, field)
        + struct.pack("<HHIH", 0, 0x0110, 2, 9)
        + struct.pack("<HHIH", 0, 0x0800, 2, 0x0001 if data_set else 0x0101)
    )  # fmt: skip
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def pdv(value: bytes, control: int) -> bytes:
    return struct.pack(">BxIIBB", 4, len(value) + 6, len(value) + 2, 1, control) + value
