"""Administrative commands."""

from __future__ import annotations

import logging

from facade.logs import configure_logging
from facade.settings import Settings
from storage.db import make_engine
from storage.migrate import current_revision, upgrade

log = logging.getLogger(__name__)


def db_upgrade(settings: Settings) -> int:
    """`facade db upgrade`: create or migrate the schema."""
    configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    try:
        upgrade(engine)
        log.info("db.upgraded", extra={"revision": current_revision(engine)})
    finally:
        engine.dispose()
    return 0
