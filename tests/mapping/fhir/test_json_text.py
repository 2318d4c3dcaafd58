"""FHIR JSON with decimals kept as written (R4: 0.010 is not 0.01)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mapping.fhir.json_text import dumps, loads


@pytest.mark.parametrize(
    ("number", "written"),
    [
        ("0.010", "0.010"),
        ("-0.0", "-0.0"),
        ("1.6e-005", "0.000016"),
        ("1.60E+3", "1.60E+3"),
        ("7", "7"),
        ("123456789012345678901234.5", "123456789012345678901234.5"),
    ],
)
def test_numbers_keep_their_value_and_precision(number: str, written: str) -> None:
    text = f'{{"value":{number},"list":[{number}]}}'
    assert dumps(loads(text)) == f'{{"value":{written},"list":[{written}]}}'


def test_strings_never_become_numbers() -> None:
    body = {"text": "\x00decimal:5", "quoted": '"1.5"', "n": Decimal("1.50")}
    assert loads(dumps(body)) == body
    assert dumps(body).endswith('"n":1.50}')


def test_indented_and_refusals() -> None:
    assert dumps({"a": Decimal("2.0")}, indent=2) == '{\n  "a": 2.0\n}'
    with pytest.raises(ValueError, match="finite"):
        dumps({"a": Decimal("NaN")})
    with pytest.raises(TypeError):
        dumps({"a": object()})
