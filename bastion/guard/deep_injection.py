"""The deeper injection tier: a logistic model over the local MiniLM sentence embeddings.

Off the hot path by default (``GuardPolicy.injection_deep``): it needs the embedding model (the
``local`` extra) and costs an embedding per scanned text — measured in docs/GUARD.md — where the
fast tier costs well under a millisecond. With ``uncertain`` it runs only for texts the fast tier
scored between its flag and block thresholds, and a deep score at or above its own block threshold
turns that flag into a block; with ``always`` it runs for every scanned text and either tier's
block blocks. The guard takes the embedding function from its caller (the composition root wires
the local embedder), so this module knows no model runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.guard.injection_model import MODEL_DIR

DEEP_MODEL_NAME = "injection_deep"
#: Texts longer than this are embedded by their head: MiniLM reads 256 word pieces at most.
MAX_EMBED_CHARS = 2000

#: ``texts -> unit vectors`` (async), supplied by whoever owns the embedding model.
EmbedFunction = Callable[[list[str]], Awaitable[list[list[float]]]]


@dataclass(frozen=True, slots=True)
class DeepInjectionModel:
    weights: npt.NDArray[np.float64]
    bias: float
    flag_threshold: float
    block_threshold: float
    sha256: str
    card: dict[str, Any]

    def probabilities(self, vectors: Sequence[Sequence[float]]) -> list[float]:
        if not vectors:
            return []
        logits = np.asarray(vectors, dtype=np.float64) @ self.weights + self.bias
        return [1.0 / (1.0 + math.exp(-float(z))) for z in logits]

    @classmethod
    def load(cls, directory: Path = MODEL_DIR, name: str = DEEP_MODEL_NAME) -> DeepInjectionModel:
        raw = (directory / f"{name}.json").read_bytes()
        card = json.loads(raw)
        weights = np.asarray(card["weights"], dtype=np.float64)
        return cls(
            weights=weights,
            bias=float(card["bias"]),
            flag_threshold=float(card["thresholds"]["flag"]),
            block_threshold=float(card["thresholds"]["block"]),
            sha256=hashlib.sha256(raw).hexdigest(),
            card={key: value for key, value in card.items() if key not in ("weights", "bias")},
        )


@lru_cache(maxsize=1)
def shared_deep_model() -> DeepInjectionModel:
    return DeepInjectionModel.load()


def embed_text(text: str) -> str:
    """What the deep tier embeds of a text: its head (the embedder truncates anyway)."""
    return text[:MAX_EMBED_CHARS]
