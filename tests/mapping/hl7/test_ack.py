"""Our ACKs, as hl7apy reads them: well-formed in each version we answer, MSA and ERR where the
standard puts them, delimiters in texts escaped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from mapping.hl7.ack import build_ack
from mapping.hl7.charsets import charset_named
from mapping.hl7.er7 import split_message
from mapping.hl7.errors import Hl7Error
from mapping.hl7.header import read_header
from tests.hl7_samples import orm

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2"]
)
@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_hl7apy_reads_every_ack_we_send(version: str, code: str) -> None:
    header = read_header(split_message(orm(version=version, charset="8859/1", msg_id="A\\F\\B\\S\\C")))
    charset = charset_named("8859/1")
    assert charset is not None
    error = None
    if code != "AA":
        error = Hl7Error.error("204", "no order matches ORC-2 (x|y^z&w)", segment="ORC", field=2)
    ack = build_ack(header, code, control_id="ACK1", now=NOW, charset=charset, error=error)  # type: ignore[arg-type]
    parsed = parse_message(ack.decode("latin-1"), validation_level=VALIDATION_LEVEL.TOLERANT)
    assert parsed.msh.msh_12.to_er7() == version and parsed.msh.msh_18.to_er7() == "8859/1"
    assert parsed.msh.msh_9.msg_1.to_er7() == "ACK" if version >= "2.4" else True
    assert parsed.msa.msa_1.to_er7() == code and parsed.msa.msa_2.to_er7() == "A\\F\\B\\S\\C"
    ours = split_message(ack.decode("latin-1"))
    msa = ours.first("MSA")
    assert msa is not None and msa.value(2) == "A|B^C"
    err = ours.first("ERR")
    if code == "AA":
        assert err is None
    elif version >= "2.5":
        assert (
            err is not None and err.value(3) == "204" and err.value(2, 1) == "ORC" and err.value(2, 3) == "2"
        )
        assert err.value(8) == "no order matches ORC-2 (x|y^z&w)"
    else:
        assert err is not None and err.value(1, 1) == "ORC" and err.value(1, 4, 1) == "204"


def test_an_unreadable_message_gets_an_ack_anyway() -> None:
    utf8 = charset_named("UNICODE UTF-8")
    assert utf8 is not None
    error = Hl7Error.reject("100", "the message does not start with an MSH segment")
    ack = build_ack(None, "AR", control_id="X", now=NOW, charset=utf8, error=error)
    parsed = parse_message(ack.decode(), validation_level=VALIDATION_LEVEL.TOLERANT)
    assert parsed.msa.msa_1.to_er7() == "AR" and parsed.msh.msh_12.to_er7() == "2.5.1"
