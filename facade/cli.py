"""The `facade` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from facade.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facade", description="FHIR imaging facade")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run HTTP (FHIR, DICOMweb) and the DICOM SCP")
    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="bring the database schema up to date")
    imp = sub.add_parser("import", help="import DICOM files and folders (DICOMDIR too)")
    imp.add_argument("paths", nargs="+", type=Path)
    from facade.auth_admin import add_arguments

    add_arguments(sub)
    args = parser.parse_args(argv)
    settings = Settings()

    if args.command == "serve":
        from facade.serve import serve

        serve(settings)
        return 0
    if args.command == "db":
        from facade.admin import db_upgrade

        return db_upgrade(settings)
    if args.command == "import":
        from facade.importer import run_import

        return run_import(settings, args.paths)
    if args.command in ("client", "user", "launch", "keys", "token"):
        from facade.auth_admin import run

        return run(args, settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
