"""Lower tiers and the tier policy: without bubblewrap, without Landlock, a minimum tier."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.sandbox import CommandRefused, CommandSpec, SandboxTier, reaper, runner, select_sandbox, self_test
from bastion.sandbox import launcher as sandbox_launcher
from bastion.sandbox.runner import ProcessSandbox, RefusingSandbox
from tests.sandbox.conftest import SMALL, settings_for
from tests.sandbox.test_escape import CPU_BOUND, FORK_BOMB, KERNEL_SURFACE, NETWORK, SHELL, lines, py

pytestmark = pytest.mark.integration


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """bubblewrap taken off the PATH (the gateway's PATH is where the sandbox looks for it)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host directory anyone may write to and read from: only the sandbox can keep a command out."""
    path = Path("/tmp") / f"bastion-sandbox-host-{os.getpid()}"
    path.mkdir(exist_ok=True)
    os.chmod(path, 0o777)
    (path / "secret.db").write_text("rows")
    os.chmod(path / "secret.db", 0o666)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


async def test_without_bubblewrap_the_landlock_tier_still_confines(
    no_bwrap: None, work_root: Path, host_dir: Path
) -> None:
    sandbox = select_sandbox(settings_for(work_root))
    assert isinstance(sandbox, ProcessSandbox) and sandbox.tier is SandboxTier.LANDLOCK
    assert sandbox.report is not None
    top = sandbox.report.tiers[0]
    assert (top.tier, top.available) == (SandboxTier.BUBBLEWRAP, False)

    network = await py(sandbox, NETWORK)
    assert lines(network) == ["PermissionError 1"] * 5, network.stderr

    code = f"""
import os
for path in ({str(host_dir / "new")!r}, {str(host_dir / "secret.db")!r}, {str(work_root / "x")!r}, "/tmp/x"):
    try:
        open(path, "a").write("x")
        print("wrote", path)
    except OSError:
        print("refused", path)
try:
    print(open({str(host_dir / "secret.db")!r}).read())
except OSError:
    print("unreadable")
open("inside", "w").write("ok")
print(open("inside").read(), os.getuid() != 0)
"""
    writes = await py(sandbox, code)
    out = lines(writes)
    assert all(line.startswith("refused") for line in out[:4]), out
    assert out[4:] == ["unreadable", "ok True"]
    assert not (host_dir / "new").exists() and (host_dir / "secret.db").read_text() == "rows"

    shell = await py(sandbox, SHELL)
    assert b"from-a-shell" not in shell.stdout + shell.stderr
    assert all(line.startswith("refused") for line in lines(shell)[1:]), shell.stdout

    kernel = await py(sandbox, KERNEL_SURFACE)
    assert lines(kernel)[:4] == ["unshare -1 1", "keyctl -1 1", "bpf -1 1", "mount -1 1"], kernel.stderr

    bomb = await py(sandbox, FORK_BOMB)
    verdict, children, _ = lines(bomb)[0].split()
    assert verdict == "capped" and int(children) < SMALL.max_processes

    cpu = await py(sandbox, "while True: pass", limits=CPU_BOUND)
    assert cpu.killed == "cpu_time"


async def test_a_policy_requiring_the_top_tier_refuses_to_run(no_bwrap: None, work_root: Path) -> None:
    sandbox = select_sandbox(settings_for(work_root, min_tier="bubblewrap"))
    assert isinstance(sandbox, RefusingSandbox)
    assert sandbox.tier is SandboxTier.LANDLOCK  # what the machine offers, reported
    assert "below min_tier bubblewrap" in sandbox.reason
    with pytest.raises(CommandRefused, match="below min_tier"):
        await sandbox.run(CommandSpec(argv=("echo", "hi"), limits=SMALL))


@pytest.fixture
def no_landlock(no_bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_launcher, "landlock_abi", lambda: 0)


async def test_rlimits_alone_only_when_an_administrator_allows_it(no_landlock: None, work_root: Path) -> None:
    refused = select_sandbox(settings_for(work_root, min_tier="rlimits"))
    assert isinstance(refused, RefusingSandbox) and "allow_weak" in refused.reason
    weak = select_sandbox(settings_for(work_root, min_tier="rlimits", allow_weak=True))
    assert isinstance(weak, ProcessSandbox) and weak.tier is SandboxTier.RLIMITS
    result = await py(weak, "import os\nprint(os.getuid() != 0)")
    assert (result.stdout, result.tier) == (b"True\n", "rlimits")
    bomb = await py(weak, FORK_BOMB)
    assert lines(bomb)[0].startswith("capped")


def test_the_report_is_json_and_names_every_tier(work_root: Path) -> None:
    report = self_test(settings_for(work_root))
    data = json.loads(json.dumps(report.as_dict()))
    assert data["chosen"] == "bubblewrap" and data["refused_reason"] is None
    assert [tier["tier"] for tier in data["tiers"]] == ["bubblewrap", "landlock", "rlimits"]
    assert all(tier["ok"] for tier in data["tiers"])
    assert data["tiers"][0]["checks"]["unlisted_exec_refused"] is True
    assert (data["landlock_abi"] >= 1 and "/usr/bin/python3.11" in data["allowed_executables"]) or data[
        "allowed_executables"
    ]
    assert "sh" not in data["allowed_executables"].values()


async def test_without_namespaces_a_process_that_left_the_group_is_still_killed(
    no_bwrap: None, work_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = select_sandbox(settings_for(work_root))
    assert sandbox.tier is SandboxTier.LANDLOCK
    uids: list[int] = []
    real_spawn = runner.spawn

    async def spawn(launch: Any) -> tuple[asyncio.subprocess.Process, asyncio.Event]:
        uids.append(launch.uid)
        return await real_spawn(launch)

    monkeypatch.setattr(runner, "spawn", spawn)
    # The child leaves the process group (a new session) and keeps stdout open: the command's
    # first process exits at once, the child must not outlive it.
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\nprint('parent done')"
    assert isinstance(sandbox, ProcessSandbox)
    result = await py(sandbox, code, limits=CPU_BOUND)
    assert (result.exit_code, result.stdout, result.killed) == (0, b"parent done\n", None)
    assert result.duration_s < 5
    assert reaper.uid_pids(uids[0]) == []
