"""`facade remote find|retrieve AE`: query a remote PACS (C-FIND) and bring studies in (C-GET, or
C-MOVE to ourselves), through the one ingest path. AE is a title registered with `facade ae add`.

The table and the summary go to the user's terminal, never to the log (they hold names and IDs).
Exit status: 0 done, 1 the peer is unknown, unreachable or refused, or a study did not arrive whole,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from pydicom import Dataset
from pydicom.multival import MultiValue

from dicom_bridge.remote import Counts, Getter, RemoteError, ScuConfig, echo, find, move
from dicom_bridge.remote_store import RetrievedInstances
from facade.importer import ProgressBar, publish_pending
from facade.logs import configure_logging, log_to_file
from facade.settings import Settings
from facade.wiring import Services, build_services
from mapping.dicom.uid import valid_uid
from storage.errors import Unavailable
from storage.usecases.peers import RemoteAe

log = logging.getLogger(__name__)

_DATE_RANGE = re.compile(r"^(\d{8})?(-(\d{8})?)?$")
_STUDY_COLUMNS = (
    "Study UID",
    "Date",
    "Patient ID",
    "Patient name",
    "Modalities",
    "Description",
    "Series",
    "Instances",
)
_SERIES_COLUMNS = ("Study UID", "Series UID", "Number", "Modality", "Description", "Instances")


def add_arguments(sub: Any) -> None:
    remote = sub.add_parser("remote", help="query a remote PACS and import from it (AE: see `facade ae`)")
    remote_sub = remote.add_subparsers(dest="remote_command", required=True)
    f = remote_sub.add_parser("find", help="C-FIND: list the studies (or series) a remote AE holds")
    f.add_argument("ae_title", metavar="AE", help="a title registered with `facade ae add`")
    f.add_argument("--level", choices=("STUDY", "SERIES"), default="STUDY", type=str.upper)
    f.add_argument("--patient-id")
    f.add_argument("--patient-name", help="wildcards * and ? allowed, e.g. 'DOE^J*'")
    f.add_argument(
        "--study-date", metavar="RANGE", help="YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-"
    )
    f.add_argument("--modality", help="e.g. CT")
    f.add_argument("--accession")
    f.add_argument("--study", action="append", metavar="UID", help="a Study Instance UID (repeatable)")
    r = remote_sub.add_parser(
        "retrieve",
        help="bring studies in: C-GET, or C-MOVE to ourselves with --move",
        description="Retrieve studies from a remote AE into this archive. By default by C-GET (no "
        "listener needed). With --move, by C-MOVE with our AE title as the destination: `facade "
        "serve` must be running (its DICOM listener receives the instances), and the remote AE "
        "must know our AE title, host and port as a move destination.",
    )
    r.add_argument("ae_title", metavar="AE", help="a title registered with `facade ae add`")
    r.add_argument(
        "--study", action="append", required=True, metavar="UID", help="Study Instance UID (repeatable)"
    )
    r.add_argument("--move", action="store_true", help="C-MOVE to our own AE (needs `facade serve` running)")
    for p in (f, r):
        p.add_argument(
            "--connect-timeout", type=_seconds, default=10.0, metavar="S", help="connection (default 10 s)"
        )
        p.add_argument(
            "--timeout", type=_seconds, default=60.0, metavar="S", help="each response (default 60 s)"
        )


class BadOption(ValueError):
    """A command-line value the command cannot use (said before anything is sent)."""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("more than 0 and at most 3600 seconds")
    return value


def _uids(args: argparse.Namespace) -> list[str]:
    uids = list(dict.fromkeys(u.strip() for u in args.study or []))
    bad = [u for u in uids if not valid_uid(u)]
    if bad:
        raise BadOption(f"not a UID (digits and dots, at most 64 characters): {bad[0][:80]!r}")
    return uids


def run(
    args: argparse.Namespace, settings: Settings, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    command = f"facade remote {args.remote_command}"
    _quiet_logging(settings, err, args.remote_command)
    try:
        services = build_services(settings)
    except Unavailable as exc:
        print(f"{command}: {exc}", file=err)
        return 1
    try:
        peer = services.peers.get(args.ae_title)
        if peer is None:
            print(
                f"{command}: {args.ae_title.strip()} is not registered: "
                "add it with `facade ae add NAME HOST PORT`",
                file=err,
            )
            return 1
        config = ScuConfig(
            settings.dicom_ae_title,
            connect_timeout=args.connect_timeout,
            response_timeout=args.timeout,
            max_pdu=settings.dicom_max_pdu,
        )
        try:
            if args.remote_command == "find":
                return _find(args, peer, config, out, err)
            if args.move:
                return _move(args, settings, peer, config, out, err)
            return _get(args, services, peer, config, out, err)
        except RemoteError as exc:
            print(f"{command}: {exc}", file=err)
            return 1
        except BadOption as exc:
            print(f"{command}: {exc}", file=err)
            return 1
        except KeyboardInterrupt:  # the association was aborted; what was stored stays stored
            print(f"{command}: interrupted", file=err)
            return 130
    finally:
        services.close()


def _quiet_logging(settings: Settings, err: TextIO, what: str) -> None:
    """JSON records as everywhere; to a file when stderr is a terminal (the bar and the table are
    there); pynetdicom's own errors are ours to say, once and plainly."""
    configure_logging(settings.log_level)
    if err.isatty():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        log_to_file(settings.data_dir.resolve() / "logs" / f"remote-{what}-{stamp}.jsonl")
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


