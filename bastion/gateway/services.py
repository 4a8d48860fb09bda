"""Every shared service of one gateway process, as a named, typed field.

Built once by the composition root (``bastion/gateway/compose.py``); stages receive the services
they use, the HTTP layer reads the rest from here. A service that is switched off in the settings
is None, so code that uses it says what happens without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bastion.agents.service import AgentRuns
from bastion.analyzer.service import AnalyzerService
from bastion.auth.authenticator import Authenticator
from bastion.batches.service import BatchService
from bastion.cache.service import ResponseCache
from bastion.config.settings import Settings
from bastion.experiments.service import ExperimentService
from bastion.files.service import FileService
from bastion.guard.service import GuardService
from bastion.insights.service import InsightsService
from bastion.jobs.service import JobService
from bastion.knowledge.service import KnowledgeService
from bastion.ledger.writer import LedgerWriter
from bastion.limits.service import LimitsService
from bastion.observability.genai import InteractionExporter
from bastion.redteam.service import RedteamService
from bastion.responses.store import ResponseStore
from bastion.review.datasets import DatasetService
from bastion.review.service import ReviewService
from bastion.routing.router import Router
from bastion.sessions.service import SessionService
from bastion.spend.routes import RoutePricing
from bastion.store.db import Database
from bastion.vault.service import VaultService


class Lifecycle(Protocol):
    """A service with background work or connections: started before the first request, stopped
    after the last one has drained."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    router: Router
    pricing: RoutePricing
    authenticator: Authenticator
    vault: VaultService
    sessions: SessionService
    #: Stored responses of the Responses API (previous_response_id, GET/DELETE).
    responses: ResponseStore
    #: Uploaded files of the Files API (/v1/files), on disk and in the files table.
    files: FileService
    #: None: ``guard.enabled`` is false.
    guard: GuardService | None
    #: None: limits and budgets are both off.
    limits: LimitsService | None
    #: None: ``ledger.enabled`` is false.
    ledger: LedgerWriter | None
    #: Background jobs: submit, read, cancel, retry; the in-process workers, if any.
    jobs: JobService
    #: The OpenAI and Anthropic batch APIs (their lines run as jobs of kind ``batch``).
    batches: BatchService
    #: Experiments: definitions, the running ones (cached for the experiment stage), results.
    experiments: ExperimentService
    #: The response caches; None: ``cache.enabled`` is false.
    cache: ResponseCache | None = None
    #: Knowledge collections and retrieval (ingestion runs as ``knowledge_ingest`` jobs).
    knowledge: KnowledgeService | None = None
    #: Prompt analysis; its rewrite calls models through the pipeline (set by ``build_gateway``).
    analyzer: AnalyzerService | None = None
    #: Human review of ledger interactions (docs/REVIEW.md).
    review: ReviewService | None = None
    #: Dataset versions and their exports (the ``dataset_export`` job kind).
    datasets: DatasetService | None = None
    #: Roll-ups over the ledger, their job and the alert gauges; None: ``insights.enabled`` is false.
    insights: InsightsService | None = None
    #: Agent runs (the ``agent_run`` job kind; set by ``register_job_kinds``); None: ``agents.enabled`` is false.
    agents: AgentRuns | None = None
    #: Red-team runs (the ``redteam_run`` job kind) and garak imports (docs/REDTEAM.md).
    redteam: RedteamService | None = None
    #: The OpenTelemetry export (spans, gen_ai.client.* histograms); None: ``otel.enabled`` is false.
    otel: InteractionExporter | None = None
