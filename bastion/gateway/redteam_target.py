"""Red-team attempts sent to a model on the run's behalf (the ``AskModel`` of ``redteam_run`` jobs).

Each attempt is a chat request, as the run's submitter, through a pipeline: with ``guard`` on,
the gateway's own (auth, guard with the tenant's policy, limits, cost, ledger); with it off, the
same stages without the guard and the response cache, so the model answers unfiltered and no
unguarded answer is cached. Either way the ledger records the attempt with ``extra.redteam_run``
(the run id), which is how red-team traffic is told apart from the tenant's own. A run on a vault
prompt is ledgered with metadata only (as the analyzer's calls are): the request carries the
prompt's text, which the ledger's readers may not be allowed to see.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog

from bastion.auth.authenticator import Authenticator
from bastion.errors import BastionError
from bastion.gateway.internal_chat import internal_chat_context
from bastion.gateway.pipeline import Pipeline
from bastion.gateway.stage import Stage
from bastion.gateway.stages.cache import CacheStage
from bastion.gateway.stages.guard_in import GuardInStage
from bastion.gateway.stages.guard_out import GuardOutStage
from bastion.guard.service import ContentBlocked
from bastion.ledger.record import METADATA
from bastion.providers.base import ChatResponse
from bastion.redteam.run_job import TargetCall

log = structlog.get_logger("bastion.redteam")

USER_AGENT = "bastion-redteam"
#: The ledger ``extra`` key that marks red-team traffic.
LEDGER_KEY = "redteam_run"


def unguarded(stages: list[Stage]) -> list[Stage]:
    """The pipeline's stages without the guard and the response cache."""
    return [stage for stage in stages if not isinstance(stage, GuardInStage | GuardOutStage | CacheStage)]


class PipelineTarget:
    def __init__(self, guarded: Pipeline, unguarded_pipeline: Pipeline, authenticator: Authenticator) -> None:
        self.guarded = guarded
        self.unguarded = unguarded_pipeline
        self.authenticator = authenticator

    async def __call__(self, call: TargetCall) -> str | None:
        body: dict[str, Any] = {
            "model": call.model,
            "messages": [
                {"role": "system", "content": call.system_prompt},
                {"role": "user", "content": call.message},
            ],
            "max_tokens": call.max_tokens,
        }
        try:
            ctx = internal_chat_context(body, USER_AGENT)
            principal = await self.authenticator.principal_of(call.owner)
            if call.confidential:
                # A vault prompt's text is in the request: its readers may not see it in the ledger.
                settings = {**principal.tenant_settings, "ledger_mode": METADATA}
                principal = dataclasses.replace(principal, tenant_settings=settings)
            ctx.principal = principal
            ctx.ledger_extra = {LEDGER_KEY: call.run_id}
            result = await (self.guarded if call.guard else self.unguarded).chat(ctx)
        except ContentBlocked as exc:
            return exc.message  # the guard refused the request: the attack did not get through
        except BastionError as exc:
            log.info("redteam_attempt_failed", run_id=call.run_id, status=exc.status, error=exc.message[:200])
            return None
        assert isinstance(result, ChatResponse)  # not streamed
        try:
            content = result.body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return None
        return content if isinstance(content, str) else None
