"""``bastion db``: schema migrations of the configured database."""

from __future__ import annotations

import asyncio

import typer
from sqlalchemy.exc import SQLAlchemyError

from bastion.cli.access_common import ConfigOption, DataDirOption, database, fail, load

app = typer.Typer(help="The database: apply migrations, show the schema revision.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Apply every pending Alembic migration to the configured database."""
    from bastion.store.migrate import current_revision

    settings = load(config, data_dir)

    async def main() -> tuple[str, str | None]:
        async with database(settings, migrate=True) as db:
            return db.url, await current_revision(db.engine)

    try:
        url, revision = asyncio.run(main())
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"migration failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    typer.echo(f"Database {url} is at revision {revision}.")


@app.command("current")
def current(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Print the database's schema revision."""
    from bastion.store.migrate import current_revision

    settings = load(config, data_dir)

    async def main() -> tuple[str, str | None]:
        async with database(settings, migrate=False) as db:
            return db.url, await current_revision(db.engine)

    try:
        url, revision = asyncio.run(main())
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"cannot read the database: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    typer.echo(f"Database {url} is at revision {revision or '(none: run `bastion db upgrade`)'}.")
