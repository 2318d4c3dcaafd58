"""AL1, OBX body weight / height and PV1 -> the worklist's patient details (mapping/hl7/details.py)."""

from __future__ import annotations

import pytest

from mapping.hl7.details import patient_details
from mapping.hl7.er7 import split_message
from mapping.hl7.errors import Hl7Error, Location

MSH = "MSH|^~\\&|ADT|HOSP|FACADE|HOSP|20261203101500||ADT^A08|1|P|2.5.1"


def details(*segments: str) -> dict[str, object]:
    return patient_details(split_message("\r".join([MSH, *segments]) + "\r")).sent


@pytest.mark.parametrize(
    ("obx", "key", "value"),
    [
        ("OBX|1|NM|29463-7^Body weight^LN||70|kg", "weight", "70"),
        ("OBX|1|NM|3141-9^Weight^LN||70500|g", "weight", "70.5"),
        ("OBX|1|NM|^BODY WEIGHT||10|[oz_av]", "weight", "0.283"),
        ("OBX|1|NM|29463-7^Body weight^LN||81.2|", "weight", "81.2"),  # no unit: kg
        ("OBX|1|NM|8302-2^Body height^LN||5.5|[ft_i]", "size", "1.676"),
        ("OBX|1|NM|8306-3^Length^LN||52|cm", "size", "0.52"),
        ("OBX|1|NM|^BODY HEIGHT||70|in", "size", "1.778"),
        ('OBX|1|NM|29463-7^Body weight^LN||""|kg', "weight", ""),  # explicit null clears
    ],
)
def test_body_weight_and_height_in_kg_and_m(obx: str, key: str, value: str) -> None:
    assert details(obx) == {key: value}


def test_what_is_not_sent_is_not_returned_and_other_observations_are_ignored() -> None:
    assert details("PID|||P1||Doe", "OBX|1|NM|8867-4^Heart rate^LN||70|/min") == {}
    assert details("OBX|1|NM|29463-7^Body weight^LN||70|kg|||||X") == {}  # cannot be obtained


def test_allergies_location_route_and_admission() -> None:
    sent = details(
        "PID|||P1||Doe|||||||||||||V9",
        "PV1||E|ER^3^A^HOSP",
        "AL1|1|DA|C1^Penicillin^L",
        "AL1|2|MA|PEANUT",
    )
    assert sent == {
        "allergies": ("Penicillin", "PEANUT"),
        "current_location": "ER^3^A",
        "route_of_admissions": "E",
        "admission_id": "V9",  # PID-18 when PV1-19 is empty
    }
    assert details("PID|||P1||Doe|||||||||||||V9", "PV1|||" + "|" * 16 + "V10")["admission_id"] == "V10"
    assert details('PV1||""|""') == {"current_location": "", "route_of_admissions": ""}


@pytest.mark.parametrize(
    ("obx", "code", "field"),
    [("OBX|1|NM|29463-7^Body weight^LN||heavy|kg", "102", 5), ("OBX|1|NM|8302-2^H^LN||1|furlong", "103", 6)],
)
def test_a_measure_we_cannot_read_is_an_error_naming_the_field(obx: str, code: str, field: int) -> None:
    with pytest.raises(Hl7Error) as refused:
        details("OBX|1|ST|X^other||x", obx.replace("OBX|1|", "OBX|2|"))
    assert (refused.value.ack, refused.value.code, refused.value.location) == (
        "AE",
        code,
        Location("OBX", 2, field),
    )
