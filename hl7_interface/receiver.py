"""The MLLP listener's message handler: each framed message to the HL7 inbox use case, its ACK
back. Every decision (decoding, what to accept, what to answer) is the use case's; this only
names the peer, and tells `on_message` that a message came (the settle worker waits for a pause
in the traffic)."""

from __future__ import annotations

from collections.abc import Callable

from hl7_interface.mllp import Peer
from storage.usecases.hl7_inbox import Hl7Inbox


class Hl7Receiver:
    def __init__(self, inbox: Hl7Inbox, *, on_message: Callable[[], object] | None = None) -> None:
        self._inbox = inbox
        self._on_message = on_message

    def __call__(self, message: bytes, peer: Peer) -> bytes | None:
        if self._on_message is not None:
            self._on_message()
        return self._inbox.receive(message, str(peer))
