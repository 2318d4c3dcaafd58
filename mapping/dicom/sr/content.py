"""A Structured Report's content tree, read tolerantly (PS3.3 C.17.3 SR Document Content Module).

`read_document(ds)` walks the Content Sequence (0040,A730) recursively into typed `ContentItem`s:
Relationship Type, Value Type, Concept Name (a `Code`), and the value of each value type that
the mappers read (NUM with its Measured Value Sequence, CODE, TEXT, UIDREF, DATETIME / DATE /
TIME, PNAME, IMAGE / COMPOSITE / WAVEFORM references, SCOORD / SCOORD3D, CONTAINER).

- A NUM's value is kept as the DS text exactly as written (`Measured.text`), read from the
  element's raw bytes when pydicom has not converted it yet, and as a `Decimal` of that text:
  never through a float, so '12.50' stays '12.50' and '1.6e-005' is Decimal('0.000016').
- By-reference items (Referenced Content Item Identifier (0040,DB73)) are kept as the path they
  name; `resolve` follows one and refuses paths that lead back into their own ancestry.
- Nothing here raises on bad content: an item that cannot be read is skipped (or read as far
  as it goes) and a warning naming its position is recorded in `Document.warnings`.
  Positions are 1-based paths ("1.3.2"), the numbering by-reference items use (PS3.3 C.17.3.2.5).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

# Nesting deeper than this is not a report but a loop or an attack on the recursion.
MAX_DEPTH = 64

_NUMERIC_VALUE = Tag(0x0040, 0xA30A)
_CONCEPT_NAME = Tag(0x0040, 0xA043)


@dataclass(frozen=True)
class Code:
    """One item of a code sequence (PS3.3 8.8): (Coding Scheme Designator, Code Value, Meaning)."""

    scheme: str
    value: str
    meaning: str = ""


@dataclass(frozen=True)
class Measured:
    """A NUM's Measured Value Sequence (0040,A300) item, the value as written."""

    text: str  # Numeric Value (0040,A30A) as written (stripped of padding)
    decimal: Decimal | None  # the same value; None when the text is no number
    unit: Code | None  # Measurement Units Code Sequence (0040,08EA)


@dataclass(frozen=True)
class ImageRef:
    """A referenced SOP instance (IMAGE / COMPOSITE / WAVEFORM, PS3.3 C.18.3 / C.18.4)."""

    sop_class: str
    sop_instance: str
    frames: tuple[int, ...] = ()  # Referenced Frame Number (0008,1160)
    segments: tuple[int, ...] = ()  # Referenced Segment Number (0062,000B)


@dataclass(frozen=True)
class Coords:
    """SCOORD (C.18.6) or SCOORD3D (C.18.9): a graphic type and its points."""

    graphic_type: str
    points: tuple[float, ...]
    frame_of_reference: str = ""  # SCOORD3D only


@dataclass(frozen=True)
class ContentItem:
    position: str  # "1.3.2": 1-based indices from the root's Content Sequence
    relationship: str  # Relationship Type (0040,A010)
    value_type: str  # Value Type (0040,A040)
    name: Code | None  # Concept Name Code Sequence (0040,A043)
    text: str = ""  # TEXT, UIDREF, DATETIME, DATE, TIME, PNAME: the value as written
    code: Code | None = None  # CODE: Concept Code Sequence (0040,A168)
    measured: Measured | None = None  # NUM
    qualifier: Code | None = None  # NUM: Numeric Value Qualifier Code Sequence (0040,A301)
    images: tuple[ImageRef, ...] = ()  # IMAGE / COMPOSITE / WAVEFORM
    coords: Coords | None = None  # SCOORD / SCOORD3D
    observation_uid: str = ""  # Observation UID (0040,A171)
    observation_datetime: str = ""  # Observation DateTime (0040,A032)
    template: str = ""  # Content Template Sequence's Template Identifier (CONTAINER)
    reference: str = ""  # by-reference: the position it names ("1.2.1")
    children: tuple[ContentItem, ...] = ()

    def named(self, value: str, *, scheme: str = "") -> bool:
        """Whether the concept name has this code value (and scheme, when given)."""
        n = self.name
        return n is not None and n.value == value and (not scheme or n.scheme == scheme)

    def child(self, value: str, *, value_type: str = "") -> ContentItem | None:
        return next(self.children_named(value, value_type=value_type), None)

    def children_named(self, value: str, *, value_type: str = "") -> Iterator[ContentItem]:
        for c in self.children:
            if c.named(value) and (not value_type or c.value_type == value_type):
                yield c


