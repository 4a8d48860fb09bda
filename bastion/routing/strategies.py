"""How a model alias picks one of its deployments for the next attempt."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from bastion.routing.target import Target


class Strategy(Protocol):
    def choose(self, candidates: Sequence[Target]) -> Target: ...


class WeightedRandom:
    """Pick in proportion to configured weight (LiteLLM's ``simple-shuffle``)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def choose(self, candidates: Sequence[Target]) -> Target:
        if len(candidates) == 1:
            return candidates[0]
        weights = [t.deployment.settings.weight for t in candidates]
        return self._rng.choices(candidates, weights=weights, k=1)[0]


class LeastBusy:
    """Pick the deployment with the fewest calls in flight; ties broken by weight, then at random."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._tiebreak = WeightedRandom(rng)

    def choose(self, candidates: Sequence[Target]) -> Target:
        fewest = min(t.in_flight for t in candidates)
        return self._tiebreak.choose([t for t in candidates if t.in_flight == fewest])


def make_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    if name == "least_busy":
        return LeastBusy(rng)
    return WeightedRandom(rng)
