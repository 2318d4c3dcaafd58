"""C-GET on the facade's own association path (PS3.4 C.4.3, PS3.7 9.1.3): the identifier's
unique keys name the instances (`sub_operations.instances_named`, as pynetdicom's handler asks),
and each goes to the requestor as a C-STORE sub-operation on the same association, its response
awaited before the next; a pending C-GET-RSP with the counts after each, the final one after the
last (0x0000; 0xB000 when some failed or warned; 0xA702 when all failed; 0xFE00 on C-CANCEL,
checked before each sub-operation), as pynetdicom's Query/Retrieve service class answers. Each
pending response goes out in one write with the next C-STORE request (or the final response):
the requestor reads both at once, and a sub-operation costs one round trip. That request is made
ready (its data set read, up to 1 MiB, its PDUs built) while the peer stores the one before.

Which context and transfer syntax an instance goes in is `sub_operations.sending`, as on
pynetdicom's path: as stored, its file's data set streamed as it is read, no decode; else decoded
or re-encoded into an uncompressed syntax; else encoded into a lossless compressed one. When there
is no way, or its file cannot be read, decoded or encoded, it is a failed sub-operation, its UID
in the Failed SOP Instance UID List.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydicom import Dataset
from pydicom.uid import UID

from dicom_bridge import dimse_command as dimse
from dicom_bridge.get_scp import GET_MODELS, GetScp
from dicom_bridge.sub_operations import UNABLE_TO_PROCESS, Sending, instances_named, sending
from mapping.dicom.frozen import decode, encode
from mapping.dicom.query_keys import Model
from storage.errors import DomainError
from storage.usecases.query import Match
from storage.usecases.retrieve import CannotTranscode, Retrieve, Way

if TYPE_CHECKING:
    from dicom_bridge.fast_association import CancelWatch, FastAssociation

log = logging.getLogger(__name__)

PENDING, CANCEL, SUCCESS, WARNING, NONE_SENT = 0xFF00, 0xFE00, 0x0000, 0xB000, 0xA702
_STORE_WARNINGS = (0xB000, 0xB006, 0xB007)  # PS3.4 B.2.3: stored, with a warning
_PREFETCH = 1 << 20  # bytes of the next instance's data set read ahead; a bigger one is streamed


class _Tally:
    def __init__(self, total: int) -> None:
        self.remaining, self.completed, self.failed, self.warning = total, 0, 0, 0
        self.failed_uids: list[str] = []
        self.reported = False  # a pending response went out

    def counts(self, status: int) -> dimse.SubOperations:
        """Remaining is in pending and cancel responses, and (pynetdicom reuses its response) in
        a final one after pending ones."""
        shown = status in (PENDING, CANCEL) or self.reported
        return dimse.SubOperations(
            self.remaining if shown else None, self.completed, self.failed, self.warning
        )

    def final_status(self) -> int:
        if not self.failed and not self.warning:
            return SUCCESS
        return NONE_SENT if not self.completed and not self.warning else WARNING


def answer_get(association: FastAssociation, get: GetScp, context_id: int, request: dimse.Command) -> None:
    started = time.perf_counter()
    abstract_syntax, transfer_syntax = association.accepted.contexts[context_id]
    syntax = UID(transfer_syntax)
    facts: dict[str, object] = {
        "calling_ae": association.accepted.calling_ae,
        "peer": association.accepted.peer,
    }
    identifier = association.read_data_set(context_id, request)
    watch = association.cancel_watch(request.message_id)

    def rsp(status: int, tally: _Tally, comment: str | None = None) -> bytes:
        return dimse.response(
            dimse.C_GET_RSP,
            request.message_id,
            status,
            sop_class_uid=request.affected_sop_class_uid,
            error_comment=comment,
            has_data_set=status not in (SUCCESS, PENDING),
            sub_operations=tally.counts(status),
        )

    def finish(status: int, tally: _Tally, comment: str | None = None) -> None:
        failed_list = b""
        if status != SUCCESS:
            listing = Dataset()
            listing.FailedSOPInstanceUIDList = tally.failed_uids
            failed_list = encode(listing, syntax)
        association.send(context_id, rsp(status, tally, comment), failed_list)  # the deferred first
        association.count("retrieves")
        association.count("retrieved", tally.completed + tally.warning)
        association.count("not_retrieved", tally.failed)

    instances, refusal = _instances(get, GET_MODELS.get(abstract_syntax, "study"), identifier, syntax)
    if refusal is not None:
        log.warning("c_get.refused", extra=facts | {"status": refusal[0], "reason": refusal[1]})
        tally = _Tally(0)  # as pynetdicom: one sub-operation announced, counted failed
        tally.failed = 1
        finish(refusal[0], tally, refusal[1])
        return
    tally = _Tally(len(instances))
    if not instances:
        finish(SUCCESS, tally)
        return
    message_id = request.message_id
    prepare = _preparer(association, get.retrieve)
    following = prepare(instances[0], message_id % 65535 + 1)
    for at, record in enumerate(instances):
        if watch():
            watch.check()
            log.info("c_get.cancelled", extra=facts | {"sent": tally.completed, "failed": tally.failed})
            finish(CANCEL, tally)
            return
        message_id = message_id % 65535 + 1
        sent, following = _sent(following, record), None  # let its bytes go before the next's come
        # the next C-STORE is read and written while the peer stores this one
        following = prepare(instances[at + 1], message_id % 65535 + 1) if at + 1 < len(instances) else None
        status = _store_response(association, message_id, watch) if sent else None
        tally.remaining -= 1
        if status is None or not (status == SUCCESS or status in _STORE_WARNINGS):
            tally.failed += 1
            tally.failed_uids.append(str(record["sop_uid"]))
        elif status == SUCCESS:
            tally.completed += 1
        else:
            tally.warning += 1
        # sent with the next sub-operation's C-STORE (or the final response): one write for both
        association.defer(association.message(context_id, rsp(PENDING, tally)))
        tally.reported = True
    ms = round((time.perf_counter() - started) * 1000, 2)
    log.info(
        "c_get.done",
        extra=facts | {"sent": tally.completed + tally.warning, "failed": tally.failed, "ms": ms},
    )
    finish(tally.final_status(), tally)


def _instances(
    get: GetScp, model: Model, identifier: bytes | None, syntax: UID
) -> tuple[list[Match], tuple[int, str] | None]:
    if identifier is None:
        return [], (UNABLE_TO_PROCESS, "the C-GET request has no identifier")
    try:
        ds = decode(identifier, syntax)
    except Exception:
        return [], (UNABLE_TO_PROCESS, "the identifier cannot be decoded")
    return instances_named(get.query, model, ds)


Send = Callable[[], None]  # a C-STORE request ready to go (its command and data set)


def _preparer(association: FastAssociation, retrieve: Retrieve) -> Callable[[Match, int], Send | None]:
    """The sub-operation of an instance, made ready before its turn: its C-STORE request's PDUs
    built, its data set read (up to `_PREFETCH` bytes; a bigger one is streamed from its file
    when sent), so that when the peer's C-STORE response comes only a write is left to do. None
    when it cannot be sent (no context for it, its file gone or undecodable)."""
    choose = _chooser(association)

    def prepare(record: Match, message_id: int) -> Send | None:
        choice = choose(record)
        if choice is None:
            return None
        context_id, blob = choice.context_id, str(record["blob_key"])
        sop_class, sop_instance = str(record["sop_class_uid"]), str(record["sop_uid"])
        command = dimse.request(dimse.C_STORE_RQ, sop_class, message_id, sop_instance_uid=sop_instance)
        try:
            if choice.way is Way.AS_STORED:
                stored = retrieve.stored_data_set_bytes(blob, _PREFETCH)
                if stored is None:  # big (or empty): from its file, as it is read
                    return lambda: _stream(association, retrieve, blob, context_id, command)
                data = stored
            else:
                data = retrieve.data_set_bytes(blob, choice.syntax)
        except (DomainError, CannotTranscode) as exc:
            _failed(record, exc)
            return None
        message = association.message(context_id, command, data)
        return lambda: association.send_bytes(message)

    return prepare


def _stream(
    association: FastAssociation, retrieve: Retrieve, blob: str, context_id: int, command: bytes
) -> None:
    with retrieve.stored_data_set(blob) as data_set:
        association.send_stream(context_id, command, data_set)


def _sent(send: Send | None, record: Match) -> bool:
    """Send a prepared C-STORE request; False when there was none, or its file went meanwhile."""
    if send is None:
        return False
    try:
        send()
    except (DomainError, CannotTranscode) as exc:
        _failed(record, exc)
        return False
    return True


def _failed(record: Match, exc: Exception) -> None:
    why = {"sop_instance_uid": record["sop_uid"], "error": type(exc).__name__}
    log.warning("retrieve.instance_failed", extra=why)


def _store_response(association: FastAssociation, message_id: int, watch: CancelWatch) -> int | None:
    """The status of the peer's C-STORE response to `message_id`."""
    while True:
        answer = association.next_command()
        if answer.field == dimse.C_STORE_RSP and answer.responding_to == message_id:
            return answer.status
        watch.take(answer)  # a C-CANCEL (acted on before the next sub-operation), else the end


def _chooser(association: FastAssociation) -> Callable[[Match], Sending | None]:
    """`_context_for`, worked out once per SOP class and stored transfer syntax of a retrieve."""
    known: dict[tuple[str, str], Sending | None] = {}

    def choose(record: Match) -> Sending | None:
        kind = (str(record["sop_class_uid"]), str(record["transfer_syntax"]))
        if kind not in known:
            known[kind] = _context_for(association, record)
        return known[kind]

    return choose


def _context_for(association: FastAssociation, record: Match) -> Sending | None:
    """`sub_operations.sending` over the contexts this association accepted with us as SCU."""
    accepted = association.accepted
    contexts = [
        (cid, abstract, syntax)
        for cid, (abstract, syntax) in accepted.contexts.items()
        if cid in accepted.sending
    ]
    return sending(record, contexts)
