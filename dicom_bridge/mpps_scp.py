"""Modality Performed Procedure Step SCP (PS3.4 F.7; IHE RAD-6 / RAD-7): N-CREATE and N-SET ->
the MPPS use case, answered after its transaction committed; N-GET (PS3.7 10.1.2) answers a
step as the last N-SET left it, to whoever asks on an MPPS association (pynetdicom routes every
N-* request on the MPPS presentation context to its Procedure Step service class, which calls
the handler bound to its event: negotiating the SOP class is all there is to offer).

Statuses (PS3.4 F.7.2.1.2 / F.7.2.2.2, PS3.7 C):
- 0x0000 success;
- 0x0120 missing attribute: an N-CREATE without a Type 1 attribute we rely on (PPS Status,
  Scheduled Step Attributes Sequence, PPS Start Date / Time);
- 0x0121 missing attribute value: such an attribute present but empty, and an N-SET to COMPLETED
  or DISCONTINUED while PPS End Date or End Time has no value (their Final State requirement:
  the N-CREATE sent them empty, Type 2, so the attribute exists and lacks its value; 0x0120 is
  not an N-SET status, PS3.7 10.1.3);
- 0x0106 invalid attribute value: an N-CREATE whose status is not IN PROGRESS, an N-SET to a
  status other than IN PROGRESS, COMPLETED or DISCONTINUED;
- 0x0111 duplicate SOP instance: an N-CREATE of a SOP Instance UID created before;
- 0x0112 no such object instance: an N-SET or N-GET of a SOP Instance UID never created;
- 0x0118 no such SOP class: an N-GET naming another SOP class than MPPS;
- 0x0107 attribute list error (a warning of N-GET): an Attribute Identifier List naming a tag
  that is no attribute we know (a private or unknown one): the others are returned;
- 0x0117 invalid object instance: a SOP Instance UID that is not a UID;
- 0x0110 processing failure: an N-SET after COMPLETED or DISCONTINUED, with Error ID 0xA710 and
  the comment "Performed Procedure Step Object may no longer be updated" (F.7.2.2.2); also a
  data set that cannot be decoded, the database unavailable, and our own failures.
Each failure carries an Error Comment saying which attribute, no patient data.
"""

from __future__ import annotations

import logging
import uuid
from typing import cast

from pydicom import Dataset
from pydicom.tag import Tag
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_CREATE, N_GET, N_SET
from pynetdicom.events import Event, EventHandlerType

from dicom_bridge.ae import MPPS
from dicom_bridge.statuses import failure
from mapping.dicom.mpps import n_get_reply
from mapping.dicom.uid import valid_uid
from storage.errors import DomainError
from storage.usecases.mpps import DuplicatePps, InvalidPps, Mpps, NoSuchPps, PpsFinal

log = logging.getLogger(__name__)

SUCCESS = 0x0000
INVALID_VALUE, PROCESSING_FAILURE, DUPLICATE, NO_SUCH_INSTANCE = 0x0106, 0x0110, 0x0111, 0x0112
INVALID_INSTANCE, MISSING, MISSING_VALUE = 0x0117, 0x0120, 0x0121
ATTRIBUTE_LIST_ERROR, NO_SUCH_CLASS = 0x0107, 0x0118
NO_LONGER_UPDATABLE = 0xA710  # Error ID of 0x0110 after a final state (PS3.4 F.7.2.2.2)
_REFUSAL = {"missing": MISSING, "no value": MISSING_VALUE, "invalid": INVALID_VALUE}

Response = tuple[int | Dataset, Dataset | None]


