"""What a performed step does to its scheduled step and its order (mapping/order/progress.py)."""

from __future__ import annotations

import pytest

from mapping.order.progress import request_status_after, step_status_after


@pytest.mark.parametrize(
    ("current", "pps", "after"),
    [
        ("SCHEDULED", "IN PROGRESS", "STARTED"),
        ("STARTED", "COMPLETED", "COMPLETED"),
        ("STARTED", "DISCONTINUED", "DISCONTINUED"),
        ("DISCONTINUED", "IN PROGRESS", "STARTED"),  # the modality tries again with a new PPS
        ("COMPLETED", "IN PROGRESS", "COMPLETED"),  # IHE append case: does not undo the step
        ("COMPLETED", "DISCONTINUED", "COMPLETED"),
        ("CANCELED", "IN PROGRESS", "CANCELED"),  # the order was cancelled: the step stays so
    ],
)
def test_the_step_follows_the_pps(current: str, pps: str, after: str) -> None:
    assert step_status_after(current, pps) == after  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "steps", "after"),
    [
        ("active", ["STARTED"], "active"),
        ("active", ["COMPLETED", "SCHEDULED"], "active"),
        ("active", ["COMPLETED", "DISCONTINUED"], "completed"),
        ("active", ["DISCONTINUED"], "revoked"),
        ("active", ["DISCONTINUED", "CANCELED"], "revoked"),
        ("active", ["COMPLETED", "CANCELED"], "completed"),
        ("revoked", ["STARTED"], "active"),  # a discontinued order's step restarted
        ("revoked", ["CANCELED"], "revoked"),  # cancelled by the order: steps do not decide
        ("on-hold", ["COMPLETED"], "on-hold"),
        ("entered-in-error", ["COMPLETED"], "entered-in-error"),
    ],
)
def test_the_service_request_follows_its_steps(current: str, steps: list[str], after: str) -> None:
    assert request_status_after(current, steps) == after  # type: ignore[arg-type]
