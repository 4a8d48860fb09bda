"""Agent sessions (seed 000): start, end, list, history and chat, for the session's owner only.

One ``SessionService`` per process (built by the composition root); all state is in the
database (sessions, messages) and in the limiter's store (Redis when the gateway has one), so any
gateway process serves any session. A chat goes through the gateway pipeline like a /v1 call
(auth, prompt, limits, guard, ledger); this layer adds the ownership and expiry checks, the
message limits, the history window, and storing the exchange.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

import bastion.sessions.store as store
from bastion.auth.principal import Principal
from bastion.config.settings import Settings
from bastion.dialects.extension import BastionExtension
from bastion.errors import BastionError, Conflict, InvalidRequest, ModelNotFound, NotFound
from bastion.routing.router import Router
from bastion.sessions.limiter import Owner, SessionLimiter
from bastion.sessions.models import ACTIVE, ENDED, EXPIRED, AgentSession, SessionMessage
from bastion.sessions.window import fit, message_tokens, window_budget
from bastion.store.db import Database
from bastion.store.models import utcnow
from bastion.store.periodic import PeriodicSweep
from bastion.usage.tokenizer import count_text
from bastion.vault.model import ResolvedPrompt
from bastion.vault.render import check_variables, render
from bastion.vault.service import VaultService

log = structlog.get_logger("bastion.sessions")

_PLAN_CACHE_MAX = 10_000


class SessionGone(BastionError):
    """The session exists and is the caller's, but is over (ended, idle too long, past its life)."""

    status = 410
    error_type = "invalid_request_error"
    code = "session_expired"


class SessionLimitReached(Conflict):
    code = "session_limit_reached"


@dataclass(frozen=True, slots=True)
class PromptPlan:
    """What a chat needs from the session's pinned prompt version (cached; versions are immutable)."""

    model: str
    budget: int
    has_template: bool


@dataclass(slots=True)
class PreparedChat:
    """A chat admitted by the session layer, ready for the pipeline."""

    session_pk: str
    agent_id: str
    message: str
    message_tokens: int
    model: str
    body: dict[str, Any]
    extension: BastionExtension


def parse_agent_id(value: Any) -> str:
    """The canonical text of a UUID; anything else is a session that does not exist (404)."""
    if not isinstance(value, str):
        raise InvalidRequest("Invalid request: agent_id must be a string.", param="agent_id")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound("No session with this agent_id.", param="agent_id") from None


def owner_of(principal: Principal) -> Owner:
    """Sessions belong to the user behind the credentials, else to the key itself."""
    if principal.user_id:
        label = f"user {principal.user_email or principal.user_id}"
        return Owner(principal.tenant_id, "user", principal.user_id, label)
    if principal.key_id:
        label = f"key {principal.key_prefix}…" if principal.key_prefix else f"key {principal.key_id}"
        return Owner(principal.tenant_id, "key", principal.key_id, label)
    # Auth off: every anonymous caller of the default tenant is one owner.
    return Owner(principal.tenant_id, "key", "anonymous", "anonymous caller")


