"""Entry point for the ASGI server's worker processes: builds the app from the environment."""

from __future__ import annotations

from starlette.applications import Starlette

from bastion.api.app import create_app, report_startup_failure
from bastion.config.loader import load_settings
from bastion.observability.logging import configure_logging


def create_from_env() -> Starlette:
    settings = load_settings()
    configure_logging(settings.logging)
    try:
        return create_app(settings)
    except Exception as exc:
        # The server would print the traceback: say it in one line and stop this process.
        report_startup_failure(exc)
        raise SystemExit(2) from None
