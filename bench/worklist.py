"""Modality Worklist benchmark: our MWL SCP and, in the same run, DCMTK's wlmscpfs serving the
same entries.

    make bench-worklist              # or: .venv/bin/python -m bench.worklist [--quick]

The set: 10,000 scheduled steps (2,000 patients, 20 days, 10 stations of 5 modalities, 500 steps
a day, ~50 per station and day), written as rows into `facade serve`'s database and as .wl files
(pydicom, from the same facts) into wlmscpfs's folder. The query is the broad one of IHE RAD-5
that a modality sends at the start of a day: its station and the day (Scheduled Station AE Title
+ SPS Start Date), with the usual return keys; `bench.find_client` (no polling), a fresh
association per query, the two servers asked in turn. Printed: matches, p50 / p95 in ms, and
the ratio facade / wlmscpfs (below 1: we are faster). wlmscpfs (default: a process forked per
association) reads every file of its folder for every query. Runs in a private network
namespace, as bench.ingest does. Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bench.ingest import (
    NETNS_FLAG,
    ROOT,
    WORK,
    Target,
    _free_port,
    _reexec_in_netns,
    _server,
    _wait_for_echo,
    stop,
)
from bench.orders import wait_idle
from bench.query import timed_find
from dicom_bridge.ae import WORKLIST_FIND
from mapping.dicom.worklist import WorklistPatient, worklist_item
from mapping.order.facts import (
    Coded,
    EntityId,
    Person,
    RequestedProcedure,
    ScheduledStep,
    procedure_json,
    step_json,
)

WARM_UP_QUERIES = 6  # before measuring: each serving process sees one (the kernel spreads them)
STATIONS = [(f"{m}{n}", m) for m in ("CT", "MR", "US", "CR", "DX") for n in (1, 2)]
FIRST_DAY = date(2026, 12, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 steps, fewer repetitions")
    parser.add_argument("--repeat", type=int, default=40, help="queries per server")
    args = parser.parse_args()
    if os.environ.get(NETNS_FLAG) != "1":
        return _reexec_in_netns("bench.worklist")
    for tool in ("wlmscpfs", "echoscu"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (apt-get install dcmtk)", file=sys.stderr)
            return 2
    steps = 1000 if args.quick else 10_000
    repeat = 10 if args.quick else args.repeat
    entries = list(_entries(steps))
    rng = random.Random(2)  # noqa: S311 - which queries to ask, not secrets
    with _server("facade") as (facade, pid), _wlmscpfs(entries) as dcmtk:
        started = time.perf_counter()
        _seed(WORK / "run" / "facade", entries)
        print(f"loaded {len(entries)} steps into facade in {time.perf_counter() - started:.1f} s", flush=True)
        # as on a working day: the modalities asked before (their return keys are known) and the
        # orders came in earlier, so the serving processes have built the items ahead
        started = time.perf_counter()
        for n in range(WARM_UP_QUERIES):
            timed_find(facade, _query(STATIONS[n % len(STATIONS)][0], f"{FIRST_DAY:%Y%m%d}"), WORKLIST_FIND)
        wait_idle(pid, within=300.0)
        print(f"facade built the worklist ahead in {time.perf_counter() - started:.1f} s", flush=True)
        samples: dict[str, list[float]] = {"facade": [], "wlmscpfs": []}
        counts: dict[str, set[int]] = {"facade": set(), "wlmscpfs": set()}
        for _ in range(repeat):
            station, _modality = rng.choice(STATIONS)
            day = FIRST_DAY + timedelta(days=rng.randrange(20))
            identifier = _query(station, f"{day:%Y%m%d}")
            for target in (facade, dcmtk):
                ms, n = timed_find(target, identifier, WORKLIST_FIND)
                samples[target.name].append(ms)
                counts[target.name].add(n)
    _report(samples, counts, len(entries))
    if os.environ.get("BENCH_SAMPLES"):
        print([round(x) for x in samples["facade"]])
    return 0


def _entries(count: int) -> Iterator[tuple[WorklistPatient, RequestedProcedure]]:
    rng = random.Random(count)  # noqa: S311 - test data
    for n in range(count):
        station, modality = STATIONS[n % len(STATIONS)]
        day = FIRST_DAY + timedelta(days=(n // len(STATIONS)) % 20)
        minute = rng.randrange(7 * 60, 19 * 60)
        step = ScheduledStep(
            sps_id=f"SPS{n:06d}", modality=modality, start_date=f"{day:%Y%m%d}",
            start_time=f"{minute // 60:02d}{minute % 60:02d}00", description=f"{modality} exam",
            protocol=(Coded(f"P{modality}", f"{modality} protocol", "99LOCAL"),), station_aets=(station,),
            station_name=f"ROOM-{station}", location="Radiology", performing_physician="Tech^Tina",
        )  # fmt: skip
        procedure = RequestedProcedure(
            control="NW", order_status="SC", placer=EntityId(f"PL{n:06d}", "EHR"),
            filler=EntityId(f"FI{n:06d}", "RIS"), accession=EntityId(f"ACC{n:06d}", "RIS"),
            requested_procedure_id=f"RP{n:06d}", study_uid=generate_uid(),
            code=Coded(f"C{modality}", f"{modality} study", "99LOCAL"), description=f"{modality} study",
            priority="ROUTINE", requesting_physician=Person("D1", "Order^Olga"),
            referring_physician=Person("D2", "Refer^Rita"), steps=(step,),
        )  # fmt: skip
        p = n % 2000
        patient = WorklistPatient(f"Bench^Patient{p}", f"WPID{p:05d}", "", "19700101", "MF"[p % 2])
        yield patient, procedure


def _seed(run: Path, entries: list[tuple[WorklistPatient, RequestedProcedure]]) -> None:
    """The rows, written into the running facade's database (SQLite in its data directory). The
    patients count as published (their FHIR Patient is no part of this): else the settle worker
    would publish 2,000 of them while the queries run."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import insert

    from storage.db import Database, make_engine
    from storage.dicom_index.models import PatientRow
    from storage.orders.models import RequestedProcedureRow, ScheduledStepRow

    now = datetime.now(UTC)
    patients: dict[str, dict[str, Any]] = {}
    procedures, steps = [], []
    for n, (patient, procedure) in enumerate(entries, start=1):
        if patient.patient_id not in patients:
            patients[patient.patient_id] = {
                "pk": len(patients) + 1, "fhir_id": generate_uid(prefix=None)[:64], "id_system": "urn:bench",
                "patient_id": patient.patient_id, "name": patient.name, "birth_date": patient.birth_date,
                "sex": patient.sex, "created_at": now, "changed_at": now, "change_seq": 1, "published_seq": 1,
            }  # fmt: skip
        procedures.append({
            "pk": n, "fhir_id": f"sr{n}", "patient_pk": patients[patient.patient_id]["pk"],
            "placer": procedure.placer.value, "filler": procedure.filler.value,
            "accession": procedure.accession.value, "study_uid": procedure.study_uid, "status": "active",
            "facts": procedure_json(procedure), "created_at": now, "changed_at": now,
        })  # fmt: skip
        step = procedure.steps[0]
        steps.append({
            "pk": n, "procedure_pk": n, "sps_id": step.sps_id, "status": "SCHEDULED",
            "modality": step.modality, "start_date": step.start_date, "start_time": step.start_time,
            "station_aets": "\\".join(step.station_aets), "facts": step_json(step), "changed_at": now,
        })  # fmt: skip
    db = Database(make_engine(f"sqlite:///{(run / 'index.sqlite3').resolve()}"))
    try:
        with db.write_connection() as conn:
            conn.execute(insert(PatientRow), list(patients.values()))
            conn.execute(insert(RequestedProcedureRow), procedures)
            conn.execute(insert(ScheduledStepRow), steps)
    finally:
        db.dispose()


