"""Running one command at a tier: the launcher's configuration, the process, the limits the
gateway enforces itself (output size, wall time, cancellation) and the verdict."""

from __future__ import annotations

import asyncio
import contextlib
import json
import marshal
import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bastion.sandbox.allowlist import SYSTEM_PATH, Allowlist
from bastion.sandbox.layout import SANDBOX_WORK_DIR, bwrap_argv, landlock_rules, sandbox_env
from bastion.sandbox.reaper import kill_all, kill_all_async, uid_tasks
from bastion.sandbox.report import SandboxReport
from bastion.sandbox.seccomp import build_filter, current_arch
from bastion.sandbox.spec import CommandRefused, CommandSpec, ExecLimits, ExecResult, SandboxTier, validate_spec
from bastion.sandbox.workdir import RunDir, UidPool

_READ_CHUNK = 65536
#: Time left to the pipes to reach end of file once every process is gone.
_DRAIN_S = 1.0
#: Messages of an allocation that failed under RLIMIT_AS (Python, C, C++, the launcher).
_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")


@cache
def launcher_source() -> str:
    return (Path(__file__).parent / "launcher.py").read_text()


def launcher_config(
    tier: SandboxTier,
    *,
    limits: ExecLimits,
    work_dir: str,
    executables: list[str],
    exe: str | None,
    argv: list[str],
    probe_paths: Mapping[str, str] | None = None,
    shared_uid_tasks: int = 0,
) -> dict[str, Any]:
    """What the launcher applies before ``execve``: rlimits always, Landlock and seccomp above
    the rlimits tier."""
    cpu = max(1, math.ceil(limits.cpu_s))
    # The soft CPU limit sends SIGXCPU, the hard one (a second later) SIGKILL.
    rlimits = {
        "RLIMIT_CPU": [cpu, cpu + 1],
        "RLIMIT_AS": [limits.memory_bytes, limits.memory_bytes],
        # Counted per uid (per user namespace under bubblewrap): a command sharing the gateway's uid
        # outside a namespace gets its processes on top of what that uid already runs.
        "RLIMIT_NPROC": [limits.max_processes + shared_uid_tasks] * 2,
        "RLIMIT_FSIZE": [limits.max_file_bytes, limits.max_file_bytes],
        "RLIMIT_NOFILE": [limits.max_open_files, limits.max_open_files],
        "RLIMIT_CORE": [0, 0],
    }
    config: dict[str, Any] = {"rlimits": rlimits, "exe": exe, "argv": argv, "landlock": None, "seccomp": None}
    if tier is not SandboxTier.RLIMITS:
        arch = current_arch()
        if arch is None:
            raise CommandRefused("seccomp filter: unsupported architecture")
        config["seccomp"] = build_filter(arch).hex()
        config["landlock"] = landlock_rules(
            work_dir=work_dir, executables=executables, in_namespace=tier is SandboxTier.BUBBLEWRAP
        )
    if probe_paths is not None:
        config["probe"] = True
        config["probe_paths"] = dict(probe_paths)
    return config


