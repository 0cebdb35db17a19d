"""The SIP stack's own thread: an asyncio loop that owns baresip's Runtime and everything it creates.

baresip-python is asyncio-only and allows one Runtime per process, while the call loop is plain
threads. So one thread runs a private event loop; other threads hand it coroutines through
`run()` (blocking, with a timeout) or `spawn()` (fire and forget), never touching baresip objects
themselves. Stopping closes the Runtime inside that loop, then ends the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cellcall.line import LineError

log = logging.getLogger(__name__)

T = TypeVar("T")


class StackThread:
    """One daemon thread running one event loop until `stop()`."""

    def __init__(self, name: str = "sip-stack") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._cancel_leftovers()
        self._loop.close()

    def _cancel_leftovers(self) -> None:
        """Cancel tasks still pending at stop (a ring timer, a media pump) and let them unwind, as asyncio.run does."""
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the stack loop and wait for its result (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise LineError("internal: StackThread.run called from the stack thread itself")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise LineError(f"the SIP stack did not answer within {timeout:g} s") from None

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Start `coro` on the stack loop without waiting; its failure is logged."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.add_done_callback(_log_failure)

    def call_soon(self, fn: Callable[[], object]) -> None:
        self._loop.call_soon_threadsafe(fn)

    def stop(self, closing: Callable[[], Awaitable[None]] | None = None, timeout: float = 8.0) -> None:
        """Run `closing()` on the loop (releasing the Runtime), then end the loop and join the thread."""
        if not self.alive:
            return
        if closing is not None:
            try:
                self.run(_awaited(closing), timeout)
            except Exception as exc:  # noqa: BLE001 - shutting down: report, then stop the loop anyway
                log.warning("SIP stack shutdown step failed: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


async def _awaited(make: Callable[[], Awaitable[None]]) -> None:
    await make()


def _log_failure(future: concurrent.futures.Future[object]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.warning("SIP stack task failed: %s", exc)
