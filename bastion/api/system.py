"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response
from bastion.auth.ops import metrics_public, presents_credentials, readyz_details_public
from bastion.auth.principal import Permission
from bastion.observability import metrics
from bastion.routing.breaker import BreakerState


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when configuration is loaded and each chat model has a deployment that can be tried.
    The status is public; the details only where docs/AUTH.md ("Operational endpoints") allows."""
    gw = gateway(request)
    details = readyz_details_public(gw.settings)
    if not details and presents_credentials(request.headers):
        await authenticate_request(request, Permission.READ_OPS)
        details = True
    targets = gw.router.targets()
    checks = await asyncio.gather(*(t.provider.check_ready() for t in targets), return_exceptions=True)
    deployments = {}
    for target, ok in zip(targets, checks, strict=True):
        deployments[target.id] = {
            "model": target.deployment.alias,
            "provider": target.deployment.provider,
            "ready": ok is True,
            "circuit": BreakerState(target.breaker.state).name.lower(),
            "in_flight": target.in_flight,
        }
    unavailable = [
        group.name
        for group in gw.router.unique_groups()
        if not any(deployments[t.id]["ready"] and t.breaker.allows() for t in group.targets)
    ]
    ready = gw.ready and not unavailable
    body: dict[str, object] = {"status": "ready" if ready else "not_ready"}
    if details:
        body.update(unavailable_models=unavailable, deployments=deployments)
    return json_response(body, status=200 if ready else 503)


async def prometheus(request: Request) -> Response:
    if not metrics_public(gateway(request).settings):
        await authenticate_request(request, Permission.READ_OPS)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]
