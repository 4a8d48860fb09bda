"""Experiment stage: assigns a request to a running experiment's variant and rewrites it to match.

Which requests enter: chat requests of a tenant with a running experiment whose target is the vault
prompt the request names (``"model": "prompt:ID..."`` or ``bastion.prompt_id``) or, failing that,
the model alias it asks for. The unit is the experiment's: ``user`` (the body's ``user`` field, else
the ``x-bastion-user`` header, else the authenticated user), ``session`` (the agent session, else
the ``x-bastion-session`` header), ``key`` (the API key's id) or ``request`` (the request id). A
request without a unit id, or whose unit falls outside the coverage, takes the control path
untouched and is not counted.

Inside, the request becomes the variant's: its prompt version or label, its model alias, its
parameter overrides (which win over the client's and the prompt version's). The arm goes to the
ledger (``ctx.experiment``) and to the client as ``x-bastion-experiment: <experiment>=<variant>``
(names only, never prompt text), error answers included. After auth (the tenant) and before the prompt stage (which then
renders the variant's prompt version).
"""

from __future__ import annotations

from dataclasses import replace

from bastion.dialects.extension import BastionExtension
from bastion.experiments.model import HEADER, Arm, Target, Unit
from bastion.experiments.service import ExperimentService
from bastion.gateway.context import RequestContext
from bastion.gateway.stage import Stage
from bastion.gateway.stages.prompt import MODEL_PREFIX, DefaultTenant, parse_reference

USER_HEADER = "x-bastion-user"
SESSION_HEADER = "x-bastion-session"
_TOKEN_CAPS = ("max_tokens", "max_completion_tokens")


def unit_id(ctx: RequestContext, unit: Unit) -> str | None:
    """The request's id for ``unit``, or None when it has none."""
    principal = ctx.principal
    if unit == "user":
        user = ctx.body.get("user")
        if isinstance(user, str) and user:
            return user
        return ctx.headers.get(USER_HEADER) or (principal.user_id if principal is not None else None)
    if unit == "session":
        return ctx.session_id or ctx.headers.get(SESSION_HEADER)
    if unit == "key":
        return principal.key_id if principal is not None else None
    return ctx.request_id


def targets(ctx: RequestContext) -> list[Target]:
    """What the request could be an experiment on, the most specific first."""
    found: list[Target] = []
    prompt_id = ctx.extension.prompt_id if ctx.extension is not None else None
    if ctx.model.startswith(MODEL_PREFIX):
        prompt_id = ctx.model[len(MODEL_PREFIX) :].partition("@")[0] or prompt_id
    else:
        found.append(Target(model=ctx.model))
    if prompt_id:
        found.insert(0, Target(prompt_id=prompt_id))
    return found


def apply_variant(ctx: RequestContext, arm: Arm) -> None:
    """Rewrite the request to the arm's variant (prompt version or label, model, parameters)."""
    variant = arm.variant
    prompt_id = arm.target.prompt_id
    body = ctx.body
    selects_prompt = variant.prompt_version is not None or variant.prompt_label is not None
    if prompt_id is not None and (selects_prompt or variant.model is not None):
        extension = ctx.extension or BastionExtension()
        if ctx.model.startswith(MODEL_PREFIX):
            _, label, version = parse_reference(ctx.model)
            extension = replace(
                extension, prompt_id=prompt_id, label=extension.label or label, version=extension.version or version
            )
            # The variant's model replaces the version's: name the prompt in the field instead.
            ctx.model = variant.model if variant.model is not None else MODEL_PREFIX + prompt_id
        elif variant.model is not None:
            ctx.model = variant.model
        if variant.prompt_version is not None:
            extension = replace(extension, prompt_id=prompt_id, label=None, version=variant.prompt_version)
        elif variant.prompt_label is not None:
            extension = replace(extension, prompt_id=prompt_id, label=variant.prompt_label, version=None)
        ctx.extension = extension
        body["model"] = ctx.model
    elif variant.model is not None:
        ctx.model = body["model"] = variant.model
    for name, value in variant.params.items():
        if name in _TOKEN_CAPS:
            for cap in _TOKEN_CAPS:
                body.pop(cap, None)
        body[name] = value
    ctx.body_rewritten()


class ExperimentStage(Stage):
    name = "experiment"

    def __init__(self, service: ExperimentService, default_tenant: DefaultTenant) -> None:
        self.service = service
        self.default_tenant = default_tenant

    async def on_request(self, ctx: RequestContext) -> None:
        if ctx.endpoint != "chat":
            return
        tenant_id = ctx.principal.tenant_id if ctx.principal is not None else await self.default_tenant()
        if tenant_id is None:
            return
        running = await self.service.running_for(tenant_id)
        if not running:  # the common case: one cached dictionary lookup
            return
        arm = await self.service.assign(tenant_id, targets(ctx), lambda unit: unit_id(ctx, unit))
        if arm is None:
            return
        apply_variant(ctx, arm)
        ctx.experiment = arm
        ctx.add_response_headers({HEADER: arm.header()})

    async def on_complete(self, ctx: RequestContext) -> None:
        # An error answer carries its headers on the exception: it names the arm too.
        if ctx.experiment is not None and ctx.error is not None:
            ctx.error.headers.setdefault(HEADER, ctx.experiment.header())
