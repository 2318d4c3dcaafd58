"""The tolerant ER7 reader: delimiters from MSH, escapes, sloppy segment separators."""

from __future__ import annotations

import pytest

from mapping.hl7.charsets import charset_named, decode
from mapping.hl7.er7 import Delimiters, escape, split_message, unescape
from mapping.hl7.errors import Hl7Error, Location
from mapping.hl7.header import check_header, read_header
from tests.hl7_samples import orm


def test_fields_components_subcomponents_and_repetitions() -> None:
    message = split_message("MSH|^~\\&|RIS|HOSP\rPID|||A1^^^HOSP&1.2.3&ISO^MR~B2^^^OTHER||Doe^Jane\r")
    pid = message.first("PID")
    assert pid is not None
    assert message.msh.value(3) == "RIS" and message.msh.raw(2) == "^~\\&"
    assert pid.value(3) == "A1" and pid.value(3, 4, 2) == "1.2.3" and pid.value(3, 5) == "MR"
    assert pid.value(3, repetition=1) == "B2" and pid.value(3, 4, repetition=1) == "OTHER"
    assert pid.value(5, 2) == "Jane" and pid.value(5, 9) == "" and pid.value(40) == ""


def test_the_message_declares_its_own_delimiters() -> None:
    message = split_message("MSH#:@$%#RIS#HOSP\rPID###A1:::HOSP##Doe:Jane@Doe:Janet\r")
    pid = message.first("PID")
    assert pid is not None
    assert pid.value(3, 4) == "HOSP" and pid.value(5, 2, repetition=1) == "Janet"


def test_escapes_are_undone() -> None:
    message = split_message("MSH|^~\\&|R\rNTE|||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X41\\ line\\.br\\two\r")
    nte = message.first("NTE")
    assert nte is not None and nte.value(3) == "a|b^c&d~e\\fA line\ntwo"


def test_explicit_null_is_told_from_empty() -> None:
    pid = split_message('MSH|^~\\&|R\rPID|||A1||""\r').first("PID")
    assert pid is not None
    assert pid.value(5) == "" and pid.is_null(5) and not pid.is_null(6)


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_segment_separators_of_real_senders(separator: str) -> None:
    message = split_message(orm().replace("\r", separator))
    assert [s.name for s in message.segments] == ["MSH", "PID", "PV1", "ORC", "OBR", "ZDS"]


@pytest.mark.parametrize("text", ["", "PID|1", "MSH", "MSH|^~|x", "MSH|^^\\&|x"])
def test_no_readable_msh_is_a_reject(text: str) -> None:
    with pytest.raises(Hl7Error) as refused:
        split_message(text)
    assert refused.value.ack == "AR"


def test_header_tolerates_an_empty_version_and_a_misspelled_structure() -> None:
    text = orm(version="").replace("ORM^O01", "ORM^O01^ORM_OO1")
    header = read_header(split_message(text))
    check_header(header)
    assert header.version == "" and header.answered_version == "2.5.1" and header.kind == "ORM^O01"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        (("2.3.1", "2.9"), "203", 12),
        (("|P|", "|X|"), "202", 11),
        (("ORM^O01", "ORR^O02"), "200", 9),
        (("ORM^O01", "ORM^O02"), "201", 9),
        (("MSG0001", ""), "101", 10),
    ],
)
def test_what_the_header_refuses(change: tuple[str, str], code: str, field: int) -> None:
    header = read_header(split_message(orm().replace(*change)))
    with pytest.raises(Hl7Error) as refused:
        check_header(header)
    assert (refused.value.ack, refused.value.code) == ("AR", code)
    assert refused.value.location is not None and refused.value.location.field == field


def test_msh18_decides_the_decoding() -> None:
    utf8 = charset_named("UNICODE UTF-8")
    assert utf8 is not None
    latin1 = orm(name="Müller^Jürgen", charset="8859/1").encode("latin-1")
    text, charset = decode(latin1, utf8)
    assert "Müller^Jürgen" in text and charset.dicom == "ISO_IR 100" and charset.hl7 == "8859/1"
    text, charset = decode(orm(name="Müller^Jürgen").encode("utf-8"), utf8)
    assert "Müller" in text and charset.hl7 == "" and charset.dicom == "ISO_IR 192"


