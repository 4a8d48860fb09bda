"""Resolve a request's credentials to a ``Principal``: the hot path of identity.

Per request, on a cache hit: read the auth epoch (a memory load, or one Redis GET when several
processes share Redis), hash the credential, one dict lookup, two clock reads. The database is
queried only on a miss, at most once per credential and epoch however many requests are waiting
for it (single flight), and the answer, refusals included, is cached for ``auth.cache_ttl_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
import time
from collections.abc import Mapping

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth.cache import CachedCredential, CredentialCache
from bastion.auth.epoch import UNKNOWN, FileEpoch, RedisEpoch, epoch_file
from bastion.auth.keys import KEY_PREFIX, hash_key, is_well_formed
from bastion.auth.lookup import (
    Resolution,
    admin_key_exists,
    ensure_tenant,
    resolve_key,
    resolve_key_id,
    resolve_token_user,
    resolve_user_id,
)
from bastion.auth.metrics import CACHE_MISSES, REFUSED
from bastion.auth.principal import Identity, Principal, Role
from bastion.auth.tokens import TokenVerifier, looks_like_jwt
from bastion.config.secret_refs import resolve_secret
from bastion.config.settings import Settings
from bastion.errors import AuthenticationFailed, BastionError
from bastion.store.db import Database

log = structlog.get_logger("bastion.auth")

MISSING_CREDENTIALS = "Missing credentials: send your API key as `Authorization: Bearer <key>` or `x-api-key: <key>`."
MALFORMED_KEY = "Malformed API key: Bastion keys are `bst_` followed by 40 characters."
UNRECOGNISED = "Unrecognised credential: expected a Bastion API key (`bst_...`) or a JWT bearer token."
EXPIRED = {"api_key": "This API key has expired.", "jwt": "The bearer token has expired."}
BOOTSTRAP_HINT = (
    "No admin API key exists yet. Create the first one with:\n"
    "    bastion keys create --role admin --tenant <name> [--config <file>]\n"
    "The key is printed once: store it safely. There is no default password."
)


class AuthUnavailable(BastionError):
    """The identity store could not be reached on a cache miss."""

    status = 503
    error_type = "api_error"
    code = "auth_unavailable"


def _refuse(reason: str, message: str) -> AuthenticationFailed:
    REFUSED.labels(reason=reason).inc()
    # Tell HTTP clients how to authenticate (RFC 6750), in every dialect.
    return AuthenticationFailed(message, headers={"www-authenticate": 'Bearer realm="bastion"'})


def _parse_authorization(authorization: str) -> str:
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _refuse("scheme", "Unsupported Authorization scheme: send `Authorization: Bearer <key>`.")
    value = value.strip()
    if not value:
        raise _refuse("missing", "The Authorization header carries no credential after `Bearer`.")
    return value


def credential_from_headers(headers: Mapping[str, str]) -> str | None:
    """The presented credential (``Authorization: Bearer`` first, then ``x-api-key``), or None."""
    raw: list[tuple[bytes, bytes]] | None = getattr(headers, "raw", None)
    if raw is not None:
        # Starlette's Headers: one pass over the raw list is several times cheaper than two
        # ``get`` calls, each of which builds a list of every header.
        api_key: bytes | None = None
        for name, value in raw:
            if name == b"authorization":
                if value:
                    return _parse_authorization(value.decode("latin-1"))
            elif name == b"x-api-key" and api_key is None:
                api_key = value
        return (api_key.decode("latin-1").strip() or None) if api_key else None
    authorization = headers.get("authorization")
    if authorization:
        return _parse_authorization(authorization)
    x_api_key = headers.get("x-api-key")
    return (x_api_key.strip() or None) if x_api_key else None


def _accept(entry: CachedCredential) -> Principal:
    """The principal of a fresh cache entry, unless it is a refusal or the credential has expired."""
    principal = entry.principal
    if principal is None:
        raise _refuse("invalid", entry.refusal or UNRECOGNISED)
    if entry.expires_at is not None and time.time() >= entry.expires_at:
        raise _refuse("expired", EXPIRED.get(principal.method, EXPIRED["api_key"]))
    return principal


class Authenticator:
    """One per process (``Services.authenticator``), shared by the auth stage and the admin API."""

    def __init__(self, settings: Settings, db: Database) -> None:
        auth = settings.auth
        self.enabled = auth.enabled
        self.default_tenant = auth.default_tenant
        self.ttl_s = auth.cache_ttl_s
        self.db = db
        self.tokens = TokenVerifier(auth.jwt)
        self.cache = CredentialCache(auth.cache_size)
        # Refusals live apart so that a flood of bad keys cannot evict the good ones.
        self.refusals = CredentialCache(max(1000, auth.cache_size // 4))
        self.file_epoch = FileEpoch(epoch_file(settings))
        self.redis_epoch = RedisEpoch(settings.redis_url, auth.epoch_key) if settings.redis_url else None
        self._inflight: dict[tuple[bytes, object], asyncio.Task[Resolution]] = {}
        self._anonymous: Principal | None = None
        self._anonymous_epoch: object = UNKNOWN
        self._anonymous_lock = asyncio.Lock()
        self._master_digest = self._master_key_digest(settings)

    @staticmethod
    def _master_key_digest(settings: Settings) -> bytes | None:
        """SHA-256 of the configured master key (LiteLLM's ``general_settings.master_key``): the
        key itself is not kept by the authenticator, only compared by hash."""
        configured = settings.auth.master_key
        if configured is None:
            return None
        value = resolve_secret(configured.get_secret_value(), "auth.master_key")
        return hashlib.sha256(value.encode("utf-8")).digest() if value else None

    # -- start-up --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the anonymous tenant when auth is off, and say how to get a first admin key."""
        try:
            async with self.db.transaction() as session:
                if not self.enabled:
                    self._anonymous = await self._anonymous_principal(session)
                    self._anonymous_epoch = await self.current_epoch()
                has_admin = await admin_key_exists(session)
        except Exception as exc:  # an unmigrated or unreachable database must not stop the gateway
            log.warning("auth_start_deferred", error=f"{type(exc).__name__}: {exc}")
            return
        if not has_admin and self._master_digest is None:
            log.warning("no_admin_key", hint="bastion keys create --role admin --tenant <name>")
            print(f"bastion: {BOOTSTRAP_HINT}", file=sys.stderr, flush=True)

    async def stop(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.file_epoch.close()
        if self.redis_epoch is not None:
            await self.redis_epoch.aclose()

    async def _anonymous_principal(self, session: AsyncSession) -> Principal:
        tenant = await ensure_tenant(session, self.default_tenant)
        return Principal(
            tenant_id=tenant.id,
            tenant_name=tenant.name,
            role=Role.SERVICE,
            method="anonymous",
            tenant_settings=dict(tenant.settings or {}),
        )

    async def anonymous(self) -> Principal:
        """The principal of credential-less calls while auth is off (tenant ``auth.default_tenant``).

        Re-read when the epoch moves, so a change to that tenant's settings applies at once."""
        epoch = self.file_epoch.read() if self.redis_epoch is None else await self.redis_epoch.read()
        current = self._anonymous
        # While Redis is unreachable, keep the last one: it grants nothing a revocation could take.
        if current is not None and (self._anonymous_epoch == epoch or epoch is UNKNOWN):
            return current
        async with self._anonymous_lock:
            if self._anonymous is not None and self._anonymous_epoch == epoch:
                return self._anonymous
            try:
                async with self.db.transaction() as session:
                    principal = await self._anonymous_principal(session)
            except Exception as exc:
                log.warning("auth_default_tenant_failed", error=f"{type(exc).__name__}: {exc}")
                raise AuthUnavailable("The identity store is unavailable; try again shortly.") from None
            self._anonymous, self._anonymous_epoch = principal, epoch
            return principal

    # -- the hot path ----------------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        credential = credential_from_headers(headers)
        if credential is None:
            if self.enabled:
                raise _refuse("missing", MISSING_CREDENTIALS)
            return await self.anonymous()
        if not self.enabled and not self._is_bastion_credential(credential):
            # With auth off, clients often send a placeholder key ("sk-...", "test"): only
            # credentials that are Bastion's own are verified, the rest are not credentials here.
            return await self.anonymous()
        # The cache-hit path is inlined here rather than awaiting ``verify``: one coroutine less
        # per request is a measurable share of a few microseconds.
        digest = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()  # one clock read serves the file epoch's own check and freshness
        epoch = self.file_epoch.read(now) if self.redis_epoch is None else await self.redis_epoch.read()
        entry = self.cache.get(digest) or self.refusals.get(digest)
        if entry is not None and entry.epoch == epoch and now < entry.fresh_until:
            return _accept(entry)
        return await self._verify_miss(credential, digest, epoch)

    def _is_bastion_credential(self, credential: str) -> bool:
        return (
            credential.startswith(KEY_PREFIX)
            or (self.tokens.enabled and looks_like_jwt(credential))
            or self._is_master_key(credential)
        )

    def _is_master_key(self, credential: str) -> bool:
        if self._master_digest is None:
            return False
        digest = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()
        return hmac.compare_digest(digest, self._master_digest)

    async def current_epoch(self) -> object:
        if self.redis_epoch is None:
            return self.file_epoch.read()
        return await self.redis_epoch.read()

    async def verify(self, credential: str) -> Principal:
        """The principal ``credential`` stands for; raises ``AuthenticationFailed`` (401) if none."""
        digest = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()
        epoch = await self.current_epoch()
        entry = self.cache.get(digest) or self.refusals.get(digest)
        if entry is not None and entry.epoch == epoch and time.monotonic() < entry.fresh_until:
            return _accept(entry)
        return await self._verify_miss(credential, digest, epoch)

    async def _verify_miss(self, credential: str, digest: bytes, epoch: object) -> Principal:
        resolution = await self._resolve(credential, digest, epoch)
        if resolution.principal is None:
            raise _refuse("invalid", resolution.refusal or UNRECOGNISED)
        if resolution.expires_at is not None and time.time() >= resolution.expires_at:
            raise _refuse("expired", EXPIRED.get(resolution.principal.method, EXPIRED["api_key"]))
        return resolution.principal

    # -- the miss path ---------------------------------------------------------------------------

    async def _resolve(self, credential: str, digest: bytes, epoch: object) -> Resolution:
        if epoch is UNKNOWN:
            # The shared epoch is unreadable: answer from the database alone and cache nothing,
            # since a revocation made meanwhile could not have bumped the epoch.
            return await self._lookup(credential)
        flight = (digest, epoch)
        task = self._inflight.get(flight)
        if task is None:
            # A task of its own, so a waiting client that disconnects cannot cancel the lookup for
            # the others; keyed by epoch, so a request that saw a newer epoch never reuses an older
            # lookup.
            task = asyncio.get_running_loop().create_task(self._lookup_and_cache(credential, digest, epoch))
            self._inflight[flight] = task
            task.add_done_callback(lambda done: self._finished(flight, done))
        return await asyncio.shield(task)

    def _finished(self, flight: tuple[bytes, object], task: asyncio.Task[Resolution]) -> None:
        self._inflight.pop(flight, None)
        if not task.cancelled():
            task.exception()  # retrieved, so an error nobody awaited is not reported as lost

    async def _lookup_and_cache(self, credential: str, digest: bytes, epoch: object) -> Resolution:
        resolution = await self._lookup(credential)
        if resolution.refusal in (MALFORMED_KEY, UNRECOGNISED):
            return resolution  # cheap to recompute; caching garbage would only use memory
        entry = CachedCredential(
            principal=resolution.principal,
            refusal=resolution.refusal,
            epoch=epoch,
            fresh_until=time.monotonic() + self.ttl_s,
            expires_at=resolution.expires_at,
        )
        if resolution.principal is not None:
            self.refusals.discard(digest)
            self.cache.put(digest, entry)
        else:
            self.cache.discard(digest)
            self.refusals.put(digest, entry)
        return resolution

    async def _lookup(self, credential: str) -> Resolution:
        if self._is_master_key(credential):
            CACHE_MISSES.labels(method="master_key").inc()
            try:
                async with self.db.transaction() as session:
                    tenant = await ensure_tenant(session, self.default_tenant)
            except Exception as exc:
                raise self._unavailable(exc) from None
            return Resolution(principal=self._master_principal(tenant.id, tenant.name, dict(tenant.settings or {})))
        if credential.startswith(KEY_PREFIX):
            if not is_well_formed(credential):
                return Resolution(refusal=MALFORMED_KEY)
            CACHE_MISSES.labels(method="api_key").inc()
            try:
                async with self.db.session() as session:
                    return await resolve_key(session, hash_key(credential))
            except Exception as exc:
                raise self._unavailable(exc) from None
        if looks_like_jwt(credential):
            try:
                claims = self.tokens.verify(credential)
            except AuthenticationFailed as exc:
                return Resolution(refusal=exc.message)
            CACHE_MISSES.labels(method="jwt").inc()
            try:
                async with self.db.session() as session:
                    return await resolve_token_user(session, claims)
            except Exception as exc:
                raise self._unavailable(exc) from None
        return Resolution(refusal=UNRECOGNISED)

    async def principal_of(self, identity: Identity) -> Principal:
        """The principal a stored identity stands for now (a batch runs as its owner): a key
        revoked or a user disabled since is refused (401), as its next live request would be."""
        if identity.method == "anonymous":
            return await self.anonymous()
        try:
            async with self.db.session() as session:
                if identity.method == "master_key":
                    if self._master_digest is None:
                        raise _refuse("invalid", "The master key that owns this work is no longer configured.")
                    tenant = await ensure_tenant(session, self.default_tenant)
                    return self._master_principal(tenant.id, tenant.name, dict(tenant.settings or {}))
                if identity.key_id is not None:
                    resolution = await resolve_key_id(session, identity.tenant_id, identity.key_id)
                elif identity.user_id is not None:
                    resolution = await resolve_user_id(session, identity.tenant_id, identity.user_id)
                else:
                    resolution = Resolution(refusal=UNRECOGNISED)
        except BastionError:
            raise
        except Exception as exc:
            raise self._unavailable(exc) from None
        if resolution.principal is None:
            raise _refuse("invalid", resolution.refusal or UNRECOGNISED)
        return resolution.principal

    @staticmethod
    def _master_principal(tenant_id: str, tenant_name: str, settings: dict[str, object]) -> Principal:
        # LiteLLM's master key administers the whole proxy: a platform admin, in the default tenant.
        return Principal(
            tenant_id=tenant_id,
            tenant_name=tenant_name,
            role=Role.ADMIN,
            platform_admin=True,
            method="master_key",
            tenant_settings=settings,
        )

    @staticmethod
    def _unavailable(exc: Exception) -> AuthUnavailable:
        log.error("auth_store_unavailable", error=f"{type(exc).__name__}: {exc}")
        return AuthUnavailable("The identity store is unavailable; try again shortly.")

    # -- invalidation ----------------------------------------------------------------------------

    async def invalidate(self) -> None:
        """After a change to keys, users or tenants: drop this process's cache and bump the
        shared epoch so every other process drops its cache on its next request."""
        self.cache.clear()
        self.refusals.clear()
        self._anonymous = None
        self.file_epoch.bump()
        if self.redis_epoch is not None and not await self.redis_epoch.bump():
            log.error(
                "auth_epoch_bump_failed",
                effect="retried until Redis answers; processes that see Redis fail verify against the database",
            )
