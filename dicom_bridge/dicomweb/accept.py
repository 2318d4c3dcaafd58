"""Content negotiation of WADO-RS retrieve (PS3.18 8.7): what an Accept header lets us send.

DICOM resources (study, series, instance) are sent as `multipart/related;
type="application/dicom"` (PS3.18 8.7.3.1, 10.4.1.1). Per acceptable media range the caller gets
a transfer syntax: None for "as stored", which is what a range without a `transfer-syntax`
parameter, with `transfer-syntax=*`, or a wildcard range (`*/*`, `multipart/*`, a
multipart/related without `type`) gets. (PS3.18 8.7.3.5.2 names Explicit VR Little Endian the
default of application/dicom; serving what was stored is this archive's choice, so that
retrieval gives back the bytes that were sent and costs no decoding. A client that needs Explicit
VR Little Endian asks for it.) Ranges are tried in order of quality (RFC 9110 12.5.1), `q=0`
excludes; a missing or empty Accept accepts anything.

Bulk data (`.../bulkdata/{tag}`) is `multipart/related; type="application/octet-stream"`, negotiated
the same way.

Metadata is `application/dicom+json` (PS3.18 8.7.3.2, F.2); `application/json` is taken as the
same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from dicom_bridge.dicomweb.multipart import MediaType, media_type

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
MULTIPART = "multipart/related"
OCTETS = "application/octet-stream"
AS_STORED: None = None
T = TypeVar("T")

_ANY = {"*/*", "multipart/*"}
_JSON = {DICOM_JSON, "application/json", "application/*", "*/*"}


class NotAcceptable(Exception):
    """No representation the Accept header allows (406)."""


def dicom_transfer_syntaxes(accept: str | None) -> list[str | None]:
    """The transfer syntaxes an Accept allows for DICOM resources, best first (None: as stored);
    NotAcceptable when it allows none."""
    return _transfer_syntaxes(accept, DICOM)


def bulk_transfer_syntaxes(accept: str | None) -> list[str | None]:
    """The same for bulk data, sent as `multipart/related; type="application/octet-stream"`
    (PS3.18 8.7.3.3): a native value in the syntax it is stored in, encapsulated pixel data one
    frame per part, as stored."""
    return _transfer_syntaxes(accept, OCTETS)


def _transfer_syntaxes(accept: str | None, sent: str) -> list[str | None]:
    if not accept or not accept.strip():
        return [AS_STORED]

    def syntax(kind: MediaType) -> str | _Skip | None:
        if kind.mime in _ANY:
            return AS_STORED
        if kind.mime != MULTIPART:
            return _SKIP
        if media_type(kind.params.get("type", sent)).mime not in (sent, "application/*", "*/*"):
            return _SKIP
        wanted = kind.params.get("transfer-syntax", "*").strip()
        return AS_STORED if wanted == "*" else wanted

    ranked = _ranked(accept, syntax)
    if not ranked:
        raise NotAcceptable(f'this resource is sent as {MULTIPART}; type="{sent}"')
    return ranked


class _Skip:
    """A media range that allows nothing of what is asked for."""


_SKIP = _Skip()


def _ranked(accept: str, choose: Callable[[MediaType], T | _Skip]) -> list[T]:
    """What each range of `accept` allows (`choose`; _SKIP: nothing), best first: by q, then in
    the order given; ranges with q=0 left out, each choice once."""
    ranked: list[tuple[float, int, T]] = []
    for position, item in enumerate(accept.split(",")):
        kind = media_type(item)
        q = _quality(kind.params.get("q", "1"))
        if q <= 0:
            continue
        choice = choose(kind)
        if not isinstance(choice, _Skip):
            ranked.append((q, position, choice))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    return list(dict.fromkeys(choice for _, _, choice in ranked))


def accepts_dicom_json(accept: str | None) -> None:
    """NotAcceptable unless the Accept allows application/dicom+json."""
    if not accept or not accept.strip():
        return
    for item in accept.split(","):
        kind = media_type(item)
        if kind.mime in _JSON and _quality(kind.params.get("q", "1")) > 0:
            return
    raise NotAcceptable(f"metadata is sent as {DICOM_JSON}")


def _quality(q: str) -> float:
    try:
        return float(q)
    except ValueError:
        return 1.0


JPEG = "image/jpeg"
PNG = "image/png"
_IMAGE_ANY = {"*/*", "image/*"}


def rendered_media_type(accept: str | None, *, multipart: bool = False) -> str:
    """The image type of a rendered resource or thumbnail (PS3.18 8.7.4): image/jpeg (the default)
    or image/png, whichever the Accept prefers; NotAcceptable when it allows neither. `multipart`:
    a study or series, sent as `multipart/related; type="image/…"`, whose Accept may name the
    image type as the multipart's `type` (or the image type alone)."""
    if not accept or not accept.strip():
        return JPEG
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept.split(",")):
        kind = media_type(item)
        q = _quality(kind.params.get("q", "1"))
        if q <= 0:
            continue
        if multipart and kind.mime == MULTIPART:
            kind = media_type(kind.params.get("type", JPEG))
        if kind.mime in _IMAGE_ANY or kind.mime == JPEG:
            ranked.append((q, position, JPEG))
        elif kind.mime == PNG:
            ranked.append((q, position, PNG))
    if not ranked:
        raise NotAcceptable(f"rendered images are sent as {JPEG} or {PNG}")
    return min(ranked, key=lambda r: (-r[0], r[1]))[2]


# PS3.18 Table 8.7.3-5: the media types of pixel data (frames) and their transfer syntaxes, the
# default first; application/octet-stream is uncompressed (Explicit VR Little Endian)
FRAME_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    OCTETS: ("1.2.840.10008.1.2.1",),
    "image/jpeg": (
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1, the default
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
    ),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/jphc": ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"),
}
_FRAME_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}  # earlier editions
IMAGE_ANY = "image/*"  # any image type: the frames as stored, when stored in a syntax of one


def frames_media_types(accept: str | None) -> list[tuple[str, str | None]]:
    """What an Accept allows for frames (`multipart/related; type="image/jls"`, ...; PS3.18
    8.7.3.5.3), best first: (media type, transfer syntax), None for no `transfer-syntax` or `*`
    (for an image type: the stored syntax when it is one of the type's, else the type's default;
    for application/octet-stream, what a wildcard range or a multipart/related without `type` or
    with `type="*/*"` gets too: uncompressed; `IMAGE_ANY` for `type="image/*"`). NotAcceptable
    when it allows none."""
    if not accept or not accept.strip():
        return [(OCTETS, None)]

    def frames(kind: MediaType) -> tuple[str, str | None] | _Skip:
        if kind.mime in _ANY:
            return (OCTETS, None)
        if kind.mime != MULTIPART:
            return _SKIP
        part = media_type(kind.params.get("type", OCTETS)).mime
        part = _FRAME_ALIASES.get(part, OCTETS if part in ("*/*", "application/*") else part)
        if part not in FRAME_MEDIA_TYPES and part != IMAGE_ANY:
            return _SKIP
        syntax = kind.params.get("transfer-syntax", "*").strip()
        return (part, None if syntax == "*" else syntax)

    ranked = _ranked(accept, frames)
    if not ranked:
        raise NotAcceptable(
            f"frames are sent as {MULTIPART}; type= one of {', '.join(FRAME_MEDIA_TYPES)} (PS3.18 8.7.3.5.3)"
        )
    return ranked
