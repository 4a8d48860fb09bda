"""The executor arm on the real sandbox (``bastion.sandbox``, selected by its self-test at the first
command): a coding run whose tests pass in the sandbox with the default test runner, and a cancel
that kills the sandboxed process within a second."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.agents.arms_guardian import ArmGuard
from bastion.agents.capability import CapabilityIssuer, CapabilityVerifier, MemoryUseStore
from bastion.agents.dispatch import RunGrants, dispatched
from bastion.agents.orchestrator import CancelToken, Orchestrator, RunStatus
from bastion.agents.runner import RunTools, build_arms
from bastion.agents.templates import get_template
from bastion.config.settings import Settings
from bastion.gateway.agent_runs import InstalledSandbox
from tests.agents.armfakes import FakeModel
from tests.agents.fakes import plan

pytestmark = pytest.mark.integration
pytest.importorskip("bastion.sandbox")  # the executor's sandbox package

SECRET = b"r" * 32
TESTS = "from solution import double\n\ndef test_double():\n    assert double(2) == 4\n"


@pytest.fixture(scope="module")
def installed() -> Iterator[InstalledSandbox]:
    root = Path(tempfile.mkdtemp(prefix="bastion-agents-sandbox-"))
    os.chmod(root, 0o711)  # the run uids must reach their work directories
    yield InstalledSandbox(Settings.model_validate({"sandbox": {"work_root": str(root)}}))
    shutil.rmtree(root, ignore_errors=True)


async def run_with(installed: InstalledSandbox, model: FakeModel, steps_plan: object, data: dict[str, Any],
                   cancel: CancelToken) -> tuple[object, float]:  # fmt: skip
    parts = await installed.parts()
    assert parts is not None
    tools = RunTools(ArmGuard(), model=model, sandbox=parts[0], make_spec=parts[1], refused=parts[2])
    verifier = CapabilityVerifier(SECRET, MemoryUseStore())
    arms = build_arms(tools, verifier, cancel.event, None)
    grants = RunGrants(executables=("python3",), paths=(".",))
    orchestrator = Orchestrator(dispatched(arms, CapabilityIssuer(SECRET), grants))
    started = time.monotonic()
    result = await orchestrator.run(steps_plan, data, cancel=cancel)  # type: ignore[arg-type]
    return result, time.monotonic() - started


async def test_a_coding_run_passes_its_tests_in_the_sandbox(installed: InstalledSandbox) -> None:
    wrong, right = "def double(x):\n    return x + 1\n", "def double(x):\n    return x * 2\n"
    model = FakeModel([{"files": {"solution.py": wrong}}, {"files": {"solution.py": right}}])
    data = {"task": "write double", "tests": TESTS}
    result, _ = await run_with(installed, model, get_template("code-until-tests-pass"), data, CancelToken())
    assert result.status is RunStatus.SUCCEEDED, result.reason  # type: ignore[attr-defined]
    assert result.outputs["execute"]["exit_code"] == 0  # type: ignore[attr-defined]
    assert "1 passed, 0 failed" in result.outputs["execute"]["stdout"]  # type: ignore[attr-defined]
    assert len(model.calls) == 2 and "tests failed: 1 failed" in str(model.calls[1])


async def test_a_cancel_kills_the_sandboxed_process_within_a_second(installed: InstalledSandbox) -> None:
    step = {"id": "sleep", "arm": "executor", "input": {"argv": ["python3", "-c", "import time; time.sleep(60)"]},
            "budget": {"max_tool_calls": 1}}  # fmt: skip
    cancel = CancelToken()
    asyncio.get_running_loop().call_later(1.0, cancel.cancel, "cancelled by the owner")
    result, elapsed = await run_with(installed, FakeModel([{}]), plan([step]), {}, cancel)
    assert result.status is RunStatus.CANCELLED  # type: ignore[attr-defined]
    assert elapsed < 1.0 + 1.0  # the process (60 s) was killed within a second of the cancel
