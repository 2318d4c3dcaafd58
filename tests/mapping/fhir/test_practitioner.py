"""A signed-in user's name -> FHIR Practitioner (mapping/fhir/practitioner.py)."""

from __future__ import annotations

from mapping.fhir.models import Practitioner
from mapping.fhir.practitioner import practitioner_from_user


def test_last_word_is_family_the_others_given_and_the_result_is_r4() -> None:
    body = practitioner_from_user("dr-who", "Ada Maria Lovelace")
    assert body["name"] == [{"text": "Ada Maria Lovelace", "family": "Lovelace", "given": ["Ada", "Maria"]}]
    assert Practitioner.model_validate(body).id == "dr-who"


def test_one_word_or_no_name() -> None:
    assert practitioner_from_user("p1", "Cher")["name"] == [{"text": "Cher", "family": "Cher"}]
    blank = practitioner_from_user("p2", "  ")
    assert "name" not in blank
    assert Practitioner.model_validate(blank).active is True
