"""C-FIND on the facade's own association path (PS3.4 C.4.1, K.4; PS3.7 9.1.2): the identifier
read, `FindScp.respond` (the one pynetdicom's EVT_C_FIND handler calls too) asked, each response
sent as it comes, in pynetdicom's order and encoding (the identifier in the context's transfer
syntax). The responses go out in batches (`_BATCH` bytes, each response's command and identifier
in one PDU when they fit), with the final one behind the last batch; after each batch, what the
peer sent meanwhile is read without waiting, for its C-CANCEL (`CancelWatch`), checked before
each response."""

from __future__ import annotations

import logging
from contextlib import closing
from typing import TYPE_CHECKING

from pydicom import Dataset
from pydicom.uid import UID

from dicom_bridge import dimse_command as dimse
from dicom_bridge.find_responses import PENDING, FindRequest, FindResponder
from mapping.dicom.find_identifier import Identifier
from mapping.dicom.frozen import decode, encoded

if TYPE_CHECKING:
    from dicom_bridge.fast_association import FastAssociation

log = logging.getLogger(__name__)

_PENDING = (PENDING, 0xFF01)
UNENCODABLE = 0xC312  # pynetdicom's status for a response identifier it could not encode
# bytes of responses sent at a time: one system call and a few TCP segments for ~100 matches, the
# first of them going out before the rest are written (the answer is read a page at a time)
_BATCH = 1 << 15


def answer_find(
    association: FastAssociation, find: FindResponder, context_id: int, request: dimse.Command
) -> None:
    abstract_syntax, transfer_syntax = association.accepted.contexts[context_id]
    syntax = UID(transfer_syntax)
    identifier = association.read_data_set(context_id, request)
    watch = association.cancel_watch(request.message_id)

    def read() -> Dataset:
        if identifier is None:
            raise ValueError("the C-FIND request has no identifier")
        return decode(identifier, syntax)

    def rsp(status: int, comment: str | None = None, *, has_data_set: bool = False) -> bytes:
        return dimse.response(
            dimse.C_FIND_RSP,
            request.message_id,
            status,
            sop_class_uid=request.affected_sop_class_uid,
            error_comment=comment,
            has_data_set=has_data_set,
        )

    accepted = association.accepted
    question = FindRequest(abstract_syntax, accepted.calling_ae, accepted.peer, read, watch)
    pending = {code: rsp(code, has_data_set=True) for code in _PENDING}  # the same for every match
    out = bytearray()  # responses not sent yet: sent together, up to `_BATCH` bytes at a time
    with closing(find.respond(question)) as responses:
        for status, match in responses:
            watch.check()
            code, comment = status_of(status)
            if code in _PENDING and match is not None:
                data = encoded_or_empty(match, syntax)
                if data:
                    out += association.message(context_id, pending[code], data)
                    association.count("found")
                    if len(out) >= _BATCH:
                        association.send_bytes(out)
                        out.clear()
                    continue
                log.error("c_find.unencodable", extra={"peer": accepted.peer})
                code, comment = UNENCODABLE, "a response identifier could not be encoded"
            association.send_bytes(out + association.message(context_id, rsp(code, comment)))
            association.count("queries")
            return


def encoded_or_empty(match: Dataset | Identifier, syntax: UID) -> bytes:
    """`match` in the context's transfer syntax; b"" when it cannot be written."""
    try:
        return match.encoded(syntax) if isinstance(match, Identifier) else encoded(match, syntax)
    except Exception:
        return b""


def status_of(status: int | Dataset) -> tuple[int, str | None]:
    """A handler's status (a code, or a Dataset with an Error Comment) as code and comment."""
    if isinstance(status, int):
        return status, None
    return int(status.Status), str(status.get("ErrorComment") or "") or None
