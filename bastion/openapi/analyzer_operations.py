"""The prompt analyzer in the OpenAPI document: its three admin routes, their bodies and answers
(what ``bastion/analyzer/model.py`` and ``service.py`` build)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.admin_models import Label, PromptVersionView
from bastion.openapi.components import pydantic_components
from bastion.openapi.operation import CHAT_MODEL, Operation, json, path
from bastion.vault.model import MAX_TEXT_CHARS, PROMPT_ID

_TAG = "Admin: prompts"
_P = "/api/v1/admin/ai/prompts"
_PROMPT_ID = path("prompt_id", {"type": "string", "pattern": PROMPT_ID.pattern})
_NAMES = Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(max_length=100)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptAnalyze(_Closed):
    """Which version (default: the one labelled production) and how to read it."""

    version: Annotated[int, Field(ge=1, le=999_999_999)] | None = None
    label: Label | None = None
    variables: _NAMES | None = Field(
        None, description="Variable names the application sends (default: the version's metadata.inputs)."
    )
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="The model the prompt is for (default: the version's); exact token counts for local models."
    )


class PromptRewrite(PromptAnalyze):
    model: Annotated[str, Field(min_length=1, max_length=256)] = Field(description="The model that rewrites.")
    instructions: Annotated[str, Field(max_length=2000)] | None = None


class TextAnalyze(_Closed):
    system_prompt: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S")]
    user_template: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None
    variables: _NAMES | None = None
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class AnalysisSpan(_Closed):
    part: Literal["system", "template"]
    start: int
    end: int
    #: Only for callers who may read the text.
    excerpt: str | None = None


class AnalysisFinding(_Closed):
    pattern_id: str
    pattern_version: int
    category: Literal["structure", "clarity", "efficiency", "cache", "template"]
    title: str
    rationale: str
    suggestion: str
    confidence: float
    #: Estimated change in prompt tokens if the suggestion is applied (negative: saves tokens).
    token_delta: int
    detail: str | None
    spans: list[AnalysisSpan]


class AnalysisTokens(_Closed):
    system: int
    template: int
    total: int
    #: True: counted with the model's own tokenizer; false: an estimate within ``bound``.
    exact: bool
    tokenizer: str
    bound: float
    low: int
    high: int


class AnalysisElement(_Closed):
    present: bool
    spans: list[AnalysisSpan]


class AnalysisSummary(_Closed):
    findings: int
    by_category: dict[str, int]
    token_delta: int


class PromptAnalysis(_Closed):
    """Findings with spans; ``excerpts`` says whether spans carry text."""

    object: Literal["prompt.analysis"]
    prompt_id: str | None = None
    version: int | None = None
    label: str | None = None
    library_version: str
    tokens: AnalysisTokens
    structure: dict[str, AnalysisElement]
    findings: list[AnalysisFinding]
    summary: AnalysisSummary
    excerpts: bool
    elapsed_ms: float


class RewriteFigures(_Closed):
    tokens: int
    findings: int
    pattern_ids: list[str]


class PromptRewriteResult(_Closed):
    """The draft version (no labels: not served until a label is moved to it)."""

    object: Literal["prompt.rewrite"]
    draft: PromptVersionView
    model: str
    before: RewriteFigures
    after: RewriteFigures


def analyzer_components() -> dict[str, Any]:
    return pydantic_components([PromptAnalyze, PromptRewrite, TextAnalyze, PromptAnalysis, PromptRewriteResult])


ANALYZER_OPERATIONS = [
    Operation(
        "post", f"{_P}/{{prompt_id}}/analyze", "analyzePrompt", "Analyse a vault prompt (server-side)", _TAG,
        {200: json("PromptAnalysis")}, params=(_PROMPT_ID,), body="PromptAnalyze", errors=(400, 404, 413),
        example={"label": "production"},
        description="Needs `prompts:read`. Findings give spans (offsets), rationale, confidence and token deltas; "
        "span excerpts only for callers with `prompts:read_plaintext` (audited as a plaintext read). "
        "The body is optional (docs/ANALYZER.md).",
    ),
    Operation(
        "post", f"{_P}/{{prompt_id}}/rewrite", "rewritePrompt", "Draft an LLM-assisted rewrite as a new version",
        _TAG, {201: json("PromptRewriteResult")}, params=(_PROMPT_ID,), body="PromptRewrite",
        errors=(400, 402, 404, 413, 429, 502, 503, 504), example={"model": CHAT_MODEL},
        description="Needs `prompts:write` and `models:call`. The model is called through the gateway as the "
        "caller (limits, budgets, guard; the ledger keeps metadata only); the rewritten system prompt becomes "
        "a new version with no label, never served until a label is moved to it.",
    ),
    Operation(
        "post", "/api/v1/admin/ai/analyze", "analyzePromptText", "Analyse a prompt's text", _TAG,
        {200: json("PromptAnalysis")}, body="TextAnalyze", errors=(400, 413),
        example={"system_prompt": "You are a support agent. Try to answer briefly, etc.", "user_template": "{{ q }}"},
        description="Needs `prompts:read`. The text is analysed and not stored.",
    ),
]  # fmt: skip
