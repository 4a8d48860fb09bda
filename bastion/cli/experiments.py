"""``bastion experiments``: define and run experiments, read their results; analyse summary
statistics, size an experiment.

bastion experiments create spec.json --tenant acme [--start]
bastion experiments list [--tenant acme] [--status running]
bastion experiments show|start|stop|results|report EXPERIMENT_ID
bastion experiments analyze results.json
bastion experiments sample-size --baseline 0.10 --mde 0.02
bastion experiments sample-size --baseline 0.10 --mde 0.2 --relative --method continuity
bastion experiments sample-size --baseline 1.8 --mde 0.1 --sd 0.9 --sequential

``analyze`` and ``sample-size`` print JSON. The statistics are ``bastion.stats``;
docs/EXPERIMENTS.md explains every number. ``bastion.stats`` (and scipy with it) and the
experiments package are imported when a command runs, so every other ``bastion`` command starts
as fast as before.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bastion.cli.options import ConfigOption, DataDirOption

if TYPE_CHECKING:
    pass

T = TypeVar("T")

app = typer.Typer(help="Experiments: define, run and report; analyse results, size a test.", no_args_is_help=True)

#: Exit status for input the command cannot use (as for any other usage error).
_BAD_INPUT = 2
#: The same names as ``bastion.stats.power.PROPORTION_METHODS`` (a test keeps them equal).
METHODS = ("pooled", "unpooled", "arcsine", "continuity")
DEFAULT_TUNING = 5000.0


@app.callback()
def _experiments() -> None:
    """Experiments: analyse results, size a test."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(_BAD_INPUT)


def _print(payload: dict[str, Any]) -> None:
    try:
        text = json.dumps(payload, indent=2, allow_nan=False)
    except ValueError:  # a NaN or infinity would make the output invalid JSON
        raise _fail("the statistics are not finite for this input (check n, sum and sum_squares)") from None
    typer.echo(text)


