"""`facade ae add|list|remove`: the remote AEs we may connect to (C-MOVE destinations, the PACS
`facade remote` queries)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from facade.settings import Settings
from facade.wiring import build_services
from storage.errors import Conflict, Invalid


def add_arguments(sub: Any) -> None:
    ae = sub.add_parser("ae", help="remote AEs: C-MOVE destinations, PACS to query")
    ae_sub = ae.add_subparsers(dest="ae_command", required=True)
    add = ae_sub.add_parser("add", help="register a remote AE")
    add.add_argument("ae_title", metavar="NAME", help="its AE title")
    add.add_argument("host")
    add.add_argument("port", type=int)
    ae_sub.add_parser("list", help="the registered remote AEs")
    remove = ae_sub.add_parser("remove", help="forget a remote AE")
    remove.add_argument("ae_title", metavar="NAME")


def run(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    services = build_services(settings)
    try:
        peers = services.peers
        if args.ae_command == "add":
            try:
                peer = peers.add(args.ae_title, args.host, args.port)
            except (Invalid, Conflict) as exc:
                print(f"facade ae add: {exc}", file=sys.stderr)
                return 1
            print(f"registered {peer.ae_title} at {peer.host}:{peer.port}", file=out)
            return 0
        if args.ae_command == "list":
            rows = [(p.ae_title, p.host, str(p.port)) for p in peers.all()]
            if not rows:
                print("no remote AEs: add one with `facade ae add NAME HOST PORT`", file=out)
                return 0
            widths = [max(len(r[i]) for r in [("AE title", "host", "port"), *rows]) for i in range(3)]
            for row in [("AE title", "host", "port"), *rows]:
                print(
                    "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
                )
            return 0
        if peers.remove(args.ae_title):
            print(f"removed {args.ae_title.strip()}", file=out)
            return 0
        print(f"facade ae remove: {args.ae_title.strip()} is not registered", file=sys.stderr)
        return 1
    finally:
        services.close()
