"""Build ``Settings`` from defaults, a YAML file and ``BASTION_*`` environment variables.

Precedence, lowest first: built-in defaults, the YAML file (Bastion's own shape or LiteLLM's
``model_list``), environment variables. ``BASTION_SERVER__PORT=9000`` sets ``server.port``;
values are read as YAML scalars, so ``true``, ``3`` and ``[a, b]`` mean what they look like.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bastion.config import litellm_compat
from bastion.config.errors import ConfigError
from bastion.config.secret_refs import unset_references
from bastion.config.settings import ModelSettings, Settings

ENV_PREFIX = "BASTION_"
DEFAULT_CONFIG_FILE = "bastion.yaml"
# Environment variables that steer loading itself, or belong to other parts of the product.
_NOT_SETTINGS = {"BASTION_CONFIG"}

LOCAL_CHAT_MODEL = "local/smollm2"
#: Names clients use without configuration that reach the embedded chat model in the default
#: config: ``default``, the usual OpenAI example, and the OpenAI Agents SDK's default model
#: (``agents.models.default_models.get_default_model()`` of openai-agents 0.24).
LOCAL_CHAT_ALIASES = ("default", "gpt-4o-mini", "gpt-5.6-luna")
LOCAL_EMBEDDING_MODEL = "local/minilm"
LOCAL_EMBEDDING_ALIASES = ("text-embedding-3-small",)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    return data


def _env_value(value: str) -> Any:
    """A YAML scalar (``true``, ``3``, ``null``), or explicit YAML flow collections (``[a, b]``,
    ``{k: v}``); anything else stays the literal string, so ``prefix:`` or ``a: b`` is not
    silently turned into a mapping."""
    if not value:
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, dict | list) and not value.lstrip().startswith(("[", "{")):
        return value
    return parsed


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if not all(path):
            raise ConfigError(f"{name}: malformed setting name")
        if path[0] not in Settings.model_fields:
            raise ConfigError(f"{name}: unknown setting {'.'.join(path)!r}")
        parsed = _env_value(value)
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another BASTION_ variable")
        node[path[-1]] = parsed
    return overrides


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{loc}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _builtin_aliases(settings: Settings, model: str, aliases: tuple[str, ...]) -> list[str]:
    """The built-in aliases of an embedded model; one a configured model also names is an error
    naming both, since silently preferring either would route some client to a model it did not
    expect."""
    if not settings.local.builtin_aliases:
        return []
    owners = {n: f"models[{i}] ({m.name!r})" for i, m in enumerate(settings.models) for n in (m.name, *m.aliases)}
    for alias in aliases:
        if alias in owners:
            raise ConfigError(
                f"invalid configuration:\n  model name {alias!r} is defined twice: by {owners[alias]} and by the "
                f"built-in alias of {model}; rename yours, or set local.builtin_aliases: false to drop the "
                "built-in aliases"
            )
    return list(aliases)


def _add_local_models(settings: Settings, user_defined_models: bool) -> None:
    """Register the embedded models (with their built-in aliases) unless the config uses their names.

    With no models configured they are the gateway's default and load at start-up. Beside a
    config's own models they stay available, aliases included, but load on their first request: a
    remote-only gateway must not pay for llama.cpp and torch (list them in ``models`` to load them
    at start)."""
    if not settings.local.enabled:
        return
    taken = {n for m in settings.models for n in (m.name, *m.aliases)}

    def deployment(model: str) -> dict[str, object]:
        return {"provider": "local", "model": model, "id": f"local-{model}", "preload": not user_defined_models}

    if LOCAL_CHAT_MODEL not in taken:
        aliases = _builtin_aliases(settings, LOCAL_CHAT_MODEL, LOCAL_CHAT_ALIASES)
        settings.models.append(
            ModelSettings(name=LOCAL_CHAT_MODEL, aliases=aliases, deployments=[deployment("smollm2")])
        )
    if settings.local.embeddings_enabled and LOCAL_EMBEDDING_MODEL not in taken:
        aliases = _builtin_aliases(settings, LOCAL_EMBEDDING_MODEL, LOCAL_EMBEDDING_ALIASES)
        settings.models.append(
            ModelSettings(
                name=LOCAL_EMBEDDING_MODEL,
                kind="embedding",
                aliases=aliases,
                deployments=[deployment("minilm")],
            )
        )


def unset_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """``key: VARIABLE`` for every ``env:`` / ``os.environ/`` reference naming an unset variable."""
    return unset_references(settings.model_dump(), os.environ if environ is None else environ)


def check_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Raise ``ConfigError`` naming every reference to an unset environment variable."""
    unset = unset_environment(settings, environ)
    if unset:
        raise ConfigError("environment variables referenced by the configuration are not set:\n  " + "\n  ".join(unset))


def resolve_config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("BASTION_CONFIG"):
        return Path(environ["BASTION_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load, merge and validate configuration; raise ``ConfigError`` naming any bad key."""
    environ = os.environ if environ is None else environ
    path = resolve_config_path(config_path, environ)
    raw: dict[str, Any] = _read_yaml(path) if path is not None else {}
    ignored: list[str] = []
    if litellm_compat.is_litellm_config(raw):
        ignored = litellm_compat.ignored_keys(raw, frozenset(Settings.model_fields))
        native = {k: v for k, v in raw.items() if k in Settings.model_fields and k not in ("models", "router")}
        raw = _deep_merge(litellm_compat.convert(raw), native)
    elif path is not None:
        # Keys LiteLLM users carry over (general_settings, ...) are harmless only in LiteLLM files.
        unknown = [k for k in raw if k not in Settings.model_fields]
        if unknown:
            raise ConfigError(f"invalid configuration:\n  {unknown[0]}: unknown key")
    merged = _deep_merge(raw, _env_overrides(environ))
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
    _add_local_models(settings, user_defined_models=bool(settings.models))
    settings._ignored_keys = ignored
    return settings
