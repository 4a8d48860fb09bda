"""Secret values in the configuration may be references to the environment rather than literals:
``env:NAME`` (Bastion's spelling) or ``os.environ/NAME`` (LiteLLM's). Provider keys, JWT secrets
and keys all resolve through here, so one spelling works everywhere."""

from __future__ import annotations

import os

from bastion.config.errors import ConfigError

ENV_PREFIXES = ("env:", "os.environ/")


def resolve_secret(value: str | None, where: str) -> str | None:
    """Resolve ``env:NAME`` / ``os.environ/NAME`` references; literal values pass through.

    ``where`` names the configuration key, for the error raised when the variable is unset."""
    if value is None:
        return None
    for prefix in ENV_PREFIXES:
        if value.startswith(prefix):
            name = value[len(prefix) :]
            resolved = os.environ.get(name)
            if not resolved:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return resolved
    return value
