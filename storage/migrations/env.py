"""Alembic environment: runs on the connection `storage.migrate` hands over."""

from alembic import context

import storage.audit.models  # (registers the audit table on Base.metadata)
import storage.auth_models  # noqa: F401  (registers the auth tables on Base.metadata)
from storage.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True
)
with context.begin_transaction():
    context.run_migrations()
