"""DICOM PN (PS3.5 6.2.1) -> FHIR HumanName.

A PN value has up to three component groups separated by '=': alphabetic,
ideographic and phonetic; each has five components separated by '^':
family, given, middle, prefix, suffix. Ideographic and phonetic groups become
extra HumanNames marked with the ISO 21090 EN representation extension.
"""

from __future__ import annotations

from typing import Any

EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
_REPRESENTATION = (None, "IDE", "SYL")


def human_names(pn: str) -> list[dict[str, Any]]:
    """All non-empty component groups as HumanNames (alphabetic first, `use` official)."""
    names = []
    for index, group in enumerate(pn.split("=")[:3]):
        parts = [p.strip() for p in group.split("^")] + [""] * 5
        family, given, middle, prefix, suffix = parts[:5]
        name: dict[str, Any] = {}
        if index == 0:
            name["use"] = "official"
        else:
            name["extension"] = [{"url": EN_REPRESENTATION, "valueCode": _REPRESENTATION[index]}]
        if family:
            name["family"] = family
        if given or middle:
            name["given"] = [g for g in (given, middle) if g]
        if prefix:
            name["prefix"] = [prefix]
        if suffix:
            name["suffix"] = [suffix]
        if len(name) > 1:
            names.append(name)
    return names


def display_name(pn: str) -> str:
    """'Family^Given^Middle^Prefix^Suffix' -> 'Prefix Given Middle Family Suffix' (alphabetic group)."""
    parts = [p.strip() for p in pn.split("=", maxsplit=1)[0].split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    text = " ".join(p for p in (prefix, given, middle, family) if p)
    return f"{text}, {suffix}" if suffix else text


def name_parts(pn: str) -> list[str]:
    """Every non-empty component of every group: what a `name` search matches against."""
    return [p.strip() for group in pn.split("=")[:3] for p in group.split("^") if p.strip()]
