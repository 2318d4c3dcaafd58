"""STOW-RS: POST /studies and /studies/{study} (PS3.18 10.5 Store Transaction).

Request: `multipart/related; type="application/dicom"; boundary=...` (PS3.18 8.6.1,
10.5.1.4), one Part 10 instance per part. The body is spooled to the blob staging
area part by part as it arrives (never held in memory) and each part then goes
through the shared ingest path on a worker thread; one part's failure never stops
the others. A missing `type` parameter is taken as application/dicom, and so is a
part without its own Content-Type (RFC 2387 3.1: `type` names the parts' type).

Response (PS3.18 10.5.3, Annex I): `application/dicom+json`, the Store Instances
Response Module: Retrieve URL of the study (empty when the stored instances span
several studies or none was stored), ReferencedSOPSequence for each stored
instance (duplicates of identical bytes and replacements included) and
FailedSOPSequence with a Failure Reason (I.2.2; codes in `dicom_bridge.statuses`).
- 200 all stored; 202 some stored, some failed; 409 none stored (10.5.3.1);
- 503 none stored and every failure was for lack of resources (A7xx: disk full,
  database down), so that clients retry (8.5);
- refused before any instance is stored, with a short text/plain reason:
  400 a malformed request (bad boundary, cut-off body, no parts, a study that is
  not a UID), 406 an Accept without application/dicom+json (8.7.8.1), 413 a body
  over the configured limit (by Content-Length before reading, else while
  reading) or more parts than the configured limit (as soon as the part past it
  begins), 415 any other Content-Type or `type`: application/dicom+json
  metadata with bulk data is not supported (10.5.3.1). A part of another media
  type inside an application/dicom request fails alone, with 0xC000.
Logs: one `stow.stored` line per request, and one `stow.parts_refused` summary
(counts by reason) when parts failed, never a line per part: a request of many
bad parts must not flood the log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request, Response
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from dicom_bridge.dicomweb.multipart import MultipartSpooler, Part, media_type
from dicom_bridge.statuses import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, PROCESSING_FAILURE, status_of
from mapping.dicom.part10 import peek_file_meta
from mapping.dicom.uid import valid_uid
from storage.errors import DomainError, Invalid, TooLarge, Unavailable
from storage.usecases.ingest import Expect, Ingest, Source, Stored

log = logging.getLogger(__name__)

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
_ACCEPTABLE = {DICOM_JSON, "application/json", "application/*", "*/*"}
_BINARY = {"", "binary", "8bit", "7bit"}  # Content-Transfer-Encoding that leaves the bytes as they are
_BATCH = 1 << 20  # body bytes gathered before one hop to a worker thread
_SOURCE = Source("stow-rs")
_SEND = f'send multipart/related; type="{DICOM}"'


@dataclass(frozen=True)
class _Failure:
    sop_class_uid: str | None
    sop_instance_uid: str | None
    reason: int
    why: str  # PHI-free text, for the log summary


class _Refusal(Exception):
    """The whole request is refused with `status` before any instance is stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def stow_router(
    ingest: Ingest,
    base_url: str,
    max_upload_bytes: int,
    max_parts: int,
    may_store: Callable[..., object],
) -> APIRouter:
    """The Store Transaction on `/studies` and `/studies/{study}` (PS3.18 10.5.1.1). `may_store`
    (a dependency, `DicomwebAuthorization.may_store`) decides before the body is read."""
    router = APIRouter(dependencies=[Depends(may_store)])

    @router.post("/studies")
    async def store(request: Request) -> Response:
        return await _store(request, None)

    @router.post("/studies/{study}")
    async def store_in_study(study: str, request: Request) -> Response:
        return await _store(request, study)

    async def _store(request: Request, study: str | None) -> Response:
        started = time.perf_counter()
        try:
            if study is not None and not valid_uid(study):
                raise _Refusal(400, "the study in the URL is not a valid UID")
            boundary = _check_headers(request, max_upload_bytes)
        except _Refusal as refusal:
            return _refused(refusal)
        # Each part's file comes from the ingest use case; leaving the stack removes whatever was not
        # stored: errors, disconnects, cancellation.
        with ExitStack() as staged:
            try:
                spooler = MultipartSpooler(
                    boundary, lambda: staged.enter_context(ingest.staging()), max_upload_bytes, max_parts
                )
                parts = await _receive(request, spooler)
            except Invalid as exc:
                return _refused(_Refusal(400, str(exc)))
            except _Refusal as refusal:
                return _refused(refusal)
            stored: list[Stored] = []
            failed: list[_Failure] = []
            for part in parts:
                result = await run_in_threadpool(_store_part, ingest, part, study)
                if isinstance(result, Stored):
                    stored.append(result)
                else:
                    failed.append(result)
        status = _status(stored, failed)
        log.info(
            "stow.stored",
            extra={
                "http_status": status,
                "parts": len(parts),
                "stored": sum(s.outcome == "stored" for s in stored),
                "duplicate": sum(s.outcome == "duplicate" for s in stored),
                "replaced": sum(s.outcome == "replaced" for s in stored),
                "rejected": len(failed),
                "ms": round((time.perf_counter() - started) * 1000),
            },
        )
        if failed:
            _log_refused_parts(failed)
        body = _response(stored, failed, base_url, study)
        return Response(body, status_code=status, media_type=DICOM_JSON)

    return router


