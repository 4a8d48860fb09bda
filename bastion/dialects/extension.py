"""Bastion's own request field, ``"bastion": {...}``, parsed once by the dialect layer.

It names a vault prompt (``prompt_id`` with a ``label`` or a ``version``) and the variables of its
user template. It is never sent upstream: the endpoint takes it out of the body and hands this
typed object to the pipeline (``RequestContext.extension``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidRequest

FIELD = "bastion"


@dataclass(frozen=True, slots=True)
class BastionExtension:
    prompt_id: str | None = None
    label: str | None = None
    version: int | None = None
    #: As the client sent them; the vault validates names and values when it renders.
    variables: Any = None


def parse_extension(value: Any) -> BastionExtension | None:
    """The typed extension, or None when the request has none; 400 on a malformed one."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequest("Invalid request: bastion must be an object.", param="bastion")
    prompt_id = value.get("prompt_id")
    if prompt_id is not None and (not isinstance(prompt_id, str) or not prompt_id):
        raise InvalidRequest("Invalid request: bastion.prompt_id must be a string.", param="bastion.prompt_id")
    label = value.get("label")
    if label is not None and not isinstance(label, str):
        raise InvalidRequest("Invalid request: bastion.label must be a string.", param="bastion.label")
    version = _version(value.get("version"))
    if label and version is not None:
        raise InvalidRequest("Invalid request: name a prompt label or a version, not both.", param="bastion")
    return BastionExtension(prompt_id, label or None, version, value.get("variables"))


def _version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() or int(value) < 1:
        raise InvalidRequest("Invalid request: bastion.version must be a positive integer.", param="bastion.version")
    return int(value)
