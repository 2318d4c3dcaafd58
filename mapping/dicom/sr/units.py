"""Measurement units of SR NUM items -> UCUM, deliberately (PS3.16 CID 82; UCUM).

Real vendor SRs spell units badly: `mGycm` for mGy.cm, `Gym2` for Gy.m2, `mGy*cm`, `µGy·m²`,
`sec`. The rules, in order:

1. Spelling only, never scale: separators (`*`, `·`, the multiplication sign, space) become
   UCUM's `.`, `^` goes, `²`/`³` become digits, `µ`/`μ` become `u`, a few words (`sec`,
   `mins`) their UCUM symbol, and a dose unit glued to a length or area (`mGycm`, `Gym2`,
   `dGycm2`) gets its `.`.
2. A unit whose scheme is UCUM is then taken as written; another scheme's unit is taken only when
   it is one of the UCUM codes we know (a private `cm` is UCUM's `cm`).
3. Anything else is no UCUM unit: the value is kept with the unit as text, never guessed.

`convert` changes a value to another unit of the same dimension exactly (powers of ten and
60 / 3600 with `Decimal`), or not at all: no float ever touches a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext

from mapping.dicom.sr.content import Code

UCUM_SCHEMES = frozenset({"UCUM"})

# UCUM codes we recognise from other schemes too (and can convert between, when dimensions agree).
KNOWN = frozenset(
    {
        "1", "%", "{frames}", "{ratio}",
        "s", "ms", "min", "h",
        "Gy", "mGy", "uGy", "cGy", "dGy", "nGy",
        "Gy.m2", "mGy.m2", "uGy.m2", "Gy.cm2", "dGy.cm2", "cGy.cm2", "mGy.cm2", "uGy.cm2",
        "mGy.cm", "Gy.cm", "uGy.cm", "mGy.mm", "Gy.m",
        "m", "cm", "mm", "um", "m2", "cm2", "mm2", "m3", "cm3", "mm3", "ml", "mL", "l", "L",
        "kV", "mA", "mA.s", "mAs", "[hnsf'U]", "kg", "g", "deg", "mm/s", "cm/s",
    }
)  # fmt: skip

_WORDS = {"sec": "s", "secs": "s", "second": "s", "seconds": "s", "mins": "min", "minutes": "min"}
_GLUED = re.compile(r"^([muncd]?Gy)\.?([muncd]?m)([23]?)$")
_ATOM = re.compile(r"^([munpcdk]?)(Gy|m|s)([23]?)$")
_PREFIX = {"": 0, "m": -3, "u": -6, "n": -9, "p": -12, "c": -2, "d": -1, "k": 3}
_TIME = {"min": (0, 60), "h": (0, 3600)}


@dataclass(frozen=True)
class Unit:
    """What a unit code reads as: the UCUM code ('' when none) and what to show."""

    ucum: str
    display: str
    respelled: bool = False  # the code as written was not UCUM, its spelling was fixed


def unit_from_code(code: Code | None) -> Unit | None:
    """A Measurement Units Code -> `Unit`; None when there is no code at all."""
    if code is None:
        return None
    written = code.value.strip()
    spelled = respell(written)
    display = code.meaning or written
    if spelled != written and (spelled in KNOWN or _GLUED.match(written)):
        return Unit(spelled, display, respelled=True)
    if code.scheme.upper() in UCUM_SCHEMES or written in KNOWN:
        return Unit(written, display)
    if spelled in KNOWN:
        return Unit(spelled, display, respelled=True)
    return Unit("", display or written)


def respell(unit: str) -> str:
    """Fix the spelling of a unit, never its scale (see the module docstring)."""
    s = unit.strip()
    for old, new in (("µ", "u"), ("μ", "u"), ("²", "2"), ("³", "3"), ("^", "")):
        s = s.replace(old, new)
    for sep in ("*", "·", "\u00d7", " "):
        s = s.replace(sep, ".")
    s = _WORDS.get(s.lower(), s)
    glued = _GLUED.match(s)
    if glued:
        s = f"{glued[1]}.{glued[2]}{glued[3]}"
    return s


def convert(value: Decimal, unit: str, target: str) -> Decimal | None:
    """`value` in `unit` expressed in `target`, exactly; None when the dimensions differ, either
    unit is unknown, or the result is not exact (say 100 s in min)."""
    if unit == target:
        return value
    a, b = _factor(unit), _factor(target)
    if a is None or b is None or a[0] != b[0]:
        return None
    (_, pow_a, mult_a), (_, pow_b, mult_b) = a, b
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.traps[Inexact] = True
        try:
            return (value * mult_a / mult_b).scaleb(pow_a - pow_b)
        except Inexact:
            return None


def _factor(unit: str) -> tuple[tuple[tuple[str, int], ...], int, int] | None:
    """A unit as (dimension, power of ten, integer multiplier) over Gy, m and s; None if unknown."""
    dims: dict[str, int] = {}
    power, mult = 0, 1
    for atom in unit.split("."):
        if atom in _TIME:
            p, m = _TIME[atom]
            dims["s"] = dims.get("s", 0) + 1
            power, mult = power + p, mult * m
            continue
        match = _ATOM.match(atom)
        if not match:
            return None
        exponent = int(match[3] or 1)
        dims[match[2]] = dims.get(match[2], 0) + exponent
        power += _PREFIX[match[1]] * exponent
    return tuple(sorted(dims.items())), power, mult