def session_view(row: AgentSession) -> dict[str, Any]:
    """A session as clients see it: ids, state and times, never prompt text."""
    return {
        "object": "agent_session",
        "agent_id": row.agent_id,
        "prompt_id": row.prompt_id,
        "prompt_version": row.prompt_version,
        "prompt_label": row.prompt_label,
        "session_type": row.session_type,
        "context": row.context,
        "status": row.status,
        "message_count": row.message_count,
        "started_at": row.started_at.isoformat(),
        "last_activity_at": row.last_activity_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


def message_view(row: SessionMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "content": row.content,
        "interaction_id": row.interaction_id,
        "created_at": row.created_at.isoformat(),
    }


class SessionService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        vault: VaultService,
        router: Router,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings.sessions
        self.vault = vault
        #: The models a session may use (and their context lengths, for the history window).
        self.router = router
        #: UTC "now"; tests replace it to move time without sleeping.
        self.clock = clock
        self.limiter = SessionLimiter.build(settings)
        self._plans: dict[tuple[str, str, int, str | None], PromptPlan] = {}
        self._cleanup = PeriodicSweep(
            "sessions", lambda: self.settings.cleanup_interval_s, self.sweep, "bastion.sessions"
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.limiter.start()
        self._cleanup.start()

    async def stop(self) -> None:
        await self._cleanup.stop()
        await self.limiter.stop()

    async def sweep(self) -> int:
        """Mark every stale active session expired; how many this call marked."""
        async with self.db.transaction() as session:
            return await store.expire_stale(session, self.clock(), self.settings.idle_timeout_s)

    # -- start, end, list, history -----------------------------------------------------------------

    async def start_session(
        self,
        principal: Principal,
        prompt_id: str,
        *,
        session_type: str,
        context: dict[str, Any],
        label: str | None,
        version: int | None,
        model: str | None,
    ) -> AgentSession:
        resolved, used_label = await self._resolve(principal.tenant_id, prompt_id, label=label, version=version)
        template = resolved.secret.compiled_template()
        if template is not None:
            try:  # fail at start, not on every message, if the context cannot fill the template
                render(template, check_variables(context))
            except InvalidRequest as exc:
                exc.param = "context"
                raise
        target = model or resolved.model
        if target is None:
            raise InvalidRequest(
                f"The prompt {prompt_id!r} names no model: send `model` when starting the session.", param="model"
            )
        if target not in self.router.groups:
            raise ModelNotFound(f"The model {target!r} does not exist.", param="model")
        owner = owner_of(principal)
        now = self.clock()
        row = AgentSession(
            agent_id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            owner_kind=owner.kind,
            owner_id=owner.id,
            user_id=principal.user_id,
            key_id=principal.key_id,
            prompt_id=prompt_id,
            prompt_label=used_label,
            prompt_version=resolved.version,
            model=model,
            session_type=session_type,
            context=context,
            status=ACTIVE,
            message_count=0,
            started_at=now,
            last_activity_at=now,
            expires_at=now + timedelta(seconds=self.settings.max_life_s),
        )
        cap = self.settings.max_active_per_user
        async with self.db.transaction() as session:
            await store.lock_owner(session, owner, now, self.settings.idle_timeout_s)
            if await store.count_active(session, owner) >= cap:
                raise SessionLimitReached(
                    f"At most {cap} active sessions per user: {owner.label} has {cap}. "
                    "End one (POST /api/v1/ai/sessions/end) or wait for one to expire."
                )
            session.add(row)
        log.info("session_started", agent_id=row.agent_id, tenant_id=row.tenant_id, prompt_id=prompt_id)
        return row

    async def end_session(self, principal: Principal, agent_id: str) -> AgentSession:
        async with self.db.transaction() as session:
            row = await self._owned(session, principal, agent_id)
            if row.status == ACTIVE:
                now = self.clock()
                status = EXPIRED if self._is_stale(row, now) else ENDED
                await store.mark(session, row.id, status, now)
                row.status, row.ended_at = status, now
        return row

    async def active(self, principal: Principal) -> list[AgentSession]:
        async with self.db.session() as session:
            return await store.list_active(session, owner_of(principal), self.clock(), self.settings.idle_timeout_s)

    async def history(
        self, principal: Principal, agent_id: str, after: int | None, limit: int
    ) -> tuple[AgentSession, list[SessionMessage], bool]:
        """One page of the session's messages, oldest first, after message id ``after``."""
        async with self.db.session() as session:
            row = await self._owned(session, principal, agent_id)
            page = await store.history_page(session, row.id, after, limit + 1)
        return row, page[:limit], len(page) > limit

    # -- chat --------------------------------------------------------------------------------------

    async def prepare_chat(self, principal: Principal, agent_id: str, message: str, request_id: str) -> PreparedChat:
        """Check the session and the message limits; build the windowed conversation."""
        async with self.db.session() as session:
            row = await self._owned(session, principal, agent_id)
            await self._check_open(session, row)
            plan = await self._plan(principal.tenant_id, row)
            tokens = message_tokens("user", message)
            if tokens > plan.budget:
                raise InvalidRequest(
                    f"The message ({tokens} tokens) does not fit the model's context window ({plan.budget} tokens "
                    "for the conversation).",
                    param="message",
                )
            # Last check before the call, so refused messages above take no place in the limits.
            await self.limiter.admit(request_id, row.agent_id, owner_of(principal))
            recent = await store.window_messages(session, row.id, plan.budget - tokens)
        messages = [*fit(recent, plan.budget - tokens), {"role": "user", "content": message}]
        extension = BastionExtension(
            prompt_id=row.prompt_id, version=row.prompt_version, variables=row.context if plan.has_template else None
        )
        return PreparedChat(
            row.id, row.agent_id, message, tokens, plan.model, {"model": plan.model, "messages": messages}, extension
        )

    async def bulk_target(
        self, principal: Principal, agent_id: str, *, check_expiry: bool = True
    ) -> tuple[AgentSession, PromptPlan]:
        """The caller's session for a bulk run, and its prompt plan (the token budget of one item).
        404 if it is not the caller's, 410 once ended; with ``check_expiry`` (on submission) 410 once
        expired too. Bulk items take no place in the message limits and touch no history."""
        async with self.db.session() as session:
            row = await self._owned(session, principal, agent_id)
            if check_expiry:
                await self._check_open(session, row)
            elif row.status == ENDED:
                raise SessionGone("This session has ended; start a new one.", code="session_ended")
            return row, await self._plan(principal.tenant_id, row)

    async def record(self, chat: PreparedChat, reply: str, interaction_id: str) -> None:
        """Store a finished exchange: the user's message and the assistant's reply."""
        pairs = [
            ("user", chat.message, chat.message_tokens),
            ("assistant", reply, message_tokens("assistant", reply)),
        ]
        async with self.db.transaction() as session:
            await store.append_exchange(session, chat.session_pk, pairs, interaction_id, self.clock())

    # -- helpers -----------------------------------------------------------------------------------

    async def _owned(self, session: Any, principal: Principal, agent_id: str) -> AgentSession:
        """The session if ``principal`` owns it; otherwise the same 404 as for an unknown id."""
        row = await store.find(session, agent_id)
        owner = owner_of(principal)
        if row is None or (row.tenant_id, row.owner_kind, row.owner_id) != (owner.tenant_id, owner.kind, owner.id):
            raise NotFound("No session with this agent_id.", param="agent_id")
        return row

    async def _check_open(self, session: Any, row: AgentSession) -> None:
        """410 unless the session is active and fresh; a stale one is marked expired on the way."""
        if row.status == ENDED:
            raise SessionGone("This session has ended; start a new one.", code="session_ended")
        now = self.clock()
        if row.status != ACTIVE or self._is_stale(row, now):
            if row.status == ACTIVE:
                await store.mark(session, row.id, EXPIRED, now)
                await session.commit()
            raise SessionGone(self._expiry_reason(row, now))

    def _is_stale(self, row: AgentSession, now: datetime) -> bool:
        return row.expires_at <= now or row.last_activity_at <= now - timedelta(seconds=self.settings.idle_timeout_s)

    def _expiry_reason(self, row: AgentSession, now: datetime) -> str:
        if row.expires_at <= now:
            hours = self.settings.max_life_s / 3600
            return f"This session has expired: sessions last at most {hours:g} hours. Start a new one."
        minutes = self.settings.idle_timeout_s / 60
        return f"This session has expired after {minutes:g} minutes without a message. Start a new one."

    async def _resolve(
        self, tenant_id: str, prompt_id: str, *, label: str | None = None, version: int | None = None
    ) -> tuple[ResolvedPrompt, str | None]:
        try:
            return await self.vault.resolve(tenant_id, prompt_id, label=label, version=version)
        except NotFound as exc:
            exc.param = "prompt_id"
            raise

    async def _plan(self, tenant_id: str, row: AgentSession) -> PromptPlan:
        key = (tenant_id, row.prompt_id, row.prompt_version, row.model)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        resolved, _ = await self._resolve(tenant_id, row.prompt_id, version=row.prompt_version)
        model = row.model or resolved.model or ""
        group = self.router.groups.get(model)
        template = resolved.secret.compiled_template()
        system_tokens = count_text(resolved.secret.system)
        if template is not None:  # the rendered template is sent as a last user message every turn
            system_tokens += message_tokens("user", render(template, check_variables(row.context)))
        params = resolved.params
        answer = params.get("max_tokens") or params.get("max_completion_tokens")
        budget = window_budget(
            self.settings.history_window_tokens,
            group.context_length if group is not None else None,
            system_tokens,
            answer if isinstance(answer, int) else None,
        )
        # A session names its model as "prompt:<id>" so the prompt stage applies the version's model.
        plan = PromptPlan(row.model or f"prompt:{row.prompt_id}", budget, template is not None)
        if len(self._plans) >= _PLAN_CACHE_MAX:
            self._plans.clear()
        self._plans[key] = plan
        return plan
