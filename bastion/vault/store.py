"""Sealing and opening prompt versions, and the row queries the vault service shares.

Associated data for every ciphertext of a version is ``"{tenant_id}|{prompt pk}|{version}"`` plus
the field name (``system``, ``template``, and ``dek:<key id>`` for the wrapped data key), so a
ciphertext or wrapped key moved to another row, prompt or tenant does not authenticate.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.store.models import AuditEvent, utcnow
from bastion.store.models_vault import Prompt, PromptLabel, PromptVersion
from bastion.vault.crypto import DecryptionFailed, decrypt_field, encrypt_field
from bastion.vault.keysource import KeyringSource
from bastion.vault.model import PromptSecret, VersionSpec

SYSTEM_FIELD = "system"
TEMPLATE_FIELD = "template"


def version_context(tenant_id: str, prompt_pk: str, version: int) -> str:
    return f"{tenant_id}|{prompt_pk}|{version}"


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    wrapped_key: bytes
    system_ciphertext: bytes
    template_ciphertext: bytes | None


def seal(keys: KeyringSource, tenant_id: str, prompt_pk: str, version: int, spec: VersionSpec) -> Sealed:
    """Encrypt a version's text under a fresh data key wrapped by the active master key."""
    keys.refresh()  # a rotation may have started: wrap under the newest key, never a retiring one
    context = version_context(tenant_id, prompt_pk, version)
    data_key, wrapped, key_id = keys.keyring.new_data_key(context)
    system = encrypt_field(data_key, spec.system_prompt, context, SYSTEM_FIELD)
    template = None
    if spec.user_template is not None:
        template = encrypt_field(data_key, spec.user_template, context, TEMPLATE_FIELD)
    return Sealed(key_id, wrapped, system, template)


def unwrap_data_key(keys: KeyringSource, row: PromptVersion, tenant_id: str) -> bytes:
    context = version_context(tenant_id, row.prompt_pk, row.version)
    if row.key_id not in keys.keyring:
        keys.reload_for(row.key_id)  # another process may have rotated: re-read the key file once
    return keys.keyring.unwrap(row.wrapped_key, row.key_id, context)


def open_version(keys: KeyringSource, row: PromptVersion, tenant_id: str) -> PromptSecret:
    """Decrypt a version's text; raises ``DecryptionFailed`` (never returns garbage)."""
    context = version_context(tenant_id, row.prompt_pk, row.version)
    data_key = unwrap_data_key(keys, row, tenant_id)
    system = decrypt_field(data_key, row.system_ciphertext, context, SYSTEM_FIELD)
    template = None
    if row.template_ciphertext is not None:
        template = decrypt_field(data_key, row.template_ciphertext, context, TEMPLATE_FIELD)
    return PromptSecret(system, template)


def describe_failure(exc: DecryptionFailed, prompt_id: str, version: int) -> str:
    return f"prompt {prompt_id!r} version {version} cannot be decrypted: {exc}"


async def find_prompt(session: AsyncSession, tenant_id: str, prompt_id: str) -> Prompt | None:
    return (
        await session.execute(select(Prompt).where(Prompt.tenant_id == tenant_id, Prompt.prompt_id == prompt_id))
    ).scalar_one_or_none()


async def find_version(session: AsyncSession, prompt_pk: str, version: int) -> PromptVersion | None:
    return (
        await session.execute(
            select(PromptVersion).where(PromptVersion.prompt_pk == prompt_pk, PromptVersion.version == version)
        )
    ).scalar_one_or_none()


async def latest_version(session: AsyncSession, prompt_pk: str) -> int:
    value = await session.scalar(select(func.max(PromptVersion.version)).where(PromptVersion.prompt_pk == prompt_pk))
    return int(value or 0)


async def labels_of(session: AsyncSession, prompt_pk: str) -> dict[str, int]:
    rows = await session.execute(
        select(PromptLabel.label, PromptLabel.version).where(PromptLabel.prompt_pk == prompt_pk)
    )
    return {label: version for label, version in rows.all()}


async def set_label(session: AsyncSession, prompt_pk: str, label: str, version: int, actor: str) -> int | None:
    """Point ``label`` at ``version``; returns the version it pointed at before (None if new)."""
    row = await session.get(PromptLabel, (prompt_pk, label), with_for_update=True)
    if row is None:
        session.add(PromptLabel(prompt_pk=prompt_pk, label=label, version=version, updated_by=actor))
        return None
    before = row.version
    row.version = version
    row.updated_by = actor
    row.updated_at = utcnow()
    return before


def audit(
    session: AsyncSession, tenant_id: str | None, actor: str, action: str, target: str, **details: object
) -> None:
    """An audit row in the caller's transaction: the action and its record commit together.
    Details are ids, versions and key ids only, never prompt text."""
    session.add(AuditEvent(tenant_id=tenant_id, actor=actor, action=action, target=target, details=details))
