"""What the ``keys``, ``users``, ``tenants`` and ``db`` commands share: configuration, the database,
error reporting, and invalidating running gateways' auth caches after a change."""

from __future__ import annotations

import asyncio
import getpass
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.cli.options import ConfigOption, DataDirOption, use_data_dir
from bastion.config.errors import ConfigError
from bastion.config.loader import load_settings
from bastion.config.settings import Settings
from bastion.errors import BastionError
from bastion.store.db import Database

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


__all__ = ["ConfigOption", "DataDirOption"]


def load(config: Path | None, data_dir: Path | None = None) -> Settings:
    use_data_dir(data_dir)
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def actor() -> str:
    """Audit label of the person at the terminal."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``3600`` (seconds), ``2w``."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise typer.BadParameter("expected a positive duration such as 30d, 12h, 90m or 3600")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def auto_migrates(settings: Settings, db: Database) -> bool:
    # The same rule as ``bastion serve``: the embedded SQLite database migrates itself.
    return settings.auto_migrate if settings.auto_migrate is not None else db.is_sqlite


@asynccontextmanager
async def database(settings: Settings, *, migrate: bool | None = None) -> AsyncIterator[Database]:
    db = Database.from_settings(settings)
    try:
        if migrate if migrate is not None else auto_migrates(settings, db):
            from bastion.store.migrate import upgrade

            await upgrade(db.engine)
        yield db
    finally:
        await db.dispose()


def run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, changes_access: bool = False) -> T:
    """Run ``work`` in one transaction; report failures as one line (never a traceback)."""

    async def main() -> T:
        async with database(settings) as db, db.transaction() as session:
            result = await work(session)
        if changes_access:
            await invalidate_gateways(settings)
        return result

    try:
        return asyncio.run(main())
    except BastionError as exc:
        raise fail(exc.message) from None
    except (SQLAlchemyError, OSError) as exc:
        hint = "" if settings.database_url is None else " (has `bastion db upgrade` been run?)"
        raise fail(f"database error{hint}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def run_for_tenant(settings: Settings, tenant: str | None, work: Callable[[Database, str | None], Awaitable[T]]) -> T:
    """Run ``work`` with the database and the id of the tenant named ``tenant`` (None: no tenant
    given); a missing tenant and any failure are one line, as in every command."""
    from bastion.auth import manage
    from bastion.errors import NotFound

    async def main() -> T:
        async with database(settings) as db:
            tenant_id = None
            if tenant is not None:
                async with db.session() as session:
                    row = await manage.tenant_by_name(session, tenant)
                if row is None:
                    raise NotFound(f"No tenant named {tenant!r}.")
                tenant_id = row.id
            return await work(db, tenant_id)

    return run_reporting(main)


def run_reporting(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())``, with a refusal or a database failure as one line (exit status 1)."""
    try:
        return asyncio.run(main())
    except BastionError as exc:
        raise fail(exc.message) from None
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


async def invalidate_gateways(settings: Settings) -> None:
    """Bump the auth epoch so running gateways stop trusting cached credentials at once."""
    from bastion.auth.epoch import BUMP_SCRIPT, FileEpoch, epoch_file, new_generation

    epoch = FileEpoch(epoch_file(settings))
    try:
        epoch.bump()
    finally:
        epoch.close()
    if not settings.redis_url:
        return
    from bastion.store.redis import create_redis

    redis = create_redis(settings.redis_url)
    try:
        await redis.eval(BUMP_SCRIPT, 1, settings.auth.epoch_key, new_generation())
    except Exception as exc:
        typer.secho(
            f"warning: could not reach Redis to notify running gateways ({type(exc).__name__}). Gateways that "
            "see Redis fail re-verify every cached credential once it is back; one that sees no failure may "
            f"accept a cached credential for up to auth.cache_ttl_s ({settings.auth.cache_ttl_s} s). "
            "Run the command again once Redis is reachable to notify them at once.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    finally:
        await redis.aclose()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(row.get(column) if row.get(column) is not None else "-") for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns))]
    lines += ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)
