"""Authorization benchmark: what the token check costs a FHIR request, and token endpoint throughput.

    .venv/bin/python -m bench.auth [--requests N] [--database-url URL]

Three servers of the same archive run side by side, each in its own process under uvicorn on
127.0.0.1, and the client (httpx, one connection, sequential) in this one:

- `bypass`: the guard replaced in-process by one that returns a fixed system/*.rs access
  without looking at the request (the reference: everything but the check);
- `system token`: the real check with a backend token (system/*.rs);
- `patient token`: the real check with a patient/*.rs token, so the search also carries the
  patient-compartment restriction.

Requests alternate between the servers in rounds, so drift hits all three alike; p50 and p95
of `GET /fhir/ImagingStudy?modality=MR&_count=10` are printed with the difference to bypass.
Then client_credentials with ES384 assertions (signed beforehand) against the token endpoint,
on one connection and on four at once. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from facade.settings import Settings
from facade.wiring import Services, build_services


class _Bypass:
    """A guard that lets everything through with a fixed access: the in-process reference."""

    def __init__(self, access: Any) -> None:
        self.access = access

    def __call__(self) -> Any:
        return self.access


def _serve(settings: Settings, sock: socket.socket, bypass: bool) -> None:
    import uvicorn

    from facade.http import build_http_app
    from smart_auth.resource_server.access import Access

    services = build_services(settings, migrate=False)
    if bypass:
        auth = services.auth
        fixed = Access("bench", None, None, None, auth.parse_scopes("system/*.rs"), auth.rules)
        guard: Any = _Bypass(fixed)
        services = dataclasses.replace(services, auth=dataclasses.replace(auth, guard=guard))
    uvicorn.Server(uvicorn.Config(build_http_app(services), log_config=None, access_log=False)).run(
        sockets=[sock]
    )


def _bound() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn does on sockets it binds
    sock.bind(("127.0.0.1", 0))
    return sock


def _populate(services: Services, count: int, *, publish: bool = True) -> str:
    """`count` MR studies for one patient, `count` CT studies for another; Alice's Patient id.
    Unless `publish`, the studies stay unpublished (as during ingest, before they settle)."""
    from tests.archive import patient_id_of, store
    from tests.dicom_factory import new_uid

    work = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    first = ""
    for _ in range(count):
        study = new_uid()
        store(services, work, study_uid=study, series_uid=new_uid(), patient_id="BENCH-A")
        store(services, work, study_uid=new_uid(), series_uid=new_uid(), patient_id="BENCH-B", modality="CT")
        first = first or study
    if publish:
        services.publisher.pending()
    return patient_id_of(services, first)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="searches per server")
    parser.add_argument("--tokens", type=int, default=400, help="client_credentials requests")
    parser.add_argument("--database-url", help="default: SQLite in a temporary data directory")
    parser.add_argument("--unpublished", action="store_true", help="search studies not yet published")
    args = parser.parse_args()
    from tests.smart import ASSERTION_TYPE, assertion, ec_key, issue_token, public_jwks

    data = Path(tempfile.mkdtemp(prefix="bench-auth-data-"))
    socks = {name: _bound() for name in ("bypass", "system token", "patient token")}
    base_sock = socks["system token"]
    settings = Settings(
        data_dir=data,
        database_url=args.database_url,
        base_url=f"http://127.0.0.1:{base_sock.getsockname()[1]}",
        log_level="WARNING",
    )
    services = build_services(settings)
    services.publisher.endpoint()
    patient = _populate(services, 20, publish=not args.unpublished)
    system = issue_token(services, "system/*.rs")
    alice = issue_token(services, "patient/*.rs", patient=patient)
    key = ec_key("bench")
    auth = services.auth.builtin
    assert auth is not None
    backend = auth.registry.add_client(name="bench", kind="backend", jwks=public_jwks(key)).client
    services.close()

    context = multiprocessing.get_context("fork")
    procs = []
    for name, sock in socks.items():
        own = settings.model_copy(update={"base_url": f"http://127.0.0.1:{sock.getsockname()[1]}"})
        procs.append(context.Process(target=_serve, args=(own, sock, name == "bypass"), daemon=True))
    for proc in procs:
        proc.start()
    try:
        urls = {name: f"http://127.0.0.1:{sock.getsockname()[1]}" for name, sock in socks.items()}
        headers = {"bypass": {}, "system token": {"Authorization": f"Bearer {system}"}}
        headers["patient token"] = {"Authorization": f"Bearer {alice}"}
        clients = {n: httpx.Client(base_url=u, headers=headers[n], timeout=30) for n, u in urls.items()}
        query = {"modality": "MR", "_count": "10"}
        for client in clients.values():
            _wait(client)
            for _ in range(50):  # warm up
                assert client.get("/fhir/ImagingStudy", params=query).status_code == 200
        samples: dict[str, list[float]] = {n: [] for n in clients}
        rounds = max(1, args.requests // 100)
        for _ in range(rounds):
            for name, client in clients.items():
                for _ in range(100):
                    started = time.perf_counter()
                    r = client.get("/fhir/ImagingStudy", params=query)
                    samples[name].append((time.perf_counter() - started) * 1000)
                    assert r.status_code == 200, r.text
        base50, base95 = _percentiles(samples["bypass"])
        print(f"FHIR search latency, {rounds * 100} requests each (ms)")
        print(f"{'':<16}{'p50':>8}{'p95':>8}{'+p50':>8}{'+p95':>8}")
        for name, values in samples.items():
            p50, p95 = _percentiles(values)
            print(f"{name:<16}{p50:>8.2f}{p95:>8.2f}{p50 - base50:>+8.2f}{p95 - base95:>+8.2f}")

        token_url = f"{urls['system token']}/auth/token"
        signed = [assertion(backend.client_id, token_url, key) for _ in range(args.tokens)]

        def ask(client: httpx.Client, one: str) -> None:
            r = client.post(
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "scope": "system/*.rs",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": one,
                },
            )
            assert r.status_code == 200, r.text

        print("\nclient_credentials (ES384 assertion) token requests/s")
        half = len(signed) // 2
        with httpx.Client(timeout=30) as client:
            started = time.perf_counter()
            for one in signed[:half]:
                ask(client, one)
            single = half / (time.perf_counter() - started)
        pool = [httpx.Client(timeout=30) for _ in range(4)]
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(lambda pair: ask(pool[pair[0] % 4], pair[1]), enumerate(signed[half:])))
        four = (len(signed) - half) / (time.perf_counter() - started)
        print(f"{'1 connection':<16}{single:>8.0f}\n{'4 at once':<16}{four:>8.0f}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(10)
    return 0


def _wait(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("a server did not start")


if __name__ == "__main__":
    sys.exit(main())
