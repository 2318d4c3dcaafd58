"""MSH-18 character sets (HL7 table 0211): how to decode a message, and the DICOM Specific
Character Set (0008,0005) its values carry into the worklist (reference: dcm4chee's MSH-18 table).

The MSH segment is ASCII in every supported set, so it is read first (as Latin-1, which never
fails) to learn MSH-18, then the whole message is decoded in the declared set. Absent MSH-18 means
ASCII by the standard; senders often send Latin-1 or UTF-8 anyway, so the *default* for a message
without MSH-18 is configurable (FACADE_HL7_DEFAULT_CHARSET, default `UNICODE UTF-8`: ASCII is
its subset). Bytes that do not fit the declared set are refused with AR: decoding them some
other way would silently misspell names in the worklist and the FHIR record.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapping.hl7.errors import DATA_TYPE, TABLE_VALUE, Hl7Error


@dataclass(frozen=True)
class Charset:
    hl7: str  # MSH-18 as we answer it
    codec: str  # Python codec
    dicom: str  # (0008,0005); '' = default repertoire (ASCII)


_SETS = {
    "ASCII": Charset("ASCII", "ascii", ""),
    "8859/1": Charset("8859/1", "latin-1", "ISO_IR 100"),
    "8859/2": Charset("8859/2", "iso8859_2", "ISO_IR 101"),
    "8859/3": Charset("8859/3", "iso8859_3", "ISO_IR 109"),
    "8859/4": Charset("8859/4", "iso8859_4", "ISO_IR 110"),
    "8859/5": Charset("8859/5", "iso8859_5", "ISO_IR 144"),
    "8859/6": Charset("8859/6", "iso8859_6", "ISO_IR 127"),
    "8859/7": Charset("8859/7", "iso8859_7", "ISO_IR 126"),
    "8859/8": Charset("8859/8", "iso8859_8", "ISO_IR 138"),
    "8859/9": Charset("8859/9", "iso8859_9", "ISO_IR 148"),
    "UNICODE UTF-8": Charset("UNICODE UTF-8", "utf-8", "ISO_IR 192"),
    "ISO IR87": Charset("ISO IR87", "iso2022_jp", "ISO 2022 IR 87"),
    "GB 18030-2000": Charset("GB 18030-2000", "gb18030", "GB18030"),
}
_ALIASES = {
    "ISO IR6": "ASCII",
    "UTF-8": "UNICODE UTF-8",
    "UNICODE": "UNICODE UTF-8",
    "ISO-8859-1": "8859/1",
    "LATIN1": "8859/1",
}


def charset_named(name: str) -> Charset | None:
    """The set MSH-18 (first repetition) names, tolerating common misspellings, or None."""
    key = name.strip().upper()
    return _SETS.get(_ALIASES.get(key, key))


def decode(raw: bytes, default: Charset) -> tuple[str, Charset]:
    """The message text and the set it was decoded with (the default set of a message without
    MSH-18 comes back unnamed, so that the ACK names none either). Raises Hl7Error (AR) for an unknown
    MSH-18 or bytes that do not fit the declared set."""
    declared = _msh18(raw)
    charset = default if not declared else charset_named(declared)
    if charset is None:
        raise Hl7Error.reject(TABLE_VALUE, "MSH-18 names a character set we do not support", field=18)
    try:
        text = raw.decode(charset.codec)
    except UnicodeDecodeError as exc:
        where = "declared in MSH-18" if declared else "assumed for a message without MSH-18"
        raise Hl7Error.reject(
            DATA_TYPE, f"byte {exc.start} does not fit the character set {where} ({charset.hl7})", field=18
        ) from exc
    return text, charset if declared else Charset("", charset.codec, charset.dicom)


def _msh18(raw: bytes) -> str:
    head = raw.lstrip(b"\x0b \r\n").split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    if not head.startswith("MSH") or len(head) < 8:
        return ""
    sep = head[3]
    fields = ["MSH", sep, *head.split(sep)[1:]]  # fields[n] = MSH-n
    if len(fields) <= 18:
        return ""
    repetition = head[5] if len(head) > 5 else "~"
    return fields[18].split(repetition)[0].strip()
