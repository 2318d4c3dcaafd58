"""`facade ae add|list|remove`: the registry of remote AEs, through the command line."""

from __future__ import annotations

import pytest

from facade.cli import main
from facade.settings import Settings


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FACADE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FACADE_DATABASE_URL", settings.resolved_database_url())
    return settings


def test_add_list_remove(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ae", "list"]) == 0
    assert "no remote AEs" in capsys.readouterr().out
    assert main(["ae", "add", "WORKSTATION", "10.1.2.3", "104"]) == 0
    assert main(["ae", "add", "PACS", "pacs.example.org", "11112"]) == 0
    capsys.readouterr()
    assert main(["ae", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["AE", "title", "host", "port"]
    assert [line.split() for line in lines[1:]] == [
        ["PACS", "pacs.example.org", "11112"],
        ["WORKSTATION", "10.1.2.3", "104"],
    ]
    assert main(["ae", "remove", "PACS"]) == 0
    assert main(["ae", "remove", "PACS"]) == 1
    assert "not registered" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["TOO_LONG_AE_TITLE_X", "h", "104"], "1 to 16 characters"),
        (["BACK\\SLASH", "h", "104"], "no backslash"),
        (["OK", "h", "0"], "1 to 65535"),
        (["OK", "h", "70000"], "1 to 65535"),
        (["OK", "a host", "104"], "name or an IP address"),
    ],
)
def test_refusals(env: Settings, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["ae", "add", *args]) == 1
    assert message in capsys.readouterr().err


def test_a_title_is_registered_once(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ae", "add", "WS", "h1", "104"]) == 0
    assert main(["ae", "add", "WS", "h2", "105"]) == 1
    assert "registered already" in capsys.readouterr().err
