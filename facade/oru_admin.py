"""`facade destination add|list|remove` (where ORU^R01 results and application ACKs go) and
`facade outbox list|retry` (what waits, what was sent, the dead letters)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from facade.settings import Settings
from facade.wiring import build_services
from mapping.hl7.charsets import charset_named
from mapping.hl7.oru import MESSAGE_KINDS, OruProfile
from storage.errors import Conflict, Invalid


def add_arguments(sub: Any) -> None:
    destination = sub.add_parser(
        "destination", help="HL7 destinations (MLLP) of ORU^R01 results and application ACKs"
    )
    d_sub = destination.add_subparsers(dest="destination_command", required=True)
    add = d_sub.add_parser("add", help="register a destination")
    add.add_argument("name")
    add.add_argument("host")
    add.add_argument("port", type=int)
    add.add_argument("--version", default="2.5.1", choices=["2.5.1", "2.3.1"], help="HL7 version (2.5.1)")
    add.add_argument("--text", default="tx", choices=["tx", "ft"], help="report text: TX lines or one FT")
    add.add_argument("--charset", default="ASCII", help="MSH-18: ASCII (default), 8859/1, UNICODE UTF-8 ...")
    add.add_argument("--receiving-application", default="", help="MSH-5")
    add.add_argument("--receiving-facility", default="", help="MSH-6")
    add.add_argument(
        "--receives",
        default=",".join(MESSAGE_KINDS),
        help="what it is sent: oru (ORU^R01 results), ack (application ACKs of its orders), "
        "or both (oru,ack: the default)",
    )
    d_sub.add_parser("list", help="the registered destinations")
    remove = d_sub.add_parser(
        "remove", help="forget a destination (its pending messages become dead letters)"
    )
    remove.add_argument("name")
    for verb, text in (
        ("disable", "pause a destination: nothing is queued for it, what is queued waits"),
        ("enable", "resume a paused destination: what waited is sent"),
    ):
        d_sub.add_parser(verb, help=text).add_argument("name")

    outbox = sub.add_parser("outbox", help="ORU^R01 messages: pending, sent, dead letters")
    o_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = o_sub.add_parser("list", help="the messages (newest 1000)")
    listing.add_argument("--state", choices=["pending", "sent", "dead"])
    retry = o_sub.add_parser("retry", help="dead letters pending again")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID")
    retry.add_argument("--all-dead", action="store_true", help="every dead letter")


def run(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    services = build_services(settings)
    try:
        outbox = services.outbox
        if args.command == "destination":
            return _destination(args, outbox, out, settings)
        if args.outbox_command == "list":
            rows = [
                (
                    str(e.pk),
                    e.destination,
                    e.state,
                    str(e.attempts),
                    _when(e.created_at),
                    _when(e.sent_at) if e.state == "sent" else _when(e.next_attempt_at),
                    e.control_id,
                    e.last_error or "",
                )
                for e in outbox.list(args.state)
            ]
            if not rows:
                print("no messages", file=out)
                return 0
            _table(
                out, ("id", "destination", "state", "tries", "created", "sent/next", "MSH-10", "reason"), rows
            )
            return 0
        if bool(args.ids) == args.all_dead:
            print("facade outbox retry: give message ids or --all-dead", file=sys.stderr)
            return 2
        count = outbox.retry(None if args.all_dead else args.ids)
        print(f"{count} message(s) pending again", file=out)
        return 0 if count or args.all_dead else 1
    finally:
        services.close()


def _destination(args: argparse.Namespace, outbox: Any, out: TextIO, settings: Settings) -> int:
    if args.destination_command == "add":
        charset = charset_named(args.charset)
        profile = OruProfile(
            version=args.version,
            text=args.text,
            charset=charset.hl7 if charset else args.charset,
            receiving_application=args.receiving_application,
            receiving_facility=args.receiving_facility,
            receives=tuple(k.strip().lower() for k in args.receives.split(",") if k.strip()),
        )
        try:
            added = outbox.add_destination(args.name, args.host, args.port, profile)
        except (Invalid, Conflict) as exc:
            print(f"facade destination add: {exc}", file=sys.stderr)
            return 1
        print(f"registered {added.name} at {added.host}:{added.port}", file=out)
        return 0
    if args.destination_command == "list":
        rows = [
            (
                d.name,
                d.host,
                str(d.port),
                str(d.profile.get("version", "")),
                str(d.profile.get("text", "")),
                str(d.profile.get("charset", "")),
                ",".join(OruProfile.from_json(d.profile).receives),
                "yes" if d.enabled else "no",
            )
            for d in outbox.destinations()
        ]
        if not rows:
            print("no destinations: add one with `facade destination add NAME HOST PORT`", file=out)
            return 0
        _table(out, ("name", "host", "port", "version", "text", "charset", "receives", "enabled"), rows)
        return 0
    if args.destination_command in ("enable", "disable"):
        if outbox.set_enabled(args.name, args.destination_command == "enable"):
            print(f"{args.destination_command}d {args.name.strip()}", file=out)
            return 0
        print(
            f"facade destination {args.destination_command}: {args.name.strip()} is not registered",
            file=sys.stderr,
        )
        return 1
    if outbox.remove_destination(args.name):
        print(f"removed {args.name.strip()}", file=out)
        if args.name.strip() in {n for n, _, _ in settings.oru_destination_entries()}:
            print("(it is in FACADE_ORU_DESTINATIONS: it comes back at the next start)", file=out)
        return 0
    print(f"facade destination remove: {args.name.strip()} is not registered", file=sys.stderr)
    return 1


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)
