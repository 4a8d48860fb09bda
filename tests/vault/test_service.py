"""The vault service on SQLite and PostgreSQL: versions, labels, clone, archive, caching, tenant
isolation, audited plaintext reads, ciphertexts bound to their rows, start-up key checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from bastion.errors import Conflict, InvalidRequest
from bastion.store.db import Database
from bastion.store.models import AuditEvent
from bastion.store.models_vault import Prompt, PromptVersion
from bastion.vault.crypto import MasterKey
from bastion.vault.keys import write_key_file
from bastion.vault.model import KeyringMismatch, PromptNotFound, VaultUnavailable
from bastion.vault.service import LABEL_TTL_S, VaultService
from tests.vault.support import SECRET_TEXT, Clock, make_tenant, spec, vault_settings


async def _audits(db: Database, action: str) -> list[AuditEvent]:
    async with db.session() as session:
        return list((await session.execute(select(AuditEvent).where(AuditEvent.action == action))).scalars())


async def test_create_resolve_and_versions(vault: VaultService, database: Database) -> None:
    tenant = await make_tenant(database, "acme")
    info = await vault.create_prompt(
        tenant, "support-bot", spec(template="Q: {{ q }}", model="m1", params={"temperature": 0.1}), actor="t"
    )
    assert info.labels == {"production": 1} and info.latest_version == 1
    resolved, label = await vault.resolve(tenant, "support-bot")
    assert (resolved.version, label, resolved.model) == (1, "production", "m1")
    assert resolved.secret.system == SECRET_TEXT and resolved.params == {"temperature": 0.1}
    assert resolved.metadata["variables"] == ["q"]

    v2 = await vault.new_version(tenant, "support-bot", spec("second"), actor="t", labels=["staging"])
    assert v2.version == 2 and v2.labels == ["staging"] and v2.has_template is False
    assert (await vault.resolve(tenant, "support-bot", label="staging"))[0].secret.system == "second"
    assert (await vault.resolve(tenant, "support-bot", version=1))[0].secret.system == SECRET_TEXT
    assert (await vault.resolve(tenant, "support-bot"))[0].version == 1  # production did not move
    listed = await vault.list_versions(tenant, "support-bot")
    assert [v.version for v in listed] == [1, 2]
    for item in [*(v.to_json() for v in listed), *(p.to_json() for p in await vault.list_prompts(tenant))]:
        assert SECRET_TEXT not in str(item) and "second" not in str(item)
    with pytest.raises(Conflict):
        await vault.create_prompt(tenant, "support-bot", spec(), actor="t")
    for kwargs in ({"label": "nope"}, {"version": 3}):
        with pytest.raises(PromptNotFound):
            await vault.resolve(tenant, "support-bot", **kwargs)


async def test_label_move_applies_at_once_here_and_within_the_label_ttl_elsewhere(
    vault: VaultService, database: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec("one"), actor="t")
    await vault.new_version(tenant, "bot", spec("two"), actor="t")
    # Another process: its own service and cache over the same database and key file.
    other = VaultService(database, vault_settings(database_url, tmp_path / "data"), clock=clock)
    assert (await other.resolve(tenant, "bot"))[0].version == 1

    before = await vault.move_label(tenant, "bot", "production", 2, actor="alice")
    assert before == 1
    assert (await vault.resolve(tenant, "bot"))[0].secret.system == "two"  # the mover sees it at once
    assert (await other.resolve(tenant, "bot"))[0].version == 1  # cached label lookup...
    clock.advance(LABEL_TTL_S)
    assert (await other.resolve(tenant, "bot"))[0].version == 2  # ...expires within LABEL_TTL_S
    [event] = await _audits(database, "prompt.label")
    assert event.actor == "alice" and event.details == {"label": "production", "version": 2, "previous": 1}
    with pytest.raises(PromptNotFound):
        await vault.move_label(tenant, "bot", "production", 9, actor="t")
    with pytest.raises(InvalidRequest):
        await vault.move_label(tenant, "bot", "production", 0, actor="t")


async def test_decrypted_versions_are_cached_for_at_most_the_ttl(
    vault: VaultService, database: Database, clock: Clock
) -> None:
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec(), actor="t")
    first, _ = await vault.resolve(tenant, "bot", version=1)
    assert (await vault.resolve(tenant, "bot", version=1))[0] is first  # a hit: no decryption
    clock.advance(vault.settings.vault.cache_ttl_s - 1)
    assert (await vault.resolve(tenant, "bot", version=1))[0] is first
    clock.advance(1)
    again, _ = await vault.resolve(tenant, "bot", version=1)
    assert again is not first and again.secret.system == first.secret.system


async def test_cache_ttl_zero_keeps_nothing(database: Database, database_url: str, tmp_path: Path) -> None:
    settings = vault_settings(database_url, tmp_path / "data", vault={"cache_ttl_s": 0})
    vault = VaultService(database, settings)
    await vault.start()
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec(), actor="t")
    first, _ = await vault.resolve(tenant, "bot")
    assert (await vault.resolve(tenant, "bot"))[0] is not first
    assert len(vault._versions) == 0 and len(vault._heads) == 0


async def test_clone_re_encrypts_under_fresh_data_keys(vault: VaultService, database: Database) -> None:
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec(template="Hi {{ n }}"), actor="t")
    await vault.new_version(tenant, "bot", spec("two"), actor="t", labels=["staging"])
    info = await vault.clone(tenant, "bot", "bot-copy", actor="t", name="Copy")
    assert info.labels == {"production": 1, "staging": 2} and info.name == "Copy"
    copy, _ = await vault.resolve(tenant, "bot-copy")
    assert copy.secret.system == SECRET_TEXT and copy.secret.template == "Hi {{ n }}"
    async with database.session() as session:
        rows = (await session.execute(select(PromptVersion).where(PromptVersion.version == 1))).scalars().all()
    assert len(rows) == 2
    assert rows[0].wrapped_key != rows[1].wrapped_key
    assert rows[0].system_ciphertext != rows[1].system_ciphertext
    with pytest.raises(Conflict):
        await vault.clone(tenant, "bot", "bot-copy", actor="t")


async def test_archive_hides_the_prompt_from_clients(vault: VaultService, database: Database) -> None:
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec(), actor="t")
    await vault.resolve(tenant, "bot")
    info = await vault.archive(tenant, "bot", actor="t")
    assert info.archived_at is not None
    with pytest.raises(PromptNotFound):
        await vault.resolve(tenant, "bot")
    with pytest.raises(PromptNotFound):
        await vault.resolve(tenant, "bot", version=1)
    assert await vault.list_prompts(tenant) == []
    assert [p.prompt_id for p in await vault.list_prompts(tenant, include_archived=True)] == ["bot"]
    with pytest.raises(PromptNotFound):
        await vault.new_version(tenant, "bot", spec(), actor="t")


async def test_tenants_are_isolated(vault: VaultService, database: Database) -> None:
    acme, globex = await make_tenant(database, "acme"), await make_tenant(database, "globex")
    await vault.create_prompt(acme, "bot", spec(), actor="t")
    await vault.create_prompt(globex, "bot", spec("globex text"), actor="t")  # same id, other tenant
    assert (await vault.resolve(globex, "bot"))[0].secret.system == "globex text"
    await vault.create_prompt(acme, "acme-only", spec(), actor="t")
    with pytest.raises(PromptNotFound) as caught:
        await vault.resolve(globex, "acme-only")
    assert caught.value.message == "The prompt 'acme-only' does not exist."  # as if it never existed
    for call in (
        vault.get_prompt(globex, "acme-only"),
        vault.list_versions(globex, "acme-only"),
        vault.read_plaintext(globex, "acme-only", 1, actor="t"),
        vault.archive(globex, "acme-only", actor="t"),
        vault.clone(globex, "acme-only", "stolen", actor="t"),
    ):
        with pytest.raises(PromptNotFound):
            await call


async def test_plaintext_read_is_audited(vault: VaultService, database: Database) -> None:
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec(template="T {{ x }}"), actor="t")
    text = await vault.read_plaintext(tenant, "bot", 1, actor="key:abc")
    assert text == {"prompt_id": "bot", "version": 1, "system_prompt": SECRET_TEXT, "user_template": "T {{ x }}"}
    [event] = await _audits(database, "prompt.read_plaintext")
    assert (event.tenant_id, event.actor, event.target) == (tenant, "key:abc", "prompt:bot")
    assert event.details["version"] == 1 and SECRET_TEXT not in str(event.details)


async def _swap(database: Database, column: str, a: tuple[str, int], b: tuple[str, int]) -> None:
    """Exchange ``column`` between two version rows, as an attacker with database access would."""
    async with database.transaction() as session:
        rows = {}
        for prompt_id, version in (a, b):
            rows[(prompt_id, version)] = (
                await session.execute(
                    select(PromptVersion)
                    .join(Prompt, Prompt.id == PromptVersion.prompt_pk)
                    .where(Prompt.prompt_id == prompt_id, PromptVersion.version == version)
                )
            ).scalar_one()
        first, second = rows[a], rows[b]
        value_a, value_b = getattr(first, column), getattr(second, column)
        await session.execute(update(PromptVersion).where(PromptVersion.id == first.id).values({column: value_b}))
        await session.execute(update(PromptVersion).where(PromptVersion.id == second.id).values({column: value_a}))


@pytest.mark.parametrize(
    ("column", "a", "b"),
    [
        ("system_ciphertext", ("bot", 1), ("bot", 2)),  # between two versions
        ("system_ciphertext", ("bot", 1), ("other", 1)),  # between two prompts
        ("wrapped_key", ("bot", 1), ("other", 1)),
    ],
)
async def test_swapped_ciphertexts_fail_clearly_not_with_garbage(
    vault: VaultService, database: Database, column: str, a: tuple[str, int], b: tuple[str, int]
) -> None:
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec("bot one"), actor="t")
    await vault.new_version(tenant, "bot", spec("bot two"), actor="t")
    await vault.create_prompt(tenant, "other", spec("other one"), actor="t")
    await _swap(database, column, a, b)
    for prompt_id, version in (a, b):
        with pytest.raises(VaultUnavailable) as caught:
            await vault.resolve(tenant, prompt_id, version=version)
        assert caught.value.status == 503 and "one" not in caught.value.message


async def test_wrong_master_key_refuses_to_start(database: Database, database_url: str, tmp_path: Path) -> None:
    vault = VaultService(database, vault_settings(database_url, tmp_path / "data"))
    await vault.start()
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec(), actor="t")
    used = vault.keys.keyring.active.key_id

    wrong = MasterKey.generate()
    env_mode = vault_settings(database_url, tmp_path / "data", master_key=wrong.to_hex())
    with pytest.raises(KeyringMismatch) as caught:
        await VaultService(database, env_mode).start()
    message = str(caught.value)
    assert f"versions are wrapped with key id {used}" in message
    assert "set BASTION_MASTER_KEY or vault.key_file to that key" in message
    assert wrong.to_hex() not in message

    key_file = tmp_path / "other.key"
    write_key_file(key_file, [wrong])
    with pytest.raises(KeyringMismatch, match=used):
        await VaultService(
            database, vault_settings(database_url, tmp_path / "data", vault={"key_file": key_file})
        ).start()

    # The right key as BASTION_MASTER_KEY (read from the generated file) starts fine.
    right = (tmp_path / "data" / "master.key").read_text().splitlines()[-1]
    await VaultService(database, vault_settings(database_url, tmp_path / "data", master_key=right)).start()


async def test_empty_vault_starts_with_any_key(database: Database, database_url: str, tmp_path: Path) -> None:
    settings = vault_settings(database_url, tmp_path / "data", master_key=MasterKey.generate().to_hex())
    await VaultService(database, settings).start()


async def test_key_check_deferred_from_start_up_still_refuses(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    vault = VaultService(database, vault_settings(database_url, tmp_path / "data"))
    await vault.start()
    tenant = await make_tenant(database, "acme")
    await vault.create_prompt(tenant, "bot", spec(), actor="t")
    # A process whose start-up check could not run (database down then) and has the wrong key.
    late = VaultService(
        database, vault_settings(database_url, tmp_path / "data", master_key=MasterKey.generate().to_hex())
    )
    with pytest.raises(VaultUnavailable) as caught:
        await late.resolve(tenant, "bot")
    assert caught.value.status == 503 and "master key does not match" in caught.value.message


async def test_an_unusable_database_is_a_503(tmp_path: Path) -> None:
    settings = vault_settings(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "data")  # never migrated
    database = Database.from_settings(settings)
    try:
        with pytest.raises(VaultUnavailable, match="unavailable"):
            await VaultService(database, settings).resolve("t", "bot")
    finally:
        await database.dispose()
