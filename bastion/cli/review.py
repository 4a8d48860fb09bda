"""``bastion review`` and ``bastion datasets``: the review queue and fine-tune datasets from the
terminal, against the configured database, as an administrator of one tenant (``--tenant``).
Every action is audited as ``cli:<login>``. Exports run here, not as a job, and are written to
``--output`` besides being kept (with their report) in the export history."""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import select

from bastion.auth.principal import Principal, Role
from bastion.cli.access_common import actor
from bastion.cli.options import ConfigOption, DataDirOption
from bastion.cli.vault import load, run
from bastion.config.settings import Settings
from bastion.errors import InvalidRequest, NotFound
from bastion.files.service import FileService
from bastion.gateway.compose import build_datasets
from bastion.jobs.service import JobService
from bastion.review.datasets import DatasetService
from bastion.review.formats import FORMATS
from bastion.review.model import CLI_METHOD
from bastion.review.service import ReviewService
from bastion.store.db import Database
from bastion.store.models import Tenant
from bastion.vault.service import VaultService

T = TypeVar("T")

review_app = typer.Typer(help="Human review of ledger interactions.", no_args_is_help=True)
datasets_app = typer.Typer(help="Fine-tune datasets: build versions, export them.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]


def _print(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def _json(text: str | None, what: str) -> Any:
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise InvalidRequest(f"{what} must be JSON") from None


async def _principal(db: Database, tenant: str) -> Principal:
    async with db.session() as session:
        row = await session.scalar(select(Tenant).where(Tenant.name == tenant))
    if row is None:
        raise NotFound(f"no tenant named {tenant!r}")
    return Principal(
        tenant_id=row.id, tenant_name=row.name, role=Role.ADMIN, method=CLI_METHOD, user_email=actor(),
        tenant_settings=dict(row.settings or {}),
    )  # fmt: skip


def _reviews(
    config: Path | None, data_dir: Path | None, tenant: str, work: Callable[[ReviewService, Principal], Awaitable[T]]
) -> T:
    settings = load(config, data_dir)

    async def main(db: Database) -> T:
        service = ReviewService(db, settings.review, ledger_default_mode=settings.ledger.default_mode)
        return await work(service, await _principal(db, tenant))

    return run(settings, main)


def _datasets(settings: Settings, tenant: str, work: Callable[[DatasetService, Principal], Awaitable[T]]) -> T:
    async def main(db: Database) -> T:
        files = FileService(db, settings.files, settings.data_dir)
        jobs = JobService.from_settings(settings, db, workers=0)
        service = build_datasets(settings, db, files, VaultService(db, settings), jobs)
        service.submit_job = None  # the terminal runs its exports itself
        await files.start()
        try:
            return await work(service, await _principal(db, tenant))
        finally:
            await files.stop()

    return run(settings, main)


@review_app.command()
def prepare(
    tenant: TenantOption,
    purpose: Annotated[str | None, typer.Option(help="What the review is for (default sft, or preference).")] = None,
    kind: Annotated[str, typer.Option(help="single (scores and verdict) or pairwise.")] = "single",
    filter_json: Annotated[
        str | None, typer.Option("--filter", help='Ledger filter as JSON, e.g. {"model": "gpt-4o", "flagged": true}.')
    ] = None,
    reviewers: Annotated[
        int | None, typer.Option(help="Reviewers per item (default review.reviewers_per_item).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The batch's name.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Queue ledger interactions for review (never one twice for the same purpose)."""
    body: dict[str, Any] = {"kind": kind, "filter": _json(filter_json, "--filter")}
    for field, value in (("purpose", purpose), ("reviewers_per_item", reviewers), ("name", name)):
        if value is not None:
            body[field] = value
    _print(_reviews(config, data_dir, tenant, lambda s, p: s.prepare(p, body)))


@review_app.command("batches")
def list_batches(tenant: TenantOption, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """The tenant's review batches, newest first."""
    _print(_reviews(config, data_dir, tenant, lambda s, p: s.list_batches(p)))


@review_app.command()
def progress(batch_id: str, tenant: TenantOption, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Reviews done, leased and abandoned, per reviewer."""
    _print(_reviews(config, data_dir, tenant, lambda s, p: s.progress(p, batch_id)))


@review_app.command()
def agreement(batch_id: str, tenant: TenantOption, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Agreement per dimension (Cohen's kappa, Krippendorff's alpha) and pass rates (Wilson 95%)."""
    _print(_reviews(config, data_dir, tenant, lambda s, p: s.agreement(p, batch_id)))


@review_app.command()
def assign(
    batch_id: str,
    item_id: str,
    reviewer: Annotated[str, typer.Option(help="user:<id> or key:<id>.")],
    tenant: TenantOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Put a reviewer on an item."""
    _print(_reviews(config, data_dir, tenant, lambda s, p: s.assign(p, batch_id, item_id, reviewer)))


@review_app.command()
def show(item_id: str, tenant: TenantOption, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """An item with its reviews."""
    _print(_reviews(config, data_dir, tenant, lambda s, p: s.item_reviews(p, item_id)))


@datasets_app.command()
def build(
    name: str,
    tenant: TenantOption,
    purpose: Annotated[str | None, typer.Option(help="The review purpose to take items from.")] = None,
    kind: Annotated[str, typer.Option(help="sft or preference.")] = "sft",
    min_quality: Annotated[
        float | None, typer.Option(help="Mean score threshold (default review.min_quality).")
    ] = None,
    single_turn: Annotated[bool, typer.Option(help="Keep only the last user turn of each input.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Build the next immutable version of a dataset from the approved examples."""
    settings = load(config, data_dir)
    body: dict[str, Any] = {"kind": kind, "multi_turn": not single_turn}
    if purpose is not None:
        body["purpose"] = purpose
    if min_quality is not None:
        body["min_quality"] = min_quality
    _print(_datasets(settings, tenant, lambda s, p: s.build_version(p, name, body)))


@datasets_app.command("list")
def list_datasets(tenant: TenantOption, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """The tenant's datasets."""
    _print(_datasets(load(config, data_dir), tenant, lambda s, p: s.list_datasets(p)))


@datasets_app.command("show")
def show_dataset(
    name: str,
    tenant: TenantOption,
    version: Annotated[int | None, typer.Option(help="A version's manifest and files.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A dataset's versions, or one version's manifest."""
    settings = load(config, data_dir)
    if version is None:
        _print(_datasets(settings, tenant, lambda s, p: s.get_dataset(p, name)))
    else:
        _print(_datasets(settings, tenant, lambda s, p: s.get_version(p, name, version)))


@datasets_app.command()
def export(
    name: str,
    tenant: TenantOption,
    format_name: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")],
    version: Annotated[int, typer.Option(help="The version to export.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the file here too.")] = None,
    system: Annotated[str, typer.Option(help="original (the vault prompt), replace or none.")] = "original",
    system_prompt: Annotated[str | None, typer.Option(help="The replacement system prompt.")] = None,
    repair: Annotated[list[str] | None, typer.Option("--repair", help="A repair flag (repeat for several).")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export a version (validated; the report is printed, the file kept and written to --output)."""
    settings = load(config, data_dir)
    body: dict[str, Any] = {"format": format_name, "system": system, "repairs": repair or []}
    if system_prompt is not None:
        body["system_prompt"] = system_prompt

    async def work(service: DatasetService, principal: Principal) -> dict[str, Any]:
        done = await service.request_export(principal, name, version, body, background=False)
        if output is not None:
            _info, handle = await service.download(principal, done["id"])
            with handle, output.open("wb") as out:
                shutil.copyfileobj(handle, out)
        return done

    _print(_datasets(settings, tenant, work))
