"""The ASGI application: routes, the error boundary and start-up/shut-down.

``Boundary`` wraps every request, fast lane and Starlette routes alike. It stamps every response
with ``x-request-id`` and ``x-bastion-overhead-ms``, and it is the one place a failure becomes a
response: a ``BastionError`` is rendered in the caller's dialect (``bastion/api/errors.py``),
anything else is logged and answered with a plain 500 that reveals nothing.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.api import admin as admin_api  # identity: tenants, users, keys
from bastion.api import admin_analyzer as admin_analyzer_api  # prompt analysis and rewrites
from bastion.api import admin_experiments as admin_experiments_api  # experiments, results; /v1/feedback
from bastion.api import admin_jobs as admin_jobs_api  # background jobs: list, inspect, cancel, retry
from bastion.api import admin_ledger as admin_ledger_api  # ledger: interactions
from bastion.api import admin_prompts as admin_prompts_api  # prompt vault admin routes
from bastion.api import admin_review as admin_review_api  # review queue, datasets, fine-tune exports
from bastion.api import agents as agents_api  # agent runs: /v1/agents
from bastion.api import anthropic as anthropic_api
from bastion.api import batches as batches_api  # OpenAI Batch API: /v1/batches
from bastion.api import bulk as bulk_api  # bulk on agent sessions: /api/v1/ai/batch
from bastion.api import completions as completions_api  # legacy /v1/completions
from bastion.api import dashboard as dashboard_api  # the insights dashboard: /dashboard
from bastion.api import files as files_api  # OpenAI Files API: /v1/files
from bastion.api import insights as insights_api  # roll-ups over the ledger, log ingestion
from bastion.api import insights_redteam as insights_redteam_api  # red-team runs for the dashboard
from bastion.api import knowledge as knowledge_api  # knowledge collections and search: /v1/knowledge
from bastion.api import message_batches as message_batches_api  # Anthropic: /v1/messages/batches
from bastion.api import moderations as moderations_api  # /v1/moderations, answered by the guard
from bastion.api import openai as openai_api
from bastion.api import openapi as openapi_api  # GET /openapi.json
from bastion.api import redteam as redteam_api  # red-team runs and the attack library: /v1/redteam
from bastion.api import responses as responses_api  # OpenAI Responses API: /v1/responses
from bastion.api import sessions as sessions_api  # agent sessions: /api/v1/ai/sessions, /api/v1/ai/chat
from bastion.api import system as system_api
from bastion.api.errors import error_body, error_headers
from bastion.api.http import Answer, ClientDisconnected
from bastion.config.settings import CorsSettings, Settings
from bastion.dialects.errors import dialect_for_path
from bastion.errors import BastionError, NotFound
from bastion.gateway.compose import build_gateway
from bastion.gateway.context import Timing, new_request_id
from bastion.gateway.service import Gateway
from bastion.observability.metrics import OVERHEAD

log = structlog.get_logger("bastion.gateway")


class Boundary:
    """Stamps every response, and turns whatever escaped an endpoint into the dialect's error JSON."""

    def __init__(self) -> None:
        self._overhead = {name: OVERHEAD.labels(endpoint=name) for name in ("v1", "admin", "system")}

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        timing = Timing()
        rid = new_request_id()
        state = scope.setdefault("state", {})
        state["timing"] = timing
        state["request_id"] = rid
        path: str = scope["path"]
        histogram = self._overhead["v1" if path.startswith("/v1") else "admin" if path.startswith("/api") else "system"]
        started = False

        async def send_stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                overhead_ms = timing.overhead_ms()
                headers = list(message.get("headers") or ())
                headers.append((b"x-request-id", rid.encode()))
                headers.append((b"x-bastion-overhead-ms", f"{overhead_ms:.3f}".encode()))
                message = {**message, "headers": headers}
                histogram.observe(overhead_ms / 1000.0)
            await send(message)

        try:
            await app(scope, receive, send_stamped)
        except BastionError as exc:
            error = exc
        except (ClientDisconnected, ClientDisconnect):
            # The client went away (mid-upload or while waiting): nobody to answer, nothing wrong here.
            log.info("client_disconnected", path=path, request_id=rid)
            return
        except Exception:
            log.exception("unhandled_error", path=path, request_id=rid)
            error = BastionError("Internal error.")
        if started:  # a response was under way: it cannot be replaced, only cut short
            return
        await send_stamped(
            {"type": "http.response.start", "status": error.status, "headers": error_headers(error, rid)}
        )
        await send_stamped({"type": "http.response.body", "body": error_body(error, dialect_for_path(path))})


