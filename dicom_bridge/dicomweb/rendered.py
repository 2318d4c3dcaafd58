"""WADO-RS pixels: rendered images, thumbnails (PS3.18 10.4.1.1.3, 10.4.1.1.4, 8.3.5) and frames
(10.4.1.1.2), of what the archive stores, to callers who may read the study's ImagingStudy (the same
`may_read` and the same 404 for a study the caller may not see as for an unknown one).

- `.../instances/{i}/rendered`, `.../instances/{i}/frames/{n}/rendered`: the frame (the first of
  an instance) as image/jpeg (the default) or image/png, per the Accept; query parameters
  `window=center,width,function`, `viewport=w,h`, `quality` (JPEG, default 90)
  (`mapping.dicom.rendering` says what is drawn).
- `.../thumbnail` of an instance, a frame, a series and a study: the same picture fitted inside
  128 x 128 (or the viewport asked for); a series shows its middle instance, a study the middle
  instance of its first series.
- `.../instances/{i}/frames/{list}`: one part per frame in the order listed, of the media type
  the Accept prefers (PS3.18 8.7.3.5.3, Table 8.7.3-5): `multipart/related;
  type="application/octet-stream"` (the default) uncompressed little endian, decoded when
  stored compressed (with `transfer-syntax=` the stored compressed syntax: each frame's bit
  stream as stored); an image type (`image/jls`, `image/jp2`, `image/dicom-rle`, `image/jpeg`,
  `image/jpx`, `image/jphc`) each frame's bit stream as stored when the instance is stored in
  a syntax of that type (the one asked for, or any of the type's for none or `*`), else
  encoded on its own into the type's lossless syntax asked for (or its default: JPEG-LS
  Lossless, JPEG 2000 Lossless, RLE Lossless); never lossily.

Each answer is made whole before it starts (one instance in memory). Refusals, text/plain: 400 a
malformed UID, frame list or parameter; 404 an unknown or invisible study, series or instance, or
a frame out of range; 406 an Accept we cannot satisfy, or pixel data that cannot be decoded or
encoded (no pixel data, no decoder, a bit stream the decoder refuses, a layout the encoder
refuses: the Accept's next range is tried first); 503 the index is unavailable.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Depends, Request, Response
from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool

from dicom_bridge.dicomweb.accept import (
    FRAME_MEDIA_TYPES,
    IMAGE_ANY,
    OCTETS,
    NotAcceptable,
    frames_media_types,
    rendered_media_type,
)
from dicom_bridge.dicomweb.authorization import MayRead
from dicom_bridge.dicomweb.refusals import Refusal, check_uids, found_instances, refused
from mapping.dicom.render_params import frame_list, quality_param, viewport_param, window_param
from mapping.dicom.rendering import THUMBNAIL
from storage.errors import NotFound
from storage.usecases.retrieve import (
    EXPLICIT_VR_LE,
    LOSSLESS,
    CannotDecode,
    CannotTranscode,
    RenderOptions,
    Retrieve,
    StoredInstance,
    Visibility,
    Way,
    way,
)

log = logging.getLogger(__name__)

_INSTANCE = "/studies/{study}/series/{series}/instances/{instance}"


def rendered_router(retrieve: Retrieve, may_read: MayRead) -> APIRouter:
    """Rendered, thumbnail and frames resources; `may_read` decides first (as for WADO-RS)."""
    router = APIRouter()
    read = Depends(may_read)

    @router.get(_INSTANCE + "/rendered")
    async def instance_rendered(
        study: str, series: str, instance: str, request: Request, sees: Visibility = read
    ) -> Response:
        return await _rendered(request, sees, (study, series, instance), None, thumbnail=False)

    @router.get(_INSTANCE + "/frames/{frames}/rendered")
    async def frame_rendered(
        study: str, series: str, instance: str, frames: str, *, request: Request, sees: Visibility = read
    ) -> Response:
        return await _rendered(request, sees, (study, series, instance), frames, thumbnail=False)

    @router.get(_INSTANCE + "/thumbnail")
    async def instance_thumbnail(
        study: str, series: str, instance: str, request: Request, sees: Visibility = read
    ) -> Response:
        return await _rendered(request, sees, (study, series, instance), None, thumbnail=True)

    @router.get(_INSTANCE + "/frames/{frames}/thumbnail")
    async def frame_thumbnail(
        study: str, series: str, instance: str, frames: str, *, request: Request, sees: Visibility = read
    ) -> Response:
        return await _rendered(request, sees, (study, series, instance), frames, thumbnail=True)

    @router.get("/studies/{study}/series/{series}/rendered")
    def series_rendered(study: str, series: str, request: Request, sees: Visibility = read) -> Response:
        return rendered_all(retrieve, request, sees, (study, series))

    @router.get("/studies/{study}/rendered")
    def study_rendered(study: str, request: Request, sees: Visibility = read) -> Response:
        return rendered_all(retrieve, request, sees, (study,))

    @router.get("/studies/{study}/series/{series}/thumbnail")
    async def series_thumbnail(
        study: str, series: str, request: Request, sees: Visibility = read
    ) -> Response:
        return await _rendered(request, sees, (study, series), None, thumbnail=True)

    @router.get("/studies/{study}/thumbnail")
    async def study_thumbnail(study: str, request: Request, sees: Visibility = read) -> Response:
        return await _rendered(request, sees, (study,), None, thumbnail=True)

    @router.get(_INSTANCE + "/frames/{frames}")
    def retrieve_frames(
        study: str, series: str, instance: str, frames: str, *, request: Request, sees: Visibility = read
    ) -> Response:
        return frames_of(retrieve, request, sees, (study, series, instance), frames)

    async def _rendered(
        request: Request, sees: Visibility, uids: tuple[str, ...], frames: str | None, *, thumbnail: bool
    ) -> Response:
        """On the event loop what is known to take about a millisecond (`Retrieve.reads_in_process`,
        `Retrieve.quick_to_render`): two hops to the threadpool and back cost a small render
        more than itself; anything else (a server's index, a big or compressed instance, a
        series' or study's instances) on the threadpool."""
        route = ("thumbnail" if thumbnail else "rendered") + f"-{_LEVELS[len(uids)]}"
        try:
            check_uids(uids)
            frame = 1
            if frames is not None:
                numbers = _frame_list(frames)
                if len(numbers) != 1:
                    raise Refusal(400, "a rendered frame is one frame number")
                frame = numbers[0]
            options = options_from(request, thumbnail=thumbnail)
            if retrieve.reads_in_process and len(uids) == 3:
                (picked,) = found_instances(retrieve, uids, sees)
                if retrieve.quick_to_render(picked):
                    image = rendered(retrieve, picked, frame, options)
                else:
                    image = await run_in_threadpool(rendered, retrieve, picked, frame, options)
            else:
                image = await run_in_threadpool(found_and_rendered, retrieve, uids, sees, frame, options)
        except Refusal as refusal:
            return refused(refusal, route)
        log.info("wado.rendered", extra={"route": route, "http_status": 200, "instances": 1})
        return Response(image, media_type=options.media_type)

    return router


_LEVELS = {1: "study", 2: "series", 3: "instance"}


def frames_of(
    retrieve: Retrieve, request: Request, sees: Visibility, uids: tuple[str, ...], frames: str
) -> Response:
    try:
        check_uids(uids)
        numbers = _frame_list(frames)
        try:
            choices = frames_media_types(request.headers.get("accept"))
        except NotAcceptable as exc:
            raise Refusal(406, str(exc)) from exc
        (found,) = found_instances(retrieve, uids, sees)
        kind, sent_as, parts = _frames(retrieve, found, numbers, choices)
    except Refusal as refusal:
        return refused(refusal, "frames")
    boundary = uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: {kind}; transfer-syntax={sent_as}\r\n\r\n".encode()
    body = b"".join(head + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    facts = {"route": "frames", "http_status": 200, "instances": 1, "transfer_syntax": sent_as}
    log.info("wado.frames", extra=facts)
    return Response(body, media_type=f'multipart/related; type="{kind}"; boundary={boundary}')


def _frames(
    retrieve: Retrieve, instance: StoredInstance, numbers: list[int], choices: list[tuple[str, str | None]]
) -> tuple[str, str, list[bytes]]:
    """The frames in the first acceptable (media type, transfer syntax) that works: (media type,
    syntax, one bit stream per frame); 404 a frame out of range, 406 when none works."""
    failures: list[str] = []
    for asked, syntax in choices:
        for candidate in _frame_syntaxes(asked, syntax, instance.transfer_syntax_uid):
            kind = _image_type(candidate) if asked == IMAGE_ANY else asked
            try:
                return kind, candidate, retrieve.frames(instance, numbers, candidate)
            except NotFound as exc:
                raise Refusal(404, str(exc)) from exc
            except (CannotDecode, CannotTranscode) as exc:
                failures.append(f"not as {kind} in {candidate}: {exc}")
    stored = instance.transfer_syntax_uid
    raise Refusal(
        406,
        f"frames are sent uncompressed (application/octet-stream, {EXPLICIT_VR_LE}), in the syntax "
        f"they are stored in ({stored}), or encoded losslessly ({', '.join(LOSSLESS)}) where the "
        "pixel data allows: " + ("; ".join(failures) or "none of these was asked for"),
    )


def _image_type(syntax: str) -> str:
    """The image media type of a compressed transfer syntax; "" when it has none."""
    return next((kind for kind, of in FRAME_MEDIA_TYPES.items() if syntax in of and kind != OCTETS), "")


def _frame_syntaxes(kind: str, syntax: str | None, stored: str) -> list[str]:
    """The transfer syntaxes to try for a media type the Accept names (PS3.18 Table 8.7.3-5):
    application/octet-stream is uncompressed, or the stored compressed syntax when named; an
    image type is its syntax asked for, or, for none or `*`, the stored one when it is of that
    type, else the type's default; each only when it can be given (as stored, decoded, or encoded
    losslessly: never lossily)."""
    if kind == OCTETS:
        if syntax is None or syntax == EXPLICIT_VR_LE:
            return [EXPLICIT_VR_LE]  # decoding says why it cannot be, if it cannot
        return [syntax] if syntax == stored and UID(syntax).is_compressed else []
    if kind == IMAGE_ANY:
        return [stored] if syntax in (None, stored) and _image_type(stored) else []
    allowed = FRAME_MEDIA_TYPES[kind]
    if syntax is not None:
        wanted = [syntax] if syntax in allowed else []
    else:
        wanted = [stored] if stored in allowed else [allowed[0]]
    return [ts for ts in wanted if ts == stored or way(stored, ts) is Way.ENCODE]


def rendered_all(retrieve: Retrieve, request: Request, sees: Visibility, uids: tuple[str, ...]) -> Response:
    """A study or series rendered (PS3.18 10.4.1.1.3): every frame of every instance with pixel
    data, in DICOM order, one image per part of a multipart/related response; instances
    without pixel data (SR, PDF) have no rendering and are left out; 404 when nothing is left."""
    route = f"rendered-{_LEVELS[len(uids)]}"
    try:
        check_uids(uids)
        options = options_from(request, thumbnail=False, multipart=True)
        images: list[bytes] = []
        for instance in found_instances(retrieve, uids, sees):
            try:
                images += retrieve.rendered_frames(instance, options)
            except CannotDecode as exc:
                raise Refusal(406, f"an instance cannot be rendered: {exc}") from exc
        if not images:
            raise Refusal(404, "nothing here has pixel data to render")
    except Refusal as refusal:
        return refused(refusal, route)
    boundary = uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: {options.media_type}\r\n\r\n".encode()
    body = b"".join(head + image + b"\r\n" for image in images) + f"--{boundary}--\r\n".encode()
    log.info("wado.rendered", extra={"route": route, "http_status": 200, "instances": len(images)})
    return Response(body, media_type=f'multipart/related; type="{options.media_type}"; boundary={boundary}')


def representative(found: list[StoredInstance]) -> StoredInstance:
    """The instance a thumbnail shows: the middle one of the first series (DICOM order)."""
    first_series = [i for i in found if i.series_uid == found[0].series_uid]
    return first_series[(len(first_series) - 1) // 2]


def found_and_rendered(
    retrieve: Retrieve, uids: tuple[str, ...], sees: Visibility, frame: int, options: RenderOptions
) -> bytes:
    """The frame of the instance the URL names (a series' or study's `representative`), rendered."""
    return rendered(retrieve, representative(found_instances(retrieve, uids, sees)), frame, options)


def rendered(retrieve: Retrieve, instance: StoredInstance, frame: int, options: RenderOptions) -> bytes:
    try:
        return retrieve.rendered(instance, frame, options)
    except NotFound as exc:
        raise Refusal(404, str(exc)) from exc
    except CannotDecode as exc:
        raise Refusal(406, f"the instance cannot be rendered: {exc}") from exc


def options_from(request: Request, *, thumbnail: bool, multipart: bool = False) -> RenderOptions:
    """The Accept and the query parameters `window`, `viewport`, `quality` (PS3.18 8.3.5.1)."""
    try:
        media_type = rendered_media_type(request.headers.get("accept"), multipart=multipart)
    except NotAcceptable as exc:
        raise Refusal(406, str(exc)) from exc
    params = request.query_params
    try:
        window = window_param(params["window"]) if "window" in params else None
        viewport = viewport_param(params["viewport"]) if "viewport" in params else None
        quality = quality_param(params["quality"]) if "quality" in params else 90
    except ValueError as exc:
        raise Refusal(400, str(exc)) from exc
    if thumbnail and viewport is None:
        return RenderOptions(media_type, quality, window, THUMBNAIL, shrink_only=True)
    return RenderOptions(media_type, quality, window, viewport)


def _frame_list(frames: str) -> list[int]:
    try:
        return frame_list(frames)
    except ValueError as exc:
        raise Refusal(400, str(exc)) from exc
