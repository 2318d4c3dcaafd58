"""The one wall clock. Use cases and the authorization server take a `Clock` as a collaborator
(tests pass their own); only the composition root hands them this default."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
