"""Red-team API under ``/v1/redteam`` (docs/REDTEAM.md, "Runs").

Starting, cancelling and importing need ``redteam:run`` (admin, developer); reading runs, reports
and the attack library needs ``redteam:read`` (admin, developer, viewer). Every route is scoped to
the caller's tenant: another tenant's run is a 404. A model-only run (``guard: false``, ``mode:
"model"``) bypasses the guard and needs the admin role as well.

POST /v1/redteam/runs                    202: the run, queued as a ``redteam_run`` job
GET  /v1/redteam/runs                    newest first; ``limit`` (1-100, default 20), ``after``
GET  /v1/redteam/runs/{id}               status, progress, summary
GET  /v1/redteam/runs/{id}/report        the JSON report (409 until the run has one)
GET  /v1/redteam/runs/{id}/report.html   the self-contained page (CSP ``default-src 'none'``)
GET  /v1/redteam/runs/{id}/events        progress as server-sent events until the run ends
POST /v1/redteam/runs/{id}/cancel        stops a queued or running run (409 once finished)
GET  /v1/redteam/attacks                 the library; ``category``, ``technique`` filter it
POST /v1/redteam/imports/garak           a garak report (JSONL body) stored as a run

The routes of the red-team API of seed 004, under Bastion's API prefix, are aliases of these:
POST /api/v1/red-team/start, GET /api/v1/red-team/status?run_id=, GET /api/v1/red-team/results?run_id=.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, query_int
from bastion.api.http import Answer, SSEResponse, json_response, page_body, read_body, read_json
from bastion.auth.principal import Permission, Principal, Role
from bastion.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from bastion.redteam.garak import parse_garak_report
from bastion.redteam.html import render_html
from bastion.redteam.progress import RunEvent, run_events
from bastion.redteam.schema import CATEGORIES, Attack
from bastion.redteam.service import RedteamService
from bastion.redteam.spec import parse_run_spec
from bastion.vault.model import PromptNotFound

PREFIX: Final = "/v1/redteam"
SEED_PREFIX: Final = "/api/v1/red-team"
#: How often a progress stream reads the run, and after how long a quiet stream sends a comment.
STREAM_POLL_S: Final = 0.1
KEEPALIVE_S: Final = 15.0
RUN: Final = PREFIX + "/runs/{run_id}"
#: A garak report of a long scan runs to tens of megabytes.
MAX_IMPORT_BYTES: Final = 64 * 1024 * 1024
CSP: Final = "default-src 'none'; style-src 'unsafe-inline'"


def _service(request: Request) -> RedteamService:
    service = gateway(request).services.redteam
    if service is None:
        raise NotFound("The red team is not enabled on this gateway.")
    return service


async def _runner(request: Request) -> Principal:
    return await authenticate_request(request, Permission.RUN_REDTEAM)


async def _reader(request: Request) -> Principal:
    return await authenticate_request(request, Permission.READ_REDTEAM)


def _run_id(request: Request) -> str:
    value: str | None = request.path_params.get("run_id")
    if value is None:  # the seed routes name the run in the query
        value = request.query_params.get("run_id") or ""
        if not value:
            raise InvalidRequest("Invalid request: run_id (the run's id) is required.", param="run_id")
    if "\x00" in value or len(value) > 64:
        raise NotFound(f"No red-team run {value[:64]!r}.")
    return value


def _query(request: Request, name: str, limit: int = 128) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and (len(value) > limit or "\x00" in value):
        raise InvalidRequest(f"Invalid request: {name} is not valid.", param=name)
    return value


async def start_run(request: Request) -> Response:
    principal = await _runner(request)
    services = gateway(request).services
    spec = parse_run_spec(await read_json(request, services.settings.server.max_body_bytes))
    if not spec.guard and principal.role is not Role.ADMIN:
        raise PermissionDenied(
            "A model-only run (guard false, mode 'model') bypasses the guard: it needs the admin role; "
            "a run through the guard (mode 'gateway') does not."
        )
    group = services.router.groups.get(spec.model)
    if group is None or group.kind != "chat":
        raise InvalidRequest(f"Invalid request: {spec.model!r} is not a chat model of this gateway.", param="model")
    if spec.prompt is not None:
        try:
            await services.vault.resolve(principal.tenant_id, spec.prompt)
        except PromptNotFound:
            raise InvalidRequest(f"Invalid request: no vault prompt {spec.prompt!r}.", param="prompt") from None
    view = await _service(request).submit(principal.identity, spec)
    return json_response(view.to_json(), status=202)


async def list_runs(request: Request) -> Response:
    principal = await _reader(request)
    limit = query_int(request, "limit", 20, 1, 100)
    after = _query(request, "after", 64)
    try:
        views = await _service(request).list(principal.tenant_id, limit + 1, after)
    except NotFound:
        raise InvalidRequest("Invalid request: after names no run of this tenant.", param="after") from None
    data = [view.to_json() for view in views[:limit]]
    return json_response({"object": "list", **page_body(data, len(views) > limit)})


async def get_run(request: Request) -> Response:
    principal = await _reader(request)
    return json_response((await _service(request).view(principal.tenant_id, _run_id(request))).to_json())


def _encode(event: RunEvent) -> bytes:
    if event.kind == "keepalive":
        return b": keep-alive\n\n"
    head = f"id: {event.id}\n" if event.id is not None else ""
    return f"{head}event: {event.kind}\ndata: ".encode() + orjson.dumps(event.data) + b"\n\n"


async def _stream(events: AsyncIterator[RunEvent]) -> AsyncGenerator[bytes, None]:
    async for event in events:
        yield _encode(event)


async def stream_events(request: Request) -> Answer:
    principal = await _reader(request)
    service, run_id = _service(request), _run_id(request)
    await service.view(principal.tenant_id, run_id)  # 404 before the stream starts
    last = request.headers.get("last-event-id", "").strip()
    if last and not last.isdigit():
        raise InvalidRequest("Invalid request: Last-Event-ID must be an event number.", param="Last-Event-ID")
    events = run_events(
        service,
        principal.tenant_id,
        run_id,
        last_id=int(last) if last else None,
        poll_s=STREAM_POLL_S,
        keepalive_s=KEEPALIVE_S,
    )
    return SSEResponse(_stream(events))


async def cancel_run(request: Request) -> Response:
    principal = await _runner(request)
    return json_response((await _service(request).cancel(principal.tenant_id, _run_id(request))).to_json())


async def _report(request: Request) -> dict[str, Any]:
    """The run's report. One of a run on a vault prompt quotes what the model leaked of it, so it
    needs ``redteam:run`` too (who may start a run may call the prompt), not only ``redteam:read``."""
    principal = await _reader(request)
    service, run_id = _service(request), _run_id(request)
    view = await service.view(principal.tenant_id, run_id)
    if view.run.prompt_id is not None and not principal.can(Permission.RUN_REDTEAM):
        raise PermissionDenied(
            "This run attacked a vault prompt: its report quotes the answers, which may hold the prompt's "
            "text; reading it needs redteam:run (its summary is on the run)."
        )
    return await service.report(principal.tenant_id, run_id)


async def get_report(request: Request) -> Response:
    return json_response(await _report(request))


async def get_report_html(request: Request) -> Response:
    report = await _report(request)
    if report.get("schema") != "bastion.redteam.report":
        raise Conflict("This run was imported: its report has no HTML page (GET .../report has it as JSON).")
    headers = {"content-security-policy": CSP, "x-content-type-options": "nosniff"}
    return Response(render_html(report), media_type="text/html; charset=utf-8", headers=headers)


def attack_json(attack: Attack) -> dict[str, Any]:
    return {"object": "redteam.attack", **attack.model_dump(mode="json"), "goal": attack.resolved_goal}


async def list_attacks(request: Request) -> Response:
    await _reader(request)
    category, technique = _query(request, "category"), _query(request, "technique")
    if category is not None and category not in CATEGORIES:
        raise InvalidRequest(
            f"Invalid request: unknown category {category!r}; known: {', '.join(CATEGORIES)}.", param="category"
        )
    attacks = [
        attack_json(attack)
        for attack in sorted(_service(request).library, key=lambda a: a.id)
        if (category is None or attack.category == category) and (technique is None or attack.technique == technique)
    ]
    return json_response({"object": "list", "data": attacks})


async def import_garak(request: Request) -> Response:
    """The body is the report itself (JSON Lines), or ``{"report": "<JSONL>", "target": "..."}``;
    ``target`` (also a query parameter) names the model when the report does not."""
    principal = await _runner(request)
    raw = await read_body(request, MAX_IMPORT_BYTES)
    target = _query(request, "target", 256)
    text: Any = raw.decode("utf-8", errors="replace")
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() == "application/json":
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest("Request body is not valid JSON.") from None
        if not isinstance(body, dict) or not isinstance(body.get("report"), str):
            raise InvalidRequest("Invalid request: report must be the garak report's text.", param="report")
        text, target = body["report"], body.get("target") if isinstance(body.get("target"), str) else target
    if not text.strip():
        raise InvalidRequest("Invalid request: the garak report is empty.", param="file")
    view = await _service(request).import_garak(principal.identity, parse_garak_report(text, target=target))
    return json_response(view.to_json(), status=201)


routes = [
    Route(PREFIX + "/runs", start_run, methods=["POST"]),
    Route(PREFIX + "/runs", list_runs, methods=["GET"]),
    Route(RUN, get_run, methods=["GET"]),
    Route(RUN + "/report", get_report, methods=["GET"]),
    Route(RUN + "/report.html", get_report_html, methods=["GET"]),
    Route(RUN + "/events", stream_events, methods=["GET"]),
    Route(RUN + "/cancel", cancel_run, methods=["POST"]),
    Route(PREFIX + "/attacks", list_attacks, methods=["GET"]),
    Route(PREFIX + "/imports/garak", import_garak, methods=["POST"]),
    # Seed 004's names: the same handlers (``run_id`` in the query instead of the path).
    Route(SEED_PREFIX + "/start", start_run, methods=["POST"]),
    Route(SEED_PREFIX + "/status", get_run, methods=["GET"]),
    Route(SEED_PREFIX + "/results", get_report, methods=["GET"]),
]
