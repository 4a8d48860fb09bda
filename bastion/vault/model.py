"""Value types of the prompt vault, and the validation of what authors and clients send.

The one type that holds decrypted text, ``PromptSecret``, never shows it in ``repr``/``str``, so a
log line, a traceback's locals or an f-string that meets it prints a placeholder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2.environment import Template

from bastion.dialects.extension import KnowledgeRequest, parse_knowledge
from bastion.errors import BastionError, InvalidRequest, NotFound
from bastion.vault.crypto import VaultError
from bastion.vault.render import TemplateInvalid, compile_template, declared_variables
from bastion.vault.template_check import check_template

PRODUCTION = "production"
STAGING = "staging"
#: Largest system prompt or user template accepted, in characters.
MAX_TEXT_CHARS = 256 * 1024

PROMPT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# A label is never all digits: ``prompt:id@3`` means version 3, so "3" cannot also be a label.
LABEL = re.compile(r"^(?![0-9]+$)[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: Version parameters that become request defaults, with the JSON types each may take.
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "max_tokens": (int,),
    "max_completion_tokens": (int,),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
    "seed": (int,),
    "stop": (str, list),
    "response_format": (dict,),
}


class KeyringMismatch(VaultError):
    """The configured master key cannot open this vault: the gateway must not start."""


class VaultUnavailable(BastionError):
    """A stored prompt could not be decrypted at request time (503: an operator must act)."""

    status = 503
    error_type = "api_error"
    code = "vault_unavailable"


class PromptNotFound(NotFound):
    code = "prompt_not_found"


class PromptSecret:
    """Decrypted text of one version. Hidden from ``repr``/``str``; read the attributes."""

    __slots__ = ("_compiled", "system", "template")

    def __init__(self, system: str, template: str | None) -> None:
        self.system = system
        self.template = template
        self._compiled: Template | None = None

    def compiled_template(self) -> Template | None:
        """The user template, compiled once per cached version."""
        if self.template is None:
            return None
        if self._compiled is None:
            self._compiled = compile_template(self.template)
        return self._compiled

    def __repr__(self) -> str:
        return "PromptSecret(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling would be a way to move the text out unnoticed
        raise TypeError("PromptSecret cannot be pickled")


@dataclass(frozen=True, slots=True)
class ResolvedPrompt:
    """A decrypted version, as the prompt stage and the sessions use it (and as it is cached)."""

    tenant_id: str
    prompt_id: str
    prompt_pk: str
    version: int
    model: str | None
    params: dict[str, Any]
    metadata: dict[str, Any]
    secret: PromptSecret = field(repr=False)


@dataclass(frozen=True, slots=True)
class PromptInUse:
    """The vault prompt a request uses: what the ledger records and the guard's prompt layer."""

    id: str
    version: int
    label: str | None = None
    #: The version's own guard policy (``metadata.guard``), the most specific policy layer.
    guard_policy: dict[str, Any] | None = None
    #: The version's response-cache override (``metadata.cache``, e.g. ``{"enabled": false}``).
    cache: Any = None
    #: Retrieval for every request of the version (``metadata.knowledge``), unless the request asks itself.
    knowledge: KnowledgeRequest | None = None


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """What an author sends for a new version (validated by ``checked``)."""

    system_prompt: str
    user_template: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"VersionSpec(model={self.model!r}, params={self.params!r}, text=<redacted>)"

    def checked(self) -> VersionSpec:
        """Validated, with the template's variable names added to the metadata."""
        if not isinstance(self.system_prompt, str) or not self.system_prompt.strip():
            raise InvalidRequest("system_prompt must be a non-empty string.", param="system_prompt")
        if len(self.system_prompt) > MAX_TEXT_CHARS:
            raise InvalidRequest(f"system_prompt is longer than {MAX_TEXT_CHARS} characters.", param="system_prompt")
        metadata = check_metadata(self.metadata)
        if self.user_template is not None:
            if not isinstance(self.user_template, str) or not self.user_template:
                raise InvalidRequest("user_template must be a non-empty string or null.", param="user_template")
            if len(self.user_template) > MAX_TEXT_CHARS:
                raise InvalidRequest(
                    f"user_template is longer than {MAX_TEXT_CHARS} characters.", param="user_template"
                )
            try:
                check_template(self.user_template)
                metadata["variables"] = declared_variables(self.user_template)
            except TemplateInvalid as exc:
                raise InvalidRequest(str(exc), param="user_template") from None
        else:
            metadata.pop("variables", None)
        if self.model is not None and (not isinstance(self.model, str) or not 0 < len(self.model) <= 256):
            raise InvalidRequest("model must be a model name (1-256 characters) or null.", param="model")
        if self.model is not None and self.model.startswith("prompt:"):
            raise InvalidRequest("model must name a model, not another prompt.", param="model")
        return VersionSpec(self.system_prompt, self.user_template, self.model, check_params(self.params), metadata)


def check_prompt_id(value: Any, param: str = "prompt_id") -> str:
    if not isinstance(value, str) or not PROMPT_ID.match(value):
        raise InvalidRequest(
            f"{param} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.", param=param
        )
    return value


def check_label(value: Any, param: str = "label") -> str:
    if not isinstance(value, str) or not LABEL.match(value):
        raise InvalidRequest(f"{param} must be 1-64 letters, digits, '.', '_' or '-' (not only digits).", param=param)
    return value


def check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be an object.", param="params")
    for name, value in params.items():
        types = PARAM_TYPES.get(name)
        if types is None:
            raise InvalidRequest(
                f"params.{str(name)[:40]} is not a supported parameter (one of: {', '.join(PARAM_TYPES)}).",
                param="params",
            )
        if isinstance(value, bool) or not isinstance(value, types):
            raise InvalidRequest(f"params.{name} has the wrong type.", param=f"params.{name}")
    return dict(params)


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object.", param="metadata")
    # Retrieval the prompt asks for on every request (docs/KNOWLEDGE.md), checked as the request field is.
    parse_knowledge(metadata.get("knowledge"), "metadata.knowledge")
    return dict(metadata)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A version's metadata: everything but the text."""

    prompt_id: str
    version: int
    key_id: str
    model: str | None
    params: dict[str, Any]
    metadata: dict[str, Any]
    has_template: bool
    labels: list[str]
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "version": self.version,
            "key_id": self.key_id,
            "model": self.model,
            "params": self.params,
            "metadata": self.metadata,
            "has_user_template": self.has_template,
            "labels": self.labels,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class PromptInfo:
    prompt_id: str
    name: str
    description: str | None
    labels: dict[str, int]
    latest_version: int
    archived_at: datetime | None
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "name": self.name,
            "description": self.description,
            "labels": self.labels,
            "latest_version": self.latest_version,
            "archived": self.archived_at is not None,
            "archived_at": self.archived_at.isoformat() if self.archived_at else None,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }
