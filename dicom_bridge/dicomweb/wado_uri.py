"""WADO-URI (PS3.18 9, "URI Service"): `GET /wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`,
an instance as a Part 10 file or a rendered frame, under the same tokens and reading rules as
WADO-RS (a study the caller may not see is 404, like an unknown one).

- `contentType` (PS3.18 9.1.2.1.5): the first of a comma-separated list we can give.
  `application/dicom`: the Part 10 file as stored, or with `transferSyntax=` in another syntax as
  WADO-RS gives it (`can_transcode`): Explicit VR Little Endian (1.2.840.10008.1.2.1) decoded,
  RLE Lossless, JPEG-LS Lossless or JPEG 2000 Lossless encoded losslessly; a lossy syntax only
  when it is the stored one. `image/jpeg` (the default) or `image/png`: a rendered frame
  (`mapping.dicom.rendering`); an instance without pixel data falls back to application/dicom
  when no contentType was given.
- `frameNumber` (1-based), `windowCenter` and `windowWidth` (both or neither), `rows` and
  `columns` (the largest size, aspect ratio kept), `imageQuality` (1 to 100).
- `anonymize`, `annotation`, `region`, `presentationUID` and `presentationSeriesUID` are not
  supported: 400 rather than an answer that silently ignores them.

Refusals, text/plain: 400 a missing or malformed parameter; 404 an unknown or invisible instance
or frame; 406 a contentType or transferSyntax we cannot give, or pixel data that cannot be decoded;
503 the index is unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from dicom_bridge.dicomweb.authorization import MayRead
from dicom_bridge.dicomweb.refusals import Refusal, check_uids, found_instances, refused
from dicom_bridge.dicomweb.rendered import rendered
from mapping.dicom.render_params import quality_param, size_of, window_of
from mapping.dicom.rendering import JPEG, PNG
from storage.usecases.retrieve import (
    LOSSLESS,
    CannotDecode,
    CannotTranscode,
    RenderOptions,
    Retrieve,
    StoredInstance,
    Visibility,
    can_transcode,
)

log = logging.getLogger(__name__)

DICOM = "application/dicom"
_UNSUPPORTED = ("anonymize", "annotation", "region", "presentationUID", "presentationSeriesUID")


def wado_uri_router(retrieve: Retrieve, may_read: MayRead) -> APIRouter:
    router = APIRouter()
    read = Depends(may_read)

    @router.get("/")
    def wado(request: Request, sees: Visibility = read) -> Response:
        try:
            return _answer(retrieve, request, sees)
        except Refusal as refusal:
            return refused(refusal, "wado-uri")

    return router


def _answer(retrieve: Retrieve, request: Request, sees: Visibility) -> Response:
    params = request.query_params
    if params.get("requestType") != "WADO":
        raise Refusal(400, "requestType=WADO is required")
    missing = [name for name in ("studyUID", "seriesUID", "objectUID") if not params.get(name)]
    if missing:
        raise Refusal(400, f"{', '.join(missing)} required")
    for name in _UNSUPPORTED:
        if name in params:
            raise Refusal(400, f"{name} is not supported")
    uids = (params["studyUID"], params["seriesUID"], params["objectUID"])
    check_uids(uids)
    asked = [t.split(";")[0].strip().lower() for t in params.get("contentType", "").split(",") if t.strip()]
    usable = [t for t in asked if t in (DICOM, JPEG, PNG, "image/*", "*/*")]
    if asked and not usable:
        raise Refusal(406, f"contentType is one of {DICOM}, {JPEG}, {PNG}")
    content_type = (usable or [JPEG])[0]
    content_type = JPEG if content_type in ("image/*", "*/*") else content_type
    options = None if content_type == DICOM else _options(request, content_type)
    (found,) = found_instances(retrieve, uids, sees)
    if options is None:
        return _part10(retrieve, found, params.get("transferSyntax"))
    frame = _whole(params.get("frameNumber", "1"), "frameNumber")
    try:
        image = rendered(retrieve, found, frame, options)
    except Refusal as refusal:
        if not asked and refusal.status == 406 and "no pixel data" in refusal.reason:
            return _part10(retrieve, found, params.get("transferSyntax"))
        raise
    log.info("wado_uri.rendered", extra={"route": "wado-uri", "http_status": 200, "instances": 1})
    return Response(image, media_type=options.media_type)


def _options(request: Request, media_type: str) -> RenderOptions:
    params = request.query_params
    center, width = params.get("windowCenter"), params.get("windowWidth")
    try:
        if (center is None) != (width is None):
            raise ValueError("windowCenter and windowWidth go together")
        window = window_of(center, width) if center is not None and width is not None else None
        rows, columns = params.get("rows"), params.get("columns")
        viewport = size_of(columns, rows) if rows or columns else None
        quality = quality_param(params["imageQuality"]) if "imageQuality" in params else 90
    except ValueError as exc:
        raise Refusal(400, str(exc)) from exc
    return RenderOptions(media_type, quality, window, viewport)


def _part10(retrieve: Retrieve, instance: StoredInstance, syntax: str | None) -> Response:
    stored = instance.transfer_syntax_uid
    if syntax is None or syntax == stored:
        log.info("wado_uri.retrieved", extra={"route": "wado-uri", "http_status": 200, "instances": 1})
        return StreamingResponse(_chunks(retrieve, instance), media_type=DICOM)
    if can_transcode(stored, syntax):
        try:
            body = retrieve.transcoded(instance, syntax)
        except (CannotTranscode, CannotDecode) as exc:
            raise Refusal(406, f"the instance cannot be sent in {syntax}: {exc}") from exc
    else:
        raise Refusal(
            406,
            f"the instance is sent as stored ({stored}), in Explicit VR Little Endian "
            f"(1.2.840.10008.1.2.1) or encoded losslessly ({', '.join(LOSSLESS)})",
        )
    log.info("wado_uri.retrieved", extra={"route": "wado-uri", "http_status": 200, "instances": 1})
    return Response(body, media_type=DICOM)


def _chunks(retrieve: Retrieve, instance: StoredInstance) -> Iterator[bytes]:
    with retrieve.open(instance) as f:
        while chunk := f.read(1 << 20):
            yield chunk


def _whole(value: str, name: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise Refusal(400, f"{name} is a positive whole number")
    return int(value)
