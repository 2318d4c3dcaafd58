"""FHIR JSON text with decimals kept as written.

A FHIR `decimal` carries its precision: 0.010 is not 0.01 (R4 2.24.0.1 decimal). Python's json
module would read 0.010 as a float and write 0.01, so resources are read with `loads` (every
JSON number with a fraction or exponent becomes a `decimal.Decimal`, integers stay `int`) and
written with `dumps` (a Decimal is written as its exact text, a JSON number, never a string).
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any

# A marker no client can put in a string: a NUL and a random token of this process.
_TOKEN = secrets.token_hex(8)
_MARK = f"\x00{_TOKEN}:"
_ESCAPED = f"\\u0000{_TOKEN}:"
_MARKED = re.compile(r'"\\u0000' + _TOKEN + r':([-+0-9.eE]+)"')


def loads(text: str | bytes | bytearray) -> Any:
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Compact JSON (or indented), UTF-8 text, decimals exact."""
    text = json.dumps(
        value,
        ensure_ascii=False,
        indent=indent,
        separators=None if indent else (",", ":"),
        default=_mark,
    )
    return _MARKED.sub(r"\1", text) if _ESCAPED in text else text


def _mark(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a FHIR decimal is a finite number")
        return f"{_MARK}{value}"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
