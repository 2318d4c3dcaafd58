"""The MLLP client against a plain socket receiver: the ACK read across reads, the refusal's
reason, an ACK of another message, silence, a reply that is not MLLP, a closed idle connection."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from hl7_interface.mllp_client import MllpClient, MllpError
from tests.hl7_peer import Receiver, ack, free_port

MESSAGE = b"MSH|^~\\&|FACADE||RIS||20261203120000||ORU^R01^ORU_R01|C-1|P|2.5.1\rPID|1||P1\rOBR|1\r"


def test_an_ack_in_one_byte_pieces_is_read_whole() -> None:
    receiver = Receiver(chunk=1).start()
    client = MllpClient(ack_timeout=10)
    try:
        reply = client.send("127.0.0.1", receiver.port, MESSAGE, "C-1")
        assert reply.accepted and reply.control_id == "C-1" and reply.code == "AA"
        assert receiver.control_ids() == ["C-1"]
    finally:
        client.close()
        receiver.stop()


def test_a_refusal_comes_back_with_its_reason() -> None:
    receiver = Receiver(answer=lambda m: ack(m.control_id, "AE", "no order matches OBR-3")).start()
    client = MllpClient()
    try:
        reply = client.send("127.0.0.1", receiver.port, MESSAGE, "C-1")
        assert not reply.accepted and reply.code == "AE" and reply.reason == "204 no order matches OBR-3"
    finally:
        client.close()
        receiver.stop()


def test_the_ack_of_another_message_is_a_failure() -> None:
    receiver = Receiver(answer=lambda m: ack("SOMETHING-ELSE")).start()
    client = MllpClient()
    try:
        with pytest.raises(MllpError, match="MSA-2"):
            client.send("127.0.0.1", receiver.port, MESSAGE, "C-1")
    finally:
        client.close()
        receiver.stop()


def test_nobody_listening_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError):
        MllpClient(connect_timeout=2).send("127.0.0.1", free_port(), MESSAGE, "C-1")


def _server(reply: bytes) -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            if reply:
                conn.sendall(reply)
            time.sleep(1.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_silence_is_a_timeout_and_garbage_is_not_mllp() -> None:
    server, thread = _server(b"")
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            MllpClient(ack_timeout=0.5).send("127.0.0.1", server.getsockname()[1], MESSAGE, "C-1")
        assert time.monotonic() - started < 1.4
    finally:
        thread.join(5)
        server.close()
    server, thread = _server(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        with pytest.raises(MllpError, match="not MLLP"):
            MllpClient(ack_timeout=1).send("127.0.0.1", server.getsockname()[1], MESSAGE, "C-1")
    finally:
        thread.join(5)
        server.close()


def test_a_connection_the_receiver_closed_is_replaced() -> None:
    receiver = Receiver().start()
    client = MllpClient()
    try:
        assert client.send("127.0.0.1", receiver.port, MESSAGE, "C-1").accepted
        receiver.stop()  # closes the kept connection; the same port listens again
        receiver.start()
        assert client.send("127.0.0.1", receiver.port, MESSAGE, "C-1").accepted
        assert receiver.control_ids() == ["C-1", "C-1"]
    finally:
        client.close()
        receiver.stop()
