"""JWT bearer tokens for users (HS256 and RS256), as an alternative to API keys.

The token's signature, expiry (``exp`` is required), issuer and audience are checked with the
configured leeway. The algorithm is taken from an allow-list, never from the token alone: ``none``
is refused, and each algorithm is verified only with its own kind of key (HS256 with the shared
secret, RS256 with the public key), which rules out the classic RS256-to-HS256 confusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jwt
from jwt.types import Options

from bastion.config.errors import ConfigError
from bastion.config.secret_refs import resolve_secret
from bastion.config.settings import JWTSettings
from bastion.errors import AuthenticationFailed


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What the gateway takes from a verified token."""

    user: str
    tenant: str
    #: ``exp`` as a Unix time.
    expires_at: float


def looks_like_jwt(credential: str) -> bool:
    """Three dot-separated base64url segments, the first starting like a JSON header (``eyJ``)."""
    return credential.startswith("eyJ") and credential.count(".") == 2


def _load_public_key(value: str | None) -> str | None:
    value = resolve_secret(value, "auth.jwt.public_key")
    if value is None or value.lstrip().startswith("-----BEGIN"):
        return value
    try:
        return Path(value).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"auth.jwt.public_key: cannot read {value} ({exc.strerror or exc})") from exc


_REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "The bearer token has expired."),
    (jwt.ImmatureSignatureError, "The bearer token is not valid yet."),
    (jwt.InvalidAudienceError, "The bearer token's audience is not accepted."),
    (jwt.InvalidIssuerError, "The bearer token's issuer is not accepted."),
    (jwt.MissingRequiredClaimError, "The bearer token lacks a required claim."),
    (jwt.InvalidSignatureError, "The bearer token's signature is invalid."),
    (jwt.InvalidAlgorithmError, "The bearer token's algorithm is not accepted."),
]


class TokenVerifier:
    def __init__(self, settings: JWTSettings) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self._keys: dict[str, str] = {}
        if not self.enabled:
            return
        secret = resolve_secret(settings.secret, "auth.jwt.secret")
        public_key = _load_public_key(settings.public_key)
        if "HS256" in settings.algorithms and secret:
            self._keys["HS256"] = secret
        if "RS256" in settings.algorithms and public_key:
            self._keys["RS256"] = public_key
        if not self._keys:
            raise ConfigError("auth.jwt is enabled but neither a secret (HS256) nor a public_key (RS256) is set")
        required = ["exp"]
        if settings.issuer:
            required.append("iss")
        if settings.audience:
            required.append("aud")
        self._options: Options = {"require": required}

    def verify(self, token: str) -> TokenClaims:
        """Verify ``token`` and return its claims; raises ``AuthenticationFailed`` with a clear reason."""
        if not self.enabled:
            raise AuthenticationFailed("JWT bearer tokens are not enabled on this gateway; use an API key.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationFailed("The bearer token is malformed.") from None
        algorithm = header.get("alg")
        key = self._keys.get(algorithm) if isinstance(algorithm, str) else None
        if key is None or not isinstance(algorithm, str):
            raise AuthenticationFailed(f"The bearer token's algorithm {algorithm!r} is not accepted.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                leeway=self.settings.leeway_s,
                options=self._options,
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(_reason(exc)) from None
        except (ValueError, TypeError):  # a key or payload the crypto layer cannot parse
            raise AuthenticationFailed("The bearer token is malformed.") from None
        user = claims.get(self.settings.user_claim)
        tenant = claims.get(self.settings.tenant_claim)
        if not isinstance(user, str) or not user:
            raise AuthenticationFailed(f"The bearer token lacks the {self.settings.user_claim!r} claim.")
        if not isinstance(tenant, str) or not tenant:
            raise AuthenticationFailed(f"The bearer token lacks the {self.settings.tenant_claim!r} claim.")
        expires_at = claims.get("exp")
        if not isinstance(expires_at, int | float):
            raise AuthenticationFailed("The bearer token's expiry is malformed.")
        return TokenClaims(user=user, tenant=tenant, expires_at=float(expires_at) + self.settings.leeway_s)


def _reason(exc: Exception) -> str:
    for kind, message in _REASONS:
        if isinstance(exc, kind):
            return message
    return "The bearer token is malformed."
