"""Master key rotation: re-wrap every data key under a new master key, without downtime.

Only the small wrapped data keys change; prompt ciphertexts stay as they are (their data keys do
not change). Each version row is re-wrapped in its own short transaction with an optimistic
check on its key id, so the job can be interrupted and run again (``--resume``), and runs beside
gateways that keep serving.

Key file mode (the default): the new key is written to the file first, in front of the old ones,
so a running gateway that re-reads the file can open rows in either state; the old keys are
dropped from the file once no row uses them. Environment mode (``BASTION_MASTER_KEY``): the new
key is given on the command line or in an environment variable and the operator deploys it (see
docs/VAULT.md for the order that avoids downtime).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import func, select, update

from bastion.config.settings import Settings
from bastion.store.db import Database
from bastion.store.models_vault import Prompt, PromptVersion
from bastion.vault import store
from bastion.vault.crypto import DecryptionFailed, Keyring, MasterKey, VaultError
from bastion.vault.keys import key_file_path, read_key_file, write_key_file
from bastion.vault.model import KeyringMismatch
from bastion.vault.store import version_context

log = structlog.get_logger("bastion.vault")

ROTATION_ACTOR = "cli:vault-rotate"


@dataclass
class RotationReport:
    active_key_id: str
    previous_key_ids: list[str]
    rewrapped: int = 0
    remaining: int = 0
    dropped_key_ids: list[str] = field(default_factory=list)
    key_file: str | None = None


async def count_not_on(db: Database, key_id: str) -> int:
    async with db.session() as session:
        value = await session.scalar(
            select(func.count()).select_from(PromptVersion).where(PromptVersion.key_id != key_id)
        )
        return int(value or 0)


async def rewrap_all(
    db: Database, keyring: Keyring, *, batch_size: int = 100, progress: Callable[[int], None] | None = None
) -> int:
    """Re-wrap every data key not under ``keyring.active``; returns how many rows changed."""
    target = keyring.active.key_id
    done = 0
    failed: set[str] = set()
    while True:
        async with db.session() as session:
            query = select(PromptVersion.id).where(PromptVersion.key_id != target)
            if failed:
                query = query.where(PromptVersion.id.not_in(failed))
            batch = (await session.execute(query.order_by(PromptVersion.id).limit(batch_size))).scalars().all()
        if not batch:
            break
        for version_pk in batch:
            async with db.transaction() as session:
                row = await session.get(PromptVersion, version_pk)
                prompt = await session.get(Prompt, row.prompt_pk) if row is not None else None
                if row is None or prompt is None or row.key_id == target:
                    continue  # deleted, or re-wrapped by a concurrent run
                context = version_context(prompt.tenant_id, row.prompt_pk, row.version)
                try:
                    wrapped, key_id = keyring.rewrap(row.wrapped_key, row.key_id, context)
                except DecryptionFailed as exc:
                    failed.add(version_pk)
                    log.error("vault_rewrap_failed", version_pk=version_pk, key_id=row.key_id, error=str(exc))
                    continue
                # Optimistic: only if nobody changed the row since it was read.
                result = await session.execute(
                    update(PromptVersion)
                    .where(PromptVersion.id == version_pk, PromptVersion.key_id == row.key_id)
                    .values(key_id=key_id, wrapped_key=wrapped)
                    .execution_options(synchronize_session=False)
                )
                done += result.rowcount or 0  # type: ignore[attr-defined]
        if progress is not None:
            progress(done)
    if failed:
        raise VaultError(
            f"{len(failed)} version(s) could not be re-wrapped (their master key is not available); "
            f"{done} were re-wrapped. Add the missing key to the key file or vault.previous_keys and run again."
        )
    return done


async def _verify(db: Database, keyring: Keyring) -> None:
    """Every key id in use must be in ``keyring`` before anything is changed."""
    async with db.session() as session:
        key_ids = (await session.execute(select(PromptVersion.key_id).distinct())).scalars().all()
    missing = [key_id for key_id in key_ids if key_id not in keyring]
    if missing:
        raise KeyringMismatch(
            "the master key does not match this vault: versions are wrapped with key id "
            f"{', '.join(missing)}; set BASTION_MASTER_KEY or vault.key_file to that key"
        )


async def _audit(db: Database, report: RotationReport) -> None:
    async with db.transaction() as session:
        store.audit(
            session, None, ROTATION_ACTOR, "vault.rotate", f"key:{report.active_key_id}",
            previous=report.previous_key_ids, rewrapped=report.rewrapped, remaining=report.remaining,
        )  # fmt: skip


async def rotate_key_file(
    settings: Settings, db: Database, *, keep_old: bool = False, resume: bool = False, batch_size: int = 100
) -> RotationReport:
    """Key file mode: put a new key first in the file, re-wrap everything to it, drop the old keys.
    With ``resume``, no new key is made: rows are re-wrapped to the file's current first key."""
    path = key_file_path(settings)
    keys = read_key_file(path)
    previous = [MasterKey.from_hex(value) for value in settings.vault.previous_keys]
    await _verify(db, Keyring(keys[0], [*keys[1:], *previous]))
    if not resume:
        keys = [MasterKey.generate(), *keys]
        # New key first: from here every process that re-reads the file wraps under it.
        write_key_file(path, keys)
    keyring = Keyring(keys[0], [*keys[1:], *previous])
    report = RotationReport(keys[0].key_id, [k.key_id for k in keys[1:]], key_file=str(path))
    report.rewrapped = await rewrap_all(db, keyring, batch_size=batch_size)
    report.remaining = await count_not_on(db, keyring.active.key_id)
    if report.remaining == 0 and not keep_old and len(keys) > 1:
        write_key_file(path, keys[:1])
        report.dropped_key_ids = [k.key_id for k in keys[1:]]
        # A gateway that read the file just before it changed may have wrapped one more data key
        # under an old key: this process still holds the old keys, so pick those up now.
        report.rewrapped += await rewrap_all(db, keyring, batch_size=batch_size)
        report.remaining = await count_not_on(db, keyring.active.key_id)
    await _audit(db, report)
    return report


async def rotate_to_key(
    settings: Settings, db: Database, new_key: MasterKey | None, *, batch_size: int = 100
) -> RotationReport:
    """Environment mode: re-wrap everything to ``new_key`` (or, when None, to the configured
    active key, finishing a rotation whose key is already deployed)."""
    if settings.master_key is None:
        raise VaultError("BASTION_MASTER_KEY is not set: use key file rotation (without --new-key-hex)")
    active = MasterKey.from_hex(settings.master_key.get_secret_value())
    previous = [MasterKey.from_hex(value) for value in settings.vault.previous_keys]
    known = Keyring(active, previous)
    await _verify(db, known)
    target = new_key or active
    keyring = Keyring(target, [active, *previous])
    report = RotationReport(target.key_id, [k for k in known.key_ids if k != target.key_id])
    report.rewrapped = await rewrap_all(db, keyring, batch_size=batch_size)
    report.remaining = await count_not_on(db, target.key_id)
    await _audit(db, report)
    return report