@app.command("analyze")
def analyze_command(
    file: Annotated[Path, typer.Argument(help="JSON with metric, method, alpha, relative and arms (control first).")],
) -> None:
    """Analyse an experiment from per-arm summary statistics (n, sum, sum_squares); print JSON."""
    from bastion.stats.analyze import analyze
    from bastion.stats.errors import StatsError

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _fail(f"cannot read {file}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{file} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    try:
        result = analyze(data)
    except StatsError as exc:
        raise _fail(f"{file}: {exc}") from None
    _print(result)


@app.command("sample-size")
def sample_size_command(
    baseline: Annotated[float, typer.Option(help="Control's conversion rate (or mean, with --sd).")],
    mde: Annotated[float, typer.Option(help="Minimum detectable effect: absolute, or a fraction with --relative.")],
    relative: Annotated[
        bool, typer.Option("--relative", help="--mde is relative to the baseline (0.2 = +20%).")
    ] = False,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="Probability of detecting the effect when it is real.")] = 0.8,
    method: Annotated[str, typer.Option(help=f"Two-proportion formula: {', '.join(METHODS)}.")] = "pooled",
    sd: Annotated[
        float | None, typer.Option(help="Standard deviation of a continuous metric (exact noncentral t).")
    ] = None,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="Size for the sequential (always-valid) test instead.")
    ] = False,
    tuning: Annotated[float, typer.Option(help="Sequential tuning parameter (total units).")] = DEFAULT_TUNING,
) -> None:
    """Units needed per arm for a two-arm test; print JSON with the method used."""
    from bastion.stats.errors import StatsError
    from bastion.stats.sizing import sample_size, size_json

    if sd is None and not sequential and method not in METHODS:
        raise _fail(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    try:
        size = sample_size(
            baseline, mde, relative=relative, alpha=alpha, power=power, method=method, sd=sd,
            sequential=sequential, tuning=tuning,
        )  # fmt: skip
    except StatsError as exc:
        raise _fail(str(exc)) from None
    _print(size_json(size))


# -- experiments on the gateway's traffic (the same operations as /api/v1/admin/experiments) ------

TenantOption = Annotated[
    str | None, typer.Option(help="The tenant's name (needed to create, or to name an experiment by its name).")
]


def _on_experiments(
    config: Path | None, data_dir: Path | None, tenant: str | None, work: Callable[[Any, str | None], Awaitable[T]]
) -> T:
    """Run ``work(service, tenant id)`` against the database of the configuration."""
    from bastion.cli.access_common import load, run_for_tenant
    from bastion.experiments.service import ExperimentService

    async def on_service(db: Any, tenant_id: str | None) -> T:
        return await work(ExperimentService(db), tenant_id)

    return run_for_tenant(load(config, data_dir), tenant, on_service)


async def _tenant_of(service: Any, tenant_id: str | None, ref: str) -> str:
    """The experiment's tenant: the given one, or the one of the experiment with id ``ref``."""
    from bastion.errors import NotFound
    from bastion.experiments.models import ExperimentRow

    if tenant_id is not None:
        return tenant_id
    async with service.db.session() as session:
        row = await session.get(ExperimentRow, ref)
    if row is None:
        raise NotFound(f"No experiment with id {ref!r} (name one by its name with --tenant).")
    return str(row.tenant_id)


def _experiment_command(ref: str, tenant: str | None, config: Path | None, data_dir: Path | None, action: str) -> Any:
    from bastion.experiments.analysis import experiment_results

    async def work(service: Any, tenant_id: str | None) -> Any:
        owner = await _tenant_of(service, tenant_id, ref)
        if action == "results":
            return await experiment_results(service, owner, ref)
        method = getattr(service, action)
        return (await method(owner, ref)).to_json()

    return _on_experiments(config, data_dir, tenant, work)


@app.command("create")
def create_command(
    file: Annotated[Path, typer.Argument(help="JSON definition: name, target, variants, weights, unit, metrics...")],
    tenant: Annotated[str, typer.Option(help="The tenant's name.")],
    start: Annotated[bool, typer.Option("--start", help="Start it at once.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Define an experiment (a draft, or running with --start); print it as JSON."""
    try:
        body = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}") from None
    if not isinstance(body, dict):
        raise _fail(f"{file} must hold a JSON object")

    async def work(service: Any, tenant_id: str | None) -> Any:
        assert tenant_id is not None
        experiment = await service.create(tenant_id, body)
        if start:
            experiment = await service.start(tenant_id, experiment.id)
        return experiment.to_json()

    _print(_on_experiments(config, data_dir, tenant, work))


@app.command("list")
def list_command(
    tenant: TenantOption = None,
    status: Annotated[str | None, typer.Option(help="draft, running or stopped.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Experiments, newest first: one line each (id, name, status, target, variants)."""

    async def work(service: Any, tenant_id: str | None) -> Any:
        return await service.list(tenant_id, status)

    for experiment in _on_experiments(config, data_dir, tenant, work):
        target = experiment.target.key()
        variants = ",".join(v.name for v in experiment.variants)
        typer.echo(f"{experiment.id}  {experiment.name}  {experiment.status}  {target}  [{variants}]")


def _simple(action: str, help_text: str) -> None:
    def command(
        experiment: Annotated[str, typer.Argument(help="The experiment's id (or its name, with --tenant).")],
        tenant: TenantOption = None,
        config: ConfigOption = None,
        data_dir: DataDirOption = None,
    ) -> None:
        _print(_experiment_command(experiment, tenant, config, data_dir, action))

    command.__doc__ = help_text
    app.command("show" if action == "get" else action)(command)


_simple("get", "One experiment, as JSON.")
_simple("start", "Start assigning traffic to the experiment's variants.")
_simple("stop", "Stop the experiment (requests take the control path again).")
_simple("results", "The experiment's results from the ledger, as JSON.")


@app.command("report")
def report_command(
    experiment: Annotated[str, typer.Argument(help="The experiment's id (or its name, with --tenant).")],
    tenant: TenantOption = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The experiment's results as a readable report."""
    from bastion.experiments.report import text_report

    typer.echo(text_report(_experiment_command(experiment, tenant, config, data_dir, "results")), nl=False)
