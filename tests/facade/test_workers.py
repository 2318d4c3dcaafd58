"""The one periodic-worker implementation: runs, survives a failing run, stops promptly."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from facade.workers import Periodic


def test_a_failing_run_is_logged_and_the_next_goes_ahead(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    third = threading.Event()

    def task() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("database briefly down")
        if len(runs) >= 3:
            third.set()

    worker = Periodic("test-worker", 0.01, task)
    with caplog.at_level(logging.ERROR, logger="facade.workers"):
        worker.start()
        assert third.wait(5)
        worker.stop()
    failed = [r for r in caplog.records if r.getMessage() == "worker.failed"]
    assert len(failed) == 1 and failed[0].source == "test-worker"  # type: ignore[attr-defined]
    settled = len(runs)
    time.sleep(0.05)
    assert len(runs) == settled  # stopped means no more runs


def test_stop_does_not_wait_for_the_interval() -> None:
    worker = Periodic("slow", 3600.0, lambda: None).start()
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 1.0


def test_stop_of_a_worker_never_started_returns() -> None:
    Periodic("idle", 1.0, lambda: None).stop()


def test_a_worker_run_at_stop_runs_once_more_after_its_thread() -> None:
    runs: list[str] = []
    worker = Periodic("flush", 3600.0, lambda: runs.append("run"), run_at_stop=True).start()
    worker.stop()
    assert runs == ["run"]  # the last run, though the interval never came
    Periodic("flush-unstarted", 3600.0, lambda: runs.append("unstarted"), run_at_stop=True).stop()
    assert runs == ["run", "unstarted"]


def test_wake_runs_at_once_and_on_stop_follows_the_thread() -> None:
    ran = threading.Event()
    stopped: list[str] = []
    worker = Periodic("woken", 3600.0, ran.set, on_stop=lambda: stopped.append("closed")).start()
    started = time.monotonic()
    worker.wake()
    assert ran.wait(5) and time.monotonic() - started < 1
    worker.stop()
    assert stopped == ["closed"]
