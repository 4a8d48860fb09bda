"""Metrics stage: request counts, latency, time to first token and tokens, per model."""

from __future__ import annotations

from typing import Any

from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage
from bastion.observability.metrics import LATENCY, REQUESTS, TOKENS, TTFT


class _Series:
    """The metric children of one (endpoint, model, deployment, status), looked up once.

    prometheus_client's ``labels()`` validates and locks on every call; the label sets here are
    few (routed aliases only), so keeping their children costs a little memory and saves that
    work on every request.
    """

    __slots__ = ("latency", "requests", "tokens_in", "tokens_out", "ttft")

    def __init__(self, endpoint: str, model: str, deployment: str, status: str) -> None:
        self.requests: Any = REQUESTS.labels(endpoint=endpoint, model=model, deployment=deployment, status=status)
        self.latency: Any = LATENCY.labels(endpoint=endpoint, model=model)
        self.ttft: Any = TTFT.labels(model=model)
        self.tokens_in: Any = TOKENS.labels(model=model, direction="input")
        self.tokens_out: Any = TOKENS.labels(model=model, direction="output")


class MetricsStage(Stage):
    name = "metrics"

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str, int], _Series] = {}

    async def on_complete(self, ctx: RequestContext) -> None:
        # Only routed aliases become labels: a client-chosen model name would explode cardinality.
        key = (ctx.endpoint, ctx.trace.alias or "unrouted", ctx.trace.deployment or "-", ctx.status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(key[0], key[1], key[2], str(key[3]))
        series.requests.inc()
        series.latency.observe(ctx.latency_s)
        if ctx.ttft_s is not None:
            series.ttft.observe(ctx.ttft_s)
        if ctx.usage is not None:
            series.tokens_in.inc(ctx.usage.prompt_tokens)
            series.tokens_out.inc(ctx.usage.completion_tokens)
