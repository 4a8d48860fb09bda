"""The seccomp filter, as a classic BPF program built here (no libseccomp binding needed).

The program is small enough to write by hand and to read: check the architecture (a foreign one,
e.g. i386 system calls from a 64-bit process, kills the process), refuse x32 system calls, refuse
``socket()`` for every family except ``AF_UNIX`` (no IPv4, IPv6, packet or netlink sockets: no
network even where a network namespace is missing), refuse io_uring, which can create sockets
without the ``socket`` system call, and refuse what a command never needs and an escape often
does: new namespaces (``unshare``, ``setns``, ``clone`` with a ``CLONE_NEW*`` flag; ``clone3``
answers ENOSYS so the C library falls back to ``clone``), mounts, the kernel keyring, ``bpf``,
``perf_event_open`` and ``userfaultfd``. Refusals return ``EPERM``; everything else is allowed (Landlock,
namespaces and resource limits do the rest). The bytes are ``struct sock_filter`` records, loaded by
the launcher with ``prctl(PR_SET_SECCOMP)`` after ``PR_SET_NO_NEW_PRIVS``.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000

# struct seccomp_data offsets: nr, arch, instruction pointer, then six 64-bit arguments.
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0_LOW = 16  # little-endian: the low 32 bits of args[0] come first

AF_UNIX = 1
X32_SYSCALL_BIT = 0x40000000


#: clone() flags that would create namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
#: NEWPID, NEWNET, NEWTIME).
CLONE_NEW_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80


@dataclass(frozen=True, slots=True)
class Arch:
    audit_arch: int
    socket_nr: int
    clone_nr: int
    x32_bit: bool  # x86_64 also accepts x32 system calls (numbers with bit 30 set)
    #: Refused outright: io_uring (it opens sockets without socket()), the kernel keyring (shared by
    #: every process of a uid: a channel between commands), bpf, perf_event_open, userfaultfd,
    #: namespaces (unshare, setns) and mounts (also the new mount API).
    denied_nrs: tuple[int, ...]


#: Numbers shared by every architecture (the generic table from 403 on): io_uring_setup, _enter,
#: _register, open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr.
_GENERIC_DENIED = (425, 426, 427, 428, 429, 430, 431, 432, 433, 442)
CLONE3_NR = 435  # its flags sit in a struct the filter cannot read: ENOSYS, so libc falls back to clone

ARCHES: dict[str, Arch] = {
    # keyctl, add_key, request_key, bpf, perf_event_open, userfaultfd, unshare, setns, mount, umount2, pivot_root
    "x86_64": Arch(0xC000003E, 41, 56, True, (250, 248, 249, 321, 298, 323, 272, 308, 165, 166, 155, *_GENERIC_DENIED)),
    "aarch64": Arch(0xC00000B7, 198, 220, False, (219, 217, 218, 280, 241, 282, 97, 268, 40, 39, 41, *_GENERIC_DENIED)),
}


def current_arch() -> Arch | None:
    return ARCHES.get(platform.machine())


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(arch: Arch, denied_errno: int = errno.EPERM) -> bytes:
    """The filter program for ``arch`` (``len(result) // 8`` instructions)."""
    deny = RET_ERRNO | denied_errno
    prog: list[bytes] = [
        _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _insn(_JEQ_K, 1, 0, arch.audit_arch),
        _insn(_RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch.x32_bit:
        prog += [_insn(_JGE_K, 0, 1, X32_SYSCALL_BIT), _insn(_RET_K, 0, 0, deny)]
    for nr in arch.denied_nrs:
        prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, deny)]
    prog += [_insn(_JEQ_K, 0, 1, CLONE3_NR), _insn(_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]
    # clone(flags, ...): refused when the flags ask for a namespace; the accumulator is reloaded
    # with the number afterwards for the socket check.
    prog += [
        _insn(_JEQ_K, 0, 4, arch.clone_nr),
        _insn(_LD_W_ABS, 0, 0, _OFF_ARG0_LOW),
        _insn(_JSET_K, 0, 1, CLONE_NEW_MASK),
        _insn(_RET_K, 0, 0, deny),
        _insn(_RET_K, 0, 0, RET_ALLOW),
    ]
    prog += [
        _insn(_JEQ_K, 0, 3, arch.socket_nr),
        _insn(_LD_W_ABS, 0, 0, _OFF_ARG0_LOW),
        _insn(_JEQ_K, 1, 0, AF_UNIX),
        _insn(_RET_K, 0, 0, deny),
        _insn(_RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(prog)
