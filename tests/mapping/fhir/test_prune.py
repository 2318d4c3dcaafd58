"""prune: FHIR has no empty elements; values that are not empty stay, whatever their truth."""

from __future__ import annotations

from decimal import Decimal

from mapping.fhir.prune import prune


def test_empty_elements_go_at_every_depth() -> None:
    body = {
        "a": None,
        "b": "",
        "c": [],
        "d": {},
        "e": [None, "", {}, [], {"f": [None]}],
        "g": {"h": {"i": ""}, "j": "x"},
        "k": [{"l": None, "m": 1}],
    }
    assert prune(body) == {"g": {"j": "x"}, "k": [{"m": 1}]}


def test_falsy_values_that_are_not_empty_stay() -> None:
    body = {
        "zero": 0,
        "false": False,
        "decimal": Decimal("0.0"),
        "float": 0.0,
        "text": "0",
        "list": [0, False],
    }
    assert prune(body) == body
    assert prune("") == "" and prune(None) is None  # only what is inside a container is dropped
