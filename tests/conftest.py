"""Shared fixtures: the real services on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from facade.settings import Settings
from facade.wiring import Services, build_services

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    with fresh_database(backend, tmp_path) as url:
        yield url


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database (a SQLite file in `folder`, or a PostgreSQL schema of its own),
    dropped on leaving; a test may hold several (a second archive)."""
    if backend == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder / 'index.sqlite3'}"
        return
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
def settings(tmp_path: Path, database_url: str, http_socket: socket.socket) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        timezone="Europe/Zurich",
        stable_age_seconds=3600,
        base_url=f"http://127.0.0.1:{http_socket.getsockname()[1]}",
    )


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
