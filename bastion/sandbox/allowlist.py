"""The executables a sandboxed command may start, resolved once to real paths.

Names are looked up on a fixed system PATH (never the gateway's own, which may point into a
virtualenv or a home directory the sandbox does not mount); the allowlist holds real paths, so a
symlink (``python3`` -> ``python3.11``) and its target are the same entry, and Landlock's execute
rules name exactly these files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass

from bastion.sandbox.spec import CommandRefused

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def resolve_executable(name: str, search_path: str = SYSTEM_PATH) -> str | None:
    """The real path of ``name`` (a bare name looked up on ``search_path``, or an absolute path)."""
    if os.path.isabs(name):
        found: str | None = name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    elif "/" in name:
        return None  # relative paths are never resolved: they would depend on the work directory
    else:
        found = shutil.which(name, path=search_path)
    return os.path.realpath(found) if found else None


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Real path -> the name the administrator wrote (for messages and reports)."""

    executables: dict[str, str]
    missing: tuple[str, ...]  # configured names found nowhere

    @classmethod
    def resolve(cls, names: Iterable[str], search_path: str = SYSTEM_PATH) -> Allowlist:
        executables: dict[str, str] = {}
        missing: list[str] = []
        for name in names:
            real = resolve_executable(name, search_path)
            if real is None:
                missing.append(name)
            else:
                executables.setdefault(real, name)
        return cls(executables, tuple(missing))

    def check(self, argv0: str, search_path: str = SYSTEM_PATH) -> str:
        """The real path to execute for ``argv0``; ``CommandRefused`` when it is not allowlisted."""
        real = resolve_executable(argv0, search_path)
        if real is None:
            raise CommandRefused(f"executable not found: {argv0!r}")
        if real not in self.executables:
            raise CommandRefused(f"executable not allowlisted: {argv0!r} ({real})")
        return real
