"""Which guard policy applies to a request.

    settings.guard.policy  <-  tenant settings ``guard``  <-  user settings ``guard``
                           <-  key settings ``guard``     <-  the vault prompt version's metadata ``guard``

Later layers win, field by field (``GuardPolicy.merged``): a key that sets ``{"injection": "block"}``
changes the injection mode and inherits everything else. A layer is a plain dict as stored (tenant,
user and key settings are validated when written; a prompt's metadata is free-form), so a field that
does not validate is skipped with a warning rather than failing the request: the rest of that layer
and every other layer still apply.

Resolution runs on every request, so merged policies are cached by the layers' content: the common
case (no overrides at all) returns the default without any work, and a request whose layers were
seen before costs one JSON encoding of those layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

import orjson
import structlog
from pydantic import ValidationError

from bastion.config.guard_policy import GuardPolicy

log = structlog.get_logger("bastion.guard")

#: Scopes in the order they are applied (later wins).
SCOPES: tuple[str, ...] = ("tenant", "user", "key", "prompt")


class Caller(Protocol):
    """Whose policy applies: the settings of the caller's tenant, user and key (an
    ``auth.Principal`` is one)."""

    @property
    def tenant_settings(self) -> Mapping[str, Any]: ...

    @property
    def user_settings(self) -> Mapping[str, Any]: ...

    @property
    def key_settings(self) -> Mapping[str, Any]: ...


def principal_layers(principal: Caller | None) -> list[tuple[str, Any]]:
    """The ``guard`` entries of a principal's tenant, user and key settings, least specific first."""
    if principal is None:
        return []
    layers: list[tuple[str, Any]] = []
    for scope, settings in (
        ("tenant", principal.tenant_settings),
        ("user", principal.user_settings),
        ("key", principal.key_settings),
    ):
        override = settings.get("guard") if settings else None
        if override:
            layers.append((scope, override))
    return layers


class PolicyResolver:
    """Merges the configured default with the per-request layers; cached, safe to share."""

    def __init__(self, default: GuardPolicy | Mapping[str, Any] | None = None, *, cache_size: int = 1024) -> None:
        if default is None:
            default = GuardPolicy()
        elif not isinstance(default, GuardPolicy):
            default = GuardPolicy.model_validate(dict(default))
        self.default: GuardPolicy = default
        # Per instance (not a module-level cache): two gateways in one process may have different defaults.
        self._merge_encoded = lru_cache(maxsize=cache_size)(self._merge_uncached)

    def resolve(self, principal: Caller | None = None, prompt_override: Any = None) -> GuardPolicy:
        layers = principal_layers(principal)
        if prompt_override:
            layers.append(("prompt", prompt_override))
        if not layers:
            return self.default
        try:
            key = orjson.dumps(layers, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # not JSON data (only possible for hand-built principals): merge uncached
            return self._merge(layers)
        return self._merge_encoded(key)

    def _merge_uncached(self, key: bytes) -> GuardPolicy:
        return self._merge([(scope, layer) for scope, layer in orjson.loads(key)])

    def _merge(self, layers: list[tuple[str, Any]]) -> GuardPolicy:
        policy = self.default
        for scope, layer in layers:
            policy = _apply_layer(policy, scope, layer)
        return policy


def _apply_layer(policy: GuardPolicy, scope: str, layer: Any) -> GuardPolicy:
    if not isinstance(layer, Mapping):
        log.warning("guard_policy_ignored", scope=scope, reason="not an object")
        return policy
    try:
        return policy.merged(layer)
    except (ValidationError, TypeError, ValueError):
        pass
    # Keep what is valid: field by field, so one typo does not drop the layer's other settings.
    for name, value in layer.items():
        try:
            policy = policy.merged({name: value})
        except (ValidationError, TypeError, ValueError):
            log.warning("guard_policy_field_ignored", scope=scope, field=str(name)[:64])
    return policy
