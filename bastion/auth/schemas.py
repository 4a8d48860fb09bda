"""What the admin API and the CLI accept for tenants, users and keys, validated by pydantic.

Settings objects are stored as given (only the fields that were set), so "unset" keeps meaning
"inherit the configured default". Limits and budgets use the same flat fields at every scope, which
is what the limits and spend stages read from ``Principal.{tenant,user,key}_settings``:

    rpm, tpm                                  requests / tokens per minute
    daily_usd, monthly_usd, max_request_usd   budgets in US dollars

Every scope may also carry ``guard`` (a guard policy override, validated against the guard's own
model when it is installed) and ``cache`` (``{"enabled": false}`` / ``{"semantic": false}``: the
response caches, docs/CACHES.md); a tenant's settings add ``ledger_mode`` (full / redacted / metadata).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from bastion.auth.principal import Role
from bastion.config.cache_settings import CacheOverride
from bastion.errors import InvalidRequest

TenantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Name = Annotated[str, StringConstraints(max_length=200)]
ModelT = TypeVar("ModelT", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitSettings(_Strict):
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    daily_usd: float | None = Field(None, gt=0)
    monthly_usd: float | None = Field(None, gt=0)
    max_request_usd: float | None = Field(None, gt=0)
    # A guard policy override at every scope (tenant <- user <- key, later wins field by field; see
    # bastion/guard/policy_resolution.py), validated against the guard's own model.
    guard: dict[str, Any] | None = None
    # A response-cache override at every scope (``{"enabled": false}`` opts out; docs/CACHES.md).
    cache: CacheOverride | None = None

    @field_validator("guard")
    @classmethod
    def _valid_guard_policy(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            from bastion.config.guard_policy import GuardPolicy
        except ImportError:  # the guard is optional; its own loader validates later
            return value
        GuardPolicy.model_validate(value)
        return value


class KeySettings(LimitSettings):
    pass


class UserSettings(LimitSettings):
    pass


class TenantSettings(LimitSettings):
    # "redacted-later" is the name for "redacted" (content kept, redacted off the request path).
    ledger_mode: Literal["full", "redacted", "redacted-later", "metadata"] | None = None


class TenantCreate(_Strict):
    name: TenantName
    settings: TenantSettings = Field(default_factory=TenantSettings)


class TenantUpdate(_Strict):
    #: Merged into the stored settings; a field set to null is removed.
    settings: dict[str, Any] | None = None
    #: Platform admins only.
    disabled: bool | None = None


class UserCreate(_Strict):
    #: Stored lower-cased: emails are matched case-insensitively (JWT ``sub``, CLI look-ups).
    email: Email
    name: Name | None = None
    role: Role = Role.VIEWER
    settings: UserSettings = Field(default_factory=UserSettings)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class UserUpdate(_Strict):
    name: Name | None = None
    role: Role | None = None
    disabled: bool | None = None
    settings: dict[str, Any] | None = None


class KeyCreate(_Strict):
    name: Name = ""
    #: Least privilege by default: a service key may call models and nothing else.
    role: Role = Role.SERVICE
    expires_at: datetime | None = None
    user_id: Identifier | None = None
    settings: KeySettings = Field(default_factory=KeySettings)

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class KeyUpdate(_Strict):
    name: Name | None = None
    settings: dict[str, Any] | None = None


def parse(model: type[ModelT], data: Any) -> ModelT:
    """Validate ``data`` as ``model``; a readable 400 (never pydantic's raw text) on failure."""
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc)) from None


def describe(exc: ValidationError, prefix: str | None = None) -> str:
    """The first few problems as ``field.path: message``, without echoing input values."""
    problems = []
    for error in exc.errors()[:5]:
        parts = [prefix] if prefix else []
        parts += [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{'.'.join(parts) or 'body'}: {message}")
    return "Invalid request: " + "; ".join(problems) + "."


def merge_settings(model: type[LimitSettings], current: dict[str, Any], changes: Any) -> dict[str, Any]:
    """``current`` updated with ``changes`` (null removes a field), validated as ``model``."""
    if not isinstance(changes, dict):
        raise InvalidRequest("Invalid request: settings must be a JSON object.")
    merged = {**current, **changes}
    merged = {name: value for name, value in merged.items() if value is not None}
    try:
        validated = model.model_validate(merged)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc, "settings")) from None
    return validated.model_dump(exclude_none=True, mode="json")


def settings_dict(settings: LimitSettings) -> dict[str, Any]:
    return settings.model_dump(exclude_none=True, mode="json")
