"""The MLLP transport against real peers: `hl7`'s `mllp_send` and raw sockets, on a real server
on 127.0.0.1 port 0, with a small handler that records what it got and answers an echo."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path

import pytest

from facade.logs import JsonFormatter
from hl7_interface.mllp import (
    END,
    SB,
    Deframer,
    MllpConfig,
    MllpServer,
    Peer,
    TooLarge,
    Unframed,
    frame,
    peer_allowed,
)

MLLP_SEND = str(Path(sys.executable).with_name("mllp_send"))  # the hl7 package's, in the venv
TIMEOUT = 5.0  # every socket operation of a test; a hang fails instead of blocking the suite
SECRET = b"Secretname^Nobody"  # PHI stand-in: must never reach a log

ORM = (
    b"MSH|^~\\&|RIS|HOSP|FACADE|HOSP|20261203090000||ORM^O01|CTRL%d|P|2.5.1\r"
    b"PID|1||PID-1||" + SECRET + b"\r"
    b"ORC|NW|ORD-%d\r"
)


def orm(n: int) -> bytes:
    return ORM % (n, n)


class Recorder:
    """The test's handler: records each message and its peer, answers b"ACK " + the message.
    `gate`, when given, holds each message starting with b"slow" until set; a message starting
    with b"boom" raises; b"bye" closes."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, Peer]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, message: bytes, peer: Peer) -> bytes | None:
        with self._lock:
            self.got.append((message, peer))
        if message.startswith(b"slow"):
            self.entered.set()
            self.gate.wait(TIMEOUT)
        if message.startswith(b"boom"):
            raise RuntimeError(message.decode("latin-1"))  # content in the exception's text
        if message == b"bye":
            return None
        return b"ACK " + message

    def messages(self) -> list[bytes]:
        with self._lock:
            return [m for m, _ in self.got]


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


@contextmanager
def running(handler: Recorder, **config: object) -> Iterator[MllpServer]:
    server = MllpServer(replace(MllpConfig(host="127.0.0.1", port=0), **config), handler)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(handler: Recorder) -> Iterator[MllpServer]:
    with running(handler, idle_timeout=TIMEOUT) as server:
        yield server


