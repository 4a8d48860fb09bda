"""The composition root: builds every service of a gateway process from settings, the stages in
their order, and the gateway that starts and stops them. Nothing else constructs services.

Adding a stage is one module in ``bastion/gateway/stages/`` plus one line in ``build_stages``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.analyzer.service import AnalyzerService
from bastion.analyzer.tokens import Tokenizer, tokenizer_of_model
from bastion.auth.authenticator import Authenticator
from bastion.auth.lookup import DefaultTenantId
from bastion.auth.principal import Principal
from bastion.batches.model import JOB_KIND as BATCH_JOB
from bastion.batches.run import BatchRun
from bastion.batches.service import BatchService
from bastion.batches.store import BatchStore
from bastion.bulk.model import JOB_KIND as BULK_JOB
from bastion.bulk.run import BulkRun
from bastion.cache.service import ResponseCache
from bastion.config.errors import ConfigError
from bastion.config.settings import Settings
from bastion.experiments.analysis import BanditUpdates
from bastion.experiments.service import ExperimentService
from bastion.files.service import FileService
from bastion.gateway.agent_runs import build_agent_runs
from bastion.gateway.batch_lines import PipelineLines
from bastion.gateway.bulk_lines import PipelineBulk
from bastion.gateway.pipeline import Pipeline
from bastion.gateway.prompt_chat import PipelineChat
from bastion.gateway.redteam_target import PipelineTarget, unguarded
from bastion.gateway.service import Gateway, VaultStartup
from bastion.gateway.services import Lifecycle, Services
from bastion.gateway.stage import Stage
from bastion.gateway.stages.auth import AuthStage
from bastion.gateway.stages.cache import CacheStage
from bastion.gateway.stages.cost import CostStage
from bastion.gateway.stages.experiment import ExperimentStage
from bastion.gateway.stages.guard_in import GuardInStage
from bastion.gateway.stages.guard_out import GuardOutStage
from bastion.gateway.stages.knowledge import KnowledgeStage
from bastion.gateway.stages.ledger import LedgerStage
from bastion.gateway.stages.limits import LimitsStage
from bastion.gateway.stages.metrics import MetricsStage
from bastion.gateway.stages.otel import OtelStage
from bastion.gateway.stages.prompt import PromptStage
from bastion.gateway.stages.usage import UsageStage
from bastion.guard.deep_injection import EmbedFunction
from bastion.guard.service import GuardService
from bastion.insights.events import EventBroker, MemoryEvents
from bastion.insights.events_redis import RedisEvents
from bastion.insights.service import InsightsService
from bastion.jobs.model import NewJob
from bastion.jobs.service import JobService
from bastion.knowledge.ingest_job import JOB_KIND as KNOWLEDGE_INGEST_JOB
from bastion.knowledge.ingest_job import IngestJob
from bastion.knowledge.service import KnowledgeService
from bastion.ledger.redact import ContentRedactor
from bastion.ledger.writer import LedgerWriter
from bastion.limits.service import LimitsService
from bastion.local.embedder import get_embedder
from bastion.observability.genai import PROVIDER_NAMES, InteractionExporter, Upstream
from bastion.redteam.run_job import JOB_KIND as REDTEAM_JOB
from bastion.redteam.run_job import RedteamJob
from bastion.redteam.service import RedteamService
from bastion.responses.store import ResponseStore
from bastion.review.datasets import DatasetService
from bastion.review.export import PromptReader, SubmitJob
from bastion.review.export_job import JOB_KIND as DATASET_EXPORT_JOB
from bastion.review.export_job import ExportJob
from bastion.review.service import ReviewService
from bastion.routing.build import build_router
from bastion.routing.router import Router
from bastion.sessions.service import SessionService
from bastion.spend.routes import RoutePricing
from bastion.store.db import Database
from bastion.vault.model import PromptNotFound
from bastion.vault.service import VaultService


def journal_dir(settings: Settings) -> Path:
    return Path(settings.ledger.journal_dir or Path(settings.data_dir) / "journal").resolve()


def model_resolver(router: Router) -> Callable[[str], str | None]:
    """A model name -> the chat alias group it routes to (None: unknown or not a chat model)."""
    groups = router.groups

    def resolve(name: str) -> str | None:
        group = groups.get(name)
        return group.name if group is not None and group.kind == "chat" else None

    return resolve


def build_cache(settings: Settings) -> ResponseCache | None:
    if not settings.cache.enabled:
        return None
    # The embedder (torch, MiniLM) is used only when a model opts in to the semantic cache.
    semantic = any(model.cache.semantic for model in settings.models)
    return ResponseCache.from_settings(settings, get_embedder(settings.local).embed if semantic else None)


def otel_upstreams(router: Router) -> dict[str, Upstream]:
    """Deployment ids and model names -> provider and server, for the spans' ``gen_ai.provider.name``
    and ``server.address`` (a name whose deployments mix providers has none)."""
    upstreams: dict[str, Upstream] = {}
    for name, group in router.groups.items():
        kinds = set()
        for target in group.targets:
            deployment = target.deployment.settings
            upstreams[target.id] = Upstream.of(deployment.provider, deployment.api_base)
            kinds.add(deployment.provider)
        if len(kinds) == 1:
            kind = kinds.pop()
            upstreams[name] = Upstream(PROVIDER_NAMES.get(kind, kind))
    return upstreams


def build_otel(settings: Settings, router: Router) -> InteractionExporter | None:
    """The OpenTelemetry exporter, or None when ``otel.enabled`` is false (then no OpenTelemetry
    module is imported at all: the import below is the only way in)."""
    if not settings.otel.enabled:
        return None
    try:
        from bastion.observability.otel import OtelExporter
    except ImportError as exc:
        raise ConfigError(
            f"otel.enabled needs the OpenTelemetry SDK and OTLP exporter (pip install 'bastion[otel]'): {exc}"
        ) from exc
    names = settings.ledger.redact_names
    return OtelExporter.from_settings(settings.otel, otel_upstreams(router), lambda: ContentRedactor(names=names))


def build_services(settings: Settings, *, job_workers: int | None = None) -> Services:
    """Every shared service, built once; none does I/O before ``start``. ``job_workers``: jobs
    this process runs at once (None: ``jobs.inprocess_workers`` or its default; ``bastion worker``
    passes its ``--concurrency``)."""
    db = Database.from_settings(settings)
    router = build_router(settings)
    pricing = RoutePricing.from_settings(settings, router)
    vault = VaultService(db, settings)
    limits_on = settings.limits.enabled or settings.budgets.enabled
    files = FileService(db, settings.files, settings.data_dir)
    jobs = JobService.from_settings(settings, db, workers=job_workers)
    return Services(
        settings=settings,
        db=db,
        router=router,
        pricing=pricing,
        authenticator=Authenticator(settings, db),
        vault=vault,
        sessions=SessionService(db, settings, vault, router),
        responses=ResponseStore(db, settings.responses),
        files=files,
        guard=GuardService(
            settings.guard, prompt_cache_ttl_s=settings.vault.cache_ttl_s, embed=local_embed_function(settings)
        )
        if settings.guard.enabled
        else None,
        limits=LimitsService.from_settings(settings, pricing, db) if limits_on else None,
        ledger=LedgerWriter(settings.ledger, db, journal_dir(settings)) if settings.ledger.enabled else None,
        jobs=jobs,
        batches=BatchService(BatchStore(db), files, jobs),
        cache=build_cache(settings),
        experiments=ExperimentService(db, cache_ttl_s=settings.experiments.cache_ttl_s),
        knowledge=build_knowledge(settings, db),
        review=ReviewService(db, settings.review, ledger_default_mode=settings.ledger.default_mode),
        datasets=build_datasets(settings, db, files, vault, jobs),
        insights=build_insights(settings, db, jobs),
        redteam=RedteamService(db, jobs),
        otel=build_otel(settings, router),
    )


def model_tokenizers(router: Router) -> Callable[[str | None], Tokenizer | None]:
    """A model name -> the tokenizer of what serves it, if the analyzer has it: ``smollm2`` when
    every deployment of the alias is the embedded model, ``cl100k`` when every deployment's upstream
    model uses OpenAI's cl100k_base; a name that is no alias is read as an upstream model name."""

    def tokenizer(name: str | None) -> Tokenizer | None:
        group = router.groups.get(name) if name else None
        if group is None:
            return tokenizer_of_model(name)
        deployments = [target.deployment for target in group.targets]
        if deployments and all(d.provider == "local" for d in deployments):
            return "smollm2"
        if deployments and all(tokenizer_of_model(d.model) == "cl100k" for d in deployments):
            return "cl100k"
        return None

    return tokenizer


