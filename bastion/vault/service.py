"""The prompt vault: prompts with immutable, encrypted versions and movable labels.

One ``VaultService`` per process (``gateway.services["vault"]``), used by the prompt stage, the
admin API, the CLI and (later) agent sessions. Every operation is scoped to a tenant: another
tenant's prompt is indistinguishable from one that does not exist.

Caching (``resolve``): a decrypted version is kept in this process's memory for
``vault.cache_ttl_s`` (at most 300 s), keyed by prompt and version; versions are immutable, so the
only staleness is how long plaintext lingers. What a prompt's labels point at, and whether it is
archived, is cached for ``LABEL_TTL_S`` (or less if the cache TTL is lower): a label move or an
archive made by this process applies at once, one made by another process within that time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.config.settings import Settings
from bastion.errors import Conflict, InvalidRequest
from bastion.store.db import Database
from bastion.store.models import utcnow
from bastion.store.models_vault import Prompt, PromptLabel, PromptVersion
from bastion.vault import store
from bastion.vault.cache import TTLCache
from bastion.vault.crypto import DecryptionFailed, Keyring
from bastion.vault.keysource import KeyringSource
from bastion.vault.model import (
    PRODUCTION,
    KeyringMismatch,
    PromptInfo,
    PromptNotFound,
    ResolvedPrompt,
    VaultUnavailable,
    VersionInfo,
    VersionSpec,
    check_label,
    check_prompt_id,
)

log = structlog.get_logger("bastion.vault")

SERVICE = "vault"
#: Longest time a label move or archive made by another process takes to be seen here.
LABEL_TTL_S = 5.0
MISMATCH_HINT = "set BASTION_MASTER_KEY or vault.key_file to that key"


@dataclass(frozen=True, slots=True)
class _Head:
    """What a prompt id currently means: its row, labels and state (short-lived cache entry)."""

    pk: str
    archived: bool
    labels: dict[str, int]
    latest: int


class VaultService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        keyring: Keyring | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.settings = settings
        self.keys = KeyringSource(settings, keyring)
        ttl = settings.vault.cache_ttl_s
        self._versions: TTLCache[ResolvedPrompt] = TTLCache(ttl, clock=clock)
        self._heads: TTLCache[_Head | None] = TTLCache(min(ttl, LABEL_TTL_S), clock=clock)
        self._verified = False

    # -- start-up ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the master keys and check them against the stored versions (refuses to start on a
        mismatch, rather than serving requests that can only fail)."""
        self.keys.load()
        await self.verify_keyring()

    async def key_usage(self) -> dict[str, int]:
        """How many versions each master key id wraps."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(PromptVersion.key_id, func.count()).group_by(PromptVersion.key_id).order_by(PromptVersion.key_id)
            )
            return {key_id: int(count) for key_id, count in rows.all()}

    async def verify_keyring(self) -> None:
        """For each key id in use: it must be known, and one of its data keys must unwrap."""
        async with self.db.session() as session:
            samples = (
                await session.execute(
                    select(PromptVersion.key_id, func.min(PromptVersion.id)).group_by(PromptVersion.key_id)
                )
            ).all()
            for key_id, version_pk in samples:
                if key_id not in self.keys.keyring and not self.keys.reload_for(key_id):
                    raise KeyringMismatch(self._mismatch(key_id))
                row = await session.get(PromptVersion, version_pk)
                prompt = await session.get(Prompt, row.prompt_pk) if row is not None else None
                if row is None or prompt is None:
                    continue  # deleted meanwhile
                try:
                    store.unwrap_data_key(self.keys, row, prompt.tenant_id)
                except DecryptionFailed:
                    raise KeyringMismatch(self._mismatch(key_id) + " (its data keys do not unwrap)") from None
        self._verified = True

    def _mismatch(self, key_id: str) -> str:
        known = ", ".join(self.keys.keyring.key_ids)
        return (
            f"the master key does not match this vault: versions are wrapped with key id {key_id}; "
            f"{MISMATCH_HINT} (this process has key id {known})"
        )

    # -- writes --------------------------------------------------------------------------------

    async def create_prompt(
        self,
        tenant_id: str,
        prompt_id: str,
        spec: VersionSpec,
        *,
        actor: str,
        name: str | None = None,
        description: str | None = None,
        labels: list[str] | None = None,
    ) -> PromptInfo:
        """A new prompt with version 1 labelled ``production`` (and any other ``labels``)."""
        check_prompt_id(prompt_id)
        spec = spec.checked()
        wanted = [PRODUCTION, *(check_label(label, "labels") for label in labels or [])]
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise InvalidRequest("name must be a string of at most 200 characters.", param="name")
        if description is not None and not isinstance(description, str):
            raise InvalidRequest("description must be a string.", param="description")
        prompt = Prompt(
            tenant_id=tenant_id, prompt_id=prompt_id, name=name or prompt_id, description=description, created_by=actor
        )
        try:
            async with self.db.transaction() as session:
                session.add(prompt)
                await session.flush()
                self._add_version(session, prompt, 1, spec, actor)
                for label in dict.fromkeys(wanted):
                    session.add(PromptLabel(prompt_pk=prompt.id, label=label, version=1, updated_by=actor))
                store.audit(session, tenant_id, actor, "prompt.create", f"prompt:{prompt_id}", version=1)
        except IntegrityError:
            raise Conflict(f"A prompt with id {prompt_id!r} already exists.", param="prompt_id") from None
        self._heads.discard((tenant_id, prompt_id))
        return await self.get_prompt(tenant_id, prompt_id, include_archived=True)

    def _add_version(self, session: Any, prompt: Prompt, version: int, spec: VersionSpec, actor: str) -> PromptVersion:
        sealed = store.seal(self.keys, prompt.tenant_id, prompt.id, version, spec)
        row = PromptVersion(
            prompt_pk=prompt.id,
            version=version,
            key_id=sealed.key_id,
            wrapped_key=sealed.wrapped_key,
            system_ciphertext=sealed.system_ciphertext,
            template_ciphertext=sealed.template_ciphertext,
            model=spec.model,
            params=spec.params,
            meta=spec.metadata,
            created_by=actor,
        )
        session.add(row)
        return row

    async def new_version(
        self, tenant_id: str, prompt_id: str, spec: VersionSpec, *, actor: str, labels: list[str] | None = None
    ) -> VersionInfo:
        """Append an immutable version; labels named in ``labels`` move to it."""
        spec = spec.checked()
        moves = list(dict.fromkeys(check_label(label, "labels") for label in labels or []))
        for attempt in range(3):
            try:
                async with self.db.transaction() as session:
                    prompt = await self._live_prompt(session, tenant_id, prompt_id)
                    number = await store.latest_version(session, prompt.id) + 1
                    self._add_version(session, prompt, number, spec, actor)
                    await session.flush()
                    for label in moves:
                        before = await store.set_label(session, prompt.id, label, number, actor)
                        store.audit(
                            session, tenant_id, actor, "prompt.label", f"prompt:{prompt_id}", label=label,
                            version=number, previous=before,
                        )  # fmt: skip
                    store.audit(session, tenant_id, actor, "prompt.version", f"prompt:{prompt_id}", version=number)
                break
            except IntegrityError:
                if attempt == 2:  # two writers raced for the same number three times in a row
                    raise Conflict("Another version was created at the same time; retry.") from None
        self._heads.discard((tenant_id, prompt_id))
        return next(v for v in await self.list_versions(tenant_id, prompt_id) if v.version == number)

    async def move_label(self, tenant_id: str, prompt_id: str, label: str, version: int, *, actor: str) -> int | None:
        """Point a label at an existing version; returns where it pointed before."""
        check_label(label)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidRequest("version must be a positive integer.", param="version")
        async with self.db.transaction() as session:
            prompt = await self._live_prompt(session, tenant_id, prompt_id)
            if await store.find_version(session, prompt.id, version) is None:
                raise PromptNotFound(f"The prompt {prompt_id!r} has no version {version}.", param="version")
            before = await store.set_label(session, prompt.id, label, version, actor)
            store.audit(
                session, tenant_id, actor, "prompt.label", f"prompt:{prompt_id}", label=label, version=version,
                previous=before,
            )  # fmt: skip
        self._heads.discard((tenant_id, prompt_id))
        return before

    async def clone(
        self, tenant_id: str, prompt_id: str, new_prompt_id: str, *, actor: str, name: str | None = None
    ) -> PromptInfo:
        """Copy every version and label to a new prompt id. Each version is decrypted and sealed
        again under a fresh data key, since its associated data names the new prompt."""
        check_prompt_id(new_prompt_id, "new_prompt_id")
        try:
            async with self.db.transaction() as session:
                source = await self._live_prompt(session, tenant_id, prompt_id)
                target = Prompt(
                    tenant_id=tenant_id,
                    prompt_id=new_prompt_id,
                    name=name or new_prompt_id,
                    description=source.description,
                    created_by=actor,
                )
                session.add(target)
                await session.flush()
                rows = (
                    await session.execute(
                        select(PromptVersion)
                        .where(PromptVersion.prompt_pk == source.id)
                        .order_by(PromptVersion.version)
                    )
                ).scalars()
                for row in rows.all():
                    secret = self._open(row, tenant_id, prompt_id)
                    spec = VersionSpec(secret.system, secret.template, row.model, dict(row.params), dict(row.meta))
                    self._add_version(session, target, row.version, spec, actor)
                for label, version in (await store.labels_of(session, source.id)).items():
                    session.add(PromptLabel(prompt_pk=target.id, label=label, version=version, updated_by=actor))
                store.audit(session, tenant_id, actor, "prompt.clone", f"prompt:{new_prompt_id}", source=prompt_id)
        except IntegrityError:
            raise Conflict(f"A prompt with id {new_prompt_id!r} already exists.", param="new_prompt_id") from None
        self._heads.discard((tenant_id, new_prompt_id))
        return await self.get_prompt(tenant_id, new_prompt_id)

    async def archive(self, tenant_id: str, prompt_id: str, *, actor: str) -> PromptInfo:
        """Retire a prompt: clients get 404 for it; its versions stay for the record."""
        async with self.db.transaction() as session:
            prompt = await self._live_prompt(session, tenant_id, prompt_id)
            prompt.archived_at = utcnow()
            store.audit(session, tenant_id, actor, "prompt.archive", f"prompt:{prompt_id}")
        self._heads.discard((tenant_id, prompt_id))
        return await self.get_prompt(tenant_id, prompt_id, include_archived=True)

    # -- metadata reads (never text) -----------------------------------------------------------

    async def list_prompts(self, tenant_id: str, *, include_archived: bool = False) -> list[PromptInfo]:
        async with self.db.session() as session:
            query = select(Prompt).where(Prompt.tenant_id == tenant_id).order_by(Prompt.prompt_id)
            if not include_archived:
                query = query.where(Prompt.archived_at.is_(None))
            prompts = (await session.execute(query)).scalars().all()
            return [await self._info(session, prompt) for prompt in prompts]

    async def get_prompt(self, tenant_id: str, prompt_id: str, *, include_archived: bool = True) -> PromptInfo:
        async with self.db.session() as session:
            prompt = await store.find_prompt(session, tenant_id, prompt_id)
            if prompt is None or (prompt.archived_at is not None and not include_archived):
                raise self._not_found(prompt_id)
            return await self._info(session, prompt)

    async def list_versions(self, tenant_id: str, prompt_id: str) -> list[VersionInfo]:
        async with self.db.session() as session:
            prompt = await store.find_prompt(session, tenant_id, prompt_id)
            if prompt is None:
                raise self._not_found(prompt_id)
            labels = await store.labels_of(session, prompt.id)
            rows = (
                await session.execute(
                    select(PromptVersion).where(PromptVersion.prompt_pk == prompt.id).order_by(PromptVersion.version)
                )
            ).scalars()
            return [
                VersionInfo(
                    prompt_id=prompt_id,
                    version=row.version,
                    key_id=row.key_id,
                    model=row.model,
                    params=dict(row.params or {}),
                    metadata=dict(row.meta or {}),
                    has_template=row.template_ciphertext is not None,
                    labels=sorted(label for label, version in labels.items() if version == row.version),
                    created_at=row.created_at,
                    created_by=row.created_by,
                )
                for row in rows.all()
            ]

    async def _info(self, session: Any, prompt: Prompt) -> PromptInfo:
        return PromptInfo(
            prompt_id=prompt.prompt_id,
            name=prompt.name,
            description=prompt.description,
            labels=await store.labels_of(session, prompt.id),
            latest_version=await store.latest_version(session, prompt.id),
            archived_at=prompt.archived_at,
            created_at=prompt.created_at,
            created_by=prompt.created_by,
        )

    # -- plaintext (admins only, audited) ------------------------------------------------------

    async def read_plaintext(self, tenant_id: str, prompt_id: str, version: int, *, actor: str) -> dict[str, Any]:
        """A version's text for an admin. The audit row commits before the text is returned."""
        async with self.db.transaction() as session:
            prompt = await store.find_prompt(session, tenant_id, prompt_id)
            if prompt is None:
                raise self._not_found(prompt_id)
            row = await store.find_version(session, prompt.id, version)
            if row is None:
                raise PromptNotFound(f"The prompt {prompt_id!r} has no version {version}.", param="version")
            secret = self._open(row, tenant_id, prompt_id)
            store.audit(
                session, tenant_id, actor, "prompt.read_plaintext", f"prompt:{prompt_id}", version=version,
                key_id=row.key_id,
            )  # fmt: skip
        log.info("prompt_plaintext_read", tenant_id=tenant_id, prompt_id=prompt_id, version=version, actor=actor)
        return {
            "prompt_id": prompt_id,
            "version": version,
            "system_prompt": secret.system,
            "user_template": secret.template,
        }

    # -- the request path ----------------------------------------------------------------------

    async def resolve(
        self, tenant_id: str, prompt_id: str, *, label: str | None = None, version: int | None = None
    ) -> tuple[ResolvedPrompt, str | None]:
        """The decrypted version a client asked for: by number, by label, else ``production``.
        Returns it with the label used (None when asked by number)."""
        head = await self._head(tenant_id, prompt_id)
        if head is None or head.archived:
            raise self._not_found(prompt_id)
        if version is None:
            label = label or PRODUCTION
            version = head.labels.get(label)
            if version is None:
                raise PromptNotFound(f"The prompt {prompt_id!r} has no label {label!r}.", param="model")
        elif version > head.latest or version < 1:
            if version > head.latest:  # perhaps created by another process since the head was cached
                self._heads.discard((tenant_id, prompt_id))
                head = await self._head(tenant_id, prompt_id)
            if head is None or head.archived or not 1 <= version <= head.latest:
                raise PromptNotFound(f"The prompt {prompt_id!r} has no version {version}.", param="model")
        found, resolved = self._versions.get((head.pk, version))
        if found and resolved is not None:
            return resolved, label
        resolved = await self._load_version(tenant_id, prompt_id, head.pk, version)
        self._versions.put((head.pk, version), resolved)
        return resolved, label

    async def _head(self, tenant_id: str, prompt_id: str) -> _Head | None:
        key = (tenant_id, prompt_id)
        found, head = self._heads.get(key)
        if found:
            return head
        async with self._reading() as session:
            prompt = await store.find_prompt(session, tenant_id, prompt_id)
            if prompt is None:
                head = None
            else:
                head = _Head(
                    pk=prompt.id,
                    archived=prompt.archived_at is not None,
                    labels=await store.labels_of(session, prompt.id),
                    latest=await store.latest_version(session, prompt.id),
                )
        self._heads.put(key, head)  # a miss is cached too, briefly: unknown ids cost no query each
        return head

    async def _load_version(self, tenant_id: str, prompt_id: str, prompt_pk: str, version: int) -> ResolvedPrompt:
        if not self._verified:
            try:
                async with self._reading():
                    await self.verify_keyring()  # deferred from start-up (database unreachable then)
            except KeyringMismatch as exc:
                log.error("vault_key_mismatch", error=str(exc))
                raise VaultUnavailable("The vault's master key does not match its prompts.") from None
        async with self._reading() as session:
            row = await store.find_version(session, prompt_pk, version)
        if row is None:
            raise PromptNotFound(f"The prompt {prompt_id!r} has no version {version}.", param="model")
        secret = self._open(row, tenant_id, prompt_id)
        return ResolvedPrompt(
            tenant_id=tenant_id,
            prompt_id=prompt_id,
            prompt_pk=prompt_pk,
            version=version,
            model=row.model,
            params=dict(row.params or {}),
            metadata=dict(row.meta or {}),
            secret=secret,
        )

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        """A read session on the request path: a database failure is a 503, not a 500."""
        try:
            async with self.db.session() as session:
                yield session
        except (SQLAlchemyError, OSError) as exc:
            log.error("vault_store_unavailable", error=type(exc).__name__)
            raise VaultUnavailable("The prompt vault is unavailable; try again shortly.") from None

    def _open(self, row: PromptVersion, tenant_id: str, prompt_id: str) -> Any:
        try:
            return store.open_version(self.keys, row, tenant_id)
        except DecryptionFailed as exc:
            # Loud for the operator; the client learns only that the vault cannot serve it.
            log.error("vault_decrypt_failed", detail=store.describe_failure(exc, prompt_id, row.version))
            raise VaultUnavailable(
                "The prompt could not be decrypted; the vault's master key needs attention."
            ) from None

    async def _live_prompt(self, session: Any, tenant_id: str, prompt_id: str) -> Prompt:
        prompt = await store.find_prompt(session, tenant_id, prompt_id)
        if prompt is None or prompt.archived_at is not None:
            raise self._not_found(prompt_id)
        return prompt

    @staticmethod
    def _not_found(prompt_id: str) -> PromptNotFound:
        # The same answer for "no such prompt" and "another tenant's prompt": nothing to probe.
        return PromptNotFound(f"The prompt {prompt_id!r} does not exist.", param="prompt_id")

    def invalidate(self) -> None:
        """Forget every cached decryption and lookup (tests, and after a rotation in-process)."""
        self._versions.clear()
        self._heads.clear()
