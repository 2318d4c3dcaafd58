"""Query benchmark: C-FIND against our SCP and, in the same run, against Orthanc holding the same data.

    make bench-query                 # or: .venv/bin/python -m bench.query [--quick]

The set (generated once under bench/.work/data): 20,000 small instances (8x8), 1,000 studies of
two series of ten, 500 patients, five modalities, study dates over two years. Both servers
receive it by storescu, then answer the same queries, each on a fresh association as a
workstation sends them (pynetdicom SCU), interleaved: C-FIND STUDY by PatientID, by a 30-day
StudyDate range, by ModalitiesInStudy=CT (200 matches), and IMAGE level of one series. Printed:
p50 / p95 in ms and the ratio facade / Orthanc (below 1: we are faster). Runs in a private
network namespace, as bench.ingest does. Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from pydicom import Dataset
from pynetdicom import AE

from bench.ingest import NETNS_FLAG, ROOT, WORK, Target, _reexec_in_netns, _send, _server

STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
MODALITIES = ["CT", "MR", "US", "CR", "DX"]
FIRST_DAY = date(2023, 1, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 instances, fewer repetitions")
    parser.add_argument("--repeat", type=int, default=40, help="queries of each kind per server")
    args = parser.parse_args()
    if os.environ.get(NETNS_FLAG) != "1":
        return _reexec_in_netns("bench.query")
    for tool in ("storescu", "echoscu", "Orthanc"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (apt-get install dcmtk orthanc)", file=sys.stderr)
            return 2
    studies = 100 if args.quick else 1000
    repeat = 10 if args.quick else args.repeat
    files, facts = _dataset(studies)
    rng = random.Random(1)  # noqa: S311 - which queries to ask, not secrets
    with _server("orthanc") as (orthanc, _), _server("facade") as (facade, _):
        for target in (orthanc, facade):
            rate = _send(target, files, 2)
            print(f"loaded {len(files)} instances into {target.name}: {rate:.0f} instances/s", flush=True)
        queries: dict[str, Callable[[], Dataset]] = {
            "STUDY by PatientID": lambda: _q("STUDY", PatientID=rng.choice(facts["patients"])),
            "STUDY by 30-day StudyDate": lambda: _q("STUDY", StudyDate=_range(rng)),
            "STUDY ModalitiesInStudy=CT": lambda: _q("STUDY", ModalitiesInStudy="CT"),
            "IMAGE of one series": lambda: _series_query(rng.choice(facts["series"])),
        }
        rows = []
        for label, make in queries.items():
            samples: dict[str, list[float]] = {"facade": [], "orthanc": []}
            counts: dict[str, set[int]] = {"facade": set(), "orthanc": set()}
            for _ in range(repeat):
                identifier = make()
                for target in (facade, orthanc):
                    ms, n = _find(target, identifier)
                    samples[target.name].append(ms)
                    counts[target.name].add(n)
            rows.append((label, samples, counts))
    _report(rows, len(files))
    return 0


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


def _find(target: Target, identifier: Dataset) -> tuple[float, int]:
    """Milliseconds from associating to the final response, and the number of matches."""
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(STUDY_ROOT)
    started = time.perf_counter()
    assoc = ae.associate("127.0.0.1", target.port, ae_title=target.ae_title)
    if not assoc.is_established:
        raise SystemExit(f"{target.name} refused the association")
    matches = 0
    for status, ds in assoc.send_c_find(identifier, STUDY_ROOT):
        code = status.get("Status") if status is not None else None
        if code not in (0xFF00, 0xFF01, 0x0000):
            raise SystemExit(f"{target.name} answered {code} (no status: the association ended)")
        matches += ds is not None and code in (0xFF00, 0xFF01)
    assoc.release()
    return (time.perf_counter() - started) * 1000, matches


def _dataset(studies: int) -> tuple[list[Path], dict[str, list]]:  # type: ignore[type-arg]
    """`studies` studies of 2 series x 10 instances, 2 studies per patient; files and their facts."""
    folder = WORK / "data" / f"query-{studies}"
    sys.path.insert(0, str(ROOT))
    from tests.dicom_factory import make_instance, new_uid, write

    rng = random.Random(studies)  # noqa: S311 - test data
    facts: dict[str, list] = {"patients": [], "series": []}  # type: ignore[type-arg]
    manifest = folder / "series.txt"
    files = sorted(folder.glob("*.dcm")) if folder.exists() else []
    if len(files) == studies * 20 and manifest.exists():
        facts["series"] = [tuple(line.split()) for line in manifest.read_text().splitlines()]
        facts["patients"] = [f"QPID{p:04d}" for p in range(studies // 2)]
        return files, facts
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    lines = []
    for s in range(studies):
        study = new_uid()
        day = FIRST_DAY + timedelta(days=rng.randint(0, 729))
        modality = MODALITIES[s % len(MODALITIES)]
        for n in (1, 2):
            series = new_uid()
            lines.append(f"{study} {series}")
            for i in range(10):
                ds = make_instance(
                    study_uid=study, series_uid=series, modality=modality, rows=8, columns=8,
                    series_number=n, instance_number=i + 1, patient_id=f"QPID{s // 2:04d}",
                    patient_name=f"Bench^Patient{s // 2}", StudyDate=f"{day:%Y%m%d}",
                )  # fmt: skip
                write(ds, folder / f"{s:04d}-{n}-{i:02d}.dcm")
    manifest.write_text("\n".join(lines))
    return _dataset(studies)


def _report(rows: list, instances: int) -> None:  # type: ignore[type-arg]
    print(f"\nC-FIND, {instances} instances, one association per query (ms)")
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
