"""`facade client add|list`, `facade user add`, `facade launch create`, `facade keys rotate`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from facade.logs import configure_logging
from facade.settings import Settings
from facade.wiring import BuiltinAuth, build_services
from smart_auth.config import MAX_TOKEN_SECONDS, MIN_TOKEN_SECONDS
from smart_auth.server.launches import create_launch
from storage.errors import DomainError, Invalid
from storage.fhir_store.visibility import ALL

CLI_CLIENT = "facade-cli"  # the client id of tokens made by `facade token create`


def add_arguments(sub: Any) -> None:
    client = sub.add_parser("client", help="SMART clients (apps, EHRs, backend services)")
    client_sub = client.add_subparsers(dest="client_command", required=True)
    add = client_sub.add_parser("add", help="register a client and print what it needs")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", choices=["public", "confidential", "asymmetric", "backend"], required=True)
    add.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="exact redirect URI: https, or http on loopback (repeat)",
    )
    add.add_argument("--launch-url", help="the app's EHR launch URL")
    add.add_argument("--jwks-file", type=Path, help="the client's public JWKS (asymmetric, backend)")
    add.add_argument("--jwks-uri", help="where the client publishes its JWKS")
    add.add_argument("--scope", help="the most this client may be granted (space-separated)")
    add.add_argument("--client-id", help="choose the client_id (default: a random UUID)")
    add.add_argument("--can-launch", action="store_true", help="an EHR that may create launches")
    add.add_argument("--can-introspect", action="store_true", help="a resource server that may introspect")
    client_sub.add_parser("list", help="the registered clients")

    user = sub.add_parser("user", help="people who sign in at /auth")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    uadd = user_sub.add_parser("add", help="add a practitioner or a patient user")
    uadd.add_argument("--username", required=True)
    who = uadd.add_mutually_exclusive_group(required=True)
    who.add_argument("--practitioner", metavar="NAME", help="a practitioner, by display name")
    who.add_argument("--patient", metavar="PATIENT_ID", help="a patient, by FHIR Patient id")
    uadd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    launch = sub.add_parser("launch", help="EHR launches")
    launch_sub = launch.add_subparsers(dest="launch_command", required=True)
    create = launch_sub.add_parser("create", help="create a launch context and print the launch URL")
    create.add_argument("--client", help="the app's client_id (binds the launch to it)")
    create.add_argument("--patient", help="FHIR Patient id")
    create.add_argument("--encounter")
    create.add_argument("--user", dest="fhir_user", help="Practitioner/<id> the launch is for")
    create.add_argument("--intent")
    create.add_argument("--no-banner", action="store_true", help="need_patient_banner false")

    token = sub.add_parser("token", help="access tokens for administrators")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    mint = token_sub.add_parser("create", help="print an access token (client facade-cli), e.g. for curl")
    mint.add_argument("--scope", required=True, help='e.g. "system/*.rs"')
    mint.add_argument("--patient", help="launch patient (for patient/ scopes)")
    mint.add_argument(
        "--seconds", type=int, default=300, help=f"lifetime, {MIN_TOKEN_SECONDS} to {MAX_TOKEN_SECONDS}"
    )

    keys = sub.add_parser("keys", help="the server's signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("rotate", help="add a new signing key (the old ones stay published)")


def run(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    configure_logging(settings.log_level)
    if settings.auth_mode != "builtin":
        print("facade: this server uses an external authorization server (FACADE_AUTH_MODE)", file=sys.stderr)
        return 2
    services = build_services(settings)
    auth = services.auth.builtin
    assert auth is not None
    try:
        return _dispatch(args, auth, services.search, out)
    except DomainError as exc:
        print(f"facade: {exc}", file=sys.stderr)
        return 2
    finally:
        services.close()


def _dispatch(args: argparse.Namespace, auth: BuiltinAuth, search: Any, out: TextIO) -> int:
    config = auth.config
    if args.command == "client" and args.client_command == "add":
        jwks = json.loads(args.jwks_file.read_text()) if args.jwks_file else None
        created = auth.registry.add_client(
            name=args.name,
            kind=args.kind,
            redirect_uris=args.redirect_uri,
            launch_url=args.launch_url,
            jwks=jwks,
            jwks_uri=args.jwks_uri,
            scope=args.scope,
            client_id=args.client_id,
            can_launch=args.can_launch,
            can_introspect=args.can_introspect,
        )
        c = created.client
        lines = {
            "client_id": c.client_id,
            "client_secret": created.secret,
            "token_endpoint_auth_method": c.auth_method,
            "scope": c.scope,
            "fhir_base_url (iss, aud)": config.fhir_base,
            "smart_configuration": f"{config.fhir_base}/.well-known/smart-configuration",
            "authorization_endpoint": f"{config.auth_base}/authorize",
            "token_endpoint": config.token_url,
        }
        for key, value in lines.items():
            if value:
                print(f"{key}: {value}", file=out)
        if created.secret:
            print("The client secret is shown once; it is stored only as a hash.", file=out)
        return 0
    if args.command == "client" and args.client_command == "list":
        for c in auth.registry.clients():
            print(f"{c.client_id}\t{c.auth_method}\t{c.name}\t{' '.join(c.redirect_uris)}", file=out)
        return 0
    if args.command == "user":
        password = _password(args.password_stdin)
        if password is None:
            return 2
        user = auth.registry.add_user(
            username=args.username,
            password=password,
            practitioner_name=args.practitioner,
            patient_id=args.patient,
        )
        print(f"user {user.username}: fhirUser {config.fhir_base}/{user.fhir_user}", file=out)
        return 0
    if args.command == "launch":
        form = {
            "client_id": args.client or "",
            "patient": args.patient or "",
            "encounter": args.encounter or "",
            "fhirUser": args.fhir_user or "",
            "intent": args.intent or "",
        }
        if args.no_banner:
            form["need_patient_banner"] = "false"
        try:
            launched = create_launch(
                sessions=auth.sessions, registry=auth.registry, search=search, config=config, form=form
            )
        except Invalid as exc:
            print(f"facade launch create: {exc}", file=sys.stderr)
            return 2
        print(launched.get("launch_url") or f"iss={launched['iss']} launch={launched['launch']}", file=out)
        return 0
    if args.command == "token":
        scopes = auth.server.parse_scopes(args.scope)
        if not scopes.resources or str(scopes) != " ".join(args.scope.split()):
            print(
                "facade token create: every scope must be a clinical scope this server serves",
                file=sys.stderr,
            )
            return 2
        if "patient" in scopes.contexts() and not args.patient:
            print("facade token create: patient/ scopes need --patient", file=sys.stderr)
            return 2
        if not MIN_TOKEN_SECONDS <= args.seconds <= MAX_TOKEN_SECONDS:
            print(
                f"facade token create: --seconds must be from {MIN_TOKEN_SECONDS} to {MAX_TOKEN_SECONDS}",
                file=sys.stderr,
            )
            return 2
        if args.patient:
            search.read("Patient", args.patient, visibility=ALL)
        context = {"patient": args.patient} if args.patient else {}
        grant = auth.tokens.new_grant(client_id=CLI_CLIENT, user_id=None, scope=str(scopes), context=context)
        issued = auth.tokens.issue(
            grant,
            scope=str(scopes),
            lifetime=args.seconds,
            fhir_user=None,
            patient=args.patient,
            refresh_lifetime=None,
        )
        print(issued.access_token, file=out)
        return 0
    if args.command == "keys":
        kid = auth.keys.rotate()
        print(f"new signing key {kid}; restart or wait a minute for running servers to use it", file=out)
        return 0
    return 2


def _password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        print("facade user add: the passwords differ", file=sys.stderr)
        return None
    return first
