"""The self-test's report (served by the API as the sandbox status)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bastion.sandbox.spec import SandboxTier


@dataclass(slots=True)
class TierProbe:
    tier: SandboxTier
    available: bool  # its prerequisites exist (bwrap, Landlock, a seccomp architecture)
    ok: bool  # the probe ran and every required check held
    checks: dict[str, bool] = field(default_factory=dict)
    detail: str = ""


@dataclass(slots=True)
class SandboxReport:
    """What the self-test found; ``as_dict()`` is JSON-serialisable."""

    tiers: list[TierProbe]
    chosen: SandboxTier | None  # the tier commands run at; None: every command is refused
    best_available: SandboxTier | None
    min_tier: SandboxTier
    allow_weak: bool
    refused_reason: str | None
    landlock_abi: int
    bwrap: str | None
    allowed_executables: dict[str, str]  # real path -> configured name
    missing_executables: list[str]
    uid_per_command: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
