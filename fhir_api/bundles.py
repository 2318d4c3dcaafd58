"""Search and history results as FHIR Bundles (FHIR R4 3.1.1.6 paging, 3.1.0.4 history)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from mapping.fhir.dates import instant
from storage.usecases.search import SearchResult, StoredResource

Json = dict[str, Any]


def searchset(result: SearchResult, fhir_base: str) -> Json:
    """A searchset Bundle with total, self / next / previous links, match and include entries."""
    q = result.query
    base = f"{fhir_base}/{q.res_type}"

    def page(offset: int) -> str:
        return f"{base}?{urlencode([*q.link_params(), ('_offset', str(offset))])}"

    links = [{"relation": "self", "url": page(q.offset)}]
    if not q.summary_count:
        more = (
            q.offset + len(result.matches) < result.total
            if result.total is not None
            else len(result.matches) == q.count
        )
        if more and result.matches:
            links.append({"relation": "next", "url": page(q.offset + q.count)})
        if q.offset > 0:
            links.append({"relation": "previous", "url": page(max(0, q.offset - q.count))})
    bundle: Json = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    entries = [_entry(r, fhir_base, "match") for r in result.matches]
    entries += [_entry(r, fhir_base, "include") for r in result.included]
    if entries:
        bundle["entry"] = entries
    return bundle


def history(versions: list[StoredResource], fhir_base: str) -> Json:
    """A history Bundle, newest version first; a deletion has a request but no resource."""
    entries = []
    for v in versions:
        url = f"{v.res_type}/{v.res_id}"
        entry: Json = {"fullUrl": f"{fhir_base}/{url}"}
        if v.body is not None:
            entry["resource"] = v.to_json()
        method = "DELETE" if v.body is None else ("POST" if v.version_id == 1 else "PUT")
        entry["request"] = {"method": method, "url": url if method != "POST" else v.res_type}
        entry["response"] = {
            "status": "204" if v.body is None else ("201" if v.version_id == 1 else "200"),
            "etag": v.etag,
            "lastModified": instant(v.last_updated),
        }
        entries.append(entry)
    bundle: Json = {"resourceType": "Bundle", "type": "history", "total": len(entries)}
    if entries:
        bundle["entry"] = entries
    return bundle


def _entry(r: StoredResource, fhir_base: str, mode: str) -> Json:
    return {
        "fullUrl": f"{fhir_base}/{r.res_type}/{r.res_id}",
        "resource": r.to_json(),
        "search": {"mode": mode},
    }
