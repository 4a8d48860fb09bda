"""Prompt stage: turns a reference to a vault prompt into the upstream messages.

A client names a prompt with ``"model": "prompt:ID"`` (``@label`` or ``@<version>`` optional) or
with the ``bastion`` request field ``{prompt_id, label | version, variables}``. The stage sends
upstream: the vault's system prompt (with a canary planted) first, then the client's messages
WITHOUT their system/developer messages (a client must not be able to replace or append to the
vault prompt), then the version's user template rendered with the client's variables.

It leaves for later stages: ``ctx.prompt`` (id, version, label, the version's guard policy),
``ctx.ledger_messages`` (what the client sent: the ledger must not record the secret prompt) and
``ctx.planted_prompt`` (the system prompt and canary, for the guard's leak detection; never logged
or recorded).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bastion.dialects.extension import BastionExtension, parse_knowledge
from bastion.errors import InvalidRequest, NotFound
from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage
from bastion.guard.leak import make_canary, plant_canary
from bastion.guard.state import PlantedPrompt
from bastion.vault.model import PromptInUse, PromptNotFound, ResolvedPrompt
from bastion.vault.render import check_variables, render
from bastion.vault.service import VaultService

MODEL_PREFIX = "prompt:"
_DROPPED_ROLES = frozenset({"system", "developer"})
#: Request fields a version's params may set when the request leaves them out; the two token caps
#: count as one, since a request with either must not get the other from the version.
_TOKEN_CAPS = ("max_tokens", "max_completion_tokens")

#: The tenant of anonymous callers (auth off), looked up once: ``auth.default_tenant``'s id.
DefaultTenant = Callable[[], Awaitable[str | None]]


def parse_reference(model: str) -> tuple[str, str | None, int | None]:
    """``prompt:ID`` / ``prompt:ID@label`` / ``prompt:ID@3`` -> (id, label, version)."""
    rest = model[len(MODEL_PREFIX) :]
    prompt_id, at, selector = rest.partition("@")
    if not prompt_id or (at and not selector):
        raise InvalidRequest(
            "Invalid request: model must be prompt:ID, prompt:ID@label or prompt:ID@<version>.", param="model"
        )
    if not selector:
        return prompt_id, None, None
    if selector.isdigit():
        return prompt_id, None, int(selector)
    return prompt_id, selector, None


def _reference(model: str | None, extension: BastionExtension) -> tuple[str, str | None, int | None, str]:
    """(prompt id, label, version, param to blame) from the model string and/or the field."""
    label: str | None = None
    version: int | None = None
    prompt_id = extension.prompt_id
    if model is not None:
        model_id, label, version = parse_reference(model)
        if prompt_id is not None and prompt_id != model_id:
            raise InvalidRequest(
                "Invalid request: model and bastion.prompt_id name different prompts.", param="bastion.prompt_id"
            )
        prompt_id, param = model_id, "model"
    else:
        if prompt_id is None:
            raise InvalidRequest("Invalid request: bastion.prompt_id must be a string.", param="bastion.prompt_id")
        param = "bastion.prompt_id"
    label, version = extension.label or label, extension.version or version
    if label is not None and version is not None:
        raise InvalidRequest("Invalid request: name a prompt label or a version, not both.", param="bastion")
    return prompt_id, label, version, param


class PromptStage(Stage):
    name = "prompt"

    def __init__(
        self,
        vault: VaultService,
        default_tenant: DefaultTenant,
        *,
        new_canary: Callable[[], str] = make_canary,
    ) -> None:
        self.vault = vault
        self.default_tenant = default_tenant
        #: A fresh canary per request: a leak found later points at the exact request.
        self.new_canary = new_canary

    async def on_request(self, ctx: RequestContext) -> None:
        if ctx.endpoint != "chat":
            return
        extension = ctx.extension or BastionExtension()
        by_model = ctx.model.startswith(MODEL_PREFIX)
        if not by_model and extension.prompt_id is None:
            return
        prompt_id, label, version, param = _reference(ctx.model if by_model else None, extension)
        variables = check_variables(extension.variables)
        tenant_id = ctx.principal.tenant_id if ctx.principal is not None else await self.default_tenant()
        try:
            if tenant_id is None:
                raise PromptNotFound(f"The prompt {prompt_id!r} does not exist.")
            resolved, label = await self.vault.resolve(tenant_id, prompt_id, label=label, version=version)
        except NotFound as exc:
            exc.param = param
            raise
        if by_model:
            if resolved.model is None:
                raise InvalidRequest(
                    f"The prompt {prompt_id!r} names no model: send a model in `model` and the prompt in the "
                    "`bastion` field.",
                    param="model",
                )
            ctx.model = resolved.model
            ctx.body["model"] = resolved.model
        self._apply(ctx, resolved, variables)
        ctx.body_rewritten()
        guard_policy = resolved.metadata.get("guard")
        cache = resolved.metadata.get("cache")
        knowledge = parse_knowledge(resolved.metadata.get("knowledge"), "metadata.knowledge")
        ctx.prompt = PromptInUse(prompt_id, resolved.version, label, guard_policy or None, cache, knowledge)

    def _apply(self, ctx: RequestContext, resolved: ResolvedPrompt, variables: dict[str, Any]) -> None:
        body = ctx.body
        secret = resolved.secret
        client_messages = body.get("messages") or []
        kept = [m for m in client_messages if not (isinstance(m, dict) and m.get("role") in _DROPPED_ROLES)]
        template = secret.compiled_template()
        if template is not None:
            kept.append({"role": "user", "content": render(template, variables)})
        if not kept:
            raise InvalidRequest(
                "Invalid request: the prompt has no user template, so send at least one user message "
                "(system messages are replaced by the prompt's).",
                param="messages",
            )
        canary = self.new_canary()
        body["messages"] = [{"role": "system", "content": plant_canary(secret.system, canary)}, *kept]
        params = resolved.params
        if params:
            explicit_cap = any(body.get(name) is not None for name in _TOKEN_CAPS)
            for name, value in params.items():
                if body.get(name) is None and not (explicit_cap and name in _TOKEN_CAPS):
                    body[name] = value
        # The ledger records what the client sent, never the secret prompt or rendered template.
        ctx.ledger_messages = client_messages
        ctx.planted_prompt = PlantedPrompt(secret.system, canary)
