"""Build the router from settings: one provider and one breaker per deployment."""

from __future__ import annotations

from bastion.config.settings import Settings
from bastion.providers.base import Deployment
from bastion.providers.registry import build_provider
from bastion.routing.breaker import CircuitBreaker
from bastion.routing.router import Router
from bastion.routing.target import ModelGroup, Target


def build_router(settings: Settings) -> Router:
    groups: dict[str, ModelGroup] = {}
    breaker = settings.router.breaker
    for model in settings.models:
        targets = []
        for index, deployment_settings in enumerate(model.deployments):
            deployment = Deployment(
                id=deployment_settings.id or f"{model.name}#{index}",
                alias=model.name,
                settings=deployment_settings,
                timeouts=deployment_settings.timeouts or settings.router.timeouts,
                extra={"local": settings.local},
            )
            targets.append(
                Target(
                    deployment=deployment,
                    provider=build_provider(deployment),
                    breaker=CircuitBreaker(deployment.id, breaker.failure_threshold, breaker.cooldown_s),
                )
            )
        context_lengths = [d.context_length for d in model.deployments if d.context_length]
        group = ModelGroup(
            name=model.name,
            kind=model.kind,
            targets=targets,
            context_length=min(context_lengths) if context_lengths else None,
        )
        for name in (model.name, *model.aliases):
            groups[name] = group
    return Router(groups, settings.router)
