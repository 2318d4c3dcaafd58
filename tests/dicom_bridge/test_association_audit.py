"""C-STORE associations in the audit trail, against real peers (dcmtk's storescu, pynetdicom as
SCU): who, from where, how the association ended, what its C-STOREs came to; no PHI."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage

from dicom_bridge.admission import Admission
from dicom_bridge.ae import AeConfig, storage_ae
from dicom_bridge.association_audit import AssociationAudit, outcome_of_store
from dicom_bridge.storage_scp import StorageScp
from facade.wiring import Services
from storage.audit.models import AuditEventRow
from storage.audit.store import AuditStore
from tests.dicom_factory import make_instance, new_uid, write
from tests.tools import require_tool

NAME, PID, OTHER_PID, ACCESSION = "Auditname^Nobody", "AUDIT-PID-7", "AUDIT-PID-8", "AUDIT-ACC-7"


@pytest.fixture
def scp_port(services: Services) -> Iterator[int]:
    handlers = StorageScp(services.ingest).handlers() + AssociationAudit(services.audit).handlers()
    server = storage_ae(AeConfig()).start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    assert server is not None
    yield server.server_address[1]
    server.shutdown()


def associations(services: Services, count: int) -> list[AuditEventRow]:
    """The trail's association events once there are `count` (the SCP records an association when
    its thread sees the end, which may be just after the peer has gone)."""
    store = AuditStore(services.db)
    deadline = time.monotonic() + 15
    while True:
        services.audit.flush()
        events = store.events(source="dimse")
        if len(events) >= count or time.monotonic() > deadline:
            assert len(events) == count, events
            return events
        time.sleep(0.05)


def test_storescu_association_is_audited_with_counts_and_no_phi(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    storescu = require_tool("storescu")
    study, series, taken = new_uid(), new_uid(), new_uid()
    phi = {"patient_name": NAME, "patient_id": PID, "AccessionNumber": ACCESSION}
    files = [
        write(make_instance(study_uid=study, series_uid=series, sop_uid=taken, **phi), tmp_path / "1.dcm"),
        write(
            make_instance(study_uid=study, series_uid=series, instance_number=2, **phi), tmp_path / "2.dcm"
        ),
        # the same study for another patient: refused (0xC001)
        write(
            make_instance(study_uid=study, series_uid=new_uid(), **phi | {"patient_id": OTHER_PID}),
            tmp_path / "3.dcm",
        ),
    ]
    subprocess.run(
        [storescu, "-aet", "MODALITY1", "-aec", "FACADE", "127.0.0.1", str(scp_port), *map(str, files)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    (event,) = associations(services, 1)
    assert (event.source, event.action, event.outcome) == ("dimse", "association", "released")
    assert (event.client_id, event.peer) == ("MODALITY1", "127.0.0.1")
    assert event.counts == {"stored": 2, "refused": 1, "failed": 0}
    assert event.patient is None and event.user is None
    row = " ".join(str(getattr(event, c.key)) for c in AuditEventRow.__table__.columns)
    for secret in (NAME, "Auditname", PID, OTHER_PID, ACCESSION, study, series, taken):
        assert secret not in row


def test_association_to_another_ae_title_is_audited_as_rejected(scp_port: int, services: Services) -> None:
    echoscu = require_tool("echoscu")
    done = subprocess.run(
        [echoscu, "-aet", "STRANGER", "-aec", "NOTFACADE", "127.0.0.1", str(scp_port)],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert done.returncode != 0
    (event,) = associations(services, 1)
    assert (event.outcome, event.client_id) == ("rejected", "STRANGER")
    assert event.counts == {"stored": 0, "refused": 0, "failed": 0}


def test_aborted_association_is_audited_as_aborted(scp_port: int, services: Services) -> None:
    ae = AE(ae_title="ABORTER")
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", scp_port, ae_title="FACADE")
    assert assoc.is_established
    assoc.abort()
    (event,) = associations(services, 1)
    assert (event.outcome, event.client_id, event.counts) == (
        "aborted",
        "ABORTER",
        {"stored": 0, "refused": 0, "failed": 0},
    )


def test_connection_that_never_asks_to_associate_leaves_no_event(services: Services) -> None:
    handlers = AssociationAudit(services.audit).handlers()
    server = storage_ae(AeConfig(acse_timeout=0.2)).start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=handlers
    )
    assert server is not None
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        assert sock.recv(1) == b""  # closed by the ARTIM timer: no A-ASSOCIATE-RQ came
    server.shutdown()
    services.audit.flush()
    assert AuditStore(services.db).events(source="dimse") == []


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, "stored"),
        (0xB000, "stored"),
        (0xB007, "stored"),
        (0xA700, "refused"),
        (0xC000, "refused"),
        (0xC001, "refused"),
        (0xC211, "failed"),
        (0x0110, "failed"),
    ],
)
def test_outcome_of_a_store_status(status: int, outcome: str) -> None:
    """PS3.4 B.2.3: success and warnings stored the instance; 0xC211 / 0x0110 are our failures."""
    assert outcome_of_store(status) == outcome


def test_association_over_the_admission_limit_is_audited_as_rejected(services: Services) -> None:
    handlers = Admission(4, 1).handlers() + AssociationAudit(services.audit).handlers()
    server = storage_ae(AeConfig()).start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    assert server is not None
    ae = AE(ae_title="BUSYPEER")
    ae.add_requested_context(MRImageStorage)
    try:
        first = ae.associate("127.0.0.1", server.server_address[1], ae_title="FACADE")
        assert first.is_established
        second = ae.associate("127.0.0.1", server.server_address[1], ae_title="FACADE")
        assert second.is_rejected
        first.release()
        rejected, released = associations(services, 2)
    finally:
        server.shutdown()
    assert (rejected.outcome, rejected.client_id, rejected.peer) == ("rejected", "BUSYPEER", "127.0.0.1")
    assert (released.outcome, released.client_id) == ("released", "BUSYPEER")
