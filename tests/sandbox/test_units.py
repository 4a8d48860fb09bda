"""The pieces of the sandbox that need no process: the filter, the rules, the mounts, settings."""

from __future__ import annotations

import os
import signal
import struct
from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.config.sandbox_settings import SandboxSettings
from bastion.config.settings import Settings
from bastion.sandbox import CommandRefused, CommandSpec, ExecLimits, SandboxTier
from bastion.sandbox import launcher as ll
from bastion.sandbox.allowlist import Allowlist, resolve_executable
from bastion.sandbox.layout import bwrap_argv, elf_interpreter, landlock_rules
from bastion.sandbox.runner import verdict
from bastion.sandbox.seccomp import ARCHES, CLONE3_NR, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, build_filter
from bastion.sandbox.spec import validate_spec
from bastion.sandbox.workdir import RunDir, UidPool


def run_filter(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """A tiny interpreter of the instructions build_filter emits."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = int(struct.unpack_from("=I", data, k)[0])
        elif code == 0x06:
            return int(k)
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x35:
            pc += jt if acc >= k else jf
        elif code == 0x45:
            pc += jt if acc & k else jf
        pc += 1


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_the_seccomp_filter_allows_unix_sockets_only(machine: str) -> None:
    arch = ARCHES[machine]
    program = build_filter(arch)
    eperm = RET_ERRNO | 1
    assert run_filter(program, arch.socket_nr, arch.audit_arch, arg0=1) == RET_ALLOW  # AF_UNIX
    for family in (2, 10, 16, 17):  # AF_INET, AF_INET6, AF_NETLINK, AF_PACKET
        assert run_filter(program, arch.socket_nr, arch.audit_arch, arg0=family) == eperm
    for nr in arch.denied_nrs:  # io_uring, keyring, bpf, namespaces, mounts...
        assert run_filter(program, nr, arch.audit_arch) == eperm
    assert run_filter(program, arch.clone_nr, arch.audit_arch, arg0=0x10000000) == eperm  # CLONE_NEWUSER
    assert run_filter(program, arch.clone_nr, arch.audit_arch, arg0=0x3D0F00) == RET_ALLOW  # a thread
    assert run_filter(program, CLONE3_NR, arch.audit_arch) == RET_ERRNO | 38  # ENOSYS
    assert run_filter(program, 0, arch.audit_arch) == RET_ALLOW
    assert run_filter(program, 0, 0x40000003) == RET_KILL_PROCESS  # i386 system calls
    if arch.x32_bit:
        assert run_filter(program, 0x40000000 | 41, arch.audit_arch) == eperm


def test_landlock_rules_execute_only_the_allowlist_and_write_only_the_work_dir() -> None:
    python = os.path.realpath("/usr/bin/python3")
    rules = landlock_rules(work_dir="/workspace", executables=[python], in_namespace=False)
    executable = {path for path, rights in rules if rights & ll.EXECUTE}
    writes = ll.WRITE_FILE | ll.MAKE_REG
    writable = {path for path, rights in rules if rights & writes and not path.startswith("/dev/")}
    assert executable == {python, elf_interpreter(python)}
    assert writable == {"/workspace"}
    assert "/etc" not in {path for path, _ in rules} and "/proc" not in {path for path, _ in rules}
    assert not dict(rules)["/workspace"] & ll.EXECUTE


def test_bubblewrap_mounts_never_the_hosts_private_places() -> None:
    argv = bwrap_argv(bwrap="bwrap", host_work_dir="/w/run/work", passwd="/w/p", group="/w/g", env={}, command=["x"])
    sources = {argv[i + 1] for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind", "--ro-bind-try")}
    assert "/etc" not in sources and not {"/work", "/root", "/home", "/tmp", "/"} & sources
    assert {"--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--disable-userns"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and argv[argv.index("--uid") + 1] != "0"
    assert argv[argv.index("--bind") + 1 : argv.index("--bind") + 3] == ["/w/run/work", "/workspace"]


def test_the_allowlist_holds_real_paths_and_refuses_the_rest() -> None:
    allow = Allowlist.resolve(["python3", "cat", "no-such-tool"])
    assert allow.missing == ("no-such-tool",)
    assert allow.check("python3") == allow.check("/usr/bin/python3") == os.path.realpath("/usr/bin/python3")
    for name in ("sh", "/bin/sh", "./cat", "bin/cat", "nothing-here"):
        with pytest.raises(CommandRefused):
            allow.check(name)
    assert resolve_executable("cat", search_path="/nonexistent") is None


def test_the_default_settings_allow_no_shell_and_no_weak_sandbox() -> None:
    settings = Settings().sandbox
    assert settings.min_tier == "landlock" and settings.allow_weak is False
    resolved = Allowlist.resolve(settings.allowed_executables)
    shells = {os.path.realpath(p) for p in ("/bin/sh", "/bin/bash", "/bin/dash") if os.path.exists(p)}
    assert not shells & set(resolved.executables)
    with pytest.raises(ValidationError):
        SandboxSettings.model_validate({"min_tier": "none"})
    with pytest.raises(ValidationError):
        SandboxSettings.model_validate({"alowed_executables": []})


@pytest.mark.parametrize("name", ["../x", "/etc/x", "a/../../x", "", "a//b"])
def test_file_names_stay_inside_the_work_directory(name: str, tmp_path: Path) -> None:
    with pytest.raises(CommandRefused):
        RunDir.create(tmp_path / "root", None, {name: b"x"})
    assert not (tmp_path / "root").exists()


def test_the_verdict_names_kernel_enforced_limits() -> None:
    bwrap, direct = SandboxTier.BUBBLEWRAP, SandboxTier.LANDLOCK
    assert verdict(128 + signal.SIGXCPU, b"", bwrap) == (None, "cpu_time")
    assert verdict(-signal.SIGKILL, b"", direct) == (None, "cpu_time")
    assert verdict(1, b"Traceback...\nMemoryError\n", direct) == (1, "memory")
    assert verdict(3, b"", direct) == (3, None)
    assert verdict(-signal.SIGSEGV, b"", direct) == (128 + signal.SIGSEGV, None)


def test_a_work_root_others_can_write_to_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(CommandRefused, match="not writable by others"):
        RunDir.create(shared, None, {})
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(CommandRefused):
        RunDir.create(tmp_path / "link", None, {})


@pytest.mark.parametrize(
    "spec",
    [
        CommandSpec(argv=()),
        CommandSpec(argv=("cat", "a\0b")),
        CommandSpec(argv=("cat",), env={"A=B": "x"}),
        CommandSpec(argv=("cat",), env={"": "x"}),
        CommandSpec(argv=("cat",), limits=ExecLimits(wall_s=0)),
        CommandSpec(argv=("cat",), limits=ExecLimits(max_processes=0)),
    ],
)
def test_specs_no_process_could_take_are_refused(spec: CommandSpec) -> None:
    with pytest.raises(CommandRefused):
        validate_spec(spec)


def test_two_pools_never_hand_out_the_same_uid(tmp_path: Path) -> None:
    """Two pools stand for two worker processes: the flock on each uid keeps them apart."""
    first, second = UidPool(300_000, 3, tmp_path), UidPool(300_000, 3, tmp_path)
    first.enabled = second.enabled = True  # handing out uids needs root; the locks do not
    a = first.acquire()
    b, c = second.acquire(), second.acquire()
    assert len({a, b, c}) == 3
    with pytest.raises(CommandRefused):
        first.acquire()
    second.release(b)
    assert first.acquire() == b
