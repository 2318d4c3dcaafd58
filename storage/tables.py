"""Every aggregate's tables on the one metadata: import this before using `Base.metadata` whole
(migrations, create_all)."""

import storage.audit.models
import storage.auth.models
import storage.dicom_index.models
import storage.fhir_store.models
import storage.hl7_inbox.models
import storage.mpps.models
import storage.orders.models
import storage.outbox.models
import storage.peers.models  # noqa: F401  (each registers its tables on Base.metadata)
from storage.schema import Base

__all__ = ["Base"]