def build_analyzer(services: Services, pipeline: Pipeline) -> AnalyzerService:
    return AnalyzerService(
        services.vault, chat=PipelineChat(pipeline), model_tokenizer=model_tokenizers(services.router)
    )


def build_datasets(
    settings: Settings, db: Database, files: FileService, vault: VaultService, jobs: JobService
) -> DatasetService:
    """Datasets: exports decrypt the vault prompts they need (audited by the vault), large ones run
    as ``dataset_export`` jobs, their scratch files live beside the files directory."""

    async def read_prompt(tenant_id: str, prompt_id: str, version: int, *, actor: str) -> str | None:
        try:
            plain = await vault.read_plaintext(tenant_id, prompt_id, version, actor=actor)
        except PromptNotFound:
            return None
        return str(plain["system_prompt"]) if plain.get("system_prompt") else None

    async def submit(principal: Principal, payload: dict[str, Any]) -> str:
        job = NewJob(
            DATASET_EXPORT_JOB,
            payload,
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            user_id=principal.user_id,
        )
        return (await jobs.submit(job)).id

    reader: PromptReader = read_prompt
    submitter: SubmitJob = submit
    datasets = DatasetService(db, files, settings.review, reader, scratch_dir=files.storage.directory / "exports")
    datasets.submit_job = submitter
    return datasets


