"""Every review and dataset action leaves an ``audit_events`` row, in the transaction of the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth.principal import Principal
from bastion.review.model import actor_of
from bastion.store.models import AuditEvent


def audit(session: AsyncSession, principal: Principal, action: str, target: str, **details: Any) -> None:
    session.add(
        AuditEvent(
            tenant_id=principal.tenant_id, actor=actor_of(principal), action=action, target=target, details=details
        )
    )
