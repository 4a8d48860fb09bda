"""Configuration of agent runs (``agents:``, docs/AGENTS.md): the model the coder and planner arms
call, what the executor may run, the budget ceilings (a plan policy per tenant), capability tokens
and how long a synchronous request waits."""

from __future__ import annotations

from pydantic import Field

from bastion.config.section import Strict


class AgentLimits(Strict):
    """A ceiling on a run's budget and on its plan (the plan policy of a tenant)."""

    max_iterations: int = Field(50, ge=1, le=1000)
    max_wall_s: float = Field(600.0, gt=0, le=86_400)
    max_tokens: int = Field(100_000, ge=0)
    max_cost_usd: float = Field(2.0, ge=0)
    max_tool_calls: int = Field(50, ge=0)
    max_steps: int = Field(20, ge=1, le=200)
    allowed_arms: list[str] = Field(
        default_factory=lambda: ["planner", "retriever", "coder", "executor", "judge", "guardian"],
        description="The arms a plan may use.",
    )


class AgentsSettings(Strict):
    enabled: bool = Field(True, description="Serve /v1/agents and run agent-run jobs.")
    model: str | None = Field(
        None, description="The model the coder and planner arms call through the gateway (None: those arms are off)."
    )
    limits: AgentLimits = Field(default_factory=AgentLimits, description="Budget ceilings for every tenant.")
    tenant_limits: dict[str, AgentLimits] = Field(
        default_factory=dict, description="Budget ceilings by tenant name, replacing `limits` for that tenant."
    )
    executables: list[str] = Field(
        default_factory=lambda: ["python3"], description="Executables the executor arm may start (in the sandbox)."
    )
    test_command: list[str] | None = Field(
        None,
        description="What the executor runs when a step gives no argv (default: every test* function of "
        "test_solution.py, with the standard library only).",
    )
    token_ttl_s: float = Field(300.0, gt=0, le=3600, description="Longest life of a capability token.")
    wait_s: float = Field(
        60.0, gt=0, le=600, description='How long POST /v1/agents/runs with "wait": true waits before answering 202.'
    )
    max_input_bytes: int = Field(256 * 1024, ge=1, description="The largest run input (JSON), in bytes.")
