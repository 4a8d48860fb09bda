"""``POST /v1/moderations``, answered by Bastion's own input guard rather than by a model.

Each input is scanned as user content under the caller's guard policy (tenant, user and key
layers; the configured default when the guard is switched off), and the verdicts are mapped to
OpenAI's moderation shape (``bastion/guard/moderation.py``). It needs ``models:call`` like every
``/v1`` route. It is not a model call: no upstream, no tokens, no cost, so no ledger row and no
rate-limit slot (its cost is bounded by the body size limit and the policy's scan budget); the
verdicts are counted in ``bastion_guard_verdicts{direction="moderation"}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, request_id
from bastion.api.http import json_response, read_json
from bastion.auth.principal import Permission
from bastion.config.guard_policy import GuardPolicy
from bastion.dialects.moderations import moderation_inputs
from bastion.guard.moderation import MODERATION_MODEL, moderation_result
from bastion.guard.service import GuardService, count_verdicts


async def moderations(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    gw = gateway(request)
    inputs = moderation_inputs(await read_json(request, gw.settings.server.max_body_bytes))
    guard = gw.services.guard
    policy = guard.policy(principal) if guard is not None else GuardPolicy()
    results = []
    for content in inputs:
        scanned = await GuardService.scan_input(policy, [{"role": "user", "content": content}])
        count_verdicts("moderation", scanned)
        results.append(moderation_result(scanned))
    body = {"id": "modr-" + request_id(request).removeprefix("req_"), "model": MODERATION_MODEL, "results": results}
    return json_response(body)


routes = [Route("/v1/moderations", moderations, methods=["POST"])]
