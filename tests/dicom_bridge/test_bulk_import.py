"""Bulk import from real files on disk through the real ingest path, and `facade import` as a user runs it."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet

from dicom_bridge.bulk_import import BulkImport, ImportSummary
from facade.importer import ProgressBar, run_import
from facade.settings import Settings
from facade.wiring import Services
from storage.errors import NotFound
from storage.fhir_store.visibility import ALL
from tests.cli import run_cli, settings_env
from tests.dicom_factory import make_instance, meta_names_another_instance, new_uid, write, write_study

NOT_DICOM = "not a DICOM Part 10 file (no preamble, 'DICM' prefix or file meta)"
TRUNCATED = "the DICOM file ends before its last element"
META_MISMATCH = "the Media Storage SOP Instance UID of the file meta differs from the SOP Instance UID"
MISSING_REFERENCE = "a file the DICOMDIR refers to is missing"
PATIENT_FOLDER = "Testperson^Alice"  # folder names hold PHI in real life: it must never reach the log


def run(services: Services, *paths: Path, workers: int = 1) -> ImportSummary:
    return BulkImport(services.ingest, workers=workers, skip=[services.settings.data_dir]).run(list(paths))


def counts(s: ImportSummary) -> tuple[int, int, int, int]:
    return s.stored, s.duplicate, s.replaced, s.rejected


def study_counts(services: Services, study_uid: str) -> tuple[int, int]:
    body = services.search.read("ImagingStudy", study_uid, visibility=ALL).body
    assert body is not None
    return body["numberOfSeries"], body["numberOfInstances"]


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, object]:
    """Two studies in nested folders, a text file, a truncated instance, a copy, a hidden folder."""
    src = tmp_path / "src"
    mr, mr_files = write_study(src / PATIENT_FOLDER / "MR", series=2, per_series=3)
    ct, _ = write_study(
        src / "other" / "CT" / "deep",
        series=1,
        per_series=2,
        modality="CT",
        patient_id="PID-0002",
        patient_name="Probe^Bob",
    )
    (src / PATIENT_FOLDER / "notes.txt").write_text("not an image\n")
    big = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=256, columns=256)
    whole = write(big, tmp_path / "whole.dcm").read_bytes()
    (src / "other" / "cut.dcm").write_bytes(whole[: len(whole) // 2])  # an interrupted copy
    shutil.copyfile(mr_files[0], src / "other" / "copy of first.dcm")
    hidden_study, _ = write_study(src / ".trash", series=1, per_series=1)
    return {"src": src, "mr": mr, "ct": ct, "hidden": hidden_study}


@pytest.mark.parametrize("workers", [1, 4])
def test_tree_imports_every_study_and_rejects_bad_files_with_reasons(
    services: Services, tree: dict[str, object], workers: int
) -> None:
    src = tree["src"]
    assert isinstance(src, Path)
    before = sorted(p for p in src.rglob("*") if p.is_file())
    summary = run(services, src, workers=workers)
    assert counts(summary) == (8, 1, 0, 2)
    assert (summary.stopped, summary.not_imported, summary.dicomdirs) == (None, 0, 0)
    assert sorted(summary.reasons) == [(NOT_DICOM, 1), (TRUNCATED, 1)]
    assert sorted(summary.rejected_paths) == [
        (src / PATIENT_FOLDER / "notes.txt", NOT_DICOM),
        (src / "other" / "cut.dcm", TRUNCATED),
    ]
    assert study_counts(services, str(tree["mr"])) == (2, 6)
    assert study_counts(services, str(tree["ct"])) == (1, 2)
    with pytest.raises(NotFound):  # hidden folders are skipped
        services.search.read("ImagingStudy", str(tree["hidden"]), visibility=ALL)
    assert sorted(p for p in src.rglob("*") if p.is_file()) == before  # the sources are left alone
    assert list(services.ingest.staging_dir().iterdir()) == []


def test_importing_again_stores_nothing_new(services: Services, tree: dict[str, object]) -> None:
    src = tree["src"]
    assert isinstance(src, Path)
    run(services, src)
    assert counts(run(services, src, workers=1)) == (0, 9, 0, 2)


def test_named_hidden_file_and_changed_copy(services: Services, tmp_path: Path) -> None:
    """A path given by name is imported whatever its name; new bytes for a known SOP Instance replace it."""
    study, series, sop = new_uid(), new_uid(), new_uid()
    first = write(make_instance(study_uid=study, series_uid=series, sop_uid=sop), tmp_path / ".a.dcm")
    fixed = write(
        make_instance(study_uid=study, series_uid=series, sop_uid=sop, SeriesDescription="Fixed"),
        tmp_path / "b.dcm",
    )
    assert counts(run(services, first)) == (1, 0, 0, 0)
    assert counts(run(services, fixed)) == (0, 0, 1, 0)
    assert study_counts(services, study) == (1, 1)


def test_file_meta_naming_another_instance_is_rejected(services: Services, tmp_path: Path) -> None:
    """(0002,0003) differing from (0008,0018): refused by the shared ingest check, as in C-STORE and STOW."""
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    path = write(ds, tmp_path / "liar.dcm")
    path.write_bytes(meta_names_another_instance(path.read_bytes(), ds.SOPInstanceUID))
    summary = run(services, path)
    assert counts(summary) == (0, 0, 0, 1)
    assert summary.reasons == [(META_MISMATCH, 1)]


def test_symlinks_are_followed_once_and_loops_end(services: Services, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    study, _ = write_study(outside, series=1, per_series=2)
    src = tmp_path / "src"
    src.mkdir()
    (src / "link-to-file.dcm").symlink_to(outside / "s1_i1.dcm")
    (src / "link-to-folder").symlink_to(outside, target_is_directory=True)
    (src / "loop").symlink_to(src, target_is_directory=True)
    (src / "dangling.dcm").symlink_to(tmp_path / "gone.dcm")
    summary = run(services, src, outside)
    assert counts(summary) == (2, 0, 0, 1)
    assert summary.rejected_paths == [
        (src / "dangling.dcm", "the file cannot be read (No such file or directory)")
    ]
    assert study_counts(services, study) == (1, 2)


def test_unreadable_file_is_rejected_and_the_import_goes_on(services: Services, tmp_path: Path) -> None:
    study, paths = write_study(tmp_path / "src", series=1, per_series=3)
    paths[1].chmod(0)
    try:
        paths[1].open("rb").close()
        pytest.skip("this user reads files whatever their mode (root with CAP_DAC_OVERRIDE)")
    except PermissionError:
        pass
    summary = run(services, tmp_path / "src")
    assert counts(summary) == (2, 0, 0, 1)
    assert summary.reasons == [("the file cannot be read (permission denied)", 1)]
    assert study_counts(services, study) == (1, 2)


def file_set(directory: Path, *, instances: int = 3) -> str:
    """A DICOMDIR file-set (PS3.10) written by pydicom: one study, one series."""
    fs = FileSet()
    study, series = new_uid(), new_uid()
    for n in range(1, instances + 1):
        fs.add(make_instance(study_uid=study, series_uid=series, instance_number=n, StudyID="1"))
    fs.write(directory)
    return study


def test_dicomdir_files_are_imported_once_and_the_dicomdir_is_not(services: Services, tmp_path: Path) -> None:
    media = tmp_path / "cd"
    study = file_set(media)
    summary = run(services, media)  # the walk meets the DICOMDIR and every file it names
    assert counts(summary) == (3, 0, 0, 0) and summary.dicomdirs == 1
    assert study_counts(services, study) == (1, 3)
    again = run(services, media / "DICOMDIR")  # the DICOMDIR alone leads to the same files
    assert counts(again) == (0, 3, 0, 0) and again.dicomdirs == 1


def test_dicomdir_found_by_sop_class_on_lower_case_media(services: Services, tmp_path: Path) -> None:
    """Another name, and file IDs in lower case with ISO 9660 versions (how CDs are often mounted)."""
    media = tmp_path / "cd"
    study = file_set(media)
    for path in sorted(media.rglob("*"), key=lambda p: -len(p.parts)):
        suffix = ";1" if path.is_file() and path.name != "DICOMDIR" else ""
        path.rename(path.with_name(path.name.lower() + suffix))
    (media / "dicomdir").rename(media / "index")
    summary = run(services, media / "index")
    assert counts(summary) == (3, 0, 0, 0) and summary.dicomdirs == 1
    assert study_counts(services, study) == (1, 3)


def test_dicomdir_naming_a_missing_file_or_one_outside_its_folder(services: Services, tmp_path: Path) -> None:
    media = tmp_path / "cd"
    file_set(media)
    gone = sorted(media.rglob("IM*"))[1]
    gone.unlink()
    write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "ESCAPE")
    dicomdir = dcmread(media / "DICOMDIR")
    with pytest.warns(UserWarning, match="VR CS"):  # not even a valid CS value
        dicomdir.DirectoryRecordSequence[-1].ReferencedFileID = ["..", "ESCAPE"]
    dicomdir.save_as(media / "DICOMDIR")
    summary = run(services, media / "DICOMDIR")
    assert counts(summary) == (1, 0, 0, 2)
    assert summary.rejected_paths == [
        (gone, MISSING_REFERENCE),
        (media, "a DICOMDIR record has an invalid Referenced File ID"),
    ]


def test_unavailable_staging_stops_the_import(services: Services, tmp_path: Path) -> None:
    write_study(tmp_path / "src", series=1, per_series=5)
    shutil.rmtree(services.ingest.staging_dir())
    summary = run(services, tmp_path / "src", workers=2)
    assert summary.stopped == "the staging area cannot be written (No such file or directory)"
    assert (summary.stored, summary.rejected, summary.not_imported) == (0, 0, 5)


def test_progress_bar_without_a_terminal_writes_plain_lines() -> None:
    now = [0.0]
    err = io.StringIO()
    bar = ProgressBar(err, clock=lambda: now[0])
    bar.update(1, 4)  # too soon after the start: nothing yet
    now[0] = 20.0
    bar.update(2, 4)
    bar.update(3, 4)
    bar.finish()
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in err.getvalue()
    assert lines[0].startswith("[") and " 2/4 files  50%" in lines[0] and "ETA 0:20" in lines[0]
    assert " 3/4 files" in lines[1]


def facade_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACADE_")}
    env |= {
        "FACADE_DATA_DIR": str(settings.data_dir),
        "FACADE_DATABASE_URL": str(settings.database_url),
        "FACADE_TIMEZONE": "Europe/Zurich",
        "FACADE_BASE_URL": "http://testserver",
    }
    facade = Path(sys.executable).parent / "facade"
    return subprocess.run(
        [str(facade), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_facade_import_command(
    services: Services, settings: Settings, tree: dict[str, object], tmp_path: Path
) -> None:
    src = tree["src"]
    assert isinstance(src, Path)
    media = tmp_path / "cd"
    cd_study = file_set(media)
    done = facade_cli(settings, "import", str(src), str(media))
    assert done.returncode == 1, done.stderr  # two files were rejected
    out = done.stdout
    assert "Import finished: 15 files" in out
    for label, n in (("stored", 11), ("duplicate", 1), ("replaced", 0), ("rejected", 2)):
        assert f"  {label}" in out and any(line.split() == [label, str(n)] for line in out.splitlines())
    assert "(read 1 DICOMDIR)" in out
    assert f"1  {NOT_DICOM}" in out and f"1  {TRUNCATED}" in out
    assert f"{src / PATIENT_FOLDER / 'notes.txt'}: {NOT_DICOM}" in out  # the terminal gets the paths
    assert PATIENT_FOLDER not in done.stderr and str(src) not in done.stderr  # the log never does
    assert "15/15 files 100%" in done.stderr
    assert services.publisher.pending() == 0  # the command already published the studies as FHIR
    assert study_counts(services, str(tree["mr"])) == (2, 6)
    assert study_counts(services, str(tree["ct"])) == (1, 2)
    assert study_counts(services, cd_study) == (1, 3)


def test_facade_import_clean_run_and_missing_path(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    study, _ = write_study(tmp_path / "src", series=1, per_series=2)
    env = settings_env(settings) | {"FACADE_TIMEZONE": "Europe/Zurich"}  # in process: the test above
    missing = run_cli(env, "import", str(tmp_path / "src"), str(tmp_path / "nowhere"))  # runs `facade`
    assert missing.returncode == 2
    assert f"no such file or folder: {tmp_path / 'nowhere'}" in missing.stderr
    with pytest.raises(NotFound):  # nothing was imported
        services.search.read("ImagingStudy", study, visibility=ALL)
    done = run_cli(env, "import", str(tmp_path / "src"))
    assert done.returncode == 0, done.stderr
    assert "Rejections" not in done.stdout
    assert study_counts(services, study) == (1, 2)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_redraws_in_place_and_makes_way_for_log_lines() -> None:
    now = [0.0]
    err = Terminal()
    bar = ProgressBar(err, clock=lambda: now[0])
    now[0] = 1.0
    bar.update(1, 2)
    bar.clear()  # what a log record triggers
    err.write("log line\n")
    now[0] = 2.0
    bar.update(2, 2)
    bar.finish()
    assert err.getvalue() == (
        "\r[###############...............] 1/2 files  50%  1 files/s  ETA 0:01\x1b[K"
        "\r\x1b[Klog line\n"
        "\r[##############################] 2/2 files 100%  1 files/s  in 0:02\x1b[K"
        "\r[##############################] 2/2 files 100%  1 files/s  in 0:02\x1b[K\n"
    )


def test_on_a_terminal_the_log_goes_to_a_file_and_the_terminal_shows_bar_and_summary(
    settings: Settings, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_study(src, series=1, per_series=3)
    (src / "notes.txt").write_text("not DICOM")
    out, err = io.StringIO(), Terminal()
    saved = logging.getLogger().handlers[:]
    try:
        code = run_import(settings, [src], out=out, err=err)
    finally:
        logging.getLogger().handlers[:] = saved
    assert code == 1  # one file rejected
    assert '{"ts"' not in err.getvalue()  # no JSON among the progress bar
    assert "3/4 files" in err.getvalue() or "4/4 files" in err.getvalue()
    summary = out.getvalue()
    assert "stored" in summary and "Log: " in summary
    log_file = Path(summary.split("Log: ", 1)[1].strip())
    assert log_file.parent == (settings.data_dir / "logs").resolve()
    events = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert "bulk_import.started" in events and "bulk_import.rejected" in events