class BoundaryMiddleware:
    """The boundary as Starlette middleware, for every route outside the fast lane."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.boundary = Boundary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.boundary(self.app, scope, receive, send)


def _endpoint_app(handler: Callable[[Request], Awaitable[Answer]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive))
        await response(scope, receive, send)

    return app


class BastionApp(Starlette):
    """Starlette, plus a fast lane for the model endpoints.

    ``POST /v1/chat/completions``, ``/v1/messages`` and ``/v1/embeddings`` carry nearly all the
    traffic; they skip Starlette's middleware stack and router, whose wrappers cost several
    microseconds on every ASGI message (and a stream sends one message per chunk). Everything
    else, and these paths with any other method, takes the ordinary Starlette route.
    """

    def __init__(
        self,
        *args: Any,
        fast_lane: dict[str, Callable[[Request], Awaitable[Answer]]],
        cors: CorsSettings | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._fast_lane = {path: _endpoint_app(handler) for path, handler in fast_lane.items()}
        self._boundary = Boundary()
        # CORS wraps both lanes, so preflights and answers to the hot paths carry its headers too;
        # only requests with an Origin header (browsers) take the detour.
        self._cors: ASGIApp | None = None
        if cors is not None and cors.allowed_origins:
            self._cors = CORSMiddleware(
                self._dispatch,
                allow_origins=cors.allowed_origins,
                allow_methods=cors.allowed_methods,
                allow_headers=cors.allowed_headers,
                expose_headers=cors.expose_headers,
                max_age=cors.max_age_s,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, self._one_line_startup_failure(send))
            return
        if self._cors is not None and scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    await self._cors(scope, receive, send)
                    return
        await self._dispatch(scope, receive, send)

    def _one_line_startup_failure(self, send: Send) -> Send:
        """Starlette reports a failed start with the whole traceback; the server logs that as is.
        The failure has already been reported in one line: hand the server that line instead."""

        async def send_lifespan(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                message = {**message, "message": getattr(self.state, "startup_error", "start-up failed")}
            await send(message)

        return send_lifespan

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._fast_lane.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await self._boundary(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _routing_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 become Bastion errors, rendered by the boundary like any other."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        raise NotFound(f"No route for {request.method} {request.url.path}.")
    if exc.status_code == 405:
        error = BastionError(
            f"Method {request.method} is not allowed here.",
            status=405,
            code="method_not_allowed",
            headers=dict(exc.headers or {}),
        )  # with Starlette's Allow header, which RFC 9110 requires on a 405
        error.error_type = "invalid_request_error"
        raise error
    raise BastionError(str(exc.detail), status=exc.status_code)


def report_startup_failure(exc: BaseException) -> str:
    """One line on stderr and in the log for a failure to start (the traceback only at debug level)."""
    detail = str(exc).strip().splitlines()
    line = f"start-up failed: {type(exc).__name__}" + (f": {detail[0]}" if detail else "")
    log.error("startup_failed", error=line)
    log.debug("startup_failed_traceback", exc_info=exc)
    print(f"bastion: {line}", file=sys.stderr, flush=True)
    return line


def freeze_startup_heap() -> None:
    """Keep everything built at start-up, which lives for the process, out of the collector's scans.

    A full collection otherwise walks the whole heap while holding the interpreter lock: about
    200 ms for a gateway's, triggered by any request that leaves many objects alive for a moment
    (a megabyte prompt full of PII leaves one finding per match), and every other request waits.
    """
    gc.collect()
    gc.freeze()


def thaw_startup_heap() -> None:
    """Undo ``freeze_startup_heap`` when the gateway stops (for a process that goes on running)."""
    gc.unfreeze()


def create_app(settings: Settings, gateway: Gateway | None = None) -> Starlette:
    gw = gateway or build_gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await gw.start()
        except Exception as exc:
            app.state.startup_error = report_startup_failure(exc)
            raise
        freeze_startup_heap()
        try:
            yield
        finally:
            thaw_startup_heap()
            await gw.stop()

    app = BastionApp(
        fast_lane={
            "/v1/chat/completions": openai_api.chat_completions,
            "/v1/embeddings": openai_api.embeddings,
            "/v1/messages": anthropic_api.messages,
        },
        cors=settings.server.cors,
        routes=[
            *openai_api.routes,
            *responses_api.routes,
            *files_api.routes,
            *batches_api.routes,
            *message_batches_api.routes,
            *anthropic_api.routes,
            *completions_api.routes,
            *moderations_api.routes,
            *system_api.routes,
            *admin_api.routes,
            *admin_ledger_api.routes,
            *admin_prompts_api.routes,
            *admin_analyzer_api.routes,
            *admin_jobs_api.routes,
            *admin_review_api.routes,
            *admin_experiments_api.routes,
            *insights_api.routes,
            *insights_redteam_api.routes,
            *dashboard_api.routes,
            *sessions_api.routes,
            *bulk_api.routes,
            *knowledge_api.routes,
            *agents_api.routes,
            *redteam_api.routes,
            *openapi_api.routes,
        ],
        exception_handlers={HTTPException: _routing_error},
        lifespan=lifespan,
    )
    app.state.gateway = gw
    app.add_middleware(BoundaryMiddleware)
    return app
