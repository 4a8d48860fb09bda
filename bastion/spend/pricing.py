"""The price table: what a million tokens cost, per model, and the cost of one interaction.

Defaults ship in ``prices.yaml`` beside this module; ``pricing:`` in the configuration overrides or
extends them. Names are matched leniently (see ``PriceTable.lookup``) so a dated snapshot such as
``gpt-4o-mini-2024-07-18`` is priced as its family.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from bastion.config.settings import PriceSettings

MICROS_PER_USD = 1_000_000
_PER_MTOK = 1_000_000.0

#: Version suffixes that name a snapshot of a model family: dates (2024-07-18, 20241022, @20240620),
#: OpenAI's four-digit snapshots (0613, 0125), "-latest" and Bedrock-style "-v1:0".
_VERSION_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),
    re.compile(r"[-@]\d{8}$"),
    re.compile(r"-\d{4}$"),
    re.compile(r"-latest$"),
    re.compile(r"-v\d+(:\d+)?$"),
)


#: Prompt-cache prices as multiples of the input price, where a price names none of its own
#: (Anthropic's list prices: a write costs 1.25x for the 5-minute TTL and 2x for the 1-hour TTL,
#: a read 0.1x).
CACHE_WRITE_5M_FACTOR = 1.25
CACHE_WRITE_1H_FACTOR = 2.0
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. ``name`` is the table entry it came from (None: not in the table).

    ``cached_input_per_mtok`` is the price of a prompt-cache read, ``cache_write_per_mtok`` and
    ``cache_write_1h_per_mtok`` of a cache write with the 5-minute and the 1-hour TTL; each
    defaults to its ``CACHE_*_FACTOR`` times the input price."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None
    max_output_tokens: int | None = None
    name: str | None = None
    cache_write_per_mtok: float | None = None
    cache_write_1h_per_mtok: float | None = None

    @classmethod
    def from_settings(cls, settings: PriceSettings, name: str) -> Price:
        return cls(
            input_per_mtok=settings.input_per_mtok,
            output_per_mtok=settings.output_per_mtok,
            cached_input_per_mtok=settings.cached_input_per_mtok,
            max_output_tokens=settings.max_output_tokens,
            name=name,
            cache_write_per_mtok=settings.cache_write_per_mtok,
            cache_write_1h_per_mtok=settings.cache_write_1h_per_mtok,
        )

    @property
    def is_free(self) -> bool:
        return (
            self.input_per_mtok == 0.0
            and self.output_per_mtok == 0.0
            and not self.cached_input_per_mtok
            and not self.cache_write_per_mtok
            and not self.cache_write_1h_per_mtok
        )

    @property
    def cache_read_price(self) -> float:
        if self.cached_input_per_mtok is not None:
            return self.cached_input_per_mtok
        return self.input_per_mtok * CACHE_READ_FACTOR

    @property
    def cache_write_price(self) -> float:
        if self.cache_write_per_mtok is not None:
            return self.cache_write_per_mtok
        return self.input_per_mtok * CACHE_WRITE_5M_FACTOR

    @property
    def cache_write_1h_price(self) -> float:
        if self.cache_write_1h_per_mtok is not None:
            return self.cache_write_1h_per_mtok
        return self.input_per_mtok * CACHE_WRITE_1H_FACTOR

    def cost_usd(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
    ) -> float:
        """USD per million tokens of each kind: the prompt's uncached tokens at the input price,
        cache reads (``cached_tokens``) and cache writes (5-minute and 1-hour TTL) at theirs,
        the completion at the output price. Cache reads and writes are part of ``prompt_tokens``
        (OpenAI's convention); counts a provider over-reports are clipped, never negative."""
        prompt = max(prompt_tokens, 0)
        cached = min(max(cached_tokens, 0), prompt)
        written = min(max(cache_write_tokens, 0), prompt - cached)
        written_1h = min(max(cache_write_1h_tokens, 0), written)
        return (
            (prompt - cached - written) * self.input_per_mtok
            + cached * self.cache_read_price
            + (written - written_1h) * self.cache_write_price
            + written_1h * self.cache_write_1h_price
            + max(completion_tokens, 0) * self.output_per_mtok
        ) / _PER_MTOK

    def most_expensive(self, other: Price) -> Price:
        """Each component's maximum: a conservative price when the deployment is not known yet."""

        def highest(a: float | int | None, b: float | int | None) -> Any:
            known = [p for p in (a, b) if p is not None]
            return max(known) if known else None

        return Price(
            input_per_mtok=max(self.input_per_mtok, other.input_per_mtok),
            output_per_mtok=max(self.output_per_mtok, other.output_per_mtok),
            cached_input_per_mtok=highest(self.cached_input_per_mtok, other.cached_input_per_mtok),
            max_output_tokens=highest(self.max_output_tokens, other.max_output_tokens),
            name=self.name or other.name,
            cache_write_per_mtok=highest(self.cache_write_per_mtok, other.cache_write_per_mtok),
            cache_write_1h_per_mtok=highest(self.cache_write_1h_per_mtok, other.cache_write_1h_per_mtok),
        )


#: What a model missing from the table costs (and what local models cost unless configured).
FREE = Price()


def to_micros(usd: float) -> int:
    """Integer micro-dollars, as spend is counted in Redis and in memory (rounded, not truncated:
    3 tokens at $10,000/Mtok must be exactly 30,000 micro-dollars, not 30,001)."""
    return round(usd * MICROS_PER_USD)


def _parse_entries(raw: Mapping[str, Any]) -> dict[str, Price]:
    return {
        str(name).lower(): Price.from_settings(PriceSettings.model_validate(value), str(name).lower())
        for name, value in raw.items()
    }


def load_default_prices() -> dict[str, Price]:
    """The shipped table (``bastion/spend/prices.yaml``)."""
    text = resources.files("bastion.spend").joinpath("prices.yaml").read_text(encoding="utf-8")
    return _parse_entries(yaml.safe_load(text) or {})


def family_candidates(name: str) -> list[str]:
    """The names to try for ``name``, most specific first: as given, without a provider prefix,
    then without each version suffix in turn."""
    base = name.strip().lower()
    candidates = [base]
    if "/" in base:
        base = base.rsplit("/", 1)[1]
        candidates.append(base)
    changed = True
    while changed:
        changed = False
        for suffix in _VERSION_SUFFIXES:
            stripped = suffix.sub("", base)
            if stripped != base and stripped:
                base = stripped
                candidates.append(base)
                changed = True
    return candidates


class PriceTable:
    """Name -> price, with lenient matching; lookups are memoised (model names are few)."""

    def __init__(self, entries: Mapping[str, Price]) -> None:
        self._entries = {name.lower(): price for name, price in entries.items()}
        # Longest first, so "gpt-4o-mini" wins over "gpt-4o" in prefix matching.
        self._by_length = sorted(self._entries, key=len, reverse=True)
        self._memo: dict[str, Price | None] = {}

    @classmethod
    def from_settings(cls, overrides: Mapping[str, PriceSettings], *, defaults: bool = True) -> PriceTable:
        entries = load_default_prices() if defaults else {}
        entries.update({name.lower(): Price.from_settings(p, name.lower()) for name, p in overrides.items()})
        return cls(entries)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, name: str | None) -> Price | None:
        """The price of ``name``: exact, then without provider prefix and version suffixes, then the
        longest table name it starts with at a "-" boundary. None when nothing matches."""
        if not name:
            return None
        try:
            return self._memo[name]
        except KeyError:
            pass
        price = self._resolve(name)
        if len(self._memo) < 4096:  # names come from configuration, but stay bounded regardless
            self._memo[name] = price
        return price

    def _resolve(self, name: str) -> Price | None:
        candidates = family_candidates(name)
        for candidate in candidates:
            price = self._entries.get(candidate)
            if price is not None:
                return price
        for candidate in candidates:
            for known in self._by_length:
                # A "-" boundary only: "gpt-4" must not price "gpt-4.5" or "gpt-4o".
                if candidate.startswith(known + "-"):
                    return self._entries[known]
        return None
