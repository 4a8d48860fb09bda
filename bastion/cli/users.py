"""``bastion users``: create, list, disable and enable the users of a tenant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth import manage
from bastion.auth.lookup import ensure_tenant
from bastion.auth.principal import Role
from bastion.auth.schemas import TenantCreate, UserCreate, UserUpdate, describe
from bastion.cli.access_common import ConfigOption, DataDirOption, JsonOption, actor, fail, load, run, table
from bastion.errors import NotFound
from bastion.store.models import Tenant, User

app = typer.Typer(help="Users of a tenant (they sign in with JWTs or own API keys).", no_args_is_help=True)

_COLUMNS = ["id", "email", "name", "role", "disabled", "created_at"]


async def _tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = await manage.tenant_by_name(session, name)
    if tenant is None:
        raise NotFound(f"No tenant named {name!r}.")
    return tenant


async def _user(session: AsyncSession, tenant_id: str, user: str) -> User:
    if "@" in user:
        found = await manage.user_by_email(session, tenant_id, user)
        if found is None:
            raise NotFound(f"No user with email {user!r} in this tenant.")
        return found
    return await manage.user_in_tenant(session, tenant_id, user)


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant name; created if it does not exist.")],
    email: Annotated[str, typer.Option(help="The user's email (unique in the tenant).")],
    role: Annotated[Role, typer.Option(help="The user's role.")] = Role.VIEWER,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a user."""
    settings = load(config, data_dir)
    try:
        TenantCreate(name=tenant)
        data = UserCreate(email=email, name=name, role=role)
    except ValidationError as exc:
        raise fail(describe(exc)) from None

    async def work(session: AsyncSession) -> User:
        tenant_row = await ensure_tenant(session, tenant)
        return await manage.create_user(session, tenant_row.id, data, actor())

    user = run(settings, work, changes_access=True)
    typer.echo(json.dumps(manage.user_view(user)) if as_json else f"Created user {user.email} (id {user.id}).")


@app.command("list")
def list_users(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a tenant's users."""
    settings = load(config, data_dir)

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        tenant_row = await _tenant(session, tenant)
        rows: list[dict[str, Any]] = []
        page = manage.PageRequest(limit=manage.MAX_PAGE)
        while True:
            result = await manage.list_users(session, tenant_row.id, page)
            rows += [manage.user_view(user) for user in result.items]
            if result.next_cursor is None:
                return rows
            page = manage.PageRequest(limit=manage.MAX_PAGE, cursor=result.next_cursor)

    rows = run(settings, work)
    typer.echo(json.dumps(rows) if as_json else table(rows, _COLUMNS))


def _set_disabled(tenant: str, user: str, disabled: bool, config: Path | None, data_dir: Path | None) -> None:
    settings = load(config, data_dir)

    async def work(session: AsyncSession) -> User:
        tenant_row = await _tenant(session, tenant)
        found = await _user(session, tenant_row.id, user)
        return await manage.update_user(session, found, UserUpdate(disabled=disabled), actor())

    changed = run(settings, work, changes_access=True)
    typer.echo(f"{'Disabled' if disabled else 'Enabled'} user {changed.email} (id {changed.id}).")


@app.command("disable")
def disable(
    user: Annotated[str, typer.Argument(help="The user's id or email.")],
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Disable a user: their JWTs and keys are refused from the next request on."""
    _set_disabled(tenant, user, True, config, data_dir)


@app.command("enable")
def enable(
    user: Annotated[str, typer.Argument(help="The user's id or email.")],
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Enable a disabled user again."""
    _set_disabled(tenant, user, False, config, data_dir)
