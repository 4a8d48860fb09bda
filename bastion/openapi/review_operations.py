"""Review, datasets and fine-tune exports in the OpenAPI document (docs/REVIEW.md): seed 000's
``/api/v1/admin/ai/finetune/...`` routes, the review queue, datasets and their exports; the
bodies and answers ``bastion/api/admin_review.py`` reads and builds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.components import pydantic_components, ref
from bastion.openapi.operation import Operation, json, path, query

_SCORE = Annotated[int, Field(ge=1, le=5)]
_ID = {"type": "string", "minLength": 1, "maxLength": 32}
_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,128}$"}
_VERSION = {"type": "integer", "minimum": 1, "maximum": 999_999_999}
_FORMAT = Literal["openai", "openai-dpo", "anthropic", "bedrock-conversation"]
_REVIEW, _DATASETS = "Admin: review", "Admin: datasets"
_MANAGE = "Needs `datasets:manage` (admins, developers)."
_REVIEWER = "Needs `review:write` (reviewers, developers, admins)."


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ReviewFilter(_Closed):
    from_: str | None = Field(None, alias="from", description="ISO 8601, inclusive.")
    to: str | None = Field(None, description="ISO 8601, exclusive.")
    model: str | None = None
    prompt_id: str | None = None
    prompt_version: int | None = None
    key_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    flagged: bool | None = None
    guard_action: Literal["allow", "flag", "redact", "block"] | None = None
    guard_scanner: str | None = Field(None, description="A guard scanner that flagged the interaction.")
    experiment_arm: str | None = None
    limit: int = Field(1000, ge=1, le=10_000)


class ReviewPrepare(_Closed):
    name: str | None = Field(None, max_length=128)
    purpose: str | None = Field(None, max_length=64, description="Default sft (single) or preference (pairwise).")
    kind: Literal["single", "pairwise"] = "single"
    filter: ReviewFilter | None = None
    reviewers_per_item: int | None = Field(None, ge=1, le=10, description="Default `review.reviewers_per_item` (2).")
    lease_s: int | None = Field(None, ge=10, le=86_400)


class ReviewScores(_Closed):
    relevance: _SCORE
    accuracy: _SCORE
    helpfulness: _SCORE
    safety: _SCORE
    coherence: _SCORE
    completeness: _SCORE


class ReviewSubmit(_Closed):
    """Single items: the six scores, a verdict, optional feedback and corrected answer. Pairwise
    items: ``preferred`` only."""

    scores: ReviewScores | None = None
    verdict: Literal["approve", "reject", "needs-edit"] | None = None
    feedback: str | None = Field(None, max_length=100_000)
    corrected_answer: str | None = Field(None, max_length=100_000)
    preferred: Literal["a", "b"] | None = None


class ReviewAssign(_Closed):
    item_id: str
    reviewer: str = Field(pattern=r"^(user|key):.{1,120}$")


class DatasetBuild(_Closed):
    purpose: str | None = Field(None, max_length=64)
    kind: Literal["sft", "preference"] = "sft"
    batch_ids: list[str] | None = None
    min_quality: float = Field(3.0, ge=1, le=5)
    min_reviews: int = Field(1, ge=1, le=10)
    multi_turn: bool = True


class DatasetExportCreate(_Closed):
    format: _FORMAT
    system: Literal["original", "replace", "none"] = "original"
    system_prompt: str | None = None
    repairs: list[str] | None = None
    background: bool | None = None


class ReviewBatch(_Open):
    id: str
    object: Literal["review_batch"]
    name: str
    purpose: str
    kind: Literal["single", "pairwise"]
    reviewers_per_item: int
    item_count: int
    created_at: str
    counts: dict[str, int] | None = None


class ReviewBatchList(_Closed):
    object: Literal["list"]
    data: list[ReviewBatch]


class ReviewItem(_Open):
    id: str
    object: Literal["review_item"]
    batch_id: str
    interaction: dict[str, Any] | None


class ReviewItemList(_Closed):
    object: Literal["list"]
    data: list[ReviewItem]


class ReviewClaim(_Closed):
    object: Literal["review_claim"]
    item: ReviewItem | None


class ReviewAssignment(_Open):
    id: str
    reviewer: str
    state: Literal["leased", "done", "expired"]


class Review(_Open):
    id: str
    object: Literal["review"]
    item_id: str
    reviewer: str
    scores: dict[str, int]
    verdict: str | None
    preferred: str | None


class ReviewProgress(_Open):
    object: Literal["review_progress"]
    batch_id: str
    reviewers: list[dict[str, Any]]


class ReviewAgreement(_Open):
    object: Literal["review_agreement"]
    batch_id: str
    kind: str
    reviews: int


class Dataset(_Open):
    object: Literal["dataset"]
    name: str


class DatasetList(_Closed):
    object: Literal["list"]
    data: list[Dataset]


class DatasetVersion(_Open):
    id: str
    object: Literal["dataset_version"]
    dataset: str
    version: int
    kind: str
    example_count: int


class DatasetExport(_Open):
    id: str
    object: Literal["dataset_export"]
    format: str
    status: Literal["queued", "running", "succeeded", "failed"]
    file_id: str | None
    sha256: str | None


class DatasetExportList(_Closed):
    object: Literal["list"]
    data: list[DatasetExport]


def review_components() -> dict[str, Any]:
    return pydantic_components(
        [
            ReviewPrepare, ReviewSubmit, ReviewAssign, DatasetBuild, DatasetExportCreate, ReviewBatch, ReviewBatchList,
            ReviewItem, ReviewItemList, ReviewClaim, ReviewAssignment, Review, ReviewProgress, ReviewAgreement, Dataset,
            DatasetList, DatasetVersion, DatasetExport, DatasetExportList,
        ]
    )  # fmt: skip


_F, _R, _D, _E = (
    "/api/v1/admin/ai/finetune",
    "/api/v1/admin/review",
    "/api/v1/admin/datasets",
    "/api/v1/admin/dataset-exports",
)
_BATCH = path("batch_id", _ID)
_ITEM = path("item_id", _ID)
_DATASET = path("name", _NAME)
_V = path("version", _VERSION)
_EXPORT = path("export_id", _ID)
_LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size (default 100).")
_FILE = {200: {"application/octet-stream": ref("FileContent")}}
_SCORES = {"relevance": 4, "accuracy": 4, "helpfulness": 5, "safety": 5, "coherence": 4, "completeness": 4}

REVIEW_OPERATIONS = [
    Operation(
        "post", f"{_F}/prepare", "prepareReview", "Queue ledger interactions for human review (seed 000)", _REVIEW,
        {201: json("ReviewBatch")}, body="ReviewPrepare", errors=(400, 409, 413),
        example={"purpose": "sft", "filter": {"flagged": False, "limit": 100}, "reviewers_per_item": 2},
        description=_MANAGE + " Successful chat interactions whose content the ledger kept, never queued twice "
        "for one purpose; `kind: pairwise` pairs two answers to the same input.",
    ),
    Operation(
        "post", f"{_F}/review/{{item_id}}", "submitReview", "A reviewer's review of an item they claimed (seed 000)",
        _REVIEW, {201: json("Review")}, params=(_ITEM,), body="ReviewSubmit", errors=(400, 404, 409, 413),
        example={"scores": _SCORES, "verdict": "approve", "feedback": "Accurate and brief."},
        description=_REVIEWER + " A `needs-edit` or `approve` with `corrected_answer` makes the correction the "
        "training target (the original answer stays in the ledger).",
    ),
    Operation(
        "get", f"{_F}/export", "exportDataset", "Export a dataset version and download the file (seed 000)",
        _DATASETS, _FILE,
        params=(
            query("dataset", _NAME, "The dataset's name.", required=True),
            query("version", _VERSION, "Default: the latest."),
            query("format", {"type": "string", "enum": ["openai", "openai-dpo", "anthropic", "bedrock-conversation"]}),
            query("system", {"type": "string", "enum": ["original", "replace", "none"]}),
            query("system_prompt", {"type": "string"}, "The replacement (with system=replace)."),
            query("repairs", {"type": "string"}, "Comma-separated repair flags."),
        ),
        errors=(400, 404, 409),
        description=_MANAGE + " The export is recorded in the history; `x-bastion-export-id` and `x-bastion-sha256` "
        "name it. Versions larger than `review.inline_export_max` are exported as a job instead (409).",
    ),
    Operation("get", f"{_R}/batches", "listReviewBatches", "Review batches, newest first", _REVIEW,
              {200: json("ReviewBatchList")}, params=(_LIMIT,),
              errors=(400,), description=_REVIEWER),
    Operation("get", f"{_R}/batches/{{batch_id}}", "getReviewBatch", "One review batch with its counts", _REVIEW,
              {200: json("ReviewBatch")}, params=(_BATCH,), errors=(404,), description=_REVIEWER),
    Operation("post", f"{_R}/batches/{{batch_id}}/claim", "claimReviewItem",
              "The next item for the caller, locked to them (lease); item null when none is left", _REVIEW,
              {200: json("ReviewClaim")}, params=(_BATCH,), errors=(404,), description=_REVIEWER),
    Operation("post", f"{_R}/batches/{{batch_id}}/assign", "assignReviewItem", "Put a reviewer on an item", _REVIEW,
              {201: json("ReviewAssignment")}, params=(_BATCH,), body="ReviewAssign", errors=(400, 404, 409, 413),
              description=_MANAGE),
    Operation("get", f"{_R}/batches/{{batch_id}}/progress", "getReviewProgress", "Progress per reviewer", _REVIEW,
              {200: json("ReviewProgress")}, params=(_BATCH,), errors=(404,),
              description=_REVIEWER + " A reviewer sees their own line."),
    Operation("get", f"{_R}/batches/{{batch_id}}/agreement", "getReviewAgreement",
              "Agreement per dimension (Cohen's kappa, Krippendorff's alpha) and pass rates (Wilson 95%)", _REVIEW,
              {200: json("ReviewAgreement")}, params=(_BATCH,), errors=(404,), description=_MANAGE),
    Operation("get", f"{_R}/items", "listMyReviewItems", "The items leased to the caller", _REVIEW,
              {200: json("ReviewItemList")}, description=_REVIEWER),
    Operation("get", f"{_R}/items/{{item_id}}", "getReviewItem", "An item with its reviews", _REVIEW,
              {200: json("ReviewItem")}, params=(_ITEM,), errors=(404,), description=_MANAGE),
    Operation("post", f"{_R}/items/{{item_id}}/release", "releaseReviewItem",
              "Give a claimed item back (it will not come back to the caller)", _REVIEW,
              {200: json("ReviewAssignment")}, params=(_ITEM,), errors=(404, 409), description=_REVIEWER),
    Operation("get", _D, "listDatasets", "The tenant's datasets", _DATASETS, {200: json("DatasetList")},
              description=_MANAGE),
    Operation("get", f"{_D}/{{name}}", "getDataset", "A dataset and its versions", _DATASETS, {200: json("Dataset")},
              params=(_DATASET,), errors=(404,), description=_MANAGE),
    Operation("post", f"{_D}/{{name}}/versions", "buildDatasetVersion",
              "Build the next immutable version from the approved examples", _DATASETS, {201: json("DatasetVersion")},
              params=(_DATASET,), body="DatasetBuild", errors=(400, 409, 413),
              example={"purpose": "sft", "min_quality": 3, "multi_turn": True}, description=_MANAGE),
    Operation("get", f"{_D}/{{name}}/versions/{{version}}", "getDatasetVersion",
              "A version with its manifest (counts, tokens, source ids, files with their sha256)", _DATASETS,
              {200: json("DatasetVersion")}, params=(_DATASET, _V), errors=(400, 404), description=_MANAGE),
    Operation("get", f"{_D}/{{name}}/versions/{{version}}/exports", "listDatasetExports",
              "A version's export history, newest first", _DATASETS, {200: json("DatasetExportList")},
              params=(_DATASET, _V), errors=(400, 404), description=_MANAGE),
    Operation("post", f"{_D}/{{name}}/versions/{{version}}/exports", "createDatasetExport",
              "Export a version (201: done now; 202: queued as a dataset_export job)", _DATASETS,
              {201: json("DatasetExport"), 202: json("DatasetExport")}, params=(_DATASET, _V),
              body="DatasetExportCreate", errors=(400, 403, 404, 413), example={"format": "openai", "system": "none"},
              description=_MANAGE + " `system: original` (the vault prompt) also needs `prompts:read_plaintext`."),
    Operation("get", f"{_E}/{{export_id}}", "getDatasetExport", "One export, with its validation report", _DATASETS,
              {200: json("DatasetExport")}, params=(_EXPORT,), errors=(404,), description=_MANAGE),
    Operation("get", f"{_E}/{{export_id}}/content", "getDatasetExportContent", "An export's file", _DATASETS,
              _FILE, params=(_EXPORT,), errors=(404, 409), description=_MANAGE),
]  # fmt: skip
