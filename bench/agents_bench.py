"""Orchestrator overhead per step, without models or a sandbox (not collected by pytest).

    .venv/bin/python -m bench.agents_bench [--steps 100] [--runs 20]

A plan of ``--steps`` sequential steps (each with an input reference, an output schema, a check
and a per-step budget) over arms that answer at once; the time of a run divided by its steps is
what the state machine itself costs per step: the budget check and reservation, the breaker, input
resolution and hashing, schema validation, the trace events and the round's task plumbing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bastion.agents.arms import ArmKind, ArmResult, StepInput
from bastion.agents.budget import BudgetView, RunBudget, Usage
from bastion.agents.orchestrator import Orchestrator, RunStatus
from bastion.agents.plan import plan_from_data


class InstantArm:
    async def run(self, step: StepInput, budget: BudgetView) -> ArmResult:
        return ArmResult({"text": "ok", "n": step.attempt}, Usage(tokens=10))


def bench_plan(steps: int) -> dict[str, object]:
    return {
        "version": 1,
        "name": "bench",
        "steps": [
            {
                "id": f"s{i}",
                "arm": "coder",
                "input": {"question": "$input.q", "prev": f"$steps.s{i - 1}.text" if i else None},
                "output_schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
                "checks": [{"path": "text", "op": "non_empty"}],
                "budget": {"max_tokens": 16},
            }
            for i in range(steps)
        ],
    }


async def main(steps: int, runs: int) -> None:
    plan = plan_from_data(bench_plan(steps))
    orchestrator = Orchestrator({ArmKind.CODER: InstantArm()})
    budget = RunBudget(max_iterations=steps, max_tokens=steps * 16)
    per_step: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        result = await orchestrator.run(plan, {"q": "what?"}, budget=budget)
        per_step.append((time.perf_counter() - start) * 1000 / steps)
        assert result.status is RunStatus.SUCCEEDED, result.reason
    per_step.sort()
    print(f"steps per run {steps}, runs {runs}")
    print(f"overhead per step: median {statistics.median(per_step):.3f} ms, max {per_step[-1]:.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100, help="at most 100 (the plan format's limit)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.runs))
