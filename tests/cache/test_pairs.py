"""The labelled pair set (tests/data/cache/semantic_pairs.jsonl): requests that differ by negation
or opposite intent (``negation``), by numbers, names or word order (``different``), and
rephrasings of one request (``paraphrase``).

The false-hit rate on the first two labels must be 0; rephrasings must still hit at a useful rate.
The first test checks the deterministic part alone (no model); the second runs the real semantic
lookup, MiniLM embeddings and all, at the default threshold, and prints the rates (``-s``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.cache.polarity import compatible
from bastion.cache.semantic import SemanticIndex
from bastion.config.cache_settings import SemanticCacheSettings
from bastion.config.settings import LocalModelSettings

PAIRS = [
    json.loads(line)
    for line in (Path(__file__).parents[1] / "data" / "cache" / "semantic_pairs.jsonl").read_text().splitlines()
    if line.strip()
]
MUST_MISS = [pair for pair in PAIRS if pair["label"] in ("negation", "different")]
PARAPHRASES = [pair for pair in PAIRS if pair["label"] == "paraphrase"]


def test_the_pair_set() -> None:
    assert len(PAIRS) >= 60
    assert len([p for p in PAIRS if p["label"] == "negation"]) >= 30 and len(PARAPHRASES) >= 25


@pytest.mark.parametrize("pair", MUST_MISS, ids=[f"{p['a']} | {p['b']}" for p in MUST_MISS])
def test_the_polarity_check_turns_down_every_negation_pair(pair: dict[str, str]) -> None:
    assert not compatible(pair["a"], pair["b"])
    assert not compatible(pair["b"], pair["a"])


def test_the_polarity_check_lets_paraphrases_through() -> None:
    passed = [pair for pair in PARAPHRASES if compatible(pair["a"], pair["b"])]
    assert len(passed) / len(PARAPHRASES) >= 0.9


@pytest.mark.local_model("embedder")
async def test_false_hit_rate_with_the_embedded_model() -> None:
    from bastion.local.embedder import get_embedder

    embedder = get_embedder(LocalModelSettings())
    threshold = SemanticCacheSettings().threshold

    async def outcome(a: str, b: str) -> tuple[float, bool]:
        """(cosine, semantic hit): ``a`` stored, ``b`` looked up, in a scope of their own."""
        index = SemanticIndex(embedder.embed, SemanticCacheSettings())
        stored, asked = await index.query(a), await index.query(b)
        assert stored is not None and asked is not None
        index.add("scope", stored, "key", ttl_s=60)
        similarity = float(stored.vector @ asked.vector)
        match, _ = index.nearest("scope", asked, threshold)
        return similarity, match is not None

    must_miss = [await outcome(p["a"], p["b"]) for p in MUST_MISS]
    paraphrases = [await outcome(p["a"], p["b"]) for p in PARAPHRASES]
    cosine_only = sum(similarity >= threshold for similarity, _ in must_miss)
    false_hits = sum(hit for _, hit in must_miss)
    hits = sum(hit for _, hit in paraphrases)
    print(
        f"\nthreshold {threshold}: negation/different pairs {len(must_miss)}, above the threshold by cosine alone "
        f"{cosine_only} ({cosine_only / len(must_miss):.0%}), false hits with the polarity check {false_hits} "
        f"({false_hits / len(must_miss):.0%}); paraphrases {len(paraphrases)}, hits {hits} "
        f"({hits / len(paraphrases):.0%})"
    )
    assert false_hits == 0
    assert cosine_only > 0  # the check is what keeps them apart: cosine alone would serve some
    assert hits / len(paraphrases) >= 0.7
