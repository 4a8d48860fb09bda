"""Sandbox start-up cost per tier (prints numbers; not collected by pytest, passes or fails nothing).

    .venv/bin/python -m bench.sandbox_bench [--runs 40] [--command true]

For each tier whose self-test probe holds on this machine, runs ``--command`` (``true`` or
``echo``) ``--runs`` times in a row through the sandbox and prints p50 and p95 of the time from
``run()`` to its result: the work directory, the uid, bubblewrap's namespaces and mounts, the
launcher (Python start, Landlock, seccomp, rlimits), the command and the clean-up. Target: p95 at
most 50 ms at each tier. Also printed: the CPU time the sandbox's processes used per run
(bubblewrap, the launcher, the command), which does not depend on how busy the machine is: on a
loaded machine the wall times mostly measure waiting for a CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bastion.config.sandbox_settings import SandboxSettings
from bastion.sandbox import CommandSpec, ExecLimits
from bastion.sandbox.selftest import _probe_all
from bastion.sandbox.spec import TIER_ORDER

TARGET_P95_MS = 50.0


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(runs: int, command: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="bastion-sandbox-bench-"))
    os.chmod(root, 0o711)
    settings = SandboxSettings(work_root=root, allow_weak=True, min_tier="rlimits")
    report, sandboxes = _probe_all(settings)
    argv = ("echo", "hello") if command == "echo" else ("true",)
    limits = ExecLimits(cpu_s=2, wall_s=10)
    print(f"sandbox start ({command}), {runs} runs per tier; target p95 <= {TARGET_P95_MS:.0f} ms")
    for tier in TIER_ORDER:
        sandbox = sandboxes.get(tier)
        if sandbox is None:
            probe = next(p for p in report.tiers if p.tier is tier)
            print(f"  {tier:<11} unavailable ({probe.detail})")
            continue
        await sandbox.run(CommandSpec(argv=argv, limits=limits))  # warm the page cache
        times: list[float] = []
        cpu_before = _children_cpu_s()
        for _ in range(runs):
            started = time.perf_counter()
            result = await sandbox.run(CommandSpec(argv=argv, limits=limits))
            times.append((time.perf_counter() - started) * 1000)
            assert result.exit_code == 0, result.stderr
        cpu_ms = (_children_cpu_s() - cpu_before) * 1000 / runs
        p95 = percentile(times, 0.95)
        verdict = "ok" if p95 <= TARGET_P95_MS else "over target"
        print(
            f"  {tier:<11} p50 {statistics.median(times):6.1f} ms   p95 {p95:6.1f} ms   "
            f"max {max(times):6.1f} ms   cpu {cpu_ms:5.1f} ms/run   ({verdict})"
        )
    root.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--command", choices=("true", "echo"), default="true")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    asyncio.run(bench(args.runs, args.command))


if __name__ == "__main__":
    main()
