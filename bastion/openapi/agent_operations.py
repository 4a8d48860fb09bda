"""The agent runs API in the OpenAPI document: ``/v1/agents/...`` (runs, their traces and events,
cancel, templates, the sandbox), its request body and answers (what ``bastion/agents/service.py``
builds; docs/AGENTS.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.components import pydantic_components, ref
from bastion.openapi.operation import Operation, json, json_or_stream, path

TAG = "Agents"
TAG_DESCRIPTION = "Agent runs: plans of arms under budgets, capability tokens and a verified trace (docs/AGENTS.md)."


class AgentRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(None, description="A template's name (GET /v1/agents/templates).")
    task: str | None = Field(None, description="A task for a planner mode (instead of a template).")
    input: dict[str, Any] = Field(default_factory=dict, description="The run's input (the template's input_schema).")
    budget: dict[str, Any] | None = Field(
        None,
        description="max_iterations, max_wall_s, max_tokens, max_cost_usd, max_tool_calls; capped by the tenant's "
        "policy (default: the template's).",
    )
    planner: Literal["template", "constrained", "delegate"] = "template"
    wait: bool = Field(False, description="Answer when the run ends (at most `agents.wait_s`; else 202).")
    stream: bool = Field(False, description="Server-sent events: each trace event, then `done` with the run.")
    collections: list[str] | None = Field(
        None, description="Knowledge collections the retriever may search (default: those the input names)."
    )
    seed: int | None = Field(None, description="Passed to the model calls.")


class AgentRun(BaseModel):
    object: Literal["agent.run"]
    id: str
    template: str | None
    planner: str
    task: str | None
    planner_reason: str | None = Field(description="Why the planner mode chose the plan (a task's run).")
    status: Literal["queued", "running", "succeeded", "budget_exhausted", "blocked", "failed", "cancelled"]
    reason: str | None
    input: dict[str, Any]
    budget: dict[str, Any]
    grants: dict[str, Any]
    outputs: dict[str, Any] | None = Field(description="Each step's latest output (null: skipped): the partial result.")
    output: dict[str, Any] | None = Field(description="The last step's output, when the run succeeded.")
    spent: dict[str, Any] | None
    iterations: int
    events: int = Field(description="Trace events so far.")
    trace_hash: str | None
    job_id: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None


class AgentRunTrace(BaseModel):
    object: Literal["agent.run.trace"]
    run_id: str
    events: list[dict[str, Any]] = Field(description="Typed decision events (docs/AGENTS.md, 'The decision trace').")
    links: list[str] = Field(description="Each event's hash-chain link.")
    trace_hash: str | None
    verified: bool = Field(description="Every stored event matches its link.")
    first_broken_link: int | None


class AgentRunEvent(BaseModel):
    """One server-sent event: ``id`` the trace index, ``event`` the kind (``done`` carries the run)."""

    kind: str | None = None
    object: str | None = None


class AgentTemplate(BaseModel):
    object: Literal["agent.template"]
    name: str
    description: str | None
    input_schema: dict[str, Any]
    budget: dict[str, Any]
    steps: list[dict[str, Any]]


class AgentTemplateList(BaseModel):
    object: Literal["list"]
    data: list[AgentTemplate]


class AgentSandbox(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: Literal["agent.sandbox"]
    available: bool
    tier: str | None


MODELS: list[type[BaseModel]] = [
    AgentRunCreate,
    AgentRun,
    AgentRunTrace,
    AgentRunEvent,
    AgentTemplate,
    AgentTemplateList,
    AgentSandbox,
]


def agent_components() -> dict[str, Any]:
    return pydantic_components(MODELS)


_RUN = "/v1/agents/runs/{run_id}"
RUN_ID = path("run_id", description="The run's id (`run_...`).")
_START = "Needs `agents:run` (admin, developer). "
_READ = "Needs `agents:read` (admin, developer, viewer). "

# Each operation on a few lines: the table reads better than one keyword per line.
AGENT_OPERATIONS = [
    Operation(
        "post", "/v1/agents/runs", "createAgentRun", "Start an agent run", TAG,
        {200: json_or_stream("AgentRun", "AgentRunEvent"), 202: json("AgentRun")}, body="AgentRunCreate",
        errors=(400, 413),
        example={"template": "answer-with-citations", "input": {"question": "What is the refund period?",
                 "collection": "handbook"}, "wait": True},
        description=_START + "A run is a job: 202 with the queued run; `wait: true` answers when it ends (200), "
        "`stream: true` or `Accept: text/event-stream` streams its trace. 400: an unknown template, an input "
        "outside its schema, a plan outside the tenant's policy, an arm not available on this gateway.",
    ),
    Operation(
        "get", _RUN, "getAgentRun", "An agent run", TAG, {200: json("AgentRun")}, params=(RUN_ID,), errors=(404,),
        description=_READ + "Status, reason, each step's output, what it spent. Another tenant's run is a 404.",
    ),
    Operation(
        "get", _RUN + "/trace", "getAgentRunTrace", "An agent run's trace, verified", TAG,
        {200: json("AgentRunTrace")}, params=(RUN_ID,), errors=(404,),
        description=_READ + "The events with their hash-chain links; `verified` is false and `first_broken_link` "
        "names the first edited, removed or added event.",
    ),
    Operation(
        "get", _RUN + "/events", "streamAgentRunEvents", "An agent run's events as they happen", TAG,
        {200: {"text/event-stream": ref("AgentRunEvent")}},
        params=(RUN_ID,), errors=(400, 404),
        description=_READ + "Server-sent events from the start, or after `Last-Event-ID`; `done` ends the stream.",
    ),
    Operation(
        "post", _RUN + "/cancel", "cancelAgentRun", "Cancel an agent run", TAG, {200: json("AgentRun")},
        params=(RUN_ID,), errors=(404, 409),
        description=_START + "A running run stops within about a second (its sandboxed command is killed, its "
        "capability tokens revoked). 409: it already ended.",
    ),
    Operation(
        "get", "/v1/agents/templates", "listAgentTemplates", "Plan templates", TAG, {200: json("AgentTemplateList")},
        description=_READ + "The shipped templates: input schema, default budget, steps.",
    ),
    Operation(
        "get", "/v1/agents/sandbox", "getAgentSandbox", "The executor's sandbox", TAG, {200: json("AgentSandbox")},
        description=_READ + "The sandbox tier in force and its self-test, or that none is installed.",
    ),
]  # fmt: skip
