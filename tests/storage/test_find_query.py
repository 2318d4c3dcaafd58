"""The C-FIND query over the index: the SQL only narrows, so its answer must equal checking every
record with `mapping.dicom.matching` alone, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import Dataset

from facade.wiring import Services
from mapping.dicom.facts import header_from_dataset
from mapping.dicom.matching import Universal
from mapping.dicom.query_keys import FindPlan, plan_from_identifier
from storage.dicom_index.writer import Arrival, index_instance
from tests.dicom_factory import make_instance, new_uid

NAMES = [
    "Doe^John",
    "DOE^JANE",
    "doe^jim^^Dr",
    "Müller^Jörg",
    "MÜLLER^Anna",
    "O'Brien^Sean",
    "Yamada^Tarou=山田^太郎=やまだ^たろう",
    "Wang^XiaoMing=王^小明",
    "100%^Under_score",
]
MODALITIES = ["CT", "MR", "SR", "US", "PR"]
DATES = ["20230101", "20231224", "20240229", "20240305", "20241231", ""]
TIMES = ["083000", "1200", "235959.999", "10:30", ""]


def _populate(services: Services) -> None:
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    now = datetime.now(UTC)
    with services.db.write_connection() as conn:
        for p in range(12):
            name, pid = NAMES[p % len(NAMES)], f"PID-{p % 10}{'x' if p >= 10 else ''}"
            for _ in range(rng.randint(1, 3)):
                study = new_uid()
                attrs = {
                    "StudyDate": rng.choice(DATES),
                    "StudyTime": rng.choice(TIMES),
                    "AccessionNumber": f"A{rng.randint(0, 99)}",
                    "ReferringPhysicianName": rng.choice(NAMES),
                }
                for s in range(rng.randint(1, 3)):
                    modality = rng.choice(MODALITIES)
                    series = new_uid()
                    for i in range(rng.randint(1, 2)):
                        ds = make_instance(
                            study_uid=study, series_uid=series, modality=modality, patient_id=pid,
                            patient_name=name, series_number=s + 1, instance_number=i + 1, rows=1,
                            columns=1, SpecificCharacterSet="ISO_IR 192", **attrs,
                        )  # fmt: skip
                        del ds.PixelData
                        h = header_from_dataset(
                            ds, default_system="urn:t", issuer_system=lambda i: f"urn:{i}"
                        )
                        index_instance(conn, h, Arrival(new_uid(), 1, "0" * 64, "import", None, now))


def _issuer(issuer: str) -> str:
    return f"urn:{issuer}"


def _brute_force(services: Services, plan: FindPlan) -> list[int]:
    """Every record of the level, checked in Python alone."""
    from storage.usecases.query import _satisfies

    everything = FindPlan(plan.model, plan.level, {}, plan.returned, plan.fields)
    return [r["pk"] for r in services.query.find(everything) if _satisfies(plan, r)]


def _pattern(draw: Any, choices: list[str]) -> str:
    value = draw(st.sampled_from(choices))
    how = draw(st.sampled_from(["as is", "upper", "lower", "prefix*", "*infix*", "?", "empty"]))
    if how == "upper":
        return value.upper()
    if how == "lower":
        return value.lower()
    if how == "prefix*":
        return value[: draw(st.integers(0, 4))] + "*"
    if how == "*infix*":
        return "*" + value[1:4] + "*"
    if how == "?":
        return "?" + value[1:]
    if how == "empty":
        return ""
    return value


@st.composite
def identifiers(draw: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = draw(st.sampled_from(["STUDY", "SERIES", "IMAGE"]))
    if draw(st.booleans()):
        ds.PatientName = _pattern(draw, NAMES)
    if draw(st.booleans()):
        ds.PatientID = _pattern(draw, [f"PID-{i}" for i in range(10)])
    if draw(st.booleans()):
        low, high = sorted(draw(st.lists(st.sampled_from(DATES[:-1]), min_size=2, max_size=2)))
        ds.StudyDate = draw(st.sampled_from([f"{low}-{high}", f"{low}-", f"-{high}", low]))
    if draw(st.booleans()):
        ds.StudyTime = draw(st.sampled_from(["0800-1300", "-10", "12-", "1200"]))
    if draw(st.booleans()):
        ds.ModalitiesInStudy = draw(
            st.lists(st.sampled_from([*MODALITIES, "C*", "?R"]), min_size=1, max_size=2)
        )
    if draw(st.booleans()):
        ds.ReferringPhysicianName = _pattern(draw, NAMES)
    if ds.QueryRetrieveLevel != "STUDY" and draw(st.booleans()):
        ds.Modality = draw(st.sampled_from([*MODALITIES, "*R"]))
    if ds.QueryRetrieveLevel == "IMAGE" and draw(st.booleans()):
        ds.InstanceNumber = draw(st.sampled_from(["1", "2"]))
    return ds


def test_sql_narrowing_never_changes_the_answer(services: Services) -> None:
    _populate(services)
    sizes: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(identifiers())
    def check(identifier: Dataset) -> None:
        plan = plan_from_identifier("study", identifier)
        assert all(not isinstance(c, Universal) for _, c in plan.conditions.values())
        answer = [r["pk"] for r in services.query.find(plan)]
        assert answer == _brute_force(services, plan)
        sizes.append(len(answer))

    check()
    assert sum(1 for n in sizes if n) > 30, "the queries must find something, or the test proves nothing"
    assert sum(1 for n in sizes if not n) > 10


def test_pages_cover_the_whole_answer(services: Services) -> None:
    """With pages of 3, the answer is the same as in one page."""
    from storage.usecases.query import Query

    _populate(services)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.PatientName = "*"
    plan = plan_from_identifier("study", identifier)
    small = [r["pk"] for r in Query(services.db, services.search, page_size=3).find(plan)]
    assert small == [r["pk"] for r in services.query.find(plan)]
    assert len(small) == len(set(small)) > 10


def test_queries_of_one_shape_each_get_their_own_answer(services: Services) -> None:
    """A page statement is built once per shape of query and run again with each query's values:
    lists of other lengths, other bounds, other patterns find what they ask, not the first's."""
    _populate(services)
    asked = [
        {"PatientID": "PID-1"}, {"PatientID": "PID-2"},
        {"ModalitiesInStudy": ["CT", "MR"]}, {"ModalitiesInStudy": ["SR", "US", "PR"]},
        {"StudyDate": "20230101-20231231"}, {"StudyDate": "20240101-20241231"},
        {"PatientName": "doe*"}, {"PatientName": "müller*"},
    ]  # fmt: skip
    answers = []
    for keys in asked:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        for keyword, value in keys.items():
            setattr(identifier, keyword, value)
        plan = plan_from_identifier("study", identifier)
        answer = [r["pk"] for r in services.query.find(plan)]
        assert answer == _brute_force(services, plan), keys
        answers.append(answer)
    for first, second in zip(answers[::2], answers[1::2], strict=True):
        assert first and second and first != second


