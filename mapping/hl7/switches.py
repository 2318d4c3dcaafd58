"""Character set switches inside HL7 text (v2.5.1 2.7.2, 2.7.3): `\\Cxxyy\\` (a single-byte set) and
`\\Mxxyy[zz]\\` (a multi-byte set) are ISO 2022 escape sequences written in hex: `\\C2842\\` is
ESC ( B (ASCII into G0), `\\C2D41\\` ESC - A (ISO 8859-1 into G1), `\\M2442\\` ESC $ B (JIS X 0208
into G0), `\\M242844\\` ESC $ ( D (JIS X 0212 into G0), `\\M242943\\` ESC $ ) C (KS X 1001 into G1).

The message text is already decoded (in its MSH-18 set, `mapping/hl7/charsets.py`); the text
after a switch is turned back into the bytes it was sent as (every character of a 7-bit or Latin-1
message is one byte) and decoded in the set the switch designates: bytes 0x21-0x7E in the G0 set,
bytes 0xA0-0xFF in the G1 set. A set we cannot decode raises `SwitchError`: text read in the
wrong set would be a misspelled name in the worklist, never a harmless one.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Decoder = Callable[[bytes], str]


class SwitchError(ValueError):
    """A switch we cannot honour: `unknown` a set we do not know, else text that does not fit it."""

    def __init__(self, text: str, *, unknown: bool) -> None:
        super().__init__(text)
        self.text, self.unknown = text, unknown


def _codec(name: str) -> Decoder:
    codecs.lookup(name)  # fail at import for a codec Python lacks, not at the first message
    return lambda data: data.decode(name)


def _iso2022(designation: bytes, codec: str) -> Decoder:
    """A G0 set Python decodes only as ISO 2022: the bytes behind their escape sequence."""
    codecs.lookup(codec)
    return lambda data: (b"\x1b" + designation + data + b"\x1b(B").decode(codec)


@dataclass(frozen=True)
class Designation:
    register: Literal["G0", "G1"]
    decode: Decoder | None  # None: back to the message's own set (ASCII in G0)


# ISO 2022 final sequences (the escape's hex after ESC) -> the set designated (DICOM PS3.3
# C.12.1.1.2 lists the same ones for ISO 2022 in DICOM)
SWITCHES: dict[str, Designation] = {
    "2842": Designation("G0", None),  # ESC ( B  ISO-IR 6 ASCII
    "284A": Designation("G0", _iso2022(b"(J", "iso2022_jp")),  # ESC ( J  ISO-IR 14 JIS X 0201 Roman
    "2949": Designation("G1", _codec("shift_jis")),  # ESC ) I  ISO-IR 13 JIS X 0201 Katakana
    "2D41": Designation("G1", _codec("latin-1")),  # ESC - A  ISO-IR 100
    "2D42": Designation("G1", _codec("iso8859_2")),  # ISO-IR 101
    "2D43": Designation("G1", _codec("iso8859_3")),  # ISO-IR 109
    "2D44": Designation("G1", _codec("iso8859_4")),  # ISO-IR 110
    "2D4C": Designation("G1", _codec("iso8859_5")),  # ISO-IR 144 Cyrillic
    "2D47": Designation("G1", _codec("iso8859_6")),  # ISO-IR 127 Arabic
    "2D46": Designation("G1", _codec("iso8859_7")),  # ISO-IR 126 Greek
    "2D48": Designation("G1", _codec("iso8859_8")),  # ISO-IR 138 Hebrew
    "2D4D": Designation("G1", _codec("iso8859_9")),  # ISO-IR 148 Latin-5
    "2D54": Designation("G1", _codec("tis_620")),  # ISO-IR 166 Thai
    "2440": Designation("G0", _iso2022(b"$@", "iso2022_jp")),  # ESC $ @  JIS C 6226-1978
    "2442": Designation("G0", _iso2022(b"$B", "iso2022_jp")),  # ESC $ B  ISO-IR 87 JIS X 0208
    "242844": Designation("G0", _iso2022(b"$(D", "iso2022_jp_1")),  # ESC $ ( D  ISO-IR 159 JIS X 0212
    "242943": Designation("G1", _codec("euc_kr")),  # ESC $ ) C  ISO-IR 149 KS X 1001
    "242941": Designation("G1", _codec("gb2312")),  # ESC $ ) A  ISO-IR 58 GB 2312
}


def is_switch(code: str) -> bool:
    """Whether an escape's code (between the escape characters) is a character set switch."""
    hexa = code[1:]
    sizes = (4,) if code[:1] == "C" else (4, 6) if code[:1] == "M" else ()
    return len(hexa) in sizes and all(c in "0123456789ABCDEFabcdef" for c in hexa)


def designation(code: str) -> Designation:
    """The set a switch designates; SwitchError for one we cannot decode."""
    found = SWITCHES.get(code[1:].upper())
    if found is None:
        raise SwitchError("a character set switch names a set we cannot decode", unknown=True)
    return found


@dataclass
class Registers:
    """What G0 and G1 hold now (None: the message's own set)."""

    g0: Decoder | None = None
    g1: Decoder | None = None

    @property
    def switched(self) -> bool:
        return self.g0 is not None or self.g1 is not None

    def designate(self, code: str) -> None:
        found = designation(code)
        if found.register == "G0":
            self.g0 = found.decode
        else:
            self.g1 = found.decode

    def decode(self, text: str) -> str:
        """Text read after a switch, in the sets designated: runs of 7-bit characters in G0,
        runs of 0x80-0xFF in G1; other characters (only a Unicode message holds them) as they are."""
        out: list[str] = []
        start = 0
        for i in range(1, len(text) + 1):
            if i == len(text) or _kind(text[i]) != _kind(text[start]):
                out.append(self._run(text[start:i]))
                start = i
        return "".join(out)

    def _run(self, run: str) -> str:
        decoder = {"GL": self.g0, "GR": self.g1}.get(_kind(run[0]))
        if decoder is None:
            return run
        try:
            return decoder(run.encode("latin-1"))
        except UnicodeError as exc:
            raise SwitchError(
                "text after a character set switch does not fit that set", unknown=False
            ) from exc


def _kind(char: str) -> str:
    point = ord(char)
    return "GL" if point < 0x80 else "GR" if point < 0x100 else "other"
