"""What a performed procedure step (MPPS) does to the worklist entry it carries out and to the
order's ServiceRequest (IHE RAD TF-2 4.6/4.7: the Order Filler / DSS drives the scheduled step
from the PPS; dcm4chee does the same, reference §6).

- the scheduled step follows the PPS: IN PROGRESS -> STARTED, COMPLETED -> COMPLETED,
  DISCONTINUED -> DISCONTINUED; a step the order cancelled stays CANCELED, and a COMPLETED step
  stays COMPLETED (a later PPS for it, IHE's append case, adds to it and does not undo it); a
  DISCONTINUED step may be started again by a new PPS (the modality retries);
- the ServiceRequest (FHIR R4 request-status) is active while a step is open, `completed` once
  every step (the cancelled ones aside) is final and one was completed, `revoked` when every
  step was discontinued. Only a status the steps decide moves: draft, on-hold, entered-in-error
  and unknown are the order's own, and an order whose steps were all cancelled keeps its status.
"""

from __future__ import annotations

from collections.abc import Sequence

from mapping.dicom.mpps import PpsStatus
from mapping.order.facts import RequestStatus, StepStatus

_STEP_FOR: dict[PpsStatus, StepStatus] = {
    "IN PROGRESS": "STARTED",
    "COMPLETED": "COMPLETED",
    "DISCONTINUED": "DISCONTINUED",
}
_KEPT: tuple[StepStatus, ...] = ("COMPLETED", "CANCELED")
_FINAL: tuple[StepStatus, ...] = ("COMPLETED", "DISCONTINUED")
_FOLLOWS_STEPS: tuple[RequestStatus, ...] = ("active", "completed", "revoked")


def step_status_after(current: StepStatus, pps: PpsStatus) -> StepStatus:
    """The scheduled step's status once a PPS for it reports `pps`."""
    return current if current in _KEPT else _STEP_FOR[pps]


def request_status_after(current: RequestStatus, steps: Sequence[StepStatus]) -> RequestStatus:
    """The ServiceRequest's status given its steps' statuses."""
    performed = [s for s in steps if s != "CANCELED"]
    if current not in _FOLLOWS_STEPS or not performed:
        return current
    if any(s not in _FINAL for s in performed):
        return "active"
    return "completed" if "COMPLETED" in performed else "revoked"
