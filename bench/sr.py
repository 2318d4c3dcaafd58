"""SR -> FHIR mapping benchmark: how fast `mapping.fhir.sr_results.sr_resources` maps structured
reports, as ingest would call it (each document read back from Part 10 bytes with pydicom, whose
lazy parsing is part of the cost), and how long the largest dose SR takes.

    make bench-sr                    # or: .venv/bin/python -m bench.sr [--quick]

Documents: a TID 1500 measurement report made with highdicom (2 groups, 6 measurements, 1
qualitative evaluation), a CT dose SR (TID 10011), and projection X-ray RDSRs (TID 10001) with
666 and 6,000 irradiation events (9 content items each: ~6,000 and ~54,000 items, the latter
~9 MB). The documents come from the test factories (tests/mapping/dicom/sr/factories.py).
Printed: SRs/s (median of runs) and, for each RDSR, the time of one mapping (median, max).
No reference peer exists: none of the archives we measure ourselves against maps SRs to FHIR
Observations in-process (DICOMcast maps a subset of dose reports, in .NET, to a remote FHIR
server), so the numbers stand alone against the issue's target: no SR over 1 s.
Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO

from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from mapping.fhir.sr_results import SrContext, sr_resources
from tests.mapping.dicom.sr.factories import ct_dose_sr, fluoro_dose_sr, tid1500

CTX = SrContext(patient="Patient/p1", imaging_study="study-1", now=datetime(2026, 12, 3, tzinfo=UTC))


def part10(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def one_mapping(data: bytes) -> tuple[float, int]:
    """Seconds to read the header and map the document, and how many resources came out."""
    started = time.perf_counter()
    resources = sr_resources(dcmread(BytesIO(data)), CTX)
    return time.perf_counter() - started, len(resources)


def rate(data: bytes, *, seconds: float, runs: int) -> tuple[float, int]:
    """Median SRs/s over `runs` runs of about `seconds` each."""
    rates, count = [], 0
    for _ in range(runs):
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            _, count = one_mapping(data)
            n += 1
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the benchmark)")
    args = parser.parse_args()
    seconds, runs, repeats = (0.5, 3, 3) if args.quick else (3.0, 5, 7)

    documents: list[tuple[str, Callable[[], Dataset]]] = [
        ("TID 1500 measurement report", tid1500),
        ("CT dose SR (TID 10011)", ct_dose_sr),
    ]
    print(f"\nSR -> FHIR mapping, read from Part 10 bytes ({runs} runs of {seconds:.1f} s, median)")
    print(f"{'document':<34} {'bytes':>9} {'resources':>9} {'SRs/s':>9}")
    for label, make in documents:
        data = part10(make())
        per_second, count = rate(data, seconds=seconds, runs=runs)
        print(f"{label:<34} {len(data):>9} {count:>9} {per_second:>9.0f}")

    print(f"\nLargest dose SRs: projection X-ray RDSR, one mapping ({repeats} times: median, max)")
    print(f"{'events':>7} {'items':>7} {'bytes':>10} {'median ms':>10} {'max ms':>8}")
    worst = 0.0
    for events in (666, 6000):
        data = part10(fluoro_dose_sr(events=events))
        times = [one_mapping(data)[0] for _ in range(repeats)]
        worst = max(worst, *times)
        print(
            f"{events:>7} {events * 9 + 14:>7} {len(data):>10} "
            f"{statistics.median(times) * 1000:>10.0f} {max(times) * 1000:>8.0f}"
        )
    print(
        "\nNo reference peer: no archive we compare against maps SRs to FHIR in-process; "
        f"target: no SR over 1 s ({'met' if worst < 1.0 else 'NOT met'}: worst {worst * 1000:.0f} ms)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
