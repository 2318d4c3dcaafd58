"""QIDO-RS: the Search Transaction (PS3.18 10.6) over the DICOM index, answered by the same plan,
matching and query as C-FIND (`mapping.dicom.qido` turns the parameters into a C-FIND plan).

- `/studies`, `/series`, `/instances`, `/studies/{study}/series`, `/studies/{study}/instances`,
  `/studies/{study}/series/{series}/instances`.
- `application/dicom+json` (PS3.18 F.2): an array of objects, person names as Alphabetic /
  Ideographic / Phonetic, numbers as numbers, each with its RetrieveURL (0008,1190); no matches
  is 200 with `[]` (CP-2473: a 204 cannot carry the empty array PS3.18 8.3.4.4.1 describes).
- `limit` / `offset` page the matches the caller may see (a patient token's counts and pages are
  of its own studies only: the query filters by the ImagingStudy's FHIR read rules before
  paging). When matches remain past `limit`, a `Warning: 299` header says so (PS3.18 8.3.4.4.1).
- Refusals, text/plain: 400 an unknown attribute, a value its VR cannot take, a bad `limit`;
  406 an Accept that does not allow DICOM JSON; 503 the index database is unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request, Response

from dicom_bridge.dicomweb.accept import DICOM_JSON, NotAcceptable, accepts_dicom_json
from dicom_bridge.dicomweb.authorization import MayRead
from mapping.dicom.qido import BadQidoQuery, qido_search
from mapping.dicom.qido_json import matches_json
from mapping.dicom.query_keys import BadIdentifier, FindPlan, Level, find_plan
from mapping.dicom.uid import valid_uid
from storage.errors import Unavailable
from storage.usecases.query import Match, Query, Visibility

log = logging.getLogger(__name__)

_MORE = '299 {host} "There are additional results that can be requested"'


def qido_router(query: Query, base_url: str, may_search: MayRead) -> APIRouter:
    """The Search Transaction's resources; `may_search` (`DicomwebAuthorization.may_search`)
    decides first and says which studies the caller sees."""
    router = APIRouter()
    read = Depends(may_search)  # a default, not an annotation: evaluated here, where it is

    @router.get("/studies")
    def search_studies(request: Request, sees: Visibility = read) -> Response:
        return _search(request, sees, "STUDY", {})

    @router.get("/series")
    def search_series(request: Request, sees: Visibility = read) -> Response:
        return _search(request, sees, "SERIES", {})

    @router.get("/instances")
    def search_instances(request: Request, sees: Visibility = read) -> Response:
        return _search(request, sees, "IMAGE", {})

    @router.get("/studies/{study}/series")
    def search_study_series(study: str, request: Request, sees: Visibility = read) -> Response:
        return _search(request, sees, "SERIES", {"StudyInstanceUID": study})

    @router.get("/studies/{study}/instances")
    def search_study_instances(study: str, request: Request, sees: Visibility = read) -> Response:
        return _search(request, sees, "IMAGE", {"StudyInstanceUID": study})

    @router.get("/studies/{study}/series/{series}/instances")
    def search_series_instances(
        study: str, series: str, request: Request, sees: Visibility = read
    ) -> Response:
        return _search(request, sees, "IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": series})

    def _search(request: Request, sees: Visibility, level: Level, named: dict[str, str]) -> Response:
        try:
            accepts_dicom_json(request.headers.get("accept"))
        except NotAcceptable as exc:
            return _text(406, str(exc))
        if not all(valid_uid(uid) for uid in named.values()):
            return _text(400, "a UID in the URL is not a UID")
        try:
            search = qido_search(level, list(request.query_params.multi_items()), named=named)
            plan = find_plan("study", search.level, search.keys)
        except (BadQidoQuery, BadIdentifier) as exc:
            return _text(400, str(exc))
        try:
            wanted = search.offset + search.limit + 1  # the page, and one more: whether more remain
            page, more = _page(query.find(plan, visibility=sees, wanted=wanted), search.offset, search.limit)
        except Unavailable as exc:
            return _text(503, str(exc))
        body = matches_json(plan, ((record, _retrieve_url(plan, record, base_url)) for record in page))
        headers = {"Warning": _MORE.format(host=request.url.netloc)} if more else {}
        return Response(body.encode("utf-8"), media_type=DICOM_JSON, headers=headers)

    return router


def _page(matches: Iterator[Match], offset: int, limit: int) -> tuple[list[Match], bool]:
    """The matches from `offset`, at most `limit`, and whether more remain (one more is read)."""
    page: list[Match] = []
    for n, record in enumerate(matches):
        if n < offset:
            continue
        if len(page) == limit:
            return page, True
        page.append(record)
    return page, False


def _retrieve_url(plan: FindPlan, record: Match, base_url: str) -> str:
    url = f"{base_url}/studies/{record['study_uid']}"
    if plan.level in ("SERIES", "IMAGE"):
        url += f"/series/{record['series_uid']}"
    if plan.level == "IMAGE":
        url += f"/instances/{record['sop_uid']}"
    return url


def _text(status: int, reason: str) -> Response:
    return Response(f"{reason}\n", status_code=status, media_type="text/plain; charset=utf-8")
