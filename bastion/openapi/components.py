"""JSON Schemas for the document's ``components.schemas``, generated from the code's own types:
pydantic models (the request validators, the response models of this package) and SQLAlchemy
tables (the ledger's rows), so the document follows the code instead of drifting from it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sqlalchemy import Column, Table
from sqlalchemy.types import TypeDecorator

REF = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def pydantic_components(models: Sequence[type[BaseModel]], prefix: str = "") -> dict[str, Any]:
    """The schemas of ``models`` and of every model they use, named ``prefix`` + class name.

    A prefix per family (``OpenAI``, ``Anthropic``) keeps same-named classes apart (both dialects
    have a ``Message``) without pydantic's module-path names."""
    _, schema = models_json_schema([(model, "validation") for model in models], ref_template=REF + prefix + "{model}")
    return {prefix + name: _without_titles(definition) for name, definition in schema.get("$defs", {}).items()}


def _without_titles(schema: Any) -> Any:
    """pydantic titles every property after its name ("Max Tokens"): noise in a reference document."""
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: _without_titles(sub) for name, sub in value.items()}  # keys are names here
        else:
            out[key] = _without_titles(value)
    return out


_PYTHON_TYPES: dict[type, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    datetime: {"type": "string", "format": "date-time"},
}


def column_schema(column: Column[Any]) -> dict[str, Any]:
    """A column's JSON type; JSON columns (and anything unknown) accept any value."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):  # UTCDateTime: the stored type tells
        column_type = column_type.impl_instance
    try:
        python_type: type | None = column_type.python_type
    except NotImplementedError:
        python_type = None
    schema = dict(_PYTHON_TYPES.get(python_type, {})) if python_type is not None else {}
    if column.nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def table_schema(table: Table, columns: Iterable[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object with the named ``columns`` of ``table`` (all required: rows always carry them)."""
    names = list(columns)
    properties = {**(extra or {}), **{name: column_schema(table.c[name]) for name in names}}
    return {
        "type": "object",
        "properties": properties,
        "required": [*(extra or {}), *names],
        "additionalProperties": False,
    }
