"""``bastion agents``: the templates, start a run (as a user of a tenant, and wait for it by
running it here), show a run, print its trace (verified), cancel it. The same service and JSON
shapes as ``/v1/agents``; ``show``, ``trace`` and ``cancel`` act across tenants, as ``bastion jobs``
does."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import select

from bastion.agents.runner import wait_finished
from bastion.agents.service import AgentRuns, parse_run_request, run_json, trace_json
from bastion.agents.store import AgentRunStore
from bastion.agents.templates import shipped_templates
from bastion.auth import manage
from bastion.auth.principal import Identity, Permission, require
from bastion.cli.access_common import ConfigOption, DataDirOption, fail, load, run_reporting
from bastion.config.settings import Settings
from bastion.errors import NotFound
from bastion.gateway.compose import build_gateway
from bastion.gateway.service import Gateway
from bastion.store.models import User

T = TypeVar("T")

app = typer.Typer(help="Agent runs: templates, run, show, trace, cancel.", no_args_is_help=True)


def _with_gateway(settings: Settings, work: Callable[[Gateway, AgentRuns], Awaitable[T]], *, workers: int = 0) -> T:
    """Run ``work`` with the gateway's services (``workers``: agent runs executed in this process)."""

    async def main() -> T:
        gateway = build_gateway(settings, job_workers=workers)
        await gateway.start()
        try:
            agents = gateway.services.agents
            if agents is None:
                raise NotFound("Agent runs are not enabled (agents.enabled is false).")
            return await work(gateway, agents)
        finally:
            await gateway.stop()

    return run_reporting(main)


def _json_argument(text: str | None, name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"--{name} is not JSON: {exc}") from None


@app.command("templates")
def templates(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The shipped plan templates: name, steps and description."""
    load(config, data_dir)  # a broken configuration is reported here as everywhere
    for plan in shipped_templates().values():
        steps = [f"{s.id}:{s.arm.value}" for s in plan.steps]
        if as_json:
            typer.echo(json.dumps({"name": plan.name, "description": plan.description, "steps": steps}))
        else:
            typer.echo(f"{plan.name}  {' -> '.join(steps)}  {plan.description or ''}".rstrip())


@app.command("run")
def run(
    template: Annotated[str, typer.Argument(help="The template's name (bastion agents templates).")],
    tenant: Annotated[str, typer.Option(help="The tenant the run belongs to (its name).")],
    user: Annotated[str, typer.Option(help="The user it runs as (email; needs agents:run).")],
    input_json: Annotated[str, typer.Option("--input", help="The run's input, a JSON object.")] = "{}",
    budget: Annotated[str | None, typer.Option(help="The run's budget, a JSON object.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run it here and print the result.")] = True,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds --wait waits.")] = 600.0,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Start a run of a template; print the run (JSON) when it ends, or at once with --no-wait."""
    settings = load(config, data_dir)
    body: dict[str, Any] = {"template": template, "input": _json_argument(input_json, "input")}
    if budget is not None:
        body["budget"] = _json_argument(budget, "budget")

    async def work(gateway: Gateway, agents: AgentRuns) -> dict[str, Any]:
        request = parse_run_request(body)
        owner, tenant_name = await _owner(gateway, tenant, user)
        principal = await gateway.services.authenticator.principal_of(owner)
        require(principal, Permission.RUN_AGENTS)
        view = await agents.start(owner, tenant_name, request)
        if wait:
            done = await wait_finished(agents.store, view.id, timeout)
            view = done or await agents.get(view.tenant_id, view.id)
        return run_json(view)

    typer.echo(json.dumps(_with_gateway(settings, work, workers=1 if wait else 0), default=str))


async def _owner(gateway: Gateway, tenant: str, email: str) -> tuple[Identity, str]:
    async with gateway.services.db.session() as session:
        row = await manage.tenant_by_name(session, tenant)
        if row is None:
            raise NotFound(f"No tenant named {tenant!r}.")
        found = await session.execute(select(User).where(User.tenant_id == row.id, User.email == email))
        person = found.scalar_one_or_none()
    if person is None:
        raise NotFound(f"No user {email!r} in tenant {tenant!r}.")
    return Identity(row.id, "cli", user_id=person.id), row.name


def _stored(settings: Settings, run_id: str, shape: Callable[[Any], dict[str, Any]]) -> None:
    async def work(gateway: Gateway, agents: AgentRuns) -> dict[str, Any]:
        view = await AgentRunStore(gateway.services.db).load(run_id)
        if view is None:
            raise NotFound(f"No agent run {run_id!r}.")
        return shape(await agents.get(view.tenant_id, run_id))

    typer.echo(json.dumps(_with_gateway(settings, work), default=str))


@app.command("show")
def show(run_id: str, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """A run: status, reason, outputs, spending (JSON)."""
    _stored(load(config, data_dir), run_id, run_json)


@app.command("trace")
def trace(run_id: str, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """A run's trace: events, hash-chain links, and whether the chain verifies (JSON)."""
    _stored(load(config, data_dir), run_id, trace_json)


@app.command("cancel")
def cancel(run_id: str, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Cancel a run (a running one stops within about a second, its sandboxed command killed)."""
    settings = load(config, data_dir)

    async def work(gateway: Gateway, agents: AgentRuns) -> dict[str, Any]:
        view = await AgentRunStore(gateway.services.db).load(run_id)
        if view is None:
            raise NotFound(f"No agent run {run_id!r}.")
        return run_json(await agents.cancel(view.tenant_id, run_id))

    typer.echo(json.dumps(_with_gateway(settings, work), default=str))
