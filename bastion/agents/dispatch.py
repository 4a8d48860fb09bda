"""Dispatch with capability tokens: the orchestrator side mints a token for each step attempt
(``jti`` derived from run, step and the attempt's number in the run: the one the trace
records), the arm side verifies it
before doing anything. A refused token fails closed: the step is blocked (:class:`ArmBlocked`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bastion.agents.arms import Arm, ArmBlocked, ArmKind, ArmResult, StepInput
from bastion.agents.budget import BudgetView
from bastion.agents.capability import (
    ANY,
    Capability,
    CapabilityDenied,
    CapabilityIssuer,
    CapabilityVerifier,
    Grant,
    VerifiedToken,
)

#: The action each arm performs, and the resource kind its constraints name.
ACTIONS: Mapping[ArmKind, str] = {
    ArmKind.PLANNER: "complete",
    ArmKind.CODER: "complete",
    ArmKind.RETRIEVER: "search",
    ArmKind.EXECUTOR: "execute",
    ArmKind.JUDGE: "judge",
    ArmKind.GUARDIAN: "scan",
}


@dataclass(frozen=True, slots=True)
class RunGrants:
    """What a run's arms may touch: knowledge collections, executables, and paths in the sandbox."""

    collections: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    uses_per_attempt: int = 1

    def grant(self, kind: ArmKind) -> Grant:
        action = ACTIONS[kind]
        caps: tuple[Capability, ...]
        if kind is ArmKind.RETRIEVER:
            caps = (Capability(action, "collection", self.collections),)
        elif kind is ArmKind.EXECUTOR:
            caps = (Capability(action, "executable", self.executables), Capability("write", "path", self.paths))
        else:
            caps = (Capability(action, "model" if action == "complete" else "content", (ANY,)),)
        # An arm verifies its token once per capability it exercises (the executor: command, files).
        return Grant(audience=kind.value, capabilities=caps, max_uses=self.uses_per_attempt * len(caps))


class SecuredArm(Protocol):
    """An arm that receives its step attempt's token and verifies it before acting."""

    async def run(self, step: StepInput, budget: BudgetView, token: str) -> ArmResult: ...


class TokenGate:
    """The arm side: verify a token for one action, turning a refusal into a blocked step."""

    def __init__(self, verifier: CapabilityVerifier, kind: ArmKind) -> None:
        self.verifier = verifier
        self.kind = kind

    def check(self, token: str, *, resource: str | None = None, values: tuple[str, ...] = ()) -> VerifiedToken:
        return self.check_action(token, ACTIONS[self.kind], resource=resource, values=values)

    def check_action(
        self, token: str, action: str, *, resource: str | None = None, values: tuple[str, ...] = ()
    ) -> VerifiedToken:
        try:
            return self.verifier.verify(
                token, audience=self.kind.value, action=action, resource=resource, values=values
            )
        except CapabilityDenied as exc:
            raise ArmBlocked(f"capability denied: {exc.reason}") from None


class Dispatch:
    """An :class:`Arm` for the orchestrator: mints the attempt's token and calls the secured arm."""

    def __init__(
        self,
        kind: ArmKind,
        arm: SecuredArm,
        issuer: CapabilityIssuer,
        grants: RunGrants,
        deadline: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.kind = kind
        self.arm = arm
        self.issuer = issuer
        self.grants = grants
        self.deadline = deadline

    async def run(self, step: StepInput, budget: BudgetView) -> ArmResult:
        end = self.issuer.clock() + budget.deadline_s
        run_end = self.deadline()
        token = self.issuer.mint(
            self.grants.grant(self.kind),
            run_id=step.run_id,
            step_id=step.step_id,
            attempt=step.attempt,
            iteration=step.iteration,
            deadline=end if run_end is None else min(end, run_end),
        )
        return await self.arm.run(step, budget, token)


def dispatched(
    arms: Mapping[ArmKind, SecuredArm],
    issuer: CapabilityIssuer,
    grants: RunGrants,
    deadline: Callable[[], float | None] = lambda: None,
) -> dict[ArmKind, Arm]:
    """The orchestrator's arms: each secured arm behind its token-minting dispatch."""
    return {kind: Dispatch(kind, arm, issuer, grants, deadline) for kind, arm in arms.items()}
