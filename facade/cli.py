"""The `facade` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from facade.settings import Settings, settings_error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facade", description="FHIR imaging facade")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run HTTP (FHIR, DICOMweb) and the DICOM SCP")
    serve_parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="serving processes sharing the DICOM and HTTP ports (default: FACADE_WORKERS, or one per core)",
    )
    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="bring the database schema up to date")
    imp = sub.add_parser("import", help="import DICOM files and folders (DICOMDIR too)")
    imp.add_argument("paths", nargs="+", type=Path)
    from facade import ae_admin, auth_admin, oru_admin, qa, remote_admin

    auth_admin.add_arguments(sub)
    qa.add_arguments(sub)
    ae_admin.add_arguments(sub)
    remote_admin.add_arguments(sub)
    oru_admin.add_arguments(sub)
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # a bad FACADE_* value: say which, and do not start
        print(f"facade: invalid setting: {settings_error(exc)}", file=sys.stderr)
        return 2

    if args.command == "serve":
        from facade.serve import serve

        if args.workers is not None:
            if args.workers < 1:
                print("facade: --workers must be at least 1", file=sys.stderr)
                return 2
            settings = settings.model_copy(update={"workers": args.workers})
        serve(settings)
        return 0
    if args.command == "db":
        from facade.admin import db_upgrade

        return db_upgrade(settings)
    if args.command == "import":
        from facade.importer import run_import

        return run_import(settings, args.paths)
    if args.command == "qa":
        refusal = data_dir_refusal(settings, args.command)
        if refusal:
            print(f"facade: {refusal}", file=sys.stderr)
            return 2
        return qa.run(args, settings)
    if args.command == "ae":
        print(f"facade: data directory {settings.data_dir.resolve()}", file=sys.stderr)
        return ae_admin.run(args, settings)
    if args.command in ("destination", "outbox"):
        print(f"facade: data directory {settings.data_dir.resolve()}", file=sys.stderr)
        return oru_admin.run(args, settings)
    if args.command == "remote":
        print(f"facade: data directory {settings.data_dir.resolve()}", file=sys.stderr)
        return remote_admin.run(args, settings)
    if args.command in ("client", "user", "launch", "keys", "token"):
        refusal = data_dir_refusal(settings, args.command)
        if refusal:
            print(f"facade: {refusal}", file=sys.stderr)
            return 2
        from facade.auth_admin import run

        return run(args, settings)
    return 2


# Commands whose output only the running server can use: run against an empty data directory, they
# would mint a token or a launch for an installation that does not exist.
_NEED_INSTALLATION = frozenset({"token", "launch", "qa"})


def data_dir_refusal(settings: Settings, command: str) -> str | None:
    """Say on stderr which data directory an admin command uses; refuse a fresh one where useless.

    FACADE_DATA_DIR, else ./facade-data relative to the current folder: the one rule, so the
    command names the folder it resolved (run elsewhere, it would otherwise act on a new one)."""
    data_dir = settings.data_dir.resolve()
    print(f"facade: data directory {data_dir}", file=sys.stderr)
    if settings.database_url is None and not (data_dir / "index.sqlite3").exists():
        if command in _NEED_INSTALLATION:
            return (
                f"no database in {data_dir}: run this where `facade serve` runs, "
                "or set FACADE_DATA_DIR (or FACADE_DATABASE_URL) to the server's"
            )
        print("facade: that folder holds no database yet: a new one is created", file=sys.stderr)
    return None


if __name__ == "__main__":
    sys.exit(main())
