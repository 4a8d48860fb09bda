"""Validate Bastion's answers against the official OpenAI OpenAPI document.

The document is pinned in ``tests/data/openai_openapi/`` (gzipped, with its MIT licence and the
commit it was taken from). It is OpenAPI 3.1, but still marks some fields ``nullable: true`` in
the 3.0 way, which JSON Schema ignores: those are rewritten to accept ``null`` before compiling.

    validate("CreateChatCompletionResponse", body)        # raises AssertionError naming every error
    validate_response("/responses", "post", body)         # the schema the operation's 200 declares
"""

from __future__ import annotations

import copy
import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "openai_openapi" / "openapi.json.gz"


@cache
def document() -> dict[str, Any]:
    with gzip.open(SPEC_PATH, "rt", encoding="utf-8") as spec:
        loaded: dict[str, Any] = json.load(spec)
    return loaded


def _allow_null(node: Any) -> Any:
    """The schema tree with OpenAPI 3.0's ``nullable: true`` expressed in JSON Schema."""
    if isinstance(node, list):
        return [_allow_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _allow_null(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif isinstance(kind, list):
            out["type"] = [*kind, "null"] if "null" not in kind else kind
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _components() -> dict[str, Any]:
    fixed: dict[str, Any] = _allow_null(copy.deepcopy(document()["components"]))
    return fixed


@cache
def _validator(pointer: str) -> Any:
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": _components(),
        "$ref": pointer,
    }
    return jsonschema_rs.validator_for(root)


def _check(pointer: str, instance: Any) -> None:
    errors = [
        f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"
        for e in _validator(pointer).iter_errors(instance)
    ]
    if errors:
        shown = "\n  ".join(errors[:20])
        raise AssertionError(f"not a valid {pointer.rsplit('/', 1)[-1]} ({len(errors)} errors):\n  {shown}")


def validate(schema_name: str, instance: Any) -> None:
    """Assert ``instance`` is a valid ``components.schemas[schema_name]``."""
    if schema_name not in document()["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the OpenAI document")
    _check(f"#/components/schemas/{schema_name}", instance)


def response_schema_name(path: str, method: str, status: str = "200") -> str:
    """The component the document names for an operation's JSON answer (``path`` without ``/v1``)."""
    operation = document()["paths"][path][method.lower()]
    content = operation["responses"][status]["content"]
    schema = (content.get("application/json") or next(iter(content.values())))["schema"]
    ref = schema.get("$ref")
    if ref is None:
        raise KeyError(f"{method.upper()} {path} answers an inline schema, not a named component")
    return str(ref).rsplit("/", 1)[-1]


def validate_response(path: str, method: str, instance: Any, status: str = "200") -> None:
    """Assert ``instance`` is what ``method path`` declares for ``status`` (``path`` without ``/v1``)."""
    validate(response_schema_name(path, method, status), instance)
