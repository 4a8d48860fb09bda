"""A red-team run as a background job (kind ``redteam_run``).

The payload names the run (``run_id``); its row holds the spec. The handler expands the spec into
attempts (deterministic in the library, the selection and the seed), sends each one to the target
(``AskModel``, provided by the composition root: through the gateway pipeline with the tenant's
guard policy, or to the provider alone), ``concurrency`` at a time, and stores each answer as the
job item ``<index>`` (written once: a re-run after a crash asks only what is missing). At the end
it judges every answer, builds the JSON report and the summary, and stores both with the run.
Cancelling stops it between attempts; the run then ends ``cancelled`` without a report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bastion.auth.principal import Identity
from bastion.jobs.context import JobContext
from bastion.jobs.model import NewJob
from bastion.jobs.service import JobService
from bastion.redteam.effectiveness import guard_effectiveness, same_selection
from bastion.redteam.models import RedteamRun
from bastion.redteam.plan import Attempt, expand, prepare_run
from bastion.redteam.schema import Attack
from bastion.redteam.scoring import build_report, judge_attempt, score_answers
from bastion.redteam.spec import RunSpec, spec_from_json
from bastion.redteam.store import RunStore
from bastion.redteam.summary import summarise

JOB_KIND = "redteam_run"
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class TargetCall:
    """One attempt sent to the target, on behalf of the run's submitter."""

    owner: Identity
    run_id: str
    model: str
    guard: bool
    system_prompt: str
    message: str
    max_tokens: int
    #: The system prompt holds a vault prompt's text: the ledger keeps metadata only.
    confidential: bool = False


class AskModel(Protocol):
    """The answer's text, or None when the call failed (the attempt is then left out of the rates)."""

    async def __call__(self, call: TargetCall) -> str | None: ...


#: The system prompt of a vault prompt (its ``production`` version): (tenant id, prompt id) -> text.
PromptText = Callable[[str, str], Awaitable[str]]


def item_key(index: int) -> str:
    return f"{index:06d}"


async def submit_run(jobs: JobService, run: RedteamRun, attempts: int) -> str:
    job = await jobs.submit(
        NewJob(
            JOB_KIND,
            payload={"run_id": run.id},
            tenant_id=run.tenant_id,
            key_id=run.key_id,
            user_id=run.user_id,
            progress_total=attempts,
        )
    )
    return job.id


def planned_attempts(library: Sequence[Attack], spec: RunSpec) -> int:
    """How many attempts the spec makes (the prompt changes their text, not their number); a
    ``ValueError`` for an attack id the library does not have."""
    return len(expand(library, spec.selection, prepare_run(spec.seed)))


def run_metadata(run: RedteamRun, spec: RunSpec) -> dict[str, Any]:
    """What the report's ``run`` key says (the creation time is the only time in it)."""
    return {
        "id": run.id,
        "source": run.source,
        "model": spec.model,
        "prompt": spec.prompt,
        "guard": spec.guard,
        "selection": {k: v for k, v in spec.to_json().items() if k not in ("model", "prompt", "guard", "seed")},
        "created_at": run.created_at.isoformat(),
    }


class RedteamJob:
    def __init__(
        self,
        store: RunStore,
        jobs: JobService,
        library: Callable[[], Sequence[Attack]],
        ask: AskModel,
        prompt_text: PromptText,
    ) -> None:
        self.store = store
        self.jobs = jobs
        #: The attack library, read when the first run starts.
        self.library = library
        self.ask = ask
        self.prompt_text = prompt_text

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        run = await self.store.get_any(str(ctx.payload["run_id"]))
        if run is None:  # deleted with its tenant meanwhile
            return {"attempts": 0}
        spec = spec_from_json(run.spec)
        base_prompt = await self.prompt_text(run.tenant_id, spec.prompt) if spec.prompt else None
        setup = prepare_run(spec.seed, base_prompt)
        attempts = expand(self.library(), spec.selection, setup)
        await self.store.set_status(run.id, "running")
        done = await ctx.done_items()
        todo = [(i, a) for i, a in enumerate(attempts) if item_key(i) not in done]
        finished = len(attempts) - len(todo)
        ctx.progress(finished, len(attempts))
        slots = asyncio.Semaphore(spec.concurrency)

        async def one(index: int, attempt: Attempt) -> None:
            nonlocal finished
            async with slots:
                ctx.check_cancelled()
                call = TargetCall(
                    Identity(run.tenant_id, run.owner_method, run.key_id, run.user_id),
                    run.id,
                    spec.model,
                    spec.guard,
                    setup.system_prompt,
                    attempt.prompt,
                    spec.max_tokens,
                    confidential=spec.prompt is not None,
                )
                answer = await self.ask(call)
                if answer is None:
                    error = {"attempt": attempt.id, "category": attempt.category, "message": "no answer"}
                    await ctx.write_item(item_key(index), error=error)
                else:
                    # Judged now too: the run's progress stream counts successes per category as it goes.
                    success = judge_attempt(attempt, answer, setup).success
                    result = {"attempt": attempt.id, "category": attempt.category, "success": success, "answer": answer}
                    await ctx.write_item(item_key(index), result)
                finished += 1
                ctx.progress(finished, len(attempts))

        tasks = [asyncio.create_task(one(index, attempt)) for index, attempt in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # Cancelled (or an attempt failed for good): the attempts still waiting stop too.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        answers = await self._answers(ctx.id, attempts)
        results = score_answers(attempts, answers, setup)
        report = build_report(results, setup, run=run_metadata(run, spec))
        summary = summarise(report["attempts"])
        effectiveness = await self._effectiveness(run, summary)
        if effectiveness is not None:
            summary["guard_effectiveness"] = report["guard_effectiveness"] = effectiveness
        await self.store.finish(run.id, "succeeded", summary=summary, report=report)
        return {"run_id": run.id, "attempts": len(attempts), "success_rate": summary["success_rate"]}

    async def _effectiveness(self, run: RedteamRun, summary: dict[str, Any]) -> dict[str, Any] | None:
        """Against the latest finished run that is this one's pair with the guard the other way."""
        for other in await self.store.finished_like(run.tenant_id, run.target, run.prompt_id, run.seed, not run.guard):
            if other.id != run.id and other.summary is not None and same_selection(other.spec, run.spec):
                if run.guard:
                    return guard_effectiveness(other.summary, summary, model_run=other.id, gateway_run=run.id)
                return guard_effectiveness(summary, other.summary, model_run=run.id, gateway_run=other.id)
        return None

    async def _answers(self, job_id: str, attempts: Sequence[Attempt]) -> dict[str, str | None]:
        answers: dict[str, str | None] = {}
        after: str | None = None
        while True:
            page = await self.jobs.items(job_id, limit=_PAGE, after=after)
            for item in page:
                index = int(item.key)
                if index < len(attempts) and isinstance(item.result, dict):
                    answers[attempts[index].id] = item.result.get("answer")
            if len(page) < _PAGE:
                return answers
            after = page[-1].key
