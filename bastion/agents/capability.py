"""Capability tokens: every arm call carries a short-lived signed JWT naming what it may do.

A token's claims: the audience (the arm), the run, step and attempt it was minted for, ``exp``
(never past the run's deadline), ``jti``, a maximum number of uses, and capabilities in the shape
``{"action": "search", "resource": "collection", "constraints": {"allow": ["docs"]}}``. The arm
side verifies the token before it does anything: signature (HS256 with the gateway's secret),
audience, expiry, the run not cancelled, the use counter, and that the action and each resource it
is about to touch are granted. Every refusal is logged (``capability_denied``) and raised as
:class:`CapabilityDenied`.

The ``jti`` is derived from run id, step and the attempt's number in the run, so a run replayed with the same inputs has
the same trace (the trace records the ``jti`` of each attempt)."""

from __future__ import annotations

import hashlib
import hmac
import os
import posixpath
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
import structlog

log = structlog.get_logger("bastion.agents.capability")

ALGORITHM = "HS256"
ISSUER = "bastion-agents"
#: A path constraint entry covers itself and everything under it.
ANY = "*"


class CapabilityDenied(Exception):
    """The token does not allow this call; nothing was done."""

    def __init__(self, reason: str, jti: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.jti = jti


@dataclass(frozen=True, slots=True)
class Capability:
    """One grant: ``action`` on ``resource`` (a kind: collection, executable, path), limited to the
    values in ``allow`` (``*`` for any; paths cover their subtrees)."""

    action: str
    resource: str
    allow: tuple[str, ...] = ()

    def claim(self) -> dict[str, Any]:
        return {"action": self.action, "resource": self.resource, "constraints": {"allow": list(self.allow)}}

    @classmethod
    def from_claim(cls, data: Mapping[str, Any]) -> Capability:
        constraints = data.get("constraints") or {}
        return cls(str(data["action"]), str(data["resource"]), tuple(str(v) for v in constraints.get("allow", [])))


@dataclass(frozen=True, slots=True)
class Grant:
    """What an arm may do in one step attempt."""

    audience: str
    capabilities: tuple[Capability, ...] = ()
    max_uses: int = 1


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    jti: str
    run_id: str
    step_id: str
    attempt: int
    audience: str
    capabilities: tuple[Capability, ...]


def derive_jti(run_id: str, step_id: str, iteration: int) -> str:
    """The token id of one step attempt (``iteration``: its number in the run, unique across loop
    rounds): deterministic, so replays keep their trace hash."""
    raw = f"{run_id}\x00{step_id}\x00{iteration}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def derive_secret(root: str | bytes | None) -> bytes:
    """The signing secret of capability tokens: derived from a configured secret (``root``, e.g.
    the vault master key) so every process of a deployment agrees, else random for this process
    (tokens are minted and verified where the run executes)."""
    if root is None or root == "" or root == b"":
        return os.urandom(32)
    key = root.encode() if isinstance(root, str) else root
    return hmac.new(key, b"bastion agents capability tokens v1", hashlib.sha256).digest()


class UseStore(Protocol):
    """Use counters and revoked runs (in-process here; a shared store can stand in)."""

    def use(self, jti: str, expires_at: float, run_id: str) -> int: ...
    def restart_run(self, run_id: str) -> None: ...
    def revoke_run(self, run_id: str) -> None: ...
    def revoked(self, run_id: str) -> bool: ...


@dataclass
class MemoryUseStore:
    """Counters by ``jti`` (dropped once expired) and the set of revoked runs."""

    clock: Callable[[], float] = time.time
    _uses: dict[str, tuple[int, float, str]] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)

    def use(self, jti: str, expires_at: float, run_id: str) -> int:
        now = self.clock()
        if len(self._uses) > 10_000:
            self._uses = {k: v for k, v in self._uses.items() if v[1] > now}
        count = self._uses.get(jti, (0, expires_at, run_id))[0] + 1
        self._uses[jti] = (count, expires_at, run_id)
        return count

    def restart_run(self, run_id: str) -> None:
        """A new attempt of the run (a job retried): it mints its tokens, same ids, anew."""
        self._uses = {k: v for k, v in self._uses.items() if v[2] != run_id}

    def revoke_run(self, run_id: str) -> None:
        self._revoked.add(run_id)

    def revoked(self, run_id: str) -> bool:
        return run_id in self._revoked


