"""The retrieve use case's shortcuts give what its general paths give: a caller who sees every
study has the instances a URL names read without an ORM session (one compiled lookup for an
instance URL), and a small stored data set is read whole in one go, the bytes a C-GET streams.
What a rendering may do on the event loop is told by the index and the instance's row."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from facade.wiring import Services
from storage.errors import NotFound
from storage.fhir_store.visibility import ALL, Visibility
from storage.usecases.ingest import Source
from storage.usecases.retrieve import QUICK_RENDER, Retrieve
from tests.dicom_factory import make_instance, new_uid, write

EVERY_STUDY = Visibility(rules={"ImagingStudy": ((),)})  # a token with every ImagingStudy


def _store(services: Services, tmp_path: Path, *, rows: int = 8) -> tuple[str, str, list[str]]:
    study, series = new_uid(), new_uid()
    sops = []
    for i in range(3):
        ds = make_instance(study_uid=study, series_uid=series, instance_number=3 - i, rows=rows, columns=rows)
        path = write(ds, tmp_path / f"{i}.dcm")
        staged = services.ingest.staging_dir() / f"{new_uid()}.dcm"
        shutil.copyfile(path, staged)
        services.ingest.staged(staged, Source("import"))
        sops.append(str(ds.SOPInstanceUID))
    return study, series, sops


def test_a_caller_who_sees_every_study_gets_what_the_session_path_gives(
    services: Services, tmp_path: Path
) -> None:
    study, series, sops = _store(services, tmp_path)
    retrieve = services.retrieve
    for uids in [(study, None, None), (study, series, None), (study, series, sops[1])]:
        assert retrieve.instances(*uids, visibility=EVERY_STUDY) == retrieve.instances(*uids, visibility=ALL)
    assert services.search.sees_whole("ImagingStudy", EVERY_STUDY)
    (one,) = retrieve.instances(study, series, sops[1], visibility=EVERY_STUDY)
    assert (one.study_uid, one.series_uid, one.sop_uid) == (study, series, sops[1])
    for unknown in [(study, series, new_uid()), (study, new_uid(), sops[1]), (new_uid(), series, sops[1])]:
        with pytest.raises(NotFound):
            retrieve.instances(*unknown, visibility=EVERY_STUDY)


@pytest.mark.parametrize("rows", [64, 256], ids=["within the first read", "past the first read"])
def test_a_small_data_set_is_read_whole_and_a_big_one_is_left_to_the_stream(
    services: Services, tmp_path: Path, rows: int
) -> None:
    study, _, _ = _store(services, tmp_path, rows=rows)
    retrieve = services.retrieve
    for instance in retrieve.instances(study, visibility=ALL):
        with retrieve.stored_data_set(instance.blob_key) as f:
            streamed = f.read()
        assert retrieve.stored_data_set_bytes(instance.blob_key, 1 << 20) == streamed
        assert retrieve.stored_data_set_bytes(instance.blob_key, len(streamed)) == streamed
        assert retrieve.stored_data_set_bytes(instance.blob_key, len(streamed) - 1) is None
        assert retrieve.stored_data_set_bytes(instance.blob_key, 100) is None


def test_what_renders_on_the_event_loop(services: Services, tmp_path: Path) -> None:
    retrieve = services.retrieve
    assert retrieve.reads_in_process is (services.db.dialect == "sqlite")
    study, _, _ = _store(services, tmp_path, rows=64)
    one = retrieve.instances(study, visibility=ALL)[0]
    assert Retrieve.quick_to_render(one)
    assert Retrieve.quick_to_render(replace(one, size=QUICK_RENDER))
    assert not Retrieve.quick_to_render(replace(one, size=QUICK_RENDER + 1))
    assert Retrieve.quick_to_render(replace(one, transfer_syntax_uid=ImplicitVRLittleEndian))
    for syntax in (JPEG2000Lossless, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, "1.2.3.4"):
        assert not Retrieve.quick_to_render(replace(one, transfer_syntax_uid=syntax)), syntax
