"""The MSH segment: who sent a message, what it is, and whether we take it (v2.5.1 2.14.9).

Tolerance where the meaning is clear: an empty MSH-12 is read as 2.5.1 (the version IHE
Radiology profiles); MSH-9.3 (message structure) is ignored, since the type and event say it all and real
senders misspell it. Precision where it is not: a version outside 2.3-2.8.2, a processing id
other than P (production), D (debugging) or T (training), or a type/event we do not handle is
refused with AR.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapping.hl7.er7 import Er7Message
from mapping.hl7.errors import (
    REQUIRED_FIELD,
    TABLE_VALUE,
    UNSUPPORTED_EVENT,
    UNSUPPORTED_PROCESSING_ID,
    UNSUPPORTED_TYPE,
    UNSUPPORTED_VERSION,
    Hl7Error,
)

VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2")
DEFAULT_VERSION = "2.5.1"
PROCESSING_IDS = ("P", "D", "T")
ACK_CONDITIONS = ("AL", "NE", "ER", "SU")  # HL7 table 0155, MSH-15 / MSH-16

# message type -> the events we apply (`storage/usecases/hl7_inbox.py` dispatches on the type)
SUPPORTED: dict[str, tuple[str, ...]] = {
    "ORM": ("O01",),
    "OMI": ("O23",),
    "ADT": ("A01", "A04", "A05", "A08", "A31", "A40"),
    "ORU": ("R01",),
}


@dataclass(frozen=True)
class Header:
    sending_application: str  # MSH-3.1
    sending_facility: str  # MSH-4.1
    receiving_application: str  # MSH-5.1
    receiving_facility: str  # MSH-6.1
    control_id: str  # MSH-10
    message_type: str  # MSH-9.1
    event: str  # MSH-9.2
    processing_id: str  # MSH-11.1
    version: str  # MSH-12.1 as sent ('' when empty)
    accept_ack: str  # MSH-15 (enhanced mode when set)
    application_ack: str  # MSH-16

    @property
    def answered_version(self) -> str:
        """The version our ACK is written in: the sender's, or the default when it sent none."""
        return self.version if self.version in VERSIONS else DEFAULT_VERSION

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgement mode (v2.5.1 2.9.3): MSH-15 or MSH-16 valued."""
        return bool(self.accept_ack or self.application_ack)

    @property
    def kind(self) -> str:
        return f"{self.message_type}^{self.event}"


def read_header(message: Er7Message) -> Header:
    msh = message.msh
    return Header(
        sending_application=msh.value(3).strip(),
        sending_facility=msh.value(4).strip(),
        receiving_application=msh.value(5).strip(),
        receiving_facility=msh.value(6).strip(),
        control_id=msh.value(10).strip(),
        message_type=msh.value(9, 1).strip().upper(),
        event=msh.value(9, 2).strip().upper(),
        processing_id=msh.value(11).strip().upper(),
        version=msh.value(12).strip(),
        accept_ack=msh.value(15).strip().upper(),
        application_ack=msh.value(16).strip().upper(),
    )


def check_header(header: Header) -> None:
    """Raise Hl7Error (AR) for a message we do not take, naming the MSH field."""
    if not header.control_id:
        raise Hl7Error.reject(REQUIRED_FIELD, "MSH-10 (message control id) is empty", field=10)
    if header.version and header.version not in VERSIONS:
        raise Hl7Error.reject(
            UNSUPPORTED_VERSION, f"version {header.version[:16]} is not supported (2.3 to 2.8.2)", field=12
        )
    if header.processing_id not in PROCESSING_IDS:
        raise Hl7Error.reject(UNSUPPORTED_PROCESSING_ID, "MSH-11 must be P, D or T", field=11, component=1)
    for n, condition in ((15, header.accept_ack), (16, header.application_ack)):
        if condition and condition not in ACK_CONDITIONS:
            raise Hl7Error.reject(TABLE_VALUE, f"MSH-{n} must be AL, NE, ER or SU (HL7 table 0155)", field=n)
    if header.message_type not in SUPPORTED:
        raise Hl7Error.reject(
            UNSUPPORTED_TYPE, f"message type {header.message_type[:8] or '(empty)'} is not supported", field=9
        )
    if header.event not in SUPPORTED[header.message_type]:
        raise Hl7Error.reject(
            UNSUPPORTED_EVENT,
            f"event {header.kind[:16]} is not supported",
            field=9,
            component=2,
        )


def wanted(condition: str, *, success: bool) -> bool:
    """Whether an acknowledgement is sent under MSH-15 / MSH-16 `condition` (table 0155): AL
    always, NE never, ER on an error or reject, SU on success; an empty one, in enhanced mode,
    as AL (a sender that named no condition is not left waiting)."""
    if condition == "NE":
        return False
    if condition == "ER":
        return not success
    if condition == "SU":
        return success
    return True
