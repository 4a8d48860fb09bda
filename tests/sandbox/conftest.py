"""Fixtures of the sandbox tests: a sandbox chosen by the real self-test, with small limits."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.config.sandbox_settings import SandboxSettings
from bastion.sandbox import ExecLimits, select_sandbox
from bastion.sandbox.runner import ProcessSandbox

#: Small limits keep the escape suite fast.
SMALL = ExecLimits(cpu_s=1, wall_s=3, memory_bytes=128 * 2**20, max_processes=16, max_output_bytes=64 * 1024)


@pytest.fixture(scope="module")
def work_root() -> Iterator[Path]:
    # Under the system temp directory (pytest's own is 0700: the run uids could not reach into it).
    root = Path(tempfile.mkdtemp(prefix="bastion-sandbox-test-"))
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def settings_for(work_root: Path, **overrides: object) -> SandboxSettings:
    return SandboxSettings.model_validate({"work_root": work_root, **overrides})


@pytest.fixture(scope="module")
def strongest(work_root: Path) -> ProcessSandbox:
    """The strongest tier (this machine has bubblewrap): a weaker one fails the test."""
    sandbox = select_sandbox(settings_for(work_root, min_tier="bubblewrap"))
    details = [probe.detail for probe in sandbox.report.tiers] if sandbox.report else []
    assert isinstance(sandbox, ProcessSandbox), details
    return sandbox
