"""How query latency grows with the index: QIDO-RS's work (the query use case and the DICOM JSON
of the matches, as `/dicomweb/studies` does it, without HTTP) over synthetic indexes of growing
size, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.scale [--sizes 10000,100000,1000000] [--database-url URL]

Rows are written straight into the index tables (no blobs, no FHIR resources): 10 instances per
series, 2 series per study, 2 studies per patient, five modalities, dates over ten years. For
each size: p50 / p95 (ms) of the study searches by PatientID, by a 30-day StudyDate range, by
ModalitiesInStudy=CT with limit=100, by an accession number, by a name prefix, and the instances
of one series. PostgreSQL runs when --database-url names one (a schema of its own is created and
dropped). Not a test.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from mapping.dicom.qido import qido_search
from mapping.dicom.qido_json import match_json
from mapping.dicom.query_keys import find_plan
from storage.db import Database, make_engine
from storage.dicom_index.models import InstanceRow, PatientRow, SeriesRow, StudyRow
from storage.migrate import upgrade
from storage.usecases.query import Query

MODALITIES = ["CT", "MR", "US", "CR", "DX"]
CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}
FIRST = date(2016, 1, 1)
BATCH = 20_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="instances, comma-separated")
    parser.add_argument("--database-url", help="a PostgreSQL URL: also measure there")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends: list[tuple[str, Callable[[], tuple[str, Callable[[], None]]]]] = [("sqlite", _sqlite)]
    if args.database_url:
        backends.append(("postgresql", lambda: _postgresql(args.database_url)))
    print(f"{'backend':10} {'instances':>10} {'search':32} {'matches':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, make in backends:
        for size in sizes:
            url, drop = make()
            try:
                db = Database(make_engine(url))
                upgrade(db.engine)
                started = time.perf_counter()
                facts = _fill(db, size)
                print(
                    f"# {name}: {size} instances written in {time.perf_counter() - started:.0f} s", flush=True
                )
                for label, p50, p95, found in _measure(db, facts, args.repeat):
                    print(f"{name:10} {size:>10} {label:32} {found:>8} {p50:8.1f} {p95:8.1f}", flush=True)
                db.dispose()
            finally:
                drop()
    return 0


def _sqlite() -> tuple[str, Callable[[], None]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    return f"sqlite:///{folder / 'index.sqlite3'}", lambda: None


def _postgresql(url: str) -> tuple[str, Callable[[], None]]:
    schema = f"scale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", drop


def _fill(db: Database, instances: int) -> dict[str, list[str]]:
    """Rows for `instances` instances; the values the searches pick from."""
    rng = random.Random(instances)  # noqa: S311 - test data
    now = datetime.now(UTC)
    series_count = instances // 10
    studies = series_count // 2
    patients = max(1, studies // 2)
    facts: dict[str, list[str]] = {"patients": [], "accessions": [], "series": []}
    stamp = {"created_at": now, "changed_at": now}
    with db.write_connection() as conn:
        conn.execute(
            insert(PatientRow),
            [
                {"pk": p + 1, "fhir_id": f"p{p}", "id_system": "urn:bench", "patient_id": f"PID{p:07d}",
                 "name": f"Name{p % 5000:04d}^Given{p}", "birth_date": "19700101", "sex": "F",
                 "change_seq": 1, "published_seq": 1, **stamp}
                for p in range(patients)
            ],
        )  # fmt: skip
        facts["patients"] = [f"PID{rng.randrange(patients):07d}" for _ in range(200)]
        rows = []
        for s in range(studies):
            modality = MODALITIES[s % len(MODALITIES)]
            day = FIRST + timedelta(days=rng.randrange(3650))
            rows.append(
                {"pk": s + 1, "study_uid": f"1.2.9.{s}", "patient_pk": s // 2 % patients + 1,
                 "study_date": f"{day:%Y%m%d}", "study_time": "101500", "accession": f"A{s:08d}",
                 "modalities": modality, "num_series": 2, "num_instances": 20, "change_seq": 1,
                 "published_seq": 1, **stamp}
            )  # fmt: skip
            if len(rows) == BATCH:
                conn.execute(insert(StudyRow), rows)
                rows = []
        if rows:
            conn.execute(insert(StudyRow), rows)
        facts["accessions"] = [f"A{rng.randrange(studies):08d}" for _ in range(200)]
        rows = []
        for se in range(series_count):
            study = se // 2
            rows.append(
                {"pk": se + 1, "series_uid": f"1.2.9.{study}.{se}", "study_pk": study + 1,
                 "modality": MODALITIES[study % len(MODALITIES)], "series_number": se % 2 + 1,
                 "num_instances": 10, **stamp}
            )  # fmt: skip
            if len(rows) == BATCH:
                conn.execute(insert(SeriesRow), rows)
                rows = []
        if rows:
            conn.execute(insert(SeriesRow), rows)
        facts["series"] = [f"1.2.9.{(se := rng.randrange(series_count)) // 2}.{se}" for _ in range(200)]
        rows = []
        for i in range(series_count * 10):
            se = i // 10
            modality = MODALITIES[se // 2 % len(MODALITIES)]
            rows.append(
                {"pk": i + 1, "sop_uid": f"1.2.9.{se // 2}.{se}.{i}", "series_pk": se + 1,
                 "sop_class_uid": CLASSES.get(modality, "1.2.840.10008.5.1.4.1.1.7"),
                 "instance_number": i % 10 + 1, "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                 "character_set": "ISO_IR 100", "blob_key": f"k{i}", "size": 1, "sha256": "0" * 64,
                 "received_via": "import", **stamp}
            )  # fmt: skip
            if len(rows) == BATCH:
                conn.execute(insert(InstanceRow), rows)
                rows = []
        if rows:
            conn.execute(insert(InstanceRow), rows)
    if db.dialect == "postgresql":
        with db.write_connection() as conn:
            conn.execute(text("ANALYZE"))
    return facts


def _measure(db: Database, facts: dict[str, list[str]], repeat: int) -> list[tuple[str, float, float, int]]:
    query = Query(db, search=None)  # type: ignore[arg-type]  # everything is visible: no search
    rng = random.Random(1)  # noqa: S311

    def days() -> str:
        start = FIRST + timedelta(days=rng.randrange(3600))
        return f"{start:%Y%m%d}-{start + timedelta(days=29):%Y%m%d}"

    searches: dict[str, tuple[str, Callable[[], list[tuple[str, str]]]]] = {
        "studies by PatientID": ("STUDY", lambda: [("PatientID", rng.choice(facts["patients"]))]),
        "studies by 30-day StudyDate": ("STUDY", lambda: [("StudyDate", days()), ("limit", "100")]),
        "studies ModalitiesInStudy=CT limit=100": (
            "STUDY",
            lambda: [("ModalitiesInStudy", "CT"), ("limit", "100")],
        ),
        "studies by AccessionNumber": (
            "STUDY",
            lambda: [("AccessionNumber", rng.choice(facts["accessions"]))],
        ),
        "studies by PatientName prefix": ("STUDY", lambda: [("PatientName", "Name0042*"), ("limit", "100")]),
        "instances of one series": ("IMAGE", lambda: _series(rng.choice(facts["series"]))),
    }
    out = []
    for label, (level, params) in searches.items():
        samples, found = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            search = qido_search(level, params(), named={})  # type: ignore[arg-type]
            plan = find_plan("study", search.level, search.keys)
            matches = []
            for record in query.find(plan):
                matches.append(match_json(plan, record, "http://x"))
                if len(matches) == search.limit:
                    break
            samples.append((time.perf_counter() - started) * 1000)
            found = max(found, len(matches))
        ordered = sorted(samples)
        out.append((label, statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1], found))
    return out


def _pick(rng: random.Random, values: list[str]) -> str:
    return rng.choice(values)


def _series(uid: str) -> list[tuple[str, str]]:
    study = ".".join(uid.split(".")[:4])
    return [("StudyInstanceUID", study), ("SeriesInstanceUID", uid)]


if __name__ == "__main__":
    sys.exit(main())
