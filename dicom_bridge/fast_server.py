"""The association server: pynetdicom's, with the storage and query associations taken off its
hands.

pynetdicom 3.0.4 polls (its DUL loop and association thread sleep 1 ms between looks, so a
C-STORE round trip crosses three such hand-offs). `FastServer` is its threaded server
(`AE.make_server(..., server_class=...)`, a `socketserver.TCPServer`; `ListeningServer`'s, for
the serving processes' shared socket) with the socketserver hook
`process_request_thread` overridden: in the connection's thread it peeks (MSG_PEEK, nothing is
consumed) at the A-ASSOCIATE-RQ. An association that proposes only storage SOP classes, the C-FIND ones
we answer (Patient Root, Study Root, Modality Worklist) and Verification, asks us for no SCU
role, and meets only handlers we reproduce, is negotiated here with pynetdicom's own PDU classes
and `negotiate_as_acceptor` and then run by `dicom_bridge.fast_association`; anything else
(C-GET, C-MOVE, MPPS, an association that also proposes one of those, bytes that are no
A-ASSOCIATE-RQ) goes to pynetdicom with the socket untouched.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any, cast

from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts, evt
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import negotiate_as_acceptor

from dicom_bridge import storage_scp
from dicom_bridge.admission import REJECTION, Admission
from dicom_bridge.association_audit import AssociationAudit, store_counts
from dicom_bridge.fast_association import Accepted, FastAssociation
from dicom_bridge.find_responses import FindResponder
from dicom_bridge.get_scp import GetScp
from dicom_bridge.listening import ListeningServer
from dicom_bridge.storage_scp import StorageScp, log_association

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"  # DICOM Application Context Name (PS3.7 A.2.1)
_STORAGE = frozenset(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)
_REJECT_AFTER = 0.005  # seconds before an A-ASSOCIATE-RJ goes out (see `_reject`)
_ARTIM_DEFAULT = 30.0  # seconds, pynetdicom's ACSE timeout when the AE sets none
_MAX_REQUEST = 1 << 16  # a bigger A-ASSOCIATE-RQ (hundreds of contexts) goes to pynetdicom
_REMEMBERED = 64  # A-ASSOCIATE-RQs remembered (all forgotten when there are more)
# Negotiation handlers we answer as pynetdicom's defaults do; bound to anything else, pynetdicom runs
_DEFAULTS_ONLY = (
    evt.EVT_ASYNC_OPS,
    evt.EVT_USER_ID,
    evt.EVT_SOP_EXTENDED,
    evt.EVT_SOP_COMMON,
    evt.EVT_C_ECHO,
)


@dataclass(frozen=True)
class Participants:
    """Our objects among the server's handlers, whose work the fast path does itself."""

    store: StorageScp | None
    audit: AssociationAudit | None
    admission: Admission | None
    find: FindResponder | None = None
    get: GetScp | None = None


