"""Housekeeping: every few minutes, remove authorization state that expired (codes, tokens,
browser sessions, pending requests, launches, seen assertion ids) so the tables stay small."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


INTERVAL = 600.0  # seconds between runs


class Housekeeper:
    """The chores, each isolated: one failing leaves the others to run (a `Periodic` runs this)."""

    def __init__(self, chores: Sequence[Callable[[], int]]) -> None:
        self._chores = list(chores)

    def run_once(self) -> int:
        removed = 0
        for chore in self._chores:
            try:
                removed += chore()
            except Exception:
                log.exception("housekeeping.failed")
        if removed:
            log.info("housekeeping.purged", extra={"count": removed})
        return removed
