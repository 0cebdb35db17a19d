"""One NATS connection per process, run on its own asyncio thread.

nats-py is asyncio-only and the runner is a plain thread, so `QueueClient` starts an event loop in
a daemon thread that owns the connection, the JetStream context and every bucket handle; other
threads only submit coroutines through `run()` and wait for the result. The client reconnects by
itself (forever) after a lost server; `run()` fails fast meanwhile and callers retry later.
Secrets (queue.token, queue.password: from CELLCALL_QUEUE_TOKEN / CELLCALL_QUEUE_PASSWORD through the
config loader, or the config file) never reach an error message.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from cellcall.config import QueueSettings

T = TypeVar("T")

TOKEN_ENV = "CELLCALL_QUEUE_TOKEN"
USER_ENV = "CELLCALL_QUEUE_USER"
PASSWORD_ENV = "CELLCALL_QUEUE_PASSWORD"

GOALS_STREAM = "CELLCALL_GOALS"  # work queue: a goal leaves it when a worker acks it
GOALS_SUBJECT = "cellcall.goals"  # .any or .line.<token>
REPORTS_STREAM = "CELLCALL_REPORTS"
REPORTS_SUBJECT = "cellcall.reports"  # .<worker token>
CLAIMS_BUCKET = "cellcall-claims"
WORKERS_BUCKET = "cellcall-workers"
LEDGER_BUCKET = "cellcall-fleet"
REPORTS_MAX_AGE_S = 90 * 86400.0
CLAIMS_MAX_AGE_S = 30 * 86400.0  # a claim is remembered this long: the same goal pushed again is a duplicate


class QueueError(RuntimeError):
    """The queue cannot be used (no server, refused credentials, a bad URL); the message says which."""


def line_name(settings: QueueSettings) -> str:
    return settings.line_name or socket.gethostname()


def _tls_context(settings: QueueSettings) -> ssl.SSLContext | None:
    if urlsplit(settings.url).scheme != "tls":
        return None
    return ssl.create_default_context(cafile=settings.tls_ca or None)


def _explain(exc: BaseException, url: str) -> QueueError:
    text = str(exc).lower()
    if "authorization" in text or "authentication" in text:
        return QueueError(
            f"the queue server at {url} refused this worker's credentials (authorization violation): "
            f"check {TOKEN_ENV} (or {USER_ENV} / {PASSWORD_ENV})"
        )
    return QueueError(f"cannot reach the queue server at {url}: {type(exc).__name__}")


class QueueClient:
    """A connected NATS client with the fleet's streams and buckets; thread-safe through `run()`."""

    def __init__(self, settings: QueueSettings, *, connect_timeout_s: float = 5.0) -> None:
        scheme = urlsplit(settings.url).scheme
        if scheme not in ("nats", "tls"):
            raise QueueError(f"queue.url must start with nats:// or tls://, got {settings.url!r}")
        self.settings = settings
        self.connected = threading.Event()  # set while the server is reachable
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cellcall-queue", daemon=True)
        self._thread.start()
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.buckets: dict[str, KeyValue] = {}
        self._first_errors: list[BaseException] | None = None  # errors seen while the first connect is under way
        try:
            self.run(self._connect(), timeout=connect_timeout_s + 5.0)
        except BaseException:
            self.close()
            raise

    # --- from any thread ----------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coro` on the queue thread and wait for it; a stalled server is a QueueError."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout as exc:
            if future.done():
                raise  # the coroutine's own timeout (an empty fetch), not a stalled server
            future.cancel()
            raise QueueError("the queue server did not answer in time") from exc

    def spawn(self, factory: Callable[[], Awaitable[None]]) -> None:
        """Start a background task on the queue thread (a heartbeat)."""
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(factory()))  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the background tasks (heartbeats), close the connection, end the queue thread."""
        try:
            self.run(self._cancel_tasks(), timeout=5.0)
        except Exception:  # noqa: BLE001 - a stuck task must not keep the process from closing
            pass
        if self.nc is not None and not self.nc.is_closed:
            try:
                self.run(self.nc.close(), timeout=5.0)
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; the process goes on
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5.0)

    # --- on the queue thread ------------------------------------------------------------------
    async def _cancel_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect(self) -> None:
        settings = self.settings
        options: dict[str, Any] = {
            "servers": [settings.url],
            "connect_timeout": 3,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "name": f"cellcall {line_name(settings)} pid {os.getpid()}",
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnect,
            "reconnected_cb": self._on_reconnect,
        }
        tls = _tls_context(settings)
        if tls is not None:
            options["tls"] = tls
        if settings.token:
            options["token"] = settings.token
        if settings.user:
            options["user"] = settings.user
            options["password"] = settings.password
        self.nc = await self._first_connect(options)
        self._first_errors = None
        self.connected.set()
        self.js = self.nc.jetstream(timeout=3.0)
        await self._ensure_layout()

    async def _first_connect(self, options: dict[str, Any]) -> Client:
        """Connect once; a refused credential ends it at once (the client itself would retry forever)."""
        errors: list[BaseException] = []
        self._first_errors = errors
        attempt = asyncio.ensure_future(nats.connect(**options))
        deadline = time.monotonic() + float(options["connect_timeout"]) + 2.0
        while not attempt.done():
            refused = next((e for e in errors if "authoriz" in str(e).lower()), None)
            if refused is not None or time.monotonic() > deadline:
                attempt.cancel()
                raise _explain(refused or TimeoutError(), self.settings.url)
            await asyncio.sleep(0.05)
        try:
            return attempt.result()
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear QueueError
            raise _explain(next(iter(errors), exc), self.settings.url) from None

    async def _ensure_layout(self) -> None:
        """Create the streams and buckets if this is the first worker (idempotent)."""
        assert self.js is not None
        js = self.js
        streams = (
            StreamConfig(name=GOALS_STREAM, subjects=[f"{GOALS_SUBJECT}.>"], retention=RetentionPolicy.WORK_QUEUE),
            StreamConfig(name=REPORTS_STREAM, subjects=[f"{REPORTS_SUBJECT}.>"], max_age=REPORTS_MAX_AGE_S),
        )
        for config in streams:
            try:
                await js.stream_info(config.name or "")
            except NotFoundError:
                await js.add_stream(config)
        for bucket, max_age in ((CLAIMS_BUCKET, CLAIMS_MAX_AGE_S), (WORKERS_BUCKET, 86400.0), (LEDGER_BUCKET, 0.0)):
            try:
                self.buckets[bucket] = await js.key_value(bucket)
            except BucketNotFoundError:
                self.buckets[bucket] = await js.create_key_value(bucket=bucket, history=1, ttl=max_age or None)

    async def pull(self, route: str, ack_wait_s: float) -> JetStreamContext.PullSubscription:
        """The shared durable consumer of one route (`any` or `line.<token>`); workers of a route share it."""
        assert self.js is not None
        durable = "route-" + route.replace(".", "-")
        config = ConsumerConfig(ack_wait=ack_wait_s, max_deliver=-1, max_ack_pending=-1)
        return await self.js.pull_subscribe(f"{GOALS_SUBJECT}.{route}", durable=durable, stream=GOALS_STREAM, config=config)

    async def _on_error(self, exc: Exception) -> None:
        if self._first_errors is not None:
            self._first_errors.append(exc)

    async def _on_disconnect(self) -> None:
        self.connected.clear()

    async def _on_reconnect(self) -> None:
        self.connected.set()
