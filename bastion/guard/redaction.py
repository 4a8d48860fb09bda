"""Thorough redaction for work that is not on the request path: stored content, exports, batch lines.

``find_pii`` and ``redact_pii`` run every detector the guard has on one text: secrets, the
structured PII recognisers and, with ``names=True`` (the default), the named-entity tier (person
names, organisations, places, street addresses, titles, postcodes). Overlaps are resolved the way
the guard resolves them: a secret wins over PII inside it, a validated identifier over a named
entity. They cost milliseconds per kilobyte with names on, so call them from a background task or
a worker thread, never from an event loop that serves requests.

    from bastion.guard.redaction import redact_pii
    redact_pii("Call Jane Doe at 221B Baker Street, +44 20 7946 0958")
    # 'Call [PERSON] at [STREET_ADDRESS], [PHONE_NUMBER]'

Detectors are built on first use and shared; both functions are thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from bastion.config.guard_policy import DEFAULT_PII_ENTITIES, NER_PII_ENTITIES
from bastion.guard.engine import redact, shared_secret_detector, typed_placeholder
from bastion.guard.models import Finding
from bastion.guard.ner import NamedEntityDetector, resolve
from bastion.guard.pii import PiiDetector
from bastion.guard.spans import drop_overlapping

#: What ``redact_pii`` removes by default: the request path's default types plus every named-entity type.
REDACTION_ENTITIES: tuple[str, ...] = (*DEFAULT_PII_ENTITIES, *NER_PII_ENTITIES)


@lru_cache(maxsize=16)
def _detectors(entities: frozenset[str], names: bool) -> tuple[PiiDetector, NamedEntityDetector | None]:
    named = NamedEntityDetector(entities) if names and entities & frozenset(NER_PII_ENTITIES) else None
    return PiiDetector(entities), named


def find_pii(
    text: str, entities: Iterable[str] = REDACTION_ENTITIES, *, names: bool = True, secrets: bool = True
) -> list[Finding]:
    """Secrets (when ``secrets``) and the PII of ``entities`` in ``text``, disjoint, by position."""
    if not text:
        return []
    structured, named = _detectors(frozenset(entities), names)
    secret_findings = shared_secret_detector().scan(text) if secrets else []
    pii = drop_overlapping(structured.scan(text), secret_findings)
    if named is not None:
        pii = resolve(pii, drop_overlapping(named.scan(text), secret_findings))
    return sorted([*secret_findings, *pii], key=lambda f: f.start)


def redact_pii(
    text: str, entities: Iterable[str] = REDACTION_ENTITIES, *, names: bool = True, secrets: bool = True
) -> str:
    """``text`` with what ``find_pii`` finds replaced by typed placeholders (``[PERSON]``, ``[IBAN_CODE]``)."""
    return redact(text, find_pii(text, entities, names=names, secrets=secrets), typed_placeholder)
