import pytest

from mapping.dicom.body_site import BODY_PART_EXAMINED, LATERALITY, SCT, body_site_coding, laterality_coding

_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def verhoeff_ok(number: str) -> bool:
    """SNOMED CT identifiers end in a Verhoeff check digit: catches transcription errors."""
    c = 0
    for i, digit in enumerate(reversed(number)):
        c = _D[c][_P[i % 8][int(digit)]]
    return c == 0


@pytest.mark.parametrize(
    ("term", "code"),
    [
        ("ABDOMEN", "818981001"),
        ("CHEST", "816094009"),
        ("HEAD", "69536005"),
        ("KNEE", "72696002"),
        ("BREAST", "76752008"),
        ("CSPINE", "122494005"),
        ("TSPINE", "122495006"),
        ("LSPINE", "122496007"),
        ("ABDOMENPELVIS", "818982008"),
        ("PELVIS", "816092008"),
        ("WHOLEBODY", "38266002"),
    ],
)
def test_known_rows(term: str, code: str) -> None:
    coding = body_site_coding(term)
    assert coding is not None and coding["code"] == code and coding["system"] == SCT


def test_case_and_spaces_do_not_matter() -> None:
    assert body_site_coding("  knee ") == body_site_coding("KNEE")


@pytest.mark.parametrize("term", ["", "KNEES", "CT CHEST", "HEAD NECK"])
def test_no_guess(term: str) -> None:
    assert body_site_coding(term) is None


def test_every_code_is_a_valid_sctid() -> None:
    bad = [
        t
        for t, (code, meaning) in {**BODY_PART_EXAMINED, **LATERALITY}.items()
        if not (code.isdigit() and 6 <= len(code) <= 18 and verhoeff_ok(code) and meaning)
    ]
    assert bad == []


def test_verhoeff_rejects_a_transposition() -> None:
    assert verhoeff_ok("72696002") and not verhoeff_ok("72969002")


@pytest.mark.parametrize(
    ("value", "code"),
    [("R", "24028007"), ("l", "7771000"), ("B", "51440002"), ("U", "66459002"), ("X", None), ("", None)],
)
def test_laterality(value: str, code: str | None) -> None:
    coding = laterality_coding(value)
    assert (coding["code"] if coding else None) == code
