"""Secret values in the configuration may be references to the environment rather than literals:
``env:NAME`` (Bastion's spelling) or ``os.environ/NAME`` (LiteLLM's). Provider keys, JWT secrets
and keys all resolve through here, so one spelling works everywhere."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import SecretStr

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


def reference_name(value: object) -> str | None:
    """The variable an ``env:NAME`` / ``os.environ/NAME`` string refers to, or None."""
    if isinstance(value, str):
        for prefix in ENV_PREFIXES:
            if value.startswith(prefix):
                return value[len(prefix) :]
    return None


def unset_references(data: object, environ: Mapping[str, str], where: str = "") -> list[str]:
    """Every ``where: NAME`` whose reference in ``data`` (a settings dump) names an unset variable.

    Checked by ``check-config`` and before ``serve`` starts, so a missing provider key is one line
    naming the key and the variable rather than a failure deep inside a worker's start-up."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            found += unset_references(value, environ, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            found += unset_references(value, environ, f"{where}[{index}]")
    else:
        if isinstance(data, SecretStr):
            data = data.get_secret_value()
        name = reference_name(data)
        if name is not None and not environ.get(name):
            found.append(f"{where}: {name}")
    return found
