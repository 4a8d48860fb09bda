"""Capability tokens: a valid token passes once per granted use; expired, wrong audience, action not
granted, resource outside the grant, uses beyond the maximum, a bad signature and a cancelled run's
token are each refused and logged."""

from __future__ import annotations

import jwt
import pytest
from structlog.testing import capture_logs

from bastion.agents.capability import (
    Capability,
    CapabilityDenied,
    CapabilityIssuer,
    CapabilityVerifier,
    Grant,
    MemoryUseStore,
    derive_jti,
    derive_secret,
)

SECRET = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def setup(max_uses: int = 1) -> tuple[Clock, CapabilityIssuer, CapabilityVerifier, str]:
    clock = Clock()
    issuer = CapabilityIssuer(SECRET, ttl_s=60, clock=clock)
    verifier = CapabilityVerifier(SECRET, MemoryUseStore(clock), clock=clock)
    grant = Grant(
        "retriever",
        (Capability("search", "collection", ("docs", "faq")), Capability("write", "path", ("work",))),
        max_uses=max_uses,
    )
    return clock, issuer, verifier, issuer.mint(grant, run_id="run1", step_id="s", attempt=2)


def denied(verifier: CapabilityVerifier, token: str, **call: object) -> str:
    args: dict[str, object] = {"audience": "retriever", "action": "search", "resource": "collection"}
    args["values"] = ("docs",)
    args.update(call)
    with capture_logs() as logs, pytest.raises(CapabilityDenied) as info:
        verifier.verify(token, **args)  # type: ignore[arg-type]
    assert [entry["event"] for entry in logs] == ["capability_denied"]
    assert logs[0]["reason"] == info.value.reason
    return info.value.reason


def test_a_valid_token_carries_its_claims_and_a_derived_jti() -> None:
    _, _, verifier, token = setup()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="retriever", options={"verify_exp": False})
    assert claims["capabilities"][0] == {
        "action": "search",
        "resource": "collection",
        "constraints": {"allow": ["docs", "faq"]},
    }
    assert claims["jti"] == derive_jti("run1", "s", 2) != derive_jti("run1", "s", 3)
    verified = verifier.verify(token, audience="retriever", action="search", resource="collection", values=("faq",))
    assert (verified.run_id, verified.step_id, verified.attempt) == ("run1", "s", 2)


def test_an_expired_token_is_denied() -> None:
    clock, _, verifier, token = setup()
    clock.t += 60
    assert denied(verifier, token) == "token expired"


def test_the_run_deadline_bounds_the_expiry() -> None:
    clock, issuer, verifier, _ = setup()
    token = issuer.mint(
        Grant("judge", (Capability("judge", "content", ("*",)),)),
        run_id="r",
        step_id="j",
        attempt=1,
        deadline=clock.t + 5,
    )
    clock.t += 5
    assert denied(verifier, token, audience="judge", action="judge", resource=None, values=()) == "token expired"


def test_a_token_for_another_arm_is_denied() -> None:
    _, _, verifier, token = setup()
    assert denied(verifier, token, audience="executor", action="execute") == "token is not for executor"


def test_an_action_not_granted_is_denied() -> None:
    _, _, verifier, token = setup()
    assert denied(verifier, token, action="delete") == "action 'delete' is not granted"


def test_a_resource_outside_the_grant_is_denied() -> None:
    _, _, verifier, token = setup(max_uses=5)
    assert denied(verifier, token, values=("docs", "secrets")) == "collection 'secrets' is outside the grant"
    reason = denied(verifier, token, action="write", resource="path", values=("work/../etc/passwd",))
    assert reason == "path 'work/../etc/passwd' is outside the grant"
    verifier.verify(token, audience="retriever", action="write", resource="path", values=("work/a/b.py",))


def test_uses_beyond_the_maximum_are_denied() -> None:
    _, _, verifier, token = setup(max_uses=2)
    for _ in range(2):
        verifier.verify(token, audience="retriever", action="search", resource="collection", values=("docs",))
    assert denied(verifier, token) == "token used 3 times, at most 2 allowed"


def test_a_bad_signature_is_denied() -> None:
    _, _, verifier, token = setup()
    forged = CapabilityIssuer(b"x" * 32).mint(
        Grant("retriever", (Capability("search", "collection", ("*",)),)), run_id="run1", step_id="s", attempt=1
    )
    assert denied(verifier, forged) == "bad token signature"
    head, body, signature = token.split(".")
    assert denied(verifier, f"{head}.{body}.{signature[::-1]}") in {
        "bad token signature",
        "invalid token: Invalid crypto padding",
    }
    assert denied(verifier, "not-a-token").startswith("invalid token")


def test_a_cancelled_runs_tokens_are_denied() -> None:
    _, _, verifier, token = setup(max_uses=3)
    verifier.verify(token, audience="retriever", action="search", resource="collection", values=("docs",))
    verifier.revoke_run("run1")
    assert denied(verifier, token) == "the run's tokens are revoked (the run was cancelled)"


def test_the_secret_is_derived_from_a_configured_root_or_random() -> None:
    assert derive_secret("root") == derive_secret("root") != derive_secret("other")
    assert derive_secret(None) != derive_secret(None)
    assert len(derive_secret("root")) == 32
