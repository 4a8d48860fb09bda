"""``bastion redteam``: the attack library, runs and garak imports from the terminal, on the
gateway's database (the same service and JSON shapes as ``/v1/redteam``).

bastion redteam attacks [--category C]       the library
bastion redteam run --model M ...            a run in this process (the gateway's models and guard),
                                             or with --url on a running gateway (BASTION_API_KEY)
bastion redteam show ID [--report]           a run (with --report: its JSON report)
bastion redteam import-garak FILE            a garak report stored as a run
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bastion.auth import manage
from bastion.auth.principal import Identity
from bastion.cli.access_common import ConfigOption, DataDirOption, database, fail, load, run_reporting
from bastion.cli.redteam_remote import RemoteError, run_remote
from bastion.config.settings import Settings
from bastion.errors import BastionError, NotFound
from bastion.jobs.service import JobService
from bastion.redteam.garak import parse_garak_report
from bastion.redteam.html import render_html
from bastion.redteam.schema import load_library
from bastion.redteam.service import RedteamService
from bastion.redteam.spec import MODES, RunSpec, parse_run_spec

T = TypeVar("T")

app = typer.Typer(help="Red team: attacks, runs, garak imports (docs/REDTEAM.md).", no_args_is_help=True)

TenantOption = Annotated[str | None, typer.Option(help="The tenant (its name); default: auth.default_tenant.")]


def _echo(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


async def _tenant_id(db: Any, settings: Settings, tenant: str | None) -> str:
    name = tenant or settings.auth.default_tenant
    async with db.session() as session:
        row = await manage.tenant_by_name(session, name)
    if row is None:
        raise NotFound(f"No tenant named {name!r}.")
    return str(row.id)


def _with_service(settings: Settings, work: Callable[[RedteamService, Any], Awaitable[T]]) -> T:
    async def main() -> T:
        async with database(settings) as db:
            jobs = JobService.from_settings(settings, db, workers=0)
            return await work(RedteamService(db, jobs), db)

    return run_reporting(main)


@app.command("attacks")
def attacks(category: Annotated[str | None, typer.Option(help="Only this category.")] = None) -> None:
    """The attack library as JSON (id, category, technique, goal, source, licence)."""
    listed = [
        {
            "id": a.id,
            "category": a.category,
            "technique": a.technique,
            "goal": a.resolved_goal,
            "source": a.source,
            "licence": a.licence,
        }
        for a in sorted(load_library(), key=lambda a: a.id)
        if category is None or a.category == category
    ]
    _echo(listed)


@app.command("show")
def show(
    run_id: str,
    report: Annotated[bool, typer.Option("--report", help="Print the JSON report instead.")] = False,
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A run: status, progress and summary (``--report``: its report)."""
    settings = load(config, data_dir)

    async def work(service: RedteamService, db: Any) -> Any:
        tenant_id = await _tenant_id(db, settings, tenant)
        if report:
            return await service.report(tenant_id, run_id)
        return (await service.view(tenant_id, run_id)).to_json()

    _echo(_with_service(settings, work))