@contextmanager
def _wlmscpfs(entries: list[tuple[WorklistPatient, RequestedProcedure]]) -> Iterator[Target]:
    run = WORK / "run" / "wlmscpfs"
    shutil.rmtree(run, ignore_errors=True)
    folder = run / "wlistdb" / "WLMSCPFS"
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for patient, procedure in entries:
        ds = worklist_item(patient, procedure, procedure.steps[0], "SCHEDULED")
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = WORKLIST_FIND
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{procedure.accession.value}.wl", enforce_file_format=True)
    target = Target("wlmscpfs", "WLMSCPFS", _free_port())
    log = (run / "server.log").open("wb")
    env = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK: else Nagle delays every response
    command = ["wlmscpfs", "-dfp", str(run / "wlistdb"), str(target.port)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_echo(target, proc)
        yield target
    finally:
        stop(proc)
        log.close()


def _query(station: str, day: str) -> Dataset:
    """What a modality asks at the start of its day, with the return keys it displays."""
    ds = Dataset()
    for keyword in ("AccessionNumber", "PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, "")
    for keyword in ("StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription"):
        setattr(ds, keyword, "")
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.ScheduledProcedureStepStartDate = day
    for keyword in ("ScheduledProcedureStepStartTime", "Modality", "ScheduledProcedureStepID"):
        setattr(sps, keyword, "")
    sps.ScheduledProcedureStepDescription = ""
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def _report(samples: dict[str, list[float]], counts: dict[str, set[int]], steps: int) -> None:
    f, d = samples["facade"], samples["wlmscpfs"]
    print(f"\n{steps} scheduled steps; station + day query, one association per query (ms)")
    print(
        f"{'query':22} {'matches':>9} {'facade p50':>11} {'p95':>7} {'wlmscpfs p50':>13} {'p95':>7}"
        f" {'ratio p50':>10}"
    )
    same = (
        ""
        if counts["facade"] == counts["wlmscpfs"]
        else f"  (wlmscpfs's counts: {sorted(counts['wlmscpfs'])})"
    )
    matches = f"{min(counts['facade'])}-{max(counts['facade'])}"
    print(
        f"{'station + day':22} {matches:>9} {_p(f, 50):11.1f} {_p(f, 95):7.1f} {_p(d, 50):13.1f} "
        f"{_p(d, 95):7.1f} {_p(f, 50) / _p(d, 50):10.2f}{same}"
    )


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1] if len(samples) > 1 else samples[0]


if __name__ == "__main__":
    sys.exit(main())
