"""What the rest of the gateway sees of a sandbox."""

from __future__ import annotations

import asyncio
from typing import Protocol

from bastion.sandbox.report import SandboxReport
from bastion.sandbox.spec import CommandSpec, ExecResult, SandboxTier


class Sandbox(Protocol):
    tier: SandboxTier
    #: The self-test that chose this sandbox (``select_sandbox`` sets it; the status route serves it).
    report: SandboxReport | None

    async def run(self, spec: CommandSpec, *, cancel: asyncio.Event | None = None) -> ExecResult:
        """Run one command; ``CommandRefused`` (no process started) when it may not run at all."""
        ...
