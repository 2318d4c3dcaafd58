"""The acknowledgement we answer (original mode, v2.5.1 2.9.2): MSH, MSA, and ERR when refusing.

Built with hl7apy in the version the sender used (2.3/2.3.1 ERR-1 as segment^sequence^field^
code&text&HL70357; 2.4 and later ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user text).
MSH-3/4 and 5/6 swap the sender's; MSA-2 echoes its MSH-10; our MSH-10 is the caller's id.
The ACK is encoded in the set the message came in (MSH-18 echoed), so a name in an error text
could never be unencodable; error texts carry no values anyway.
"""

from __future__ import annotations

from datetime import datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from mapping.hl7.charsets import Charset
from mapping.hl7.errors import AckCode, Hl7Error
from mapping.hl7.header import DEFAULT_VERSION, Header


def build_ack(
    header: Header | None,
    code: AckCode,
    *,
    control_id: str,
    now: datetime,
    charset: Charset,
    error: Hl7Error | None = None,
    application: str = "FACADE",
) -> bytes:
    """The ACK for a message (`header` None: its MSH could not be read)."""
    version = header.answered_version if header is not None else DEFAULT_VERSION
    ack = Message("ACK", version=version, validation_level=VALIDATION_LEVEL.TOLERANT)
    msh = ack.msh
    msh.msh_3 = _escaped(
        header.receiving_application if header and header.receiving_application else application
    )
    if header is not None:
        if header.receiving_facility:
            msh.msh_4 = _escaped(header.receiving_facility)
        if header.sending_application:
            msh.msh_5 = _escaped(header.sending_application)
        if header.sending_facility:
            msh.msh_6 = _escaped(header.sending_facility)
    msh.msh_7 = now.strftime("%Y%m%d%H%M%S")
    event = header.event if header is not None and header.event.isalnum() else ""
    msh.msh_9 = ("ACK^" + event if event else "ACK") + ("^ACK" if version >= "2.4" and event else "")
    msh.msh_10 = control_id
    msh.msh_11 = (
        header.processing_id if header is not None and header.processing_id in ("P", "D", "T") else "P"
    )
    if charset.hl7 not in ("", "ASCII"):
        msh.msh_18 = charset.hl7
    ack.msa.msa_1 = code
    ack.msa.msa_2 = _escaped(header.control_id[:199] if header is not None else "")
    if error is not None:
        ack.msa.msa_3 = _escaped(error.text[:80])
        _add_err(ack, error, version)
    text: str = ack.to_er7()
    return text.encode(charset.codec, errors="replace")


def _add_err(ack: Message, error: Hl7Error, version: str) -> None:
    err = ack.add_segment("ERR")
    location = error.location.er7_components() if error.location else []
    if version < "2.5":
        # ERR-1 (ELD): segment ^ sequence ^ field position ^ code & text & HL70357
        where = [*location, "", "", ""][:3]
        err.err_1 = "^".join([*where, f"{error.code}&{_escaped(error.code_text, sub=True)}&HL70357"])
        return
    if location:
        err.err_2 = "^".join(location)
    err.err_3 = f"{error.code}^{_escaped(error.code_text)}^HL70357"
    err.err_4 = "E"
    err.err_8 = _escaped(error.text)


def _escaped(text: str, *, sub: bool = False) -> str:
    """Our text as field content: the default delimiters escaped (v2.5.1 2.7.1)."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("~", "\\R\\")
    return out.replace("&", "\\T\\") if sub or "&" in out else out
