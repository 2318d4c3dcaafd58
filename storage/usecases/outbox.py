"""ORU^R01 out through a durable outbox: a DiagnosticReport that becomes final (or is amended,
corrected, appended) is written as one ORU^R01 per enabled destination into the outbox, in the
transaction of the report change (`ReportOutbox.report_changed`); a worker delivers what is due
(`ReportOutbox.deliver_due`) over MLLP, in order per destination and patient, at least once.

- AA: sent. AE / AR: a dead letter with the receiver's reason (resending it unchanged would
  fail again); `retry` makes it pending again once the cause is fixed.
- No connection, no ACK in time, an ACK of another message: tried again after an exponential
  backoff (`backoff_base` · 2^(attempts-1), at most `backoff_max`), up to `max_attempts`, then a
  dead letter. The other messages claimed for that destination wait as long (it is down).
- Destinations: the `hl7_destination` table (`facade destination add|remove`), into which
  FACADE_ORU_DESTINATIONS is synced at start (`sync_configured`).
"""

from __future__ import annotations

import builtins
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from mapping.hl7.ack import Acknowledgement
from mapping.hl7.oru import FINAL_STATUSES, OruProfile, Sender, build_oru
from storage.clock import Clock, utcnow
from storage.db import Database
from storage.errors import Invalid
from storage.fhir_store.store import FhirStore
from storage.outbox.store import (
    DEAD,
    PENDING,
    SENT,
    STATES,
    Claimed,
    Destination,
    DestinationStore,
    OutboxEntry,
    OutboxStore,
    Outcome,
)
from storage.usecases.derived import Derivation

__all__ = ["DeliveryCounts", "Destination", "OruSender", "OutboxConfig", "OutboxEntry", "ReportOutbox"]

log = logging.getLogger(__name__)
Json = dict[str, Any]
DICOM_UID = "urn:dicom:uid"


class OruSender(Protocol):
    def send(self, host: str, port: int, payload: bytes, control_id: str) -> Acknowledgement:
        """Send one message, return its ACK; raise OSError when it could not be delivered."""
        ...


@dataclass(frozen=True)
class OutboxConfig:
    sender: Sender = field(default_factory=Sender)
    backoff_base: float = 1.0  # seconds before the second try
    backoff_max: float = 300.0  # seconds between tries at most
    max_attempts: int = 100  # tries before a message becomes a dead letter
    lease: float = 300.0  # seconds a claimed message stays with its worker (longer than a batch takes)
    batch: int = 100  # messages claimed at once


@dataclass
class DeliveryCounts:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def new_control_id() -> str:
    """MSH-10: 20 characters (the v2.3.1 limit), unique (the outbox's key says so)."""
    return uuid.uuid4().hex[:20].upper()


