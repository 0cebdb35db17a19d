"""The HTTP API's routes (Starlette): place, list, read and hang up calls; status; the event stream; the page.

Every /v1 route needs the bearer token (when one is configured) and counts against the token's rate.
Route handlers that touch files are plain functions, which Starlette runs in its thread pool, so the
server's loop (the event stream) never waits on a disk. Errors are JSON: `{"error": ...}`, or
`{"errors": [{"line", "message"}]}` for a goal that cannot be used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cellcall.config import Settings
from cellcall.outbox import AUDIO, REPORT, TRANSCRIPT
from cellcall.serve.auth import RateLimiter, bearer_ok, token_id
from cellcall.serve.events import EventHub
from cellcall.serve.lookup import CallBook, CallView
from cellcall.serve.page import page_response
from cellcall.serve.placing import BadRequest, CallDesk
from cellcall.trace import summarize
from cellcall.watch.eventlog import EventLog
from cellcall.watch.reports import _latencies as latency_rows  # the one reader of latency.jsonl
from cellcall.watch.status import collect

MAX_BODY = 64 * 1024
GOAL_TYPES = ("text/markdown", "text/x-markdown", "text/plain")
log = logging.getLogger(__name__)


@dataclasses.dataclass
class ApiContext:
    """What the routes work on; the runner is reached only through `hangup` and the log."""

    settings: Settings
    goals: Path
    outbox: Path
    hangup: Callable[[str], bool]  # Runner.hangup_current(goal file name)
    log: EventLog
    desk: CallDesk = dataclasses.field(init=False)
    book: CallBook = dataclasses.field(init=False)
    hub: EventHub = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.desk = CallDesk(self.settings, self.goals, self.outbox)
        self.book = CallBook(self.goals, self.outbox, self.desk, Path(self.settings.inbound.goal).name)
        self.hub = EventHub(self.goals, max_clients=self.settings.api.sse_clients)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    """Token check (401) and per-token rate (429) in front of /v1; failed tokens are rated per client address."""

    def __init__(self, app: ASGIApp, token: str, limiter: RateLimiter) -> None:
        self.app = app
        self._token = token
        self._limiter = limiter
        self._key = token_id(token) if token else "local"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not bearer_ok(headers.get("authorization"), self._token):
            client = (scope.get("client") or ("?", 0))[0]
            wait = self._limiter.allow(f"unauthorised:{client}")
            response = (
                error(429, "too many requests with a wrong token", {"Retry-After": str(int(wait) + 1)})
                if wait
                else error(
                    401, "missing or wrong token: send Authorization: Bearer <CELLCALL_API_TOKEN>", {"WWW-Authenticate": "Bearer"}
                )
            )
            await response(scope, receive, send)
            return
        wait = self._limiter.allow(self._key)
        if wait:
            await error(429, f"rate limit: {self._limiter.capacity} requests per minute", {"Retry-After": str(int(wait) + 1)})(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def create_app(ctx: ApiContext) -> Starlette:
    """The ASGI app: routes, the token guard, JSON errors, and the event hub started with the server."""

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        ctx.hub.start(ctx.log)
        try:
            yield
        finally:
            await ctx.hub.stop()

    async def post_call(request: Request) -> Response:
        kind = request.headers.get("content-type", "text/markdown").split(";")[0].strip().lower()
        if kind not in GOAL_TYPES:
            return error(415, f"send the goal file as text/markdown (got {kind or 'no content type'})")
        body = await _read_capped(request)
        if body is None:
            return error(413, f"the goal is larger than {MAX_BODY // 1024} KiB")
        try:
            placed = await run_in_threadpool(ctx.desk.place, body, ctx.settings.api.token, request.headers.get("idempotency-key"))
        except BadRequest as exc:
            return JSONResponse({"errors": exc.errors}, status_code=exc.status)
        if placed.status == 403 and not placed.replayed:
            ctx.hub.publish("refused", {"call_id": placed.body["call_id"], "reason": placed.body["reason"]})
        headers = {"Location": f"/v1/calls/{placed.body['call_id']}"}
        if placed.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(placed.body, status_code=placed.status, headers=headers)

    def list_calls(request: Request) -> Response:
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= 200:
            return JSONResponse({"errors": [{"line": None, "message": "limit must be a whole number from 1 to 200"}]}, 422)
        limit = int(raw)
        active = [view.to_json(with_record=False) for view in ctx.book.active()]
        return JSONResponse({"calls": (active + ctx.book.recent(limit))[:limit]})

    def get_call(request: Request) -> Response:
        return JSONResponse(_view(request).to_json())

    def get_transcript(request: Request) -> Response:
        return _markdown(_folder(_view(request)) / TRANSCRIPT)

    def get_report(request: Request) -> Response:
        view = _view(request)
        if not view.final:
            return error(404, f"no report yet: the call is {view.status} (poll GET /v1/calls/{view.call_id})")
        return _markdown(_folder(view) / REPORT)

    def get_metrics(request: Request) -> Response:
        view = _view(request)
        rows = latency_rows(_folder(view))
        stats = {name: dataclasses.asdict(value) for name, value in summarize(rows).items()}
        return JSONResponse({"call_id": view.call_id, "rows": [dataclasses.asdict(row) for row in rows], "summary": stats})

    def get_audio(request: Request) -> Response:
        view = _view(request)
        path = _folder(view) / AUDIO
        if not path.is_file():
            return error(404, f"call {view.call_id} has no audio (not answered, still running, or outbox.audio is off)")
        return FileResponse(path, media_type="audio/wav")

    def hangup(request: Request) -> Response:
        view = _view(request)
        if view.status != "running":
            return error(409, f"call {view.call_id} is {view.status}, not in progress: nothing to hang up")
        if not ctx.hangup(f"{view.call_id}.md"):
            return error(409, f"call {view.call_id} ended before the hang-up reached it")
        return JSONResponse({"call_id": view.call_id, "status": "hanging-up"}, status_code=202)

    def status(request: Request) -> Response:
        data = collect(ctx.settings, ctx.goals)
        data["api"] = {"event_clients": ctx.hub.clients, "dropped_event_clients": ctx.hub.dropped_clients}
        return JSONResponse(data)

    async def events(request: Request) -> Response:
        if not ctx.hub.accepting():
            return error(503, f"too many event streams open (api.sse_clients = {ctx.hub.max_clients})", {"Retry-After": "5"})
        last = request.headers.get("last-event-id", "")
        after = int(last) if last.isdigit() else None
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(ctx.hub.stream(after), media_type="text/event-stream", headers=headers)

    async def page(request: Request) -> Response:
        return page_response()

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/v1/calls", post_call, methods=["POST"]),
        Route("/v1/calls", list_calls, methods=["GET"]),
        Route("/v1/calls/{call_id}", get_call, methods=["GET"]),
        Route("/v1/calls/{call_id}/transcript", get_transcript, methods=["GET"]),
        Route("/v1/calls/{call_id}/report", get_report, methods=["GET"]),
        Route("/v1/calls/{call_id}/metrics", get_metrics, methods=["GET"]),
        Route("/v1/calls/{call_id}/audio", get_audio, methods=["GET"]),
        Route("/v1/calls/{call_id}/hangup", hangup, methods=["POST"]),
        Route("/v1/events", events, methods=["GET"]),
    ]

    def _view(request: Request) -> CallView:
        call_id = request.path_params["call_id"]
        view = ctx.book.find(call_id)
        if view is None:
            raise HTTPException(404, f"no call {call_id!r} (see GET /v1/calls)")
        return view

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def crash(request: Request, exc: Exception) -> Response:
        log.error("cellcall serve: %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error(500, "internal error; the server log says more")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error, Exception: crash})
    app.add_middleware(Guard, token=ctx.settings.api.token, limiter=RateLimiter(ctx.settings.api.rate_per_minute))
    return app


def _folder(view: CallView) -> Path:
    if view.folder is None:
        raise HTTPException(404, f"call {view.call_id} is {view.status}: nothing recorded yet")
    return view.folder


def _markdown(path: Path) -> Response:
    try:
        return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")
    except FileNotFoundError:
        raise HTTPException(404, f"{path.name} is not written yet") from None


async def _read_capped(request: Request) -> bytes | None:
    """The request body, or None as soon as it passes MAX_BODY (the rest is never read into memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def describe(ctx: ApiContext) -> dict[str, Any]:
    """Where this API works (for the startup log line; never the token)."""
    return {"goals": str(ctx.goals), "outbox": str(ctx.outbox), "auth": "token" if ctx.settings.api.token else "loopback only"}
