"""The multipart/related spooler on its own: chunk borders, CRLF edges, preamble, limits, malformed bodies."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from dicom_bridge.dicomweb.multipart import MultipartSpooler, Part, media_type, valid_boundary
from storage.errors import Invalid, TooLarge
from storage.usecases.ingest import Staging

BOUNDARY = "xyzzy"
# Data that looks like delimiters without being one: CRLF, "--", the boundary in mid-line, a delimiter
# prefix, "--boundary" followed by other characters (RFC 2046 5.1.1), a lone CR at the very end.
PARTS = [
    b"first \r\n part with --xyzzy inside",
    b"",
    b"\r\n\r\nthird\r\n",
    b"\r\n--xyzz\r\n--xyzzyx\r\n-",
    b"ends in CR\r",
    bytes(range(256)) * 4,
]


def body(
    parts: list[bytes] = PARTS, boundary: str = BOUNDARY, preamble: bytes = b"", epilogue: bytes = b""
) -> bytes:
    out = preamble
    for i, data in enumerate(parts):
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\nContent-ID: <{i}>\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode() + epilogue


def files_in(directory: Path) -> Callable[[], Staging]:
    """Each part's file, as `Ingest.staging` makes it (here without the use case around it)."""
    return lambda: Staging(directory)


def spool_chunks(
    chunks: list[bytes], tmp_path: Path, *, limit: int = 1 << 20, boundary: str = BOUNDARY
) -> list[Part]:
    spooler = MultipartSpooler(boundary, files_in(tmp_path), limit, 1000)
    for chunk in chunks:
        spooler.feed(chunk)
    return spooler.finish()


def spool(
    data: bytes, tmp_path: Path, *, step: int, limit: int = 1 << 20, boundary: str = BOUNDARY
) -> list[bytes]:
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    return [p.path.read_bytes() for p in spool_chunks(chunks, tmp_path, limit=limit, boundary=boundary)]


@pytest.mark.parametrize("step", [*range(1, 24), 63, 64, 65, 4096, 1 << 20])
def test_every_chunk_size(tmp_path: Path, step: int) -> None:
    assert spool(body(), tmp_path, step=step) == PARTS


def test_a_split_at_every_offset(tmp_path: Path) -> None:
    data = body(PARTS[:5])
    for at in range(len(data) + 1):
        parts = spool_chunks([data[:at], data[at:]], tmp_path)
        assert [p.path.read_bytes() for p in parts] == PARTS[:5], at
        for p in parts:
            p.path.unlink()


def test_part_headers_are_parsed(tmp_path: Path) -> None:
    data = (
        b"--b\r\nContent-Type: Application/DICOM; transfer-syntax=1.2.840.10008.1.2.1\r\n"
        b"Content-Location: http://example.org/i/1\r\nX-Folded: one\r\n two\r\n\r\nA\r\n"
        b"--b\r\n\r\nB\r\n--b--"
    )
    first, second = spool_chunks([data], tmp_path, boundary="b")
    assert first.content_type == "application/dicom"
    assert first.content_location == "http://example.org/i/1"
    assert first.headers["x-folded"] == "one two"
    assert (second.content_type, second.headers, second.path.read_bytes()) == (None, {}, b"B")


def test_preamble_and_epilogue_are_ignored(tmp_path: Path) -> None:
    preamble = b"ignore me\r\n--xyzzyx is not a delimiter\r\n"
    assert spool(body(preamble=preamble, epilogue=b"and me\r\n--xyzzy\r\n"), tmp_path, step=7) == PARTS


def test_transport_padding_after_delimiters(tmp_path: Path) -> None:
    data = b"--b \t\r\n\r\none\r\n--b  \r\n\r\ntwo\r\n--b-- \r\n"
    assert spool(data, tmp_path, step=3, boundary="b") == [b"one", b"two"]


def test_quoted_boundary_with_spaces(tmp_path: Path) -> None:
    kind = media_type('Multipart/Related; Type="application/dicom"; boundary="a b:c=d"')
    assert kind.mime == "multipart/related"
    assert kind.params == {"type": "application/dicom", "boundary": "a b:c=d"}
    assert spool(body(boundary=kind.params["boundary"]), tmp_path, step=5, boundary="a b:c=d") == PARTS