@dataclass
class Document:
    """The root CONTAINER and the facts of the SR header a mapper needs."""

    sop_class: str
    sop_instance: str
    study_instance: str
    root: ContentItem
    completion: str = ""  # Completion Flag (0040,A491)
    verification: str = ""  # Verification Flag (0040,A493)
    preliminary: str = ""  # Preliminary Flag (0040,A496)
    content_date: str = ""
    content_time: str = ""
    tz_offset: str = ""  # Timezone Offset From UTC (0008,0201)
    observers: tuple[str, ...] = ()  # Verifying Observer Name (0040,A075), in order
    verification_datetime: str = ""  # of the first verifying observer
    warnings: list[str] = field(default_factory=list)
    _index: dict[str, ContentItem] | None = field(default=None, repr=False, compare=False)

    @property
    def title(self) -> Code | None:
        return self.root.name

    @property
    def template(self) -> str:
        return self.root.template

    def walk(self) -> Iterator[ContentItem]:
        stack = [self.root]
        while stack:
            item = stack.pop()
            yield item
            stack.extend(reversed(item.children))

    def resolve(self, item: ContentItem) -> ContentItem | None:
        """The item a by-reference item names; None (and a warning) when it is missing, is the
        item's own ancestor (a cycle) or is itself a reference."""
        if not item.reference:
            return item
        target = item.reference
        if item.position == target or item.position.startswith(target + "."):
            self.warnings.append(f"{item.position}: by-reference to its own ancestor {target}")
            return None
        if self._index is None:
            self._index = {i.position: i for i in self.walk()}
        node = self._index.get(target)
        if node is None:
            self.warnings.append(f"{item.position}: by-reference to missing item {target}")
            return None
        if node.reference:
            self.warnings.append(f"{item.position}: by-reference to another reference {target}")
            return None
        return node


def read_document(ds: Dataset, *, shallow: frozenset[tuple[str, str]] = frozenset()) -> Document:
    """The SR document's header facts and content tree; never raises on bad content.

    Containers whose concept name (scheme, value) is in `shallow` are read without their
    content: a dose report's thousands of irradiation events are counted, not read."""
    reader = _Reader(shallow)
    root = reader.item(ds, "1", "", depth=0)
    if root is None:  # the root itself is unreadable: an empty container keeps the mappers simple
        root = ContentItem(position="1", relationship="", value_type="CONTAINER", name=None)
    verifiers = [v for v in _items(ds, "VerifyingObserverSequence")]
    return Document(
        sop_class=text_of(ds, "SOPClassUID"),
        sop_instance=text_of(ds, "SOPInstanceUID"),
        study_instance=text_of(ds, "StudyInstanceUID"),
        root=root,
        completion=text_of(ds, "CompletionFlag").upper(),
        verification=text_of(ds, "VerificationFlag").upper(),
        preliminary=text_of(ds, "PreliminaryFlag").upper(),
        content_date=text_of(ds, "ContentDate"),
        content_time=text_of(ds, "ContentTime"),
        tz_offset=text_of(ds, "TimezoneOffsetFromUTC"),
        observers=tuple(n for n in (text_of(v, "VerifyingObserverName") for v in verifiers) if n),
        verification_datetime=text_of(verifiers[0], "VerificationDateTime") if verifiers else "",
        warnings=reader.warnings,
    )


