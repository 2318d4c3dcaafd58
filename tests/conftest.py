"""Shared fixtures: the real services on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
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
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        timezone="Europe/Zurich",
        stable_age_seconds=3600,
        base_url="http://testserver",
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    built.publisher.endpoint()
    yield built
    built.db.dispose()


@pytest.fixture
def live_http(services: Services) -> Iterator[str]:
    """The real HTTP application under uvicorn on 127.0.0.1 (an ephemeral port); yields its base URL."""
    import dataclasses
    import socket
    import threading
    import time

    import uvicorn

    from facade.http import build_http_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    live = dataclasses.replace(services, settings=services.settings.model_copy(update={"base_url": url}))
    server = uvicorn.Server(uvicorn.Config(build_http_app(live), log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield url
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()