class _Output:
    """stdout and stderr under one byte budget; ``overflow`` is set when the budget is exceeded."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.truncated = False
        self.overflow = asyncio.Event()

    async def pump(self, stream: asyncio.StreamReader | None, sink: bytearray) -> None:
        if stream is None:
            return
        # Past the budget the rest is read and dropped until the command is gone: a pipe nobody
        # reads would keep a killed command's transport from ever seeing the end of file.
        while chunk := await stream.read(_READ_CHUNK):
            room = max(0, self.cap - self.used)
            sink += chunk[:room]
            self.used += min(len(chunk), room)
            if len(chunk) > room:
                self.truncated = True
                self.overflow.set()


def _signal_of(returncode: int, tier: SandboxTier) -> int | None:
    if returncode < 0:
        return -returncode
    # bubblewrap exits 128 + n when the command died of signal n.
    if tier is SandboxTier.BUBBLEWRAP and 128 < returncode < 128 + 65:
        return returncode - 128
    return None


def verdict(returncode: int, stderr: bytes, tier: SandboxTier) -> tuple[int | None, str | None]:
    """(exit code, killed) of a command that ended by itself or by a kernel-enforced limit."""
    sig = _signal_of(returncode, tier)
    if sig in (signal.SIGXCPU, signal.SIGKILL):
        return None, "cpu_time"  # the soft then the hard RLIMIT_CPU (only the kernel sends these)
    if returncode != 0 and any(marker in stderr for marker in _MEMORY_MARKERS):
        return returncode if sig is None else None, "memory"
    return (returncode if sig is None else 128 + sig), None


_SETPRIV = shutil.which("setpriv", path=SYSTEM_PATH)


def _as_uid(argv: list[str], uid: int | None) -> tuple[list[str], dict[str, Any]]:
    """Start ``argv`` as ``uid`` (root only). Through ``setpriv`` when it exists: Popen's own
    ``user=`` forbids vfork, and forking a large gateway process costs ~10 ms at every command."""
    if uid is None:
        return argv, {}
    if _SETPRIV is not None:
        return [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv], {}
    return argv, {"user": uid, "group": uid, "extra_groups": []}


@dataclass(frozen=True, slots=True)
class _Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    ids: dict[str, Any]  # user, group, extra_groups for the process (root only)
    uid: int | None


class ProcessSandbox:
    """Runs commands at one tier (bubblewrap, landlock or rlimits)."""

    def __init__(
        self,
        tier: SandboxTier,
        *,
        allowlist: Allowlist,
        work_root: Path,
        launcher_python: str,
        bwrap: str | None,
        uids: UidPool,
        default_limits: ExecLimits | None = None,
    ) -> None:
        if tier is SandboxTier.BUBBLEWRAP and bwrap is None:
            raise ValueError("the bubblewrap tier needs bwrap")
        self.tier = tier
        self.allowlist = allowlist
        self.work_root = work_root
        self.launcher_python = launcher_python
        self.bwrap = bwrap
        self.uids = uids
        self.default_limits = default_limits or ExecLimits()
        self.report: SandboxReport | None = None  # the self-test that chose this tier

    def _command(
        self, run_dir: RunDir, config: dict[str, Any], env: dict[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        encoded = marshal.dumps(config).hex()  # what the launcher reads without importing json
        launch = [self.launcher_python, "-I", "-S", "-c", launcher_source(), encoded]
        if self.tier is SandboxTier.BUBBLEWRAP:
            assert self.bwrap is not None
            argv = bwrap_argv(
                bwrap=self.bwrap,
                host_work_dir=str(run_dir.work),
                passwd=str(run_dir.passwd),
                group=str(run_dir.group),
                env=env,
                command=launch,
            )
            return argv, {"PATH": SYSTEM_PATH}  # bwrap clears it anyway (--clearenv)
        return launch, env

    def _shared_uid_tasks(self, uid: int | None) -> int:
        return uid_tasks(os.getuid()) if uid is None and self.tier is not SandboxTier.BUBBLEWRAP else 0

    def _unlisted(self) -> str:
        """A program the probe must fail to execute: a shell, unless an administrator allowed it."""
        for path in ("/bin/sh", "/bin/bash", "/usr/bin/env", "/usr/bin/id", "/bin/ls"):
            if os.path.exists(path) and os.path.realpath(path) not in self.allowlist.executables:
                return path
        return "/bin/sh"

    def _work_dir(self, run_dir: RunDir) -> str:
        return SANDBOX_WORK_DIR if self.tier is SandboxTier.BUBBLEWRAP else str(run_dir.work)

    async def run(self, spec: CommandSpec, *, cancel: asyncio.Event | None = None) -> ExecResult:
        validate_spec(spec)
        exe = self.allowlist.check(spec.argv[0])
        started = time.monotonic()
        with self._prepared(spec, exe=exe, probe=False) as launch:
            process, exited = await spawn(launch)
            return await self._supervise(process, exited, spec, launch.uid, started, cancel)

    def probe(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Run the launcher's probe (every restriction applied, then a report instead of a command)
        and return what it found; ``{"error": ...}`` when it could not run."""
        spec = CommandSpec(argv=("probe",), limits=ExecLimits(cpu_s=5, wall_s=timeout_s))
        try:
            with self._prepared(spec, exe=None, probe=True) as launch:
                done = subprocess.run(
                    launch.argv,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    env=launch.env,
                    cwd=launch.cwd,
                    start_new_session=True,
                    timeout=timeout_s,
                    check=False,
                    **launch.ids,
                )
                kill_all(None, launch.uid)  # anything the probe left behind
        except (OSError, subprocess.SubprocessError, CommandRefused) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()[-500:]
            return {"error": f"exit {done.returncode}: {detail}"}
        try:
            found: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            return {"error": "the probe printed no report"}
        return found

    @contextlib.contextmanager
    def _prepared(self, spec: CommandSpec, *, exe: str | None, probe: bool) -> Iterator[_Launch]:
        """A uid, a run directory with the spec's files, and the command line; all released after."""
        uid = self.uids.acquire()
        run_dir: RunDir | None = None
        try:
            run_dir = RunDir.create(self.work_root, uid, spec.files)
            work_dir = self._work_dir(run_dir)
            probe_paths: dict[str, str] | None = None
            if probe:
                probe_paths = {
                    "unlisted": self._unlisted(),
                    "work": f"{work_dir}/probe",
                    "outside": "/tmp/probe-outside",  # bubblewrap's own /tmp: writable but for Landlock
                }
                if self.tier is not SandboxTier.BUBBLEWRAP:
                    # A directory the uid may write to by its permissions: only Landlock refuses.
                    outside = run_dir.root / "outside"
                    outside.mkdir(mode=0o700)
                    if uid is not None:
                        os.chown(outside, uid, uid)
                    probe_paths["outside"] = str(outside / "probe")
            config = launcher_config(
                self.tier,
                limits=spec.limits,
                work_dir=work_dir,
                executables=list(self.allowlist.executables),
                exe=exe,
                argv=list(spec.argv),
                probe_paths=probe_paths,
                shared_uid_tasks=self._shared_uid_tasks(uid),
            )
            argv, env = self._command(run_dir, config, sandbox_env(work_dir, spec.env))
            argv, ids = _as_uid(argv, uid)
            yield _Launch(argv=argv, env=env, cwd=str(run_dir.work), ids=ids, uid=uid)
        finally:
            if run_dir is not None:
                run_dir.remove()
            self.uids.release(uid)

    async def _supervise(
        self,
        process: asyncio.subprocess.Process,
        exited_event: asyncio.Event,
        spec: CommandSpec,
        uid: int | None,
        started: float,
        cancel: asyncio.Event | None,
    ) -> ExecResult:
        output = _Output(spec.limits.max_output_bytes)
        stdout, stderr = bytearray(), bytearray()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(output.pump(process.stdout, stdout)),
            asyncio.create_task(output.pump(process.stderr, stderr)),
            asyncio.create_task(_feed(process, spec.stdin)),
        ]
        exited = asyncio.create_task(exited_event.wait())
        overflow = asyncio.create_task(output.overflow.wait())
        cancelled = asyncio.create_task(cancel.wait()) if cancel is not None else None
        watched = {exited, overflow} | ({cancelled} if cancelled else set())
        killed: str | None = None
        try:
            done, _ = await asyncio.wait(watched, timeout=spec.limits.wall_s, return_when=asyncio.FIRST_COMPLETED)
            if exited not in done:
                if cancelled is not None and cancelled in done:
                    killed = "cancelled"
                elif overflow in done:
                    killed = "output"
                else:
                    killed = "wall_time"
            if killed is not None or self.tier is not SandboxTier.BUBBLEWRAP:
                # Also whatever the command left behind (bubblewrap's PID namespace died with it).
                await kill_all_async(process.pid, uid)
            await exited_event.wait()  # at once: the first process exited or was just killed
            returncode = process.returncode
            assert returncode is not None
            # Once nothing is left the pipes reach their end; something that escaped every kill
            # (possible only without a uid of its own) cannot hold the result back.
            tasks.append(asyncio.create_task(process.wait()))
            await asyncio.wait(tasks, timeout=_DRAIN_S)
        finally:
            for task in [*tasks, exited, overflow, *([cancelled] if cancelled else [])]:
                task.cancel()
            if process.returncode is None:
                kill_all(process.pid, uid)
        duration = time.monotonic() - started
        if killed is None and output.truncated:
            killed = "output"  # the overflow and the exit raced
        if killed is not None:
            exit_code: int | None = None
        else:
            exit_code, killed = verdict(returncode, bytes(stderr), self.tier)
        return ExecResult(
            exit_code=exit_code,
            stdout=bytes(stdout),
            stderr=bytes(stderr),
            truncated=output.truncated,
            killed=killed,
            duration_s=duration,
            tier=self.tier,
        )


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Tells when the command's first process exits, even while something it started still
    holds its pipes open (``Process.wait`` waits for the pipes as well)."""

    def __init__(self, exited: asyncio.Event, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = exited

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def spawn(launch: _Launch) -> tuple[asyncio.subprocess.Process, asyncio.Event]:
    """Start the launch with pipes; the event is set when its first process exits."""
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitProtocol(exited, _READ_CHUNK, loop),
        *launch.argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=launch.env,
        cwd=launch.cwd,
        start_new_session=True,
        **launch.ids,
    )
    return asyncio.subprocess.Process(transport, protocol, loop), exited


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    if process.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            process.stdin.write(data)
            await process.stdin.drain()
        process.stdin.close()
        await process.stdin.wait_closed()


class RefusingSandbox:
    """The machine offers no acceptable tier: every command is refused before anything starts."""

    def __init__(self, tier: SandboxTier, reason: str, report: SandboxReport | None = None) -> None:
        self.tier = tier
        self.reason = reason
        self.report = report

    async def run(self, spec: CommandSpec, *, cancel: asyncio.Event | None = None) -> ExecResult:
        raise CommandRefused(self.reason)
