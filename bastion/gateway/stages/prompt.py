"""Prompt stage: turns a reference to a vault prompt into the upstream messages.

A client names a prompt with ``"model": "prompt:ID"`` (``@label`` or ``@<version>`` optional) or
with the ``bastion`` request field ``{prompt_id, label | version, variables}``. The stage sends
upstream: the vault's system prompt (with a canary planted) first, then the client's messages
WITHOUT their system/developer messages (a client must not be able to replace or append to the
vault prompt), then the version's user template rendered with the client's variables.

It leaves for later stages: ``annotations["prompt"]`` (id, version, label) and the flat
``prompt_id``/``prompt_version`` for the ledger, ``ledger_messages`` (what the client sent: the
ledger must not record the secret prompt), and ``prompt_secret`` (the system prompt and canary,
for the guard's leak detection; never logged or recorded).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from bastion.errors import InvalidRequest, NotFound
from bastion.gateway.context import RequestContext
from bastion.gateway.pipeline import Stage
from bastion.store.models import Tenant
from bastion.vault.crypto import VaultError
from bastion.vault.model import PromptNotFound, PromptSecret, ResolvedPrompt
from bastion.vault.render import check_variables, render
from bastion.vault.service import SERVICE, VaultService

try:  # the guard owns canaries once it ships them; until then the vault's own are used
    from bastion.guard import make_canary, plant_canary  # type: ignore[attr-defined]
except ImportError:
    from bastion.vault.canary import make_canary, plant_canary

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway

log = structlog.get_logger("bastion.vault")

MODEL_PREFIX = "prompt:"
_DROPPED_ROLES = frozenset({"system", "developer"})
#: Request fields a version's params may set when the request leaves them out; the two token caps
#: count as one, since a request with either must not get the other from the version.
_TOKEN_CAPS = ("max_tokens", "max_completion_tokens")


class PromptSecretNote(dict[str, str]):
    """``annotations["prompt_secret"]``: a dict whose repr hides the text, for any careless log."""

    def __repr__(self) -> str:
        return "{<prompt secret>}"

    __str__ = __repr__


def vault_for(gateway: Gateway) -> VaultService:
    """The gateway's vault (``gateway.services["vault"]``), created on first use."""
    vault = gateway.services.get(SERVICE)
    if vault is None:
        vault = VaultService(gateway.db, gateway.settings)
        gateway.services[SERVICE] = vault
    return vault  # type: ignore[no-any-return]


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


def _extension(ctx: RequestContext) -> dict[str, Any] | None:
    extension = ctx.annotations.get("bastion")
    if extension is None:
        return None
    if not isinstance(extension, dict):
        raise InvalidRequest("Invalid request: bastion must be an object.", param="bastion")
    return extension


def _version_field(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() or int(value) < 1:
        raise InvalidRequest("Invalid request: bastion.version must be a positive integer.", param="bastion.version")
    return int(value)


class PromptStage(Stage):
    name = "prompt"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.vault = vault_for(gateway)
        self._default_tenant_id: str | None = None

    async def start(self) -> None:
        try:
            await self.vault.start()
        except VaultError as exc:
            # Never serve with the wrong master key: say so plainly and stop the start-up.
            log.error("vault_start_failed", error=str(exc))
            print(f"bastion: error: {exc}", file=sys.stderr, flush=True)
            raise
        except Exception as exc:  # database not reachable or not migrated yet: checked on first use
            log.warning("vault_check_deferred", error=f"{type(exc).__name__}: {exc}")

    async def on_request(self, ctx: RequestContext) -> None:
        if ctx.endpoint != "chat":
            return
        extension = _extension(ctx)
        by_model = ctx.model.startswith(MODEL_PREFIX)
        if not by_model and not (extension and extension.get("prompt_id") is not None):
            return
        prompt_id, label, version, param = self._reference(ctx.model if by_model else None, extension or {})
        variables = check_variables((extension or {}).get("variables"))
        tenant_id = await self._tenant_id(ctx)
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
        ctx.annotations["prompt"] = {"id": prompt_id, "version": resolved.version, "label": label}
        ctx.annotations["prompt_id"] = prompt_id
        ctx.annotations["prompt_version"] = resolved.version
        guard_policy = resolved.metadata.get("guard")
        if guard_policy:  # the version's own guard policy, the most specific layer (guard_in reads it)
            ctx.annotations["prompt_guard"] = guard_policy

    @staticmethod
    def _reference(model: str | None, extension: dict[str, Any]) -> tuple[str, str | None, int | None, str]:
        """(prompt id, label, version, param to blame) from the model string and/or the field."""
        label: str | None = None
        version: int | None = None
        prompt_id = extension.get("prompt_id")
        if model is not None:
            model_id, label, version = parse_reference(model)
            if prompt_id is not None and prompt_id != model_id:
                raise InvalidRequest(
                    "Invalid request: model and bastion.prompt_id name different prompts.", param="bastion.prompt_id"
                )
            prompt_id, param = model_id, "model"
        else:
            if not isinstance(prompt_id, str) or not prompt_id:
                raise InvalidRequest("Invalid request: bastion.prompt_id must be a string.", param="bastion.prompt_id")
            param = "bastion.prompt_id"
        field_label, field_version = extension.get("label"), _version_field(extension.get("version"))
        if field_label is not None and not isinstance(field_label, str):
            raise InvalidRequest("Invalid request: bastion.label must be a string.", param="bastion.label")
        label, version = field_label or label, field_version or version
        if label is not None and version is not None:
            raise InvalidRequest("Invalid request: name a prompt label or a version, not both.", param="bastion")
        return prompt_id, label, version, param

    def _apply(self, ctx: RequestContext, resolved: ResolvedPrompt, variables: dict[str, Any]) -> None:
        body = ctx.body
        secret: PromptSecret = resolved.secret
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
        canary = make_canary()
        body["messages"] = [{"role": "system", "content": plant_canary(secret.system, canary)}, *kept]
        params = resolved.params
        if params:
            explicit_cap = any(body.get(name) is not None for name in _TOKEN_CAPS)
            for name, value in params.items():
                if body.get(name) is None and not (explicit_cap and name in _TOKEN_CAPS):
                    body[name] = value
        # The ledger records what the client sent, never the secret prompt or rendered template.
        ctx.annotations["ledger_messages"] = client_messages
        ctx.annotations["prompt_secret"] = PromptSecretNote(system_prompt=secret.system, canary=canary)

    async def _tenant_id(self, ctx: RequestContext) -> str | None:
        principal = ctx.principal
        if principal is not None:
            return principal.tenant_id  # type: ignore[no-any-return]
        # No auth stage in this pipeline: the tenant anonymous calls belong to (auth.default_tenant).
        if self._default_tenant_id is None:
            async with self.gateway.db.session() as session:
                self._default_tenant_id = await session.scalar(
                    select(Tenant.id).where(Tenant.name == self.gateway.settings.auth.default_tenant)
                )
        return self._default_tenant_id
