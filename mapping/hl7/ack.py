"""The acknowledgement we answer (original mode, v2.5.1 2.9.2): MSH, MSA, and ERR when refusing;
and the one we get back for a message we send (`read_ack`: MSA-1, MSA-2, the reason in ERR).

Written in the version the sender used (2.3/2.3.1: ERR-1 as segment^sequence^field^code&text&
HL70357; 2.4 and later: ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user text). MSH-3/4
and 5/6 swap the sender's; MSA-2 echoes its MSH-10; our MSH-10 is the caller's id. Encoded in
the set the message came in (MSH-18 echoed when it named one); error texts carry no values.

The ER7 is written here, not with hl7apy: building one ACK through hl7apy's element tree took
~40 ms (it re-parses every field it is given), which alone would cap a connection at 25 orders
a second. `tests/mapping/hl7/test_ack.py` parses every kind of ACK we send back with hl7apy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mapping.hl7.charsets import Charset, decode
from mapping.hl7.er7 import escape, split_message
from mapping.hl7.errors import AcceptCode, AckCode, Hl7Error
from mapping.hl7.header import DEFAULT_VERSION, Header


def build_ack(
    header: Header | None,
    code: AckCode | AcceptCode,
    *,
    control_id: str,
    now: datetime,
    charset: Charset,
    error: Hl7Error | None = None,
    application: str = "FACADE",
    conditions: tuple[str, str] = ("", ""),
) -> bytes:
    """The ACK for a message (`header` None: its MSH could not be read): original mode's
    AA / AE / AR, or enhanced mode's accept ACK CA / CE / CR. `conditions`: our MSH-15 / MSH-16,
    for an application ACK, which is a message of its own that the sender accepts."""
    version = header.answered_version if header is not None else DEFAULT_VERSION
    ours = (
        header.receiving_application if header is not None and header.receiving_application else application
    )
    event = header.event if header is not None and header.event.isalnum() else ""
    kind = ("ACK^" + event if event else "ACK") + ("^ACK" if version >= "2.4" and event else "")
    processing = (
        header.processing_id if header is not None and header.processing_id in ("P", "D", "T") else "P"
    )
    msh = [
        "MSH",
        "^~\\&",
        escape(ours),
        escape(header.receiving_facility if header is not None else ""),
        escape(header.sending_application if header is not None else ""),
        escape(header.sending_facility if header is not None else ""),
        now.strftime("%Y%m%d%H%M%S"),
        "",
        kind,
        escape(control_id),
        processing,
        version,
    ]
    tail = ["", "", *conditions, "", charset.hl7 if charset.hl7 not in ("", "ASCII") else ""]
    while tail and not tail[-1]:
        tail.pop()
    msh += tail
    msa = ["MSA", code, escape(header.control_id[:199] if header is not None else "")]
    segments = ["|".join(msh)]
    if error is not None:
        if version < "2.7":  # MSA-3 (text message) is withdrawn as of v2.7: ERR-8 carries it
            msa.append(escape(error.text[:80]))
        segments += ["|".join(msa), _err(error, version)]
    else:
        segments.append("|".join(msa))
    return ("\r".join(segments) + "\r").encode(charset.codec, errors="replace")


def _err(error: Hl7Error, version: str) -> str:
    location = error.location.er7_components() if error.location else []
    if version < "2.5":
        # ERR-1 (ELD): segment ^ sequence ^ field position ^ code & text & HL70357
        where = [*location, "", "", ""][:3]
        return "ERR|" + "^".join([*where, f"{error.code}&{escape(error.code_text)}&HL70357"])
    fields = ["ERR", "", "^".join(location), f"{error.code}^{escape(error.code_text)}^HL70357", "E"]
    fields += ["", "", "", escape(error.text)]
    return "|".join(fields)


@dataclass(frozen=True)
class Acknowledgement:
    """An ACK we received: MSA-1 (AA / AE / AR; enhanced mode's CA / CE / CR read as these),
    MSA-2 (the control id it acknowledges) and the receiver's reason when it refused."""

    code: str
    control_id: str
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.code == "AA"


_ENHANCED = {"CA": "AA", "CE": "AE", "CR": "AR"}


def read_ack(raw: bytes, default: Charset) -> Acknowledgement:
    """The MSA of an ACK (v2.5.1 2.14.8) and the reason of a refusal: ERR-8 user text, else
    MSA-3, else the code of ERR-3 (2.4+) or ERR-1.4 (2.3). Raises Hl7Error when the reply has no
    MSH or no MSA."""
    try:
        text, _ = decode(raw, default)
    except Hl7Error:
        text = raw.decode("latin-1")
    message = split_message(text)
    msa = message.first("MSA")
    if msa is None:
        raise Hl7Error.reject("100", "the reply has no MSA segment", segment="MSA")
    code = msa.value(1).strip().upper()
    code = _ENHANCED.get(code, code)
    reason = ""
    if code != "AA":
        err = message.first("ERR")
        details = [msa.value(3)]
        if err is not None:
            details = [err.value(8), msa.value(3), err.value(3, 2), err.value(1, 4, 2)]
            number = err.value(3, 1) or err.value(1, 4, 1)
        else:
            number = ""
        said = next((d.strip() for d in details if d.strip()), "")
        reason = " ".join(p for p in (number, said) if p) or "no reason given"
    return Acknowledgement(code, msa.value(2).strip(), reason)
