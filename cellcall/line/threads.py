"""Stopping the line's worker threads: set the flag, join unless a thread is stopping itself."""

from __future__ import annotations

import threading


def stop_thread(thread: threading.Thread, stop: threading.Event, timeout: float = 2.0) -> None:
    """Ask `thread` to end via `stop` and wait for it (never from inside it: a thread cannot join itself)."""
    stop.set()
    if thread.is_alive() and threading.current_thread() is not thread:
        thread.join(timeout=timeout)
