"""Metadata filters -> SQL conditions on the document's metadata, the same on both backends.

A filter is ``{"field": value}`` (equal) or ``{"field": {"$in": [v, ...]}}`` / ``{"$ne": v}``;
several fields must all hold. Values are strings, numbers or booleans. They become WHERE
conditions of the retrievers' own queries, so filtering happens *before* ranking: top-k returns k
hits whenever k matching chunks exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.sql.elements import BinaryExpression

from bastion.errors import InvalidRequest
from bastion.knowledge.models import KnowledgeDocument

_OPERATORS = ("$in", "$ne", "$eq")


def _compare(field: str, value: Any, negate: bool = False) -> ColumnElement[bool]:
    column = KnowledgeDocument.document_metadata[field]
    expression: BinaryExpression[bool] | ColumnElement[bool]
    if isinstance(value, bool):
        expression = column.as_boolean() == value
    elif isinstance(value, int):
        expression = column.as_integer() == value
    elif isinstance(value, float):
        expression = column.as_float() == value
    elif isinstance(value, str):
        expression = column.as_string() == value
    else:
        raise InvalidRequest(f"filter on {field!r}: values must be strings, numbers or booleans")
    if negate:
        return or_(column.as_string().is_(None), ~expression)
    return expression


def metadata_condition(filters: dict[str, Any] | None) -> ColumnElement[bool] | None:
    """The condition on ``knowledge_documents`` for ``filters`` (None: no filter)."""
    if not filters:
        return None
    conditions: list[ColumnElement[bool]] = []
    for field, spec in filters.items():
        if not isinstance(field, str) or not field or field.startswith("$"):
            raise InvalidRequest(f"filter field {field!r} is not a metadata field name")
        if isinstance(spec, dict):
            unknown = set(spec) - set(_OPERATORS)
            if unknown or not spec:
                raise InvalidRequest(f"filter on {field!r}: operators are {', '.join(_OPERATORS)}")
            for operator, value in spec.items():
                if operator == "$in":
                    if not isinstance(value, list) or not value:
                        raise InvalidRequest(f"filter on {field!r}: $in takes a non-empty list")
                    conditions.append(or_(*(_compare(field, item) for item in value)))
                else:
                    conditions.append(_compare(field, value, negate=operator == "$ne"))
        else:
            conditions.append(_compare(field, spec))
    return and_(*conditions)
