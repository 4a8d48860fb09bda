"""Experiments admin API, ``/api/v1/admin/experiments``, and client feedback, ``POST /v1/feedback``.

Changes (create, update, delete, start, stop, a bandit update) need ``prompts:write`` (admins and
developers); reading definitions, results, reports and weights needs ``ledger:read`` (results are
the ledger's data). Everything is the caller's tenant's: another tenant's experiment answers 404
like one that does not exist. An experiment is named by its id or its name in the path.

``POST .../analyze`` (per-arm summary statistics, as ``bastion experiments analyze``) and
``POST .../sample-size`` (as ``bastion experiments sample-size``) compute and store nothing; any
principal that may read results (``ledger:read``) may call them.

Feedback needs ``models:call`` (the keys that make interactions can score them) and an interaction
of the caller's tenant (else 404).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.admin_ledger import _text
from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response, read_json
from bastion.auth.principal import Permission, Principal
from bastion.errors import InvalidRequest, NotFound
from bastion.experiments.analysis import experiment_results, update_bandit, weights_history
from bastion.experiments.feedback import add_feedback
from bastion.experiments.model import STATUSES
from bastion.experiments.report import text_report
from bastion.experiments.service import ExperimentService
from bastion.stats.analyze import analyze as analyze_summary
from bastion.stats.errors import StatsError
from bastion.stats.sizing import sample_size_request

PREFIX = "/api/v1/admin/experiments"
FEEDBACK = "/v1/feedback"


async def _caller(request: Request, permission: Permission) -> tuple[Principal, ExperimentService]:
    principal = await authenticate_request(request, permission)
    return principal, gateway(request).services.experiments


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


def _ref(request: Request) -> str:
    ref: str = request.path_params["experiment_id"]
    if not 0 < len(ref) <= 64:
        raise NotFound(f"No experiment {ref[:64]!r}.")
    return ref


def _is_chat_model(request: Request) -> Callable[[str], bool]:
    groups = gateway(request).services.router.groups

    def known(alias: str) -> bool:
        group = groups.get(alias)
        return group is not None and group.kind == "chat"

    return known


async def experiments(request: Request) -> Response:
    if request.method == "POST":
        principal, service = await _caller(request, Permission.WRITE_PROMPTS)
        created = await service.create(principal.tenant_id, await _body(request), _is_chat_model(request))
        return json_response(created.to_json(), status=201)
    principal, service = await _caller(request, Permission.READ_LEDGER)
    status = _text(request, "status", 16)
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}.", param="status")
    found = await service.list(principal.tenant_id, status)
    return json_response({"object": "list", "data": [e.to_json() for e in found]})


async def experiment(request: Request) -> Response:
    if request.method == "GET":
        principal, service = await _caller(request, Permission.READ_LEDGER)
        return json_response((await service.get(principal.tenant_id, _ref(request))).to_json())
    principal, service = await _caller(request, Permission.WRITE_PROMPTS)
    if request.method == "DELETE":
        await service.delete(principal.tenant_id, _ref(request))
        return json_response({"deleted": True})
    updated = await service.update(principal.tenant_id, _ref(request), await _body(request), _is_chat_model(request))
    return json_response(updated.to_json())


async def start(request: Request) -> Response:
    principal, service = await _caller(request, Permission.WRITE_PROMPTS)
    return json_response((await service.start(principal.tenant_id, _ref(request))).to_json())


async def stop(request: Request) -> Response:
    principal, service = await _caller(request, Permission.WRITE_PROMPTS)
    return json_response((await service.stop(principal.tenant_id, _ref(request))).to_json())


async def results(request: Request) -> Response:
    principal, service = await _caller(request, Permission.READ_LEDGER)
    return json_response(await experiment_results(service, principal.tenant_id, _ref(request)))


async def report(request: Request) -> Response:
    principal, service = await _caller(request, Permission.READ_LEDGER)
    text = text_report(await experiment_results(service, principal.tenant_id, _ref(request)))
    return Response(text, media_type="text/plain; charset=utf-8")


async def weights(request: Request) -> Response:
    if request.method == "POST":
        principal, service = await _caller(request, Permission.WRITE_PROMPTS)
        return json_response(await update_bandit(service, principal.tenant_id, _ref(request)))
    principal, service = await _caller(request, Permission.READ_LEDGER)
    history = await weights_history(service, principal.tenant_id, _ref(request))
    return json_response({"object": "list", "data": history})


async def _calculate(request: Request, compute: Callable[[object], dict[str, Any]]) -> Response:
    await authenticate_request(request, Permission.READ_LEDGER)
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    try:
        return json_response(compute(body))
    except StatsError as exc:
        raise InvalidRequest(f"Invalid request: {exc}.") from None
    except (ArithmeticError, ValueError) as exc:  # numbers the formulas cannot take (overflow, underflow)
        raise InvalidRequest(f"Invalid request: cannot compute with these numbers ({exc}).") from None


async def analyze(request: Request) -> Response:
    return await _calculate(request, analyze_summary)


async def sample_size(request: Request) -> Response:
    return await _calculate(request, sample_size_request)


async def feedback(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    stored = await add_feedback(gateway(request).services.db, principal.tenant_id, principal.actor, body)
    return json_response(stored, status=201)


routes = [
    Route(PREFIX, experiments, methods=["GET", "POST"]),
    Route(PREFIX + "/analyze", analyze, methods=["POST"]),
    Route(PREFIX + "/sample-size", sample_size, methods=["POST"]),
    Route(PREFIX + "/{experiment_id}", experiment, methods=["GET", "PATCH", "DELETE"]),
    Route(PREFIX + "/{experiment_id}/start", start, methods=["POST"]),
    Route(PREFIX + "/{experiment_id}/stop", stop, methods=["POST"]),
    Route(PREFIX + "/{experiment_id}/results", results, methods=["GET"]),
    Route(PREFIX + "/{experiment_id}/report", report, methods=["GET"]),
    Route(PREFIX + "/{experiment_id}/weights", weights, methods=["GET", "POST"]),
    Route(FEEDBACK, feedback, methods=["POST"]),
]
