"""The learned injection/jailbreak scorer: a logistic model over hashed n-grams and the rule scores.

``logit = max over windows(w · ngrams(window)) + v · rule_categories + b``, and the score is the
logit's probability, or the rule score when that is near-certain (``RULE_FLOOR``). The rules
(``injection.py``) see phrasing, decoded payloads and hidden text; the n-gram weights, trained on
the labelled corpus (``train.py``, ``bastion guard train``), see everything else the corpus taught.
The weights ship in the package (``data/injection_model.bin.gz`` and its ``.json`` card) and load
without any network access. ``flag_threshold`` and ``block_threshold`` are the two operating points
calibrated on rows held out from training.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import bastion.guard.budget as budget
from bastion.guard.injection_rules import (
    ADVERSARIAL_SUFFIX,
    CONTEXT,
    DELIMITER,
    EXTRACTION,
    FORCED_OUTPUT,
    FRAMED_HARM,
    JAILBREAK,
    OBFUSCATION,
    OVERRIDE,
    PIVOT,
    ROLE,
)
from bastion.guard.ngrams import blocks, hash_block, normalize, normalize_folded

#: The rule categories the model takes as inputs, in weight order; the last input is the rules'
#: combined (noisy-OR) score.
RULE_FEATURES: tuple[str, ...] = (
    OVERRIDE,
    EXTRACTION,
    ROLE,
    JAILBREAK,
    PIVOT,
    FORCED_OUTPUT,
    CONTEXT,
    DELIMITER,
    OBFUSCATION,
    ADVERSARIAL_SUFFIX,
    FRAMED_HARM,
)
MODEL_DIR = Path(__file__).parent / "data"
MODEL_NAME = "injection_model"


#: A rule score this high comes from an unmistakable instruction ("ignore all previous
#: instructions", a decoded payload that says so); the model may raise the score but not lower it
#: below the rule's. On sources held out from training the n-grams of an unfamiliar context pulled
#: such prompts under the thresholds, while no benign corpus row reaches this rule score.
RULE_FLOOR = 0.85


def with_rule_floor(probability: float, rule_score: float) -> float:
    return max(probability, rule_score) if rule_score >= RULE_FLOOR else probability


def rule_vector(categories: dict[str, float], combined: float) -> npt.NDArray[np.float32]:
    values = [categories.get(name, 0.0) for name in RULE_FEATURES]
    values.append(combined)
    return np.asarray(values, dtype=np.float32)


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


@dataclass(frozen=True, slots=True)
class InjectionModel:
    ngram_weights: npt.NDArray[np.float32]
    rule_weights: npt.NDArray[np.float32]
    bias: float
    bits: int
    #: Probability at or above which the default policy flags (a balanced operating point).
    flag_threshold: float
    #: Probability at or above which the default policy blocks (a high-precision operating point).
    block_threshold: float
    #: SHA-256 of the weights file: which model scored a request.
    sha256: str
    card: dict[str, Any]

    def ngram_logit(self, text: str, *, folded: str | None = None) -> float:
        """The n-gram part of the logit: the strongest window's. ``folded`` is the text's
        ``build_view`` view when the caller has it already (the rules build it too)."""
        normalized = normalize_folded(folded) if folded is not None else normalize(text)
        best = 0.0
        for index, (block, starts, ends) in enumerate(blocks(normalized)):
            if index:
                budget.check()
            logits = hash_block(block, starts, ends, self.bits).window_logits(self.ngram_weights)
            best = float(logits.max()) if index == 0 else max(best, float(logits.max()))
        return best

    def probability(
        self, text: str, categories: dict[str, float], combined: float, *, folded: str | None = None
    ) -> float:
        rules = float(np.dot(self.rule_weights, rule_vector(categories, combined)))
        return with_rule_floor(sigmoid(self.ngram_logit(text, folded=folded) + rules + self.bias), combined)

    @classmethod
    def load(cls, directory: Path = MODEL_DIR, name: str = MODEL_NAME) -> InjectionModel:
        weights_path = directory / f"{name}.bin.gz"
        raw = weights_path.read_bytes()
        card = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        bits = int(card["bits"])
        rule_count = len(RULE_FEATURES) + 1
        payload = gzip.decompress(raw)
        if len(payload) != 2 * (1 << bits) + 4 * (rule_count + 1):
            raise ValueError(f"{weights_path}: weights do not match the model card's shape")
        ngram_weights = np.frombuffer(payload, dtype="<f2", count=1 << bits).astype(np.float32)
        tail = np.frombuffer(payload, dtype="<f4", offset=2 * (1 << bits))
        rule_weights, bias = tail[:rule_count].astype(np.float32), float(tail[rule_count])
        return cls(
            ngram_weights=ngram_weights,
            rule_weights=rule_weights,
            bias=bias,
            bits=bits,
            flag_threshold=float(card["thresholds"]["flag"]),
            block_threshold=float(card["thresholds"]["block"]),
            sha256=hashlib.sha256(raw).hexdigest(),
            card=card,
        )


@lru_cache(maxsize=1)
def shared_model() -> InjectionModel:
    """The packaged model, loaded once per process."""
    return InjectionModel.load()
