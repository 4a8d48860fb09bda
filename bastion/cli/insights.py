"""``bastion insights``: keep the roll-ups over the ledger from the terminal.

bastion insights rebuild     drop every roll-up and recompute them from the ledger
bastion insights run         one increment from the watermark (what the background job does)
bastion insights prune       delete ledger rows and roll-ups past their retention
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from bastion.cli.access_common import ConfigOption, DataDirOption, database, fail, load
from bastion.errors import BastionError
from bastion.insights.rollup import Rollup

app = typer.Typer(help="Insights: roll-ups over the ledger (docs/INSIGHTS.md).", no_args_is_help=True)

_OWNER = "cli"


def _run(config: Any, data_dir: Any, work: Callable[[Rollup], Awaitable[dict[str, Any]]]) -> None:
    settings = load(config, data_dir)

    async def main() -> dict[str, Any]:
        async with database(settings) as db:
            rollup = Rollup(db, settings.insights)
            if not await rollup.claim(_OWNER):
                raise BastionError("another roll-up is running; try again when it is done.")
            try:
                return await work(rollup)
            finally:
                await rollup.release(_OWNER)

    try:
        typer.echo(json.dumps(asyncio.run(main()), sort_keys=True))
    except BastionError as exc:
        raise fail(exc.message) from None
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


@app.command("rebuild")
def rebuild(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Drop every roll-up and recompute them from the ledger rows there are (roll-ups older than
    the oldest ledger row are lost); prints what was done as JSON."""

    async def work(rollup: Rollup) -> dict[str, Any]:
        return (await rollup.rebuild()).to_json()

    _run(config, data_dir, work)


@app.command("run")
def run(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Roll up what was written since the watermark, as the background job does."""

    async def work(rollup: Rollup) -> dict[str, Any]:
        return (await rollup.run()).to_json()

    _run(config, data_dir, work)


@app.command("prune")
def prune(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Delete ledger rows and roll-ups older than their retention (``insights.retention``)."""

    async def work(rollup: Rollup) -> dict[str, Any]:
        return {"pruned": await rollup.prune()}

    _run(config, data_dir, work)
