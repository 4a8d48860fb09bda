"""``bastion ledger``: read the ledger (every call through the gateway) from the terminal.

The same rows as ``GET /api/v1/admin/interactions``, one JSON object per line, newest first; like
the API, every read is scoped to one tenant. Run it with the gateway's data directory or database.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer

from bastion.cli.access_common import ConfigOption, DataDirOption, fail, load, run_for_tenant
from bastion.config.settings import Settings
from bastion.errors import NotFound
from bastion.ledger.store import MAX_PAGE, InteractionFilter, get_interaction, list_interactions, to_json
from bastion.store.db import Database

T = TypeVar("T")

app = typer.Typer(help="The ledger: list recent interactions, show one in full.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option(help="Tenant name (the ledger is read one tenant at a time).")]


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--{name} must be an ISO 8601 time, e.g. 2025-01-31T12:00") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _read(settings: Settings, tenant: str, work: Callable[[Database, str], Awaitable[T]]) -> T:
    """Run ``work`` with the database and the tenant's id; failures are one line, as in every command."""

    async def with_tenant(db: Database, tenant_id: str | None) -> T:
        assert tenant_id is not None  # a tenant name was given
        return await work(db, tenant_id)

    return run_for_tenant(settings, tenant, with_tenant)


@app.command("list")
def list_rows(
    tenant: TenantOption,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Most rows to print.")] = 20,
    model: Annotated[str | None, typer.Option(help="Only calls to this model name.")] = None,
    key_id: Annotated[str | None, typer.Option(help="Only calls made with this key id.")] = None,
    status: Annotated[int | None, typer.Option(help="Only answers with this HTTP status.")] = None,
    flagged: Annotated[
        bool | None, typer.Option("--flagged/--not-flagged", help="Only flagged (or unflagged).")
    ] = None,
    since: Annotated[str | None, typer.Option("--from", help="From this time on (ISO 8601, UTC unless zoned).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Before this time (ISO 8601).")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Recent interactions of a tenant, newest first, one JSON object per line (no content)."""
    settings = load(config, data_dir)
    window = (_time(since, "from"), _time(until, "to"))

    async def work(db: Database, tenant_id: str) -> list[dict[str, Any]]:
        filters = InteractionFilter(
            tenant_id=tenant_id,
            since=window[0],
            until=window[1],
            key_id=key_id,
            model=model,
            status=status,
            flagged=flagged,
        )
        rows, _ = await list_interactions(db, filters, limit=limit)
        return [to_json(row) for row in rows]

    for row in _read(settings, tenant, work):
        typer.echo(json.dumps(row, default=str))


@app.command("show")
def show(
    interaction_id: Annotated[str, typer.Argument(help="The interaction's id (from `bastion ledger list`).")],
    tenant: TenantOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """One interaction in full, its recorded content included, as JSON."""
    settings = load(config, data_dir)

    async def work(db: Database, tenant_id: str) -> dict[str, Any]:
        row = await get_interaction(db, tenant_id, interaction_id)
        if row is None:
            raise NotFound(f"No interaction {interaction_id!r} in tenant {tenant!r}.")
        return to_json(row)

    typer.echo(json.dumps(_read(settings, tenant, work), default=str, indent=2))