class Client:
    """A raw MLLP peer: sends bytes as given, reads framed replies (several may come at once)."""

    def __init__(self, server: MllpServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def reply(self) -> bytes:
        """The next framed reply, unframed."""
        while END not in self._buffer:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed after {self._buffer!r}"
            self._buffer += chunk
        reply, self._buffer = self._buffer.split(END, 1)
        assert reply.startswith(SB)
        return reply[1:]

    def assert_closed(self) -> None:
        """The server closed the connection (an orderly end, or a reset for unread bytes), and
        sent nothing more."""
        with suppress(ConnectionResetError):
            assert self.sock.recv(4096) == b""
        assert self._buffer == b""


def connect(server: MllpServer) -> Client:
    return Client(server)


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# mllp_send, the hl7 package's command-line sender


def mllp_send(server: MllpServer, file: Path) -> subprocess.CompletedProcess[bytes]:
    """`mllp_send --loose`: the messages of a file (newlines for segment ends), one connection."""
    command = [MLLP_SEND, "--loose", "--file", str(file), "--port", str(server.port), "127.0.0.1"]
    return subprocess.run(command, capture_output=True, check=True, timeout=30)


def test_mllp_send_one_message(server: MllpServer, handler: Recorder, tmp_path: Path) -> None:
    file = tmp_path / "one.hl7"
    file.write_bytes(orm(1).replace(b"\r", b"\n"))
    sent = mllp_send(server, file)
    assert handler.messages() == [orm(1).rstrip(b"\r")]  # --loose strips the last segment's CR
    assert sent.stdout == frame(b"ACK " + orm(1).rstrip(b"\r")) + b"\n"


def test_mllp_send_several_messages_over_one_connection_in_order(
    server: MllpServer, handler: Recorder, tmp_path: Path
) -> None:
    file = tmp_path / "three.hl7"
    file.write_bytes(b"".join(orm(n) for n in (1, 2, 3)).replace(b"\r", b"\n"))
    sent = mllp_send(server, file)
    assert handler.messages() == [orm(n).rstrip(b"\r") for n in (1, 2, 3)]
    assert len({peer for _, peer in handler.got}) == 1  # one connection
    assert sent.stdout.split(b"\n")[:3] == [frame(b"ACK " + orm(n).rstrip(b"\r")) for n in (1, 2, 3)]


# framing over raw sockets


def test_a_frame_split_byte_by_byte(server: MllpServer, handler: Recorder) -> None:
    with connect(server) as sock:
        for byte in frame(orm(1)):
            sock.sendall(bytes([byte]))
        assert sock.reply() == b"ACK " + orm(1)
        sock.sendall(frame(orm(2)))  # and the connection goes on
        assert sock.reply() == b"ACK " + orm(2)
    assert handler.messages() == [orm(1), orm(2)]


def test_two_messages_in_one_segment_get_two_replies_in_order(server: MllpServer, handler: Recorder) -> None:
    with connect(server) as sock:
        sock.sendall(frame(orm(1)) + b"\r\n" + frame(orm(2)))  # newlines between frames: tolerated
        assert sock.reply() == b"ACK " + orm(1)
        assert sock.reply() == b"ACK " + orm(2)
    assert handler.messages() == [orm(1), orm(2)]


def test_garbage_inside_a_frame_goes_to_the_handler(server: MllpServer, handler: Recorder) -> None:
    with connect(server) as sock:
        sock.sendall(frame(b"\x00\xff not HL7 \x1c\x1c"))  # an end block needs its CR
        assert sock.reply() == b"ACK \x00\xff not HL7 \x1c\x1c"


def test_bytes_before_a_start_block_close_the_connection_unlogged(
    server: MllpServer, handler: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hl7_interface")
    with connect(server) as sock:
        sock.sendall(SECRET + frame(orm(1)))
        sock.assert_closed()
    wait_for(lambda: any(r.msg == "mllp.closed" for r in caplog.records))
    assert handler.messages() == []
    assert [r.msg for r in caplog.records if r.levelno >= logging.WARNING] == ["mllp.unframed"]
    assert_no_content_logged(caplog)


# limits: idle peers, large messages, many connections, addresses


def test_a_silent_client_and_one_stopped_mid_frame_are_closed_while_others_are_served(
    handler: Recorder,
) -> None:
    with running(handler, idle_timeout=0.5) as server, connect(server) as silent, connect(server) as halted:
        halted.sendall(SB + orm(1)[:20])
        started = time.monotonic()
        with connect(server) as other:
            for n in range(3):
                other.sendall(frame(orm(n)))
                assert other.reply() == b"ACK " + orm(n)
        silent.assert_closed()
        halted.assert_closed()
        assert 0.4 < time.monotonic() - started < 3
    assert handler.messages() == [orm(n) for n in range(3)]


def test_a_message_over_the_limit_closes_the_connection_unhandled(handler: Recorder) -> None:
    with running(handler, max_bytes=1000) as server:
        with connect(server) as sock:
            sock.sendall(frame(b"x" * 1000))  # at the limit: handled
            assert sock.reply() == b"ACK " + b"x" * 1000
            sock.sendall(frame(b"y" * 1001))
            sock.assert_closed()
        with connect(server) as sock:  # a frame over the limit before its end arrived
            sock.sendall(SB + b"z" * 5000)
            sock.assert_closed()
        with connect(server) as sock:
            sock.sendall(frame(b"ok"))
            assert sock.reply() == b"ACK ok"
    assert handler.messages() == [b"x" * 1000, b"ok"]


def test_beyond_max_connections_a_connection_is_closed_at_once(handler: Recorder) -> None:
    with running(handler, max_connections=2, idle_timeout=TIMEOUT) as server:
        first, second = connect(server), connect(server)
        for sock in (first, second):
            sock.sendall(frame(b"hello"))
            assert sock.reply() == b"ACK hello"
        with connect(server) as third:
            third.assert_closed()
        first.close()
        wait_for(lambda: len(server._connections) == 1)
        with connect(server) as fourth:
            fourth.sendall(frame(b"again"))
            assert fourth.reply() == b"ACK again"
        second.close()


def test_an_address_outside_the_allow_list_is_closed_at_once(handler: Recorder) -> None:
    with running(handler, allowed=(ip_network("10.0.0.0/8"),)) as server, connect(server) as sock:
        sock.sendall(frame(orm(1)))
        sock.assert_closed()
    assert handler.messages() == []
    allowed = (ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"))
    with running(handler, allowed=allowed) as server, connect(server) as sock:
        sock.sendall(frame(b"in"))
        assert sock.reply() == b"ACK in"


def test_peer_allowed() -> None:
    allowed = [ip_network("192.0.2.0/24"), ip_network("2001:db8::/32")]
    assert peer_allowed("192.0.2.7", allowed)
    assert peer_allowed("::ffff:192.0.2.7", allowed)  # an IPv4 peer of a dual-stack listener
    assert peer_allowed("2001:db8::1", allowed)
    assert not peer_allowed("198.51.100.1", allowed)
    assert not peer_allowed("not an address", allowed)
    assert peer_allowed("198.51.100.1", [])


# the handler


def test_a_handler_that_raises_closes_its_connection_and_others_are_served(
    server: MllpServer, handler: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hl7_interface")
    with connect(server) as sock:
        sock.sendall(frame(b"boom " + SECRET))
        sock.assert_closed()
    with connect(server) as sock:
        sock.sendall(frame(orm(1)))
        assert sock.reply() == b"ACK " + orm(1)
    (failed,) = (r for r in caplog.records if r.msg == "mllp.handler_failed")
    assert failed.error == "RuntimeError"  # type: ignore[attr-defined]
    assert_no_content_logged(caplog)


def test_a_handler_answering_none_closes_the_connection(server: MllpServer, handler: Recorder) -> None:
    with connect(server) as sock:
        sock.sendall(frame(b"bye") + frame(b"never handled"))
        sock.assert_closed()
    assert handler.messages() == [b"bye"]


def test_a_slow_handler_holds_up_its_own_connection_only(server: MllpServer, handler: Recorder) -> None:
    handler.gate.clear()
    with connect(server) as slow, connect(server) as fast:
        slow.sendall(frame(b"slow"))
        assert handler.entered.wait(TIMEOUT)
        for n in range(3):
            fast.sendall(frame(orm(n)))
            assert fast.reply() == b"ACK " + orm(n)
        handler.gate.set()
        assert slow.reply() == b"ACK slow"


def test_many_connections_at_once_each_answered_in_order(server: MllpServer, handler: Recorder) -> None:
    failures: list[BaseException] = []

    def sender(n: int) -> None:
        try:
            with connect(server) as sock:
                batch = [b"%d-%d" % (n, i) for i in range(20)]
                sock.sendall(b"".join(frame(m) for m in batch[:10]))  # pipelined
                assert [sock.reply() for _ in range(10)] == [b"ACK " + m for m in batch[:10]]
                for m in batch[10:]:  # one at a time
                    sock.sendall(frame(m))
                    assert sock.reply() == b"ACK " + m
        except BaseException as exc:  # reported by the test, not lost in its thread
            failures.append(exc)

    senders = [threading.Thread(target=sender, args=(n,)) for n in range(16)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(TIMEOUT * 2)
    assert not failures
    for n in range(16):
        assert [m for m in handler.messages() if m.startswith(b"%d-" % n)] == [
            b"%d-%d" % (n, i) for i in range(20)
        ]


def test_a_reply_that_is_not_bytes_closes_its_connection_only(server: MllpServer) -> None:
    server.handler = lambda message, peer: "not bytes"  # type: ignore[assignment,return-value]
    with connect(server) as sock:
        sock.sendall(frame(b"one"))
        sock.assert_closed()
    server.handler = lambda message, peer: b"fixed"
    with connect(server) as sock:
        sock.sendall(frame(b"two"))
        assert sock.reply() == b"fixed"


# stopping


def test_stop_answers_the_message_under_way_and_closes_the_rest(handler: Recorder) -> None:
    handler.gate.clear()
    server = MllpServer(MllpConfig(host="127.0.0.1", port=0, idle_timeout=TIMEOUT), handler)
    server.start()
    busy, idle = connect(server), connect(server)
    idle.sendall(frame(b"first"))
    assert idle.reply() == b"ACK first"
    busy.sendall(frame(b"slow") + frame(b"after the stop"))
    assert handler.entered.wait(TIMEOUT)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    idle.assert_closed()  # waiting for a next message: closed at once
    wait_for(lambda: refused(server.port))  # no longer accepting
    assert stopper.is_alive()  # waits for the message under way
    handler.gate.set()
    assert busy.reply() == b"ACK slow"
    busy.assert_closed()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    assert handler.messages() == [b"first", b"slow"]
    busy.close()
    idle.close()


def test_stop_waits_a_bounded_time(handler: Recorder) -> None:
    handler.gate.clear()  # never opened: the handler runs out its own TIMEOUT
    server = MllpServer(MllpConfig(host="127.0.0.1", port=0, stop_timeout=0.3), handler)
    server.start()
    with connect(server) as sock:
        sock.sendall(frame(b"slow"))
        assert handler.entered.wait(TIMEOUT)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        sock.assert_closed()
    handler.gate.set()


def test_hurry_cuts_a_stop_short(handler: Recorder) -> None:
    handler.gate.clear()
    server = MllpServer(MllpConfig(host="127.0.0.1", port=0, stop_timeout=60), handler)
    server.start()
    with connect(server) as sock:
        sock.sendall(frame(b"slow"))
        assert handler.entered.wait(TIMEOUT)
        stopper = threading.Thread(target=server.stop)
        started = time.monotonic()
        stopper.start()
        wait_for(lambda: refused(server.port))
        server.hurry()  # a second interrupt
        sock.assert_closed()  # at once, though the handler still runs
        handler.gate.set()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        assert time.monotonic() - started < 2


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


# the deframer alone


def test_deframer_at_every_split_point() -> None:
    stream = b"\n" + frame(orm(1)) + b"\r\n" + frame(b"") + frame(orm(2))
    for cut in range(len(stream) + 1):
        deframer, got = Deframer(max_bytes=1000), []
        for piece in (stream[:cut], stream[cut:]):
            deframer.feed(piece)
            while (message := deframer.next()) is not None:
                got.append(message)
        assert got == [orm(1), b"", orm(2)], cut
        assert deframer.idle


def test_deframer_refusals() -> None:
    deframer = Deframer(max_bytes=10)
    deframer.feed(b" \r\nMSH")
    with pytest.raises(Unframed):
        deframer.next()
    deframer = Deframer(max_bytes=10)
    deframer.feed(SB + b"0123456789" + b"\x1c")  # at the limit, end block half there
    assert deframer.next() is None
    deframer.feed(b"\r")
    assert deframer.next() == b"0123456789"
    deframer.feed(SB + b"0123456789a")
    with pytest.raises(TooLarge):
        deframer.next()


def assert_no_content_logged(caplog: pytest.LogCaptureFixture) -> None:
    """What the service's JSON log would hold of these records: no message content."""
    formatter = JsonFormatter()
    for record in caplog.records:
        line = formatter.format(record)
        assert SECRET.decode() not in line and "MSH" not in line, line
