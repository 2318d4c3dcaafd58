"""`facade qa mismatches`: what ingest kept but flagged, as a table on the administrator's terminal.

The table holds Patient IDs (PHI): it goes to stdout, never to the log.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from facade.logs import configure_logging
from facade.settings import Settings
from storage.db import Database, make_engine
from storage.migrate import upgrade
from storage.usecases.qa import PatientMismatch, Qa

DEFAULT_LIMIT = 100
_HEADERS = (
    "Received (UTC)",
    "SOP Instance UID",
    "Study Instance UID",
    "Study's patient",
    "Instance's patient",
    "Via",
    "Calling AE",
)


def add_arguments(sub: Any) -> None:
    qa = sub.add_parser("qa", help="quality control: what ingest kept but flagged")
    qa_sub = qa.add_subparsers(dest="qa_command", required=True)
    mismatches = qa_sub.add_parser(
        "mismatches",
        help="instances kept in a study of another patient (FACADE_PATIENT_MISMATCH=accept), newest first",
    )
    mismatches.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"rows shown (default {DEFAULT_LIMIT}; 0: all)"
    )


def run(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    configure_logging(settings.log_level)
    db = Database(make_engine(settings.resolved_database_url()))
    try:
        upgrade(db.engine)  # an installation from before the table lists none, not an error
        found = Qa(db).patient_mismatches(limit=args.limit or None)
    finally:
        db.dispose()
    if not found.total:
        print("No patient mismatches recorded.", file=out)
        if settings.patient_mismatch == "refuse":
            print("(FACADE_PATIENT_MISMATCH=refuse: such instances are refused, not kept.)", file=out)
        return 0
    print_table([_row(m) for m in found.newest], out)
    if len(found.newest) < found.total:
        print(f"({len(found.newest)} of {found.total} shown, newest first; --limit 0 shows all)", file=out)
    return 0


def _row(m: PatientMismatch) -> tuple[str, ...]:
    return (
        m.received_at.strftime("%Y-%m-%d %H:%M:%S"),
        m.sop_uid,
        m.study_uid,
        patient_text(m.study_patient_id, m.study_id_system),
        patient_text(m.instance_patient_id, m.instance_id_system),
        m.received_via,
        m.calling_ae or "-",
    )


def patient_text(patient_id: str | None, system: str | None) -> str:
    """'ID (system)'; a study stored without a Patient ID shows as such."""
    if patient_id is None:
        return "(no Patient ID)"
    return f"{printable(patient_id)} ({printable(system or '-')})"


def printable(text: str) -> str:
    """Control characters a data set may carry, escaped: the table must not drive the terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def print_table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]
    print("  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths, strict=True)).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
