"""Logging: one JSON object per line, allow-listed keys only, PHI-prone library logs off.

Our records carry an event name as message and facts in `extra`; only keys listed
in `FACTS` are written, so a careless `extra={"patient_name": ...}` never reaches
the log. Exceptions are written as type and stack frames, never their message
(messages of library exceptions may quote data values).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pynetdicom import _config as pynetdicom_config

FACTS = frozenset(
    {
        "calling_ae",
        "model",
        "query_level",  # a C-FIND's QueryRetrieveLevel
        "matches",
        "sent",
        "failed",
        "called_ae",
        "peer",
        "status",
        "error",
        "reason",
        "reasons",
        "outcome",
        "via",
        "ms",
        "attempt",
        "sop_instance_uid",
        "series_uid",
        "study_uid",
        "instance_id",
        "version_id",
        "instances",
        "count",
        "host",
        "port",
        "url",
        "ae_title",
        "stored",
        "duplicate",
        "replaced",
        "rejected",
        "files",
        "method",
        "route",
        "http_status",
        "published",
        "database",
        "data_dir",
        "revision",
        "parts",
        "client_id",
        "source",
        "kid",
        "warning",
        "transcoded",
        "transfer_syntax",  # a UID of PS3.6 A
        "control_id",  # HL7 MSH-10: an id the sender chose, not patient data
        "kind",
        "ack",
        "error_code",
        "control",
        "service_request",
        "procedure",
        "pps_status",
        "destination",  # an ORU destination's name
        "seconds",
        "resource_id",
        "workers",  # serving processes (`facade serve --workers`)
        "dicom_port",
        "http_port",
        "pid",
        "returncode",
        "held",  # a held file's name: a time, a random id, a hex-encoded calling AE title
    }
)
_OURS = ("facade", "fhir_api", "dicom_bridge", "hl7_interface", "mapping", "smart_auth", "storage", "bench")
_LIBRARY_MESSAGE_LIMIT = 200


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.process,  # which of `facade serve --workers` processes
        }
        if record.name.split(".", 1)[0] in _OURS:
            out["event"] = record.msg if isinstance(record.msg, str) else "unnamed"
            # a fact never overwrites the line's own fields (time, severity, logger, process, event)
            out.update((k, v) for k, v in record.__dict__.items() if k in FACTS and k not in out)
        else:
            out["message"] = record.getMessage()[:_LIBRARY_MESSAGE_LIMIT]
        if record.exc_info and record.exc_info[0] is not None:
            out["error_type"] = record.exc_info[0].__name__
            out["stack"] = [
                f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(record.exc_info[2])
            ][-12:]
        return json.dumps(out, default=str, ensure_ascii=False)


def log_to_file(path: Path) -> None:
    """Write the JSON records to `path` instead of stderr (a terminal shows a progress bar)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    logging.getLogger().handlers[:] = [handler]


def configure_logging(level: str = "INFO") -> None:
    """Install the JSON formatter on stderr and silence loggers that write PHI."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pynetdicom logs whole C-FIND/C-MOVE identifiers (names, birth dates) at INFO by default.
    pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
    pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    # uvicorn's access log prints query strings, and FHIR searches carry names and birth dates.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.access").propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # authlib logs issued tokens and client credentials at DEBUG; httpx logs URLs with query strings.
    logging.getLogger("authlib").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Library warnings (pydicom's "Invalid value for VR PN: 'DOE^JOHN'") would otherwise be printed
    # as plain text among the JSON lines and across the import progress bar, values included.
    warnings.showwarning = _log_warning


def _log_warning(  # noqa: PLR0917 (the signature of warnings.showwarning)
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A Python warning as one JSON record: its category and where it was raised, never its text
    (library warnings quote data element values)."""
    source = "/".join(filename.replace("\\", "/").split("/")[-2:])
    logging.getLogger("facade.warnings").warning(
        "library.warning", extra={"warning": category.__name__, "source": f"{source}:{lineno}"}
    )
