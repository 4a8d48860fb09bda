"""JWT bearer tokens: HS256 and RS256 happy paths, and every way a token must be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.auth import manage
from bastion.auth.authenticator import Authenticator
from bastion.auth.principal import Role
from bastion.auth.schemas import UserUpdate
from bastion.errors import AuthenticationFailed
from bastion.store.db import Database
from tests.auth.support import bearer, seed_user, settings_for

SECRET = "test-hs256-secret-" + "s" * 64  # long enough for every HMAC size, so no key warnings
ISSUER = "https://idp.example.test"
AUDIENCE = "bastion"


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[bytes, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture
def authenticator(database: Database, database_url: str, tmp_path: Path, rsa_keys: tuple[bytes, str]) -> Authenticator:
    public_path = tmp_path / "jwt.pub"
    public_path.write_text(rsa_keys[1])
    jwt_settings = {
        "enabled": True,
        "secret": SECRET,
        "public_key": str(public_path),  # a file path; PEM text works too
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "leeway_s": 5,
    }
    return Authenticator(settings_for(database_url, tmp_path / "data", auth={"jwt": jwt_settings}), database)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "dev@acme.io", "tenant": "acme", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None) -> str:
    """A token built by hand: ``alg: none`` or an HMAC with an arbitrary key (algorithm confusion)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = _b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key else ""
    return f"{signing_input}.{signature}"


async def test_hs256_resolves_the_user(database: Database, authenticator: Authenticator) -> None:
    user = await seed_user(database, "acme", "dev@acme.io", Role.DEVELOPER)
    principal = await authenticator.authenticate(bearer(hs256()))
    assert principal.method == "jwt"
    assert principal.user_id == user.id and principal.key_id is None
    assert principal.tenant_name == "acme" and principal.role is Role.DEVELOPER
    # By id as well as by email; emails match case-insensitively.
    assert (await authenticator.authenticate(bearer(hs256(sub=user.id)))).user_id == user.id
    assert (await authenticator.authenticate(bearer(hs256(sub="DEV@acme.io")))).user_id == user.id


async def test_rs256_resolves_the_user(
    database: Database, authenticator: Authenticator, rsa_keys: tuple[bytes, str]
) -> None:
    user = await seed_user(database, "acme", "ops@acme.io", Role.VIEWER)
    token = jwt.encode(claims(sub="ops@acme.io"), rsa_keys[0], algorithm="RS256")
    principal = await authenticator.authenticate(bearer(token))
    assert principal.user_id == user.id and principal.role is Role.VIEWER


async def test_role_changes_and_disabling_apply_at_once(database: Database, authenticator: Authenticator) -> None:
    user = await seed_user(database, "acme", "dev@acme.io", Role.DEVELOPER)
    token = hs256()
    assert (await authenticator.authenticate(bearer(token))).role is Role.DEVELOPER
    async with database.transaction() as session:
        row = await manage.user_in_tenant(session, user.tenant_id, user.id)
        await manage.update_user(session, row, UserUpdate(role=Role.VIEWER), "test")
    await authenticator.invalidate()
    assert (await authenticator.authenticate(bearer(token))).role is Role.VIEWER
    async with database.transaction() as session:
        row = await manage.user_in_tenant(session, user.tenant_id, user.id)
        await manage.update_user(session, row, UserUpdate(disabled=True), "test")
    await authenticator.invalidate()
    with pytest.raises(AuthenticationFailed, match="disabled"):
        await authenticator.authenticate(bearer(token))


@pytest.fixture(scope="module")
def other_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _forged_tokens(rsa_keys: tuple[bytes, str], other_private: rsa.RSAPrivateKey) -> dict[str, tuple[str, str]]:
    """name -> (token, expected message fragment)."""
    now = int(time.time())
    return {
        "expired": (hs256(exp=now - 60, iat=now - 600), "expired"),
        "bad_signature": (jwt.encode(claims(), "another-secret-" + "x" * 64, algorithm="HS256"), "signature"),
        "wrong_audience": (hs256(aud="someone-else"), "audience"),
        "wrong_issuer": (hs256(iss="https://evil.example"), "issuer"),
        "no_exp": (hs256(exp=None), "claim"),
        "no_tenant": (hs256(tenant=None), "tenant"),
        "not_yet_valid": (hs256(nbf=now + 3600), "not valid yet"),
        "alg_none": (unsigned({"alg": "none", "typ": "JWT"}, claims()), "algorithm"),
        "alg_confusion": (unsigned({"alg": "HS256", "typ": "JWT"}, claims(), rsa_keys[1].encode()), "signature"),
        "rs256_other_key": (jwt.encode(claims(), other_private, algorithm="RS256"), "signature"),
        "hs512": (jwt.encode(claims(), SECRET, algorithm="HS512"), "algorithm"),
        "garbage": ("eyJhbGciOiJIUzI1NiJ9.not-base64!.sig", "malformed"),
        "truncated": ("eyJhbGciOiJIUzI1NiJ9.e30", "Unrecognised"),
        "bad_header": ("eyJub3QganNvbg.e30.c2ln", "malformed"),
    }


async def test_bad_tokens_are_refused(
    database: Database, authenticator: Authenticator, rsa_keys: tuple[bytes, str], other_private: rsa.RSAPrivateKey
) -> None:
    """Each forged or broken token is refused with 401 and a reason that names what is wrong."""
    await seed_user(database, "acme", "dev@acme.io")
    wrong: list[str] = []
    for name, (token, fragment) in _forged_tokens(rsa_keys, other_private).items():
        try:
            await authenticator.authenticate(bearer(token))
        except AuthenticationFailed as exc:
            if exc.status != 401 or fragment.lower() not in exc.message.lower():
                wrong.append(f"{name}: {exc.status} {exc.message!r}")
        else:
            wrong.append(f"{name}: accepted")
    assert not wrong, wrong


async def test_unknown_users_and_tenants_are_refused(database: Database, authenticator: Authenticator) -> None:
    await seed_user(database, "acme", "dev@acme.io")
    for token in (hs256(sub="nobody@acme.io"), hs256(tenant="nowhere"), hs256(sub="0" * 32)):
        with pytest.raises(AuthenticationFailed, match="names no user"):
            await authenticator.authenticate(bearer(token))


async def test_token_expiry_is_checked_on_cache_hits(
    database: Database, authenticator: Authenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_user(database, "acme", "dev@acme.io")
    expires = int(time.time()) + 60
    token = hs256(exp=expires)
    await authenticator.authenticate(bearer(token))
    later = expires + 5 + 1  # past exp and the 5 s leeway
    monkeypatch.setattr("bastion.auth.authenticator.time.time", lambda: later)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await authenticator.authenticate(bearer(token))


async def test_tokens_are_refused_when_jwt_is_off(database: Database, database_url: str, tmp_path: Path) -> None:
    authenticator = Authenticator(settings_for(database_url, tmp_path), database)
    await seed_user(database, "acme", "dev@acme.io")
    with pytest.raises(AuthenticationFailed, match="not enabled"):
        await authenticator.authenticate(bearer(hs256()))
