"""``bastion keys``: create, list and revoke API keys from the terminal.

This is how the first admin key of a fresh install is made (there is no default password):

    bastion keys create --role admin --tenant acme
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth import manage
from bastion.auth.lookup import ensure_tenant
from bastion.auth.principal import Role
from bastion.auth.schemas import KeyCreate, KeySettings, TenantCreate, describe
from bastion.cli.access_common import (
    ConfigOption,
    DataDirOption,
    JsonOption,
    actor,
    fail,
    load,
    parse_duration,
    run,
    table,
)
from bastion.cli.options import describe_data_dir
from bastion.errors import InvalidRequest, NotFound
from bastion.store.models import ApiKey

app = typer.Typer(help="API keys: create (shown once), list by prefix, revoke.", no_args_is_help=True)

_KEY_ID = re.compile(r"^[0-9a-f]{32}$")
_COLUMNS = ["prefix", "id", "name", "role", "user_id", "created_at", "expires_at", "revoked_at"]


async def _resolve_user(session: AsyncSession, tenant_id: str, user: str) -> str:
    if "@" in user:
        found = await manage.user_by_email(session, tenant_id, user)
        if found is None:
            raise NotFound(f"No user with email {user!r} in this tenant.")
        return found.id
    return (await manage.user_in_tenant(session, tenant_id, user)).id


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant name; created if it does not exist.")],
    role: Annotated[Role, typer.Option(help="Role of the key.")] = Role.SERVICE,
    name: Annotated[str, typer.Option(help="A label to tell keys apart.")] = "",
    expires_in: Annotated[str | None, typer.Option(help="Lifetime, e.g. 30d, 12h, 90m.")] = None,
    user: Annotated[str | None, typer.Option(help="Owner: a user's id or email in the tenant.")] = None,
    platform: Annotated[bool, typer.Option("--platform", help="May manage every tenant (admin role only).")] = False,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute for this key.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute for this key.")] = None,
    daily_usd: Annotated[float | None, typer.Option(help="Daily budget in USD.")] = None,
    monthly_usd: Annotated[float | None, typer.Option(help="Monthly budget in USD.")] = None,
    max_request_usd: Annotated[float | None, typer.Option(help="Most one request may cost, in USD.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it once. Store it: only its hash is kept."""
    settings = load(config, data_dir)
    expires_at = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    limits = {"rpm": rpm, "tpm": tpm, "daily_usd": daily_usd, "monthly_usd": monthly_usd}
    limits["max_request_usd"] = max_request_usd
    try:
        TenantCreate(name=tenant)
        data = KeyCreate(name=name, role=role, expires_at=expires_at, settings=KeySettings(**limits))
    except ValidationError as exc:
        raise fail(describe(exc)) from None

    async def work(session: AsyncSession) -> tuple[ApiKey, str, str]:
        tenant_row = await ensure_tenant(session, tenant)
        owned = data.model_copy(update={"user_id": await _resolve_user(session, tenant_row.id, user)}) if user else data
        key, secret = await manage.create_key(session, tenant_row.id, owned, actor(), platform_admin=platform)
        return key, secret, tenant_row.name

    key, secret, tenant_name = run(settings, work)
    if as_json:
        typer.echo(json.dumps({**manage.key_view(key), "tenant": tenant_name, "key": secret}))
        return
    kind = "platform admin" if platform else key.role
    typer.echo(f"Created {kind} key {key.prefix}... (id {key.id}) in tenant {tenant_name!r}.", err=True)
    typer.echo(secret)
    typer.secho("Store this key now: it is shown only once and cannot be recovered.", fg=typer.colors.YELLOW, err=True)
    where = (
        f"data directory {describe_data_dir(settings)}" if settings.database_url is None else "the configured database"
    )
    typer.echo(
        f"Stored in {where}: start the gateway with the same one.\n"
        "Send it on every /v1 call as `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key: <key>` "
        "(Anthropic clients).",
        err=True,
    )


@app.command("list")
def list_keys(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    prefix: Annotated[str | None, typer.Option(help="Only keys whose prefix starts with this.")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a tenant's keys by prefix (never the keys themselves)."""
    settings = load(config, data_dir)

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        tenant_row = await manage.tenant_by_name(session, tenant)
        if tenant_row is None:
            raise NotFound(f"No tenant named {tenant!r}.")
        rows: list[dict[str, Any]] = []
        page = manage.PageRequest(limit=manage.MAX_PAGE)
        while True:
            result = await manage.list_keys(session, tenant_row.id, page, prefix=prefix, include_revoked=all_keys)
            rows += [manage.key_view(key) for key in result.items]
            if result.next_cursor is None:
                return rows
            page = manage.PageRequest(limit=manage.MAX_PAGE, cursor=result.next_cursor)

    rows = run(settings, work)
    typer.echo(json.dumps(rows) if as_json else table(rows, _COLUMNS))


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's id, or its listed prefix (bst_...).")],
    tenant: Annotated[str | None, typer.Option(help="Only look in this tenant.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a key; running gateways refuse it from their next request on."""
    settings = load(config, data_dir)

    async def work(session: AsyncSession) -> ApiKey:
        tenant_id = None
        if tenant is not None:
            tenant_row = await manage.tenant_by_name(session, tenant)
            if tenant_row is None:
                raise NotFound(f"No tenant named {tenant!r}.")
            tenant_id = tenant_row.id
        if _KEY_ID.match(key):
            found = await session.get(ApiKey, key)
            matches = [found] if found is not None and tenant_id in (None, found.tenant_id) else []
        elif key.startswith("bst_") and len(key) >= 5:
            # A whole key pasted by mistake is cut to its listed prefix: it is never looked up or shown.
            matches = await manage.keys_by_prefix(session, key[:12], tenant_id)
        else:
            raise InvalidRequest("Give the key's 32-character id or its prefix (bst_...).")
        if not matches:
            raise NotFound("No such key.")
        if len(matches) > 1:
            ids = ", ".join(match.id for match in matches)
            raise InvalidRequest(f"The prefix matches {len(matches)} keys ({ids}); give the id instead.")
        return await manage.revoke_key(session, matches[0], actor())

    revoked = run(settings, work, changes_access=True)
    typer.echo(f"Revoked key {revoked.prefix}... (id {revoked.id}).")
