"""A gateway given the wrong master key refuses to start, with a message naming the key id it needs:
``Gateway.start()`` raises, and a real ``bastion serve`` prints it and exits non-zero."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from bastion.gateway.compose import build_gateway
from bastion.store.db import Database
from bastion.vault.crypto import MasterKey, VaultError
from bastion.vault.model import KeyringMismatch
from bastion.vault.service import VaultService
from tests.support.gateway import BASTION_BIN, free_port
from tests.vault.support import make_tenant, spec, vault_settings

MESSAGE = "the master key does not match this vault: versions are wrapped with key id"


async def _vault_with_one_prompt(database: Database, settings_url: str, data_dir: Path) -> str:
    vault = VaultService(database, vault_settings(settings_url, data_dir))
    await vault.start()
    await vault.create_prompt(await make_tenant(database, "acme"), "bot", spec(), actor="t")
    return vault.keys.keyring.active.key_id


async def test_gateway_start_raises_on_a_wrong_key(database: Database, database_url: str, tmp_path: Path) -> None:
    key_id = await _vault_with_one_prompt(database, database_url, tmp_path / "data")
    settings = vault_settings(database_url, tmp_path / "data", master_key=MasterKey.generate().to_hex())
    gateway = build_gateway(settings)
    try:
        with pytest.raises(KeyringMismatch) as caught:
            await gateway.start()
        assert isinstance(caught.value, VaultError)
        assert f"{MESSAGE} {key_id}" in str(caught.value) and not gateway.ready
    finally:
        await gateway.db.dispose()


@pytest.mark.integration
async def test_bastion_serve_exits_with_the_message(sqlite_database_url: str, tmp_path: Path) -> None:
    database = Database.from_settings(vault_settings(sqlite_database_url, tmp_path / "data"))
    try:
        from bastion.store.migrate import upgrade

        await upgrade(database.engine)
        key_id = await _vault_with_one_prompt(database, sqlite_database_url, tmp_path / "data")
    finally:
        await database.dispose()
    config = {
        "database_url": sqlite_database_url,
        "data_dir": str(tmp_path / "data"),
        "local": {"enabled": False, "embeddings_enabled": False},
        "models": [
            {"name": "m", "deployments": [{"provider": "openai", "model": "m", "api_base": "http://127.0.0.1:9"}]}
        ],
    }
    (tmp_path / "bastion.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_MASTER_KEY"] = wrong = MasterKey.generate().to_hex()
    result = subprocess.run(
        [str(BASTION_BIN), "serve", "--config", str(tmp_path / "bastion.yaml"), "--port", str(free_port())],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode != 0
    assert f"bastion: error: {MESSAGE} {key_id}" in stderr
    assert "set BASTION_MASTER_KEY or vault.key_file to that key" in stderr
    assert wrong not in stderr + result.stdout.decode()
