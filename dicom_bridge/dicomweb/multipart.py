"""multipart/related request bodies (RFC 2387; RFC 2046 5.1; PS3.18 8.6.1) spooled part by part.

The body is fed in chunks as it arrives and each part is written straight to its
own staging file (`Ingest.staging`, handed in as `stage`), so a 500 MB instance never sits in memory: the
parser keeps at most one chunk plus a delimiter's length of lookbehind, and one
part's header block (capped).

A small state machine, strict where it matters and lenient where RFC 2046 is:
- the body is searched for CRLF "--" boundary; the first delimiter may also open
  the body, text before it is a preamble (ignored, capped), text after the
  close delimiter is an epilogue (ignored);
- a delimiter line may carry transport padding (spaces, tabs) before its CRLF;
- a line that starts with "--" boundary but goes on with other characters is not
  a delimiter (RFC 2046 5.1.1 BNF) and stays part of the data;
- part headers are RFC 5322 fields (folded lines unfolded); a part without
  Content-Type is reported as `None` and the caller decides (STOW takes the
  multipart `type` parameter for it, RFC 2387 3.1).
Refusals: `Invalid` for a body without boundary, a cut-off body (no close
delimiter), a bad header block; `TooLarge` past the size limit or the part
count limit (as soon as the part past it begins, not after the whole body); `Unavailable`
(from the staging file) when the staging area cannot be written.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import parse_options_header

from storage.errors import Invalid, TooLarge
from storage.usecases.ingest import Staging

_MAX_PREAMBLE = 64 * 1024
_MAX_HEADERS = 16 * 1024  # one part's header block
_MAX_PADDING = 256  # transport padding after a delimiter
_BCHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ")
_LWSP = b" \t"


@dataclass
class Part:
    staging: Staging
    headers: dict[str, str]  # field names lower case, values stripped
    size: int = 0

    @property
    def path(self) -> Path:
        return self.staging.path

    @property
    def content_type(self) -> str | None:
        """The part's own media type, lower case, parameters dropped; None when it has none."""
        value = self.headers.get("content-type")
        return media_type(value).mime if value else None

    @property
    def content_location(self) -> str | None:
        return self.headers.get("content-location")


@dataclass(frozen=True)
class MediaType:
    mime: str  # lower case, e.g. "multipart/related"
    params: dict[str, str] = field(default_factory=dict)


def media_type(header: str) -> MediaType:
    """'multipart/related; type="application/dicom"; boundary=X' -> parts (parameter names lower case,
    quoted values unquoted)."""
    mime, params = parse_options_header(header)
    return MediaType(
        mime.decode("latin-1").strip().lower(),
        {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in params.items()},
    )


def valid_boundary(boundary: str) -> bool:
    """RFC 2046 5.1.1: 1 to 70 bchars, not ending in a space."""
    return 0 < len(boundary) <= 70 and not boundary.endswith(" ") and set(boundary) <= _BCHARS


class _State(enum.Enum):
    PREAMBLE = enum.auto()
    HEADERS = enum.auto()
    BODY = enum.auto()
    EPILOGUE = enum.auto()


