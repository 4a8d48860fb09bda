"""The cost of one interaction, from its usage and the price of the deployment that served it."""

from __future__ import annotations

from typing import Any

from bastion.providers.base import Usage
from bastion.routing.trace import RouteTrace
from bastion.spend.estimate import answer_tokens, prompt_tokens
from bastion.spend.routes import RoutePricing


def interaction_cost(
    pricing: RoutePricing,
    trace: RouteTrace,
    model: str,
    usage: Usage | None,
    body: dict[str, Any],
    endpoint: str,
    output_text: list[str],
) -> float:
    """USD for the interaction; 0 when no deployment answered (rejected, cache hit, unroutable)
    or the model has no price (counted in ``bastion_unpriced_interactions_total``).

    A stream cut off before the provider reported usage is priced from an estimate: the prompt
    counted by the tokenizer and the answer text received so far. Prompt-cache reads and writes
    are priced apart (``Price.cost_usd``).
    """
    if trace.deployment is None:
        return 0.0
    entry = pricing.for_deployment(trace.deployment, trace.upstream_model, trace.alias or model)
    if usage is None:
        if not output_text:
            return 0.0  # the upstream failed before answering: nothing to pay
        usage = Usage(prompt_tokens=prompt_tokens(body, endpoint), completion_tokens=answer_tokens(output_text))
    if not entry.known:
        entry.unpriced_counter.inc()
        return 0.0
    cost = entry.price.cost_usd(
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.cache_creation_tokens,
        usage.cache_creation_1h_tokens,
    )
    if cost:
        entry.cost_counter.inc(cost)
    return cost
