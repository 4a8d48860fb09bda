"""The analyzer as a service: analysis of a text, or of a vault prompt server-side, and the
LLM-assisted rewrite offered as a new draft version.

Who may see what: analysing a vault prompt needs only ``prompts:read`` (metadata); the result
carries spans (offsets), rationale and counts, never the prompt's words. Excerpts are cut from the
text only for a principal who may read the prompt (``prompts:read_plaintext``), and that read is
audited like the plaintext route. The rewrite runs as the caller, through the gateway's pipeline
(its budgets, limits, guard, ledger), with a callable the composition root provides; its result is
a new version without labels (a draft: never served until someone moves a label to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.analyzer.engine import Analyzer, default_analyzer
from bastion.analyzer.model import Analysis, PromptText
from bastion.analyzer.rewrite import read_rewrite, rewrite_messages
from bastion.analyzer.tokens import Tokenizer, tokenizer_of_model
from bastion.auth.principal import Permission, Principal
from bastion.errors import BastionError, InvalidRequest, NotFound
from bastion.usage import cl100k_count
from bastion.vault.model import ResolvedPrompt, VersionInfo, VersionSpec
from bastion.vault.service import VaultService

#: (caller, model, chat messages, what to record with the call) -> the answer's text.
ChatFunction = Callable[[Principal, str, list[dict[str, Any]], dict[str, Any]], Awaitable[str]]
#: A model name -> its tokenizer, if we ship it (exact counts), else None (estimates).
ModelTokenizer = Callable[[str | None], Tokenizer | None]
#: The version metadata key where an author declares the variables the application sends.
INPUTS_KEY = "inputs"
#: Prompts up to this many characters (about 2,000 tokens) are analysed on the event loop.
INLINE_CHARS = 8192


class RewriteUnavailable(BastionError):
    status = 503
    code = "rewrite_unavailable"


@dataclass(frozen=True, slots=True)
class PromptAnalysis:
    prompt_id: str
    version: int
    label: str | None
    analysis: Analysis
    #: The text, for excerpts; None when the caller may not read the prompt.
    readable: PromptText | None

    def to_json(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "version": self.version, "label": self.label} | self.analysis.to_json(
            self.readable
        )


@dataclass(frozen=True, slots=True)
class Rewrite:
    draft: VersionInfo
    before: Analysis
    after: Analysis
    model: str

    def to_json(self) -> dict[str, Any]:
        return {
            "object": "prompt.rewrite",
            "draft": self.draft.to_json(),
            "model": self.model,
            "before": _brief(self.before),
            "after": _brief(self.after),
        }


def _brief(analysis: Analysis) -> dict[str, Any]:
    return {
        "tokens": analysis.tokens.total,
        "findings": len(analysis.findings),
        "pattern_ids": [finding.pattern_id for finding in analysis.findings],
    }


def check_declared(value: Any, param: str = "variables") -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 128 for v in value):
        raise InvalidRequest(f"{param} must be a list of variable names.", param=param)
    if len(value) > 100:
        raise InvalidRequest(f"{param} may name at most 100 variables.", param=param)
    return tuple(value)


class AnalyzerService:
    def __init__(
        self,
        vault: VaultService,
        *,
        chat: ChatFunction | None = None,
        model_tokenizer: ModelTokenizer | None = None,
        analyzer: Analyzer | None = None,
    ) -> None:
        self.vault = vault
        self.chat = chat
        self.model_tokenizer = model_tokenizer or tokenizer_of_model
        self.analyzer = analyzer or default_analyzer()

    def analyze_text(self, prompt: PromptText) -> Analysis:
        return self.analyzer.analyze(prompt, tokenizer=self.model_tokenizer(prompt.model))

    async def analyze(self, prompt: PromptText) -> Analysis:
        """``analyze_text`` off the event loop for long prompts (about 3 ms of CPU per 1,000
        tokens: a 64,000-token prompt would hold every other request for a fifth of a second),
        and while cl100k's rank table is still to be built."""
        tokenizer = self.model_tokenizer(prompt.model)
        small = len(prompt.system) + len(prompt.template or "") <= INLINE_CHARS
        if small and (tokenizer != "cl100k" or cl100k_count.loaded()):
            return self.analyzer.analyze(prompt, tokenizer=tokenizer)
        return await asyncio.to_thread(self.analyzer.analyze, prompt, tokenizer=tokenizer)

    async def _resolve(
        self, tenant_id: str, prompt_id: str, version: int | None, label: str | None
    ) -> tuple[ResolvedPrompt, str | None]:
        if version is not None and label is not None:
            raise InvalidRequest("Give a version or a label, not both.", param="version")
        try:
            return await self.vault.resolve(tenant_id, prompt_id, label=label, version=version)
        except NotFound as exc:
            # The vault names the request path's field (``model``); here it is one of ours.
            exc.param = "prompt_id" if "does not exist" in exc.message else ("version" if version else "label")
            raise

    @staticmethod
    def _text(resolved: ResolvedPrompt, declared: Sequence[str] | None, model: str | None) -> PromptText:
        inputs = resolved.metadata.get(INPUTS_KEY)
        if declared is None and isinstance(inputs, list) and all(isinstance(v, str) for v in inputs):
            declared = tuple(inputs)
        return PromptText(
            system=resolved.secret.system,
            template=resolved.secret.template,
            declared=tuple(declared) if declared is not None else None,
            model=model or resolved.model,
        )

    async def analyze_prompt(
        self,
        principal: Principal,
        prompt_id: str,
        *,
        version: int | None = None,
        label: str | None = None,
        declared: Sequence[str] | None = None,
        model: str | None = None,
    ) -> PromptAnalysis:
        """A vault prompt's analysis (``production`` unless a version or label is named); with
        excerpts only if ``principal`` may read prompt text."""
        if version is not None and label is not None:
            raise InvalidRequest("Give a version or a label, not both.", param="version")
        reader = principal.actor if principal.can(Permission.READ_PROMPT_PLAINTEXT) else None
        return await self.analyze_vault_prompt(
            principal.tenant_id, prompt_id, version=version, label=label, declared=declared, model=model, reader=reader
        )

    async def analyze_vault_prompt(
        self,
        tenant_id: str,
        prompt_id: str,
        *,
        version: int | None = None,
        label: str | None = None,
        declared: Sequence[str] | None = None,
        model: str | None = None,
        reader: str | None = None,
    ) -> PromptAnalysis:
        """The analysis; ``reader``: who gets excerpts (the read is audited under that actor), None
        for none."""
        resolved, used_label = await self._resolve(tenant_id, prompt_id, version, label)
        prompt = self._text(resolved, declared, model)
        analysis = await self.analyze(prompt)
        readable = None
        if reader is not None:
            # Excerpts are a read of the text: audited as one.
            await self.vault.read_plaintext(tenant_id, prompt_id, resolved.version, actor=reader)
            readable = prompt
        return PromptAnalysis(prompt_id, resolved.version, used_label, analysis, readable)

    async def rewrite(
        self,
        principal: Principal,
        prompt_id: str,
        *,
        model: str,
        version: int | None = None,
        label: str | None = None,
        declared: Sequence[str] | None = None,
        instructions: str | None = None,
    ) -> Rewrite:
        """Ask ``model`` (through the gateway, as ``principal``) for a rewrite of the system prompt
        that resolves the findings, and store it as a new version with no label."""
        if self.chat is None:
            raise RewriteUnavailable("Rewrites are not available in this process.")
        resolved, _ = await self._resolve(principal.tenant_id, prompt_id, version, label)
        prompt = self._text(resolved, declared, model)
        before = await self.analyze(prompt)
        purpose = {"purpose": "prompt_rewrite", "prompt_id": prompt_id, "prompt_version": resolved.version}
        answer = await self.chat(principal, model, rewrite_messages(prompt.system, before, instructions), purpose)
        rewritten = read_rewrite(answer)
        metadata = {key: value for key, value in resolved.metadata.items() if key != "variables"}
        metadata["draft"] = {
            "source_version": resolved.version,
            "rewrite_model": model,
            "library_version": before.library_version,
            "addressed": [finding.pattern_id for finding in before.findings],
        }
        spec = VersionSpec(rewritten, resolved.secret.template, resolved.model, dict(resolved.params), metadata)
        draft = await self.vault.new_version(principal.tenant_id, prompt_id, spec, actor=principal.actor, labels=[])
        after = await self.analyze(PromptText(rewritten, prompt.template, prompt.declared, prompt.model))
        return Rewrite(draft, before, after, model)
