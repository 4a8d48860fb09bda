"""The executor arm: runs a command in the sandbox, after every check that can refuse it.

Order matters: the capability token must grant the executable and the paths of the files to
write, and the guard must pass the command and the files, before the sandbox is asked to start
anything; so a denied tool call spawns no process. The command's output is guarded on the way
out (secrets redacted) before any later step (a model call) sees it.

The sandbox is reached through :class:`CommandSandbox` (the shape of ``bastion.sandbox.Sandbox``)
and a ``make_spec`` function the composition root supplies (building its ``CommandSpec``), so this
package does not depend on the sandbox's implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bastion.agents.arms import ArmBlocked, ArmError, ArmResult, StepInput
from bastion.agents.arms_guardian import ArmGuard
from bastion.agents.budget import BudgetView, Usage
from bastion.agents.dispatch import TokenGate

_MAX_FILES = 64
#: What the executor runs when a step gives no argv: every ``test*`` function of ``test_solution.py``,
#: with the standard library only (a sandbox has no pytest), and a summary the judge reads.
TEST_RUNNER = """\
import sys, traceback
import test_solution as tests
passed = failed = 0
for name in sorted(dir(tests)):
    test = getattr(tests, name)
    if name.startswith("test") and callable(test):
        try:
            test()
            passed += 1
        except Exception:
            failed += 1
            traceback.print_exc()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
"""
DEFAULT_TEST_COMMAND = ("python3", "-c", TEST_RUNNER)


class CommandResult(Protocol):
    @property
    def exit_code(self) -> int | None: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def killed(self) -> str | None: ...
    @property
    def duration_s(self) -> float: ...


class CommandSandbox(Protocol):
    async def run(self, spec: Any, *, cancel: asyncio.Event | None = None) -> CommandResult: ...


#: ``make_spec(argv, stdin, files)`` -> the sandbox's command spec.
SpecFactory = Callable[[tuple[str, ...], bytes, Mapping[str, bytes]], Any]


class ExecutorArm:
    """``{argv?, files?, tests?, stdin?}`` in; ``{exit_code, stdout, stderr, killed, truncated}`` out.

    Without ``argv`` the arm runs ``default_argv`` (the run's test command); ``tests`` is written
    to ``tests_file``. ``cancel`` is the run's: setting it kills the sandboxed process."""

    def __init__(
        self,
        sandbox: CommandSandbox,
        make_spec: SpecFactory,
        guard: ArmGuard,
        gate: TokenGate,
        *,
        cancel: asyncio.Event | None = None,
        default_argv: tuple[str, ...] = DEFAULT_TEST_COMMAND,
        tests_file: str = "test_solution.py",
        refused: tuple[type[Exception], ...] = (),
    ) -> None:
        self.sandbox = sandbox
        self.make_spec = make_spec
        self.guard = guard
        self.gate = gate
        self.cancel = cancel
        self.default_argv = default_argv
        self.tests_file = tests_file
        self.refused = refused

    async def run(self, step: StepInput, budget: BudgetView, token: str) -> ArmResult:
        argv, files, stdin = self._command(step.data)
        where = f"step {step.step_id}"
        self.gate.check(token, resource="executable", values=(argv[0],))
        if files:
            self.gate.check_action(token, "write", resource="path", values=tuple(files))
        self.guard.inbound(list(argv), f"{where} command", code=True)
        for name, content in files.items():
            self.guard.inbound(content.decode("utf-8", "replace"), f"{where} file {name}", code=True)
        if budget.max_tool_calls < 1:
            raise ArmError("the step's budget allows no tool call")
        try:
            result = await self.sandbox.run(self.make_spec(argv, stdin, files), cancel=self.cancel)
        except self.refused as exc:
            raise ArmBlocked(f"{where}: the sandbox refused the command: {exc}") from None
        used = Usage(tool_calls=1)
        stdout = self.guard.outbound(result.stdout.decode("utf-8", "replace"), f"{where} stdout")
        stderr = self.guard.outbound(result.stderr.decode("utf-8", "replace"), f"{where} stderr")
        if result.exit_code is None:
            raise ArmError(f"the command was stopped ({result.killed or 'killed'})", used)
        output = {
            "exit_code": result.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "killed": result.killed,
            "truncated": result.truncated,
        }
        return ArmResult(output, used)

    def _command(self, data: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, bytes], bytes]:
        raw_argv = data.get("argv") or list(self.default_argv)
        if not isinstance(raw_argv, list) or not raw_argv or not all(isinstance(a, str) for a in raw_argv):
            raise ArmError("argv must be a non-empty list of strings")
        files: dict[str, bytes] = {}
        raw_files = data.get("files") or {}
        if not isinstance(raw_files, dict) or len(raw_files) > _MAX_FILES:
            raise ArmError(f"files must be an object of at most {_MAX_FILES} path: text entries")
        for name, content in raw_files.items():
            if not isinstance(content, str):
                raise ArmError(f"file {name!r}: the content must be a string")
            files[str(name)] = content.encode()
        tests = data.get("tests")
        if isinstance(tests, str) and tests:
            files[self.tests_file] = tests.encode()
        stdin = data.get("stdin")
        return tuple(raw_argv), files, stdin.encode() if isinstance(stdin, str) else b""
