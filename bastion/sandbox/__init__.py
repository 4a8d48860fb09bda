"""Running one command in the strongest sandbox the machine supports (docs/AGENTS.md "Sandbox").

Tiers, strongest first: ``bubblewrap`` (namespaces, no network, a read-only system, a private work
directory, plus everything below), ``landlock`` (Landlock file-system and TCP rules, a seccomp
filter against non-local sockets, resource limits, a uid per command) and ``rlimits`` (resource
limits and a uid only; only when an administrator allows a weak sandbox). ``select_sandbox`` runs
the self-test and picks the tier. Knows nothing of agents, the gateway or HTTP.
"""

from __future__ import annotations

from bastion.sandbox.protocol import Sandbox, SelectedSandbox
from bastion.sandbox.report import SandboxReport, TierProbe
from bastion.sandbox.selftest import select_sandbox, self_test
from bastion.sandbox.spec import CommandRefused, CommandSpec, ExecLimits, ExecResult, SandboxTier

__all__ = [
    "CommandRefused",
    "CommandSpec",
    "ExecLimits",
    "ExecResult",
    "Sandbox",
    "SandboxReport",
    "SandboxTier",
    "SelectedSandbox",
    "TierProbe",
    "select_sandbox",
    "self_test",
]