class MppsScp:
    def __init__(self, mpps: Mpps) -> None:
        self._mpps = mpps

    def handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_N_CREATE, self.on_n_create),
            (evt.EVT_N_SET, self.on_n_set),
            (evt.EVT_N_GET, self.on_n_get),
        ]

    def on_n_create(self, event: Event) -> Response:
        request = cast(N_CREATE, event.request)
        facts = self._facts(event, "n_create")
        if str(request.AffectedSOPClassUID) != MPPS:  # only our MPPS context routes here
            return failure(PROCESSING_FAILURE, "not a Modality Performed Procedure Step"), None
        given = request.AffectedSOPInstanceUID
        # PS3.7 10.1.5: without an Affected SOP Instance UID the SCP assigns one and returns it
        sop_uid = str(given) if given else f"2.25.{uuid.uuid4().int}"
        if not valid_uid(sop_uid):
            return self._refused(facts, INVALID_INSTANCE, "the SOP Instance UID is not a UID")
        facts["sop_instance_uid"] = sop_uid
        try:
            attributes = event.attribute_list
            _decode_all(attributes)
        except Exception:
            return self._refused(facts, PROCESSING_FAILURE, "the attribute list cannot be decoded")
        try:
            recorded = self._mpps.create(sop_uid, attributes, calling_ae=event.assoc.requestor.ae_title)
        except InvalidPps as exc:
            return self._refused(facts, _REFUSAL[exc.kind], str(exc))
        except DuplicatePps as exc:
            return self._refused(facts, DUPLICATE, str(exc))
        except DomainError as exc:
            return self._refused(facts, PROCESSING_FAILURE, str(exc))
        except Exception:
            log.exception("mpps.failed", extra=facts | {"status": PROCESSING_FAILURE})
            return failure(PROCESSING_FAILURE, "internal error; nothing was recorded"), None
        log.info("mpps.created", extra=facts | {"procedure": recorded.procedure_id})
        reply = None
        if not given:
            reply = Dataset()
            reply.AffectedSOPInstanceUID = sop_uid
        return SUCCESS, reply

    def on_n_set(self, event: Event) -> Response:
        request = cast(N_SET, event.request)
        facts = self._facts(event, "n_set")
        sop_uid = str(request.RequestedSOPInstanceUID or "")
        facts["sop_instance_uid"] = sop_uid
        if str(request.RequestedSOPClassUID) != MPPS:
            return failure(PROCESSING_FAILURE, "not a Modality Performed Procedure Step"), None
        try:
            modification = event.modification_list
            _decode_all(modification)
        except Exception:
            return self._refused(facts, PROCESSING_FAILURE, "the modification list cannot be decoded")
        try:
            recorded = self._mpps.set(sop_uid, modification)
        except PpsFinal as exc:
            rsp = failure(PROCESSING_FAILURE, str(exc))
            rsp.ErrorID = NO_LONGER_UPDATABLE
            log.warning("mpps.refused", extra=facts | {"status": PROCESSING_FAILURE, "reason": str(exc)})
            return rsp, None
        except InvalidPps as exc:
            return self._refused(facts, _REFUSAL[exc.kind], str(exc))
        except NoSuchPps as exc:
            return self._refused(facts, NO_SUCH_INSTANCE, str(exc))
        except DomainError as exc:
            return self._refused(facts, PROCESSING_FAILURE, str(exc))
        except Exception:
            log.exception("mpps.failed", extra=facts | {"status": PROCESSING_FAILURE})
            return failure(PROCESSING_FAILURE, "internal error; nothing was changed"), None
        log.info(
            "mpps.set", extra=facts | {"pps_status": recorded.status, "procedure": recorded.procedure_id}
        )
        return SUCCESS, None

    def on_n_get(self, event: Event) -> Response:
        """The attributes the Attribute Identifier List names (all when it names none), as
        stored; one the step does not hold comes back empty (PS3.7 10.1.2.1.6)."""
        request = cast(N_GET, event.request)
        facts = self._facts(event, "n_get")
        sop_uid = str(request.RequestedSOPInstanceUID or "")
        facts["sop_instance_uid"] = sop_uid
        if str(request.RequestedSOPClassUID) != MPPS:
            return self._refused(facts, NO_SUCH_CLASS, "not a Modality Performed Procedure Step")
        if not valid_uid(sop_uid):
            return self._refused(facts, INVALID_INSTANCE, "the SOP Instance UID is not a UID")
        try:
            stored = self._mpps.get(sop_uid)
        except NoSuchPps as exc:
            return self._refused(facts, NO_SUCH_INSTANCE, str(exc))
        except DomainError as exc:
            return self._refused(facts, PROCESSING_FAILURE, str(exc))
        except Exception:
            log.exception("mpps.failed", extra=facts | {"status": PROCESSING_FAILURE})
            return failure(PROCESSING_FAILURE, "internal error"), None
        asked = request.AttributeIdentifierList
        tags = [] if asked is None else [asked] if isinstance(asked, int) else list(asked)
        reply, unknown = n_get_reply(stored, [Tag(t) for t in tags])
        log.info("mpps.get", extra=facts | {"count": len(reply)})
        if unknown:
            rsp = Dataset()
            rsp.Status = ATTRIBUTE_LIST_ERROR
            rsp.AttributeIdentifierList = unknown
            return rsp, reply
        return SUCCESS, reply

    @staticmethod
    def _facts(event: Event, kind: str) -> dict[str, object]:
        return {
            "calling_ae": event.assoc.requestor.ae_title,
            "peer": event.assoc.requestor.address,
            "kind": kind,
        }

    @staticmethod
    def _refused(facts: dict[str, object], status: int, reason: str) -> Response:
        log.warning("mpps.refused", extra=facts | {"status": status, "reason": reason})
        return failure(status, reason), None


def _decode_all(ds: Dataset) -> None:
    """pydicom decodes elements when first read: read them all here, so that a data set that
    cannot be decoded is refused as such, not found broken halfway through recording it."""
    for _ in ds.iterall():
        pass