class ReportOutbox:
    def __init__(
        self,
        db: Database,
        store: FhirStore,
        config: OutboxConfig,
        *,
        now: Clock = utcnow,
        control_ids: Callable[[], str] = new_control_id,
        derivation: Derivation | None = None,
    ) -> None:
        """`derivation`: read the Patient and ImagingStudy as the index implies them (a patient an
        order just made is not published to the store yet)."""
        self._store, self._config, self._now, self._control_ids = store, config, now, control_ids
        self._derivation = derivation
        self._outbox, self._destinations = OutboxStore(db), DestinationStore(db)
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- enqueue, in the report write's transaction ---------------------------------------------

    def report_changed(self, session: Session, before: Json | None, after: Json, now: datetime) -> int:
        """Called in the transaction that stores `after` (the DiagnosticReport as now stored;
        `before` the previous version, None for a new one). Enqueues one ORU^R01 per enabled
        destination that receives results when the report becomes final, amended, corrected or
        appended, or when such a report's content changes; how many. The worker is woken once the
        transaction commits."""
        if not _sendable(before, after):
            return 0
        destinations = self._receiving(session, "oru")
        if not destinations:
            return 0
        patient = self._referenced(session, after.get("subject"), "Patient")
        order = next(
            (
                o
                for o in (self._referenced(session, r, "ServiceRequest") for r in after.get("basedOn", []))
                if o
            ),
            None,
        )
        study_uid = next(
            (u for u in (self._study_uid(session, r) for r in after.get("imagingStudy", [])) if u), None
        )
        correction = before is not None and before.get("status") in FINAL_STATUSES
        subject = (
            str((after.get("subject") or {}).get("reference", "")) or f"DiagnosticReport/{after.get('id')}"
        )
        for destination in destinations:
            control_id = self._control_ids()
            payload = build_oru(
                after,
                patient=patient,
                order=order,
                study_uid=study_uid,
                profile=OruProfile.from_json(destination.profile),
                sender=self._config.sender,
                control_id=control_id,
                now=now,
                correction=correction,
            )
            self._outbox.enqueue(
                session,
                destination=destination.name,
                ordering_key=subject,
                control_id=control_id,
                payload=payload,
                now=now,
            )
        event.listen(session, "after_commit", lambda _session: self.wake(), once=True)
        log.info("outbox.enqueued", extra={"count": len(destinations), "resource_id": after.get("id")})
        return len(destinations)

    def enqueue_reply(
        self, session: Session, destination: str, *, control_id: str, payload: bytes, now: datetime
    ) -> bool:
        """An HL7 message that answers a sender (enhanced mode's application ACK), queued for the
        enabled destination of that name that receives application ACKs, in the caller's
        transaction, in order with what else goes there; False when there is none."""
        if destination not in {d.name for d in self._receiving(session, "ack")}:
            return False
        self._outbox.enqueue(
            session,
            destination=destination,
            ordering_key=f"reply:{destination}",
            control_id=control_id,
            payload=payload,
            now=now,
        )
        event.listen(session, "after_commit", lambda _session: self.wake(), once=True)
        return True

    def _receiving(self, session: Session, kind: str) -> builtins.list[Destination]:
        """The enabled destinations that take messages of `kind` (`MESSAGE_KINDS`)."""
        return [
            d for d in self._destinations.enabled(session) if kind in OruProfile.from_json(d.profile).receives
        ]

    def _referenced(self, session: Session, reference: Any, res_type: str) -> Json | None:
        ref = str(reference.get("reference", "")) if isinstance(reference, dict) else ""
        kind, _, res_id = ref.partition("/")
        if kind != res_type or not res_id or "/" in res_id:
            return None
        derived = self._derivation.of(session, res_type, res_id) if self._derivation is not None else None
        stored = derived.shown if derived is not None else self._store.read(session, res_type, res_id)
        return stored.body if stored is not None else None

    def _study_uid(self, session: Session, reference: Any) -> str | None:
        study = self._referenced(session, reference, "ImagingStudy")
        for identifier in (study or {}).get("identifier", []):
            if identifier.get("system") == DICOM_UID and identifier.get("value"):
                return str(identifier["value"]).removeprefix("urn:oid:")
        return None

    # -- waking the worker ----------------------------------------------------------------------

    def subscribe(self, listener: Callable[[], None]) -> None:
        """`listener` is called after each commit that enqueued messages (the worker's `wake`)."""
        with self._lock:
            self._listeners.append(listener)

    def wake(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    # -- delivery -------------------------------------------------------------------------------

    def deliver_due(self, sender: OruSender, now: datetime | None = None) -> DeliveryCounts:
        """Claim what is due, send it, record each outcome; again until nothing is due (a
        patient's next message becomes due when its previous one is sent)."""
        counts = DeliveryCounts()
        for _ in range(10_000):  # bounded: each round sends or defers every message it claims
            moment = now or self._now()
            lease_until = moment + timedelta(seconds=self._config.lease)
            claimed = self._outbox.claim(moment, lease_until, self._config.batch)
            if not claimed:
                break
            where = {d.name: d for d in self._destinations.all()}
            by_destination: dict[str, list[Claimed]] = {}
            for message in claimed:
                by_destination.setdefault(message.destination, []).append(message)
            for name, messages in by_destination.items():
                self._outbox.record(self._send_all(sender, where.get(name), messages, counts))
        return counts

    def _send_all(
        self,
        sender: OruSender,
        destination: Destination | None,
        messages: list[Claimed],
        counts: DeliveryCounts,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for index, message in enumerate(messages):
            if destination is None:  # removed meanwhile
                outcomes.append(self._dead(message, "destination no longer registered", None))
                counts.dead += 1
                continue
            try:
                ack = sender.send(destination.host, destination.port, message.payload, message.control_id)
            except OSError as exc:
                failed = self._failed(message, _failure(exc))
                counts.dead += failed.state == DEAD
                counts.retried += failed.state == PENDING
                outcomes.append(failed)
                # the destination is down: the rest of this batch waits as long, without a try counted
                wait = failed.next_attempt_at if failed.state == PENDING else self._now()
                outcomes += [Outcome(m.pk, PENDING, m.attempts, wait) for m in messages[index + 1 :]]
                break
            if ack.accepted:
                now = self._now()
                outcomes.append(
                    Outcome(message.pk, SENT, message.attempts + 1, now, ack_code="AA", sent_at=now)
                )
                counts.sent += 1
                log.info(
                    "outbox.sent", extra={"destination": destination.name, "control_id": message.control_id}
                )
            else:
                outcomes.append(self._dead(message, f"{ack.code}: {ack.reason}", ack.code))
                counts.dead += 1
        return outcomes

    def _failed(self, message: Claimed, reason: str) -> Outcome:
        attempts = message.attempts + 1
        if attempts >= self._config.max_attempts:
            return self._dead(message, f"gave up after {attempts} tries: {reason}", None, attempts)
        delay = min(self._config.backoff_max, self._config.backoff_base * 2 ** (attempts - 1))
        log.info(
            "outbox.retry_later",
            extra={"control_id": message.control_id, "count": attempts, "reason": reason, "seconds": delay},
        )
        return Outcome(
            message.pk, PENDING, attempts, self._now() + timedelta(seconds=delay), last_error=reason
        )

    def _dead(self, message: Claimed, reason: str, code: str | None, attempts: int | None = None) -> Outcome:
        tries = message.attempts + 1 if attempts is None else attempts
        # the receiver's text may quote values: it stays in the outbox (`facade outbox list`)
        log.warning(
            "outbox.dead_letter",
            extra={"control_id": message.control_id, "ack": code or "", "attempt": tries},
        )
        return Outcome(message.pk, DEAD, tries, self._now(), last_error=reason[:400], ack_code=code)

    # -- administration -------------------------------------------------------------------------

    def list(self, state: str | None = None) -> list[OutboxEntry]:
        if state is not None and state not in STATES:
            raise Invalid(f"state is one of {', '.join(STATES)}")
        return self._outbox.entries(state)

    def retry(self, ids: Sequence[int] | None) -> int:
        """Dead letters pending again (those of `ids`, or every one when None); how many."""
        revived = self._outbox.revive(ids, self._now())
        if revived:
            self.wake()
        return revived

    def count(self, state: str) -> int:
        return self._outbox.count(state)

    def add_destination(
        self, name: str, host: str, port: int, profile: OruProfile, *, enabled: bool = True
    ) -> Destination:
        """Register a destination; Invalid for a malformed one, Conflict when the name is taken."""
        destination = _valid(name, host, port, profile, enabled)
        self._destinations.add(destination, self._now())
        return destination

    def remove_destination(self, name: str) -> bool:
        """Forget a destination; its pending messages become dead letters."""
        return self._destinations.remove(name.strip(), reason="destination removed", now=self._now())

    def set_enabled(self, name: str, enabled: bool) -> bool:
        """Pause a destination (no message is queued for it, those queued wait) or resume it (they
        go, the worker is woken); whether it exists."""
        found = self._destinations.set_enabled(name.strip(), enabled)
        if found and enabled:
            self.wake()
        return found

    def destinations(self) -> builtins.list[Destination]:
        return self._destinations.all()

    def sync_configured(self, configured: Iterable[tuple[str, str, int]]) -> None:
        """FACADE_ORU_DESTINATIONS into the table: each (name, host, port) added with the default
        profile, or its host and port updated (its profile kept)."""
        self._destinations.sync([_valid(n, h, p, OruProfile(), True) for n, h, p in configured], self._now())


def _valid(name: str, host: str, port: int, profile: OruProfile, enabled: bool) -> Destination:
    name, host = name.strip(), host.strip()
    if not 0 < len(name) <= 64 or any(c.isspace() for c in name):
        raise Invalid("a destination name has 1 to 64 characters and no spaces")
    if not host or len(host) > 255 or any(c.isspace() or c in "/\\" for c in host):
        raise Invalid("the host is a name or an IP address")
    if not 0 < port < 65536:
        raise Invalid("the port is 1 to 65535")
    problem = profile.problem()
    if problem is not None:
        raise Invalid(problem)
    return Destination(name, host, port, profile.to_json(), enabled)


def _sendable(before: Json | None, after: Json) -> bool:
    """Whether a change makes an ORU: the report is final (or amended, corrected, appended) and
    was not, or its content changed."""
    if after.get("status") not in FINAL_STATUSES:
        return False
    if before is None or before.get("status") != after.get("status"):
        return True
    return _content(before) != _content(after)


def _content(report: Json) -> Json:
    return {k: v for k, v in report.items() if k != "meta"}


def _failure(exc: OSError) -> str:
    """A PHI-free reason: the exception's type and, for our own MLLP errors, their text."""
    text = str(exc) if exc.args and isinstance(exc.args[0], str) else ""
    return f"{type(exc).__name__}: {text}"[:400] if text else type(exc).__name__
