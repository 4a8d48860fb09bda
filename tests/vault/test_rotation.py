"""Master key rotation on SQLite and PostgreSQL: every prompt stays readable, no row is left on an
old key, an interrupted rotation resumes, and a running service follows the key file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bastion.store.db import Database
from bastion.store.models import AuditEvent
from bastion.vault.crypto import Keyring, MasterKey, VaultError
from bastion.vault.keys import read_key_file, write_key_file
from bastion.vault.rotation import count_not_on, rewrap_all, rotate_key_file, rotate_to_key
from bastion.vault.service import VaultService
from tests.vault.support import make_tenant, spec, vault_settings

PROMPTS = {"alpha": ["alpha one", "alpha two"], "beta": ["beta one"], "gamma": ["gamma one", "gamma 2", "gamma 3"]}


async def _fill(vault: VaultService, database: Database) -> str:
    tenant = await make_tenant(database, "acme")
    for prompt_id, texts in PROMPTS.items():
        await vault.create_prompt(tenant, prompt_id, spec(texts[0], template="T {{ x }}"), actor="t")
        for text in texts[1:]:
            await vault.new_version(tenant, prompt_id, spec(text), actor="t")
    return tenant


async def _all_readable(vault: VaultService, tenant: str) -> None:
    vault.invalidate()  # decrypt from the rows, not from the cache
    for prompt_id, texts in PROMPTS.items():
        for number, text in enumerate(texts, start=1):
            assert (await vault.resolve(tenant, prompt_id, version=number))[0].secret.system == text


async def test_key_file_rotation(database: Database, database_url: str, tmp_path: Path) -> None:
    settings = vault_settings(database_url, tmp_path / "data")
    vault = VaultService(database, settings)
    await vault.start()
    tenant = await _fill(vault, database)
    old = vault.keys.keyring.active.key_id

    # batch_size=2 makes the job go through several batches.
    report = await rotate_key_file(settings, database, batch_size=2)
    assert report.active_key_id != old and report.previous_key_ids == [old]
    assert report.rewrapped == 6 and report.remaining == 0 and report.dropped_key_ids == [old]
    assert [k.key_id for k in read_key_file(tmp_path / "data" / "master.key")] == [report.active_key_id]
    assert await count_not_on(database, report.active_key_id) == 0
    assert await vault.key_usage() == {report.active_key_id: 6}

    # The running service never restarted: it meets an unknown key id and re-reads the key file.
    await _all_readable(vault, tenant)
    assert vault.keys.keyring.active.key_id == report.active_key_id
    # And a fresh process with the new file starts (its key matches every row).
    fresh = VaultService(database, settings)
    await fresh.start()
    await _all_readable(fresh, tenant)
    async with database.session() as session:
        [event] = (await session.execute(select(AuditEvent).where(AuditEvent.action == "vault.rotate"))).scalars()
    assert event.details["rewrapped"] == 6 and event.target == f"key:{report.active_key_id}"


async def test_keep_old_and_resume(database: Database, database_url: str, tmp_path: Path) -> None:
    settings = vault_settings(database_url, tmp_path / "data")
    vault = VaultService(database, settings)
    await vault.start()
    tenant = await _fill(vault, database)
    old = vault.keys.keyring.active.key_id
    report = await rotate_key_file(settings, database, keep_old=True)
    keys = [k.key_id for k in read_key_file(tmp_path / "data" / "master.key")]
    assert keys == [report.active_key_id, old] and report.dropped_key_ids == []

    # An interrupted rotation: a new key is first in the file but rows are still on the old ones.
    interrupted = MasterKey.generate()
    write_key_file(tmp_path / "data" / "master.key", [interrupted, *read_key_file(tmp_path / "data" / "master.key")])
    assert await count_not_on(database, interrupted.key_id) == 6
    resumed = await rotate_key_file(settings, database, resume=True)
    assert resumed.active_key_id == interrupted.key_id and resumed.rewrapped == 6 and resumed.remaining == 0
    assert [k.key_id for k in read_key_file(tmp_path / "data" / "master.key")] == [interrupted.key_id]
    again = await rotate_key_file(settings, database, resume=True)  # idempotent
    assert again.rewrapped == 0
    await _all_readable(vault, tenant)


async def test_new_versions_during_rotation_use_the_new_key(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    settings = vault_settings(database_url, tmp_path / "data")
    vault = VaultService(database, settings)
    await vault.start()
    tenant = await _fill(vault, database)
    # Rotation has written the new key first but not re-wrapped yet: a running gateway that adds
    # a version now must wrap it under the new key (it re-reads the changed file).
    new = MasterKey.generate()
    write_key_file(tmp_path / "data" / "master.key", [new, *read_key_file(tmp_path / "data" / "master.key")])
    info = await vault.new_version(tenant, "beta", spec("beta two"), actor="t")
    assert info.key_id == new.key_id


async def test_environment_key_rotation(database: Database, database_url: str, tmp_path: Path) -> None:
    old = MasterKey.generate()
    settings = vault_settings(database_url, tmp_path / "data", master_key=old.to_hex())
    vault = VaultService(database, settings)
    await vault.start()
    tenant = await _fill(vault, database)
    new = MasterKey.generate()
    report = await rotate_to_key(settings, database, new)
    assert report.active_key_id == new.key_id and report.rewrapped == 6 and report.remaining == 0
    assert not (tmp_path / "data" / "master.key").exists()  # env mode never writes a key file
    # The operator deploys the new key as BASTION_MASTER_KEY, the old one as a previous key.
    deployed = vault_settings(
        database_url, tmp_path / "data", master_key=new.to_hex(), vault={"previous_keys": [old.to_hex()]}
    )
    fresh = VaultService(database, deployed)
    await fresh.start()
    await _all_readable(fresh, tenant)
    # Once every process has the new key, the old one can go.
    only_new = VaultService(database, vault_settings(database_url, tmp_path / "data", master_key=new.to_hex()))
    await only_new.start()
    await _all_readable(only_new, tenant)


async def test_rotation_refuses_to_touch_a_vault_it_cannot_open(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    vault = VaultService(database, vault_settings(database_url, tmp_path / "data"))
    await vault.start()
    await _fill(vault, database)
    stranger = vault_settings(database_url, tmp_path / "other")
    write_key_file(tmp_path / "other" / "master.key", [MasterKey.generate()])
    before = (tmp_path / "other" / "master.key").read_text()
    with pytest.raises(VaultError, match="does not match this vault"):
        await rotate_key_file(stranger, database)
    assert (tmp_path / "other" / "master.key").read_text() == before  # nothing written
    with pytest.raises(VaultError, match="could not be re-wrapped"):
        await rewrap_all(database, Keyring(MasterKey.generate()))
