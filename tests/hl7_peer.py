"""A RIS that receives ORU^R01 over MLLP, for the outbox tests: a plain socket server on
127.0.0.1 (not our listener), which records each message and answers as the test asks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

SB, END = b"\x0b", b"\x1c\x0d"


@dataclass(frozen=True)
class Received:
    control_id: str  # MSH-10
    patient: str  # PID-3.1
    status: str  # OBR-25
    raw: str


def free_port() -> int:
    """A port nothing listens on (yet): the receiver is down there until started."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse(raw: str) -> Received:
    fields = {line[:3]: line.split("|") for line in raw.split("\r") if line}
    msh, pid, obr = fields["MSH"], fields.get("PID", []), fields.get("OBR", [])
    return Received(
        control_id=msh[9],
        patient=pid[3].split("^")[0] if len(pid) > 3 else "",
        status=obr[25] if len(obr) > 25 else "",
        raw=raw,
    )


def ack(control_id: str, code: str = "AA", reason: str = "") -> bytes:
    segments = [
        f"MSH|^~\\&|RIS|HOSP|FACADE||20261203120000||ACK^R01^ACK|A-{control_id}|P|2.5.1",
        f"MSA|{code}|{control_id}",
    ]
    if code != "AA":
        segments.append(f"ERR||OBR^1^3|204^Unknown key^HL70357|E||||{reason}")
    return ("\r".join(segments) + "\r").encode()


# what the receiver does with a message: the reply bytes (unframed), or None to close without one
Answer = Callable[[Received], bytes | None]


class Receiver:
    """Listens on `port` once started; every message is recorded before it is answered."""

    def __init__(self, port: int = 0, answer: Answer | None = None, *, chunk: int = 0) -> None:
        self.port = port
        self.answer: Answer = answer or (lambda m: ack(m.control_id))
        self.chunk = chunk  # > 0: the reply goes out in pieces of this many bytes
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._stopping = threading.Event()

    def start(self) -> Receiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self.port, self._sock = int(sock.getsockname()[1]), sock
        self._stopping.clear()
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for conn in list(self._connections):
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        if self._sock is not None:
            self._sock.close()

    def control_ids(self) -> list[str]:
        with self._lock:
            return [m.control_id for m in self.received]

    def wait_for(self, count: int, seconds: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"{len(self.received)} of {count} messages arrived")

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            conn.settimeout(0.2)
            while not self._stopping.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while END in buffer:
                    framed, buffer = buffer.split(END, 1)
                    message = parse(framed.removeprefix(SB).decode("latin-1"))
                    with self._lock:
                        self.received.append(message)
                    reply = self.answer(message)
                    if reply is None:
                        return  # the ACK is lost
                    out = SB + reply + END
                    step = self.chunk or len(out)
                    for i in range(0, len(out), step):
                        conn.sendall(out[i : i + step])
                        if self.chunk:
                            time.sleep(0.001)
