"""The mapping from an interaction record to the GenAI conventions (plain data, no SDK), the
OpenTelemetry stage's record, and the settings section."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from pydantic import ValidationError

from bastion.auth.principal import Principal
from bastion.config.otel_settings import OtelSettings
from bastion.config.settings import Settings
from bastion.gateway.stages.otel import OtelStage
from bastion.observability.genai import Upstream, describe, error_type, input_messages, output_messages
from bastion.routing.build import build_router
from tests.ledger.support import make_context, principal


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "req_1",
        "ts": 1_765_000_000.25,
        "endpoint": "chat",
        "dialect": "openai",
        "model": "fast",
        "deployment": "fast-0",
        "upstream_model": "gpt-4o-mini",
        "status": 200,
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "latency_ms": 1500.0,
        "finish_reason": "stop",
        "tenant_id": "t1",
        "key_id": "k1",
    }
    return {**base, **overrides}


UPSTREAMS = {"fast-0": Upstream.of("openai", None), "fast": Upstream("openai")}


def test_times_come_from_the_record() -> None:
    operation = describe(record(), UPSTREAMS)
    assert operation.start_ns == 1_765_000_000_250_000_000
    assert operation.end_ns - operation.start_ns == 1_500_000_000
    assert operation.duration_s == 1.5


def test_embeddings_have_input_tokens_only_and_a_cancel_is_an_error() -> None:
    embedding = describe(record(endpoint="embeddings", operation=None, completion_tokens=0), UPSTREAMS)
    assert embedding.name == "embeddings fast"
    assert embedding.attributes["gen_ai.usage.input_tokens"] == 7
    assert "gen_ai.usage.output_tokens" not in embedding.attributes and embedding.output_tokens is None
    assert error_type(record(status=499)) == "cancelled"
    assert error_type(record(status=429, error_code="rate_limited")) == "rate_limited"
    assert error_type(record(status=502)) == "502"
    assert error_type(record()) is None


def test_a_text_completion_and_a_legacy_name() -> None:
    operation = describe(record(operation="text_completion"), UPSTREAMS)
    assert operation.name == "text_completion fast"
    assert operation.attributes["gen_ai.operation.name"] == "text_completion"


def test_an_unrouted_model_has_no_provider_and_a_clipped_name() -> None:
    operation = describe(record(model="x" * 500, deployment=None, status=404, error_code="model_not_found"), {})
    assert operation.attributes["gen_ai.request.model"] == "x" * 64
    assert "gen_ai.provider.name" not in operation.attributes
    assert operation.metric_attributes["error.type"] == "model_not_found"


def test_upstreams_from_deployment_settings() -> None:
    assert Upstream.of("openai", None) == Upstream("openai", "api.openai.com", 443)
    assert Upstream.of("anthropic", "http://10.0.0.5:9000/v1") == Upstream("anthropic", "10.0.0.5", 9000)
    assert Upstream.of("openai", "https://llm.corp/v1") == Upstream("openai", "llm.corp", 443)
    assert Upstream.of("local", None) == Upstream("llama_cpp")


def test_messages_in_the_conventions_shape() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {}}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert input_messages(messages) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
    ]
    assert input_messages(["a", "b"])[1] == {"role": "user", "parts": [{"type": "text", "content": "b"}]}
    assert output_messages(None, "stop") == []
    assert output_messages("ok", None)[0]["finish_reason"] == "stop"


class Recorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record_interaction(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def record_agent_run(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def metadata_tenant() -> Principal:
    return principal(mode="metadata")


@pytest.mark.parametrize(
    ("content", "who", "has_content"),
    [(False, principal, False), (True, principal, True), (True, metadata_tenant, False)],
)
async def test_the_stage_carries_content_only_when_asked_and_the_tenant_keeps_any(
    content: bool, who: Any, has_content: bool
) -> None:
    exporter = Recorder()
    stage = OtelStage(exporter, content=content, ledger_mode="full")
    ctx = make_context(principal=who(), output="Hello.")
    ctx.body = {**ctx.body, "max_completion_tokens": 99, "temperature": 0.5}
    await stage.on_complete(ctx)
    (sent,) = exporter.records
    assert sent["max_tokens"] == 99 and sent["temperature"] == 0.5 and sent["operation"] == "chat"
    assert (sent["request_messages"] is not None) is has_content
    assert (sent["response_text"] is not None) is has_content


def test_settings_are_off_by_default_and_strict() -> None:
    settings = Settings()
    assert settings.otel.enabled is False and settings.otel.content is False
    assert settings.otel.endpoint == "http://127.0.0.1:4318" and settings.otel.service_name == "bastion"
    assert OtelSettings(endpoint="https://collector:4318/").endpoint == "https://collector:4318"
    with pytest.raises(ValidationError):
        OtelSettings(endpoint="collector:4317")
    with pytest.raises(ValidationError):
        OtelSettings.model_validate({"sample_ratio": 1.5})
    with pytest.raises(ValidationError):
        OtelSettings.model_validate({"enable": True})


def test_the_export_on_without_the_sdk_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.config.errors import ConfigError
    from bastion.gateway.compose import build_otel

    monkeypatch.setitem(sys.modules, "bastion.observability.otel", None)  # as if the extra were not installed
    settings = Settings.model_validate({"otel": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"bastion\[otel\]"):
        build_otel(settings, build_router(settings))
    assert build_otel(Settings(), build_router(Settings())) is None
