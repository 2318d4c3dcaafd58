"""Our Application Entity: what it accepts and how it behaves on the wire (PS3.7, PS3.8)."""

from __future__ import annotations

import copy
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config, build_context
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import ThreadedAssociationServer

from dicom_bridge.fast_server import FastServer
from dicom_bridge.listening import ListeningServer

VERIFICATION = "1.2.840.10008.1.1"  # Verification SOP Class (PS3.4 A.4): C-ECHO
QUERY_FIND = (  # Query/Retrieve FIND (PS3.4 C.4.1; PS3.6 A.1): Patient Root, Study Root
    "1.2.840.10008.5.1.4.1.2.1.1",
    "1.2.840.10008.5.1.4.1.2.2.1",
)
UNCOMPRESSED_LE = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]  # Explicit, Implicit VR Little Endian
MAX_CONTEXTS = 128  # presentation context ids are the odd numbers 1 to 255 (PS3.8 9.3.2.2)
QUERY_GET = ("1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3")  # C-GET (PS3.4 C.4.3)
QUERY_MOVE = ("1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.2.2")  # C-MOVE (PS3.4 C.4.2)
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND (PS3.4 K.6)
MPPS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step SOP Class (PS3.4 F.7): N-CREATE, N-SET


@dataclass(frozen=True)
class AeConfig:
    ae_title: str = "FACADE"
    max_pdu: int = 262144  # what we tell peers we can receive; bigger PDUs, fewer fragments
    allowed_calling: Sequence[str] = field(default=())  # empty: any calling AE
    require_called: bool = True  # refuse associations addressed to another AE title
    acse_timeout: float = 5.0  # ARTIM: a connection that sends no A-ASSOCIATE-RQ is closed
    network_timeout: float = 60.0  # an association idle this long is aborted
    # storage associations (C-STORE, C-ECHO) run by `dicom_bridge.fast_association`, not pynetdicom's
    # polling loops (`dicom_bridge.fast_server`); False: every association is pynetdicom's
    fast_path: bool = True


_UNCOMPRESSED = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]
_LOSSLESS = [
    RLELossless,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
]


def preferred_transfer_syntaxes() -> list[UID]:
    """Our choice when a context proposes several (pynetdicom takes the first of ours proposed):
    uncompressed first, Explicit VR before Implicit (which loses the VRs of private elements),
    then lossless compressed, then lossy and video last. Never prefer lossy: a sender holding
    uncompressed pixels that also proposed JPEG Baseline would compress them lossily for us."""
    return (
        _UNCOMPRESSED + _LOSSLESS + [ts for ts in AllTransferSyntaxes if ts not in _UNCOMPRESSED + _LOSSLESS]
    )


def storage_ae(config: AeConfig) -> AE:
    """An AE that accepts C-ECHO; C-STORE of every storage SOP class, in every transfer syntax
    pydicom can read (stored as received, never transcoded), as SCP and, for a C-GET SCU that
    proposes it, as SCU; C-FIND, C-GET and C-MOVE of the Patient Root and Study Root models,
    C-FIND of the Modality Worklist and MPPS N-CREATE / N-SET, in the uncompressed transfer
    syntaxes."""
    # Each C-STORE data set is received straight into a file (memory stays bounded for a 500 MB
    # multi-frame) whose path the handler adopts into staging: see `storage_scp`. Set here, where
    # the AE is built, not at import: the switch is module-global in pynetdicom (every AE of the
    # process receives this way once one storage AE is built), and pynetdicom reads it per message.
    # It writes into `tempfile.gettempdir()`, which we do not redirect (process-wide too): see
    # `Staging.adopt` and docs/architecture.md for what that costs when it is another file system.
    _config.STORE_RECV_CHUNKED_DATASET = True
    ae = _StorageAE(ae_title=config.ae_title)
    ae.fast_path = config.fast_path
    ae.maximum_pdu_size = config.max_pdu
    # Associations are limited by `dicom_bridge.admission`. pynetdicom's own limit counts every
    # TCP connection, associated or not (idle sockets would lock senders out): never reached.
    ae.maximum_associations = 1 << 16
    ae.acse_timeout = config.acse_timeout
    ae.network_timeout = config.network_timeout
    ae.require_called_aet = config.require_called
    if config.allowed_calling:
        ae.require_calling_aet = list(config.allowed_calling)
    syntaxes = [str(ts) for ts in preferred_transfer_syntaxes()]
    contexts = [build_context(VERIFICATION, syntaxes[:3])]
    contexts += [
        build_context(model, [str(ts) for ts in _UNCOMPRESSED])
        for model in (*QUERY_FIND, *QUERY_GET, *QUERY_MOVE, WORKLIST_FIND)
    ]
    contexts.append(build_context(MPPS, [str(ts) for ts in _UNCOMPRESSED]))
    ae.supported_contexts = contexts
    for context in AllStoragePresentationContexts:
        # SCP/SCU role selection (PS3.7 D.3.3.4): a C-GET SCU proposes to be the storage SCP of
        # its association; we accept, and stay the storage SCP of everyone who does not propose.
        ae.add_supported_context(str(context.abstract_syntax), syntaxes, scu_role=True, scp_role=True)
    return ae


