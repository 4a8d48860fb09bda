"""The escape suite, at the strongest tier this machine offers (bubblewrap)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bastion.sandbox import CommandRefused, CommandSpec, ExecLimits, ExecResult, SandboxTier, reaper, runner
from bastion.sandbox.runner import ProcessSandbox
from bastion.sandbox.seccomp import current_arch
from tests.sandbox.conftest import SMALL

pytestmark = pytest.mark.integration


async def py(
    sandbox: ProcessSandbox,
    code: str,
    limits: ExecLimits = SMALL,
    cancel: asyncio.Event | None = None,
    **kwargs: Any,
) -> ExecResult:
    return await sandbox.run(CommandSpec(argv=("python3", "-c", code), limits=limits, **kwargs), cancel=cancel)


def lines(result: ExecResult) -> list[str]:
    return result.stdout.decode().splitlines()


async def test_the_strongest_tier_is_bubblewrap(strongest: ProcessSandbox) -> None:
    assert strongest.tier is SandboxTier.BUBBLEWRAP
    result = await strongest.run(CommandSpec(argv=("echo", "hello"), limits=SMALL))
    assert (result.exit_code, result.stdout, result.killed, result.tier) == (0, b"hello\n", None, "bubblewrap")


NETWORK = """
import socket
for family, address in ((socket.AF_INET, ("127.0.0.1", 80)), (socket.AF_INET, ("1.1.1.1", 53)),
                        (socket.AF_INET6, ("::1", 80))):
    try:
        socket.create_connection(address[:2], timeout=1) if family == socket.AF_INET else \
            socket.socket(family, socket.SOCK_STREAM).connect(address)
        print("connected", address)
    except OSError as exc:
        print(type(exc).__name__, exc.errno)
for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
    try:
        socket.socket(socket.AF_INET, kind)
        print("socket", kind)
    except OSError as exc:
        print(type(exc).__name__, exc.errno)
"""


async def test_network_connections_fail_ipv4_and_ipv6(strongest: ProcessSandbox) -> None:
    result = await py(strongest, NETWORK)
    assert result.exit_code == 0, result.stderr
    assert lines(result) == ["PermissionError 1"] * 5  # EPERM from the seccomp filter, before any packet


WRITES = """
import os
for path in ("/etc/x", "/usr/x", "/x", "/tmp/x", "/proc/x", "../x", "/dev/x"):
    try:
        open(path, "w").write("x")
        print("wrote", path)
    except OSError as exc:
        print("refused", path)
open("inside.txt", "w").write("ok")
os.makedirs("a/b")
print(open("inside.txt").read(), os.getcwd())
"""


async def test_writes_only_in_the_work_directory(strongest: ProcessSandbox) -> None:
    result = await py(strongest, WRITES)
    assert result.exit_code == 0, result.stderr
    assert all(line.startswith("refused") for line in lines(result)[:-1]), result.stdout
    assert lines(result)[-1] == "ok /workspace"


async def test_the_gateways_data_database_and_environment_are_invisible(
    strongest: ProcessSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = Path("/tmp") / f"bastion-test-data-{os.getpid()}"
    data_dir.mkdir(mode=0o755, exist_ok=True)
    (data_dir / "bastion.db").write_text("secret rows")
    os.chmod(data_dir / "bastion.db", 0o644)  # readable by anyone on the host: only the sandbox hides it
    monkeypatch.setenv("BASTION_MASTER_KEY", "topsecret-value-123")
    try:
        code = f"""
import os
print(sorted(os.environ))
for path in ({str(data_dir)!r}, {str(data_dir / "bastion.db")!r}, "/work", "/root", "/home", "{os.getcwd()}"):
    print(path, os.path.exists(path))
