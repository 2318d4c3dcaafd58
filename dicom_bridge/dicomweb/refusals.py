"""How the retrieve resources (WADO-RS, its pixels, WADO-URI) refuse, before a response starts:
text/plain with the reason, the same words for an unknown UID and one the caller may not see."""

from __future__ import annotations

import logging

from fastapi import Response

from mapping.dicom.uid import valid_uid
from storage.errors import NotFound, Unavailable
from storage.usecases.retrieve import Retrieve, StoredInstance, Visibility

log = logging.getLogger(__name__)


class Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def check_uids(uids: tuple[str, ...]) -> None:
    """400 for a URL UID that is not a UID."""
    for name, uid in zip(("study", "series", "instance"), uids, strict=False):
        if not valid_uid(uid):
            raise Refusal(400, f"the {name} in the URL is not a valid UID")


def found_instances(retrieve: Retrieve, uids: tuple[str, ...], sees: Visibility) -> list[StoredInstance]:
    """The instances the URL names that the caller sees: 404 when none, 503 when the index
    database is unavailable (retry later, PS3.18 8.5)."""
    try:
        return retrieve.instances(*uids, visibility=sees)
    except NotFound as exc:
        raise Refusal(404, str(exc)) from exc
    except Unavailable as exc:
        raise Refusal(503, str(exc)) from exc


def refused(refusal: Refusal, route: str) -> Response:
    log.info("wado.refused", extra={"route": route, "http_status": refusal.status, "reason": refusal.reason})
    return Response(refusal.reason + "\n", status_code=refusal.status, media_type="text/plain; charset=utf-8")
