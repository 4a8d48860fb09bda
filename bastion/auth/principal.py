"""Who is calling: the principal every request resolves to, and what each role may do."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import PermissionDenied


class Role(enum.StrEnum):
    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"
    SERVICE = "service"
    #: Reviews interactions queued for human review (docs/REVIEW.md), nothing else.
    REVIEWER = "reviewer"


class Permission(enum.StrEnum):
    CALL_MODELS = "models:call"  # /v1/* and agent sessions
    READ_LEDGER = "ledger:read"
    READ_USAGE = "usage:read"
    MANAGE_KEYS = "keys:manage"
    MANAGE_USERS = "users:manage"
    MANAGE_TENANT = "tenant:manage"
    WRITE_PROMPTS = "prompts:write"
    READ_PROMPTS = "prompts:read"  # metadata only
    READ_PROMPT_PLAINTEXT = "prompts:read_plaintext"  # audited
    #: Claim and review queued interactions (only the fields the tenant's ledger policy keeps).
    REVIEW = "review:write"
    #: Create and delete knowledge collections, ingest and delete documents (docs/KNOWLEDGE.md).
    WRITE_KNOWLEDGE = "knowledge:write"
    #: Prepare review batches, assign reviewers, read agreement, build and export datasets.
    MANAGE_DATASETS = "datasets:manage"
    #: Start and cancel red-team runs, import garak reports (docs/REDTEAM.md).
    RUN_REDTEAM = "redteam:run"
    #: Read red-team runs, their reports and the attack library.
    READ_REDTEAM = "redteam:read"
    #: See the tenant, its users and its keys (metadata only: never a key or a secret).
    READ_ACCESS = "access:read"
    #: Process-wide operational figures: /metrics and the details of /readyz.
    READ_OPS = "ops:read"
    #: Start and cancel agent runs (docs/AGENTS.md).
    RUN_AGENTS = "agents:run"
    #: Read agent runs, their traces, the templates and the sandbox in force.
    READ_AGENTS = "agents:read"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.DEVELOPER: frozenset(
        {
            Permission.CALL_MODELS,
            Permission.READ_LEDGER,
            Permission.READ_USAGE,
            Permission.WRITE_PROMPTS,
            Permission.READ_PROMPTS,
            Permission.REVIEW,
            Permission.WRITE_KNOWLEDGE,
            Permission.MANAGE_DATASETS,
            Permission.RUN_AGENTS,
            Permission.READ_AGENTS,
            Permission.RUN_REDTEAM,
            Permission.READ_REDTEAM,
        }
    ),
    Role.VIEWER: frozenset(
        {
            Permission.READ_LEDGER,
            Permission.READ_USAGE,
            Permission.READ_PROMPTS,
            Permission.READ_ACCESS,
            Permission.READ_OPS,
            Permission.READ_AGENTS,
            Permission.READ_REDTEAM,
        }
    ),
    Role.SERVICE: frozenset({Permission.CALL_MODELS}),
    Role.REVIEWER: frozenset({Permission.REVIEW}),
}


@dataclass(frozen=True, slots=True)
class Identity:
    """A principal as stored (no settings, no secret): background work that runs on a caller's
    behalf resolves it again when it runs, so a key revoked meanwhile stops the work."""

    tenant_id: str
    method: str
    key_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    tenant_name: str
    role: Role
    key_id: str | None = None
    user_id: str | None = None
    platform_admin: bool = False
    #: How the caller proved itself: "api_key", "jwt", "master_key" (from configuration), or "anonymous" (auth off).
    method: str = "api_key"
    #: For messages and labels: the key's listed prefix (``bst_`` + 8) and the user's email.
    key_prefix: str | None = None
    user_email: str | None = None
    #: Effective per-principal settings (limits, budgets, ledger mode, guard policy) from tenant,
    #: user and key, most specific last.
    tenant_settings: dict[str, Any] = field(default_factory=dict)
    user_settings: dict[str, Any] = field(default_factory=dict)
    key_settings: dict[str, Any] = field(default_factory=dict)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def identity(self) -> Identity:
        """Who this is, as stored with work done later on its behalf (a batch)."""
        return Identity(self.tenant_id, self.method, self.key_id, self.user_id)

    @property
    def actor(self) -> str:
        """A stable label for audit logs."""
        if self.key_id:
            return f"key:{self.key_id}"
        if self.method == "master_key":
            return "master_key"
        return f"user:{self.user_id}"


def require(principal: Principal, permission: Permission | None) -> Principal:
    """The principal, if it holds ``permission`` (None: any caller); 403 otherwise."""
    if permission is not None and not principal.can(permission):
        raise PermissionDenied(f"The {principal.role.value} role lacks the {permission.value} permission.")
    return principal
