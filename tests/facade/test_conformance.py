"""docs/conformance.md is what the code negotiates and answers: generated, and kept equal."""

from __future__ import annotations

from pathlib import Path

from facade.conformance import statement

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def test_the_conformance_statement_is_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == statement(), "the code changed: run `make conformance`"


def test_it_names_every_service_we_accept() -> None:
    text = statement()
    for uid in ("1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1"):
        assert f"`{uid}`" in text
    assert "| CT Image Storage | `1.2.840.10008.5.1.4.1.1.2` |" in text
    assert "| 0xA900 |" in text and "| 0xC001 |" in text
