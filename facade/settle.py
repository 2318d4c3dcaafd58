"""Settling: publish studies that have been quiet for the stable age (run by a `Periodic`)."""

from __future__ import annotations

import logging

from storage.usecases.publish import Publisher

log = logging.getLogger(__name__)


def settle(publisher: Publisher) -> int:
    """Publish the settled version of every study quiet for the stable age; how many."""
    done = publisher.pending(settled_only=True)
    if done:
        log.info("settle.published", extra={"published": done})
    return done
