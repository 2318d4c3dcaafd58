"""What we refuse an HL7 message for, in HL7's own terms (v2.5.1 2.15.5 ERR, table 0357).

`AR` (application reject): the message itself is unacceptable (no readable MSH, unsupported
type, event, version or processing id); resending it unchanged fails again. `AE` (application
error): we understood it but cannot apply it (a cancel of an unknown order, a missing patient
identifier). Error texts name fields, never their values: they are kept with the ACK and may be
logged, and the values are PHI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AckCode = Literal["AA", "AE", "AR"]
AcceptCode = Literal["CA", "CE", "CR"]  # enhanced mode's accept ACK (HL7 table 0008)

# HL7 table 0357, message error condition codes
SEGMENT_SEQUENCE = "100"  # segment sequence error (also: an unreadable segment)
REQUIRED_FIELD = "101"  # required field missing
DATA_TYPE = "102"  # data type error
TABLE_VALUE = "103"  # table value not found
UNSUPPORTED_TYPE = "200"  # unsupported message type
UNSUPPORTED_EVENT = "201"  # unsupported event code
UNSUPPORTED_PROCESSING_ID = "202"  # unsupported processing id
UNSUPPORTED_VERSION = "203"  # unsupported version id
UNKNOWN_KEY = "204"  # unknown key identifier
DUPLICATE_KEY = "205"  # duplicate key identifier
NOT_ALLOWED = "206"  # application record locked / not allowed
INTERNAL = "207"  # application internal error

_TEXT = {
    SEGMENT_SEQUENCE: "Segment sequence error",
    REQUIRED_FIELD: "Required field missing",
    DATA_TYPE: "Data type error",
    TABLE_VALUE: "Table value not found",
    UNSUPPORTED_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION: "Unsupported version id",
    UNKNOWN_KEY: "Unknown key identifier",
    DUPLICATE_KEY: "Duplicate key identifier",
    NOT_ALLOWED: "Application record locked",
    INTERNAL: "Application internal error",
}


@dataclass(frozen=True)
class Location:
    """ERR-2 (ERL): segment id, its sequence (1-based), field, field repetition, component."""

    segment: str
    sequence: int = 1
    field: int | None = None
    component: int | None = None

    def er7_components(self) -> list[str]:
        parts = [self.segment, str(self.sequence), "" if self.field is None else str(self.field)]
        parts += [
            "1" if self.field is not None else "",
            "" if self.component is None else str(self.component),
        ]
        while parts and not parts[-1]:
            parts.pop()
        return parts


class Hl7Error(Exception):
    """A refusal: ACK code, table 0357 code, where, and a PHI-free text."""

    def __init__(self, ack: AckCode, code: str, text: str, location: Location | None = None) -> None:
        super().__init__(text)
        self.ack, self.code, self.text, self.location = ack, code, text, location

    @property
    def code_text(self) -> str:
        return _TEXT.get(self.code, "Error")

    @classmethod
    def reject(
        cls,
        code: str,
        text: str,
        *,
        segment: str = "MSH",
        field: int | None = None,
        component: int | None = None,
    ) -> Hl7Error:
        return cls("AR", code, text, Location(segment, 1, field, component))

    @classmethod
    def error(
        cls,
        code: str,
        text: str,
        *,
        segment: str,
        sequence: int = 1,
        field: int | None = None,
        component: int | None = None,
    ) -> Hl7Error:
        return cls("AE", code, text, Location(segment, sequence, field, component))
