"""CPU priority: the live call runs ahead of other work on the box, and background work runs behind it.

On two cores a busy box takes the CPU from STT and the LLM in equal shares (4 spinning processes took
voice-to-voice from 474 to 1344 ms). Telephony servers run at a raised priority for this reason (Asterisk
`-p`, FreeSWITCH `-hp`). On Linux the nice value belongs to each thread and a new thread inherits its
creator's, so `favour_calls` renices every thread of the process once, before a call, and the threads the
engines start later (llama.cpp's, CTranslate2's, onnxruntime's pools) inherit it. Raising priority needs
root, CAP_SYS_NICE or an RLIMIT_NICE that allows it (systemd: `Nice=-10` or `LimitNICE=-10`); without it the
call keeps nice 0 and says so. Work that must not take the CPU from a call (pushes, git commits) lowers its
own thread with `run_in_background`, which anyone may do.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

TASKS = "/proc/self/task"
PER_THREAD = sys.platform.startswith("linux")  # elsewhere a nice value is the whole process's


@dataclass(frozen=True)
class Grant:
    """What `favour_calls` asked for and what the process runs at; `why` says why they differ."""

    wanted: int
    nice: int
    why: str = ""

    @property
    def granted(self) -> bool:
        return self.nice == self.wanted

    def describe(self) -> str:
        if self.granted:
            return f"the call's threads run at nice {self.nice}"
        return f"the call's threads run at nice {self.nice}, not {self.wanted}: {self.why}"


# Native thread ids that lowered themselves; favour_calls leaves them low. Written by those threads
# (add on entry, discard on exit) and read by favour_calls' caller, under _lock.
_background: set[int] = set()
_lock = threading.Lock()
_refusal_logged = False  # favour_calls' callers only: the refusal is logged once a process, not every call


def _threads() -> list[int]:
    """Native ids of this process's threads (Linux: PRIO_PROCESS with a thread id sets that one thread);
    elsewhere 0, which setpriority reads as the whole process."""
    return sorted(int(name) for name in os.listdir(TASKS)) if PER_THREAD else [0]


def favour_calls(nice: int) -> Grant:
    """Run every thread of this process (bar the background ones) at `nice`; never raises.

    Cheap (one syscall a thread), so it is called before every call: threads started since, by whatever
    thread was not yet favoured, are caught too.
    """
    global _refusal_logged
    with _lock:
        background = set(_background)
    done: set[int] = set()
    try:
        while pending := [tid for tid in _threads() if tid not in done and tid not in background]:
            for tid in pending:
                done.add(tid)
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
                except ProcessLookupError:
                    continue  # the thread ended meanwhile
    except OSError as exc:  # EPERM / EACCES: not root, no CAP_SYS_NICE, RLIMIT_NICE too low
        current = os.getpriority(os.PRIO_PROCESS, 0)
        why = f"{exc.strerror or exc} (raising priority needs root, CAP_SYS_NICE or LimitNICE={nice})"
        grant = Grant(wanted=nice, nice=current, why=why)
        if not _refusal_logged:
            log.warning("priority: %s; on a busy box the call shares the CPU with other work", grant.describe())
            _refusal_logged = True
        return grant
    return Grant(wanted=nice, nice=nice)


class run_in_background:
    """`with run_in_background(10):` the calling thread runs at nice 10 (never higher than it was) for the block.

    Lowering is allowed to anyone; raising it back is not, so the thread stays low unless the process may
    raise priority. Use it on threads of their own (a push, a git commit), not on a call's threads.
    """

    def __init__(self, nice: int) -> None:
        self.nice = nice
        self._tid = 0
        self._before = 0

    def __enter__(self) -> run_in_background:
        self._tid = threading.get_native_id()
        self._before = os.getpriority(os.PRIO_PROCESS, 0)
        if not PER_THREAD or self.nice <= self._before:
            return self  # lowering would lower the whole process there; or it is low enough already
        with _lock:
            _background.add(self._tid)
        try:
            os.setpriority(os.PRIO_PROCESS, self._tid, self.nice)
        except OSError as exc:  # a sandbox that forbids even lowering: run on at the same priority
            log.debug("priority: could not lower thread %s: %s", self._tid, exc)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with _lock:
            if self._tid not in _background:
                return
            _background.discard(self._tid)
        try:
            os.setpriority(os.PRIO_PROCESS, self._tid, self._before)
        except OSError:
            pass  # not permitted to raise it back: the thread stays low, which only slows background work
