"""The ``bastion`` command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bastion.cli import db, guard, keys, prompts, tenants, users, vault
from bastion.config.errors import ConfigError
from bastion.config.loader import load_settings
from bastion.config.settings import Settings

app = typer.Typer(help="Bastion: a secure, self-hosted AI gateway.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (Bastion or LiteLLM format).")
]


def _load(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Start the gateway."""
    from bastion.server.run import run, server_config

    if config is not None:
        os.environ["BASTION_CONFIG"] = str(config.resolve())
    settings = _load(config)
    server = settings.server
    workers = workers or server.workers
    typer.echo(
        f"bastion: serving on http://{host or server.host}:{port or server.port} "
        f"({workers} worker{'s' if workers > 1 else ''}); models: "
        + ", ".join(sorted({m.name for m in settings.models})),
        err=True,
    )
    run(server_config(settings, host or server.host, port if port is not None else server.port, workers))


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and print the models it defines."""
    settings = _load(config)
    for model in settings.models:
        names = ", ".join([model.name, *model.aliases])
        targets = ", ".join(f"{d.provider}:{d.model}" for d in model.deployments)
        typer.echo(f"{names} -> {targets}")
    typer.echo("configuration is valid")


# Identity and storage administration, the prompt vault, and the guard's tools.
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(tenants.app, name="tenants")
app.add_typer(db.app, name="db")
app.add_typer(prompts.app, name="prompts")
app.add_typer(vault.app, name="vault")
app.add_typer(guard.app, name="guard", help="Guard tools: evaluate detectors.")