class _StorageAE(AE):
    """pynetdicom's AE whose threaded server (`start_server(block=False)`) is `FastServer`
    (`ListeningServer` when `fast_path` is off), on the `listening` socket when one is set:
    `make_server` takes the server class and its keywords as parameters (public API)."""

    listening: socket.socket | None = None
    fast_path = True

    def make_server(  # noqa: PLR0917 (pynetdicom's signature, overridden)
        self,
        address: tuple[str, int] | tuple[str, int, int, int],
        ae_title: str | None = None,
        contexts: list[PresentationContext] | None = None,
        ssl_context: Any = None,
        evt_handlers: list[EventHandlerType] | None = None,
        server_class: Any = None,
        **kwargs: Any,
    ) -> Any:
        if server_class is ThreadedAssociationServer:
            server_class = FastServer if self.fast_path else ListeningServer
            kwargs["listening"] = self.listening
        return super().make_server(
            address, ae_title, contexts, ssl_context, evt_handlers, server_class=server_class, **kwargs
        )


def start_server(
    ae: AE,
    address: tuple[str, int],
    handlers: list[EventHandlerType],
    *,
    listening: socket.socket | None = None,
) -> ThreadedAssociationServer:
    """`ae` (built by `storage_ae`) listening on `address`, or on the socket `listening` (bound
    and listening already), in its own threads, each association copying the accepted contexts
    cheaply (`_ContextsCopiedCheaply`), every accepted connection with TCP_NODELAY."""
    if listening is not None:
        assert isinstance(ae, _StorageAE)
        ae.listening = listening
    server = ae.start_server(address, block=False, evt_handlers=handlers)
    assert server is not None  # block=False returns the running server
    # Accepted sockets inherit it (Linux). pynetdicom sends a response as two PDUs (command, data
    # set): without it Nagle holds the second until the peer's delayed ACK, ~40 ms per response.
    if server.socket is not None:
        server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.contexts = _ContextsCopiedCheaply(server.contexts)
    return server


class _ContextsCopiedCheaply(list[PresentationContext]):
    """pynetdicom deep-copies the server's presentation contexts for every association it accepts
    (`transport.RequestHandler._create_association`): for our ~175 contexts of ~40 transfer
    syntaxes each, that took ~80 ms of CPU per association, ten times the rest of associating
    (and a C-FIND from a workstation is one association). A copy of each context with its own
    transfer syntax list is what an association may change; the UIDs are immutable strings."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        copies = []
        for context in self:
            twin = copy.copy(context)
            twin._transfer_syntax = list(context._transfer_syntax)
            copies.append(twin)
        return copies


def no_delay(event: Event) -> None:
    """EVT_CONN_OPEN handler for associations we request (C-MOVE's, `facade remote`'s): TCP_NODELAY
    on the socket pynetdicom connected (it sets none), for the reason given in `start_server`."""
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def sending_contexts(
    syntaxes_by_class: Mapping[str, Sequence[str]],
    native: Sequence[str],
    *,
    then: Sequence[str] = (),
    room: int = MAX_CONTEXTS,
) -> list[PresentationContext]:
    """Contexts for storage where we send (C-MOVE's association, or our C-GET where the peer
    sends to us): per SOP class one context of the `native` syntaxes, then one context for each
    other syntax of the class, every class's before the next syntax, then one for each syntax of
    `then` (ones we can convert into: C-MOVE's lossless encodings), while `room` lasts. An
    acceptor takes one syntax per context, so an instance goes in a compressed syntax only
    through a context of its own."""
    classes = list(syntaxes_by_class)[:room]
    contexts = [build_context(sop_class, list(native)) for sop_class in classes]
    others = dict.fromkeys(ts for c in classes for ts in syntaxes_by_class[c] if ts not in native)
    for syntax in [*others, *(ts for ts in then if ts not in native and ts not in others)]:
        for sop_class in classes:
            wanted = syntax in syntaxes_by_class[sop_class] or syntax in then
            if wanted and len(contexts) < room:
                contexts.append(build_context(sop_class, [syntax]))
    return contexts