@app.command("import-garak")
def import_garak(
    file: Path,
    target: Annotated[str | None, typer.Option(help="The model's name, when the report has none.")] = None,
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Store a garak report (``garak.<run>.report.jsonl``) as a run of the tenant."""
    settings = load(config, data_dir)
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None

    async def work(service: RedteamService, db: Any) -> Any:
        tenant_id = await _tenant_id(db, settings, tenant)
        owner = Identity(tenant_id, "cli")
        return (await service.import_garak(owner, parse_garak_report(text, target=target))).to_json()

    _echo(_with_service(settings, work))


def _run_body(
    model: str,
    prompt: str | None,
    guard: bool | None,
    mode: str | None,
    categories: list[str] | None,
    seed: int,
    max_attempts: int | None,
    concurrency: int,
) -> dict[str, Any]:
    if mode is not None and mode not in MODES:
        raise fail(f"--mode must be {' or '.join(MODES)}.")
    if mode is not None and guard is not None and guard != (mode == "gateway"):
        raise fail(f"--mode {mode} contradicts --{'guard' if guard else 'no-guard'}.")
    # --categories a,b and --category a --category b alike.
    names = [name.strip() for value in categories or [] for name in value.split(",") if name.strip()]
    body: dict[str, Any] = {"model": model, "prompt": prompt, "seed": seed, "concurrency": concurrency,
                            "categories": names}  # fmt: skip
    body["guard"] = (mode == "gateway") if mode is not None else (True if guard is None else guard)
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    return body


def _write_reports(report: dict[str, Any], out: Path | None, html: Path | None) -> None:
    """``--out`` a ``.json`` file: the JSON report there; otherwise a directory that gets
    ``report.json`` and ``report.html``. ``--html FILE``: the page there as well."""
    try:
        if out is not None and out.suffix.lower() == ".json":
            out.write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
        elif out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
            (out / "report.html").write_text(render_html(report), encoding="utf-8")
        if html is not None:
            html.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write the report: {exc.strerror}") from None


@app.command("run")
def run(
    model: Annotated[str, typer.Option(help="The model (alias) to attack.")],
    key_id: Annotated[
        str | None, typer.Option("--key-id", help="In process: the API key the attempts run as (its id).")
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="A vault prompt id: its text is the system prompt.")] = None,
    guard: Annotated[bool | None, typer.Option("--guard/--no-guard", help="Through the guard, or not.")] = None,
    mode: Annotated[
        str | None, typer.Option(help="gateway (through the guard, the default) or model (the guard bypassed).")
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option("--category", "--categories", help="Only these categories (repeat, or comma-separated)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the run.")] = 0,
    max_attempts: Annotated[int | None, typer.Option(help="At most this many attempts.")] = None,
    concurrency: Annotated[int, typer.Option(help="Attempts at once.")] = 4,
    out: Annotated[
        Path | None, typer.Option(help="A directory for report.json and report.html (or a .json file).")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    url: Annotated[
        str | None, typer.Option(help="A running gateway to run on (the key in BASTION_API_KEY) instead.")
    ] = None,
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the red team in this process (the gateway's configuration: models, guard, ledger), as
    the API key ``--key-id`` of the tenant, or on the gateway at ``--url`` as the key in
    ``BASTION_API_KEY``; prints the run with its summary."""
    body = _run_body(model, prompt, guard, mode, category, seed, max_attempts, concurrency)
    try:
        spec = parse_run_spec(body)
    except BastionError as exc:
        raise fail(exc.message) from None
    if url is not None:
        result = _remote(url, body)
    else:
        if key_id is None:
            raise fail("--key-id is required without --url (the API key the attempts run as).")
        result = _in_process(load(config, data_dir), spec, key_id, tenant)
    if result["report"] is not None:
        _write_reports(result["report"], out, html)
    _echo(result["view"])
    if result["view"]["status"] != "succeeded":
        raise typer.Exit(1)


def _remote(url: str, body: dict[str, Any]) -> dict[str, Any]:
    api_key = os.environ.get("BASTION_API_KEY", "").strip()
    if not api_key:
        raise fail("--url needs the API key in BASTION_API_KEY.")
    try:
        result = run_remote(url, api_key, body)
    except RemoteError as exc:
        raise fail(str(exc)) from None
    return {"view": result.run, "report": result.report}


def _in_process(settings: Settings, spec: RunSpec, key_id: str, tenant: str | None) -> dict[str, Any]:
    from bastion.gateway.compose import build_gateway

    async def main() -> dict[str, Any]:
        gateway = build_gateway(settings, job_workers=1)
        services = gateway.services
        await gateway.start()
        try:
            assert services.redteam is not None
            group = services.router.groups.get(spec.model)
            if group is None or group.kind != "chat":
                raise BastionError(f"{spec.model!r} is not a chat model of this gateway.")
            tenant_id = await _tenant_id(services.db, settings, tenant)
            await services.authenticator.principal_of(Identity(tenant_id, "api_key", key_id))  # 401 early
            view = await services.redteam.submit(Identity(tenant_id, "api_key", key_id), spec)
            while view.status not in ("succeeded", "failed", "cancelled"):
                await asyncio.sleep(0.2)
                view = await services.redteam.view(tenant_id, view.run.id)
            return {"view": view.to_json(), "report": view.run.report}
        finally:
            await gateway.stop()

    result: dict[str, Any] = run_reporting(main)
    return result