def build_knowledge(settings: Settings, db: Database) -> KnowledgeService:
    """Knowledge retrieval embeds with the local MiniLM, loaded on first use (ingestion or a
    dense search), never at start-up."""
    embedder = get_embedder(settings.local)

    async def embed(texts: list[str]) -> list[list[float]]:
        vectors, _tokens = await embedder.embed(texts)
        return vectors

    return KnowledgeService(db, settings.knowledge, embed)


def build_insights(settings: Settings, db: Database, jobs: JobService) -> InsightsService | None:
    """Roll-ups and alerts; answers are embedded for drift only when ``insights.drift.enabled``."""
    if not settings.insights.enabled:
        return None
    embed = local_embed_function(settings) if settings.insights.drift.enabled else None
    return InsightsService(db, settings.insights, jobs, embed=embed, events=build_insight_events(settings))


def build_insight_events(settings: Settings) -> EventBroker:
    """The dashboard's event stream: in this process, or through Redis when the gateway keeps its
    shared state there (``redis_url``), so every process's subscribers hear every process's events."""
    stream = settings.insights.stream
    if settings.redis_url:
        return RedisEvents(settings.redis_url, stream.redis_prefix, stream.replay_events)
    return MemoryEvents(stream.replay_events)


def local_embed_function(settings: Settings) -> EmbedFunction | None:
    """The guard's deeper injection tier embeds with the local model, loaded on first use (only a
    policy with ``injection_deep`` on ever calls it); None when the model is not installed."""
    embedder = get_embedder(settings.local)
    if not embedder.loadable():
        return None

    async def embed(texts: list[str]) -> list[list[float]]:
        vectors, _tokens = await embedder.embed(texts)
        return vectors

    return embed


def register_job_kinds(services: Services, pipeline: Pipeline) -> None:
    """Every job kind the product runs, in the registry the workers read (``jobs.handler_modules``
    add theirs when the job service starts): ``services.jobs.registry.register("kind", handler)``."""
    settings = services.settings
    lines = PipelineLines(pipeline, services.authenticator, principal_ttl_s=settings.auth.cache_ttl_s)
    batches = BatchRun(services.batches.store, services.files, lines, settings.batches)
    services.jobs.registry.register(BATCH_JOB, batches.run)
    bulk = PipelineBulk(
        pipeline,
        services.authenticator,
        services.sessions,
        services.router,
        settings.bulk,
        principal_ttl_s=settings.auth.cache_ttl_s,
    )
    services.jobs.registry.register(BULK_JOB, BulkRun(bulk, settings.bulk).run)
    if services.knowledge is not None:
        services.jobs.registry.register(KNOWLEDGE_INGEST_JOB, IngestJob(services.knowledge).run)
    if services.datasets is not None:
        services.jobs.registry.register(DATASET_EXPORT_JOB, ExportJob(services.datasets).run)
    if services.insights is not None:
        services.insights.register()
    services.agents = build_agent_runs(services, pipeline)
    if services.redteam is not None:
        services.jobs.registry.register(REDTEAM_JOB, build_redteam_job(services, pipeline).run, max_attempts=2)


def build_redteam_job(services: Services, pipeline: Pipeline) -> RedteamJob:
    """Red-team attempts go through the gateway's pipeline (guard on) or the same stages without
    the guard and the cache (guard off); a run's vault prompt is read as the prompt stage reads it."""
    assert services.redteam is not None
    vault = services.vault
    target = PipelineTarget(pipeline, Pipeline(unguarded(pipeline.stages), services.router), services.authenticator)

    async def prompt_text(tenant_id: str, prompt_id: str) -> str:
        resolved, _label = await vault.resolve(tenant_id, prompt_id)
        return resolved.secret.system

    redteam = services.redteam
    return RedteamJob(redteam.store, services.jobs, lambda: redteam.library, target, prompt_text)


