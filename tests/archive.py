"""Putting synthetic instances into the archive through the shared ingest path (as `facade import`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from facade.wiring import Services
from storage.fhir_store.visibility import ALL
from storage.usecases.ingest import Source
from tests.dicom_factory import make_instance, write


def store(services: Services, tmp_path: Path, **attrs: Any) -> str:
    """Store one synthetic instance; returns its SOP Instance UID."""
    ds = make_instance(**attrs)
    path = write(ds, tmp_path / f"{ds.SOPInstanceUID}.dcm")
    staged = services.ingest.staging_dir() / path.name
    shutil.copyfile(path, staged)
    services.ingest.staged(staged, Source("import"))
    return str(ds.SOPInstanceUID)


def patient_id_of(services: Services, study_uid: str) -> str:
    """The FHIR Patient id behind a stored study."""
    body = services.search.read("ImagingStudy", study_uid, visibility=ALL).body or {}
    return str(body["subject"]["reference"]).split("/", 1)[1]
