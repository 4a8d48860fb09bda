"""Local embeddings: all-MiniLM-L6-v2, 384 dimensions, unit length, coalesced batches."""

from __future__ import annotations

import asyncio
import math

from bastion.local.embedder import DIMENSIONS, Embedder
from tests.local.conftest import needs_embedder

pytestmark = needs_embedder


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_are_384_dimensional_and_unit_length(embedder: Embedder) -> None:
    vectors, tokens = await embedder.embed(["The cat sits on the mat.", "Stock prices fell sharply today."])
    assert DIMENSIONS == 384
    assert [len(v) for v in vectors] == [384, 384]
    assert all(math.isclose(math.sqrt(dot(v, v)), 1.0, abs_tol=1e-4) for v in vectors)
    assert tokens > 0


async def test_similar_sentences_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    (cat, kitten, finance), _ = await embedder.embed(
        ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "The central bank raised interest rates."]
    )
    assert dot(cat, kitten) > 0.5
    assert dot(cat, kitten) > dot(cat, finance) + 0.3


async def test_batch_order_is_preserved(embedder: Embedder) -> None:
    texts = [f"Sentence number {i} is about topic {i % 3}." for i in range(10)]
    batch, batch_tokens = await embedder.embed(texts)
    singles = await asyncio.gather(*(embedder.embed([text]) for text in texts))
    for one, (vectors, _) in zip(batch, singles, strict=True):
        assert math.isclose(dot(one, vectors[0]), 1.0, abs_tol=1e-4)
    assert batch_tokens == sum(tokens for _, tokens in singles)


async def test_concurrent_requests_each_get_their_own_answers(embedder: Embedder) -> None:
    """Requests coalesced into one batch are split back correctly, whatever their sizes."""
    groups = [["alpha"], ["beta", "gamma", "delta"], [], ["epsilon", "zeta"]]
    results = await asyncio.gather(*(embedder.embed(group) for group in groups))
    assert [len(vectors) for vectors, _ in results] == [1, 3, 0, 2]
    alone, _ = await embedder.embed(["gamma"])
    assert math.isclose(dot(results[1][0][1], alone[0]), 1.0, abs_tol=1e-4)


async def test_token_usage_counts_word_pieces(embedder: Embedder) -> None:
    _, tokens = await embedder.embed(["hello world", "a b c"])
    assert tokens == 5  # WordPiece: [hello, world] + [a, b, c], special tokens not counted