def build_stages(services: Services) -> list[Stage]:
    """The pipeline, in order (see docs/ARCHITECTURE.md). ``on_request`` runs top to bottom,
    ``on_response``/``on_stream``/``on_complete`` bottom to top. A stage whose service is off is
    left out."""
    settings = services.settings
    default_tenant = DefaultTenantId(services.db, settings.auth.default_tenant)
    stages: list[Stage | None] = [
        AuthStage(services.authenticator),  # who is calling; rejects before anything is recorded
        # Completes last: records what every later stage decided.
        LedgerStage(services.ledger, settings.ledger.default_mode) if services.ledger is not None else None,
        # Completes just before the ledger, with the same record: the OpenTelemetry span and histograms.
        OtelStage(services.otel, content=settings.otel.content, ledger_mode=settings.ledger.default_mode)
        if services.otel is not None
        else None,
        MetricsStage(),
        # Assigns the request to a running experiment's variant and rewrites it (prompt version,
        # model, parameters): after auth (the tenant), before prompt (which renders the variant's).
        ExperimentStage(services.experiments, default_tenant) if settings.experiments.enabled else None,
        # Vault prompt reference -> real upstream messages; before limits, so budgets and token
        # limits estimate the prompt actually sent.
        PromptStage(services.vault, default_tenant),
        # Scans the request (policy from tenant/user/key/prompt, so after auth and prompt) before
        # limits and routing: a blocked request costs no budget and no upstream call.
        GuardInStage(services.guard) if services.guard is not None else None,
        # Retrieval (bastion.knowledge or the prompt's): after guard in, which scans what the caller
        # wrote (this stage scans the retrieved chunks itself), before limits and the cache, which
        # see the prompt with its sources. Maps the answer's [n] citations back to the sources.
        KnowledgeStage(services.knowledge, DefaultTenantId(services.db, settings.auth.default_tenant), services.guard)
        if services.knowledge is not None
        else None,
        # Admits rate limits and budgets; settles with the real cost.
        LimitsStage(services.limits) if services.limits is not None else None,
        # After guard in (a blocked request is never answered from the cache) and limits (a hit
        # counts as a request, priced at 0); before usage and guard out, so it stores only what the
        # output guard let through and a hit still passes both.
        CacheStage(services.cache, model_resolver(services.router)) if services.cache is not None else None,
        CostStage(services.pricing),  # prices the usage (completes before limits settle)
        UsageStage(),  # token counts and answer text, from the provider or our tokenizer
        # Listed after usage so it sees the answer first (and wraps the stream innermost): usage, the
        # ledger and sessions only ever see what the output guard let through.
        GuardOutStage(services.guard) if services.guard is not None else None,
    ]
    return [stage for stage in stages if stage is not None]


def lifecycles(services: Services) -> list[Lifecycle]:
    """What starts with the gateway, in start order (stopped in reverse)."""
    optional: list[Lifecycle | None] = [
        services.ledger,
        services.otel,  # the exporter's thread and the SDK's background export
        services.guard,
        services.limits,
        services.cache,
        services.review,  # the flagged-interactions task, when review.flagged_interval_s is set
    ]
    insights: list[Lifecycle] = [services.insights] if services.insights is not None else []
    return [
        services.authenticator,
        VaultStartup(services.vault),
        *(service for service in optional if service is not None),
        services.sessions,
        services.responses,
        services.files,
        services.router,
        services.jobs,  # after the router: handlers may call models; stopped first
        BanditUpdates(services.experiments, services.settings.experiments.bandit_interval_s),
        *insights,  # submits roll-up jobs: after the jobs, stopped before them
    ]


def build_gateway(settings: Settings, *, stages: list[Stage] | None = None, job_workers: int | None = None) -> Gateway:
    """The gateway of one process; ``stages`` replaces the default pipeline (tests); ``job_workers``
    as for ``build_services``."""
    services = build_services(settings, job_workers=job_workers)
    pipeline = Pipeline(build_stages(services) if stages is None else stages, services.router)
    register_job_kinds(services, pipeline)
    services.analyzer = build_analyzer(services, pipeline)
    return Gateway(services, pipeline, lifecycles(services))
