"""Configuration of the command sandbox (``bastion/sandbox``, docs/AGENTS.md "Sandbox")."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bastion.config.section import Strict

#: No shell by default: a shell turns every allowed argument into any command.
DEFAULT_ALLOWED_EXECUTABLES = ["python3", "cat", "ls", "echo", "grep", "wc", "head", "tail", "sort", "true"]


class SandboxLimitsSettings(Strict):
    """Default resource limits of one sandboxed command (a command spec may set its own)."""

    cpu_s: float = Field(10.0, gt=0, le=3600, description="CPU seconds per process (RLIMIT_CPU).")
    memory_bytes: int = Field(512 * 2**20, ge=16 * 2**20, description="Address space per process (RLIMIT_AS).")
    max_processes: int = Field(64, ge=1, le=4096, description="Processes and threads of one command (RLIMIT_NPROC).")
    max_output_bytes: int = Field(
        2**20, ge=1, description="stdout and stderr together; more is cut and the command killed."
    )
    wall_s: float = Field(30.0, gt=0, le=3600, description="Wall time; then every process of the command is killed.")
    max_file_bytes: int = Field(64 * 2**20, ge=0, description="The largest file the command may write (RLIMIT_FSIZE).")


class SandboxSettings(Strict):
    """The command sandbox: which tier is acceptable, what may run, the default limits."""

    allowed_executables: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_EXECUTABLES),
        description="Names (looked up on /usr/local/bin:/usr/bin:/bin) or absolute paths of the programs a "
        "command may start; resolved to real paths at start. Nothing else can be executed, not even by them.",
    )
    min_tier: Literal["bubblewrap", "landlock", "rlimits"] = Field(
        "landlock",
        description="The weakest tier commands may run at; below it every command is refused (the self-test "
        "still reports what the machine offers).",
    )
    allow_weak: bool = Field(
        False,
        description="Allow the rlimits tier (resource limits and a separate uid only, no file-system or "
        "network isolation). Needs min_tier: rlimits as well.",
    )
    limits: SandboxLimitsSettings = Field(default_factory=SandboxLimitsSettings)
    work_root: Path | None = Field(
        None,
        description="Where the private work directories are created (one per command, removed after it); "
        "unset: <system temp>/bastion-sandbox. Its parents must be traversable by the run uids.",
    )
    bwrap_path: str = Field("bwrap", description="The bubblewrap executable (a name on the system PATH, or a path).")
    launcher_python: str = Field(
        "/usr/bin/python3", description="The system Python that runs the launcher inside the sandbox."
    )
    run_uid_base: int = Field(
        200_000,
        ge=1000,
        description="When the gateway runs as root, each command runs as its own uid from "
        "run_uid_base .. run_uid_base + run_uid_count - 1 (never 0: the kernel exempts root from RLIMIT_NPROC).",
    )
    run_uid_count: int = Field(256, ge=1, le=65536, description="Commands that may run at once (root only).")