# -- find ---------------------------------------------------------------------------------------


def study_query(args: argparse.Namespace) -> Dataset:
    """The STUDY-level identifier (PS3.4 C.6.2.1.2): filters as given, return keys empty."""
    if args.study_date and not _DATE_RANGE.match(args.study_date):
        raise BadOption("--study-date is YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end may be left out)")
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = "\\".join(_uids(args))
    ds.StudyDate = args.study_date or ""
    ds.StudyTime = ""
    ds.PatientID = args.patient_id or ""
    ds.PatientName = args.patient_name or ""
    ds.ModalitiesInStudy = args.modality or ""
    ds.StudyDescription = ""
    ds.AccessionNumber = args.accession or ""
    ds.NumberOfStudyRelatedSeries = ""
    ds.NumberOfStudyRelatedInstances = ""
    return _charset(ds)


def series_query(study_uid: str, modality: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = ""
    ds.SeriesNumber = ""
    ds.Modality = modality or ""
    ds.SeriesDescription = ""
    ds.NumberOfSeriesRelatedInstances = ""
    return _charset(ds)


def _charset(ds: Dataset) -> Dataset:
    if any(isinstance(e.value, str) and not e.value.isascii() for e in ds):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _find(args: argparse.Namespace, peer: RemoteAe, config: ScuConfig, out: TextIO, err: TextIO) -> int:
    studies = find(peer, config, study_query(args))
    if args.level == "STUDY":
        rows = [
            (
                _text(s, "StudyInstanceUID"),
                _text(s, "StudyDate"),
                _text(s, "PatientID"),
                _text(s, "PatientName"),
                _text(s, "ModalitiesInStudy"),
                _text(s, "StudyDescription"),
                _text(s, "NumberOfStudyRelatedSeries"),
                _text(s, "NumberOfStudyRelatedInstances"),
            )
            for s in studies
        ]
        return _table(_STUDY_COLUMNS, rows, out, f"no matching studies at {peer.ae_title}")
    series_rows: list[tuple[str, ...]] = []
    for uid in dict.fromkeys(_text(s, "StudyInstanceUID") for s in studies if s.get("StudyInstanceUID")):
        for s in find(peer, config, series_query(uid, args.modality)):
            series_rows.append(
                (
                    uid,
                    _text(s, "SeriesInstanceUID"),
                    _text(s, "SeriesNumber"),
                    _text(s, "Modality"),
                    _text(s, "SeriesDescription"),
                    _text(s, "NumberOfSeriesRelatedInstances"),
                )
            )
    return _table(_SERIES_COLUMNS, series_rows, out, f"no matching series at {peer.ae_title}")


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    text = ",".join(str(v) for v in value) if isinstance(value, MultiValue | list | tuple) else str(value)
    return "".join(c if c.isprintable() else " " for c in text)


def _table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]], out: TextIO, empty: str) -> int:
    if not rows:
        print(empty, file=out)
        return 0
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)
    return 0


# -- retrieve -----------------------------------------------------------------------------------


class _Bar:
    """One bar over every study: sub-operations done / total as the peer announced them."""

    def __init__(self, err: TextIO) -> None:
        self.bar = ProgressBar(err, unit="instances")
        self._done = self._total = 0

    def study(self) -> Any:
        base_done, base_total = self._done, self._total

        def progress(done: int, total: int) -> None:
            self._done, self._total = base_done + done, base_total + total
            self.bar.update(self._done, self._total)

        return progress


