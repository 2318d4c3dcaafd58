"""Settling: publish studies that have been quiet for the stable age (run by a `Periodic`)."""

from __future__ import annotations

import logging

from storage.usecases.publish import Publisher

log = logging.getLogger(__name__)

PER_RUN = 200  # patients, and studies, a run publishes at most
PER_TRANSACTION = 50  # on SQLite the writer is held for this many, not for a whole run: HL7 ACKs wait


def settle(publisher: Publisher) -> int:
    """Publish the settled version of every study quiet for the stable age, and the patients
    changed, up to PER_RUN of each, in transactions of PER_TRANSACTION; how many."""
    done = 0
    for _ in range(PER_RUN // PER_TRANSACTION):
        published = publisher.pending(settled_only=True, limit=PER_TRANSACTION)
        done += published
        if published < PER_TRANSACTION:
            break
    if done:
        log.info("settle.published", extra={"published": done})
    return done
