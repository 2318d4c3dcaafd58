"""Receive one HL7 v2 message: decode, read, apply, acknowledge, keep both.

The rules (reference §5; DESIGN "acknowledge only what is durable"):
- `AA` only after the message and all its effects are committed, in one transaction with the
  message and its ACK (messages arriving together on several connections share that transaction,
  each in a savepoint: `storage/group_commit.py`);
- `AE` (with ERR: segment, field, table 0357 code, text) for a message we understand but cannot
  apply; its effects are rolled back, the message and the AE are kept;
- `AR` for what we do not take (no readable MSH, unsupported type, event, version or processing
  id, bytes that do not fit the character set, a sender not on the allow-list);
- a resend (same MSH-3, MSH-4, MSH-10) gets the stored ACK again and is not applied twice, even
  when the two copies arrive at once (the message is kept first, on its unique key: the second
  copy's insert does nothing, and finds the first one's ACK once that commits);
- an outage (the database unreachable) answers AE 207 and keeps nothing: the sender resends.
No message content reaches the log: control ids, types, ACK codes and error codes only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mapping.hl7.ack import build_ack
from mapping.hl7.adt import MERGES, merges, patient_update
from mapping.hl7.charsets import Charset, decode
from mapping.hl7.er7 import Er7Message, split_message
from mapping.hl7.errors import (
    INTERNAL,
    NOT_ALLOWED,
    UNKNOWN_KEY,
    UNSUPPORTED_TYPE,
    AcceptCode,
    AckCode,
    Hl7Error,
)
from mapping.hl7.header import Header, check_header, read_header, wanted
from mapping.hl7.orders import OrderRules, order_message
from mapping.hl7.results import result_message
from storage.clock import utcnow
from storage.db import Database
from storage.errors import Unavailable
from storage.group_commit import GroupCommit
from storage.hl7_inbox import store as inbox
from storage.hl7_inbox.store import MessageKey
from storage.usecases.audit import Audit, AuditEvent
from storage.usecases.incoming_reports import IncomingReports
from storage.usecases.mpps import Mpps
from storage.usecases.orders import OrderRefused, Orders
from storage.usecases.outbox import ReportOutbox, new_control_id
from storage.usecases.patients import MergeRefused, Patients

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboxConfig:
    rules: OrderRules
    default_charset: Charset  # for a message without MSH-18
    application: str = "FACADE"  # our MSH-3 when the sender named no receiving application
    # "APP" or "APP^FACILITY" (MSH-3.1 / MSH-4.1) that may send; empty: anyone
    allowed_senders: Collection[str] = ()


Effect = Callable[[Session, datetime], object]


@dataclass(frozen=True)
class Answer:
    """What we answer a message: the encoded ACK, its code, the header it answers (None: the
    MSH could not be read); `resent`: the stored answer of an earlier copy."""

    ack: bytes
    code: str
    header: Header | None
    resent: bool = False


class Hl7Inbox:
    def __init__(
        self,
        db: Database,
        orders: Orders,
        config: InboxConfig,
        now: Callable[[], datetime] = utcnow,
        audit: Audit | None = None,
        *,
        mpps: Mpps | None = None,
        reports: IncomingReports | None = None,
        replies: ReportOutbox | None = None,
    ) -> None:
        """`replies`: where enhanced mode's application ACKs go (the HL7 destination named as
        the sending application, MSH-3); None: they are not sent."""
        self._db, self._orders, self._config, self._now, self._audit = db, orders, config, now, audit
        self._group = GroupCommit(db)  # messages of several connections, one commit
        self._patients = Patients(orders, mpps)
        self._reports = reports
        self._replies = replies

    def receive(self, raw: bytes, peer: str) -> bytes:
        """The encoded ACK for one message (the bytes between the MLLP start and end blocks),
        audited: who sent what kind of message and what we answered (no content). In enhanced
        mode the accept ACK, or b'' when MSH-15 does not want it."""
        answer = self._receive(raw, peer)
        if self._audit is not None:
            self._audit.record(_audit_event(answer, peer))
        header = answer.header
        accepted = _accept_code(answer.code) == "CA"
        if header is not None and header.enhanced and not wanted(header.accept_ack, success=accepted):
            return b""
        return answer.ack

    def _receive(self, raw: bytes, peer: str) -> Answer:
        now = self._now()
        charset = self._config.default_charset
        header: Header | None = None
        try:
            text, charset = decode(raw, charset)
            message = split_message(text)
            header = read_header(message)
            check_header(header)
            self._check_sender(header)
        except Hl7Error as refusal:
            return self._refuse(raw, peer, header, charset, refusal, now)
        key = MessageKey(header.sending_application, header.sending_facility, header.control_id)
        try:
            effect = self._effect(header, message, charset)
            ack = self._ack(header, "AA", charset, now)

            def work(session: Session) -> Answer:
                # kept first, with the AA it gets if it applies: a refusal rolls this back too
                stored = inbox.claim(
                    session,
                    key=key,
                    raw=raw,
                    ack=ack,
                    ack_code="AA",
                    message_type=header.kind,
                    peer=peer,
                    now=now,
                )
                if stored is not None:  # a resend, or the same message committed meanwhile elsewhere
                    return Answer(*stored, header, resent=True)
                effect(session, now)
                self._application_ack(session, header, "AA", charset, now)
                return Answer(ack, "AA", header)

            answer = self._group.transact(work)
            event = "hl7.resent" if answer.resent else "hl7.accepted"
            log.info(event, extra={"control_id": header.control_id[:32], "kind": header.kind})
            return answer
        except Hl7Error as refusal:
            return self._refuse(raw, peer, header, charset, refusal, now, key)
        except OrderRefused as exc:
            code = UNKNOWN_KEY if exc.unknown else NOT_ALLOWED
            error = Hl7Error.error(code, exc.text, segment="ORC", sequence=exc.index, field=exc.field)
            return self._refuse(raw, peer, header, charset, error, now, key)
        except MergeRefused as exc:
            error = Hl7Error.error(NOT_ALLOWED, exc.text, segment="MRG", sequence=exc.sequence, field=1)
            return self._refuse(raw, peer, header, charset, error, now, key)
        except Unavailable:
            log.warning("hl7.unavailable", extra={"control_id": header.control_id[:32], "kind": header.kind})
            unavailable = Hl7Error.error(INTERNAL, "storage unavailable; resend later", segment="MSH")
            if header.enhanced:  # not committed: CE, whatever MSH-15 says (`receive`)
                ce = build_ack(
                    header,
                    "CE",
                    control_id=uuid.uuid4().hex[:20],
                    now=now,
                    charset=charset,
                    error=unavailable,
                    application=self._config.application,
                )
                return Answer(ce, "CE", header)
            return Answer(self._ack(header, "AE", charset, now, unavailable), "AE", header)
        except Exception:
            log.exception("hl7.failed", extra={"control_id": header.control_id[:32], "kind": header.kind})
            error = Hl7Error.error(INTERNAL, "internal error; the message was not applied", segment="MSH")
            return self._refuse(raw, peer, header, charset, error, now, key)

    def _effect(self, header: Header, message: Er7Message, charset: Charset) -> Effect:
        """What the message does, read (and refused, if unreadable) before any transaction."""
        rules = self._config.rules
        if header.message_type in ("ORM", "OMI"):
            order = order_message(message, charset=charset.dicom, rules=rules)
            return lambda session, now: self._orders.apply(session, order, now)
        if header.message_type == "ORU":
            if self._reports is None:
                raise Hl7Error.reject(UNSUPPORTED_TYPE, "results (ORU) are not taken here", field=9)
            results = result_message(message, rules=rules)
            reports = self._reports
            return lambda session, now: reports.apply(session, results, now)
        if header.event in MERGES:
            pairs = merges(message, rules)

            def merge_all(session: Session, now: datetime) -> None:
                for merge in pairs:
                    self._patients.merge(session, merge, now)

            return merge_all
        update = patient_update(message, rules)
        return lambda session, now: self._patients.update(session, update, now)

    def _check_sender(self, header: Header) -> None:
        allowed = self._config.allowed_senders
        if allowed and not (
            header.sending_application in allowed
            or f"{header.sending_application}^{header.sending_facility}" in allowed
        ):
            raise Hl7Error.reject(NOT_ALLOWED, "the sending application is not allowed here", field=3)

    def _refuse(  # noqa: PLR0917
        self,
        raw: bytes,
        peer: str,
        header: Header | None,
        charset: Charset,
        refusal: Hl7Error,
        now: datetime,
        key: MessageKey | None = None,
    ) -> Answer:
        """Answer AE/AR and keep the message with that answer (a resend of a refused message gets
        the same refusal: it would fail again)."""
        ack = self._ack(header, refusal.ack, charset, now, refusal)

        def work(session: Session) -> Answer:
            if key is not None:
                stored = inbox.answered(session, key)
                if stored is not None:
                    return Answer(*stored, header, resent=True)
            kind = header.kind if header is not None else ""
            inbox.keep(
                session,
                key=key,
                raw=raw,
                ack=ack,
                ack_code=refusal.ack,
                message_type=kind,
                peer=peer,
                now=now,
            )
            if header is not None:
                self._application_ack(session, header, refusal.ack, charset, now, refusal)
            return Answer(ack, refusal.ack, header)

        try:
            answer = self._db.transact(work)
        except Exception:  # the refusal still goes out; keeping it is best effort when storage fails
            log.exception("hl7.not_kept", extra={"ack": refusal.ack, "error_code": refusal.code})
            answer = Answer(ack, refusal.ack, header)
        log.info(
            "hl7.refused",
            extra={
                "control_id": header.control_id[:32] if header else None,
                "kind": header.kind if header else None,
                "ack": refusal.ack,
                "error_code": refusal.code,
                "reason": refusal.text,
            },
        )
        return answer

    def _application_ack(  # noqa: PLR0917
        self,
        session: Session,
        header: Header,
        code: AckCode,
        charset: Charset,
        now: datetime,
        error: Hl7Error | None = None,
    ) -> None:
        """Enhanced mode: the application ACK (AA / AE) of a message we accepted (CA), as MSH-16
        asks (an empty MSH-16 reads as NE), queued in the message's transaction for the HL7
        destination named as its sending application; no such destination, none is sent."""
        if not header.enhanced or _accept_code(code) != "CA":
            return
        if not wanted(header.application_ack or "NE", success=code == "AA"):
            return
        control_id = new_control_id()
        payload = build_ack(
            header,
            code,
            control_id=control_id,
            now=now,
            charset=charset,
            error=error,
            application=self._config.application,
            conditions=("AL", "NE"),  # the sender answers our ACK with its accept ACK
        )
        queued = self._replies is not None and self._replies.enqueue_reply(
            session, header.sending_application, control_id=control_id, payload=payload, now=now
        )
        log.info(
            "hl7.application_ack" if queued else "hl7.application_ack_unroutable",
            extra={"control_id": header.control_id[:32], "kind": header.kind, "ack": code},
        )

    def _ack(
        self,
        header: Header | None,
        code: AckCode,
        charset: Charset,
        now: datetime,
        error: Hl7Error | None = None,
    ) -> bytes:
        """The ACK we answer and keep: original mode's; in enhanced mode the accept ACK, CA once
        the message is kept (applied, or refused with AE: that is the application ACK's to say),
        CR for what we do not take (an AR), with its ERR."""
        sent: AckCode | AcceptCode = code
        if header is not None and header.enhanced:
            sent = _accept_code(code)
            error = error if sent == "CR" else None
        return build_ack(
            header,
            sent,
            control_id=uuid.uuid4().hex[:20],
            now=now,
            charset=charset,
            error=error,
            application=self._config.application,
        )


_OUTCOMES = {"AA": "accepted", "AE": "error", "AR": "rejected", "CE": "failed"}


def _accept_code(code: str) -> AcceptCode:
    """Enhanced mode's accept ACK for an outcome: AR -> CR (not taken), CE (not committed) as
    it is, AA / AE -> CA (kept in safe storage)."""
    return "CR" if code == "AR" else "CE" if code == "CE" else "CA"


def _audit_event(answer: Answer, peer: str) -> AuditEvent:
    """The audit of one message: who sent it (MSH-3^MSH-4), its event, what we answered; nothing
    of the patient."""
    header = answer.header
    sender = "^".join(p for p in (header.sending_application, header.sending_facility) if p) if header else ""
    event = header.event if header is not None and header.event.isalnum() else ""
    return AuditEvent(
        source="mllp",
        action=f"hl7 {event}".strip()[:32],
        outcome=_OUTCOMES.get(answer.code, "failed"),
        client_id=sender[:64] or None,
        peer=peer[:64],
    )
