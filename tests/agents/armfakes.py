"""Fakes of what the arms reach: the sandbox (the shape of ``bastion.sandbox.Sandbox``), a JSON model
and the knowledge search; and a helper that builds a run's secured arms around them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.agents.arms import Arm, ArmKind
from bastion.agents.arms_executor import ExecutorArm
from bastion.agents.arms_guardian import ArmGuard, GuardianArm
from bastion.agents.arms_judge import JudgeArm
from bastion.agents.arms_model import ModelArm
from bastion.agents.arms_retriever import RetrieverArm
from bastion.agents.budget import Usage
from bastion.agents.capability import CapabilityIssuer, CapabilityVerifier, MemoryUseStore
from bastion.agents.dispatch import RunGrants, SecuredArm, TokenGate, dispatched
from bastion.agents.plan import Plan
from bastion.agents.templates import get_template

SECRET = b"s" * 32


@dataclass(frozen=True)
class FakeSpec:
    argv: tuple[str, ...]
    stdin: bytes
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class FakeResult:
    exit_code: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    truncated: bool = False
    killed: str | None = None
    duration_s: float = 0.01


class RefusedFake(Exception):
    """Stands for ``bastion.sandbox.CommandRefused``."""


@dataclass
class FakeSandbox:
    """Counts the processes it would have started; ``hang`` waits for the cancel event."""

    results: list[FakeResult] = field(default_factory=lambda: [FakeResult(0, b"1 passed")])
    spawned: list[FakeSpec] = field(default_factory=list)
    hang: bool = False
    killed_by_cancel: bool = False

    async def run(self, spec: FakeSpec, *, cancel: asyncio.Event | None = None) -> FakeResult:
        self.spawned.append(spec)
        if self.hang:
            assert cancel is not None
            try:
                await cancel.wait()
            except asyncio.CancelledError:
                # The real sandbox kills the process when its task is cancelled too (the worker
                # cancels a cancelled job's task if the run's own watcher has not stopped it first).
                self.killed_by_cancel = True
                raise
            self.killed_by_cancel = True
            return FakeResult(None, killed="cancelled")
        return self.results[min(len(self.spawned), len(self.results)) - 1]


@dataclass
class FakeModel:
    """Answers from a list (JSON objects), records every call's messages."""

    answers: list[dict[str, Any]]
    usage: Usage = field(default_factory=lambda: Usage(tokens=100, cost_usd=0.001))
    calls: list[list[dict[str, Any]]] = field(default_factory=list)

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int, seed: int | None = None
    ) -> tuple[str, Usage]:
        self.calls.append(messages)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return json.dumps(answer), self.usage


@dataclass
class FakeSearcher:
    hits: list[dict[str, Any]] = field(
        default_factory=lambda: [{"id": "c1", "text": "Paris is the capital of France.", "title": "geo"}]
    )
    calls: list[tuple[str, list[str], int]] = field(default_factory=list)

    async def search(self, query: str, collections: list[str], k: int) -> list[dict[str, Any]]:
        self.calls.append((query, collections, k))
        return self.hits[:k]


def make_spec(argv: tuple[str, ...], stdin: bytes, files: Mapping[str, bytes]) -> FakeSpec:
    return FakeSpec(argv, stdin, dict(files))


@dataclass
class Kit:
    verifier: CapabilityVerifier
    issuer: CapabilityIssuer
    cancel: asyncio.Event
    arms: dict[ArmKind, Arm]


def kit(
    *,
    sandbox: FakeSandbox | None = None,
    model: FakeModel | None = None,
    searcher: FakeSearcher | None = None,
    guard: ArmGuard | None = None,
    grants: RunGrants | None = None,
    clock: Callable[[], float] | None = None,
    cancel: asyncio.Event | None = None,
) -> Kit:
    now = clock or (lambda: 1_000_000.0)
    verifier = CapabilityVerifier(SECRET, MemoryUseStore(now), clock=now)
    issuer = CapabilityIssuer(SECRET, clock=now)
    guard = guard or ArmGuard()
    cancel = cancel or asyncio.Event()

    def gate(kind: ArmKind) -> TokenGate:
        return TokenGate(verifier, kind)

    secured: dict[ArmKind, SecuredArm] = {
        ArmKind.JUDGE: JudgeArm(gate(ArmKind.JUDGE)),
        ArmKind.GUARDIAN: GuardianArm(guard, gate(ArmKind.GUARDIAN)),
        ArmKind.EXECUTOR: ExecutorArm(
            sandbox or FakeSandbox(), make_spec, guard, gate(ArmKind.EXECUTOR), cancel=cancel, refused=(RefusedFake,)
        ),
        ArmKind.RETRIEVER: RetrieverArm(searcher or FakeSearcher(), guard, gate(ArmKind.RETRIEVER)),
    }
    if model is not None:
        secured[ArmKind.CODER] = ModelArm("coder", model, guard, gate(ArmKind.CODER))
        secured[ArmKind.PLANNER] = ModelArm("planner", model, guard, gate(ArmKind.PLANNER))
    grants = grants or RunGrants(collections=("docs",), executables=("python3",), paths=(".",))
    return Kit(verifier, issuer, cancel, dispatched(secured, issuer, grants))


@dataclass(frozen=True)
class Choice:
    """The shape of ``bastion.agents.planners.PlanChoice``."""

    plan: Plan
    input: dict[str, Any]
    reason: str
    usage: Usage


class Chooser:
    """A planner mode that picks the coding template for any task (and records how it was asked)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, mode: str, **asked: Any) -> Choice:
        self.calls.append({"mode": mode, **asked})
        data = {"task": asked["task"]}
        return Choice(get_template("code-until-tests-pass"), data, "constrained: template chosen", Usage(tokens=300))