class _Reader:
    def __init__(self, shallow: frozenset[tuple[str, str]]) -> None:
        self.shallow = shallow
        self.names: dict[tuple[bytes, bool, bool], Code | None] = {}
        self.warnings: list[str] = []

    def item(self, ds: Dataset, position: str, relationship: str, *, depth: int) -> ContentItem | None:
        warnings = self.warnings
        try:
            reference = _reference(ds)
            if reference:
                return ContentItem(position, relationship, "", None, reference=reference)
            if self.shallow and (skipped := self._shallow(ds, position, relationship)):
                return skipped
            value_type = ascii_of(ds, "ValueType").upper()
            if not value_type:
                warnings.append(f"{position}: no Value Type, skipped")
                return None
            name = self.name(ds)
            return ContentItem(
                position=position,
                relationship=relationship,
                value_type=value_type,
                name=name,
                observation_uid=ascii_of(ds, "ObservationUID"),
                observation_datetime=ascii_of(ds, "ObservationDateTime"),
                children=self.children(ds, position, depth=depth),
                **_value(ds, value_type, position, warnings),
            )
        except Exception as exc:  # a malformed element pydicom cannot convert: skip this item only
            warnings.append(f"{position}: unreadable ({type(exc).__name__}), skipped")
            return None

    def _shallow(self, ds: Dataset, position: str, relationship: str) -> ContentItem | None:
        """A container to count, not read (a large RDSR has thousands of irradiation events)."""
        name = self.name(ds)
        if name is None or (name.scheme.upper(), name.value) not in self.shallow:
            return None
        return ContentItem(position, relationship, "CONTAINER", name)

    def name(self, ds: Dataset) -> Code | None:
        """The Concept Name, parsed once per distinct encoding: a document repeats a few dozen
        names over thousands of items, and pydicom's parsing of each is what costs."""
        elem = ds.get_item(_CONCEPT_NAME)
        raw = elem.value if isinstance(elem, RawDataElement) else None
        if not isinstance(raw, bytes) or elem is None:
            return first_code(ds, "ConceptNameCodeSequence")
        key = (raw, elem.is_implicit_VR, elem.is_little_endian)
        if key not in self.names:
            self.names[key] = first_code(ds, "ConceptNameCodeSequence")
        return self.names[key]

    def children(self, ds: Dataset, position: str, *, depth: int) -> tuple[ContentItem, ...]:
        items = _items(ds, "ContentSequence")
        if not items:
            return ()
        if depth >= MAX_DEPTH:
            self.warnings.append(f"{position}: nested deeper than {MAX_DEPTH}, children skipped")
            return ()
        out = []
        for index, child in enumerate(items, start=1):
            relationship = ascii_of(child, "RelationshipType").upper()
            read = self.item(child, f"{position}.{index}", relationship, depth=depth + 1)
            if read is not None:
                out.append(read)
        return tuple(out)


def _value(ds: Dataset, value_type: str, position: str, warnings: list[str]) -> dict[str, Any]:
    if value_type == "NUM":
        return _num(ds, position, warnings)
    if value_type == "CODE":
        code = first_code(ds, "ConceptCodeSequence")
        if code is None:
            warnings.append(f"{position}: CODE without a Concept Code")
        return {"code": code}
    if value_type == "TEXT":
        return {"text": text_of(ds, "TextValue", strip=False).rstrip(" \x00")}
    if value_type == "UIDREF":
        return {"text": ascii_of(ds, "UID")}
    if value_type in ("DATETIME", "DATE", "TIME"):
        keyword = {"DATETIME": "DateTime", "DATE": "Date", "TIME": "Time"}[value_type]
        return {"text": ascii_of(ds, keyword)}
    if value_type == "PNAME":
        return {"text": text_of(ds, "PersonName")}
    if value_type in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        return {"images": tuple(_image(r) for r in _items(ds, "ReferencedSOPSequence"))}
    if value_type in ("SCOORD", "SCOORD3D"):
        return {"coords": _coords(ds, value_type)}
    if value_type == "CONTAINER":
        templates = _items(ds, "ContentTemplateSequence")
        return {"template": ascii_of(templates[0], "TemplateIdentifier") if templates else ""}
    return {}


def _num(ds: Dataset, position: str, warnings: list[str]) -> dict[str, Any]:
    qualifier = first_code(ds, "NumericValueQualifierCodeSequence")
    values = _items(ds, "MeasuredValueSequence")
    if not values:
        warnings.append(f"{position}: NUM without a Measured Value")
        return {"qualifier": qualifier}
    mv = values[0]
    text = raw_text(mv, _NUMERIC_VALUE)
    number = decimal_of(text)
    if text and number is None:
        warnings.append(f"{position}: Numeric Value is not a number")
    return {
        "measured": Measured(text, number, first_code(mv, "MeasurementUnitsCodeSequence")),
        "qualifier": qualifier,
    }