"""
        result = await py(strongest, code, env={"GIVEN": "1"})
    finally:
        (data_dir / "bastion.db").unlink()
        data_dir.rmdir()
    assert result.exit_code == 0, result.stderr
    out = lines(result)
    assert set(json.loads(out[0].replace("'", '"'))) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "GIVEN",
        "LC_CTYPE",
        "PWD",
    }
    assert b"topsecret" not in result.stdout
    assert all(line.endswith(" False") for line in out[1:]), out


async def test_a_non_allowlisted_executable_is_refused_before_any_process(
    strongest: ProcessSandbox, monkeypatch: pytest.MonkeyPatch, work_root: Path
) -> None:
    started: list[object] = []

    async def no_spawn(launch: object) -> None:
        started.append(launch)
        raise AssertionError("a process was started")

    monkeypatch.setattr(runner, "spawn", no_spawn)
    for argv in (("sh", "-c", "true"), ("/bin/bash",), ("bwrap",), ("./python3",), ("no-such-program",)):
        with pytest.raises(CommandRefused):
            await strongest.run(CommandSpec(argv=argv, limits=SMALL))
    with pytest.raises(CommandRefused):
        await strongest.run(CommandSpec(argv=("cat", "x"), files={"../escape": b"x"}, limits=SMALL))
    assert started == []
    assert list(work_root.iterdir()) == []  # not even a work directory


SHELL = """
import os, subprocess
print(os.system("echo from-a-shell"))
for path in ("/bin/sh", "/usr/bin/bash", "/usr/bin/env", "/usr/bin/bwrap"):
    try:
        subprocess.run([path, "-c", "echo from-a-shell"])
        print("ran", path)
    except PermissionError:
        print("refused", path)
os.symlink("/bin/sh", "mysh")
import shutil
shutil.copy("/bin/sh", "copied-sh")
os.chmod("copied-sh", 0o755)
for path in ("./mysh", "./copied-sh"):
    try:
        subprocess.run([path, "-c", "echo from-a-shell"])
        print("ran", path)
    except PermissionError:
        print("refused", path)
"""


async def test_a_shell_spawned_by_an_allowed_tool_is_refused(strongest: ProcessSandbox) -> None:
    result = await py(strongest, SHELL)
    assert result.exit_code == 0, result.stderr
    assert b"from-a-shell" not in result.stdout + result.stderr
    out = lines(result)
    assert out[0] != "0"
    assert all(line.startswith("refused") for line in out[1:]), out


ARCH = current_arch()
assert ARCH is not None
KEYCTL, BPF = ARCH.denied_nrs[0], ARCH.denied_nrs[3]
KERNEL_SURFACE = f"""
import ctypes, os, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
calls = (
    ("unshare", lambda: libc.unshare(0x10000000)),
    ("keyctl", lambda: libc.syscall({KEYCTL}, 0, 0)),
    ("bpf", lambda: libc.syscall({BPF}, 0, 0, 0)),
    ("mount", lambda: libc.mount(b"x", b"y", b"tmpfs", 0, 0)),
)
for name, call in calls:
    print(name, call(), ctypes.get_errno())
thread = threading.Thread(target=lambda: None)
thread.start()
thread.join()
print("thread ok", subprocess.run(["echo", "spawned"], capture_output=True).stdout)
"""


async def test_namespaces_mounts_keyring_and_bpf_are_refused(strongest: ProcessSandbox) -> None:
    result = await py(strongest, KERNEL_SURFACE)
    assert result.exit_code == 0, result.stderr
    assert lines(result) == ["unshare -1 1", "keyctl -1 1", "bpf -1 1", "mount -1 1", "thread ok b'spawned\\n'"]


FORK_BOMB = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError as exc:
    print("capped", children, exc.errno)
"""


async def test_a_fork_bomb_is_capped_and_cleaned_up(strongest: ProcessSandbox) -> None:
    result = await py(strongest, FORK_BOMB)
    assert result.exit_code == 0, result.stderr
    verdict, children, errno_ = lines(result)[0].split()
    assert verdict == "capped" and int(children) < SMALL.max_processes and int(errno_) == 11  # EAGAIN
    assert result.duration_s < SMALL.wall_s  # the sleeping children did not hold the run open


async def test_a_memory_bomb_is_killed(strongest: ProcessSandbox) -> None:
    result = await py(strongest, "x = bytearray(512 * 2**20)\nprint('allocated')")
    assert result.killed == "memory"
    assert b"allocated" not in result.stdout