def _get(  # noqa: PLR0917 (one caller, the dispatch in `run`)
    args: argparse.Namespace, services: Services, peer: RemoteAe, config: ScuConfig, out: TextIO, err: TextIO
) -> int:
    studies = _uids(args)
    received = RetrievedInstances(services.ingest, peer.ae_title)
    classes = sop_classes_in(peer, config, studies)
    bar = _Bar(err)
    bar.bar.attach_to_logging()
    finals: dict[str, Counts] = {}
    stopped: RemoteError | None = None
    try:
        with Getter(peer, config, received.on_c_store, classes).open() as get:
            for uid in studies:
                received.expect(uid)
                finals[uid] = get(uid, bar.study())
    except RemoteError as exc:  # what arrived before is stored: say so below
        stopped = exc
    finally:
        bar.bar.finish()
        bar.bar.detach_from_logging()
    if stopped is not None:
        print(f"facade remote retrieve: {stopped}", file=err)
    publish_pending(services.publisher.pending, err, command="facade remote retrieve")
    rows, ok = [], stopped is None
    for uid in studies:
        tally: Counter[str] = received.outcomes.get(uid, Counter())
        final = finals.get(uid, Counts(-1))
        failed = max(tally["failed"], final.failed + final.warning)
        arrived = tally["stored"] + tally["duplicate"] + tally["replaced"]
        if final.status == -1:
            note = "not retrieved (stopped)"
        else:
            note = "" if arrived or failed else f"not found at {peer.ae_title}"
        log.info(
            "remote.retrieved",
            extra={"called_ae": peer.ae_title, "via": "c-get", "study_uid": uid, "failed": failed}
            | {k: tally[k] for k in ("stored", "duplicate", "replaced")},
        )
        ok = ok and arrived > 0 and not failed
        rows.append(
            (uid, str(tally["stored"]), str(tally["duplicate"]), str(tally["replaced"]), str(failed), note)
        )
    print(f"Retrieved from {peer.ae_title} by C-GET:", file=out)
    _table(("Study UID", "stored", "duplicate", "replaced", "failed", ""), rows, out, "")
    return 0 if ok else 1


def sop_classes_in(peer: RemoteAe, config: ScuConfig, studies: list[str]) -> list[str]:
    """The SOP classes the studies hold (SOPClassesInStudy, an optional key: PS3.4 C.6.1.1.4);
    empty when the peer does not say for each study it has (the C-GET then proposes common classes)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = "\\".join(studies)
    ds.SOPClassesInStudy = ""
    classes: list[str] = []
    answers = find(peer, config, ds)
    for answer in answers:
        value = answer.get("SOPClassesInStudy")
        if not value:
            return []
        classes += [str(v) for v in (value if isinstance(value, MultiValue) else [value])]
    return classes


def _move(  # noqa: PLR0917 (one caller, the dispatch in `run`)
    args: argparse.Namespace, settings: Settings, peer: RemoteAe, config: ScuConfig, out: TextIO, err: TextIO
) -> int:
    studies = _uids(args)
    wildcard = ("", "0.0.0.0", "::")  # noqa: S104 (a wildcard is no address to call)
    host = settings.dicom_host if settings.dicom_host not in wildcard else "127.0.0.1"
    ours = RemoteAe(settings.dicom_ae_title, host, settings.dicom_port)
    try:
        echo(ours, config)
    except RemoteError as exc:
        print(
            f"facade remote retrieve: our DICOM listener ({ours.ae_title} at {host}:{ours.port}) does not "
            f"answer C-ECHO ({exc}): --move needs `facade serve` running to receive; or leave out --move "
            "to retrieve by C-GET",
            file=err,
        )
        return 1
    bar = _Bar(err)
    bar.bar.attach_to_logging()
    finals: dict[str, Counts] = {}
    try:
        for uid in studies:
            finals[uid] = move(peer, config, uid, settings.dicom_ae_title, bar.study())
    finally:
        bar.bar.finish()
        bar.bar.detach_from_logging()
    rows, ok = [], True
    for uid in studies:
        c = finals[uid]
        note = "" if c.completed or c.failed or c.warning else f"not found at {peer.ae_title}"
        log.info(
            "remote.retrieved",
            extra={"called_ae": peer.ae_title, "via": "c-move", "study_uid": uid, "sent": c.completed}
            | {"warning": c.warning, "failed": c.failed},
        )
        ok = ok and c.completed > 0 and not (c.failed or c.warning)
        rows.append((uid, str(c.completed), str(c.warning), str(c.failed), note))
    print(f"Moved from {peer.ae_title} to {settings.dicom_ae_title} (stored by `facade serve`):", file=out)
    _table(("Study UID", "received", "warning", "failed", ""), rows, out, "")
    return 0 if ok else 1
