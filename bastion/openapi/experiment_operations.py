"""Experiments in the OpenAPI document: ``/api/v1/admin/experiments`` (definitions, start, stop,
results, report, bandit weights) and ``POST /v1/feedback``, with their bodies and answers (what
``bastion/experiments`` builds; docs/EXPERIMENTS.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.experiments.model import PARAMETERS, STATUSES
from bastion.openapi.components import pydantic_components
from bastion.openapi.operation import Operation, json, path, query

_TAG = "Admin: experiments"
_NAME = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
#: The same values as ``bastion.experiments`` (tests/experiments/test_api.py keeps them equal).
_Metric = Literal[
    "error_rate", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
    "guard_flag_rate", "feedback", "review_score", "cost_per_success",
]  # fmt: skip
_Unit = Literal["user", "session", "key", "request"]
_Method = Literal["frequentist", "bayesian", "sequential"]
_Status = Literal["draft", "running", "stopped"]
_Correction = Literal["holm", "benjamini-hochberg"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentTarget(_Closed):
    """Exactly one of the two: the model alias or the vault prompt whose requests enter."""

    model: str | None = None
    prompt_id: str | None = None


class ExperimentVariant(_Closed):
    name: _NAME
    prompt_version: Annotated[int, Field(ge=1)] | None = None
    prompt_label: str | None = None
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, description=f"Overrides of {', '.join(sorted(PARAMETERS))}.")


class ExperimentCreate(_Closed):
    name: _NAME
    hypothesis: str | None = None
    target: ExperimentTarget
    variants: list[ExperimentVariant] = Field(min_length=2, max_length=10, description="The control first.")
    weights: list[float] | None = Field(None, description="One per variant, summing to 1 (default: equal).")
    coverage: float = Field(1.0, gt=0, le=1, description="The share of the target's traffic in the experiment.")
    unit: _Unit = "user"
    metrics: list[_Metric] | None = Field(None, description="The first is the primary metric.")
    seed: str | None = Field(None, description="The assignment seed (default: the experiment id).")
    method: _Method = "bayesian"
    bandit: bool = False
    correction: _Correction = "holm"


class ExperimentUpdate(_Closed):
    """Any field of the definition; target, variants, weights, coverage, unit and seed only in draft."""

    name: _NAME | None = None
    hypothesis: str | None = None
    target: ExperimentTarget | None = None
    variants: list[ExperimentVariant] | None = None
    weights: list[float] | None = None
    coverage: float | None = None
    unit: _Unit | None = None
    metrics: list[_Metric] | None = None
    seed: str | None = None
    method: _Method | None = None
    bandit: bool | None = None
    correction: _Correction | None = None


class Experiment(_Closed):
    id: str
    object: Literal["experiment"]
    name: str
    hypothesis: str
    target: ExperimentTarget
    variants: list[ExperimentVariant]
    weights: list[float]
    coverage: float
    unit: _Unit
    metrics: list[_Metric]
    seed: str
    status: _Status
    method: _Method
    bandit: bool
    correction: _Correction
    created_at: str | None
    started_at: str | None
    stopped_at: str | None


class ExperimentList(_Closed):
    object: Literal["list"]
    data: list[Experiment]


class ExperimentDeleted(_Closed):
    deleted: bool


class ExperimentResults(BaseModel):
    """Per metric and variant: units, means, effects with intervals, p-values or chance to win and
    risk; the sample-ratio check, the decision hint, and the peeking warning (docs/EXPERIMENTS.md)."""

    model_config = ConfigDict(extra="allow")

    object: Literal["experiment.results"]
    method: _Method
    control: str
    units: dict[str, int]
    metrics: list[dict[str, Any]]
    decision: dict[str, Any]


class BanditRound(BaseModel):
    model_config = ConfigDict(extra="allow")

    round: int
    weights: list[float]
    best_arm_probabilities: list[float]
    seed: int


class BanditHistory(_Closed):
    object: Literal["list"]
    data: list[BanditRound]


class FeedbackCreate(_Closed):
    """``thumbs`` or ``score``, not both."""

    interaction_id: Annotated[str, Field(min_length=1, max_length=64, description="The request id.")]
    thumbs: Literal["up", "down"] | None = None
    score: float | None = None
    comment: Annotated[str, Field(max_length=4000)] | None = None


class FeedbackView(_Closed):
    id: str
    object: Literal["feedback"]
    interaction_id: str
    kind: Literal["thumbs", "score"]
    score: float
    comment: str | None
    created_at: str


class SummaryAnalysisArm(_Closed):
    name: str = Field(min_length=1)
    n: int = Field(ge=0)
    sum: float
    sum_squares: float | None = Field(None, description="Needed for a mean metric.")


class SummaryAnalysisRequest(_Closed):
    """Per-arm summary statistics, control first (the file of `bastion experiments analyze`)."""

    metric: Literal["binomial", "mean"]
    method: _Method = "frequentist"
    alpha: float = Field(0.05, gt=0, lt=1)
    relative: bool = True
    arms: list[SummaryAnalysisArm] = Field(min_length=2)


class SummaryAnalysis(BaseModel):
    """For every arm after the control: ``expected``, ``ci``, and ``p_value`` or ``chance_to_win``
    and ``risk``; plus ``srm_p_value`` (docs/EXPERIMENTS.md)."""

    model_config = ConfigDict(extra="allow")


class SampleSizeRequest(_Closed):
    baseline: float = Field(description="Control's conversion rate, or its mean with `sd`.")
    mde: float = Field(description="Minimum detectable effect: absolute, or a fraction with `relative`.")
    relative: bool = False
    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)
    method: Literal["pooled", "unpooled", "arcsine", "continuity"] = "pooled"
    sd: float | None = Field(None, gt=0, description="A continuous metric's standard deviation (exact noncentral t).")
    sequential: bool = False
    tuning: float = Field(5000.0, gt=0, description="The sequential test's tuning parameter.")


class SampleSizeAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    per_arm: int
    total: int
    method: str


def experiment_components() -> dict[str, Any]:
    return pydantic_components(
        [ExperimentCreate, ExperimentUpdate, Experiment, ExperimentList, ExperimentDeleted, ExperimentResults,
         BanditRound, BanditHistory, FeedbackCreate, FeedbackView, SummaryAnalysisRequest, SummaryAnalysis,
         SampleSizeRequest, SampleSizeAnswer]
    )  # fmt: skip


_P = "/api/v1/admin/experiments"
_ID = path("experiment_id", {"type": "string", "minLength": 1, "maxLength": 64}, "The experiment's id or name.")
_READ = "Needs `ledger:read`; the caller's tenant's experiments only."
_WRITE = "Needs `prompts:write`; the caller's tenant's experiments only."
_EXAMPLE = {
    "name": "concise-v2",
    "hypothesis": "The concise prompt gets more thumbs up at no extra cost.",
    "target": {"prompt_id": "support-bot"},
    "variants": [{"name": "control", "prompt_label": "production"}, {"name": "concise", "prompt_version": 2}],
    "unit": "user",
    "metrics": ["feedback", "error_rate", "cost_usd"],
}

EXPERIMENT_OPERATIONS = [
    Operation(
        "get", _P, "listExperiments", "The tenant's experiments, newest first", _TAG, {200: json("ExperimentList")},
        params=(query("status", {"type": "string", "enum": list(STATUSES)}),), errors=(400,), description=_READ,
    ),
    Operation(
        "post", _P, "createExperiment", "Define an experiment (a draft)", _TAG, {201: json("Experiment")},
        body="ExperimentCreate", errors=(400, 409, 413), example=_EXAMPLE, description=_WRITE,
    ),
    Operation(
        "post", f"{_P}/analyze", "analyzeSummaryStatistics",
        "Analyse an experiment from per-arm summary statistics (as `bastion experiments analyze`)", _TAG,
        {200: json("SummaryAnalysis")}, body="SummaryAnalysisRequest", errors=(400, 413),
        example={"metric": "binomial", "method": "bayesian", "arms": [
            {"name": "control", "n": 1000, "sum": 100}, {"name": "concise", "n": 1000, "sum": 125}]},
        description="Needs `ledger:read`; computes, stores nothing.",
    ),
    Operation(
        "post", f"{_P}/sample-size", "experimentSampleSize",
        "Units per arm for a two-arm test (as `bastion experiments sample-size`)", _TAG,
        {200: json("SampleSizeAnswer")}, body="SampleSizeRequest", errors=(400, 413),
        example={"baseline": 0.1, "mde": 0.02}, description="Needs `ledger:read`; computes, stores nothing.",
    ),
    Operation(
        "get", f"{_P}/{{experiment_id}}", "getExperiment", "One experiment", _TAG, {200: json("Experiment")},
        params=(_ID,), errors=(404,), description=_READ,
    ),
    Operation(
        "patch", f"{_P}/{{experiment_id}}", "updateExperiment", "Change an experiment's definition", _TAG,
        {200: json("Experiment")}, params=(_ID,), body="ExperimentUpdate", errors=(400, 404, 409, 413),
        example={"hypothesis": "Shorter answers are rated higher."}, description=_WRITE,
    ),
    Operation(
        "delete", f"{_P}/{{experiment_id}}", "deleteExperiment", "Delete a draft or stopped experiment", _TAG,
        {200: json("ExperimentDeleted")}, params=(_ID,), errors=(404, 409), description=_WRITE,
    ),
    Operation(
        "post", f"{_P}/{{experiment_id}}/start", "startExperiment", "Start assigning traffic", _TAG,
        {200: json("Experiment")}, params=(_ID,), errors=(404, 409), description=_WRITE,
    ),
    Operation(
        "post", f"{_P}/{{experiment_id}}/stop", "stopExperiment", "Stop assigning traffic", _TAG,
        {200: json("Experiment")}, params=(_ID,), errors=(404, 409), description=_WRITE,
    ),
    Operation(
        "get", f"{_P}/{{experiment_id}}/results", "getExperimentResults", "Results from the ledger (JSON)", _TAG,
        {200: json("ExperimentResults")}, params=(_ID,), errors=(404,), description=_READ,
    ),
    Operation(
        "get", f"{_P}/{{experiment_id}}/report", "getExperimentReport", "Results as a readable text report", _TAG,
        {200: {"text/plain": {"type": "string"}}}, params=(_ID,), errors=(404,), description=_READ,
    ),
    Operation(
        "get", f"{_P}/{{experiment_id}}/weights", "getExperimentWeights", "A bandit's weight updates, oldest first",
        _TAG, {200: json("BanditHistory")}, params=(_ID,), errors=(404,), description=_READ,
    ),
    Operation(
        "post", f"{_P}/{{experiment_id}}/weights", "updateExperimentWeights",
        "Update a running bandit's weights now (Thompson sampling on the primary metric)", _TAG,
        {200: json("BanditRound")}, params=(_ID,), errors=(404, 409), description=_WRITE,
    ),
    Operation(
        "post", "/v1/feedback", "createFeedback", "Score an interaction: thumbs up or down, or a number", _TAG,
        {201: json("FeedbackView")}, body="FeedbackCreate", errors=(400, 404, 413),
        example={"interaction_id": "req_0123456789abcdef01234567", "thumbs": "up"},
        description="Needs `models:call`; the interaction (the `x-request-id` of its answer) must be the "
        "caller's tenant's.",
    ),
]  # fmt: skip
