"""`cellcall serve`: the watch runner in the main thread, uvicorn on its own thread and event loop.

The socket is bound before the runner starts, so a taken port or a refused address ends the command
with a clear error before anything could dial. The server stops after the runner has hung up and
written its reports: event streams are ended first, so the graceful shutdown never waits on them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import NoReturn

import uvicorn

from cellcall.config import Settings
from cellcall.serve.app import ApiContext, create_app, describe
from cellcall.serve.auth import ListenAddress, ServeError, check_exposure, parse_listen
from cellcall.watch.runner import Runner

START_TIMEOUT_S = 15.0


def bind(listen: ListenAddress) -> socket.socket:
    """A listening socket on the address (IPv4 or IPv6), or ServeError saying why not."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    try:
        return socket.create_server((listen.host, listen.port), family=family, backlog=64)
    except OSError as exc:
        raise ServeError(f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}") from None


def tls_files(settings: Settings) -> tuple[str | None, str | None]:
    cert, key = settings.api.tls_cert, settings.api.tls_key
    if bool(cert) != bool(key):
        raise ServeError("TLS needs both --cert and --key (PEM files)")
    for path in (cert, key):
        if path and not Path(path).expanduser().is_file():
            raise ServeError(f"TLS file not found: {path}")
    return (str(Path(cert).expanduser()), str(Path(key).expanduser())) if cert else (None, None)


class ApiServer:
    """The API for one runner's folder, served by uvicorn in a background thread."""

    def __init__(self, ctx: ApiContext, sock: socket.socket, cert: str | None = None, key: str | None = None) -> None:
        self.ctx = ctx
        self._sock = sock
        self._scheme = "https" if cert else "http"
        config = uvicorn.Config(
            create_app(ctx),
            log_level="warning",
            access_log=False,  # request lines would carry call ids into the log; the token never is in a URL
            lifespan="on",
            ssl_certfile=cert,
            ssl_keyfile=key,
            timeout_graceful_shutdown=3,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="cellcall-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{self._scheme}://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServeError(f"the API server did not start on {self.url} (see the log above)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        loop = self.ctx.hub._loop
        if loop is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self.ctx.hub.stop(), loop).result(timeout=5)
            except (RuntimeError, TimeoutError):
                pass  # the loop is already closing: its own shutdown stops the hub
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


def context_for(settings: Settings, runner: Runner) -> ApiContext:
    return ApiContext(settings, runner.inbox.root, runner.outbox_root, runner.hangup_current, runner.log)


def serve(settings: Settings, goals_dir: Path | None = None) -> NoReturn:
    """`cellcall serve`: check the address and token, bind, then run `watch` with the API beside it."""
    from cellcall.watch.runner import watch

    listen = parse_listen(settings.api.listen)
    check_exposure(listen, settings.api.token)
    cert, key = tls_files(settings)
    sock = bind(listen)

    def attach(runner: Runner):  # type: ignore[no-untyped-def]
        server = ApiServer(context_for(settings, runner), sock, cert, key).start()
        runner.log.emit("api-listening", url=server.url, **describe(server.ctx))
        return server.stop

    watch(settings, goals_dir, attach=attach)
