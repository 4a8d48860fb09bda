"""The red team in the OpenAPI document: ``/v1/redteam/...`` (runs, reports, the attack library,
garak imports) and ``GET /api/v1/insights/redteam``, with their answers (what
``bastion/redteam/service.py`` and ``bastion/api/insights_redteam.py`` build; docs/REDTEAM.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.components import pydantic_components, ref
from bastion.openapi.operation import CHAT_MODEL, Operation, json, path, query

TAG = "Red team"
TAG_DESCRIPTION = "Red-team runs against the gateway's models, their reports, garak imports (docs/REDTEAM.md)."
Category = Literal["prompt_injection", "jailbreak", "system_prompt_extraction", "pii_extraction", "encoding"]


class RedteamRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A chat model (alias) of this gateway.")
    prompt: str | None = Field(None, description="A vault prompt id: its production version is the system prompt.")
    guard: bool = Field(
        True, description="Through the guard with the tenant's policy (true) or without it (admin only)."
    )
    mode: Literal["gateway", "model"] | None = Field(
        None, description="Alias of `guard`: `gateway` (guard on) or `model` (guard bypassed, admin only)."
    )
    categories: list[Category] | None = None
    techniques: list[str] | None = None
    attack_ids: list[str] | None = None
    perturbations: list[Literal["paraphrase", "casing", "whitespace", "encoding"]] | None = Field(
        None, description="Variant kinds besides the base attempt (default: all)."
    )
    max_attempts: int | None = Field(None, ge=1, le=5000, description="A seeded sample, base attempts first.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    concurrency: int = Field(4, ge=1, le=16)
    max_tokens: int = Field(256, ge=1, le=8192)


class RedteamProgress(BaseModel):
    done: int
    total: int | None


class RedteamCategoryFigures(BaseModel):
    attempts: int
    successes: int
    rate: float


class RedteamGuardEffectiveness(BaseModel):
    model_run: str = Field(description="The model-only run (guard bypassed).")
    gateway_run: str = Field(description="The run through the guard.")
    overall: float = Field(description="Attack success rate without the guard minus with it.")
    by_category: dict[str, float]


class RedteamSummary(BaseModel):
    attempts: int = Field(description="Judged attempts (calls that failed are left out).")
    success_rate: float
    by_category: dict[str, RedteamCategoryFigures]
    fragility: float | None = Field(description="Mean over attacks of the share of variant pairs that disagree.")
    guard_effectiveness: RedteamGuardEffectiveness | None = Field(
        None, description="Against the latest pair run of the other mode (same model, prompt, selection, seed)."
    )


class RedteamRun(BaseModel):
    object: Literal["redteam.run"]
    id: str
    source: Literal["bastion", "garak"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "imported"]
    model: str
    prompt: str | None
    guard: bool
    seed: int
    spec: dict[str, Any]
    job_id: str | None
    progress: RedteamProgress
    error: str | None
    created_at: str
    finished_at: str | None
    summary: RedteamSummary | None


class RedteamRunEvent(BaseModel):
    """One server-sent event: ``progress`` (``id``: attempts done) or ``done`` (the run)."""

    run_id: str | None = None
    status: str | None = None
    done: int | None = None
    total: int | None = None
    by_category: dict[str, Any] | None = None
    object: str | None = None


class RedteamRunList(BaseModel):
    object: Literal["list"]
    data: list[RedteamRun]
    first_id: str | None
    last_id: str | None
    has_more: bool


class RedteamAttack(BaseModel):
    object: Literal["redteam.attack"]
    id: str
    category: Category
    technique: str
    goal: Literal["rogue", "comply", "leak_prompt", "leak_pii"]
    template: str
    payload: str
    source: str
    licence: str
    encodings: list[str]
    paraphrases: list[str]
    markers: list[str]
    description: str


class RedteamAttackList(BaseModel):
    object: Literal["list"]
    data: list[RedteamAttack]


class RedteamGarakImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report: str = Field(description="The garak report's text (JSON Lines).")
    target: str | None = Field(None, max_length=256, description="The model's name, when the report has none.")


class RedteamInsightsRun(BaseModel):
    id: str
    created_at: str
    status: str
    target: str
    guard: bool
    attempts: int
    success_rate: float
    by_category: dict[str, RedteamCategoryFigures]
    fragility: float | None


class RedteamInsights(BaseModel):
    runs: list[RedteamInsightsRun]


MODELS: list[type[BaseModel]] = [
    RedteamRunCreate, RedteamRun, RedteamRunEvent, RedteamRunList, RedteamAttackList, RedteamGarakImport,
    RedteamInsights,
]  # fmt: skip


def redteam_components() -> dict[str, Any]:
    schemas = pydantic_components(MODELS)
    schemas["RedteamReport"] = {
        "type": "object",
        "description": "A run's report: schema `bastion.redteam.report` (version 1; the JSON Schema "
        "`bastion/redteam/report.schema.json`), or `bastion.redteam.garak_import` for an imported run.",
        "properties": {"schema": {"enum": ["bastion.redteam.report", "bastion.redteam.garak_import"]}},
        "required": ["schema", "schema_version", "run", "attempts"],
    }
    schemas["RedteamGarakReport"] = {"type": "string", "description": "A garak report (JSON Lines)."}
    return schemas


RUN_ID = path("run_id", {"type": "string", "minLength": 1, "maxLength": 64})
_R = "/v1/redteam/runs/{run_id}"
_SEED = "/api/v1/red-team"
SEED_RUN_ID = query("run_id", {"type": "string", "minLength": 1, "maxLength": 64}, "The run's id.", required=True)
_RUN = "Needs `redteam:run` (admin, developer). "
_READ = "Needs `redteam:read` (admin, developer, viewer); the caller's tenant only. "

REDTEAM_OPERATIONS = [
    Operation(
        "post", "/v1/redteam/runs", "createRedteamRun", "Start a red-team run", TAG,
        {202: json("RedteamRun")}, body="RedteamRunCreate", errors=(400, 403, 413),
        example={"model": CHAT_MODEL, "guard": True, "categories": ["system_prompt_extraction"], "seed": 7,
                 "max_attempts": 3, "max_tokens": 64},
        description=_RUN + "Queued as a `redteam_run` job; its attempts go through the pipeline as the "
        "caller (guard on) or the same stages without the guard (guard off), each ledgered with "
        "`extra.redteam_run`. A model-only run (`guard: false`, `mode: model`) needs the admin role (403 "
        "otherwise). 400: an unknown field, category, attack id, model or vault prompt.",
    ),
    Operation(
        "get", "/v1/redteam/runs", "listRedteamRuns", "The tenant's runs, newest first", TAG,
        {200: json("RedteamRunList")},
        params=(
            query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size (default 20)."),
            query("after", {"type": "string"}, "The `last_id` of the previous page."),
        ),
        errors=(400,), description=_READ,
    ),
    Operation(
        "get", _R, "getRedteamRun", "A run: status, progress, summary", TAG,
        {200: json("RedteamRun")}, params=(RUN_ID,), errors=(404,), description=_READ,
    ),
    Operation(
        "get", _R + "/report", "getRedteamReport", "A run's JSON report", TAG,
        {200: json("RedteamReport")}, params=(RUN_ID,), errors=(404, 409),
        description=_READ + "409 while the run has no report (queued, running, cancelled, failed). The report "
        "of a run on a vault prompt needs `redteam:run` too (403 otherwise).",
    ),
    Operation(
        "get", _R + "/report.html", "getRedteamReportPage", "A run's report as a self-contained page", TAG,
        {200: {"text/html": {"type": "string"}}}, params=(RUN_ID,), errors=(404, 409),
        description=_READ + "Inline CSS, no script, no external URL; served with "
        "`Content-Security-Policy: default-src 'none'`. 409: no report yet, or an imported run.",
    ),
    Operation(
        "get", _R + "/events", "streamRedteamRunEvents", "A run's progress as it happens", TAG,
        {200: {"text/event-stream": ref("RedteamRunEvent")}}, params=(RUN_ID,), errors=(400, 404),
        description=_READ + "Server-sent events: `progress` (id: attempts done; `done`, `total`, successes "
        "so far per category), resuming after `Last-Event-ID`; a `: keep-alive` comment when quiet; `done` "
        "with the run and its summary ends the stream.",
    ),
    Operation(
        "post", _R + "/cancel", "cancelRedteamRun", "Stop a queued or running run", TAG,
        {200: json("RedteamRun")}, params=(RUN_ID,), errors=(404, 409),
        description=_RUN + "Stops between attempts (within about a second); 409 once it has finished.",
    ),
    Operation(
        "get", "/v1/redteam/attacks", "listRedteamAttacks", "The attack library", TAG,
        {200: json("RedteamAttackList")},
        params=(query("category", {"type": "string"}), query("technique", {"type": "string"})),
        errors=(400,), description=_READ,
    ),
    Operation(
        "post", "/v1/redteam/imports/garak", "importGarakReport", "Store a garak report as a run", TAG,
        {201: json("RedteamRun")}, body="RedteamGarakReport", body_media="application/x-ndjson",
        other_bodies=(("application/json", "RedteamGarakImport"),), errors=(400, 413),
        params=(query("target", {"type": "string", "maxLength": 256}, "The model's name, when the report has none."),),
        description=_RUN + "The report's evaluated attempts (status 2) become the run's attempts; success "
        "when a detector scored 0.5 or more. 400: a line that is not JSON, or nothing to import.",
    ),
    Operation(
        "post", _SEED + "/start", "startRedTeam", "Start a red-team run (seed 004's name)", TAG,
        {202: json("RedteamRun")}, body="RedteamRunCreate", errors=(400, 403, 413),
        example={"model": CHAT_MODEL, "mode": "gateway", "categories": ["system_prompt_extraction"], "seed": 7,
                 "max_attempts": 3, "max_tokens": 64},
        description=_RUN + "The same as `POST /v1/redteam/runs`.",
    ),
    Operation(
        "get", _SEED + "/status", "getRedTeamStatus", "A run with its progress (seed 004's name)", TAG,
        {200: json("RedteamRun")}, params=(SEED_RUN_ID,), errors=(400, 404),
        description=_READ + "The same as `GET /v1/redteam/runs/{run_id}`.",
    ),
    Operation(
        "get", _SEED + "/results", "getRedTeamResults", "A run's JSON report (seed 004's name)", TAG,
        {200: json("RedteamReport")}, params=(SEED_RUN_ID,), errors=(400, 404, 409),
        description=_READ + "The same as `GET /v1/redteam/runs/{run_id}/report`: 409 while the run is running.",
    ),
    Operation(
        "get", "/api/v1/insights/redteam", "getInsightsRedteam", "Red-team runs for the dashboard", "Insights",
        {200: json("RedteamInsights")},
        params=(query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Default 10."),),
        errors=(400,),
        description="Needs `usage:read`. The latest runs (here or imported): attack success rate per "
        "category and fragility (docs/INSIGHTS.md).",
    ),
]  # fmt: skip
