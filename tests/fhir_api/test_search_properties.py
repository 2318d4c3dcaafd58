"""Property: no query string makes a FHIR search answer 500; a refusal is an OperationOutcome.
Over the real server and one kept-alive connection, so a dropped connection shows too."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fhir_schema import assert_valid_r4
from tests.search_strategies import RESOURCE_TYPES, many_pairs
from tests.smart import bearer

_MAX_URL = 8000


@pytest.fixture
def fhir(live_http: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{live_http}/fhir", timeout=30, headers=bearer(token))


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    res_type=st.sampled_from(RESOURCE_TYPES), pairs=many_pairs(), post=st.booleans(), lenient=st.booleans()
)
def test_no_query_string_is_a_server_error(
    fhir: httpx.Client, res_type: str, pairs: list[tuple[str, str]], post: bool, lenient: bool
) -> None:
    headers = {"Prefer": "handling=lenient"} if lenient else {}
    if len(str(httpx.QueryParams(pairs))) > _MAX_URL:  # beyond what clients and uvicorn take in a URL
        post = True
    if post:
        body = str(httpx.QueryParams(pairs)).encode()
        form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        r = fhir.post(f"/{res_type}/_search", content=body, headers=form)
    else:
        r = fhir.get(f"/{res_type}", params=pairs, headers=headers)
    assert r.status_code in (200, 400), r.text
    body = r.json()
    if r.status_code == 400:
        assert_valid_r4(body)
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    else:
        assert body["resourceType"] == "Bundle"
    assert fhir.get("/metadata").status_code == 200  # same connection, still open
