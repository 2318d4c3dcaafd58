"""What an order control (ORC-1, HL7 table 0119) with its order status (ORC-5, table 0038) does
to a requested procedure and its scheduled steps (reference §2, the ORC-1 table; dcm4chee's
ORC-1_ORC-5 pairs NW_SC, NW_IP, CA_CA, DC_CA, XO_SC, XO_CM, widened to the filler-side codes:
OC as CA, OD as DC, XX as XO, SN as NW, NA as XO, HD/OH hold, RL release).

A cancel (CA/OC) only applies before the procedure started: a started one must be discontinued
(DC/OD), as SWF says. A cancelled or discontinued order takes no more changes; a new order (NW)
for it is the way back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mapping.order.facts import RequestStatus, StepStatus

Action = Literal["create", "update", "status"]
_FINAL_STEPS: tuple[StepStatus, ...] = ("COMPLETED", "DISCONTINUED", "CANCELED")
_ORC5_STEP: dict[str, StepStatus] = {
    "SC": "SCHEDULED",
    "IP": "STARTED",
    "CM": "COMPLETED",
    "CA": "CANCELED",
    "DC": "DISCONTINUED",
}


class RefusedControl(Exception):
    """The order control cannot apply to the order as it stands; `unknown`: no such order."""

    def __init__(self, text: str, *, unknown: bool = False, field: int = 1) -> None:
        super().__init__(text)
        self.text, self.unknown, self.field = text, unknown, field


@dataclass(frozen=True)
class Change:
    action: Action  # create a new order, replace the facts of the known one, or change status only
    request_status: RequestStatus
    step_status: StepStatus | None  # None: each step keeps its status (a new step: SCHEDULED)


def change_for(
    control: str, order_status: str, current: RequestStatus | None, steps: list[StepStatus]
) -> Change:
    """The change `control` + `order_status` makes to an order whose ServiceRequest status is
    `current` (None: no such order) and whose steps stand at `steps`."""
    control = {"OC": "CA", "OD": "DC", "XX": "XO", "SN": "NW", "NA": "XO", "OH": "HD"}.get(control, control)
    if control == "NW":
        if current in ("active", "on-hold", "completed"):
            return Change("update", _request_status(order_status, "active"), _step_status(order_status, None))
        return Change(
            "create", _request_status(order_status, "active"), _step_status(order_status, "SCHEDULED")
        )
    if current is None:
        raise RefusedControl("no order matches the placer or filler order number", unknown=True, field=2)
    if current in ("revoked", "entered-in-error"):
        raise RefusedControl("the order was cancelled or discontinued; send a new order (NW)")
    if control == "XO":
        return Change("update", _request_status(order_status, current), _step_status(order_status, None))
    if control == "CA":
        if any(s in ("STARTED", "COMPLETED") for s in steps):
            raise RefusedControl("the procedure has started; discontinue it (DC) instead of cancelling")
        return Change("status", "revoked", "CANCELED")
    if control == "DC":
        return Change("status", "revoked", "DISCONTINUED")
    if control == "SC":
        step = _ORC5_STEP.get(order_status)
        if order_status == "HD":
            return Change("status", "on-hold", None)
        if step is None:
            raise RefusedControl("ORC-5 (order status) must be SC, IP, CM, CA, DC or HD for SC", field=5)
        return Change("status", _request_status(order_status, "active"), step)
    if control == "HD":
        return Change("status", "on-hold", None)
    if control == "RL":
        return Change("status", "active", None)
    raise RefusedControl(f"order control {control[:2]} is not supported")


def is_final(status: str) -> bool:
    return status in _FINAL_STEPS


def _request_status(order_status: str, otherwise: RequestStatus) -> RequestStatus:
    return {"CM": "completed", "CA": "revoked", "DC": "revoked", "HD": "on-hold"}.get(order_status, otherwise)  # type: ignore[return-value]


def _step_status(order_status: str, otherwise: StepStatus | None) -> StepStatus | None:
    return _ORC5_STEP.get(order_status, otherwise)
