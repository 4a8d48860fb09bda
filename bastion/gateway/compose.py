"""The composition root: builds every service of a gateway process from settings, the stages in
their order, and the gateway that starts and stops them. Nothing else constructs services.

Adding a stage is one module in ``bastion/gateway/stages/`` plus one line in ``build_stages``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bastion.auth.authenticator import Authenticator
from bastion.auth.lookup import DefaultTenantId
from bastion.batches.model import JOB_KIND as BATCH_JOB
from bastion.batches.run import BatchRun
from bastion.batches.service import BatchService
from bastion.batches.store import BatchStore
from bastion.bulk.model import JOB_KIND as BULK_JOB
from bastion.bulk.run import BulkRun
from bastion.cache.service import ResponseCache
from bastion.config.settings import Settings
from bastion.files.service import FileService
from bastion.gateway.batch_lines import PipelineLines
from bastion.gateway.bulk_lines import PipelineBulk
from bastion.gateway.pipeline import Pipeline
from bastion.gateway.service import Gateway, VaultStartup
from bastion.gateway.services import Lifecycle, Services
from bastion.gateway.stage import Stage
from bastion.gateway.stages.auth import AuthStage
from bastion.gateway.stages.cache import CacheStage
from bastion.gateway.stages.cost import CostStage
from bastion.gateway.stages.guard_in import GuardInStage
from bastion.gateway.stages.guard_out import GuardOutStage
from bastion.gateway.stages.ledger import LedgerStage
from bastion.gateway.stages.limits import LimitsStage
from bastion.gateway.stages.metrics import MetricsStage
from bastion.gateway.stages.prompt import PromptStage
from bastion.gateway.stages.usage import UsageStage
from bastion.guard.deep_injection import EmbedFunction
from bastion.guard.service import GuardService
from bastion.insights.service import InsightsService
from bastion.jobs.service import JobService
from bastion.knowledge.ingest_job import JOB_KIND as KNOWLEDGE_INGEST_JOB
from bastion.knowledge.ingest_job import IngestJob
from bastion.knowledge.service import KnowledgeService
from bastion.ledger.writer import LedgerWriter
from bastion.limits.service import LimitsService
from bastion.local.embedder import get_embedder
from bastion.responses.store import ResponseStore
from bastion.routing.build import build_router
from bastion.routing.router import Router
from bastion.sessions.service import SessionService
from bastion.spend.routes import RoutePricing
from bastion.store.db import Database
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
        knowledge=build_knowledge(settings, db),
        insights=build_insights(settings, db, jobs),
    )


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
    return InsightsService(db, settings.insights, jobs, embed=embed)


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
    if services.insights is not None:
        services.insights.register()


def build_stages(services: Services) -> list[Stage]:
    """The pipeline, in order (see docs/ARCHITECTURE.md). ``on_request`` runs top to bottom,
    ``on_response``/``on_stream``/``on_complete`` bottom to top. A stage whose service is off is
    left out."""
    settings = services.settings
    stages: list[Stage | None] = [
        AuthStage(services.authenticator),  # who is calling; rejects before anything is recorded
        # Completes last: records what every later stage decided.
        LedgerStage(services.ledger, settings.ledger.default_mode) if services.ledger is not None else None,
        MetricsStage(),
        # Vault prompt reference -> real upstream messages; before limits, so budgets and token
        # limits estimate the prompt actually sent.
        PromptStage(services.vault, DefaultTenantId(services.db, settings.auth.default_tenant)),
        # Scans the request (policy from tenant/user/key/prompt, so after auth and prompt) before
        # limits and routing: a blocked request costs no budget and no upstream call.
        GuardInStage(services.guard) if services.guard is not None else None,
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
    optional: list[Lifecycle | None] = [services.ledger, services.guard, services.limits, services.cache]
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
        *insights,  # submits roll-up jobs: after the jobs, stopped before them
    ]


def build_gateway(settings: Settings, *, stages: list[Stage] | None = None, job_workers: int | None = None) -> Gateway:
    """The gateway of one process; ``stages`` replaces the default pipeline (tests); ``job_workers``
    as for ``build_services``."""
    services = build_services(settings, job_workers=job_workers)
    pipeline = Pipeline(build_stages(services) if stages is None else stages, services.router)
    register_job_kinds(services, pipeline)
    return Gateway(services, pipeline, lifecycles(services))
