"""The live call's threads run ahead of other work (real setpriority on this process's threads).

Raising priority needs root or CAP_SYS_NICE: the tests that raise it run where that is allowed, and the
refusal is tested for real in a child process that has given up root.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cellcall.bench.load import busy_load
from cellcall.config import ConfigError, load_settings
from cellcall.outbox import render_latency
from cellcall.priority import Grant, favour_calls, run_in_background
from cellcall.record import CallRecord, CallStatus, Direction, TurnLatency

ROOT = os.geteuid() == 0
may_raise = pytest.mark.skipif(not ROOT, reason="raising priority needs root or CAP_SYS_NICE")


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def threads() -> list[int]:
    return [int(name) for name in os.listdir("/proc/self/task")]


@pytest.fixture
def back_to_normal() -> Iterator[None]:
    before = nice_of(threading.get_native_id())
    yield
    favour_calls(before)


class Parked:
    """A thread that waits until told; its native id is known once it runs."""

    def __init__(self, background_nice: int | None = None) -> None:
        self.started, self.release, self.tid = threading.Event(), threading.Event(), 0
        self.nice_inside = 0
        self.thread = threading.Thread(target=self._run, args=(background_nice,), daemon=True)
        self.thread.start()
        assert self.started.wait(5)

    def _run(self, background_nice: int | None) -> None:
        self.tid = threading.get_native_id()
        if background_nice is None:
            self.started.set()
            self.release.wait(10)
            return
        with run_in_background(background_nice):
            self.nice_inside = nice_of(self.tid)
            self.started.set()
            self.release.wait(10)

    def end(self) -> None:
        self.release.set()
        self.thread.join(5)


@may_raise
def test_favour_calls_renices_every_thread_and_later_threads_inherit_it(back_to_normal: None) -> None:
    parked = Parked()
    grant = favour_calls(-5)
    assert grant == Grant(wanted=-5, nice=-5)
    assert {nice_of(tid) for tid in threads()} == {-5}
    later = Parked()  # started after: inherits its creator's nice
    assert nice_of(later.tid) == -5
    parked.end()
    later.end()


@may_raise
def test_a_background_thread_stays_low_while_the_call_is_favoured(back_to_normal: None) -> None:
    favour_calls(0)
    push = Parked(background_nice=10)
    assert push.nice_inside == 10
    favour_calls(-5)  # a call starts while the push is still sending
    assert nice_of(push.tid) == 10
    assert nice_of(threading.get_native_id()) == -5
    push.end()


def test_background_never_raises_a_thread_that_is_already_lower(back_to_normal: None) -> None:
    seen: list[int] = []

    def work() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
        with run_in_background(10):
            seen.append(nice_of(threading.get_native_id()))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    assert seen == [15]


REFUSAL = """
import json, os
from cellcall.priority import favour_calls  # imported first: nobody may not read the interpreter's files
os.setpriority(os.PRIO_PROCESS, 0, 0)  # a favoured test process (an earlier call test) must not pass it on
os.setgid(65534); os.setuid(65534)  # give up root: setpriority below 0 is now refused by the kernel
grant = favour_calls(-10)
print(json.dumps([grant.wanted, grant.nice, grant.granted, grant.describe(), os.getpriority(os.PRIO_PROCESS, 0)]))
"""


@pytest.mark.skipif(not ROOT, reason="the child gives up root to be refused for real")
def test_a_refused_priority_is_reported_and_the_call_goes_on_at_its_own() -> None:
    import json

    done = subprocess.run([sys.executable, "-c", REFUSAL], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wanted, nice, granted, text, actual = json.loads(done.stdout.strip().splitlines()[-1])
    assert (wanted, nice, granted, actual) == (-10, 0, False, 0)
    assert "not -10" in text and "CAP_SYS_NICE" in text
    assert "priority:" in done.stderr  # logged once, as a warning


@may_raise
def test_busy_load_runs_at_nice_0_even_beside_a_favoured_bench(back_to_normal: None) -> None:
    favour_calls(-5)
    with busy_load(1) as pids:
        deadline = time.monotonic() + 10
        while nice_of(pids[0]) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert nice_of(pids[0]) == 0


def test_priority_levels_outside_nice_range_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"priority.call_nice: -30 is not a nice level"):
        load_settings(env={"CELLCALL_PRIORITY_CALL_NICE": "-30"})
    assert load_settings(env={"CELLCALL_PRIORITY_BACKGROUND_NICE": "19"}).priority.background_nice == 19


def _record(**extra: object) -> CallRecord:
    record = CallRecord("call-1", "dentist", "+15551234567", Direction.OUTBOUND, CallStatus.COMPLETED, datetime.now(UTC))
    record.latency = [TurnLatency(turn=1, first_audio_ms=480.0)]
    record.extra.update(extra)
    return record


def test_latency_md_says_at_what_priority_the_call_ran() -> None:
    assert "the call's threads ran at nice -10." in render_latency(_record(cpu_nice=-10))
    refused = render_latency(_record(cpu_nice=0, cpu_nice_refused="the call's threads run at nice 0, not -10: EPERM"))
    assert "not -10: EPERM" in refused and "shared the CPU" in refused
    assert "CPU priority" not in render_latency(_record())