class MultipartSpooler:
    """Feed a multipart body chunk by chunk; `finish()` returns the spooled parts; `discard()` cleans up.

    `stage` makes each part's file (STOW-RS: `Ingest.staging`, entered on the request's exit stack)."""

    def __init__(self, boundary: str, stage: Callable[[], Staging], max_bytes: int, max_parts: int) -> None:
        if not valid_boundary(boundary):
            raise Invalid("the multipart boundary is missing or not a valid RFC 2046 boundary")
        self._stage, self._max, self._max_parts = stage, max_bytes, max_parts
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        # The CRLF that belongs to the first delimiter may be absent (the body opens with it).
        self._buf = bytearray(b"\r\n")
        self._state = _State.PREAMBLE
        self._received = 0
        self._skipped = 0  # preamble bytes dropped so far
        self._file: Staging | None = None
        self.parts: list[Part] = []

    def feed(self, chunk: bytes | bytearray) -> None:
        self._received += len(chunk)
        if self._received > self._max:
            raise TooLarge(f"the request body exceeds the limit of {self._max} bytes")
        if self._state is _State.EPILOGUE:
            return
        self._buf += chunk
        self._advance()

    def finish(self) -> list[Part]:
        """The parts, once the close delimiter was seen; `Invalid` for a body cut short."""
        if self._state is _State.PREAMBLE:
            raise Invalid("the multipart body has no boundary delimiter")
        if self._state is not _State.EPILOGUE:
            raise Invalid("the multipart body ends without its close delimiter")
        return self.parts

    def discard(self) -> None:
        """Remove every spooled file still there (after an error, or the parts nobody consumed)."""
        self._file = None
        for part in self.parts:
            part.staging.discard()

    def _advance(self) -> None:
        """Consume as much of the buffer as can be decided now; the rest waits for the next chunk."""
        while True:
            if self._state is _State.HEADERS:
                if not self._headers():
                    return
            elif self._state is _State.EPILOGUE:
                self._buf.clear()
                return
            elif not self._scan():
                return

    def _scan(self) -> bool:
        """PREAMBLE or BODY: pass bytes on up to the next delimiter; False when more input is needed."""
        buf, delimiter = self._buf, self._delimiter
        at = buf.find(delimiter)
        if at < 0:
            keep = len(delimiter) - 1  # the tail may be the start of a delimiter
            if len(buf) > keep:
                self._emit(len(buf) - keep)
            return False
        self._emit(at)
        kind, length = self._delimiter_line()
        if kind == "more":
            return False
        if kind == "data":  # "--boundary" followed by other characters: not a delimiter
            self._emit(len(delimiter))
            return True
        del buf[:length]
        self._close_file()
        self._state = _State.EPILOGUE if kind == "close" else _State.HEADERS
        return True

    def _delimiter_line(self) -> tuple[str, int]:
        """At a delimiter: ('close'|'open', bytes of the line), ('data', 0) or ('more', 0)."""
        buf, n = self._buf, len(self._delimiter)
        if len(buf) < n + 2:
            return "more", 0
        if buf[n : n + 2] == b"--":
            return "close", n + 2
        end = n
        while end < len(buf) and buf[end] in _LWSP:
            end += 1
            if end - n > _MAX_PADDING:
                raise Invalid("the multipart body is malformed (padding after a boundary)")
        if len(buf) < end + 2:
            return "more", 0
        return ("open", end + 2) if buf[end : end + 2] == b"\r\n" else ("data", 0)

    def _headers(self) -> bool:
        """HEADERS: read one part's header block and open its file; False when more input is needed."""
        buf = self._buf
        if buf[:2] == b"\r\n":
            block, length = b"", 2
        else:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEADERS:
                    raise Invalid("the headers of a multipart part are too long")
                return False
            if end > _MAX_HEADERS:
                raise Invalid("the headers of a multipart part are too long")
            block, length = bytes(buf[:end]), end + 4
        if len(self.parts) >= self._max_parts:
            raise TooLarge(f"the request has more than {self._max_parts} parts")
        headers = _parse_headers(block)
        del buf[:length]
        self._file = self._stage()
        self.parts.append(Part(self._file, headers))
        self._state = _State.BODY
        return True

    def _emit(self, n: int) -> None:
        """The first `n` buffered bytes are data: into the current part, or dropped as preamble."""
        if n <= 0:
            return
        if self._state is _State.BODY:
            assert self._file is not None
            self._file.write(self._buf[:n])
            self.parts[-1].size += n
        else:
            self._skipped += n
            if self._skipped > _MAX_PREAMBLE:
                raise Invalid("the multipart body has no boundary delimiter")
        del self._buf[:n]

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def _parse_headers(block: bytes) -> dict[str, str]:
    """RFC 5322 2.2 header fields (folded lines unfolded); Invalid for a line without a colon."""
    headers: dict[str, str] = {}
    name = ""
    if not block:
        return headers
    for line in block.decode("latin-1").split("\r\n"):
        if line[:1] in (" ", "\t") and name:
            headers[name] = f"{headers[name]} {line.strip()}".strip()
            continue
        field_name, colon, value = line.partition(":")
        field_name = field_name.strip().lower()
        if not colon or not field_name or " " in field_name:
            raise Invalid("a multipart part has a malformed header line")
        name = field_name
        headers[name] = value.strip()
    return headers
