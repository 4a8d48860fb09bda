"""The launcher: the last step before a sandboxed command, run as ``python3 -I -S -c <this file>``.

Why a launcher, and why inside the namespaces: a process under Landlock may not mount anything
(Landlock forbids changing the file-system topology), so bubblewrap cannot be started under the
ruleset; the ruleset must be applied after bubblewrap has built the sandbox, by its child. This
file does it, then ``execve``s the command: resource limits, Landlock (writes only in the work
directory, execution only of the allowlisted binaries and the dynamic loader, TCP bind/connect
refused, signals and abstract sockets scoped to the sandbox), and the seccomp filter built by
``bastion.sandbox.seccomp``. Everything is inherited across ``execve`` and by every child.

It runs with the system ``python3`` and imports only the standard library (``-I -S``: no site
packages, no environment influence), because inside the sandbox the gateway's packages are not
mounted; its source travels as the ``-c`` argument, so no file of the gateway is mounted either.
Landlock is called through ``ctypes`` (system calls 444-446, the same numbers on every
architecture): no binding to install, nothing compiled, and the launcher stays one readable file.

Configuration: one argument, a dict in ``marshal`` format, hex-encoded (``marshal`` is built into
the interpreter; importing ``json`` would add milliseconds to every start). With ``"probe": True``
it applies everything and then, instead of executing a command, reports what the sandbox allows
as one JSON line on stdout (the self-test).
"""

import ctypes
import marshal
import os
import resource
import stat
import struct
import sys
from collections.abc import Callable
from typing import Any

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
CLONE_NEWUSER = 0x10000000

# Landlock file-system rights (linux/landlock.h).
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
#: Rights that a rule on a file (not a directory) may carry.
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ = READ_FILE | READ_DIR
READ_EXEC = READ_FILE | EXECUTE
#: Everything in a directory but executing what is there.
WRITE_TREE = (
    WRITE_FILE
    | READ_FILE
    | READ_DIR
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SYM
    | MAKE_FIFO
    | MAKE_SOCK
    | REFER
    | TRUNCATE
)
DEVICE_RW = READ_FILE | WRITE_FILE
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

EXIT_LAUNCHER_ERROR = 125

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(result)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    version = _syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.c_void_p(None), ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(version), 0)


def fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def no_new_privs() -> None:
    _check(_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def apply_landlock(rules: list[list[Any]]) -> int:
    """Restrict this process to ``rules`` ([path, rights], missing paths skipped); returns the ABI."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available")
    handled = fs_rights(abi)
    if abi >= 6:
        attr = struct.pack("=QQQ", handled, NET_BIND_TCP | NET_CONNECT_TCP, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    elif abi >= 4:
        attr = struct.pack("=QQ", handled, NET_BIND_TCP | NET_CONNECT_TCP)
    else:
        attr = struct.pack("=Q", handled)
    attr_buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(
        _syscall(SYS_LANDLOCK_CREATE_RULESET, attr_buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
                allowed = rights & handled & (handled if is_dir else FILE_RIGHTS)
                if not allowed:
                    continue
                # struct landlock_path_beneath_attr is packed: u64 allowed_access, s32 parent_fd.
                rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd), 12)
                _check(
                    _syscall(
                        SYS_LANDLOCK_ADD_RULE,
                        ctypes.c_int(ruleset),
                        ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                        rule,
                        ctypes.c_uint32(0),
                    ),
                    f"landlock_add_rule({path})",
                )
            finally:
                os.close(fd)
        no_new_privs()
        _check(
            _syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)), "landlock_restrict_self"
        )
    finally:
        os.close(ruleset)
    return abi


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply_seccomp(program: bytes) -> None:
    """Install the classic BPF ``program`` (``struct sock_filter`` records) as a seccomp filter."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    no_new_privs()
    _check(_prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0), "prctl(PR_SET_SECCOMP)")


def apply_rlimits(limits: dict[str, list[int]]) -> None:
    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _status_field(status_fd: int | None, name: str) -> str | None:
    """A field of /proc/self/status, read through a descriptor opened before Landlock (which hides
    the host's /proc at the landlock tier); the kernel regenerates the text at each read."""
    if status_fd is None:
        return None
    text = os.pread(status_fd, 65536, 0).decode()
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _fails(action: Callable[[], object]) -> bool:
    try:
        action()
    except OSError:
        return True
    return False


def _socket(family: int) -> None:
    import socket

    socket.socket(family, socket.SOCK_STREAM).close()


def _write(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))


def _exec_denied(path: str) -> bool:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, [path, "-c", "exit 0"])
        finally:
            os._exit(126)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 126


def probe(config: dict[str, Any], landlock: int, status_fd: int | None) -> dict[str, Any]:
    """What the sandbox allows, seen from inside (after every restriction is applied)."""
    import socket

    paths = config["probe_paths"]
    cap_eff = _status_field(status_fd, "CapEff")
    return {
        "uid": os.getuid(),
        "cap_eff_zero": cap_eff is not None and int(cap_eff, 16) == 0,
        "seccomp_mode": int(_status_field(status_fd, "Seccomp") or 0),
        "landlock_abi": landlock,
        "ipv4_socket_refused": _fails(lambda: _socket(socket.AF_INET)),
        "ipv6_socket_refused": _fails(lambda: _socket(socket.AF_INET6)),
        "write_outside_refused": _fails(lambda: _write(paths["outside"])),
        "write_work_allowed": not _fails(lambda: _write(paths["work"])),
        "unlisted_exec_refused": _exec_denied(paths["unlisted"]),
        "namespaces_refused": _libc.unshare(CLONE_NEWUSER) != 0,
    }


def main(argv: list[str]) -> None:
    config = marshal.loads(bytes.fromhex(argv[1]))
    status_fd = None
    if config.get("probe"):
        try:
            status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            status_fd = None
    try:
        landlock = apply_landlock(config["landlock"]) if config.get("landlock") is not None else 0
        if config.get("seccomp"):
            apply_seccomp(bytes.fromhex(config["seccomp"]))
        apply_rlimits(config.get("rlimits", {}))
    except OSError as exc:
        sys.stderr.write(f"sandbox launcher: {exc}\n")
        sys.stderr.flush()
        os._exit(EXIT_LAUNCHER_ERROR)
    if config.get("probe"):
        import json

        sys.stdout.write(json.dumps(probe(config, landlock, status_fd)) + "\n")
        sys.stdout.flush()
        os._exit(0)
    try:
        os.execve(config["exe"], config["argv"], os.environ)
    except OSError as exc:
        sys.stderr.write(f"sandbox launcher: cannot execute {config['argv'][0]}: {exc.strerror}\n")
        sys.stderr.flush()
        os._exit(126)


if __name__ == "__main__":
    main(sys.argv)
