"""WADO-RS: GET studies, series and instances, and their metadata (PS3.18 10.4 Retrieve
Transaction), of what the archive stores, to callers who may read the study's ImagingStudy.

- `/studies/{study}`, `.../series/{series}`, `.../instances/{instance}`: `multipart/related;
  type="application/dicom"`, one stored Part 10 file per part, each part's Content-Type naming
  its transfer syntax. As stored unless the Accept asks for another syntax: Explicit VR Little
  Endian (decoded), or RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless (encoded losslessly,
  decoded first when stored compressed); a lossy syntax only as stored, never by compressing
  (`mapping.dicom.transcode` says what can become what, `accept.py` what an Accept allows). The
  Accept's ranges are tried per instance in order of quality, so each part may go in another.
- `.../metadata` at each level: `application/dicom+json`, a JSON array of the instances' data
  sets (PS3.18 F.2), bulk values as BulkDataURIs under `.../instances/{instance}/bulkdata/{tag}`.
- `.../instances/{instance}/bulkdata/{tag}` (tag: 8 hex digits, a top-level bulk value):
  `multipart/related; type="application/octet-stream"` (PS3.18 8.7.3.3): a native value in one
  part, encapsulated pixel data one frame per part, as stored (the part's transfer-syntax says
  which); no decoding of bulk data (a client that needs decoded pixels retrieves the instance
  in Explicit VR Little Endian).
- The body streams part by part from the blob files (a worker thread reads each file in 1 MiB
  chunks; a transcoded instance is held whole, one at a time): a study of many large instances
  never sits in memory. One instance that is transcoded, or stored in at most 1 MiB, is read
  before the response starts and sent as one body. The index is read before the response
  starts, in one read-only transaction.

Refusals, text/plain, before the response starts: 400 a URL UID that is not a UID; 404 a study,
series or instance the archive does not hold or the caller may not see (the same answer); 406
an Accept that allows no representation we can give (with what we send); 503 the index database
is unavailable; 401 / 403 come from the authorization dependency, as for STOW-RS.

Instances that cannot be given in an acceptable transfer syntax (PS3.18 10.4.3, 8.7.3.5): when
some can and some cannot, those that can are sent with 206 Partial Content and a Warning header
naming how many were left out; when none can, 406. Whether an instance can is decided before the
response starts: from its stored transfer syntax (`can_transcode`: a decoder, an encoder) and,
for a lossless encoding in a study or series, from its header (`Retrieve.unencodable`: pixel
data present, a layout the syntax encodes, openjpeg's 32 pixels a side). A single instance is
transcoded before answering, trying the acceptable syntaxes in turn: 406 when none works. In a
study or series, whose status is already sent, an instance whose transcoding still fails (a bit
stream the decoder refuses, an encoder's refusal the header did not foretell) goes in the next
acceptable syntax; when there is none, the response is cut off before its close delimiter, so
that no client takes the incomplete body for the whole.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydicom.tag import BaseTag

from dicom_bridge.dicomweb.accept import (
    DICOM,
    DICOM_JSON,
    OCTETS,
    NotAcceptable,
    accepts_dicom_json,
    bulk_transfer_syntaxes,
    dicom_transfer_syntaxes,
)
from dicom_bridge.dicomweb.authorization import MayRead
from dicom_bridge.dicomweb.refusals import Refusal, check_uids, found_instances, refused
from storage.errors import NotFound
from storage.usecases.retrieve import (
    EXPLICIT_VR_LE,
    LOSSLESS,
    BulkValue,
    CannotTranscode,
    Retrieve,
    StoredInstance,
    Visibility,
    Way,
    can_transcode,
    way,
)

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_WHOLE = 1 << 20  # a single instance as stored up to this size is read whole and sent in one body
# each instance and the syntaxes to send it in, best first (None: as stored)
_Plan = list[tuple[StoredInstance, list[str | None]]]


def wado_router(retrieve: Retrieve, base_url: str, may_read: MayRead) -> APIRouter:
    """The Retrieve Transaction's DICOM, metadata and bulk data resources; `may_read` (a dependency,
    `DicomwebAuthorization.may_read`) decides first and says which studies the caller sees."""
    router = APIRouter()
    read = Depends(may_read)  # a default, not an annotation: evaluated here, where `may_read` is

    @router.get("/studies/{study}")
    def retrieve_study(study: str, request: Request, sees: Visibility = read) -> Response:
        return _instances(request, sees, study)

    @router.get("/studies/{study}/series/{series}")
    def retrieve_series(study: str, series: str, request: Request, sees: Visibility = read) -> Response:
        return _instances(request, sees, study, series)

    @router.get("/studies/{study}/series/{series}/instances/{instance}")
    def retrieve_instance(
        study: str, series: str, instance: str, request: Request, sees: Visibility = read
    ) -> Response:
        return _instances(request, sees, study, series, instance)

    @router.get("/studies/{study}/metadata")
    def study_metadata(study: str, request: Request, sees: Visibility = read) -> Response:
        return _metadata(request, sees, study)

    @router.get("/studies/{study}/series/{series}/metadata")
    def series_metadata(study: str, series: str, request: Request, sees: Visibility = read) -> Response:
        return _metadata(request, sees, study, series)

    @router.get("/studies/{study}/series/{series}/instances/{instance}/metadata")
    def instance_metadata(
        study: str, series: str, instance: str, request: Request, sees: Visibility = read
    ) -> Response:
        return _metadata(request, sees, study, series, instance)

    @router.get("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}")
    def bulk_data(
        study: str, series: str, instance: str, tag: str, *, request: Request, sees: Visibility = read
    ) -> Response:
        return _bulk_data(retrieve, request, sees, (study, series, instance), tag)

    def _instances(request: Request, sees: Visibility, *uids: str) -> Response:
        level = _LEVELS[len(uids)]
        try:
            check_uids(uids)
            try:
                syntaxes = dicom_transfer_syntaxes(request.headers.get("accept"))
            except NotAcceptable as exc:
                raise Refusal(406, str(exc)) from exc
            found = found_instances(retrieve, uids, sees)
            single = len(uids) == 3
            plan = _plan(retrieve, found, syntaxes, check=not single)
            left_out = len(found) - len(plan)
            if not plan:
                raise Refusal(406, _unconvertible(len(found), syntaxes))
            first = _single(retrieve, plan) if single else None
        except Refusal as refusal:
            return refused(refusal, level)
        boundary = uuid.uuid4().hex
        status = 206 if left_out else 200
        headers = {"Warning": f'299 - "{_unconvertible(left_out, syntaxes)}"'} if left_out else None
        log.info(
            "wado.retrieved",
            extra={
                "route": level,
                "http_status": status,
                "instances": len(plan),
                "rejected": left_out,
                "transcoded": sum(ways[0] is not None for _, ways in plan),
            },
        )
        media_type = f'multipart/related; type="{DICOM}"; boundary={boundary}'
        if first is not None:  # one instance, already in memory: one body, written at once
            ((instance, _),) = plan
            syntax, data = first
            body = _part_head(boundary, syntax or instance.transfer_syntax_uid) + data
            body += f"\r\n--{boundary}--\r\n".encode()
            return Response(body, status_code=status, media_type=media_type, headers=headers)
        return StreamingResponse(
            _multipart(retrieve, plan, boundary), status_code=status, media_type=media_type, headers=headers
        )

    def _metadata(request: Request, sees: Visibility, *uids: str) -> Response:
        level = _LEVELS[len(uids)]
        try:
            check_uids(uids)
            try:
                accepts_dicom_json(request.headers.get("accept"))
            except NotAcceptable as exc:
                raise Refusal(406, str(exc)) from exc
            found = found_instances(retrieve, uids, sees)
        except Refusal as refusal:
            return refused(refusal, f"{level}-metadata")
        log.info("wado.metadata", extra={"route": level, "http_status": 200, "instances": len(found)})
        return StreamingResponse(_json_array(retrieve, found, base_url), media_type=DICOM_JSON)

    return router


_LEVELS = {1: "study", 2: "series", 3: "instance"}


def _bulk_data(
    retrieve: Retrieve, request: Request, sees: Visibility, uids: tuple[str, ...], tag: str
) -> Response:
    """One top-level bulk value of an instance (the BulkDataURI of its metadata)."""
    try:
        check_uids(uids)
        try:
            syntaxes = bulk_transfer_syntaxes(request.headers.get("accept"))
        except NotAcceptable as exc:
            raise Refusal(406, str(exc)) from exc
        (found,) = found_instances(retrieve, uids, sees)
        if len(tag) != 8 or not all(c in "0123456789abcdefABCDEF" for c in tag):
            raise Refusal(404, "no such bulk data")
        try:
            bulk = retrieve.bulk_value(found, int(tag, 16))
        except NotFound as exc:
            raise Refusal(404, str(exc)) from exc
        sent_as = _bulk_syntax(bulk)
        if not any(s is None or s == sent_as for s in syntaxes):
            raise Refusal(406, f"this bulk data is sent as stored, transfer-syntax={sent_as}")
    except Refusal as refusal:
        return refused(refusal, "bulkdata")
    boundary = uuid.uuid4().hex
    log.info("wado.bulkdata", extra={"route": "bulkdata", "http_status": 200, "instances": 1})
    return StreamingResponse(
        _bulk_multipart(retrieve, found, bulk, sent_as, boundary),
        media_type=f'multipart/related; type="{OCTETS}"; boundary={boundary}',
    )


def _plan(
    retrieve: Retrieve, found: list[StoredInstance], syntaxes: list[str | None], *, check: bool
) -> _Plan:
    """Each instance with the acceptable syntaxes it can be sent in, best first (None: as
    stored); an instance that can be sent in none is left out. By the transfer syntaxes alone
    (`can_transcode`), and, with `check`, a lossless encoding only where the instance's header
    shows pixel data the encoder takes (`Retrieve.unencodable`), so that the status and Warning
    sent before the body count what the body will hold."""
    plan: _Plan = []
    for instance in found:
        stored = instance.transfer_syntax_uid
        ways: list[str | None] = []
        for syntax in syntaxes:
            if syntax is None or syntax == stored:
                ways.append(None)
                break  # as stored never fails: nothing after it is tried
            if not can_transcode(stored, syntax):
                continue
            encoded = way(stored, syntax) is Way.ENCODE
            if check and not ways and encoded and _unencodable(retrieve, instance, syntax):
                continue
            ways.append(syntax)
        if ways:
            plan.append((instance, list(dict.fromkeys(ways))))
    return plan


def _unencodable(retrieve: Retrieve, instance: StoredInstance, syntax: str) -> bool:
    try:
        return retrieve.unencodable(instance, syntax) is not None
    except NotFound:
        return False  # its file is gone: the body says so, as for an instance sent as stored


def _unconvertible(count: int, syntaxes: list[str | None]) -> str:
    asked = ", ".join(s for s in syntaxes if s is not None)
    return (
        f"{count} instance(s) cannot be sent in the transfer syntax asked for ({asked}): this server "
        f"sends instances as stored (transfer-syntax=*), in Explicit VR Little Endian ({EXPLICIT_VR_LE}), "
        f"or encoded losslessly in {', '.join(LOSSLESS)} where the pixel data allows; never lossily"
    )


def _single(retrieve: Retrieve, plan: _Plan) -> tuple[str | None, bytes] | None:
    """The syntax and bytes of one instance, read before the response starts: transcoded into
    the first of its syntaxes that works (so that a failure to decode or encode is a 406 when
    none does), or as stored when it is at most `_WHOLE` bytes (a file read at once and sent in
    one body, rather than streamed chunk by chunk from a worker thread); None: a larger instance
    as stored, streamed."""
    ((instance, syntaxes),) = plan
    failures: list[str] = []
    for syntax in syntaxes:
        if syntax is None:
            if instance.size > _WHOLE:
                return None
            try:
                with retrieve.open(instance) as f:
                    return None, f.read()
            except NotFound as exc:
                raise Refusal(404, str(exc)) from exc
        try:
            return syntax, retrieve.transcoded(instance, syntax)
        except CannotTranscode as exc:
            failures.append(f"not in {syntax}: {exc}")
    reasons = "; ".join(failures)
    raise Refusal(406, f"the instance cannot be sent in the transfer syntax asked for ({reasons})")


def _part_head(boundary: str, sent_as: str) -> bytes:
    return f"--{boundary}\r\nContent-Type: {DICOM}; transfer-syntax={sent_as}\r\n\r\n".encode()


def _multipart(retrieve: Retrieve, plan: _Plan, boundary: str) -> Iterator[bytes]:
    """The body, part by part (Starlette iterates a sync generator on a worker thread). An
    instance goes in the first of its syntaxes that works; when none does, the body is cut off."""
    for n, (instance, syntaxes) in enumerate(plan):
        sent = _transcoded(retrieve, instance, syntaxes, n)
        if sent is None:
            yield _part_head(boundary, instance.transfer_syntax_uid)
            with retrieve.open(instance) as f:
                while chunk := f.read(_CHUNK):
                    yield chunk
        else:
            yield _part_head(boundary, sent[0]) + sent[1]
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _transcoded(
    retrieve: Retrieve, instance: StoredInstance, syntaxes: list[str | None], n: int
) -> tuple[str, bytes] | None:
    """The first of `syntaxes` the instance can be given in, and its bytes; None: as stored."""
    for syntax in syntaxes:
        if syntax is None:
            return None
        try:
            return syntax, retrieve.transcoded(instance, syntax)
        except CannotTranscode as exc:
            log.warning(
                "wado.not_transcoded",
                extra={"sop_instance_uid": instance.sop_uid, "transfer_syntax": syntax, "reason": str(exc)},
            )
    log.warning("wado.cut_off", extra={"sop_instance_uid": instance.sop_uid, "instances": n})
    # no close delimiter: the client sees an incomplete body, not a shorter study
    raise CannotTranscode("no transfer syntax asked for works for this instance")


def _bulk_syntax(bulk: BulkValue) -> str:
    """The transfer syntax a part's bytes are in: the stored one for encapsulated pixel data and
    big endian values; a native little endian value is the same bytes in Explicit VR Little
    Endian, the default of application/octet-stream (PS3.18 8.7.3.5.2)."""
    stored = bulk.transfer_syntax_uid
    if bulk.encapsulated or stored == "1.2.840.10008.1.2.2":
        return stored
    return EXPLICIT_VR_LE


def _bulk_multipart(
    retrieve: Retrieve, instance: StoredInstance, bulk: BulkValue, sent_as: str, boundary: str
) -> Iterator[bytes]:
    part = -1
    for n, chunk in retrieve.bulk_parts(instance, bulk):
        if n != part:
            yield (b"\r\n" if part >= 0 else b"") + (
                f"--{boundary}\r\nContent-Type: {OCTETS}; transfer-syntax={sent_as}\r\n\r\n".encode()
            )
            part = n
        yield chunk
    if part < 0:  # an empty value: one empty part
        yield f"--{boundary}\r\nContent-Type: {OCTETS}; transfer-syntax={sent_as}\r\n\r\n".encode()
    yield f"\r\n--{boundary}--\r\n".encode()


def _json_array(retrieve: Retrieve, found: list[StoredInstance], base_url: str) -> Iterator[bytes]:
    yield b"["
    for n, instance in enumerate(found):
        prefix = f"{base_url}/studies/{instance.study_uid}/series/{instance.series_uid}"
        prefix += f"/instances/{instance.sop_uid}/bulkdata"

        def uri(tag: BaseTag, prefix: str = prefix) -> str:
            return f"{prefix}/{tag:08X}"

        yield (b"," if n else b"") + json.dumps(retrieve.metadata(instance, uri)).encode()
    yield b"]"