def test_bytes_that_do_not_fit_the_declared_set_are_rejected() -> None:
    utf8 = charset_named("UNICODE UTF-8")
    assert utf8 is not None
    with pytest.raises(Hl7Error) as refused:
        decode(orm(name="Müller^Jürgen", charset="UNICODE UTF-8").encode("latin-1"), utf8)
    assert (refused.value.ack, refused.value.code) == ("AR", "102")
    with pytest.raises(Hl7Error) as unknown:
        decode(orm(charset="KLINGON").encode(), utf8)
    assert (unknown.value.ack, unknown.value.code) == ("AR", "103")


def test_escape_is_undone_by_unescape_but_for_line_breaks() -> None:
    text = "a|b^c~d\\e&f"
    escaped = escape(text)
    assert not any(c in escaped for c in "|^~&") and unescape(escaped, Delimiters()) == text
    assert escape("one\r\ntwo\nthree\rfour") == "one two three four"


def _jis(text: str) -> str:
    """Kanji as the 7-bit bytes of JIS X 0208 (ISO-IR 87), without their ISO 2022 escapes."""
    return text.encode("iso2022_jp")[3:-3].decode("ascii")


def _bytes(text: str, codec: str) -> str:
    """Text as the bytes a sender writes in `codec`, each byte one character (a Latin-1 message)."""
    return text.encode(codec).decode("latin-1")


@pytest.mark.parametrize(
    ("escaped", "expected"),
    [
        (f"\\M2442\\{_jis('山田')}\\C2842\\ Taro", "山田 Taro"),  # ESC $ B ... ESC ( B
        (f"\\M242844\\{'丂'.encode('iso2022_jp_1')[4:-3].decode()}", "丂"),  # ESC $ ( D JIS X 0212
        (f"M\\C2D41\\{_bytes('ü', 'latin-1')}ller", "Müller"),  # ESC - A: ISO 8859-1 in G1
        (f"\\C2D42\\{_bytes('Łódź', 'iso8859_2')}", "Łódź"),  # ESC - B: ISO 8859-2
        (f"\\C2D4C\\{_bytes('Иван', 'iso8859_5')}", "Иван"),  # ESC - L: Cyrillic
        (f"\\M242943\\{_bytes('김', 'euc_kr')}", "김"),  # ESC $ ) C: KS X 1001 in G1
        (f"\\C2949\\{_bytes('ﾔﾏﾀﾞ', 'shift_jis')}", "ﾔﾏﾀﾞ"),  # ESC ) I: JIS X 0201 katakana
        ("a\\M2442\\\\C2842\\b\\.br\\c", "ab\nc"),  # an empty switch; formatting between
    ],
)
def test_character_set_switches_are_decoded(escaped: str, expected: str) -> None:
    assert unescape(escaped, Delimiters()) == expected


def test_a_delimiter_byte_inside_a_multibyte_run_is_escaped_and_read_in_that_set() -> None:
    kanji = next(chr(c) for c in range(0x4E00, 0x9FFF) if "^" in _jis_or_empty(chr(c)))
    raw = _jis(kanji).replace("^", "\\S\\")
    pid = split_message(f"MSH|^~\\&|R\rPID|||A1||\\M2442\\{raw}\\C2842\\^Taro\r").first("PID")
    assert pid is not None and (pid.value(5), pid.value(5, 2)) == (kanji, "Taro")


def _jis_or_empty(char: str) -> str:
    try:
        return _jis(char)
    except UnicodeError:
        return ""


@pytest.mark.parametrize(
    ("name", "code"),
    [("\\M2441\\abcd", "103"), ("\\C2D5A\\x", "103"), ("\\M2442\\;3E", "102")],
)
def test_a_switch_we_cannot_honour_is_an_error_naming_the_field(name: str, code: str) -> None:
    message = split_message(f"MSH|^~\\&|R\rPID|1\rPID|||A1||Doe^{name}\r")
    pid = message.all("PID")[1]
    with pytest.raises(Hl7Error) as refused:
        pid.value(5, 2)
    error = refused.value
    assert (error.ack, error.code, error.location) == ("AE", code, Location("PID", 2, 5, 2))
    assert pid.value(5) == "Doe"  # the other components still read


def test_msh18_iso_ir6_is_ascii_for_messages_that_switch_sets_by_escapes() -> None:
    charset = charset_named("ISO IR6")
    assert charset is not None and charset.codec == "ascii"
