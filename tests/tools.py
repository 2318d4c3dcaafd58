"""System tools the tests talk to (dcmtk, chromium, npm packages).

Locally a missing tool skips the test with the reason. In CI `.ci/run` sets
FACADE_TEST_REQUIRE_TOOLS=1 after installing them, and a missing tool fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest


def tools_required() -> bool:
    return os.environ.get("FACADE_TEST_REQUIRE_TOOLS") == "1"


def missing(reason: str) -> None:
    """Skip (locally) or fail (CI) because something the test needs is absent."""
    if tools_required():
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require_tool(name: str, package: str = "dcmtk") -> str:
    """Absolute path of a command on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found (install Debian package {package})")
    assert path is not None
    return path


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(0.01)
    return True


def dcmtk(tool: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """A dcmtk tool run against 127.0.0.1:`port` (TCP_NODELAY set: else Nagle holds its PDUs)."""
    return subprocess.run(
        [require_tool(tool), *args, "127.0.0.1", str(port)], capture_output=True, text=True,
        check=False, timeout=60, env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
