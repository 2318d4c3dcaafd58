"""Reading HL7 v2 ER7 (the pipe-and-hat encoding, HL7 v2.5.1 ch. 2.5-2.7), tolerantly.

Real RIS messages are sloppy: an empty MSH-12, a typo in MSH-9.3, `\\n` or `\\r\\n` between
segments, an IPC segment in a v2.3.1 message, Z segments. hl7apy's parser refuses most of these
(it needs a known version and known segments), so reading is this small tokenizer, which takes
the delimiters the message declares in MSH-1/MSH-2 and leaves meaning to the callers; hl7apy
builds what we send (`mapping/hl7/ack.py`).

Positions follow the standard: `field(3)` is PID-3; for MSH, `field(1)` is the field separator
itself and `field(2)` the encoding characters, so MSH-9 is `field(9)` as in the tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mapping.hl7.errors import DATA_TYPE, TABLE_VALUE, Hl7Error
from mapping.hl7.switches import Registers, SwitchError, is_switch

_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_LINE_BREAKS = re.compile(r"\r\n|\n\r|\r|\n")


@dataclass(frozen=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


@dataclass(frozen=True)
class Segment:
    name: str
    fields: tuple[str, ...]  # fields[n] is the raw (escaped) text of field n; fields[0] the name
    delimiters: Delimiters = field(default_factory=Delimiters)
    sequence: int = 1  # the segment's position among those of its name (1-based), for ERR-2

    def raw(self, n: int) -> str:
        """Field n as sent (escaped, all repetitions)."""
        return self.fields[n] if 0 <= n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        """The raw repetitions of field n (MSH-2 is never split)."""
        text = self.raw(n)
        if not text or (self.name == "MSH" and n <= 2):
            return [text] if text else []
        return text.split(self.delimiters.repetition)

    def value(self, n: int, component: int = 1, subcomponent: int = 1, *, repetition: int = 0) -> str:
        """The unescaped text at field n, component, subcomponent of one repetition ('' when
        absent). `""` (HL7's explicit null) reads as '' here; `is_null` tells them apart."""
        reps = self.repetitions(n)
        if repetition >= len(reps):
            return ""
        try:
            return part(reps[repetition], component, subcomponent, self.delimiters)
        except SwitchError as exc:
            raise self.switch_error(exc, n, component) from exc

    def text(self, n: int, repetition: int = 0) -> str:
        """Repetition r of field n unescaped whole, its separators kept as text (a TX / FT line)."""
        reps = self.repetitions(n)
        if repetition >= len(reps):
            return ""
        try:
            return unescape(reps[repetition], self.delimiters)
        except SwitchError as exc:
            raise self.switch_error(exc, n) from exc

    def switch_error(self, exc: SwitchError, n: int, component: int | None = None) -> Hl7Error:
        """AE naming the field whose character set switch we cannot honour (table 0357: 103 for
        a set we do not know, 102 for text that does not fit the set)."""
        return Hl7Error.error(
            TABLE_VALUE if exc.unknown else DATA_TYPE,
            f"{self.name}-{n}: {exc.text}",
            segment=self.name,
            sequence=self.sequence,
            field=n,
            component=component if component and component > 1 else None,
        )

    def is_null(self, n: int) -> bool:
        """Whether field n is HL7's explicit null `""` (delete the stored value), not just empty."""
        return self.raw(n) == '""'


def part(text: str, component: int, subcomponent: int, d: Delimiters) -> str:
    """One component / subcomponent of a field repetition, unescaped."""
    components = text.split(d.component)
    if component > len(components):
        return ""
    subs = components[component - 1].split(d.subcomponent)
    if subcomponent > len(subs):
        return ""
    raw = subs[subcomponent - 1]
    return "" if raw == '""' else unescape(raw, d)


@dataclass(frozen=True)
class Er7Message:
    segments: tuple[Segment, ...]
    delimiters: Delimiters

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]


def split_message(text: str) -> Er7Message:
    """Segments of a decoded message. Raises Hl7Error (AR) when there is no MSH to read: without
    it the message cannot even be acknowledged properly."""
    lines = [line for line in _LINE_BREAKS.split(text.strip("\x00 \t\r\n")) if line.strip()]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise Hl7Error.reject("100", "the message does not start with an MSH segment", segment="MSH")
    head = lines[0]
    sep, encoding = head[3], head[4:8]
    if sep.isalnum() or len(set(sep + encoding)) != 5:
        raise Hl7Error.reject("102", "MSH-1/MSH-2 do not declare five distinct delimiters", segment="MSH")
    delimiters = Delimiters(sep, encoding[0], encoding[1], encoding[2], encoding[3])
    segments = []
    counts: dict[str, int] = {}
    for line in lines:
        name, *rest = line.split(sep)
        name = name.strip()
        # MSH-1 is the separator itself and MSH-2 the encoding characters (never split)
        fields = ("MSH", sep, *rest) if name == "MSH" else (name, *rest)
        if not _SEGMENT_NAME.match(name):
            raise Hl7Error.reject("100", "a segment has no valid three-character name", segment=name[:3])
        counts[name] = counts.get(name, 0) + 1
        segments.append(Segment(name, tuple(fields), delimiters, counts[name]))
    return Er7Message(tuple(segments), delimiters)


_FORMATTING = {".br": "\n", "H": "", "N": ""}


def escape(text: str) -> str:
    """Our text as field content with the default delimiters (v2.5.1 2.7.1): \\E\\ \\F\\ \\S\\
    \\R\\ \\T\\ for the delimiters, a space for a line break (one inside a field would end the
    segment)."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("~", "\\R\\")
    out = out.replace("&", "\\T\\")
    return out.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def unescape(text: str, d: Delimiters) -> str:
    """HL7 escape sequences (v2.5.1 2.7): delimiters \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, \\Xhh..\\ hex
    (as Latin-1 code points; the message text is already decoded), \\.br\\ as a line break,
    highlighting \\H\\ \\N\\ dropped, character set switches \\Cxxyy\\ \\Mxxyyzz\\ honoured
    (`mapping/hl7/switches.py`; they hold to the end of the text given, one subcomponent). Other
    formatting commands (\\.sp\\, \\.in\\ ...) are dropped: their text carries on. Raises
    SwitchError for a switch to a set we cannot decode."""
    esc = d.escape
    if esc not in text:
        return text
    out: list[str] = []
    registers = Registers()
    pending: list[str] = []  # text read since the last switch, in the sets it designated

    def flush() -> None:
        if pending:
            out.append(registers.decode("".join(pending)))
            pending.clear()

    i = 0
    while i < len(text):
        char = text[i]
        end = text.find(esc, i + 1) if char == esc else -1
        if end < 0:
            (pending if registers.switched else out).append(char)
            i += 1
            continue
        code = text[i + 1 : end]
        i = end + 1
        if is_switch(code):
            flush()
            registers.designate(code)
        elif code in _FORMATTING:
            flush()
            out.append(_FORMATTING[code])
        else:  # delimiters and hex stand for the bytes they escape: the switched set reads them too
            (pending if registers.switched else out).append(_escaped(code, d))
    flush()
    return "".join(out)


def _escaped(code: str, d: Delimiters) -> str:
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": d.escape}
    if code in simple:
        return simple[code]
    if code[:1] == "X" and len(code) > 1 and len(code) % 2 == 1:
        try:
            return bytes.fromhex(code[1:]).decode("latin-1")
        except ValueError:
            return ""
    return ""
