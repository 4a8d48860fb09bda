"""Options every command shares: the configuration file and the data directory.

The data directory holds the embedded SQLite database, the ledger journal, the vault master key
and the auth epoch. It defaults to ``./data`` of the *current* directory, so a key created from
one directory is unknown to a gateway started from another: every command takes ``--data-dir``
(or ``BASTION_DATA_DIR``) and says which directory it used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bastion.config.settings import Settings

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (Bastion or LiteLLM format).")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory of the embedded SQLite database, ledger journal and vault master key "
        "(also BASTION_DATA_DIR or data_dir in the config).",
        show_default="./data of the current directory",
    ),
]


def use_data_dir(data_dir: Path | None) -> None:
    """Make ``--data-dir`` win over the config file, here and in any worker process started later
    (they read the same environment)."""
    if data_dir is not None:
        os.environ["BASTION_DATA_DIR"] = str(data_dir.expanduser().resolve())


def describe_data_dir(settings: Settings) -> str:
    """``/abs/path/data (SQLite, journal, master key)``: what lives there for this configuration."""
    held = [] if settings.database_url else ["SQLite"]
    if settings.ledger.journal_dir is None:
        held.append("journal")
    if settings.vault.key_file is None and settings.master_key is None:
        held.append("master key")
    held = held or ["auth epoch"]
    return f"{settings.data_dir.expanduser().resolve()} ({', '.join(held)})"
