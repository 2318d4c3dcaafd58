"""The `facade` command run in the test's own process: `facade.cli.main(argv)` with the environment,
stdin, stdout and stderr a subprocess would have, and the process-wide logging state the command
changes (`configure_logging`) put back afterwards.

A subprocess pays ~3 s of imports per call; a test whose subject is what a command does (not that
the console script starts) runs it here. tests/facade/test_cli.py, the import command in
tests/dicom_bridge/test_bulk_import.py and tests/facade/test_serve.py keep real processes."""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass

from pynetdicom import _config as pynetdicom_config

from facade.cli import main
from facade.settings import Settings

# the loggers `facade.logs.configure_logging` sets up (level, handlers, propagate, disabled)
_LOGGERS = ("", "pynetdicom", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "authlib", "httpx")


@dataclass(frozen=True)
class Done:
    """What a finished command left: as `subprocess.CompletedProcess` names it."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(env: Mapping[str, str], *args: str, stdin: str | None = None) -> Done:
    """`facade ARGS…` with the FACADE_* variables `env` (no others), like a fresh process."""
    out, err = io.StringIO(), io.StringIO()
    with _environment(env), _logging_restored(), redirect_stdout(out), redirect_stderr(err):
        saved_stdin = sys.stdin
        sys.stdin = io.StringIO(stdin or "")
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refuses a command line with exit status 2
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdin = saved_stdin
    return Done(code, out.getvalue(), err.getvalue())


def settings_env(settings: Settings) -> dict[str, str]:
    """The variables that point a command at the test's data directory, database and base URL."""
    return {
        "FACADE_DATA_DIR": str(settings.data_dir),
        "FACADE_DATABASE_URL": settings.resolved_database_url(),
        "FACADE_BASE_URL": settings.resolved_base_url(),
    }


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("FACADE_")]:
        del os.environ[name]
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _logging_restored() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    states = [(lg, lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers]
    showwarning = warnings.showwarning
    identifiers = (pynetdicom_config.LOG_REQUEST_IDENTIFIERS, pynetdicom_config.LOG_RESPONSE_IDENTIFIERS)
    try:
        yield
    finally:
        for lg, level, handlers, propagate, disabled in states:
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
        warnings.showwarning = showwarning
        pynetdicom_config.LOG_REQUEST_IDENTIFIERS, pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = identifiers
