"""Text reports -> title, sections and their text, flags and observers (PS3.3 Basic Text SR,
Enhanced SR, Comprehensive SR; PS3.16 TID 2000 Basic Diagnostic Imaging Report).

A section is a CONTAINER under the root (Findings, Impressions, ...); text directly under the
root forms an untitled section. Each section's text is its items read as lines: TEXT as
written, CODE as "name: meaning", NUM as "name: value unit"; nested containers add their own
heading line. Impressions and Conclusions (DCM 121072 / 121076, LOINC 19005-8, ...) make the
report's conclusion. Observers: the Verifying Observers (0040,A073) and the Person Observer
Names (DCM 121008) of the observation context.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapping.dicom.sr import concepts as c
from mapping.dicom.sr.content import Code, ContentItem, Document


@dataclass(frozen=True)
class Section:
    heading: Code | None
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class TextReport:
    title: Code | None
    sections: tuple[Section, ...]
    completion: str  # COMPLETE / PARTIAL / ''
    verification: str  # VERIFIED / UNVERIFIED / ''
    verifying_observers: tuple[str, ...]
    person_observers: tuple[str, ...]

    @property
    def conclusion(self) -> str:
        return "\n\n".join(
            s.text for s in self.sections if c.is_concept(s.heading, c.CONCLUSION_SECTIONS) and s.lines
        )

    def narrative(self) -> str:
        """The report as plain text: title, then each section's heading and lines."""
        parts = [self.title.meaning] if self.title and self.title.meaning else []
        for section in self.sections:
            block = ([section.heading.meaning] if section.heading and section.heading.meaning else []) + list(
                section.lines
            )
            if block:
                parts.append("\n".join(block))
        return "\n\n".join(parts)


def text_report(doc: Document) -> TextReport:
    """The sections of a text SR in document order; never raises."""
    sections: list[Section] = []
    loose: list[str] = []
    observers: list[str] = []
    for raw in doc.root.children:
        item = doc.resolve(raw)
        if item is None:
            continue
        if c.named(item, c.PERSON_OBSERVER) and item.text:
            observers.append(item.text)
        elif item.relationship != "CONTAINS":
            continue
        elif item.value_type == "CONTAINER":
            sections.append(Section(item.name, tuple(_lines(doc, item, depth=0))))
        else:
            loose.extend(_line(item))
    if loose:
        sections.insert(0, Section(None, tuple(loose)))
    return TextReport(
        title=doc.title,
        sections=tuple(sections),
        completion=doc.completion,
        verification=doc.verification,
        verifying_observers=doc.observers,
        person_observers=tuple(observers),
    )


def _lines(doc: Document, container: ContentItem, *, depth: int) -> list[str]:
    out: list[str] = []
    for raw in container.children:
        item = doc.resolve(raw)
        if item is None or item.relationship not in ("CONTAINS", ""):
            continue
        if item.value_type == "CONTAINER":
            heading = [item.name.meaning] if item.name and item.name.meaning else []
            out.extend(heading + _lines(doc, item, depth=depth + 1))
        else:
            out.extend(_line(item))
    return out


def _line(item: ContentItem) -> list[str]:
    name = item.name.meaning if item.name else ""
    if item.value_type == "TEXT" and item.text:
        return [item.text]
    if item.value_type == "CODE" and item.code:
        return [f"{name}: {item.code.meaning or item.code.value}" if name else item.code.meaning]
    if item.value_type == "NUM" and item.measured:
        unit = item.measured.unit.value if item.measured.unit else ""
        return [f"{name}: {item.measured.text} {unit}".rstrip()]
    if item.value_type in ("DATETIME", "DATE", "TIME", "PNAME", "UIDREF") and item.text:
        return [f"{name}: {item.text}" if name else item.text]
    return []
