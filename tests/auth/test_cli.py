"""``bastion keys|users|tenants|db`` through typer's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bastion.auth.authenticator import Authenticator
from bastion.auth.epoch import FileEpoch, epoch_file
from bastion.cli.main import app
from bastion.errors import AuthenticationFailed
from bastion.store.db import Database
from tests.auth.support import bearer, settings_for


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Path:
    """A config naming the per-test database (SQLite: a fresh file the CLI migrates itself)."""
    path = tmp_path / "bastion.yaml"
    data = {"database_url": database_url, "data_dir": str(tmp_path / "data"), "local": {"enabled": False}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def cli(config: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert "Traceback" not in result.output, result.output
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        else:
            assert result.exit_code != 0, (args, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    return invoke


def verify(database_url: str, data_dir: Path, secret: str) -> Any:
    async def check() -> Any:
        db = Database.from_settings(settings_for(database_url, data_dir))
        authenticator = Authenticator(settings_for(database_url, data_dir), db)
        try:
            return await authenticator.authenticate(bearer(secret))
        finally:
            await authenticator.aclose()
            await db.dispose()

    return asyncio.run(check())


def test_first_admin_key(cli: Any, database_url: str, tmp_path: Path) -> None:
    result = cli("keys", "create", "--role", "admin", "--tenant", "acme")
    lines = result.stdout.strip().splitlines()
    secret = lines[-1]
    assert secret.startswith("bst_") and len(secret) == 44
    assert "shown only once" in result.output
    principal = verify(database_url, tmp_path / "data", secret)
    assert principal.tenant_name == "acme" and principal.role.value == "admin" and not principal.platform_admin
    listed = json.loads(cli("keys", "list", "--tenant", "acme", "--json").stdout)
    assert [row["prefix"] for row in listed] == [secret[:12]]
    assert secret not in cli("keys", "list", "--tenant", "acme").stdout


def test_key_options(cli: Any, database_url: str, tmp_path: Path) -> None:
    created = json.loads(
        cli(
            "keys", "create", "--tenant", "acme", "--role", "admin", "--platform", "--name", "ops",
            "--expires-in", "30d", "--rpm", "100", "--daily-usd", "2.5", "--json",
        ).stdout
    )  # fmt: skip
    assert created["platform_admin"] is True and created["name"] == "ops"
    assert created["settings"] == {"rpm": 100, "daily_usd": 2.5}
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert verify(database_url, tmp_path / "data", created["key"]).platform_admin
    # Refusals are one clear line, never a traceback.
    assert "admin role" in cli("keys", "create", "--tenant", "acme", "--platform", ok=False).output
    assert cli("keys", "create", "--tenant", "acme", "--expires-in", "soon", ok=False).exit_code == 2
    assert "rpm" in cli("keys", "create", "--tenant", "acme", "--rpm", "0", ok=False).output
    assert "name" in cli("keys", "create", "--tenant", "bad name!", ok=False).output
    assert "No user" in cli("keys", "create", "--tenant", "acme", "--user", "ghost@acme.io", ok=False).output


def test_revoke_by_prefix_and_id(cli: Any, database_url: str, tmp_path: Path) -> None:
    first = json.loads(cli("keys", "create", "--tenant", "acme", "--json").stdout)
    second = json.loads(cli("keys", "create", "--tenant", "acme", "--json").stdout)
    epoch = FileEpoch(epoch_file(settings_for(database_url, tmp_path / "data")))
    before = epoch.read()
    assert "Revoked" in cli("keys", "revoke", first["prefix"]).stdout
    assert epoch.read() == before + 1, "revoking must tell running gateways (auth epoch)"
    epoch.close()
    with pytest.raises(AuthenticationFailed, match="revoked"):
        verify(database_url, tmp_path / "data", first["key"])
    cli("keys", "revoke", second["id"], "--tenant", "acme")
    with pytest.raises(AuthenticationFailed, match="revoked"):
        verify(database_url, tmp_path / "data", second["key"])
    listed = json.loads(cli("keys", "list", "--tenant", "acme", "--all", "--json").stdout)
    assert all(row["revoked_at"] for row in listed) and len(listed) == 2
    assert json.loads(cli("keys", "list", "--tenant", "acme", "--json").stdout) == []
    assert "No such key" in cli("keys", "revoke", "bst_nothing1", ok=False).output
    assert "No tenant named 'other'" in cli("keys", "revoke", second["id"], "--tenant", "other", ok=False).output
    assert cli("keys", "revoke", "whatever", ok=False).exit_code == 1


def test_users(cli: Any, database_url: str, tmp_path: Path) -> None:
    created = json.loads(
        cli("users", "create", "--tenant", "acme", "--email", "Dev@Acme.io", "--role", "developer", "--json").stdout
    )
    assert created["email"] == "dev@acme.io" and created["role"] == "developer"
    assert "already exists" in cli("users", "create", "--tenant", "acme", "--email", "dev@acme.io", ok=False).output
    key = json.loads(cli("keys", "create", "--tenant", "acme", "--user", "dev@acme.io", "--json").stdout)
    assert key["user_id"] == created["id"]
    cli("users", "disable", "dev@acme.io", "--tenant", "acme")
    with pytest.raises(AuthenticationFailed, match="disabled"):
        verify(database_url, tmp_path / "data", key["key"])
    cli("users", "enable", created["id"], "--tenant", "acme")
    assert verify(database_url, tmp_path / "data", key["key"]).user_id == created["id"]
    listed = json.loads(cli("users", "list", "--tenant", "acme", "--json").stdout)
    assert [row["email"] for row in listed] == ["dev@acme.io"]
    assert "EMAIL" in cli("users", "list", "--tenant", "acme").stdout
    assert "No tenant" in cli("users", "list", "--tenant", "nowhere", ok=False).output
    assert "email" in cli("users", "create", "--tenant", "acme", "--email", "not-an-email", ok=False).output


def test_tenants(cli: Any) -> None:
    created = json.loads(cli("tenants", "create", "acme", "--json").stdout)
    assert created["name"] == "acme"
    assert "already exists" in cli("tenants", "create", "acme", ok=False).output
    assert "name" in cli("tenants", "create", "no spaces allowed", ok=False).output
    cli("tenants", "create", "beta")
    names = [row["name"] for row in json.loads(cli("tenants", "list", "--json").stdout)]
    assert names == ["acme", "beta"]


def test_db_upgrade_and_current(cli: Any) -> None:
    upgraded = cli("db", "upgrade").stdout
    assert "revision" in upgraded
    assert cli("db", "current").stdout.split("revision ")[1] == upgraded.split("revision ")[1]


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("auth: {enabled: maybe}\n")
    result = CliRunner().invoke(app, ["keys", "list", "--tenant", "acme", "--config", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output and "auth.enabled" in result.output
