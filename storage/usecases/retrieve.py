"""Retrieve: the stored instances of a study, series or instance (WADO-RS, PS3.18 10.4), their
bytes as stored or in another transfer syntax, and their metadata; reads never write.

Who may see a study is the FHIR rule for its ImagingStudy (the ImagingStudy's id is the Study
Instance UID): the caller's `Visibility` (the patient compartment, a granular scope's criteria)
is applied by the search use case inside the same read-only transaction that lists the
instances, so WADO-RS and a FHIR read of the ImagingStudy agree. A study the caller may not see
is `NotFound`, the same answer as an unknown UID, so that existence does not leak.

The index is read once, in one read-only transaction; the blobs are read afterwards, one
instance at a time, while the response streams.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import UID

from mapping.dicom.json_model import (
    BULK_THRESHOLD,
    BULK_VRS,
    PIXEL_DATA_TAGS,
    UNDEFINED_LENGTH,
    dicom_json,
    element_header,
    pixel_data_tag,
    vr_of,
)
from mapping.dicom.part10 import peek_file_meta
from mapping.dicom.pixels import CannotDecode, number_of_frames, stored_frame, uncompressed_frame
from mapping.dicom.rendering import NATIVE_KEYWORDS, RenderOptions, render, render_native
from mapping.dicom.transcode import (
    EXPLICIT_VR_LE,
    LOSSLESS,
    CannotTranscode,
    PixelHeader,
    Way,
    can_transcode,
    encoded_frames,
    transcode,
    unencodable,
    way,
)
from storage.blobs import BlobStore
from storage.db import Database
from storage.dicom_file import walked_with_pixels, walks_natively
from storage.dicom_index.retrieval import StoredInstance, statement, stored_instances
from storage.errors import NotFound
from storage.fhir_store.visibility import Visibility
from storage.usecases.search import Search

__all__ = [
    "EXPLICIT_VR_LE",
    "LOSSLESS",
    "BulkValue",
    "CannotDecode",
    "CannotTranscode",
    "RenderOptions",
    "Retrieve",
    "StoredInstance",
    "Visibility",
    "Way",
    "can_transcode",
    "way",
]

_DEFER = 1024  # metadata: values over this stay on disk (bulk data never read)
_CHUNK = 1 << 20
_META_HEAD = 1 << 16  # a file meta group is a few hundred bytes
QUICK_RENDER = 1 << 20  # bytes of an uncompressed instance whose frame renders in about a millisecond
_WALKED_RENDER = 64 << 20  # a file rendered is read whole up to this size (pydicom reads it whole anyway)


class Retrieve:
    def __init__(self, db: Database, blobs: BlobStore, search: Search) -> None:
        self._db, self._blobs, self._search = db, blobs, search
        self._one_instance = db.lookup(statement(True, True))

    def instances(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        *,
        visibility: Visibility,
    ) -> list[StoredInstance]:
        """The instances the URL names, in DICOM order; NotFound when there are none or the caller
        may not see the study."""
        level = "instance" if sop_uid is not None else "series" if series_uid is not None else "study"
        if self._search.sees_whole("ImagingStudy", visibility):  # nothing to decide in a session
            if sop_uid is not None and series_uid is not None:  # one row: the compiled lookup
                row = self._one_instance.one(study=study_uid, series=series_uid, sop=sop_uid)
                found = [] if row is None else [StoredInstance(*row)]
            else:
                with self._db.read_connection() as conn:
                    found = stored_instances(conn, study_uid, series_uid, sop_uid)
            if not found:
                raise NotFound(f"no such {level}")
            return found
        with self._db.read() as session:
            found = stored_instances(session.connection(), study_uid, series_uid, sop_uid)
            if not found or not self._search.sees(session, "ImagingStudy", study_uid, visibility):
                raise NotFound(f"no such {level}")
        return found

    @property
    def reads_in_process(self) -> bool:
        """Whether the index is read in this process (SQLite): a lookup is local reads of
        microseconds, not a round trip to a database server."""
        return self._db.dialect == "sqlite"

    @staticmethod
    def quick_to_render(instance: StoredInstance) -> bool:
        """Whether rendering a frame of `instance` takes about a millisecond: stored in a syntax the
        walk reads (native little endian: not compressed, not deflated), in a file of at most
        `QUICK_RENDER` bytes (a 512 x 512 CT is 0.5 MiB)."""
        return instance.size <= QUICK_RENDER and walks_natively(instance.transfer_syntax_uid)

    @contextmanager
    def open(self, instance: StoredInstance) -> Iterator[BinaryIO]:
        """The stored Part 10 bytes."""
        with self._blobs.open(instance.blob_key) as f:
            yield f

    def transcoded(self, instance: StoredInstance, target: str) -> bytes:
        """The instance's Part 10 bytes in `target` (read whole: one instance in memory at a
        time); CannotTranscode when it cannot be given so."""
        with self._blobs.open(instance.blob_key) as f:
            ds = dcmread(f)
            return transcode(ds, target)

    @contextmanager
    def stored_data_set(self, blob_key: str) -> Iterator[BinaryIO]:
        """The stored file positioned at its data set (after the file meta group): what a C-STORE
        in the stored transfer syntax sends, read as it goes; NotFound when its file is gone,
        CannotTranscode when it is no Part 10 file."""
        with self._blobs.open(blob_key) as f:
            try:
                meta = peek_file_meta(f.read(_META_HEAD))
            except InvalidDicomError as exc:
                raise CannotTranscode("the stored file has no readable file meta") from exc
            f.seek(meta.dataset_offset)
            yield f

    def stored_data_set_bytes(self, blob_key: str, limit: int) -> bytes | None:
        """The stored file's data set (after its file meta group), read whole when it has at most
        `limit` bytes; None when it is bigger or empty (`stored_data_set` streams it). One open and
        one read for a small instance. NotFound when its file is gone, CannotTranscode when it is
        no Part 10 file."""
        with self._blobs.open(blob_key) as f:
            head = f.read(_META_HEAD)
            try:
                meta = peek_file_meta(head)
            except InvalidDicomError as exc:
                raise CannotTranscode("the stored file has no readable file meta") from exc
            data = head[meta.dataset_offset :]
            if len(head) == _META_HEAD:  # the file may go on: its size says whether to read on
                rest = f.seek(0, io.SEEK_END) - len(head)
                if len(data) + rest > limit:
                    return None
                f.seek(len(head))
                data += f.read(rest)  # read(n) allocates n bytes first: n is what is there
        return data if 0 < len(data) <= limit else None

    def dataset(self, blob_key: str, syntax: str) -> Dataset:
        """A stored instance read whole, as if stored in `syntax` (pynetdicom's C-GET and C-MOVE
        send data sets, and take their encoding from the file meta): as stored, or read back
        from its bytes in `syntax` (`transcode`). NotFound when its file is gone, CannotTranscode
        when it cannot be given in `syntax`."""
        with self._blobs.open(blob_key) as f:
            ds = dcmread(f)
        if str(ds.file_meta.TransferSyntaxUID) == syntax:
            return ds
        return dcmread(io.BytesIO(transcode(ds, syntax)))

    def data_set_bytes(self, blob_key: str, syntax: str) -> bytes:
        """A stored instance's data set (no file meta) encoded in `syntax` (`transcode`), as a
        DIMSE message carries it (PS3.7 6.3.1; deflated: padded to an even length, PS3.5 A.5):
        what our C-GET sends when it cannot send the stored bytes. NotFound when its file is gone,
        CannotTranscode when it cannot be given in `syntax`."""
        with self._blobs.open(blob_key) as f:
            ds = dcmread(f)
        data = transcode(ds, syntax)
        out = data[peek_file_meta(data[:_META_HEAD]).dataset_offset :]
        return out + b"\0" * (len(out) % 2)

    def unencodable(self, instance: StoredInstance, target: str) -> str | None:
        """Why `instance`'s pixel data cannot be encoded into the lossless `target`, as far as its
        header tells (`mapping.dicom.transcode.unencodable`); the pixel data is not read. None:
        the encoder is expected to take it."""
        ts = UID(instance.transfer_syntax_uid)
        with self._blobs.open(instance.blob_key) as f:
            if ts.is_deflated:  # its offsets are not the file's: read through
                ds = dcmread(f, defer_size=_DEFER)
                has_pixels = "PixelData" in ds
            else:
                ds = dcmread(f, defer_size=_DEFER, stop_before_pixels=True)
                has_pixels = pixel_data_tag(f.read(4), little_endian=ts.is_little_endian) == _PIXEL_DATA
        return unencodable(PixelHeader.of(ds, has_pixel_data=has_pixels), str(ts), target)

    def rendered(self, instance: StoredInstance, frame: int, options: RenderOptions) -> bytes:
        """Frame `frame` (1-based) rendered (`mapping.dicom.rendering`); NotFound when the instance
        has no such frame, CannotDecode when its pixel data cannot be decoded. An instance of at
        most `_WALKED_RENDER` bytes is read whole and, when native grayscale, rendered from its
        walked header (`render_native`: no pydicom data set); any other is read by pydicom."""
        with self._blobs.open(instance.blob_key) as f:
            if instance.size > _WALKED_RENDER:
                return _rendered(dcmread(f), frame, options)
            data = f.read()  # whole: read(n) would allocate n bytes before reading
        walked = walked_with_pixels(data, NATIVE_KEYWORDS)
        if walked is not None:
            try:
                image = render_native(*walked, frame, options)
            except IndexError as exc:
                raise NotFound("no such frame") from exc
            if image is not None:
                return image
        return _rendered(dcmread(io.BytesIO(data)), frame, options)

    def rendered_frames(self, instance: StoredInstance, options: RenderOptions) -> list[bytes]:
        """Every frame of `instance` rendered, in order; [] when it has no pixel data (an SR, a
        PDF); CannotDecode when its pixel data cannot be decoded."""
        with self._blobs.open(instance.blob_key) as f:
            ds = dcmread(f)
        return [render(ds, n, options) for n in range(1, number_of_frames(ds) + 1)]

    def frames(self, instance: StoredInstance, numbers: list[int], syntax: str) -> list[bytes]:
        """The frames listed, in that order, in `syntax`: Explicit VR Little Endian gives them
        uncompressed little endian; the stored syntax, for encapsulated pixel data, each frame's
        bit stream as stored; a lossless syntax of `LOSSLESS`, each frame encoded on its own.
        NotFound when one is out of range, CannotDecode when the pixel data cannot be decoded,
        CannotTranscode when the frames cannot be given in `syntax`."""
        with self._blobs.open(instance.blob_key) as f:
            ds = dcmread(f)
        count = number_of_frames(ds)
        if count == 0:
            raise NotFound("the instance has no frames")
        if any(n > count for n in numbers):
            raise NotFound("no such frame")
        if syntax == EXPLICIT_VR_LE:
            return [uncompressed_frame(ds, n) for n in numbers]
        if syntax == instance.transfer_syntax_uid and UID(syntax).is_compressed:
            return [stored_frame(ds, n) for n in numbers]
        return encoded_frames(ds, numbers, syntax)

    def bulk_value(self, instance: StoredInstance, tag: int) -> BulkValue:
        """Where the instance's top-level bulk value `tag` lies; NotFound when it has none (not
        present, not binary, nested, or small enough to be inline in the metadata)."""
        ts = UID(instance.transfer_syntax_uid)
        with self._blobs.open(instance.blob_key) as f:
            if tag in PIXEL_DATA_TAGS and not ts.is_deflated:
                ds = dcmread(f, defer_size=_DEFER, stop_before_pixels=True)
                at = f.tell()
                head = f.read(12)
                if pixel_data_tag(head, little_endian=ts.is_little_endian) != tag:
                    raise NotFound("no such bulk data")
                size, length = element_header(
                    head, implicit_vr=ts.is_implicit_VR, little_endian=ts.is_little_endian
                )
                return BulkValue(tag, ts, at + size, length, int(ds.get("NumberOfFrames") or 1))
            # a deflated data set is read inflated: its offsets are not the file's, so nothing is deferred
            ds = dcmread(f, defer_size=None if ts.is_deflated else _DEFER)
            if tag not in ds:
                raise NotFound("no such bulk data")
            raw = ds.get_item(BaseTag(tag), keep_deferred=True)
            if vr_of(raw.VR, tag) not in BULK_VRS:
                raise NotFound("no such bulk data")
            frames = int(ds.get("NumberOfFrames") or 1)
            if isinstance(raw, RawDataElement) and raw.value is None:  # deferred: still on disk
                return BulkValue(tag, ts, raw.value_tell, raw.length, frames)
            value = ds[tag].value
            if not isinstance(value, bytes) or len(value) <= BULK_THRESHOLD:
                raise NotFound("no such bulk data")
            return BulkValue(tag, ts, 0, len(value), frames, inline=value)

    def bulk_parts(self, instance: StoredInstance, bulk: BulkValue) -> Iterator[tuple[int, bytes]]:
        """The value's bytes as (part number, chunk): one part, read in 1 MiB chunks, for a native
        value; one part per frame for encapsulated pixel data (PS3.18 8.7.3.3.2), the frame's
        bit stream as stored."""
        if bulk.inline is not None:
            yield 0, bulk.inline
            return
        with self._blobs.open(instance.blob_key) as f:
            f.seek(bulk.offset)
            if bulk.encapsulated:
                yield from enumerate(generate_frames(f, number_of_frames=bulk.frames))
                return
            left = bulk.length
            while left > 0 and (chunk := f.read(min(_CHUNK, left))):
                left -= len(chunk)
                yield 0, chunk

    def metadata(self, instance: StoredInstance, bulk_data_uri: Callable[[BaseTag], str]) -> dict[str, Any]:
        """The instance's data set in the DICOM JSON model (PS3.18 F.2), bulk values as
        BulkDataURIs; the pixel data and deferred values are never read."""
        with self._blobs.open(instance.blob_key) as f:
            deflated = UID(instance.transfer_syntax_uid).is_deflated
            # a deflated data set is read inflated: its offsets are not the file's, so nothing is deferred
            ds = dcmread(f, defer_size=None if deflated else _DEFER, stop_before_pixels=not deflated)
            stopped_at = None
            if not deflated:  # a deflated stream's position is not the file's: read through instead
                stopped_at = pixel_data_tag(f.read(4), little_endian=ds.file_meta.TransferSyntaxUID != _BE)
            return dicom_json(ds, bulk_data_uri, instance.transfer_syntax_uid, pixel_data=stopped_at)


_BE = "1.2.840.10008.1.2.2"  # Explicit VR Big Endian (retired): the only big endian syntax
_PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class BulkValue:
    """Where one top-level bulk value of a stored instance lies (`Retrieve.bulk_value`)."""

    tag: int
    transfer_syntax_uid: str  # as stored
    offset: int  # of the value in the file
    length: int  # UNDEFINED_LENGTH: encapsulated pixel data
    frames: int
    inline: bytes | None = None  # a value the reader had to load (an undefined-length UN)

    @property
    def encapsulated(self) -> bool:
        return self.length == UNDEFINED_LENGTH and self.inline is None


def _rendered(ds: Dataset, frame: int, options: RenderOptions) -> bytes:
    frames = number_of_frames(ds)
    if frames == 0:
        raise CannotDecode("the instance has no pixel data to render")
    if not 1 <= frame <= frames:
        raise NotFound("no such frame")
    return render(ds, frame, options)
