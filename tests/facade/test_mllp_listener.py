"""The MLLP listener as `facade serve` builds it: FACADE_MLLP_* settings, the lifecycle's start and
stop, `mllp_send` as the peer."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from ipaddress import ip_network
from pathlib import Path

import pytest
from pydantic import ValidationError

from facade.lifecycle import Lifecycle
from facade.listeners import MllpListener, mllp_listener
from facade.settings import Settings, settings_error
from hl7_interface.mllp import MllpConfig, Peer

MLLP_SEND = str(Path(sys.executable).with_name("mllp_send"))
MESSAGE = b"MSH|^~\\&|RIS|HOSP|FACADE|HOSP|20261203090000||ORM^O01|CTRL1|P|2.5.1\rORC|NW|ORD-1"


def ack(message: bytes, peer: Peer) -> bytes:
    return b"MSH|^~\\&|FACADE|HOSP|RIS|HOSP|20261203090001||ACK^O01^ACK|A1|P|2.5.1\rMSA|AA|CTRL1"


def test_mllp_settings() -> None:
    settings = Settings(mllp_allowed_hosts=" 10.0.0.0/8, 192.0.2.1 ,2001:db8::/32")
    assert (settings.mllp_host, settings.mllp_port) == ("127.0.0.1", 2575)
    assert (settings.mllp_max_connections, settings.mllp_max_bytes) == (32, 16 * 1024**2)
    assert settings.mllp_idle_timeout == 300
    assert settings.mllp_allowed_networks() == [
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.1/32"),
        ip_network("2001:db8::/32"),
    ]
    assert Settings().mllp_allowed_networks() == []  # anyone
    with pytest.raises(ValidationError) as refused:
        Settings(mllp_allowed_hosts="10.0.0.0/8,ris.example.org")
    assert settings_error(refused.value) == (
        "FACADE_MLLP_ALLOWED_HOSTS: not an IP address or CIDR network: 'ris.example.org'"
    )


def test_the_lifecycle_starts_and_stops_the_mllp_listener(tmp_path: Path) -> None:
    listener = mllp_listener(Settings(mllp_port=0), ack)
    lifecycle = Lifecycle([listener], [])
    runner = threading.Thread(target=lifecycle.run)
    runner.start()
    try:
        assert lifecycle.running.wait(10)
        assert listener.port != 0
        file = tmp_path / "orm.hl7"
        file.write_bytes(MESSAGE.replace(b"\r", b"\n"))
        sent = subprocess.run(
            [MLLP_SEND, "--loose", "--file", str(file), "--port", str(listener.port), "127.0.0.1"],
            capture_output=True,
            check=True,
            timeout=30,
        )
        assert b"MSA|AA|CTRL1" in sent.stdout
    finally:
        lifecycle.request_stop()
        runner.join(15)
    assert not runner.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()


def test_a_port_in_use_fails_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listener = MllpListener(MllpConfig(host="127.0.0.1", port=taken.getsockname()[1]), ack)
        with pytest.raises(SystemExit) as exited:
            listener.start(threading.Event())
    assert exited.value.code not in (0, None)
