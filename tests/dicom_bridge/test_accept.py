"""WADO-RS content negotiation (PS3.18 8.7): what an Accept header allows."""

from __future__ import annotations

import pytest

from dicom_bridge.dicomweb.accept import (
    NotAcceptable,
    accepts_dicom_json,
    bulk_transfer_syntaxes,
    dicom_transfer_syntaxes,
    frames_media_types,
)

EXPLICIT = "1.2.840.10008.1.2.1"
DICOM = 'multipart/related; type="application/dicom"'


@pytest.mark.parametrize(
    ("accept", "syntaxes"),
    [
        (None, [None]),
        ("", [None]),
        ("*/*", [None]),
        ("multipart/related", [None]),
        (DICOM, [None]),
        (f"{DICOM}; transfer-syntax=*", [None]),
        (f"{DICOM}; transfer-syntax={EXPLICIT}", [EXPLICIT]),
        (f'multipart/related; type=application/dicom; transfer-syntax="{EXPLICIT}"', [EXPLICIT]),
        (f"{DICOM}; transfer-syntax={EXPLICIT}; q=0.5, {DICOM}; transfer-syntax=*", [None, EXPLICIT]),
        (f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50, */*; q=0.1", ["1.2.840.10008.1.2.4.50", None]),
    ],
)
def test_dicom_resources(accept: str | None, syntaxes: list[str | None]) -> None:
    assert dicom_transfer_syntaxes(accept) == syntaxes


@pytest.mark.parametrize(
    "accept",
    ["application/dicom", "application/dicom+json", 'multipart/related; type="image/jpeg"', f"{DICOM}; q=0"],
)
def test_dicom_resources_refused(accept: str) -> None:
    with pytest.raises(NotAcceptable, match="multipart/related"):
        dicom_transfer_syntaxes(accept)


def test_bulk_data_and_metadata() -> None:
    assert bulk_transfer_syntaxes('multipart/related; type="application/octet-stream"') == [None]
    with pytest.raises(NotAcceptable):
        bulk_transfer_syntaxes(DICOM)
    accepts_dicom_json("application/dicom+json")
    accepts_dicom_json("application/json, */*; q=0.1")
    with pytest.raises(NotAcceptable):
        accepts_dicom_json("application/dicom+xml")
    with pytest.raises(NotAcceptable):
        accepts_dicom_json("application/dicom+json; q=0")


OCTETS = "application/octet-stream"


@pytest.mark.parametrize(
    ("accept", "choices"),
    [
        (None, [(OCTETS, None)]),
        ("*/*", [(OCTETS, None)]),
        ('multipart/related; type="*/*"', [(OCTETS, None)]),  # dicomweb-client's default
        (f'multipart/related; type="{OCTETS}"; transfer-syntax={EXPLICIT}', [(OCTETS, EXPLICIT)]),
        ('multipart/related; type="image/jls"', [("image/jls", None)]),
        ('multipart/related; type="image/x-jls"; transfer-syntax=*', [("image/jls", None)]),
        (
            'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90; q=0.5, '
            'multipart/related; type="image/dicom-rle"',
            [("image/dicom-rle", None), ("image/jp2", "1.2.840.10008.1.2.4.90")],
        ),
        ('multipart/related; type="image/*"', [("image/*", None)]),
    ],
)
def test_frames(accept: str | None, choices: list[tuple[str, str | None]]) -> None:
    assert frames_media_types(accept) == choices


@pytest.mark.parametrize(
    "accept",
    ["image/jls", 'multipart/related; type="image/png"', 'multipart/related; type="image/jls"; q=0'],
)
def test_frames_refused(accept: str) -> None:
    with pytest.raises(NotAcceptable, match="image/jls"):
        frames_media_types(accept)
