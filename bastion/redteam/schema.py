"""The schema every attack in the library validates against, and the loader of the YAML files.

A library file is a mapping ``{"attacks": [ ... ]}``; each attack is an :class:`Attack`. A file that
does not parse or validate raises :class:`LibraryError` naming the file and the attack."""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bastion.redteam.encodings import ENCODERS

Category = Literal["prompt_injection", "jailbreak", "system_prompt_extraction", "pii_extraction", "encoding"]
CATEGORIES: tuple[str, ...] = (
    "prompt_injection",
    "jailbreak",
    "system_prompt_extraction",
    "pii_extraction",
    "encoding",
)
#: What counts as success for an attempt, judged deterministically (see ``bastion.redteam.scoring``).
Goal = Literal["leak_prompt", "leak_pii", "rogue", "comply"]
#: Placeholders a template or payload may use; any other ``{name}`` is rejected.
PLACEHOLDERS = frozenset({"payload", "rogue", "scheme"})
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_DEFAULT_GOAL: dict[str, str] = {
    "prompt_injection": "rogue",
    "jailbreak": "comply",
    "system_prompt_extraction": "leak_prompt",
    "pii_extraction": "leak_pii",
    "encoding": "rogue",
}


class LibraryError(ValueError):
    """A library file that cannot be read, parsed or validated."""


class Attack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{2,63}$")
    category: Category
    technique: str = Field(pattern=r"^[a-z0-9_]{2,48}$")
    template: str = Field(min_length=1)
    payload: str = Field(min_length=1)
    source: str = Field(min_length=1)
    licence: str = Field(min_length=1)
    goal: Goal | None = None
    #: Encoding schemes the payload is sent in (category ``encoding``: required, one attempt each).
    encodings: tuple[str, ...] = ()
    #: Alternative wordings of the template (each with ``{payload}``): fragility variants.
    paraphrases: tuple[str, ...] = ()
    #: Strings whose presence in an answer shows the jailbreak persona/technique took hold.
    markers: tuple[str, ...] = ()
    description: str = ""

    @field_validator("template", "payload", "paraphrases")
    @classmethod
    def _known_placeholders(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for text in (value,) if isinstance(value, str) else value:
            unknown = set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS
            if unknown:
                raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
        return value

    @field_validator("encodings")
    @classmethod
    def _known_schemes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [scheme for scheme in value if scheme not in ENCODERS]
        if unknown:
            raise ValueError(f"unknown encoding scheme(s) {unknown}; known: {sorted(ENCODERS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Attack:
        for text in (self.template, *self.paraphrases):
            if "{payload}" not in text:
                raise ValueError("every template and paraphrase must contain {payload}")
        if self.category == "encoding" and not self.encodings:
            raise ValueError("an attack of category 'encoding' needs at least one scheme in 'encodings'")
        if self.resolved_goal == "rogue" and "{rogue}" not in self.template + self.payload:
            raise ValueError("an attack with goal 'rogue' must put {rogue} in its template or payload")
        return self

    @property
    def resolved_goal(self) -> str:
        return self.goal or _DEFAULT_GOAL[self.category]


class _LibraryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attacks: list[Attack]


def parse_library_text(text: str, *, origin: str) -> list[Attack]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LibraryError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or "attacks" not in data:
        raise LibraryError(f"{origin}: expected a mapping with an 'attacks' list")
    try:
        return _LibraryFile.model_validate(data).attacks
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            where = ".".join(str(part) for part in loc)
            if len(loc) >= 2 and loc[0] == "attacks" and isinstance(loc[1], int):
                raw = data["attacks"][loc[1]] if isinstance(data.get("attacks"), list) else None
                attack_id = raw.get("id") if isinstance(raw, dict) else None
                where = f"attack {attack_id or '#' + str(loc[1])}: " + ".".join(str(p) for p in loc[2:])
            problems.append(f"{where}: {error['msg']}")
        raise LibraryError(f"{origin}: invalid attack library: " + "; ".join(problems)) from exc


def load_library(paths: Iterable[Path] | None = None) -> list[Attack]:
    """Every attack of the given YAML files (default: the library shipped in ``attacks/``), sorted by
    id. Duplicate ids across files are an error."""
    if paths is None:
        folder = resources.files("bastion.redteam") / "attacks"
        texts = sorted(
            (
                (entry.name, entry.read_text(encoding="utf-8"))
                for entry in folder.iterdir()
                if entry.name.endswith(".yaml")
            ),
        )
    else:
        texts = []
        for path in paths:
            try:
                texts.append((str(path), Path(path).read_text(encoding="utf-8")))
            except OSError as exc:
                raise LibraryError(f"{path}: cannot be read: {exc}") from exc
    attacks: dict[str, Attack] = {}
    for origin, text in texts:
        for attack in parse_library_text(text, origin=origin):
            if attack.id in attacks:
                raise LibraryError(f"{origin}: duplicate attack id {attack.id!r}")
            attacks[attack.id] = attack
    return [attacks[key] for key in sorted(attacks)]
