"""Metrics stage: request counts, latency, time to first token and tokens, per model."""

from __future__ import annotations

from bastion.gateway.context import RequestContext
from bastion.gateway.pipeline import Stage
from bastion.observability.metrics import LATENCY, REQUESTS, TOKENS, TTFT


class MetricsStage(Stage):
    name = "metrics"

    async def on_complete(self, ctx: RequestContext) -> None:
        # Only routed aliases become labels: a client-chosen model name would explode cardinality.
        model = ctx.trace.alias or "unrouted"
        REQUESTS.labels(
            endpoint=ctx.endpoint, model=model, deployment=ctx.trace.deployment or "-", status=str(ctx.status)
        ).inc()
        LATENCY.labels(endpoint=ctx.endpoint, model=model).observe(ctx.latency_s)
        if ctx.ttft_s is not None:
            TTFT.labels(model=model).observe(ctx.ttft_s)
        if ctx.usage is not None:
            TOKENS.labels(model=model, direction="input").inc(ctx.usage.prompt_tokens)
            TOKENS.labels(model=model, direction="output").inc(ctx.usage.completion_tokens)