def _image(ref: Dataset) -> ImageRef:
    return ImageRef(
        sop_class=ascii_of(ref, "ReferencedSOPClassUID"),
        sop_instance=ascii_of(ref, "ReferencedSOPInstanceUID"),
        frames=_ints(ref, "ReferencedFrameNumber"),
        segments=_ints(ref, "ReferencedSegmentNumber"),
    )


def _coords(ds: Dataset, value_type: str) -> Coords:
    data = _get(ds, "GraphicData")
    points: tuple[float, ...] = ()
    if data is not None:
        points = tuple(float(v) for v in (data if isinstance(data, (list, MultiValue)) else [data]))
    frame = ascii_of(ds, "ReferencedFrameOfReferenceUID") if value_type == "SCOORD3D" else ""
    return Coords(ascii_of(ds, "GraphicType").upper(), points, frame)


def _reference(ds: Dataset) -> str:
    value = _get(ds, "ReferencedContentItemIdentifier")
    if value is None:
        return ""
    parts = value if isinstance(value, (list, MultiValue)) else [value]
    return ".".join(str(int(p)) for p in parts)


def _ints(ds: Dataset, keyword: str) -> tuple[int, ...]:
    value = _get(ds, keyword)
    if value in (None, ""):
        return ()
    parts = value if isinstance(value, (list, MultiValue)) else [value]
    out = []
    for p in parts:
        try:
            out.append(int(p))
        except (TypeError, ValueError):
            continue
    return tuple(out)


def _items(ds: Dataset, keyword: str) -> list[Dataset]:
    """A sequence's items; [] when absent or not a sequence."""
    value = _get(ds, keyword)
    if not value:
        return []
    try:
        return [item for item in value if isinstance(item, Dataset)]
    except TypeError:
        return []


def first_code(ds: Dataset, keyword: str) -> Code | None:
    """The first item of a code sequence; None when absent or without a code value."""
    for item in _items(ds, keyword):
        value = ascii_of(item, "CodeValue") or text_of(item, "LongCodeValue") or text_of(item, "URNCodeValue")
        if value:
            return Code(ascii_of(item, "CodingSchemeDesignator"), value, text_of(item, "CodeMeaning"))
    return None


def _get(ds: Dataset, keyword: str) -> Any:
    """An element's value; None when absent. (By Tag, not keyword: a third of the cost, which
    counts over the tens of thousands of items of a large RDSR.)"""
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = _TAGS[keyword] = Tag(keyword)
    return ds[tag].value if tag in ds else None


_TAGS: dict[str, BaseTag] = {}


def ascii_of(ds: Dataset, keyword: str) -> str:
    """A single-valued element of an ASCII-only VR (CS, UI, DA, TM, DT, and the code values and
    schemes of PS3.3 8.1) from its raw bytes, without making pydicom convert it: the cheap read
    that tens of thousands of content items need."""
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = _TAGS[keyword] = Tag(keyword)
    return raw_text(ds, tag)


def text_of(ds: Dataset, keyword: str, *, strip: bool = True) -> str:
    """A single-valued element as text; '' when absent (the first value when multi-valued)."""
    value = _get(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else ""
    text = str(value)
    return text.strip() if strip else text


def raw_text(ds: Dataset, tag: int) -> str:
    """An element's value as written: its raw bytes when not yet converted (a DS read from a file
    keeps its text exactly, and malformed text cannot make pydicom raise), else its text."""
    elem = ds.get_item(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace")
    elif isinstance(value, (list, MultiValue)):
        text = str(value[0]) if len(value) else ""
    else:
        text = str(value)
    return text.split("\\", 1)[0].strip(" \x00")


def decimal_of(text: str) -> Decimal | None:
    """A DS text -> Decimal exactly (PS3.5 6.2: digits, sign, '.', 'E'); None for anything else."""
    if not text or not all(ch in "0123456789+-.eE" for ch in text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
