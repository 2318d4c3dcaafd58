"""Query and retrieve benchmark: our service and, in the same run, Orthanc (with its DICOMweb
plugin) holding the same data.

    make bench-query                 # or: .venv/bin/python -m bench.query [--quick]
    .venv/bin/python -m bench.query --only C-FIND --only C-GET --profile prof.txt
                                     # those rows only; py-spy --gil of the facade meanwhile

The set (generated once under bench/.work/data): 20,000 small instances (8x8), 1,000 studies of
two series of ten, 500 patients, five modalities, study dates over two years, and one study of
100 instances. Both servers receive it by storescu, wait until they are idle (the facade, its
stable age set to 2 s, first publishes the FHIR resources of what it indexed; then both under 5%
of a core), then answer the same requests, interleaved:
- C-FIND (`bench.find_client`, a fresh association per query, as a workstation sends them): STUDY by
  PatientID, by a 30-day StudyDate range, by ModalitiesInStudy=CT (200 matches), IMAGE level of
  one series;
- QIDO-RS (`bench.http_client`, one keep-alive connection; ours with a system token): the same three study
  searches, and ModalitiesInStudy=CT with limit=100;
- WADO-RS of one instance, and `/rendered` (JPEG) of a 512x512 CT;
- C-GET of the 100-instance study (dcmtk's getscu, storing nothing), in instances per second (the
  median of 9, after 4 unrecorded ones).
Printed: p50 / p95 in ms and the ratio facade / Orthanc (below 1: we are faster). Runs in a
private network namespace, as bench.ingest does. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydicom import Dataset
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bench import find_client
from bench.http_client import KeepAlive
from bench.ingest import (
    NETNS_FLAG,
    ROOT,
    WORK,
    Target,
    _reexec_in_netns,
    _send,
    _server,
    _wait_settled,
    facade_env,
)
from storage.dicom_index.reader import anything_pending
from storage.fhir_store.models import FhirResourceRow

STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
MODALITIES = ["CT", "MR", "US", "CR", "DX"]
FIRST_DAY = date(2023, 1, 1)
GET_WARMUP, GET_REPEAT = 4, 9  # C-GETs of each server, unrecorded then measured


STABLE_AGE = 2  # seconds: FACADE_STABLE_AGE_SECONDS of the facade measured


def _wait_published(index: Path, seconds: float = 600) -> float:
    """Until the facade has published the FHIR resources of every study and patient it indexed
    and none is provisional any more (its settle worker, `STABLE_AGE` after the last instance);
    how long it waited. Read in its SQLite index."""
    started = time.monotonic()
    engine = create_engine(f"sqlite:///{index}")
    try:
        while time.monotonic() < started + seconds:
            with Session(engine) as session:
                provisional = session.scalar(
                    select(FhirResourceRow.res_id).where(FhirResourceRow.provisional.is_(True)).limit(1)
                )
                if provisional is None and not anything_pending(session):
                    break
            time.sleep(0.5)
    finally:
        engine.dispose()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 instances, fewer repetitions")
    parser.add_argument("--repeat", type=int, default=40, help="requests of each kind per server")
    parser.add_argument(
        "--only", action="append", help="rows whose label contains this (repeatable; 'C-GET' for C-GET)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy --gil samples of the facade's processes during the rows, as collapsed stacks",
    )
    args = parser.parse_args()
    if os.environ.get(NETNS_FLAG) != "1":
        return _reexec_in_netns("bench.query")
    for tool in ("storescu", "echoscu", "Orthanc"):
        if shutil.which(tool) is None:
            print(
                f"bench: {tool} not found (apt-get install dcmtk orthanc orthanc-dicomweb)", file=sys.stderr
            )
            return 2
    # the facade publishes a study's FHIR resources once it has been quiet this long (60 s by
    # default): soon after loading, so that the rows do not run while it does
    os.environ["FACADE_STABLE_AGE_SECONDS"] = str(STABLE_AGE)
    studies = 100 if args.quick else 1000
    repeat = 10 if args.quick else args.repeat
    files, facts = _dataset(studies)
    rng = random.Random(1)  # noqa: S311 - which queries to ask, not secrets
    with _server("orthanc") as (orthanc, orthanc_pid), _server("facade") as (facade, facade_pid):
        for target in (orthanc, facade):
            rate = _send(target, files, 2)
            print(f"loaded {len(files)} instances into {target.name}: {rate:.0f} instances/s", flush=True)
        published = _wait_published(WORK / "run" / "facade" / "index.sqlite3")
        print(f"facade published the FHIR resources of what it stored after {published:.0f} s", flush=True)
        for name, pid in (("orthanc", orthanc_pid), ("facade", facade_pid)):
            # what a server may still do after loading is not what the rows measure: both start idle
            waited = _wait_settled(pid, seconds=600)
            print(f"{name} settled after {waited:.0f} s", flush=True)
        web = {"facade": _dicomweb(facade), "orthanc": _dicomweb(orthanc)}
        requests: dict[str, Callable[[], Callable[[Target], tuple[float, int]]]] = {
            "C-FIND STUDY by PatientID": lambda: _finding(
                _q("STUDY", PatientID=rng.choice(facts["patients"]))
            ),
            "C-FIND STUDY 30-day StudyDate": lambda: _finding(_q("STUDY", StudyDate=_range(rng))),
            "C-FIND ModalitiesInStudy=CT": lambda: _finding(_q("STUDY", ModalitiesInStudy="CT")),
            "C-FIND IMAGE of one series": lambda: _finding(_series_query(rng.choice(facts["series"]))),
            "QIDO by PatientID": lambda: _searching(web, {"PatientID": rng.choice(facts["patients"])}),
            "QIDO 30-day StudyDate": lambda: _searching(web, {"StudyDate": _range(rng)}),
            "QIDO ModalitiesInStudy=CT": lambda: _searching(web, {"ModalitiesInStudy": "CT"}),
            "QIDO ModalitiesInStudy=CT limit=100": lambda: _searching(
                web, {"ModalitiesInStudy": "CT", "limit": "100"}
            ),
            "WADO-RS one instance": lambda: _retrieving(web, rng.choice(facts["instances"])),
            "WADO-RS rendered 512x512 CT (JPEG)": lambda: _retrieving(web, facts["ct512"], rendered=True),
        }
        wanted = [r for r in [*requests, "C-GET"] if not args.only or any(o in r for o in args.only)]
        # this process holds the set's 20,000 paths and facts: a full collection of its own, set
        # off by the objects of a large JSON answer, would land in the middle of a request
        gc.collect()
        gc.freeze()
        spy = _profiling(args.profile, facade_pid) if args.profile else None
        rows = []
        for label, make in requests.items():
            if label not in wanted:
                continue
            samples: dict[str, list[float]] = {"facade": [], "orthanc": []}
            counts: dict[str, set[int]] = {"facade": set(), "orthanc": set()}
            for _ in range(repeat):
                run = make()
                for target in (facade, orthanc):
                    ms, n = run(target)
                    samples[target.name].append(ms)
                    counts[target.name].add(n)
            rows.append((label, samples, counts))
        rates: dict[str, list[float]] = {"facade": [], "orthanc": []}
        # each serving process's first C-GET association decodes and negotiates getscu's request
        # of ~120 contexts and builds its statements (~30 ms more, once): the rate measured is the
        # steady one, after a few unrecorded retrieves from each server
        for repetition in range(-GET_WARMUP, GET_REPEAT if "C-GET" in wanted else -GET_WARMUP):
            for target in (facade, orthanc):
                rate = _get_rate(target, facts["big_study"])
                if repetition >= 0:
                    rates[target.name].append(rate)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=120)
    _report(rows, len(files))
    if rates["facade"]:
        f, o = statistics.median(rates["facade"]), statistics.median(rates["orthanc"])
        print(
            f"\nC-GET of a 100-instance study: facade {f:.0f} instances/s, Orthanc {o:.0f}, ratio {f / o:.2f}"
        )
    return 0


def _profiling(output: Path, pid: int) -> subprocess.Popen[bytes]:
    """py-spy recording the facade's serving processes (with --gil: where they hold the GIL)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--gil", "--subprocesses", "-r", "500", "-f", "raw", "-o", str(output)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return subprocess.Popen([*command, "--pid", str(pid)], **quiet)


