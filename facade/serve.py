"""`facade serve`: HTTP (FHIR, DICOMweb), the DICOM SCP, the MLLP listener (HL7 orders) and the
periodic workers, listed here and run by one lifecycle (`facade.lifecycle`): in one process, or
(`--workers`) in a parent and its serving children (`facade.processes`)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn
from pynetdicom.transport import ThreadedAssociationServer

from dicom_bridge.admission import Admission
from dicom_bridge.ae import WORKLIST_FIND, AeConfig, start_server, storage_ae
from dicom_bridge.association_audit import AssociationAudit
from dicom_bridge.find_scp import FindScp
from dicom_bridge.get_scp import GetScp
from dicom_bridge.move_scp import MoveScp
from dicom_bridge.mpps_scp import MppsScp
from dicom_bridge.storage_scp import StorageScp
from dicom_bridge.worklist_scp import WorklistScp
from facade.housekeeping import INTERVAL as HOUSEKEEPING_INTERVAL
from facade.housekeeping import Housekeeper
from facade.http import build_http_app
from facade.lifecycle import Lifecycle, Listener
from facade.listeners import DicomListener, HttpListener, mllp_listener
from facade.logs import configure_logging
from facade.processes import ChildProcesses, inherited_socket, listening_socket
from facade.settings import Settings
from facade.settle import Traffic, settle
from facade.wiring import Services, build_services
from facade.workers import Periodic
from hl7_interface.mllp_client import MllpClient
from hl7_interface.receiver import Hl7Receiver

log = logging.getLogger(__name__)

AUDIT_FLUSH_INTERVAL = 0.5  # seconds: a crash loses at most the audit events of the last half second
PARENT_WATCH_INTERVAL = 0.5  # seconds: how soon a serving child notices its parent is gone
WORKLIST_WARM_INTERVAL = 1.0  # seconds between looks for new scheduled steps to build items of
OUTBOX_INTERVAL = 0.2  # seconds between looks at the outbox (also woken by each enqueue's commit)
SWITCH_INTERVAL = 0.001  # seconds a thread runs Python before one waiting for the interpreter gets it


def serve(settings: Settings) -> None:
    """One serving process, or with `workers` above one a parent and its serving children
    (`facade.processes`); a child is a serving process handed its parent's sockets."""
    configure_logging(settings.log_level)
    # An association thread whose fsync or socket read returns waits for the interpreter while
    # the indexer (or another association) runs Python; by default that can be 5 ms, longer
    # than a whole C-STORE round trip. 1 ms: one association 279-305 -> 340-425 instances/s
    # (same minute, 2,000 MR), two unchanged; shorter switches cost more than they save.
    sys.setswitchinterval(SWITCH_INTERVAL)
    problem = settings.insecure_auth()
    if problem is not None:
        log.error("auth.misconfigured", extra={"reason": problem})
        raise SystemExit(f"facade serve: {problem}")
    inherited = settings.inherited()
    if inherited:
        services = build_services(settings, migrate=False)
        parent = os.getppid()
        lifecycle = Lifecycle(
            child_listeners(settings, services, inherited),
            [
                Periodic("audit-flush", AUDIT_FLUSH_INTERVAL, services.audit.flush, run_at_stop=True),
                worklist_warmer(services),
            ],
        )
        # a parent gone (killed) leaves its children to stop by themselves, not to serve on
        lifecycle.workers.append(
            Periodic("parent-watch", PARENT_WATCH_INTERVAL, _orphan_watch(lifecycle, parent))
        )
    else:
        services = build_services(settings)
        services.publisher.endpoint()
        workers = settings.resolved_workers()
        traffic = Traffic()  # HL7 messages arriving: settling waits for a pause
        lifecycle = Lifecycle(
            parent_listeners(settings, services, workers, traffic)
            if workers > 1
            else listeners(settings, services, traffic),
            background_workers(settings, services, traffic)
            + ([] if workers > 1 else [worklist_warmer(services)]),
        )
    # What was built so far lives as long as the process: out of the collector's sight, so that
    # its full collections walk what requests create, not the ~200,000 objects of the modules
    gc.collect()
    gc.freeze()
    try:
        _run(lifecycle)
    finally:
        services.close()
        log.info("facade.stopped")


