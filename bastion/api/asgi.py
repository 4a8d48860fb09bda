"""Entry point for the ASGI server's worker processes: builds the app from the environment."""

from __future__ import annotations

from starlette.applications import Starlette

from bastion.api.app import create_app
from bastion.config.loader import load_settings
from bastion.observability.logging import configure_logging


def create_from_env() -> Starlette:
    settings = load_settings()
    configure_logging(settings.logging)
    return create_app(settings)
