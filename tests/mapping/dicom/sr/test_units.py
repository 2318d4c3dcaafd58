"""Units as vendors spell them -> UCUM, and exact conversion (mapping/dicom/sr/units.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mapping.dicom.sr.content import Code
from mapping.dicom.sr.units import Unit, convert, respell, unit_from_code


@pytest.mark.parametrize(
    ("written", "ucum"),
    [
        ("mGycm", "mGy.cm"),
        ("Gym2", "Gy.m2"),
        ("uGym2", "uGy.m2"),
        ("dGycm2", "dGy.cm2"),
        ("mGy*cm", "mGy.cm"),
        ("µGy·m²", "uGy.m2"),
        ("Gy m^2", "Gy.m2"),
        ("sec", "s"),
        ("mGy.cm", "mGy.cm"),
        ("mm", "mm"),
    ],
)
def test_respelling_fixes_spelling_only(written: str, ucum: str) -> None:
    assert respell(written) == ucum


def test_unit_from_code_says_what_it_did() -> None:
    assert unit_from_code(Code("UCUM", "mGycm", "mGycm")) == Unit("mGy.cm", "mGycm", respelled=True)
    assert unit_from_code(Code("UCUM", "[hnsf'U]", "Hounsfield unit")) == Unit("[hnsf'U]", "Hounsfield unit")
    assert unit_from_code(Code("99_OFFIS_DCMTK", "cm", "Length Unit")) == Unit("cm", "Length Unit")
    # a private unit we do not know is no UCUM unit: kept as text, not guessed
    assert unit_from_code(Code("99PRIV", "furlong", "")) == Unit("", "furlong")
    assert unit_from_code(None) is None


def test_convert_is_exact_or_nothing() -> None:
    assert convert(Decimal("6.5"), "uGy.m2", "Gy.m2") == Decimal("0.0000065")
    assert str(convert(Decimal("0.0125"), "dGy", "mGy")) == "1.25"
    assert convert(Decimal("1"), "Gy.m2", "cGy.cm2") == Decimal("1000000")
    assert convert(Decimal("12.3"), "dGy.cm2", "Gy.m2") == Decimal("0.000123")
    assert convert(Decimal("2.5"), "min", "s") == Decimal("150")
    assert convert(Decimal("100"), "s", "min") is None  # 1.666... is not exact
    assert convert(Decimal("120"), "s", "min") == Decimal("2")
    assert convert(Decimal("1"), "mGy.cm", "Gy.m2") is None  # another dimension
    assert convert(Decimal("1"), "furlong", "m") is None
    assert convert(Decimal("7"), "Gy", "Gy") == Decimal("7")