def test_a_caller_who_sees_every_study_gets_the_whole_answer(services: Services) -> None:
    """A token with every ImagingStudy reads on the bare connection, as C-FIND does: the same
    records as the session path's check of each study would keep."""
    from storage.fhir_store.visibility import Visibility

    _populate(services)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.ModalitiesInStudy = "CT"
    plan = plan_from_identifier("study", identifier)
    every = Visibility(rules={"ImagingStudy": ((),)})
    assert [r["pk"] for r in services.query.find(plan, visibility=every)] == _brute_force(services, plan)


def test_a_caller_who_wants_a_few_reads_small_pages_and_gets_the_same_first_matches(
    services: Services,
) -> None:
    """`wanted` (QIDO-RS's offset + limit + 1) sizes the pages to what is still wanted; the matches
    handed out are the first of the whole answer, whatever the SQL leaves for Python to drop."""
    from sqlalchemy import Engine, event

    from storage.usecases.query import Query

    _populate(services)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.PatientName = "*o*"  # the SQL keeps every name with an 'o'; Python drops none
    identifier.ModalitiesInStudy = "?R"  # LIKE '%R%' keeps studies that Python drops (no 'xR' series)
    plan = plan_from_identifier("study", identifier)
    whole = [r["pk"] for r in services.query.find(plan)]
    assert len(whole) > 5
    sizes: list[int] = []

    def size(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            values = list(params.values() if isinstance(params, dict) else params)
            # LIMIT's is the statement's last parameter, or the one before OFFSET's (SQLite)
            sizes.append(values[-2] if "OFFSET ?" in statement else values[-1])

    small = Query(services.db, services.search, min_page=2)
    event.listen(Engine, "before_cursor_execute", size)  # the read engine is a copy of services.db's
    try:
        for wanted in range(1, len(whole) + 2):
            sizes.clear()
            found = [r["pk"] for r in small.find(plan, wanted=wanted)][:wanted]
            assert found == whole[:wanted]
            assert sizes[0] == max(wanted, 2), sizes
    finally:
        event.remove(Engine, "before_cursor_execute", size)
