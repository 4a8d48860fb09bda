"""What a sandboxed command sees: the Landlock rules, the bubblewrap mounts, the environment.

Everything here is computed in the gateway and handed to the launcher as data, so the rules can be
read (and tested) in one place.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping

from bastion.sandbox.allowlist import SYSTEM_PATH
from bastion.sandbox.launcher import DEVICE_RW, READ, READ_EXEC, WRITE_TREE

#: Where the work directory appears inside the bubblewrap sandbox.
SANDBOX_WORK_DIR = "/workspace"
SANDBOX_UID = 1000

#: System trees mounted read-only (bubblewrap) or readable (Landlock); a symlink is re-created.
SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
#: The pieces of /etc a program needs to load libraries and tell the time; never all of /etc.
ETC_PIECES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")
#: Devices readable and writable (the others are not reachable at the Landlock tier).
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def elf_interpreter(path: str) -> str | None:
    """The dynamic loader an ELF executable names (PT_INTERP), as a real path; None for static ones."""
    try:
        with open(path, "rb") as binary:
            header = binary.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
                return None
            endian = "<" if header[5] == 1 else ">"
            phoff = struct.unpack_from(endian + "Q", header, 32)[0]
            phentsize, phnum = struct.unpack_from(endian + "HH", header, 54)
            for index in range(phnum):
                binary.seek(phoff + index * phentsize)
                p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack(endian + "IIQQQQ", binary.read(40))
                if p_type == 3:  # PT_INTERP
                    binary.seek(p_offset)
                    interp = binary.read(p_filesz).rstrip(b"\0").decode()
                    return os.path.realpath(interp)
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def executable_rules(executables: Iterable[str]) -> list[tuple[str, int]]:
    """Read and execute on each allowlisted binary and on the loader it needs; nothing else runs."""
    paths: dict[str, None] = {}
    for exe in executables:
        paths[exe] = None
        interp = elf_interpreter(exe)
        if interp:
            paths[interp] = None
    return [(path, READ_EXEC) for path in paths]


def landlock_rules(*, work_dir: str, executables: Iterable[str], in_namespace: bool) -> list[tuple[str, int]]:
    """The ruleset: read the system, write only under ``work_dir``, execute only the allowlist.

    Inside bubblewrap the root holds only what was mounted, so /etc and /proc (the sandbox's own
    PID namespace) may be read; on the host (the Landlock tier) only the listed /etc pieces are
    readable and /proc is not (it would show the host's processes).
    """
    rules: list[tuple[str, int]] = [(tree, READ) for tree in SYSTEM_TREES]
    if in_namespace:
        rules += [("/etc", READ), ("/proc", READ)]
    else:
        rules += [(piece, READ) for piece in ETC_PIECES]
    rules += [(device, DEVICE_RW) for device in DEVICES]
    rules.append((work_dir, WRITE_TREE))
    rules += executable_rules(executables)
    return rules


def sandbox_env(home: str, extra: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: a minimal PATH/HOME/LANG and only what the command spec adds."""
    env = {"PATH": SYSTEM_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


def _system_mounts() -> list[str]:
    args: list[str] = []
    for tree in SYSTEM_TREES:
        if os.path.islink(tree):
            args += ["--symlink", os.readlink(tree), tree]
        elif os.path.isdir(tree):
            args += ["--ro-bind", tree, tree]
    for piece in ETC_PIECES:
        args += ["--ro-bind-try", piece, piece]
    return args


def bwrap_argv(
    *, bwrap: str, host_work_dir: str, passwd: str, group: str, env: Mapping[str, str], command: list[str]
) -> list[str]:
    """bubblewrap: every namespace (no network), uid 1000 without capabilities, a clean
    environment, the system read-only, a private read-write work directory, fresh /proc /dev /tmp."""
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += _system_mounts()
    args += [
        "--ro-bind",
        passwd,
        "/etc/passwd",
        "--ro-bind",
        group,
        "/etc/group",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--bind",
        host_work_dir,
        SANDBOX_WORK_DIR,
        "--chdir",
        SANDBOX_WORK_DIR,
        "--",
    ]
    return args + command


def passwd_lines(uid: int) -> tuple[str, str]:
    """/etc/passwd and /etc/group for the sandbox: root, the sandbox user, nobody."""
    passwd = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"sandbox:x:{uid}:{uid}:sandbox:{SANDBOX_WORK_DIR}:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group = f"root:x:0:\nsandbox:x:{uid}:\nnogroup:x:65534:\n"
    return passwd, group
