"""Fixtures of the retrieve tests (C-GET, C-MOVE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import RLELossless

from facade.wiring import Services
from storage.usecases.ingest import Source
from tests.dicom_factory import make_instance, new_uid, write


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
