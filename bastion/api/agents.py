"""Agent runs API under ``/v1/agents`` (docs/AGENTS.md, "API").

Starting and cancelling runs needs ``agents:run`` (admin, developer); reading runs, traces, the
templates and the sandbox needs ``agents:read`` (admin, developer, viewer). Every run belongs to
its tenant: another tenant's run is a 404. A run is a job: ``POST /v1/agents/runs`` answers 202
with the queued run, or waits for its end (``"wait": true``, at most ``agents.wait_s``), or streams
its trace as server-sent events (``"stream": true`` or ``Accept: text/event-stream``); ``GET
/v1/agents/runs/{id}/events`` streams an existing run's, resuming after ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.agents.runner import wait_finished
from bastion.agents.service import AgentRuns, parse_run_request, run_json, trace_json
from bastion.agents.store import RunView
from bastion.api.common import authenticate_request, gateway
from bastion.api.http import Answer, SSEResponse, json_response, read_json
from bastion.auth.principal import Identity, Permission, Principal
from bastion.errors import InvalidRequest, NotFound

PREFIX: Final = "/v1/agents"
RUN: Final = PREFIX + "/runs/{run_id}"
#: How often a stream looks for new trace events in the stored run.
STREAM_POLL_S: Final = 0.1


def _service(request: Request) -> AgentRuns:
    service = gateway(request).services.agents
    if service is None:
        raise NotFound("Agent runs are not enabled on this gateway.")
    return service


def _run_id(request: Request) -> str:
    value: str = request.path_params["run_id"]
    if "\x00" in value or len(value) > 64:
        raise NotFound(f"No agent run {value[:64]!r}.")
    return value


def _owner(principal: Principal) -> Identity:
    return Identity(principal.tenant_id, principal.method, principal.key_id, principal.user_id)


async def start_run(request: Request) -> Answer:
    principal = await authenticate_request(request, Permission.RUN_AGENTS)
    service = _service(request)
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    run = parse_run_request(body)
    view = await service.start(_owner(principal), principal.tenant_name, run)
    accept = request.headers.get("accept", "")
    if run.stream or "text/event-stream" in accept:
        return SSEResponse(_events(service, principal.tenant_id, view.id, 0))
    if run.wait:
        done = await wait_finished(service.store, view.id, service.settings.wait_s)
        if done is not None:
            return json_response(run_json(done))
        view = await service.get(principal.tenant_id, view.id)
    return json_response(run_json(view), status=202)


async def get_run(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_AGENTS)
    return json_response(run_json(await _service(request).get(principal.tenant_id, _run_id(request))))


async def get_trace(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_AGENTS)
    return json_response(trace_json(await _service(request).get(principal.tenant_id, _run_id(request))))


async def stream_events(request: Request) -> Answer:
    principal = await authenticate_request(request, Permission.READ_AGENTS)
    service = _service(request)
    view = await service.get(principal.tenant_id, _run_id(request))
    last = request.headers.get("last-event-id", "").strip()
    if last and not last.isdigit():
        raise InvalidRequest("Invalid request: Last-Event-ID must be an event number.", param="Last-Event-ID")
    return SSEResponse(_events(service, principal.tenant_id, view.id, int(last) + 1 if last else 0))


async def cancel_run(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.RUN_AGENTS)
    view = await _service(request).cancel(principal.tenant_id, _run_id(request))
    return json_response(run_json(view))


async def list_templates(request: Request) -> Response:
    await authenticate_request(request, Permission.READ_AGENTS)
    data = [
        {
            "object": "agent.template",
            "name": plan.name,
            "description": plan.description,
            "input_schema": plan.input_schema,
            "budget": plan.budget.model_dump(),
            "steps": [{"id": s.id, "arm": s.arm.value} for s in plan.steps],
        }
        for plan in _service(request).templates()
    ]
    return json_response({"object": "list", "data": data})


async def sandbox(request: Request) -> Response:
    await authenticate_request(request, Permission.READ_AGENTS)
    return json_response({"object": "agent.sandbox", **(await _service(request).sandbox_report())})


def _sse(event_id: int | None, name: str, data: Any) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def _events(service: AgentRuns, tenant_id: str, run_id: str, start: int) -> AsyncGenerator[bytes, None]:
    """Each trace event (id: its index), then ``done`` with the run once it ended."""
    sent = start
    while True:
        view: RunView = await service.get(tenant_id, run_id)
        for index in range(sent, len(view.trace)):
            yield _sse(index, view.trace[index]["kind"], view.trace[index])
        sent = max(sent, len(view.trace))
        if view.finished:
            yield _sse(None, "done", run_json(view))
            return
        await asyncio.sleep(STREAM_POLL_S)


routes = [
    Route(PREFIX + "/runs", start_run, methods=["POST"]),
    Route(RUN, get_run, methods=["GET"]),
    Route(RUN + "/trace", get_trace, methods=["GET"]),
    Route(RUN + "/events", stream_events, methods=["GET"]),
    Route(RUN + "/cancel", cancel_run, methods=["POST"]),
    Route(PREFIX + "/templates", list_templates, methods=["GET"]),
    Route(PREFIX + "/sandbox", sandbox, methods=["GET"]),
]
