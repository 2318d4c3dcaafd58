"""Fixtures of the adapter tests: DICOMweb clients of the live app, the serving composition's
DICOM listener, a stored study to retrieve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import RLELossless
from pynetdicom.transport import ThreadedAssociationServer

from dicom_bridge.fast_server import FastServer
from facade.serve import start_dicom
from facade.settings import Settings
from facade.wiring import Services
from storage.usecases.ingest import Source
from tests.dicom_factory import make_instance, new_uid, write
from tests.smart import bearer


@pytest.fixture
def stored_study(services: Services, tmp_path: Path) -> dict[str, Any]:
    """Two series: two uncompressed instances, and one RLE Lossless instance."""
    study_uid, s1, s2 = new_uid(), new_uid(), new_uid()
    sent = [
        make_instance(study_uid=study_uid, series_uid=s1, instance_number=1, rows=8, columns=8),
        make_instance(study_uid=study_uid, series_uid=s1, instance_number=2, rows=8, columns=8),
    ]
    rle = make_instance(study_uid=study_uid, series_uid=s2, series_number=2, rows=8, columns=8)
    rle.compress(RLELossless, generate_instance_uid=False)
    sent.append(rle)
    for ds in sent:
        path = write(ds, tmp_path / "sent" / f"{ds.SOPInstanceUID}.dcm")
        staged = services.ingest.staging_dir() / path.name
        staged.write_bytes(path.read_bytes())
        services.ingest.staged(staged, Source("import"))
    return {"uid": study_uid, "series": (s1, s2), "sent": {str(ds.SOPInstanceUID): ds for ds in sent}}


@pytest.fixture
def client(live_http: str, token: str) -> DICOMwebClient:
    return DICOMwebClient(url=f"{live_http}/dicomweb", headers=bearer(token))


@pytest.fixture
def http(live_http: str, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live_http}/dicomweb", timeout=60, headers=bearer(token)) as c:
        yield c


@pytest.fixture
def port(settings: Settings, services: Services) -> Iterator[int]:
    server = start_dicom(settings.model_copy(update={"dicom_port": 0}), services)  # any free port
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def servers(settings: Settings, services: Services) -> Iterator[dict[bool, ThreadedAssociationServer]]:
    """Both paths over the same services: {True: ours, False: pynetdicom's}."""
    running = {
        fast: start_dicom(settings.model_copy(update={"dicom_port": 0, "dicom_fast_path": fast}), services)
        for fast in (True, False)
    }
    assert isinstance(running[True], FastServer) and not isinstance(running[False], FastServer)
    yield running
    for server in running.values():
        server.shutdown()
