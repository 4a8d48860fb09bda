"""The guard as the gateway runs it: built once per process from settings, shared by the input
and output sides of every request.

It resolves a request's policy (tenant, user, key and vault prompt layers), scans the input with
the memoising guard, builds the output guard over a cached prompt fingerprint, and plants a canary
in a client's own system prompt when ``guard.canary_for_client_prompts`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import Any

import bastion.guard.offload as offload
from bastion.config.guard_policy import GuardPolicy
from bastion.config.settings import GuardSettings
from bastion.errors import InvalidRequest
from bastion.guard.caches import FingerprintCache, MemoInputGuard, PlantedOutputGuard
from bastion.guard.deep_injection import EmbedFunction, embed_text, shared_deep_model
from bastion.guard.engine import OutputGuard, injection_thresholds
from bastion.guard.leak import make_canary, plant_canary
from bastion.guard.models import BLOCKED_MESSAGE, Action, GuardResult, Verdict
from bastion.guard.policy_resolution import Caller, PolicyResolver
from bastion.guard.run_hold import RunHoldingStreamGuard
from bastion.guard.state import PlantedPrompt
from bastion.observability.metrics import GUARD_VERDICTS

_INSTRUCTION_ROLES = frozenset({"system", "developer"})
_TEXT_PART_TYPES = frozenset({"text", "input_text"})
#: The part types the input guard scans (``engine._TEXT_PART_TYPES``).
_SCANNED_PART_TYPES = frozenset({"text", "input_text", "output_text"})


class ContentBlocked(InvalidRequest):
    """The input guard blocked the request: 400, ``content_blocked``, a message that reveals nothing
    (the policy's ``blocked_message`` when it sets one)."""

    code = "content_blocked"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or BLOCKED_MESSAGE)