class FastServer(ListeningServer):
    """pynetdicom's threaded association server (on a listening socket it is handed, or binds),
    storage and query associations on the fast path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running: set[FastAssociation] = set()
        self._running_lock = threading.Lock()
        self._stopping = False
        self.fast_associations = 0  # how many took the fast path (tests, diagnostics)
        self._known: tuple[Participants | None, frozenset[str]] | None = None  # see `_participants`
        # A-ASSOCIATE-RQ bytes -> what they were decoded to and the answer they were negotiated
        # (see `_request` and `_negotiated`), forgotten with `_known`
        self._requests: dict[bytes, A_ASSOCIATE | None] = {}
        self._answers: dict[bytes, tuple[Accepted, bytes]] = {}

    def bind(self, *args: Any, **kwargs: Any) -> None:
        self._known = None
        self._requests, self._answers = {}, {}
        super().bind(*args, **kwargs)

    def unbind(self, *args: Any, **kwargs: Any) -> None:
        self._known = None
        self._requests, self._answers = {}, {}
        super().unbind(*args, **kwargs)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """socketserver's per-connection hook, in the connection's own thread."""
        sock = cast(socket.socket, request)
        participants = self._participants()
        try:
            raw = _peek_request(sock, self.ae.acse_timeout) if participants and not self.ssl_context else b""
        except OSError:
            raw = None
        if raw is None:  # no A-ASSOCIATE-RQ within the ARTIM timeout: closed, as pynetdicom does
            self.shutdown_request(request)
            return
        if raw == _NOT_DICOM:  # AA-1 (PS3.8 9.2.3): A-ABORT; then closed at once, not after ARTIM
            with suppress(OSError):
                sock.sendall(_ABORT_PDU)
            self.shutdown_request(request)
            return
        primitive = self._request(raw, participants) if raw else None
        if primitive is None or participants is None:
            super().process_request_thread(request, client_address)
            return
        try:
            sock.recv(len(raw), socket.MSG_WAITALL)  # consume what was peeked at
            self._associate(sock, str(client_address[0]), raw, primitive, participants)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def shutdown(self) -> None:
        """Abort the fast-path associations under way (and any that starts from now on), then
        pynetdicom's: stop accepting, close, join the connection threads (which have ended)."""
        with self._running_lock:
            self._stopping = True
            running = list(self._running)
        for association in running:
            association.abort()
        super().shutdown()

    def _participants(self) -> Participants | None:
        """Our handler objects, or None when a handler is bound that the fast path would skip;
        worked out once per set of handlers (binding or unbinding one forgets it)."""
        known = self._known
        if known is None:
            known = self._known = (
                self._find_participants(),
                frozenset(str(cx.abstract_syntax) for cx in self.contexts),
            )
        return known[0]

    def supported(self) -> frozenset[str]:
        """The abstract syntaxes of the server's contexts."""
        self._participants()
        assert self._known is not None
        return self._known[1]

    def _find_participants(self) -> Participants | None:
        found: dict[type, object] = {}
        known: tuple[Callable[..., Any], ...] = (storage_scp.discard_partial, storage_scp.on_association)
        for event in self.get_events():
            handlers = self.get_handlers(event)
            if event.is_intervention:
                handler = cast(tuple[Callable[..., Any], Any], handlers)[0]
                owner = getattr(handler, "__self__", None)
                if event == evt.EVT_C_STORE and isinstance(owner, StorageScp):
                    found[StorageScp] = owner
                elif event == evt.EVT_C_FIND and isinstance(owner, FindResponder):
                    found[FindResponder] = owner
                elif event == evt.EVT_C_GET and isinstance(owner, GetScp):
                    found[GetScp] = owner
                elif event in _DEFAULTS_ONLY and handler is not evt.get_default_handler(event):
                    return None
                continue
            for handler, _ in cast(list[tuple[Callable[..., Any], Any]], handlers):
                owner = getattr(handler, "__self__", None)
                if isinstance(owner, (StorageScp, AssociationAudit, Admission)):
                    found[type(owner)] = owner
                elif handler not in known and not getattr(handler, "__module__", "").startswith("pynetdicom"):
                    return None
        return Participants(
            store=cast(StorageScp | None, found.get(StorageScp)),
            audit=cast(AssociationAudit | None, found.get(AssociationAudit)),
            admission=cast(Admission | None, found.get(Admission)),
            find=cast(FindResponder | None, found.get(FindResponder)),
            get=cast(GetScp | None, found.get(GetScp)),
        )

    def _request(self, raw: bytes, who: Participants | None) -> A_ASSOCIATE | None:
        """`_fast_request`, remembered by the request's bytes: a workstation or modality sends
        the same A-ASSOCIATE-RQ each time, and decoding it with pynetdicom's PDU classes and
        negotiating its contexts was a third of a small C-FIND's time."""
        if raw in self._requests:
            return self._requests[raw]
        primitive = _fast_request(raw, self, who)
        if len(self._requests) >= _REMEMBERED:
            self._requests.clear()
        self._requests[raw] = primitive
        return primitive

    def _negotiated(self, raw: bytes, rq: A_ASSOCIATE, peer: str) -> tuple[Accepted, bytes]:
        """`_negotiate`, remembered by the request's bytes (the answer depends on them and on
        the server's contexts and settings alone; the peer's address is put in each time)."""
        known = self._answers.get(raw)
        if known is None:
            known = self._negotiate(rq, peer)
            if len(self._answers) >= _REMEMBERED:
                self._answers.clear()
            self._answers[raw] = known
        accepted, ac = known
        return (accepted if accepted.peer == peer else replace(accepted, peer=peer)), ac

    def _associate(
        self, sock: socket.socket, peer: str, raw: bytes, rq: A_ASSOCIATE, who: Participants
    ) -> None:
        calling = str(rq.calling_ae_title)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if who.admission is not None and not who.admission.enter(self.ae, peer, calling):
            self._reject(sock, REJECTION, calling, peer, who)
            return
        try:
            rejection = self._ae_title_rejection(rq)
            if rejection is not None:
                self._reject(sock, rejection, calling, peer, who)
                return
            accepted, ac = self._negotiated(raw, rq, peer)
            try:
                sock.sendall(ac)
            except OSError:  # the peer went away before our answer
                log_association("aborted", calling, peer)
                if who.audit is not None:
                    who.audit.record("aborted", calling, peer, store_counts())
                return
            log_association("accepted", calling, peer)
            association = FastAssociation(
                sock, accepted, who.store, self.ae.network_timeout, find=who.find, get=who.get
            )
            with self._running_lock:
                self._running.add(association)
                self.fast_associations += 1
                if self._stopping:
                    association.abort()
            try:
                outcome = association.run()
            finally:
                with self._running_lock:
                    self._running.discard(association)
            if outcome == "released":
                _await_close(sock, self.ae.acse_timeout)
            if who.audit is not None:
                who.audit.record(outcome, calling, peer, association.counts)
        finally:
            if who.admission is not None:
                who.admission.leave(peer)

    def _ae_title_rejection(self, rq: A_ASSOCIATE) -> tuple[int, int, int] | None:
        """pynetdicom's checks, in its order (`acse._negotiate_as_acceptor`): the called AE title
        wins over the calling one."""
        rejection = None
        allowed = [s.strip() for s in self.ae.require_calling_aet]
        if self.ae.require_calling_aet and rq.calling_ae_title not in allowed:
            rejection = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE not recognized
        if self.ae.require_called_aet and rq.called_ae_title != self.ae_title.strip():
            rejection = (0x01, 0x01, 0x07)  # called AE title not recognized
        return rejection

    def _reject(
        self, sock: socket.socket, rsd: tuple[int, int, int], calling: str, peer: str, who: Participants
    ) -> None:
        pdu = A_ASSOCIATE_RJ()
        pdu.result, pdu.source, pdu.reason_diagnostic = rsd
        # pynetdicom 3.0.4's requestor (its polling loops) takes an A-ASSOCIATE-RJ that arrives
        # within a millisecond or two of its request for an abort: 4 in 300 here, none once the
        # answer waited 3 ms. A refusal is rare; it waits a little, as pynetdicom's acceptor does.
        time.sleep(_REJECT_AFTER)
        with suppress(OSError):
            sock.sendall(pdu.encode())
        _await_close(sock, self.ae.acse_timeout)
        log_association("rejected", calling, peer)
        if who.audit is not None:
            who.audit.record("rejected", calling, peer, store_counts())

    def _negotiate(self, rq: A_ASSOCIATE, peer: str) -> tuple[Accepted, bytes]:
        """The A-ASSOCIATE-AC pynetdicom would send: contexts by `negotiate_as_acceptor` over the
        AE's contexts (our transfer syntax preference order), no asynchronous operations window
        item (none is supported: the peer keeps one operation outstanding), our max PDU and
        implementation class UID / version name."""
        roles = {
            UID(item.sop_class_uid): (item.scu_role, item.scp_role)
            for item in rq.user_information
            if isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.sop_class_uid
        }
        results, ac_roles = negotiate_as_acceptor(
            rq.presentation_context_definition_list, self.contexts, roles
        )
        peer_max = next(
            (
                i.maximum_length_received
                for i in rq.user_information
                if isinstance(i, MaximumLengthNotification)
            ),
            0,
        )
        ae = self.ae
        max_length = MaximumLengthNotification()
        max_length.maximum_length_received = ae.maximum_pdu_size
        class_uid = ImplementationClassUIDNotification()
        class_uid.implementation_class_uid = ae.implementation_class_uid
        items: list[Any] = [max_length, class_uid]
        if ae.implementation_version_name:
            version = ImplementationVersionNameNotification()
            version.implementation_version_name = ae.implementation_version_name
            items.append(version)
        primitive = A_ASSOCIATE()
        primitive.application_context_name = UID(APPLICATION_CONTEXT)
        primitive.calling_ae_title = rq.calling_ae_title
        primitive.called_ae_title = rq.called_ae_title
        primitive.result = 0x00
        primitive.result_source = 0x01
        # pynetdicom's order (`acse.send_accept`): the accepted by id, then the refused as proposed
        primitive.presentation_context_definition_results_list = sorted(
            (cx for cx in results if cx.result == 0x00), key=lambda cx: int(cx.context_id or 0)
        ) + [cx for cx in results if cx.result != 0x00]
        primitive.user_information = items + list(ac_roles)
        ac = A_ASSOCIATE_AC()
        ac.from_primitive(primitive)
        accepted = Accepted(
            calling_ae=str(rq.calling_ae_title),
            peer=peer,
            contexts={
                int(cx.context_id): (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in results
                if cx.result == 0x00 and cx.context_id is not None
            },
            sending=frozenset(
                int(cx.context_id) for cx in results if cx.result == 0x00 and cx.context_id and cx.as_scu
            ),
            our_max_pdu=ae.maximum_pdu_size,
            peer_max_pdu=int(peer_max or 0),
            implementation_uid=str(ae.implementation_class_uid),
            implementation_version=str(ae.implementation_version_name or ""),
        )
        return accepted, ac.encode()


_NOT_DICOM = b"\xff"  # what `_peek_request` says of a first byte that is no PDU type at all
_ABORT_PDU = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # A-ABORT, service-user, no reason given


def _peek_request(sock: socket.socket, timeout: float | None) -> bytes | None:
    """The first PDU's bytes, left in the socket (MSG_PEEK): b"" when it is another PDU or an
    A-ASSOCIATE-RQ too long for us (pynetdicom answers those), `_NOT_DICOM` when its first byte is
    no PDU type, None when none came within the ARTIM `timeout`. Blocking reads, the kernel
    holding the timeout (SO_RCVTIMEO): nothing spins while the peer is slow."""
    deadline = time.monotonic() + (timeout if timeout is not None else 30.0)
    sock.settimeout(None)  # blocking (as accepted): MSG_WAITALL waits, SO_RCVTIMEO bounds it
    try:
        head = _peek(sock, 6, deadline)
        if head is None:
            return None
        kind, length = struct.unpack(">BxI", head)
        if not 0x01 <= kind <= 0x07:
            return _NOT_DICOM
        if kind != 0x01 or length > _MAX_REQUEST:
            return b""
        return _peek(sock, 6 + length, deadline)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))


