"""The guard policy: a mode per scanner plus thresholds.

The gateway resolves which policy applies (tenant, then key, then prompt) by merging overrides with
``GuardPolicy.merged``. Policies are frozen and hashable, so a built guard can be cached per policy
(``InputGuard.for_policy``) instead of being rebuilt per request.

Modes: ``off`` (scanner does not run), ``flag`` (record, forward unchanged), ``redact`` (replace the
findings with typed placeholders, forward), ``block`` (refuse). Injection and leak findings have no
meaningful redaction, so ``redact`` on those scanners escalates to ``block``: the stricter reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Mode = Literal["off", "flag", "redact", "block"]

#: PII types redacted by default: identifiers that are personal data in any context.
DEFAULT_PII_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "CRYPTO",
    "DATE_TIME",
)

#: Types of the named-entity tier (``bastion/guard/ner.py``): a model for names, organisations and
#: places, rules for addresses, titles and postcodes. Detected only where that tier runs (``pii_ner``).
NER_PII_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "ORGANIZATION",
    "GPE",
    "LOCATION",
    "NRP",
    "STREET_ADDRESS",
    "TITLE",
    "ZIP_CODE",
)

#: Every PII type the guard can detect. The extra ones are off by default because redacting them
#: usually breaks the task more than it protects anyone (a URL, a person's age, the names of the
#: people, companies and places a request is about).
ALL_PII_ENTITIES: tuple[str, ...] = (*DEFAULT_PII_ENTITIES, "AGE", "DOMAIN_NAME", *NER_PII_ENTITIES)


class GuardPolicy(BaseModel):
    """Per-scanner modes and thresholds. Defaults are what a careful operator would pick."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Input and output.
    pii: Mode = "redact"
    secrets: Mode = "redact"
    # Input only.
    #: ``block``: block at or above ``injection_block_threshold`` and flag between the two
    #: thresholds; ``flag``: flag at or above ``injection_threshold``, never block.
    injection: Mode = "block"
    invisible: Mode = "redact"
    # Output only.
    leak: Mode = "block"
    #: Output-side overrides; ``None`` means "same as the input-side mode".
    output_pii: Mode | None = None
    output_secrets: Mode | None = None

    #: Injection score at or above which the injection scanner flags; ``None``: the learned
    #: model's calibrated balanced threshold (0.5 with ``injection_model: false``).
    injection_threshold: float | None = Field(None, ge=0.0, le=1.0)
    #: Injection score at or above which ``injection: block`` blocks; ``None``: the learned model's
    #: calibrated high-precision threshold (0.5 with ``injection_model: false``).
    injection_block_threshold: float | None = Field(None, ge=0.0, le=1.0)
    #: Score injections with the learned model (over the rules); ``False``: the rules alone.
    injection_model: bool = True
    #: The deeper injection tier over the local embeddings (needs the ``local`` extra; costs an
    #: embedding per scanned text): ``off``; ``uncertain`` (only when the fast tier's score lies
    #: between its flag and block thresholds; a deep block blocks); ``always``.
    injection_deep: Literal["off", "uncertain", "always"] = "off"
    #: What a client sees when its request is blocked: an HTTP 400 ``content_blocked`` error
    #: (``error``), or a 200 answer whose text is ``blocked_message`` and whose finish reason is
    #: ``content_filter`` (``refusal``, for clients and red-team tools that expect a model refusal).
    block_response: Literal["error", "refusal"] = "error"
    #: The wording of a block (error message or refusal text); ``None``: the gateway's default,
    #: which says nothing about the prompt or the rule.
    blocked_message: str | None = Field(None, min_length=1, max_length=2000)
    #: Fraction of the system prompt's word shingles found in the output at which a leak is flagged.
    leak_threshold: float = Field(0.2, gt=0.0, le=1.0)
    #: Shingle size (words) for the overlap check.
    leak_ngram: int = Field(5, ge=2, le=12)
    #: PII types to detect; see ``ALL_PII_ENTITIES``.
    pii_entities: tuple[str, ...] = DEFAULT_PII_ENTITIES
    #: ``False``: DATE_TIME only reports dates of birth (a date with birth context). ``True``: every
    #: explicit calendar date or timestamp.
    pii_all_dates: bool = False
    #: Run the named-entity tier on the input (names, organisations, places, street addresses, titles,
    #: postcodes; see ``NER_PII_ENTITIES``): the types of it listed in ``pii_entities``, or all of them
    #: when none is listed. It costs milliseconds per kilobyte (docs/GUARD.md, "Named entities") and
    #: needs the ``local`` extra.
    pii_ner: bool = False
    #: Message roles whose content is scanned on input; system/developer content is trusted.
    scan_roles: tuple[str, ...] = ("user", "tool", "function")
    #: Decode base64 / hex / rot13 / reversed / spaced payloads and rescan them for injection.
    decode_payloads: bool = True
    #: Wall time the guard may spend on one request's input (or one complete answer, or one streamed
    #: answer's checks) before ``scan_budget_action`` applies. Generous for anything a model can
    #: take; a bound on what a hostile multi-megabyte body can cost.
    scan_budget_ms: int = Field(1000, ge=10, le=600_000)
    #: ``block``: refuse the request (or stop the stream): what could not be checked is not sent.
    #: ``flag``: send it, as far as it was checked, and record that the check was cut short.
    scan_budget_action: Literal["block", "flag"] = "block"

    @field_validator("pii_entities")
    @classmethod
    def _known_entities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(ALL_PII_ENTITIES))
        if unknown:
            raise ValueError(f"unknown PII entity types: {', '.join(unknown)}")
        return value

    @property
    def ner_entities(self) -> tuple[str, ...]:
        """The named-entity types the input guard looks for: none unless ``pii_ner`` is on."""
        if not self.pii_ner:
            return ()
        listed = tuple(entity for entity in self.pii_entities if entity in NER_PII_ENTITIES)
        return listed or NER_PII_ENTITIES

    @property
    def effective_output_pii(self) -> Mode:
        return self.output_pii if self.output_pii is not None else self.pii

    @property
    def effective_output_secrets(self) -> Mode:
        return self.output_secrets if self.output_secrets is not None else self.secrets

    def merged(self, override: GuardPolicy | Mapping[str, Any] | None) -> GuardPolicy:
        """A new policy where the fields set in ``override`` win.

        A ``GuardPolicy`` override contributes only the fields that were explicitly given to it, so
        ``tenant.merged(GuardPolicy(pii="block"))`` changes ``pii`` and nothing else.
        """
        if override is None:
            return self
        if isinstance(override, GuardPolicy):
            changes = {name: getattr(override, name) for name in override.model_fields_set}
        else:
            changes = dict(override)
        if not changes:
            return self
        data = self.model_dump()
        data.update(changes)
        return GuardPolicy.model_validate(data)
