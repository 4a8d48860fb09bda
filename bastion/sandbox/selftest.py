"""The start-up self-test: probe each tier the machine might offer, pick the strongest that holds.

A tier is chosen only if its probe, run through the real launcher with the real rules, shows what
the tier promises from inside (a tier that merely looks available is not enough): no capabilities
and a uid other than 0 everywhere; above the rlimits tier also seccomp in filter mode, Landlock
applied, IPv4 and IPv6 sockets refused, writes refused outside the work directory and allowed in
it, a program outside the allowlist (a shell) refused, and no new user namespace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bastion.sandbox.launcher as launcher  # a module attribute: tests replace landlock_abi
from bastion.config.sandbox_settings import SandboxSettings
from bastion.sandbox.allowlist import Allowlist, resolve_executable
from bastion.sandbox.protocol import SelectedSandbox
from bastion.sandbox.report import SandboxReport, TierProbe
from bastion.sandbox.runner import ProcessSandbox, RefusingSandbox
from bastion.sandbox.seccomp import current_arch
from bastion.sandbox.spec import TIER_ORDER, ExecLimits, SandboxTier, tier_strength
from bastion.sandbox.workdir import UidPool, default_work_root

#: What a probe must find, per tier.
_BASE_CHECKS = ("uid_not_root", "cap_eff_zero")
_CONFINED_CHECKS = (
    *_BASE_CHECKS,
    "seccomp_filter",
    "landlock",
    "ipv4_socket_refused",
    "ipv6_socket_refused",
    "write_outside_refused",
    "write_work_allowed",
    "unlisted_exec_refused",
    "namespaces_refused",
)
REQUIRED_CHECKS: dict[SandboxTier, tuple[str, ...]] = {
    SandboxTier.BUBBLEWRAP: _CONFINED_CHECKS,
    SandboxTier.LANDLOCK: _CONFINED_CHECKS,
    SandboxTier.RLIMITS: _BASE_CHECKS,
}


def _facts(probe: dict[str, Any]) -> dict[str, bool]:
    return {
        "uid_not_root": probe.get("uid") not in (None, 0),
        "cap_eff_zero": bool(probe.get("cap_eff_zero")),
        "seccomp_filter": probe.get("seccomp_mode") == 2,
        "landlock": int(probe.get("landlock_abi") or 0) >= 1,
        **{
            name: bool(probe.get(name))
            for name in (
                "ipv4_socket_refused",
                "ipv6_socket_refused",
                "write_outside_refused",
                "write_work_allowed",
                "unlisted_exec_refused",
                "namespaces_refused",
            )
        },
    }


def _sandbox(
    tier: SandboxTier, settings: SandboxSettings, allowlist: Allowlist, bwrap: str | None, uids: UidPool
) -> ProcessSandbox:
    limits = settings.limits
    return ProcessSandbox(
        tier,
        allowlist=allowlist,
        work_root=Path(settings.work_root) if settings.work_root else default_work_root(),
        launcher_python=settings.launcher_python,
        bwrap=bwrap,
        uids=uids,
        default_limits=ExecLimits(
            cpu_s=limits.cpu_s,
            memory_bytes=limits.memory_bytes,
            max_processes=limits.max_processes,
            max_output_bytes=limits.max_output_bytes,
            wall_s=limits.wall_s,
            max_file_bytes=limits.max_file_bytes,
        ),
    )


def _probe_all(settings: SandboxSettings) -> tuple[SandboxReport, dict[SandboxTier, ProcessSandbox]]:
    allowlist = Allowlist.resolve(settings.allowed_executables)
    # Looked up on the gateway's PATH: taking bwrap off the PATH is how an administrator turns it off.
    bwrap = resolve_executable(settings.bwrap_path, os.environ.get("PATH", ""))
    abi = launcher.landlock_abi()
    uids = UidPool.shared(settings.run_uid_base, settings.run_uid_count)
    python_ok = os.path.isfile(settings.launcher_python) and os.access(settings.launcher_python, os.X_OK)
    prerequisites = {
        SandboxTier.BUBBLEWRAP: (
            bwrap is not None and abi >= 1 and current_arch() is not None,
            "needs bwrap, Landlock and seccomp",
        ),
        SandboxTier.LANDLOCK: (abi >= 1 and current_arch() is not None, "needs Landlock and a seccomp architecture"),
        SandboxTier.RLIMITS: (True, ""),
    }
    probes: list[TierProbe] = []
    sandboxes: dict[SandboxTier, ProcessSandbox] = {}
    for tier in TIER_ORDER:
        available, missing = prerequisites[tier]
        if not python_ok:
            available, missing = False, f"launcher python not found: {settings.launcher_python}"
        if not available:
            probes.append(TierProbe(tier, available=False, ok=False, detail=missing))
            continue
        sandbox = _sandbox(tier, settings, allowlist, bwrap, uids)
        found = sandbox.probe()
        if "error" in found:
            probes.append(TierProbe(tier, available=True, ok=False, detail=str(found["error"])))
            continue
        checks = _facts(found)
        failed = [name for name in REQUIRED_CHECKS[tier] if not checks[name]]
        probes.append(
            TierProbe(tier, True, ok=not failed, checks=checks, detail=f"failed: {', '.join(failed)}" if failed else "")
        )
        if not failed:
            sandboxes[tier] = sandbox
    best = next((probe.tier for probe in probes if probe.ok), None)
    min_tier = SandboxTier(settings.min_tier)
    chosen, reason = best, None
    if best is None:
        reason = "no sandbox tier works on this machine"
    elif tier_strength(best) < tier_strength(min_tier):
        chosen, reason = None, f"the best sandbox tier here is {best}, below min_tier {min_tier}"
    elif best is SandboxTier.RLIMITS and not settings.allow_weak:
        chosen, reason = None, "only the rlimits tier works here and allow_weak is off"
    report = SandboxReport(
        tiers=probes,
        chosen=chosen,
        best_available=best,
        min_tier=min_tier,
        allow_weak=settings.allow_weak,
        refused_reason=reason,
        landlock_abi=abi,
        bwrap=bwrap,
        allowed_executables=dict(allowlist.executables),
        missing_executables=list(allowlist.missing),
        uid_per_command=uids.enabled,
    )
    return report, sandboxes


def self_test(settings: SandboxSettings | None = None) -> SandboxReport:
    """Probe every tier (takes a few tens of milliseconds per tier) and report."""
    return _probe_all(settings or SandboxSettings())[0]


def select_sandbox(settings: SandboxSettings) -> SelectedSandbox:
    """The sandbox commands run in: the strongest tier whose probe held, if the policy accepts it;
    otherwise one that refuses every command (``CommandRefused``) with the reason."""
    report, sandboxes = _probe_all(settings)
    if report.chosen is None:
        return RefusingSandbox(report.best_available or SandboxTier.RLIMITS, report.refused_reason or "", report)
    sandbox = sandboxes[report.chosen]
    sandbox.report = report
    return sandbox
