"""What the rest of the gateway sees of a sandbox."""

from __future__ import annotations

import asyncio
from typing import Protocol

from bastion.sandbox.report import SandboxReport
from bastion.sandbox.spec import CommandSpec, ExecResult, SandboxTier


class Sandbox(Protocol):
    tier: SandboxTier

    async def run(self, spec: CommandSpec, *, cancel: asyncio.Event | None = None) -> ExecResult:
        """Run one command; ``CommandRefused`` (no process started) when it may not run at all."""
        ...


class SelectedSandbox(Sandbox, Protocol):
    """What ``select_sandbox`` returns: a sandbox and the self-test that chose it."""

    #: The status route serves it (``report.as_dict()``).
    report: SandboxReport | None