def _orphan_watch(lifecycle: Lifecycle, parent: int) -> Callable[[], None]:
    """A check that stops `lifecycle` (once) when this process's parent is no longer `parent`."""
    noticed = threading.Event()

    def check() -> None:
        if os.getppid() != parent and not noticed.is_set():
            noticed.set()
            log.error("worker.orphaned", extra={"pid": parent})
            lifecycle.request_stop()

    return check


def _run(lifecycle: Lifecycle) -> None:
    def on_signal(sig: int, _frame: FrameType | None) -> None:
        # graceful on the first; a second SIGINT forces the stop under way
        lifecycle.request_stop(hurry=sig == signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    lifecycle.run()


def listeners(settings: Settings, services: Services, traffic: Traffic | None = None) -> list[Listener]:
    """Every listener of a serving process, in one list, in the order they start (DICOM, MLLP,
    then HTTP); they stop in the reverse order. `traffic` notes each HL7 message."""
    return [
        DicomListener(lambda: start_dicom(settings, services)),
        mllp_listener(settings, _receiver(services, traffic)),
        HttpListener(http_config(settings, services), url=settings.resolved_base_url()),
    ]


def parent_listeners(
    settings: Settings, services: Services, workers: int, traffic: Traffic | None = None
) -> list[Listener]:
    """The parent of `workers` serving children: it binds the DICOM and HTTP ports for them (after
    indexing what earlier runs held) and listens to MLLP itself."""
    prepare_ingest(services)
    try:
        sockets = {
            "dicom": listening_socket(settings.dicom_host, settings.dicom_port, no_delay=True),
            "http": listening_socket(settings.http_host, settings.http_port),
        }
    except OSError as exc:  # a port in use, an address not ours: the start fails
        log.error("serve.cannot_listen", extra={"error": type(exc).__name__})
        raise SystemExit(1) from exc
    log.info(
        "serve.workers",
        extra={
            "workers": workers,
            "dicom_port": sockets["dicom"].getsockname()[1],
            "http_port": sockets["http"].getsockname()[1],
        },
    )
    return [
        ChildProcesses(workers, dict(os.environ), sockets, on_child_gone=services.ingest.recover),
        mllp_listener(settings, _receiver(services, traffic)),
    ]


def child_listeners(settings: Settings, services: Services, inherited: dict[str, int]) -> list[Listener]:
    """A serving child: DICOM and HTTP on the sockets its parent handed down."""
    dicom, http = inherited_socket(inherited["dicom"]), inherited_socket(inherited["http"])
    return [
        DicomListener(lambda: start_dicom(settings, services, listening=dicom)),
        HttpListener(http_config(settings, services), url=settings.resolved_base_url(), listening=http),
    ]


def _receiver(services: Services, traffic: Traffic | None) -> Hl7Receiver:
    return Hl7Receiver(services.hl7_inbox, on_message=traffic.note if traffic is not None else None)


def http_config(settings: Settings, services: Services) -> uvicorn.Config:
    return uvicorn.Config(
        build_http_app(services),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def background_workers(
    settings: Settings, services: Services, traffic: Traffic | None = None
) -> list[Periodic]:
    """Every periodic worker of a serving process, in one list; settling waits for a pause in
    the HL7 `traffic` (`facade.settle`)."""
    builtin = services.auth.builtin
    housekeeper = Housekeeper(
        [builtin.tokens.purge_expired, builtin.sessions.purge_expired] if builtin is not None else []
    )
    settle_every = max(0.5, min(5.0, settings.stable_age_seconds / 4))
    return [
        outbox_worker(settings, services),
        Periodic("settle", settle_every, lambda: settle(services.publisher, traffic)),
        Periodic("housekeeping", HOUSEKEEPING_INTERVAL, housekeeper.run_once),
        # after the listeners stopped, a last flush writes what they recorded up to the end
        Periodic("audit-flush", AUDIT_FLUSH_INTERVAL, services.audit.flush, run_at_stop=True),
    ]


def worklist_warmer(services: Services) -> Periodic:
    """Builds the worklist items of new steps ahead of queries, in each process that answers
    them (`Worklist.warm`), yielding to a burst of orders."""
    return Periodic(
        "worklist-warm", WORKLIST_WARM_INTERVAL, lambda: services.worklist.warm(yield_to_orders=True)
    )


def outbox_worker(settings: Settings, services: Services) -> Periodic:
    """Delivers the ORU^R01 outbox over MLLP: every OUTBOX_INTERVAL, and at once when a report
    change commits (the outbox wakes it); its connections close when it stops."""
    client = MllpClient(connect_timeout=settings.oru_connect_timeout, ack_timeout=settings.oru_ack_timeout)
    worker = Periodic(
        "oru-outbox", OUTBOX_INTERVAL, lambda: services.outbox.deliver_due(client), on_stop=client.close
    )
    services.outbox.subscribe(worker.wake)
    return worker


def prepare_ingest(services: Services) -> None:
    """Clear what earlier runs left in staging (a file there that is older than this start belongs
    to no receive in progress: an aborted one, or a crash) and index what they acknowledged but
    did not index; before any DICOM association is accepted."""
    removed = services.blobs.clean_staging(before=time.time())
    if removed:
        log.info("staging.cleaned", extra={"count": removed})
    services.ingest.recover()


def start_dicom(
    settings: Settings, services: Services, *, listening: socket.socket | None = None
) -> ThreadedAssociationServer:
    """The DICOM listener: on `listening` (a serving child's, handed down by its parent, which
    prepared ingest), else on the configured address after `prepare_ingest`."""
    if listening is None:
        prepare_ingest(services)
    if not _same_file_system(Path(tempfile.gettempdir()), services.blobs.staging_dir()):
        # pynetdicom receives each data set into the system temporary directory (see dicom_bridge.ae)
        log.warning("dicom.receive_copies", extra={"reason": _RECEIVE_COPIES})
    ae = storage_ae(
        AeConfig(
            ae_title=settings.dicom_ae_title,
            max_pdu=settings.dicom_max_pdu,
            allowed_calling=settings.allowed_calling_aets(),
            require_called=settings.dicom_require_called_aet,
            acse_timeout=settings.dicom_acse_timeout,
            network_timeout=settings.dicom_network_timeout,
            fast_path=settings.dicom_fast_path,
        )
    )
    admission = Admission(settings.dicom_max_associations, settings.dicom_max_associations_per_peer)
    dicom = start_server(
        ae,
        (settings.dicom_host, settings.dicom_port),
        admission.handlers()
        + StorageScp(services.ingest).handlers()
        + FindScp(
            services.query,
            settings.dicom_ae_title,
            others={
                WORKLIST_FIND: WorklistScp(
                    services.worklist, calling_ae_as_station=settings.worklist_calling_ae_as_station
                ).respond
            },
        ).handlers()
        + GetScp(services.query, services.retrieve).handlers()
        + MoveScp(services.query, services.retrieve, services.peers).handlers()
        + MppsScp(services.mpps).handlers()
        + AssociationAudit(services.audit).handlers(),
        listening=listening,
    )
    log.info(
        "dicom.listening",
        extra={
            "host": settings.dicom_host,
            "port": dicom.server_address[1],
            "ae_title": settings.dicom_ae_title,
        },
    )
    return dicom


_RECEIVE_COPIES = (
    "the system temporary directory (TMPDIR), where C-STORE data sets are received, is on another "
    "file system than the data directory: each instance is copied into the blob store, not renamed"
)


def _same_file_system(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False
