"""Encapsulated PDF (PS3.3 A.45.1, C.24.2 Encapsulated Document Module) -> its title and bytes.

The Encapsulated Document (0042,0011) is padded to an even length; Encapsulated Document Length
(0042,0015), when present and plausible, gives the real length, else one trailing NUL is
removed (a PDF never ends with NUL).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset

from mapping.dicom.sr.content import Code, first_code, text_of

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


@dataclass(frozen=True)
class PdfDocument:
    sop_instance: str
    study_instance: str
    title: str  # Document Title (0042,0010)
    code: Code | None  # Concept Name Code Sequence (0040,A043)
    data: bytes  # the PDF; b'' when absent or unreadable
    mime_type: str  # MIME Type of Encapsulated Document (0042,0012); application/pdf when absent
    content_date: str
    content_time: str
    tz_offset: str
    completion: str = ""  # the flags are optional here; a PDF without them is a finished document
    verification: str = ""


def pdf_document(ds: Dataset) -> PdfDocument:
    """The PDF and what names it; never raises."""
    return PdfDocument(
        sop_instance=text_of(ds, "SOPInstanceUID"),
        study_instance=text_of(ds, "StudyInstanceUID"),
        title=text_of(ds, "DocumentTitle"),
        code=first_code(ds, "ConceptNameCodeSequence"),
        data=_data(ds),
        mime_type=text_of(ds, "MIMETypeOfEncapsulatedDocument") or "application/pdf",
        content_date=text_of(ds, "ContentDate"),
        content_time=text_of(ds, "ContentTime"),
        tz_offset=text_of(ds, "TimezoneOffsetFromUTC"),
        completion=text_of(ds, "CompletionFlag").upper(),
        verification=text_of(ds, "VerificationFlag").upper(),
    )


def _data(ds: Dataset) -> bytes:
    try:
        value = ds.get("EncapsulatedDocument")
    except Exception:  # a broken element: no document rather than an error
        return b""
    if not isinstance(value, bytes):
        return b""
    try:
        length = int(ds.get("EncapsulatedDocumentLength") or 0)
    except (TypeError, ValueError):
        length = 0
    if 0 < length <= len(value):
        return value[:length]
    return value[:-1] if value.endswith(b"\x00") else value
