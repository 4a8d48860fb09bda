"""Effective policy: settings default <- tenant <- user <- key <- prompt, field by field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bastion.auth.principal import Principal, Role
from bastion.auth.schemas import KeySettings, TenantSettings, UserSettings
from bastion.config.settings import Settings
from bastion.guard import GuardPolicy
from bastion.guard.policy_resolution import PolicyResolver


def principal(
    tenant: dict[str, Any] | None = None, user: dict[str, Any] | None = None, key: dict[str, Any] | None = None
) -> Principal:
    return Principal(
        tenant_id="t",
        tenant_name="acme",
        role=Role.SERVICE,
        key_id="k",
        user_id="u",
        tenant_settings={"guard": tenant} if tenant is not None else {},
        user_settings={"guard": user} if user is not None else {},
        key_settings={"guard": key} if key is not None else {},
    )


def test_no_overrides_is_the_default_itself() -> None:
    resolver = PolicyResolver({"injection": "block"})
    assert resolver.resolve(None, None) is resolver.default
    assert resolver.resolve(principal(), None) is resolver.default
    assert resolver.default.injection == "block" and resolver.default.pii == "redact"


def test_later_layers_win_field_by_field() -> None:
    resolver = PolicyResolver({"pii": "flag"})
    policy = resolver.resolve(
        principal(
            tenant={"injection": "block", "secrets": "block", "leak_threshold": 0.3},
            user={"injection": "flag", "pii": "block"},
            key={"secrets": "flag"},
        ),
        {"pii": "off", "leak": "flag"},
    )
    assert policy.injection == "flag"  # user over tenant
    assert policy.secrets == "flag"  # key over tenant
    assert policy.pii == "off"  # prompt over user over settings
    assert policy.leak == "flag"  # prompt over the guard's default
    assert policy.leak_threshold == 0.3  # tenant, untouched by later layers
    assert policy.invisible == "redact"  # nobody set it


def test_resolution_is_cached_by_content() -> None:
    resolver = PolicyResolver()
    first = resolver.resolve(principal(key={"injection": "block"}), None)
    again = resolver.resolve(principal(key={"injection": "block"}), None)
    assert first is again
    assert resolver.resolve(principal(key={"injection": "flag"}), None) is not first


def test_invalid_fields_are_skipped_not_fatal() -> None:
    resolver = PolicyResolver()
    policy = resolver.resolve(principal(key={"injection": "block", "pii": "shout"}), {"leak": 7, "secrets": "flag"})
    assert policy.injection == "block" and policy.pii == "redact"  # the typo is ignored, the rest applies
    assert policy.secrets == "flag" and policy.leak == "block"
    assert resolver.resolve(None, "block everything") is resolver.default  # not an object: ignored


def test_settings_validate_the_default_policy() -> None:
    assert Settings.model_validate({"guard": {"policy": {"injection": "block"}}}).guard.policy == {"injection": "block"}
    assert Settings().guard.enabled is True and Settings().guard.canary_for_client_prompts is False
    with pytest.raises(ValidationError):
        Settings.model_validate({"guard": {"policy": {"injection": "blok"}}})


@pytest.mark.parametrize("model", [TenantSettings, UserSettings, KeySettings])
def test_every_scope_may_carry_a_validated_guard_policy(
    model: type[TenantSettings] | type[UserSettings] | type[KeySettings],
) -> None:
    assert model.model_validate({"guard": {"leak": "flag"}}).guard == {"leak": "flag"}
    with pytest.raises(ValidationError):
        model.model_validate({"guard": {"leak": "maybe"}})


def test_policies_merge_with_guard_policy_semantics() -> None:
    base = GuardPolicy(pii="flag")
    resolver = PolicyResolver(base)
    assert resolver.resolve(principal(tenant={"pii_entities": ["EMAIL_ADDRESS"]}), None).pii_entities == (
        "EMAIL_ADDRESS",
    )
