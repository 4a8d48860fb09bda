"""A deployment as the router tracks it: its provider, breaker and calls in flight."""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.observability.metrics import IN_FLIGHT
from bastion.providers.base import Deployment, Provider
from bastion.routing.breaker import CircuitBreaker


@dataclass(eq=False)
class Target:
    deployment: Deployment
    provider: Provider
    breaker: CircuitBreaker
    in_flight: int = 0
    _gauge: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._gauge = IN_FLIGHT.labels(deployment=self.deployment.id)

    @property
    def id(self) -> str:
        return self.deployment.id

    def begin(self) -> None:
        self.in_flight += 1
        self._gauge.inc()  # type: ignore[attr-defined]

    def end(self) -> None:
        self.in_flight -= 1
        self._gauge.dec()  # type: ignore[attr-defined]


@dataclass
class ModelGroup:
    """A model alias and the deployments that serve it."""

    name: str
    kind: str
    targets: list[Target]
    context_length: int | None = None
