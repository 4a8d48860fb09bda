"""``bastion vault rotate|status``: master key rotation and what the vault is wrapped with.

Never prints key material, only key ids (public fingerprints of the keys).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bastion.cli.options import ConfigOption, DataDirOption, use_data_dir
from bastion.config.errors import ConfigError
from bastion.config.loader import load_settings
from bastion.config.settings import Settings
from bastion.errors import BastionError
from bastion.store.db import Database
from bastion.vault.crypto import MasterKey, VaultError

T = TypeVar("T")

app = typer.Typer(help="Prompt vault master keys: rotate and inspect.", no_args_is_help=True)


def load(config: Path | None, data_dir: Path | None = None) -> Settings:
    use_data_dir(data_dir)
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    from bastion.observability.logging import configure_logging

    # Logs (redacted, to stderr) must not mix with the JSON these commands print on stdout.
    configure_logging(settings.logging)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter is not news here
    return settings


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database, migrated first when the gateway would migrate it (SQLite)."""
    db = Database.from_settings(settings)
    try:
        if settings.auto_migrate or (settings.auto_migrate is None and db.is_sqlite):
            from bastion.store.migrate import upgrade

            await upgrade(db.engine)
        yield db
    finally:
        await db.dispose()


def run(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` against the database; vault and request errors become a message and exit 1."""

    async def main() -> T:
        async with open_database(settings) as db:
            return await work(db)

    try:
        return asyncio.run(main())
    except (VaultError, BastionError) as exc:
        message = exc.message if isinstance(exc, BastionError) else str(exc)
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def _new_key(hex_value: str | None, env_name: str | None) -> MasterKey | None:
    if hex_value and env_name:
        raise VaultError("give --new-key-hex or --new-key-env, not both")
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise VaultError(f"environment variable {env_name} is not set")
        return MasterKey.from_hex(value)
    return MasterKey.from_hex(hex_value) if hex_value else None


@app.command()
def rotate(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    new_key_hex: Annotated[
        str | None, typer.Option(help="BASTION_MASTER_KEY mode: the new key (64 hex). Prefer --new-key-env.")
    ] = None,
    new_key_env: Annotated[
        str | None, typer.Option(help="BASTION_MASTER_KEY mode: read the new key from this environment variable.")
    ] = None,
    keep_old: Annotated[bool, typer.Option(help="Key file mode: keep the old keys in the file.")] = False,
    resume: Annotated[
        bool, typer.Option(help="Key file mode: finish an interrupted rotation without making another key.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Versions read per batch.")] = 100,
) -> None:
    """Re-wrap every prompt's data key under a new master key (gateways keep serving)."""
    from bastion.vault.rotation import rotate_key_file, rotate_to_key

    settings = load(config, data_dir)
    try:
        new_key = _new_key(new_key_hex, new_key_env)
    except VaultError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if settings.master_key is not None or new_key is not None:
        report = run(settings, lambda db: rotate_to_key(settings, db, new_key, batch_size=batch_size))
    else:
        report = run(
            settings,
            lambda db: rotate_key_file(settings, db, keep_old=keep_old, resume=resume, batch_size=batch_size),
        )
    typer.echo(f"active key id: {report.active_key_id}")
    typer.echo(f"re-wrapped versions: {report.rewrapped}; still on other keys: {report.remaining}")
    if report.key_file:
        dropped = ", ".join(report.dropped_key_ids) or "none"
        typer.echo(f"key file {report.key_file}: dropped key ids: {dropped}")
        typer.echo("Back up the key file now: prompts cannot be decrypted without it.")
    elif new_key is not None:
        typer.echo(
            "Now deploy the new key as BASTION_MASTER_KEY, with the old key in vault.previous_keys until every "
            "gateway runs with the new key; then remove the old one. Back up the new key."
        )
    if report.remaining:
        raise typer.Exit(1)


@app.command()
def status(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """The active key id, and how many prompt versions each key id wraps."""
    from bastion.vault.keys import key_file_path
    from bastion.vault.keysource import KeyringSource
    from bastion.vault.service import VaultService

    settings = load(config, data_dir)

    async def work(db: Database) -> tuple[Any, dict[str, int]]:
        source = KeyringSource(settings)
        keyring = source.load()
        return keyring, await VaultService(db, settings, keyring=keyring).key_usage()

    keyring, usage = run(settings, work)
    source = "BASTION_MASTER_KEY" if settings.master_key is not None else f"key file {key_file_path(settings)}"
    typer.echo(f"master key source: {source}")
    typer.echo(f"active key id: {keyring.active.key_id}")
    typer.echo(f"known key ids: {', '.join(keyring.key_ids)}")
    if not usage:
        typer.echo("no prompt versions stored")
    for key_id, count in usage.items():
        state = "active" if key_id == keyring.active.key_id else "known" if key_id in keyring else "UNKNOWN"
        typer.echo(f"{key_id}  {count} version(s)  [{state}]")
    if any(key_id not in keyring for key_id in usage):
        typer.secho("error: some versions are wrapped with a key this configuration lacks", fg="red", err=True)
        raise typer.Exit(1)