def test_many_parts(tmp_path: Path) -> None:
    data = b"".join(f"--b\r\n\r\n{i}\r\n".encode() for i in range(500)) + b"--b--\r\n"
    assert spool(data, tmp_path, step=4096, boundary="b") == [str(i).encode() for i in range(500)]


def test_size_limit(tmp_path: Path) -> None:
    data = body()
    assert spool(data, tmp_path, step=10, limit=len(data)) == PARTS
    with pytest.raises(TooLarge):
        spool(data, tmp_path, step=10, limit=len(data) - 1)


@pytest.mark.parametrize(
    "data",
    [
        body()[:-9],  # the close delimiter cut short
        body()[: len(body()) // 2],  # cut in the middle of a part
        b"--xyzzy\r\nContent-Type: application/dicom\r\n",  # cut in the headers
        b"no delimiter at all",
        b"",
        b"--xyzzy\nContent-Type: application/dicom\n\nLF only\n--xyzzy--\n",
    ],
)
def test_bodies_cut_short_or_without_delimiters_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(Invalid):
        spool(data, tmp_path, step=16)


def test_malformed_header_lines_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="header"):
        spool_chunks([b"--b\r\nno colon here\r\n\r\nx\r\n--b--\r\n"], tmp_path, boundary="b")


def test_endless_headers_or_preamble_are_refused_early(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="too long"):
        spool_chunks([b"--b\r\nX-Long: " + b"a" * 20_000], tmp_path, boundary="b")
    with pytest.raises(Invalid, match="no boundary"):
        spool_chunks([b"x" * 70_000], tmp_path, boundary="b")


@pytest.mark.parametrize("boundary", ["", "x" * 71, "ends in space ", "semi;colon", 'quote"', "ümlaut"])
def test_invalid_boundaries(boundary: str) -> None:
    assert not valid_boundary(boundary)
    with pytest.raises(Invalid):
        MultipartSpooler(boundary, files_in(Path(".")), 10, 10)


def test_discard_removes_every_spooled_file(tmp_path: Path) -> None:
    spooler = MultipartSpooler(BOUNDARY, files_in(tmp_path), 1 << 20, 100)
    spooler.feed(body()[:-20])  # the last part is still open
    assert len(list(tmp_path.iterdir())) == len(PARTS)
    spooler.discard()
    assert list(tmp_path.iterdir()) == []


def test_more_parts_than_the_limit_are_refused_as_the_next_part_begins(tmp_path: Path) -> None:
    """The part past the limit is refused when its headers arrive: the rest of the body is never read."""
    spooler = MultipartSpooler("b", files_in(tmp_path), 1 << 20, 3)
    spooler.feed(b"--b\r\n\r\nx\r\n" * 3)
    assert len(spooler.parts) == 3
    with pytest.raises(TooLarge, match="more than 3 parts"):
        spooler.feed(b"--b\r\n\r\ny")  # the fourth part, no close delimiter yet
    assert len(spooler.parts) == 3
    spooler.discard()
    assert list(tmp_path.iterdir()) == []


def test_exactly_the_limit_of_parts_is_accepted(tmp_path: Path) -> None:
    spooler = MultipartSpooler("b", files_in(tmp_path), 1 << 20, 3)
    spooler.feed(b"--b\r\n\r\nx\r\n" * 3 + b"--b--\r\n")
    assert [p.path.read_bytes() for p in spooler.finish()] == [b"x"] * 3


def test_a_large_part_costs_little_memory(tmp_path: Path) -> None:
    """64 MiB through the parser in 64 KiB chunks, as uvicorn delivers them: memory stays at a few chunks."""
    chunk = os.urandom(64 * 1024)
    spooler = MultipartSpooler("b", files_in(tmp_path), 1 << 30, 1)
    tracemalloc.start()
    try:
        spooler.feed(b"--b\r\nContent-Type: application/dicom\r\n\r\n")
        for _ in range(1024):
            spooler.feed(chunk)
        spooler.feed(b"\r\n--b--\r\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (part,) = spooler.finish()
    assert part.size == part.path.stat().st_size == 64 * 1024 * 1024
    assert peak < 1 << 20
