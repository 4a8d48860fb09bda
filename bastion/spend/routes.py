"""Prices resolved once per deployment and per model alias, so the request path does a dict lookup.

Order of precedence for a deployment: an explicit ``pricing:`` entry for its upstream model, then
one for its alias, then the shipped table for the upstream model, then for the alias. A deployment
of the local provider costs nothing unless ``pricing:`` names it. Anything else unmatched costs 0
and is counted in ``bastion_unpriced_interactions_total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bastion.spend.metrics import COST_USD, UNPRICED
from bastion.spend.pricing import FREE, Price, PriceTable

if TYPE_CHECKING:
    from bastion.config.settings import Settings
    from bastion.routing.router import Router

log = structlog.get_logger("bastion.spend")


@dataclass(frozen=True, slots=True)
class DeploymentPrice:
    price: Price
    #: False when nothing in the table or configuration matched (the interaction is counted as unpriced).
    known: bool
    upstream_model: str
    unpriced_counter: Any
    cost_counter: Any


class RoutePricing:
    def __init__(self, table: PriceTable, overrides: PriceTable, router: Router | None = None) -> None:
        self.table = table
        self.overrides = overrides
        self._deployments: dict[str, DeploymentPrice] = {}
        self._aliases: dict[str, Price] = {}
        if router is not None:
            self._index(router)

    @classmethod
    def from_settings(cls, settings: Settings, router: Router | None = None) -> RoutePricing:
        table = PriceTable.from_settings(settings.pricing)
        overrides = PriceTable.from_settings(settings.pricing, defaults=False)
        return cls(table, overrides, router)

    def resolve(self, upstream_model: str | None, alias: str | None, provider: str | None = None) -> Price | None:
        """The price of a deployment (None: unknown). See the module docstring for the order."""
        for table in (self.overrides, self.table):
            if provider == "local" and table is self.table:
                return FREE
            for name in (upstream_model, alias):
                price = table.lookup(name)
                if price is not None:
                    return price
        return None

    def _index(self, router: Router) -> None:
        for group in router.unique_groups():
            alias_price: Price | None = None
            for target in group.targets:
                deployment = target.deployment
                price = self.resolve(deployment.model, group.name, deployment.provider)
                known = price is not None
                if not known:
                    log.warning("model_unpriced", alias=group.name, upstream_model=deployment.model)
                entry = DeploymentPrice(
                    price=price or FREE,
                    known=known,
                    upstream_model=deployment.model,
                    unpriced_counter=UNPRICED.labels(model=deployment.model),
                    cost_counter=COST_USD.labels(model=group.name),
                )
                self._deployments[deployment.id] = entry
                alias_price = entry.price if alias_price is None else alias_price.most_expensive(entry.price)
            for name in router.groups:
                if router.groups[name] is group and alias_price is not None:
                    self._aliases[name] = alias_price

    def for_alias(self, alias: str) -> Price:
        """A conservative price for a request to ``alias`` before routing picks a deployment: each
        component's maximum over the alias's deployments (fallback aliases are not included)."""
        price = self._aliases.get(alias)
        if price is None:
            price = self.resolve(alias, None) or FREE
            if len(self._aliases) < 4096:
                self._aliases[alias] = price
        return price

    def for_deployment(
        self, deployment_id: str | None, upstream_model: str | None, alias: str | None
    ) -> DeploymentPrice:
        entry = self._deployments.get(deployment_id) if deployment_id else None
        if entry is not None:
            return entry
        # A deployment the router did not announce at start (tests build routers by hand).
        model = upstream_model or alias or "unknown"
        price = self.resolve(upstream_model, alias)
        entry = DeploymentPrice(
            price=price or FREE,
            known=price is not None,
            upstream_model=model,
            unpriced_counter=UNPRICED.labels(model=model),
            cost_counter=COST_USD.labels(model=alias or model),
        )
        if deployment_id and len(self._deployments) < 4096:
            self._deployments[deployment_id] = entry
        return entry
