"""The MLLP listener's message handler: each framed message to the HL7 inbox use case, its ACK
back. Every decision (decoding, what to accept, what to answer) is the use case's; this only
names the peer."""

from __future__ import annotations

from hl7_interface.mllp import Peer
from storage.usecases.hl7_inbox import Hl7Inbox


class Hl7Receiver:
    def __init__(self, inbox: Hl7Inbox) -> None:
        self._inbox = inbox

    def __call__(self, message: bytes, peer: Peer) -> bytes | None:
        return self._inbox.receive(message, str(peer))
