"""The ``bastion`` command line."""

from __future__ import annotations

import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer

from bastion.cli import (
    agents,
    db,
    experiments,
    guard,
    insights,
    jobs,
    keys,
    knowledge,
    ledger,
    prompts,
    redteam,
    review,
    tenants,
    users,
    vault,
)
from bastion.cli.options import ConfigOption, DataDirOption, describe_data_dir, use_data_dir
from bastion.config.errors import ConfigError
from bastion.config.loader import check_environment, load_settings
from bastion.config.settings import ServerSettings, Settings

app = typer.Typer(
    help="Bastion: a secure, self-hosted AI gateway.\n\n"
    "State (the SQLite database, the ledger journal, the vault master key) lives in the data "
    "directory: ./data of the current directory unless --data-dir, BASTION_DATA_DIR or data_dir "
    "in the config says otherwise. Run every command with the same one.",
    no_args_is_help=True,
)

_SERVER_DEFAULTS = ServerSettings()


def _version() -> str:
    try:
        return package_version("bastion")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"bastion {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Bastion: a secure, self-hosted AI gateway."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _load(config: Path | None, data_dir: Path | None) -> Settings:
    use_data_dir(data_dir)
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _warn_ignored(settings: Settings) -> None:
    for key in settings.ignored_keys:
        message = f"warning: {key}: ignored (Bastion has no equivalent of this LiteLLM setting)"
        typer.secho(message, fg=typer.colors.YELLOW, err=True)


@app.command()
def serve(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on.", show_default=f"server.host, {_SERVER_DEFAULTS.host}")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on.", show_default=f"server.port, {_SERVER_DEFAULTS.port}")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes.", show_default=f"server.workers, {_SERVER_DEFAULTS.workers}"),
    ] = None,
) -> None:
    """Start the gateway (on http://127.0.0.1:8080 unless configured otherwise).

    Every /v1 call needs an API key (create one with `bastion keys create`, using the same data
    directory). Any start-up failure is reported as one line, with exit status 2."""
    from bastion.server.run import STARTUP_FAILURE, StartupError, bind_listener, run, server_config

    if config is not None:
        os.environ["BASTION_CONFIG"] = str(config.resolve())
    settings = _load(config, data_dir)
    _warn_ignored(settings)
    try:
        check_environment(settings)
        server = settings.server
        workers = workers or server.workers
        listen_host = host or server.host
        uvicorn_config = server_config(settings, listen_host, port if port is not None else server.port, workers)
        listener = bind_listener(uvicorn_config)
    except (ConfigError, StartupError) as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # anything else is still one line; the traceback only at debug level
        if settings.logging.level == "debug":
            traceback.print_exc()
        typer.secho(f"error: start-up failed: {type(exc).__name__}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(STARTUP_FAILURE) from None
    typer.echo(f"bastion: data: {describe_data_dir(settings)}", err=True)
    typer.echo(
        f"bastion: serving on http://{listen_host}:{listener.getsockname()[1]} "
        f"({workers} worker{'s' if workers > 1 else ''}); models: "
        + ", ".join(sorted({m.name for m in settings.models})),
        err=True,
    )
    sys.exit(run(uvicorn_config, listener))


@app.command()
def worker(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="Jobs each worker process runs at once.")] = 4,
    processes: Annotated[int, typer.Option(min=1, max=256, help="Worker processes to run.")] = 1,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics of this process on 127.0.0.1:PORT (one process only).")
    ] = None,
) -> None:
    """Run background jobs (no HTTP), until SIGTERM or Ctrl-C.

    With Redis (redis_url) workers take jobs from a Redis stream; on the embedded default they
    find them in the job table, which they poll. Use the same configuration and data directory
    (or database) as the gateway. Jobs under way at a stop go back to the queue."""
    from bastion.server.worker import supervise, worker_main

    if config is not None:
        os.environ["BASTION_CONFIG"] = str(config.resolve())
    settings = _load(config, data_dir)
    _warn_ignored(settings)
    try:
        check_environment(settings)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if processes > 1:
        if metrics_port is not None:
            raise _fail("--metrics-port needs --processes 1 (each process has its own metrics)")
        argv = [sys.argv[0], "worker", "--concurrency", str(concurrency), "--processes", "1"]
        sys.exit(supervise(argv, processes))
    worker_main(settings, concurrency, metrics_port)


@app.command("check-config")
def check_config(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Validate the configuration (environment variables it references included) and print the
    models it defines, the data directory, and the LiteLLM settings it ignores."""
    settings = _load(config, data_dir)
    _warn_ignored(settings)
    try:
        check_environment(settings)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    for model in settings.models:
        names = ", ".join([model.name, *model.aliases])
        targets = ", ".join(f"{d.provider}:{d.model}" for d in model.deployments)
        typer.echo(f"{names} -> {targets}")
    typer.echo(f"data: {describe_data_dir(settings)}")
    typer.echo("configuration is valid")


# Identity and storage administration, the ledger, the prompt vault, and the guard's tools.
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(tenants.app, name="tenants")
app.add_typer(db.app, name="db")
app.add_typer(ledger.app, name="ledger")
app.add_typer(prompts.app, name="prompts")
app.add_typer(vault.app, name="vault")
app.add_typer(guard.app, name="guard", help="Guard tools: evaluate detectors.")
app.add_typer(jobs.app, name="jobs")
app.add_typer(experiments.app, name="experiments")
app.add_typer(knowledge.app, name="knowledge")
app.add_typer(agents.app, name="agents")
app.add_typer(redteam.app, name="redteam")
app.add_typer(review.review_app, name="review")
app.add_typer(review.datasets_app, name="datasets")
app.add_typer(insights.app, name="insights")
