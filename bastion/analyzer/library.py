"""The pattern library: data files under ``patterns/`` (shipped with the package), one per category.

``patterns/library.yaml`` names the library's version and its files; each file holds patterns with
an id, a version, a category, what it means (title, description, rationale, suggestion), a
confidence, a detector and positive and negative examples. The loader checks every field, so a
malformed file fails loudly at start-up, never at analysis time. docs/ANALYZER.md lists the rules
and says how to add one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bastion.analyzer.model import PromptText

PATTERNS_DIR = Path(__file__).with_name("patterns")
CATEGORIES = ("structure", "clarity", "efficiency", "cache", "template")
DETECTOR_KINDS = ("match", "absent", "builtin")
_ID = re.compile(r"^[a-z]+\.[a-z0-9-]+$")
_TEXT_FIELDS = ("title", "description", "rationale", "suggestion")


class LibraryError(ValueError):
    """A pattern file that is not well formed."""


@dataclass(frozen=True, slots=True)
class Pattern:
    id: str
    version: int
    category: str
    title: str
    description: str
    rationale: str
    suggestion: str
    confidence: float
    detector: dict[str, Any]
    positive: tuple[PromptText, ...]
    negative: tuple[PromptText, ...]


@dataclass(frozen=True, slots=True)
class Library:
    version: str
    patterns: tuple[Pattern, ...]

    def get(self, pattern_id: str) -> Pattern:
        for pattern in self.patterns:
            if pattern.id == pattern_id:
                return pattern
        raise KeyError(pattern_id)


def _segments(value: Any, where: str) -> str:
    """An example's text: a string, or a list of strings and ``{text, times}`` repetitions (so an
    example may be long without being long in the file)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise LibraryError(f"{where}: must be a string or a list of segments")
    parts: list[str] = []
    for item in value:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict) and isinstance(item.get("text"), str) and isinstance(item.get("times", 1), int):
            parts.append(item["text"] * int(item.get("times", 1)))
        else:
            raise LibraryError(f"{where}: a segment is a string or {{text, times}}")
    return "".join(parts)


def _example(value: Any, where: str) -> PromptText:
    if isinstance(value, str):
        return PromptText(system=value)
    if not isinstance(value, dict) or ("system" not in value and "template" not in value):
        raise LibraryError(f"{where}: an example is a string or an object with system and/or template")
    unknown = set(value) - {"system", "template", "variables", "model"}
    if unknown:
        raise LibraryError(f"{where}: unknown example field {sorted(unknown)[0]!r}")
    variables = value.get("variables")
    if variables is not None and not (isinstance(variables, list) and all(isinstance(v, str) for v in variables)):
        raise LibraryError(f"{where}: variables must be a list of names")
    template = value.get("template")
    return PromptText(
        system=_segments(value.get("system", ""), f"{where}.system"),
        template=_segments(template, f"{where}.template") if template is not None else None,
        declared=tuple(variables) if variables is not None else None,
        model=value.get("model"),
    )


def _pattern(raw: Any, where: str) -> Pattern:
    if not isinstance(raw, dict):
        raise LibraryError(f"{where}: a pattern is a mapping")
    pattern_id = raw.get("id")
    if not isinstance(pattern_id, str) or not _ID.match(pattern_id):
        raise LibraryError(f"{where}: id must look like category.name-with-dashes")
    where = f"{where} ({pattern_id})"
    category = raw.get("category")
    if category not in CATEGORIES or not pattern_id.startswith(f"{category}."):
        raise LibraryError(f"{where}: category must be one of {', '.join(CATEGORIES)} and prefix the id")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LibraryError(f"{where}: version must be a positive integer")
    for name in _TEXT_FIELDS:
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise LibraryError(f"{where}: {name} is required")
    confidence = raw.get("confidence")
    if not isinstance(confidence, int | float) or isinstance(confidence, bool) or not 0 < confidence <= 1:
        raise LibraryError(f"{where}: confidence must be in (0, 1]")
    detector = raw.get("detector")
    if not isinstance(detector, dict) or detector.get("kind") not in DETECTOR_KINDS:
        raise LibraryError(f"{where}: detector.kind must be one of {', '.join(DETECTOR_KINDS)}")
    examples = raw.get("examples")
    if not isinstance(examples, dict) or not examples.get("positive") or not examples.get("negative"):
        raise LibraryError(f"{where}: examples need at least one positive and one negative")
    return Pattern(
        id=pattern_id,
        version=version,
        category=category,
        title=raw["title"].strip(),
        description=" ".join(raw["description"].split()),
        rationale=" ".join(raw["rationale"].split()),
        suggestion=" ".join(raw["suggestion"].split()),
        confidence=float(confidence),
        detector=detector,
        positive=tuple(_example(e, f"{where} positive[{i}]") for i, e in enumerate(examples["positive"])),
        negative=tuple(_example(e, f"{where} negative[{i}]") for i, e in enumerate(examples["negative"])),
    )


def load_library(directory: Path = PATTERNS_DIR) -> Library:
    index = yaml.safe_load((directory / "library.yaml").read_text(encoding="utf-8"))
    if not isinstance(index, dict) or not isinstance(index.get("version"), str) or not index.get("files"):
        raise LibraryError("library.yaml: needs a version (string) and a list of files")
    patterns: list[Pattern] = []
    for name in index["files"]:
        raw = yaml.safe_load((directory / name).read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not isinstance(raw.get("patterns"), list):
            raise LibraryError(f"{name}: needs a list of patterns")
        patterns.extend(_pattern(item, f"{name}[{i}]") for i, item in enumerate(raw["patterns"]))
    ids = [pattern.id for pattern in patterns]
    duplicates = sorted({pattern_id for pattern_id in ids if ids.count(pattern_id) > 1})
    if duplicates:
        raise LibraryError(f"pattern ids must be unique: {', '.join(duplicates)}")
    return Library(index["version"], tuple(patterns))


@cache
def default_library() -> Library:
    """The library shipped with the package (loaded once per process)."""
    return load_library()
