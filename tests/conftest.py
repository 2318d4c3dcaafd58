"""Shared fixtures: the real services on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from facade.listeners import mllp_listener
from facade.settings import Settings
from facade.wiring import Services, build_services
from hl7_interface.receiver import Hl7Receiver
from smart_auth.server.keys import KeyRing
from storage.db import make_engine
from storage.migrate import upgrade
from storage.tables import Base

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        one = metafunc.definition.get_closest_marker("one_backend") is not None
        metafunc.parametrize("backend", BACKENDS[:1] if one else BACKENDS)


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database (no schema): a SQLite file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with _postgresql_schema() as url:
        yield url


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database (a SQLite file in `folder`, or a PostgreSQL schema of its own),
    dropped on leaving; a test may hold several (a second archive, which migrates itself)."""
    if backend == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder / 'index.sqlite3'}"
        return
    with _postgresql_schema() as url:
        yield url


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database at the head revision without rows, as `build_services` leaves a new one.

    The migrations run once per session and backend (per xdist worker), not per test: SQLite gets
    a copy of the migrated file; PostgreSQL the session's migrated schema with every row deleted and
    its sequences restarted before the test (deleting ~20 near-empty tables takes a tenth of the
    time of migrating or truncating them). Tests that migrate themselves take `empty_database_url`."""
    if backend == "sqlite":
        target = tmp_path / "index.sqlite3"
        shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), target)
        return f"sqlite:///{target}"
    url, engine = request.getfixturevalue("_migrated_postgresql")
    _delete_all_rows(engine)
    return str(url)


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head."""
    path = tmp_path_factory.mktemp("migrated") / "index.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    # the last connection closed folded the write-ahead log into the file: a plain copy is the database
    assert not path.with_name(f"{path.name}-wal").exists()
    return path


@pytest.fixture(scope="session")
def _migrated_postgresql() -> Iterator[tuple[str, Engine]]:
    """This session's PostgreSQL schema, migrated to head: its URL, and an engine to empty it with."""
    with _postgresql_schema() as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            yield url, engine
        finally:
            engine.dispose()


@contextmanager
def _postgresql_schema() -> Iterator[str]:
    url = os.environ["TEST_DATABASE_URL"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _delete_all_rows(engine: Engine) -> None:
    """Every table of the migrated schema emptied (children first), every sequence restarted: what a
    fresh migration leaves. A lock still held by a connection a test left open fails within seconds."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        tables = set(
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                    " AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'"
                )
            ).scalars()
        )
        known = Base.metadata.sorted_tables
        assert tables == {t.name for t in known}, "a migrated table the metadata does not know"
        for table in reversed(known):
            conn.execute(table.delete())
        sequences = conn.execute(
            text(
                "SELECT quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind = 'S' AND n.nspname = current_schema()"
            )
        ).scalars()
        for sequence in list(sequences):
            conn.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))


@pytest.fixture
def http_socket() -> Iterator[socket.socket]:
    """A socket bound to 127.0.0.1 on an ephemeral port, so that the base URL is known before the
    services are built (it is the SMART `aud` and `iss`); `live_http` serves on it."""
    sock = listening_socket()
    yield sock
    sock.close()


def listening_socket() -> socket.socket:
    """Bound to 127.0.0.1 on an ephemeral port, with TCP_NODELAY (inherited by accepted connections;
    uvicorn sets it only on sockets it binds itself): without it every keep-alive response waits
    ~40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def settings(tmp_path: Path, database_url: str, http_socket: socket.socket, _signing_keys: Path) -> Settings:
    shutil.copytree(_signing_keys, tmp_path / "data" / "keys")
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        timezone="Europe/Zurich",
        stable_age_seconds=3600,
        base_url=f"http://127.0.0.1:{http_socket.getsockname()[1]}",
    )


@pytest.fixture(scope="session")
def _signing_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key folder as the server's first start leaves it (`KeyRing.ensure`), made once per session
    and copied into each test's data directory: a 2048-bit RSA key takes ~0.1 s to generate.
    A data directory without keys still gets its first key: tests/facade/test_cli.py starts there."""
    keys = tmp_path_factory.mktemp("signing") / "keys"
    KeyRing(keys).ensure()
    return keys


class Clock:
    """Wall time plus an offset a test may move forward (code, token and launch expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(settings: Settings, clock: Clock) -> Iterator[Services]:
    built = build_services(settings, now=clock)
    built.publisher.endpoint()
    yield built
    built.close()


@pytest.fixture
def token(services: Services) -> str:
    """A backend token that may read, search and store everything (issued by our token store)."""
    from tests.smart import issue_token

    return issue_token(services, "system/*.rs system/ImagingStudy.c")


@contextmanager
def serving(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """`app` under uvicorn on 127.0.0.1 (the bound `sock`, or an ephemeral port), in a thread;
    yields http://127.0.0.1:<port>."""
    import threading
    import time

    import uvicorn

    if sock is None:
        sock = listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def live_http(services: Services, http_socket: socket.socket) -> Iterator[str]:
    """The real HTTP application under uvicorn on the bound socket; yields its base URL."""
    from facade.http import build_http_app

    with serving(build_http_app(services), http_socket) as url:
        assert url == services.settings.resolved_base_url()
        yield url


@pytest.fixture
def mllp_port(services: Services) -> Iterator[int]:
    """The serving composition's MLLP listener, with the HL7 inbox behind it, on a free port."""
    listener = mllp_listener(
        services.settings.model_copy(update={"mllp_port": 0}), Hl7Receiver(services.hl7_inbox)
    )
    listener.start(threading.Event())
    try:
        yield listener.port
    finally:
        listener.stop()