#: One CPU second, with room on the wall clock for a busy machine: the CPU limit must be what stops it.
CPU_BOUND = ExecLimits(cpu_s=1, wall_s=15, memory_bytes=128 * 2**20, max_processes=16)


async def test_a_cpu_loop_is_killed_at_its_limit(strongest: ProcessSandbox) -> None:
    result = await py(strongest, "while True: pass", limits=CPU_BOUND)
    assert (result.killed, result.exit_code) == ("cpu_time", None)


async def test_output_is_truncated_and_the_command_killed(strongest: ProcessSandbox) -> None:
    result = await py(strongest, "import sys\nwhile True: sys.stdout.write('x' * 4096)")
    assert result.truncated and result.killed == "output"
    assert len(result.stdout) + len(result.stderr) == SMALL.max_output_bytes


async def test_wall_time_kills_a_sleeping_command(strongest: ProcessSandbox) -> None:
    limits = ExecLimits(cpu_s=1, wall_s=0.5, memory_bytes=128 * 2**20, max_processes=16)
    result = await py(strongest, "import time\ntime.sleep(30)", limits=limits)
    assert (result.killed, result.exit_code) == ("wall_time", None)
    assert result.duration_s < 2


async def test_uid_is_not_root_and_no_capability_remains(strongest: ProcessSandbox) -> None:
    code = "import os\nprint(os.getuid(), os.geteuid())\nprint(open('/proc/self/status').read())"
    result = await py(strongest, code)
    assert result.exit_code == 0, result.stderr
    out = lines(result)
    assert out[0] == "1000 1000"
    status = dict(line.split(":", 1) for line in out[1:] if ":" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, cap
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"


async def test_files_and_stdin_reach_the_command(strongest: ProcessSandbox) -> None:
    result = await strongest.run(
        CommandSpec(
            argv=("cat", "dir/a.txt", "-"), stdin=b"from stdin\n", files={"dir/a.txt": b"from a file\n"}, limits=SMALL
        )
    )
    assert (result.exit_code, result.stdout) == (0, b"from a file\nfrom stdin\n")


async def test_cancel_kills_every_process_within_a_second(
    strongest: ProcessSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancel = asyncio.Event()
    spawned: list[int] = []
    cancelled_at: list[float] = []
    real_spawn = runner.spawn

    async def cancel_when_all_forked(uid: int) -> None:
        # bwrap, its PID 1, then 2**4 Python processes: cancel once every one of them is running.
        while len(reaper.uid_pids(uid)) < 18:
            await asyncio.sleep(0.01)
        cancelled_at.append(time.monotonic())
        cancel.set()

    async def spawn_then_cancel(launch: Any) -> tuple[asyncio.subprocess.Process, asyncio.Event]:
        started = await real_spawn(launch)
        spawned.append(launch.uid)
        watchers.append(asyncio.create_task(cancel_when_all_forked(launch.uid)))
        return started

    watchers: list[asyncio.Task[None]] = []
    monkeypatch.setattr(runner, "spawn", spawn_then_cancel)
    code = "import os, time\nfor _ in range(4):\n    os.fork()\ntime.sleep(30)"
    limits = ExecLimits(cpu_s=5, wall_s=20, memory_bytes=128 * 2**20, max_processes=32)
    result = await py(strongest, code, limits=limits, cancel=cancel)
    returned_at = time.monotonic()
    assert (result.killed, result.exit_code) == ("cancelled", None)
    assert returned_at - cancelled_at[0] < 1
    left = reaper.uid_pids(spawned[0])
    assert left == [], [Path(f"/proc/{pid}/status").read_text()[:200] for pid in left]


async def test_concurrent_commands_each_get_their_own_uid_and_directory(strongest: ProcessSandbox) -> None:
    code = "import os, sys\nopen('mine', 'w').write(sys.argv[1])\nprint(sys.argv[1], sorted(os.listdir('.')))"
    results = await asyncio.gather(
        *(strongest.run(CommandSpec(argv=("python3", "-c", code, str(n)), limits=SMALL)) for n in range(3))
    )
    assert [result.stdout.decode().strip() for result in results] == [f"{n} ['mine']" for n in range(3)]
