"""Order control (ORC-1) + order status (ORC-5) -> what happens to the order and its steps."""

from __future__ import annotations

import pytest

from mapping.order.control import Change, RefusedControl, change_for
from mapping.order.facts import RequestStatus, StepStatus


@pytest.mark.parametrize(
    ("control", "status", "current", "steps", "expected"),
    [
        ("NW", "SC", None, [], Change("create", "active", "SCHEDULED")),
        ("NW", "", None, [], Change("create", "active", "SCHEDULED")),
        ("NW", "IP", None, [], Change("create", "active", "STARTED")),
        ("SN", "", None, [], Change("create", "active", "SCHEDULED")),
        ("NW", "SC", "active", ["SCHEDULED"], Change("update", "active", "SCHEDULED")),
        ("NW", "SC", "revoked", ["CANCELED"], Change("create", "active", "SCHEDULED")),
        ("XO", "SC", "active", ["SCHEDULED"], Change("update", "active", "SCHEDULED")),
        ("XO", "", "active", ["STARTED"], Change("update", "active", None)),
        ("XO", "CM", "active", ["STARTED"], Change("update", "completed", "COMPLETED")),
        ("XX", "", "on-hold", ["SCHEDULED"], Change("update", "on-hold", None)),
        ("CA", "CA", "active", ["SCHEDULED"], Change("status", "revoked", "CANCELED")),
        ("OC", "", "active", ["SCHEDULED"], Change("status", "revoked", "CANCELED")),
        ("DC", "CA", "active", ["STARTED"], Change("status", "revoked", "DISCONTINUED")),
        ("OD", "", "active", ["SCHEDULED"], Change("status", "revoked", "DISCONTINUED")),
        ("SC", "IP", "active", ["SCHEDULED"], Change("status", "active", "STARTED")),
        ("SC", "CM", "active", ["STARTED"], Change("status", "completed", "COMPLETED")),
        ("SC", "HD", "active", ["SCHEDULED"], Change("status", "on-hold", None)),
        ("HD", "", "active", ["SCHEDULED"], Change("status", "on-hold", None)),
        ("RL", "", "on-hold", ["SCHEDULED"], Change("status", "active", None)),
    ],
)
def test_the_reference_table(
    control: str, status: str, current: RequestStatus | None, steps: list[StepStatus], expected: Change
) -> None:
    assert change_for(control, status, current, steps) == expected


@pytest.mark.parametrize(
    ("control", "status", "current", "steps", "unknown", "field"),
    [
        ("CA", "CA", None, [], True, 2),
        ("XO", "SC", None, [], True, 2),
        ("CA", "CA", "active", ["STARTED"], False, 1),  # started: discontinue, not cancel
        ("CA", "CA", "active", ["SCHEDULED", "COMPLETED"], False, 1),
        ("XO", "SC", "revoked", ["CANCELED"], False, 1),
        ("SC", "ZZ", "active", ["SCHEDULED"], False, 5),
    ],
)
def test_what_cannot_apply(  # noqa: PLR0917
    control: str,
    status: str,
    current: RequestStatus | None,
    steps: list[StepStatus],
    unknown: bool,
    field: int,
) -> None:
    with pytest.raises(RefusedControl) as refused:
        change_for(control, status, current, steps)
    assert (refused.value.unknown, refused.value.field) == (unknown, field)