class GuardService:
    def __init__(
        self, settings: GuardSettings, *, prompt_cache_ttl_s: float, embed: EmbedFunction | None = None
    ) -> None:
        #: The deeper injection tier's embedding function (None: that tier is unavailable).
        self.embed = embed
        self.enabled = settings.enabled
        self.canary_for_client_prompts = settings.canary_for_client_prompts
        self.stream_batch_chars = settings.stream_batch_chars
        self.resolver = PolicyResolver(GuardPolicy.model_validate(settings.policy))
        self.fingerprints = FingerprintCache(prompt_cache_ttl_s)
        # Canaries for client prompts are derived from the prompt text with this key, so the same
        # system prompt gets the same canary and provider-side prompt caching keeps working.
        self._canary_key = os.urandom(32)
        self._warm_up: asyncio.Future[None] | None = None

    async def start(self) -> None:
        if self.enabled:
            # The detectors compile a few hundred patterns (about a second of CPU) when first used:
            # build them now, beside start-up, instead of inside the first guarded request.
            self._warm_up = asyncio.get_running_loop().run_in_executor(None, self._build_default_guard)

    async def stop(self) -> None:
        if self._warm_up is not None:
            with contextlib.suppress(Exception):  # a failed build fails the first request instead, visibly
                await self._warm_up

    def _build_default_guard(self) -> None:
        MemoInputGuard.for_policy(self.resolver.resolve()).scan_messages([{"role": "user", "content": "Warm-up."}])

    def policy(self, principal: Caller | None, prompt_policy: Mapping[str, Any] | None = None) -> GuardPolicy:
        """The policy in force: the configured default, then tenant, user, key and vault prompt."""
        return self.resolver.resolve(principal, prompt_policy)

    @staticmethod
    async def scan_input(policy: GuardPolicy, messages: list[Any]) -> GuardResult:
        """The request's messages scanned under ``policy`` (a large one in a guard worker thread,
        within the policy's scan budget)."""
        return await offload.scan_messages(MemoInputGuard.for_policy(policy), messages)

    async def deepen_injection(self, policy: GuardPolicy, result: GuardResult, messages: list[Any]) -> GuardResult:
        """The deeper tier (``injection_deep``) over the scanned texts, when the policy asks for it
        and the fast tier's score calls for it: a deep block turns the result into a block."""
        if policy.injection_deep == "off" or policy.injection == "off" or self.embed is None or result.blocked:
            return result
        verdict = result.verdict("injection")
        if verdict is None:
            return result
        flag_at, block_at = injection_thresholds(policy)
        if policy.injection_deep == "uncertain" and not flag_at <= verdict.score < block_at:
            return result
        texts = [
            embed_text(text)
            for message in messages
            if isinstance(message, Mapping) and message.get("role") in policy.scan_roles
            for text in (_content_text(message.get("content"), _SCANNED_PART_TYPES),)
            if text.strip()
        ]
        if not texts:
            return result
        model = shared_deep_model()
        score = max(model.probabilities(await self.embed(texts)))
        blocks = score >= model.block_threshold and policy.injection in ("block", "redact")
        action: Action = "block" if blocks else ("flag" if score >= model.flag_threshold else "allow")
        result.verdicts.append(Verdict("injection_deep", score, score >= model.flag_threshold, [], action))
        if blocks:
            result.action = "block"
        return result

    def output_guard(self, policy: GuardPolicy, planted: PlantedPrompt | None) -> OutputGuard | None:
        """The output guard for a request, or None when no output scanner is on."""
        if policy.leak == "off" and policy.effective_output_pii == "off" and policy.effective_output_secrets == "off":
            return None
        system_prompt, canary = (planted.system_prompt, planted.canary) if planted is not None else (None, None)
        fingerprint = self.fingerprints.get(system_prompt, canary, policy.leak_ngram)
        return PlantedOutputGuard.for_request(policy, fingerprint)

    def stream_guard(self, guard: OutputGuard) -> RunHoldingStreamGuard:
        return RunHoldingStreamGuard(guard, min_batch_chars=self.stream_batch_chars)

    def plant_client_canary(self, messages: list[Any]) -> tuple[list[Any], PlantedPrompt] | None:
        """The messages with a canary planted in the client's first system/developer message, and
        the prompt for the output guard; None when the client sent no instructions."""
        texts: list[str] = []
        first: int | None = None
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in _INSTRUCTION_ROLES:
                continue
            text = _content_text(message.get("content"))
            if text:
                texts.append(text)
                first = index if first is None else first
        if first is None:
            return None
        system_prompt = "\n".join(texts)
        canary = make_canary(self._canary_key, system_prompt)
        planted = _planted(messages[first], canary)
        if planted is None:
            return None
        return [*messages[:first], planted, *messages[first + 1 :]], PlantedPrompt(system_prompt, canary)


def _content_text(content: Any, part_types: frozenset[str] = frozenset({"text", "input_text"})) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and part.get("type") in part_types and isinstance(part.get("text"), str)
        )
    return ""


def _planted(message: Mapping[str, Any], canary: str) -> dict[str, Any] | None:
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": plant_canary(content, canary)}
    if isinstance(content, list):
        for index, part in enumerate(content):
            if isinstance(part, Mapping) and part.get("type") in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
                parts = list(content)
                parts[index] = {**part, "text": plant_canary(part["text"], canary)}
                return {**message, "content": parts}
    return None


_COUNTERS: dict[tuple[str, str, str], Any] = {}


def count_verdicts(direction: str, result: GuardResult | None) -> None:
    """``bastion_guard_verdicts{direction, scanner, action}``: one per scanner that ran."""
    if result is None:
        return
    for verdict in result.verdicts:
        key = (direction, verdict.scanner, verdict.action)
        counter = _COUNTERS.get(key)
        if counter is None:  # label lookups cost more than the increment: keep the children
            counter = _COUNTERS[key] = GUARD_VERDICTS.labels(*key)
        counter.inc()
