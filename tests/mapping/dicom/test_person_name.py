from mapping.dicom.person_name import EN_REPRESENTATION, display_name, human_names, name_parts


def test_alphabetic_group() -> None:
    assert human_names("Testperson^Alice^B^Dr.^PhD") == [
        {
            "use": "official",
            "family": "Testperson",
            "given": ["Alice", "B"],
            "prefix": ["Dr."],
            "suffix": ["PhD"],
        }
    ]


def test_ideographic_and_phonetic_groups_are_marked() -> None:
    names = human_names("Yamada^Tarou=山田^太郎=やまだ^たろう")
    assert [n.get("family") for n in names] == ["Yamada", "山田", "やまだ"]
    assert names[1]["extension"] == [{"url": EN_REPRESENTATION, "valueCode": "IDE"}]
    assert names[2]["extension"] == [{"url": EN_REPRESENTATION, "valueCode": "SYL"}]


def test_empty_groups_make_no_names() -> None:
    assert human_names("") == []
    assert human_names("==") == []
    assert [n["family"] for n in human_names("=山田")] == ["山田"]


def test_display_and_parts() -> None:
    assert display_name("Testperson^Alice^^Dr.") == "Dr. Alice Testperson"
    assert name_parts("Yamada^Tarou=山田^太郎") == ["Yamada", "Tarou", "山田", "太郎"]