def _peek(sock: socket.socket, n: int, deadline: float) -> bytes | None:
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(left), int(left % 1 * 1e6)))
    try:
        data = sock.recv(n, socket.MSG_PEEK | socket.MSG_WAITALL)
    except (BlockingIOError, TimeoutError):
        return None
    return data if len(data) == n else None


def _fast_request(raw: bytes, server: FastServer, who: Participants | None) -> A_ASSOCIATE | None:
    """The decoded A-ASSOCIATE-RQ when the fast path can run the association, else None."""
    if who is None:
        return None
    try:
        pdu = A_ASSOCIATE_RQ()
        pdu.decode(raw)
        rq = pdu.to_primitive()
    except Exception:  # malformed: pynetdicom answers it as it always has
        return None
    supported = server.supported()
    for context in rq.presentation_context_definition_list:
        syntax = str(context.abstract_syntax)
        if syntax not in supported:
            continue  # refused in negotiation, as pynetdicom refuses it (getscu proposes retired classes)
        stores = syntax in _STORAGE and (who.store is not None or who.get is not None)
        finds = who.find is not None and who.find.answers(syntax)
        gets = who.get is not None and who.get.answers(syntax)
        if syntax != VERIFICATION and not stores and not finds and not gets:
            return None
    for item in rq.user_information:
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.scp_role and who.get is None:
            return None  # the peer would be the storage SCP of a C-GET we do not answer here
    return rq


def _await_close(sock: socket.socket, timeout: float | None) -> None:
    """After an A-ASSOCIATE-RJ or an A-RELEASE-RP it is the requestor that closes the connection
    (PS3.8 9.2, state Sta13, bounded by the ARTIM timer), as pynetdicom's acceptor waits for: a
    requestor that finds the connection closed before it read our answer may report an abort."""
    deadline = time.monotonic() + (timeout if timeout is not None else _ARTIM_DEFAULT)
    with suppress(OSError):
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(4096):
                return
