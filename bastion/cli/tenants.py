"""``bastion tenants``: create and list tenants."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth import manage
from bastion.auth.schemas import TenantCreate, describe
from bastion.cli.access_common import ConfigOption, DataDirOption, JsonOption, actor, fail, load, run, table
from bastion.store.models import Tenant

app = typer.Typer(help="Tenants: isolated groups of users, keys, limits and data.", no_args_is_help=True)

_COLUMNS = ["name", "id", "disabled", "created_at"]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Tenant name (letters, digits, '.', '_', '-').")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant (then give it an admin: bastion keys create --role admin --tenant NAME)."""
    settings = load(config, data_dir)
    try:
        data = TenantCreate(name=name)
    except ValidationError as exc:
        raise fail(describe(exc)) from None

    async def work(session: AsyncSession) -> Tenant:
        return await manage.create_tenant(session, data, actor())

    tenant = run(settings, work, changes_access=True)
    typer.echo(json.dumps(manage.tenant_view(tenant)) if as_json else f"Created tenant {tenant.name} (id {tenant.id}).")


@app.command("list")
def list_tenants(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List every tenant."""
    settings = load(config, data_dir)

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = manage.PageRequest(limit=manage.MAX_PAGE)
        while True:
            result = await manage.list_tenants(session, page)
            rows += [manage.tenant_view(tenant) for tenant in result.items]
            if result.next_cursor is None:
                return rows
            page = manage.PageRequest(limit=manage.MAX_PAGE, cursor=result.next_cursor)

    rows = run(settings, work)
    typer.echo(json.dumps(rows) if as_json else table(rows, _COLUMNS))
