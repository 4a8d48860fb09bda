"""Settings of the OpenTelemetry export (docs/INSIGHTS.md, "OpenTelemetry"): off by default.

otel.enabled         export a span per request and the gen_ai.client.* histograms over OTLP/HTTP
otel.endpoint        the collector's base URL (``/v1/traces`` and ``/v1/metrics`` are appended)
otel.content         also export the prompt and the answer, redacted as the ledger redacts them
"""

from __future__ import annotations

from pydantic import Field, field_validator

from bastion.config.section import Strict


class OtelSettings(Strict):
    enabled: bool = Field(
        False,
        description="Export a span per request and the gen_ai.client.* histograms (needs the otel extra). "
        "Off: no OpenTelemetry module is imported.",
    )
    endpoint: str = Field(
        "http://127.0.0.1:4318",
        description="OTLP/HTTP base URL of the collector; /v1/traces and /v1/metrics are appended.",
    )
    service_name: str = Field("bastion", min_length=1, description="The resource's service.name.")
    content: bool = Field(
        False,
        description="Export prompt and answer text as gen_ai.input.messages / gen_ai.output.messages, "
        "after the ledger's redaction (PII and secrets); tenants whose ledger mode is metadata export none.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent with every export (e.g. an API key of the collector); a value may be "
        "'env:NAME' or 'os.environ/NAME'.",
    )
    sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of requests whose span is kept (metrics count every request)."
    )
    metrics_interval_s: float = Field(60.0, gt=0, description="How often the histograms are exported.")
    queue_size: int = Field(
        10_000,
        ge=1,
        description="Finished requests waiting for the exporter's thread; beyond it they are dropped (and counted).",
    )

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("otel.endpoint must be an http:// or https:// URL (OTLP over HTTP)")
        return value.rstrip("/")