class CapabilityIssuer:
    """Mints tokens for step attempts; ``ttl_s`` bounds each token, the run's deadline too."""

    def __init__(self, secret: bytes, *, ttl_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self.clock = clock

    def mint(
        self,
        grant: Grant,
        *,
        run_id: str,
        step_id: str,
        attempt: int,
        iteration: int | None = None,
        deadline: float | None = None,
    ) -> str:
        now = self.clock()
        exp = now + self.ttl_s if deadline is None else min(now + self.ttl_s, deadline)
        claims = {
            "iss": ISSUER,
            "sub": run_id,
            "aud": grant.audience,
            "iat": int(now),
            "exp": exp,
            "jti": derive_jti(run_id, step_id, attempt if iteration is None else iteration),
            "step": step_id,
            "attempt": attempt,
            "max_uses": grant.max_uses,
            "capabilities": [c.claim() for c in grant.capabilities],
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)


class CapabilityVerifier:
    """Checks a token for one call; every refusal is logged and raised as :class:`CapabilityDenied`."""

    def __init__(self, secret: bytes, uses: UseStore, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.uses = uses
        self.clock = clock

    def revoke_run(self, run_id: str) -> None:
        """Every token of the run is refused from now on (the run was cancelled)."""
        self.uses.revoke_run(run_id)

    def verify(
        self, token: str, *, audience: str, action: str, resource: str | None = None, values: Iterable[str] = ()
    ) -> VerifiedToken:
        """The token's claims if it allows ``action`` on each of ``values`` (of kind ``resource``);
        one use is counted."""
        jti: str | None = None
        try:
            claims = self._decode(token, audience)
            jti = str(claims["jti"])
            verified = VerifiedToken(
                jti=jti,
                run_id=str(claims["sub"]),
                step_id=str(claims["step"]),
                attempt=int(claims["attempt"]),
                audience=audience,
                capabilities=tuple(Capability.from_claim(c) for c in claims.get("capabilities", [])),
            )
            if self.uses.revoked(verified.run_id):
                raise CapabilityDenied("the run's tokens are revoked (the run was cancelled)", jti)
            _check_grant(verified, action, resource, list(values))
            count = self.uses.use(jti, float(claims["exp"]), verified.run_id)
            if count > int(claims["max_uses"]):
                raise CapabilityDenied(f"token used {count} times, at most {claims['max_uses']} allowed", jti)
            return verified
        except CapabilityDenied as exc:
            exc.jti = exc.jti or jti
            log.warning("capability_denied", jti=exc.jti, audience=audience, action=action, reason=exc.reason)
            raise

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                # PyJWT reads the wall clock; expiry is checked below on the injectable clock.
                options={"require": ["exp", "jti", "sub", "aud", "iss"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidAudienceError:
            raise CapabilityDenied(f"token is not for {audience}") from None
        except jwt.InvalidSignatureError:
            raise CapabilityDenied("bad token signature") from None
        except jwt.PyJWTError as exc:
            raise CapabilityDenied(f"invalid token: {exc}") from None
        if float(claims["exp"]) <= self.clock():
            raise CapabilityDenied("token expired", str(claims["jti"]))
        if not all(k in claims for k in ("step", "attempt", "max_uses")):
            raise CapabilityDenied("token lacks step claims", str(claims["jti"]))
        return claims


def _check_grant(token: VerifiedToken, action: str, resource: str | None, values: list[str]) -> None:
    granted = [c for c in token.capabilities if c.action == action]
    if not granted:
        raise CapabilityDenied(f"action {action!r} is not granted", token.jti)
    if resource is None:
        return
    allowed = [a for c in granted if c.resource == resource for a in c.allow]
    for value in values:
        if not any(_covers(entry, value, resource) for entry in allowed):
            raise CapabilityDenied(f"{resource} {value!r} is outside the grant", token.jti)


def _covers(entry: str, value: str, resource: str) -> bool:
    if entry == ANY:
        return True
    if resource != "path":
        return entry == value
    # A path is granted when it normalises to the entry or somewhere under it ("a/../../x" is not).
    norm = posixpath.normpath(value)
    if entry == ".":  # the run's working directory: any relative path that stays inside it
        return not norm.startswith("/") and norm != ".." and not norm.startswith("../")
    root = posixpath.normpath(entry)
    return norm == root or norm.startswith(root.rstrip("/") + "/")