def _dicomweb(target: Target) -> KeepAlive:
    """A keep-alive client of the target's DICOMweb root (ours with a system token)."""
    if target.name == "orthanc":
        return KeepAlive(f"http://127.0.0.1:{target.http_port}/dicom-web")
    run = WORK / "run" / target.name
    token = subprocess.run(
        [sys.executable, "-m", "facade.cli", "token", "create", "--scope", "system/*.rs", "--seconds", "900"],
        cwd=ROOT, env=facade_env(run, target), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    return KeepAlive(f"http://127.0.0.1:{target.http_port}/dicomweb", headers=headers)


def _finding(identifier: Dataset) -> Callable[[Target], tuple[float, int]]:
    return lambda target: timed_find(target, identifier)


def _searching(web: dict[str, KeepAlive], params: dict[str, str]) -> Callable[[Target], tuple[float, int]]:
    def run(target: Target) -> tuple[float, int]:
        started = time.perf_counter()
        r = web[target.name].get("/studies", params=params, headers={"Accept": "application/dicom+json"})
        if r.status_code not in (200, 204):
            raise SystemExit(f"QIDO on {target.name}: {r.status_code} {r.text[:200]}")
        found = len(r.json()) if r.content else 0
        return (time.perf_counter() - started) * 1000, found

    return run


def _retrieving(
    web: dict[str, KeepAlive], uids: tuple[str, str, str], *, rendered: bool = False
) -> Callable[[Target], tuple[float, int]]:
    study, series, instance = uids
    path = f"/studies/{study}/series/{series}/instances/{instance}" + ("/rendered" if rendered else "")
    accept = "image/jpeg" if rendered else 'multipart/related; type="application/dicom"'

    def run(target: Target) -> tuple[float, int]:
        started = time.perf_counter()
        r = web[target.name].get(path, headers={"Accept": accept})
        if r.status_code != 200:
            raise SystemExit(f"WADO-RS on {target.name}: {r.status_code} {r.text[:200]}")
        return (time.perf_counter() - started) * 1000, len(r.content) // 1024

    return run


def _get_rate(target: Target, study: str) -> float:
    """Instances per second of a C-GET of `study`, by dcmtk's getscu receiving and storing
    nothing (`--ignore`): pynetdicom's requestor polls, and measured itself."""
    started = time.perf_counter()
    done = subprocess.run(
        ["getscu", "-S", "--ignore", "-aet", "BENCH", "-aec", target.ae_title,
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", "-v",
         "127.0.0.1", str(target.port)],
        env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    received = done.stdout.count("Received C-STORE Request") + done.stderr.count("Received C-STORE Request")
    if done.returncode != 0 or received != 100:
        raise SystemExit(
            f"C-GET from {target.name}: {received} instances of 100 (getscu exit {done.returncode})"
        )
    return received / elapsed


def _q(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "ModalitiesInStudy"):
        setattr(ds, keyword, "")
    if level == "STUDY":
        ds.NumberOfStudyRelatedInstances = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _series_query(uids: tuple[str, str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids
    ds.SOPInstanceUID = ""
    ds.InstanceNumber = ""
    return ds


def _range(rng: random.Random) -> str:
    start = FIRST_DAY + timedelta(days=rng.randint(0, 700))
    return f"{start:%Y%m%d}-{start + timedelta(days=29):%Y%m%d}"


def timed_find(target: Target, identifier: Dataset, sop_class: str = STUDY_ROOT) -> tuple[float, int]:
    """Milliseconds from associating to the final response, and the number of matches (a C-FIND
    of `sop_class` on an association of its own, as a workstation or a modality sends it), asked
    by `bench.find_client`, which does not poll (pynetdicom's requestor measured itself)."""
    ms, matches, status = find_client.timed_find(target.port, target.ae_title, sop_class, identifier)
    if status != 0x0000:
        raise SystemExit(f"{target.name} answered {status:#06x}")
    return ms, matches


def _dataset(studies: int) -> tuple[list[Path], dict[str, Any]]:
    """`studies` studies of 2 series x 10 instances, 2 studies per patient, and one MR study of
    100 instances; the files and their facts (patients, series, instances, the big study)."""
    folder = WORK / "data" / f"query-{studies}"
    manifest = folder / "facts.json"
    files = sorted(folder.glob("*.dcm")) if folder.exists() else []
    if len(files) == studies * 20 + 101 and manifest.exists():
        return files, json.loads(manifest.read_text())
    sys.path.insert(0, str(ROOT))
    from tests.dicom_factory import make_instance, new_uid, write

    rng = random.Random(studies)  # noqa: S311 - test data
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    facts: dict[str, Any] = {
        "patients": [f"QPID{p:04d}" for p in range(studies // 2)],
        "series": [],
        "instances": [],
    }
    for s in range(studies):
        study = new_uid()
        day = FIRST_DAY + timedelta(days=rng.randint(0, 729))
        modality = MODALITIES[s % len(MODALITIES)]
        for n in (1, 2):
            series = new_uid()
            facts["series"].append((study, series))
            for i in range(10):
                ds = make_instance(
                    study_uid=study, series_uid=series, modality=modality, rows=8, columns=8,
                    series_number=n, instance_number=i + 1, patient_id=f"QPID{s // 2:04d}",
                    patient_name=f"Bench^Patient{s // 2}", StudyDate=f"{day:%Y%m%d}",
                )  # fmt: skip
                write(ds, folder / f"{s:04d}-{n}-{i:02d}.dcm")
                if i == 0:
                    facts["instances"].append((study, series, str(ds.SOPInstanceUID)))
    big, series = new_uid(), new_uid()
    for i in range(100):
        ds = make_instance(study_uid=big, series_uid=series, rows=64, columns=64, instance_number=i + 1)
        write(ds, folder / f"big-{i:03d}.dcm")
    facts["big_study"] = big
    ct = make_instance(study_uid=new_uid(), series_uid=new_uid(), modality="CT", rows=512, columns=512)
    ct.WindowCenter, ct.WindowWidth = 40, 400
    write(ct, folder / "ct-512.dcm")
    facts["ct512"] = (str(ct.StudyInstanceUID), str(ct.SeriesInstanceUID), str(ct.SOPInstanceUID))
    manifest.write_text(json.dumps(facts))
    return _dataset(studies)


def _report(rows: list, instances: int) -> None:  # type: ignore[type-arg]
    print(f"\n{instances} instances; C-FIND one association per query, HTTP one connection (ms)")
    head = ("query", "matches", "facade p50", "p95", "Orthanc p50", "p95", "ratio p50")
    print(f"{head[0]:30} {head[1]:>8} {head[2]:>11} {head[3]:>7} {head[4]:>12} {head[5]:>7} {head[6]:>10}")
    for label, samples, counts in rows:
        f, o = samples["facade"], samples["orthanc"]
        f50, f95, o50, o95 = _p(f, 50), _p(f, 95), _p(o, 50), _p(o, 95)
        differs = counts["facade"] != counts["orthanc"]
        note = f"  (Orthanc's counts: {sorted(counts['orthanc'])[:3]})" if differs else ""
        matches = "/".join(str(n) for n in sorted(counts["facade"])[:2])
        ratio = f50 / o50
        print(f"{label:30} {matches:>8} {f50:11.1f} {f95:7.1f} {o50:12.1f} {o95:7.1f} {ratio:10.2f}{note}")


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1] if len(samples) > 1 else samples[0]


if __name__ == "__main__":
    sys.exit(main())
