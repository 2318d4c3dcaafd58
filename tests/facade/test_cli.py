"""The `facade` command as a newcomer meets it: which data directory, and library warnings."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from facade.logs import configure_logging


def run_facade(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACADE_")}
    return subprocess.run(
        [sys.executable, "-m", "facade.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_create_in_a_folder_without_installation_is_refused(tmp_path: Path) -> None:
    made = run_facade(tmp_path, "token", "create", "--scope", "system/*.rs")
    assert made.returncode == 2
    assert made.stdout == ""  # no token the server would reject
    assert f"data directory {(tmp_path / 'facade-data').resolve()}" in made.stderr
    assert "no database" in made.stderr
    assert not (tmp_path / "facade-data" / "index.sqlite3").exists()


def test_admin_command_names_the_data_directory_it_creates(tmp_path: Path) -> None:
    listed = run_facade(tmp_path, "client", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"data directory {(tmp_path / 'facade-data').resolve()}" in listed.stderr
    assert "a new one is created" in listed.stderr
    again = run_facade(tmp_path, "token", "create", "--scope", "system/*.rs")
    assert again.returncode == 0, again.stderr
    assert len(again.stdout.strip()) >= 32  # an access token


def test_library_warnings_are_json_without_their_text(capsys: pytest.CaptureFixture[str]) -> None:
    saved = warnings.showwarning
    try:
        configure_logging("INFO")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("Invalid value for VR PN: 'DOE^JANE'", UserWarning, stacklevel=1)
    finally:
        warnings.showwarning = saved
        logging.getLogger().handlers[:] = []
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "library.warning"
    assert record["warning"] == "UserWarning"
    assert record["source"].startswith("facade/test_cli.py:")
    assert "DOE" not in lines[0]


def test_a_bad_patient_mismatch_setting_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACADE_")}
    started = subprocess.run(
        [sys.executable, "-m", "facade.cli", "serve"],
        cwd=tmp_path,
        env=env | {"FACADE_PATIENT_MISMATCH": "merge"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2
    assert started.stderr.strip() == (
        "facade: invalid setting: FACADE_PATIENT_MISMATCH: refuse (the default) or accept, not 'merge'"
    )
    assert not (tmp_path / "facade-data").exists()  # nothing was started or created


def test_qa_mismatches_needs_an_installation(tmp_path: Path) -> None:
    listed = run_facade(tmp_path, "qa", "mismatches")
    assert listed.returncode == 2
    assert "no database" in listed.stderr
    assert listed.stdout == ""