def _check_headers(request: Request, max_bytes: int) -> str:
    """Accept, Content-Type and Content-Length, checked before the body is read; the boundary."""
    if not _accepts_dicom_json(request.headers.get("accept")):
        raise _Refusal(406, f"the response is {DICOM_JSON}")
    kind = media_type(request.headers.get("content-type", ""))
    if kind.mime != "multipart/related":
        raise _Refusal(415, _SEND)
    if media_type(kind.params.get("type", DICOM)).mime != DICOM:
        raise _Refusal(415, f"only {DICOM} parts are supported (no metadata with bulk data); {_SEND}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise _Refusal(413, f"the request body exceeds the limit of {max_bytes} bytes")
    return kind.params.get("boundary", "")


def _accepts_dicom_json(accept: str | None) -> bool:
    """RFC 9110 12.5.1: no Accept accepts anything; a range with q=0 excludes."""
    if not accept or not accept.strip():
        return True
    for item in accept.split(","):
        kind = media_type(item)
        if kind.mime in _ACCEPTABLE and _quality(kind.params.get("q", "1")) > 0:
            return True
    return False


def _quality(q: str) -> float:
    try:
        return float(q)
    except ValueError:
        return 1.0


async def _receive(request: Request, spooler: MultipartSpooler) -> list[Part]:
    """Spool the body as it arrives; file writes run on worker threads, about 1 MiB at a time."""
    pending = bytearray()
    try:
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= _BATCH:
                await run_in_threadpool(spooler.feed, pending)
                pending = bytearray()
        await run_in_threadpool(spooler.feed, pending)
        parts = spooler.finish()
    except TooLarge as exc:
        raise _Refusal(413, str(exc)) from exc
    except Invalid as exc:
        raise _Refusal(400, str(exc)) from exc
    except Unavailable as exc:
        raise _Refusal(503, str(exc)) from exc
    except ClientDisconnect as exc:
        raise _Refusal(400, "the client went away before the end of the body") from exc
    if not parts:
        raise _Refusal(400, "the multipart body has no parts")
    return parts


def _store_part(ingest: Ingest, part: Part, study: str | None) -> Stored | _Failure:
    """One part through the shared ingest path (runs on a worker thread)."""
    sop_class, sop_instance = _peek_uids(part)
    if part.content_type not in (None, DICOM):
        return _Failure(sop_class, sop_instance, CANNOT_UNDERSTAND, "a part is not application/dicom")
    if part.headers.get("content-transfer-encoding", "").lower() not in _BINARY:
        return _Failure(sop_class, sop_instance, CANNOT_UNDERSTAND, "a part is not in binary encoding")
    try:
        return ingest.store(part.staging, _SOURCE, Expect(study_uid=study))
    except DomainError as exc:
        return _Failure(sop_class, sop_instance, status_of(exc), str(exc))
    except Exception:
        log.exception("stow.failed", extra={"status": PROCESSING_FAILURE, "sop_instance_uid": sop_instance})
        return _Failure(sop_class, sop_instance, PROCESSING_FAILURE, "internal error")


def _log_refused_parts(failed: list[_Failure]) -> None:
    """One line per request however many parts failed: counts by reason (reasons are PHI-free)."""
    log.warning(
        "stow.parts_refused",
        extra={"rejected": len(failed), "reasons": dict(Counter(f"{f.reason:#06x} {f.why}" for f in failed))},
    )


def _peek_uids(part: Part) -> tuple[str | None, str | None]:
    """The SOP Class and Instance UIDs the file meta names, to report a failure against."""
    try:
        with part.path.open("rb") as f:
            meta = peek_file_meta(f.read(1 << 16))
    except (OSError, InvalidDicomError):
        return None, None
    return _uid_or_none(meta.sop_class_uid), _uid_or_none(meta.sop_instance_uid)


def _uid_or_none(uid: str | None) -> str | None:
    uid = (uid or "").rstrip("\0 ")
    return uid if valid_uid(uid) else None


def _status(stored: list[Stored], failed: list[_Failure]) -> int:
    if not failed:
        return 200
    if stored:
        return 202
    if all(f.reason == OUT_OF_RESOURCES for f in failed):
        return 503
    return 409


def _response(stored: list[Stored], failed: list[_Failure], base_url: str, study: str | None) -> str:
    """Store Instances Response Module (PS3.18 Table I.1-1) in the DICOM JSON model (Annex F)."""
    ds = Dataset()
    studies = {s.study_uid for s in stored}
    target = study if study in studies else next(iter(studies)) if len(studies) == 1 else None
    ds.RetrieveURL = f"{base_url}/studies/{target}" if target else None  # Type 2: present, maybe empty
    if failed:
        ds.FailedSOPSequence = [_failed_item(f) for f in failed]
    if stored:
        ds.ReferencedSOPSequence = [_referenced_item(s, base_url) for s in stored]
    return ds.to_json()


def _referenced_item(s: Stored, base_url: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = s.sop_class_uid
    item.ReferencedSOPInstanceUID = s.sop_instance_uid
    series = f"{base_url}/studies/{s.study_uid}/series/{s.series_uid}"
    item.RetrieveURL = f"{series}/instances/{s.sop_instance_uid}"
    return item


def _failed_item(f: _Failure) -> Dataset:
    """A part that is not DICOM names no SOP Instance: the item then carries the reason only."""
    item = Dataset()
    if f.sop_class_uid:
        item.ReferencedSOPClassUID = f.sop_class_uid
    if f.sop_instance_uid:
        item.ReferencedSOPInstanceUID = f.sop_instance_uid
    item.FailureReason = f.reason
    return item


def _refused(refusal: _Refusal) -> Response:
    log.warning("stow.refused", extra={"http_status": refusal.status, "reason": refusal.reason})
    return Response(refusal.reason + "\n", status_code=refusal.status, media_type="text/plain; charset=utf-8")
