"""A template's typed slots: the properties of its ``input_schema`` that a model may fill.

A slot is a string, number, integer, boolean, enum (or const) or an array of those. The model
writes under a reduced schema (a grammar for the local model: strings and arrays bounded so that
an answer fits a small token budget); each value it writes is then checked against the slot's own
schema, and a slot that is missing or invalid takes the template's ``default``. So the filled input
is valid because of the decoding and the checks, whatever the model's skill."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bastion.agents.plan import Plan, schema_errors

#: The longest string the model may write into a slot (a bound of the grammar, not of the slot).
MAX_SLOT_CHARS = 40
#: The most items the model may write into an array slot.
MAX_SLOT_ITEMS = 4


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    schema: dict[str, Any]  # the property's schema in the template: what a value must satisfy
    grammar: dict[str, Any]  # the reduced schema the model writes under

    @property
    def has_default(self) -> bool:
        return "default" in self.schema

    @property
    def default(self) -> Any:
        return self.schema.get("default")


@dataclass(frozen=True, slots=True)
class SlotFill:
    """The filled input, and where each slot's value came from."""

    input: dict[str, Any]
    from_model: tuple[str, ...]
    defaulted: dict[str, str]  # slot -> why the model's value was not taken

    def summary(self) -> str:
        parts = [f"{len(self.from_model)} slot(s) from the model"]
        if self.defaulted:
            parts.append("defaults for " + "; ".join(f"{k} ({why})" for k, why in self.defaulted.items()))
        return ", ".join(parts)


def template_slots(plan: Plan) -> list[Slot]:
    """The slots of ``plan``'s input, in the schema's order; properties of other shapes are left
    to the caller's input and the defaults."""
    properties = plan.input_schema.get("properties")
    slots: list[Slot] = []
    for name, schema in (properties if isinstance(properties, dict) else {}).items():
        if isinstance(schema, dict) and (grammar := _grammar(schema, top=True)) is not None:
            slots.append(Slot(name, schema, grammar))
    return slots


def missing_defaults(plan: Plan, given: dict[str, Any]) -> list[str]:
    """Required properties that the caller did not give and that have no default: the input could
    not be completed if the model failed to fill them."""
    properties = plan.input_schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = plan.input_schema.get("required")
    return [
        name
        for name in (required if isinstance(required, list) else [])
        if name not in given and not (isinstance(properties.get(name), dict) and "default" in properties[name])
    ]


def slots_schema(slots: list[Slot]) -> dict[str, Any]:
    """The JSON Schema the model answers under: every slot required, nothing else allowed."""
    return {
        "type": "object",
        "properties": {slot.name: slot.grammar for slot in slots},
        "required": [slot.name for slot in slots],
        "additionalProperties": False,
    }


def fill_slots(slots: list[Slot], given: dict[str, Any], answer: Any) -> SlotFill:
    """The slots' values: what the caller gave wins, then each valid value of the model's
    ``answer`` (JSON text; None when there was no answer), then the slot's default. Keys of the
    answer that are not slots are ignored. From an answer cut short (not JSON), the members
    written in full are still taken."""
    data, problem, absent = _read_answer(answer)
    values: dict[str, Any] = {}
    from_model: list[str] = []
    defaulted: dict[str, str] = {}
    for slot in slots:
        if slot.name in given:
            continue
        if data is None:
            why = problem
        elif slot.name not in data:
            why = absent
        elif errors := schema_errors(data[slot.name], slot.schema):
            why = "invalid: " + errors[0].removeprefix("$: ")
        else:
            values[slot.name] = data[slot.name]
            from_model.append(slot.name)
            continue
        if slot.has_default:
            values[slot.name] = slot.default
            defaulted[slot.name] = why
    return SlotFill({**values, **given}, tuple(from_model), defaulted)


def _read_answer(answer: Any) -> tuple[dict[str, Any] | None, str, str]:
    """The answer's members (None: nothing usable), why nothing is usable, why a slot is absent."""
    if answer is None:
        return None, "no answer", "no answer"
    if not isinstance(answer, str):
        return None, "the answer is not text", "the answer is not text"
    try:
        data = json.loads(answer)
    except ValueError:
        return complete_members(answer), "the answer is not JSON", "cut short or missing"
    if not isinstance(data, dict):
        return None, "the answer is not a JSON object", "missing"
    return data, "", "missing"


def defaults_only(plan: Plan, given: dict[str, Any]) -> dict[str, Any]:
    """The caller's input completed with the defaults of ``plan``'s input properties."""
    properties = plan.input_schema.get("properties")
    defaults = {
        name: schema["default"]
        for name, schema in (properties if isinstance(properties, dict) else {}).items()
        if isinstance(schema, dict) and "default" in schema
    }
    return {**defaults, **given}


def _grammar(schema: dict[str, Any], *, top: bool) -> dict[str, Any] | None:
    """The reduced schema a model writes a value of ``schema`` under, or None if it is not a slot."""
    for choice in ("enum", "const"):
        if choice in schema:
            options = schema[choice] if choice == "enum" else [schema["const"]]
            # Only options the slot itself accepts (an enum beside a type or a bound may narrow it).
            valid = [o for o in options if _scalar(o) and not schema_errors(o, schema)]
            return {"enum": valid} if valid else None
    kind = schema.get("type")
    if kind == "string":
        low = min(_int(schema.get("minLength"), 0), MAX_SLOT_CHARS)
        return {
            "type": "string",
            "minLength": low,
            "maxLength": min(_int(schema.get("maxLength"), MAX_SLOT_CHARS), MAX_SLOT_CHARS),
        }
    if kind == "integer":
        bounds = {k: schema[k] for k in ("minimum", "maximum") if isinstance(schema.get(k), int)}
        return {"type": "integer", **bounds}
    if kind in ("number", "boolean"):
        return {"type": kind}
    if kind == "array" and top and isinstance(schema.get("items"), dict):
        items = _grammar(schema["items"], top=False)
        if items is None:
            return None
        most = min(_int(schema.get("maxItems"), MAX_SLOT_ITEMS), MAX_SLOT_ITEMS)
        return {
            "type": "array",
            "items": items,
            "minItems": min(_int(schema.get("minItems"), 0), most),
            "maxItems": most,
        }
    return None


def complete_members(text: str) -> dict[str, Any] | None:
    """The members of a JSON object that were written in full before ``text`` broke off (an
    answer cut by its token budget), or None if ``text`` does not start an object. A member
    counts only once the ``,`` or ``}`` after it is there, so a cut number is never taken."""
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if not text.startswith("{", position):
        return None
    members: dict[str, Any] = {}
    position += 1
    try:
        while True:
            key, position = decoder.raw_decode(text, _skip(text, position))
            position = _skip(text, position)
            if not isinstance(key, str) or not text.startswith(":", position):
                return members
            value, position = decoder.raw_decode(text, _skip(text, position + 1))
            position = _skip(text, position)
            if not text.startswith((",", "}"), position):
                return members
            members[key] = value
            if text.startswith("}", position):
                return members
            position += 1
    except ValueError:
        return members


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\n\r":
        position += 1
    return position


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _int(value: Any, fallback: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else fallback
