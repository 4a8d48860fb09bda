"""The sandbox's vocabulary: tiers, limits, what to run and what came back."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_EMPTY_FILES: Mapping[str, bytes] = MappingProxyType({})
_EMPTY_ENV: Mapping[str, str] = MappingProxyType({})


class SandboxTier(enum.StrEnum):
    """From strongest to weakest (``TIER_ORDER``)."""

    BUBBLEWRAP = "bubblewrap"  # namespaces + Landlock + seccomp + limits
    LANDLOCK = "landlock"  # Landlock + seccomp + limits, on the host's file system
    RLIMITS = "rlimits"  # resource limits and a separate uid only: weak, opt-in


TIER_ORDER: tuple[SandboxTier, ...] = (SandboxTier.BUBBLEWRAP, SandboxTier.LANDLOCK, SandboxTier.RLIMITS)


def tier_strength(tier: SandboxTier) -> int:
    """Higher is stronger."""
    return len(TIER_ORDER) - TIER_ORDER.index(tier)


@dataclass(frozen=True, slots=True)
class ExecLimits:
    cpu_s: float = 10
    memory_bytes: int = 512 * 2**20
    max_processes: int = 64
    max_output_bytes: int = 1 * 2**20  # stdout and stderr together
    wall_s: float = 30
    max_file_bytes: int = 64 * 2**20  # the largest file the command may write (RLIMIT_FSIZE)
    max_open_files: int = 256


@dataclass(frozen=True, slots=True)
class CommandSpec:
    argv: tuple[str, ...]
    stdin: bytes = b""
    files: Mapping[str, bytes] = field(default_factory=lambda: _EMPTY_FILES)  # written into the work dir first
    limits: ExecLimits = field(default_factory=ExecLimits)
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY_ENV)


#: What ended a run early (``ExecResult.killed``).
KILL_REASONS = ("wall_time", "cpu_time", "memory", "output", "cancelled")


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int | None  # None when the sandbox killed the command
    stdout: bytes
    stderr: bytes
    truncated: bool
    killed: str | None  # "wall_time" | "cpu_time" | "memory" | "output" | "cancelled" | None
    duration_s: float
    tier: SandboxTier


class CommandRefused(Exception):
    """The command was not run (not allowlisted, bad spec, tier refused): no process was started."""


def validate_spec(spec: CommandSpec) -> None:
    """``CommandRefused`` for what could not be passed to a process or makes no sense as a limit."""
    if not spec.argv:
        raise CommandRefused("empty argv")
    texts = [*spec.argv, *spec.env, *spec.env.values()]
    if any("\0" in text for text in texts) or any(not key or "=" in key for key in spec.env):
        raise CommandRefused("argv and env may not contain NUL characters; env names neither '=' nor empty")
    limits = spec.limits
    if min(limits.cpu_s, limits.wall_s, limits.memory_bytes, limits.max_processes, limits.max_open_files) <= 0:
        raise CommandRefused("limits must be positive")
    if limits.max_output_bytes < 0 or limits.max_file_bytes < 0:
        raise CommandRefused("output and file limits may not be negative")
