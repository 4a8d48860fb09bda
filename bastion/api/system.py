"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import gateway
from bastion.api.http import json_response
from bastion.observability import metrics
from bastion.routing.breaker import BreakerState


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when configuration is loaded and each chat model has a deployment that can be tried."""
    gw = gateway(request)
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
    return json_response(
        {"status": "ready" if ready else "not_ready", "unavailable_models": unavailable, "deployments": deployments},
        status=200 if ready else 503,
    )


async def prometheus(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]
