"""The JSON log line: its own fields stay what they are, whatever facts a record carries."""

from __future__ import annotations

import json
import logging

from facade.logs import JsonFormatter


def test_facts_never_overwrite_the_lines_own_fields() -> None:
    record = logging.LogRecord(
        "dicom_bridge.find_responses", logging.INFO, __file__, 1, "c_find.done", None, None
    )
    record.__dict__.update({"query_level": "STUDY", "matches": 2, "peer": "127.0.0.1"})
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info" and line["event"] == "c_find.done"
    assert line["query_level"] == "STUDY" and line["matches"] == 2
