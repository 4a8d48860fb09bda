"""Arms are an interface: a typed step input and a budget view in, a typed output and usage out.

The composition root supplies the implementations (retriever over the knowledge collections, coder
and planner through the gateway, the sandboxed executor, the judge, the guardian)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from bastion.agents.budget import BudgetView, Usage


class ArmKind(enum.StrEnum):
    PLANNER = "planner"
    RETRIEVER = "retriever"
    CODER = "coder"
    EXECUTOR = "executor"
    JUDGE = "judge"
    GUARDIAN = "guardian"


@dataclass(frozen=True, slots=True)
class StepInput:
    run_id: str
    step_id: str
    attempt: int  # 1 for the first attempt
    data: dict[str, Any]
    #: The attempt's number in the run (1, 2, ... across steps and loop rounds): names its token.
    iteration: int = 0


@dataclass(frozen=True, slots=True)
class ArmResult:
    output: dict[str, Any]
    usage: Usage = field(default_factory=Usage)


class ArmError(Exception):
    """The arm failed this attempt; ``usage`` is what it used before failing (charged to the run)."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


class ArmBlocked(ArmError):
    """A guard refused the step's input or output: the run ends ``blocked`` (fail-closed)."""


class Arm(Protocol):
    async def run(self, step: StepInput, budget: BudgetView) -> ArmResult: ...
