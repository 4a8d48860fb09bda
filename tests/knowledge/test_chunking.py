"""Chunking with MiniLM's own tokenizer: exact offsets for every chunk, no chunk over its size or
the model's window, the configured overlap, no text lost, sentence and paragraph boundaries."""

from __future__ import annotations

import itertools
import re

import pytest

from bastion.knowledge.chunking import MAX_CHUNK_TOKENS, Chunk, Chunker
from bastion.knowledge.extract import Extracted, extractor_for
from bastion.knowledge.tokenizer import minilm_tokenizer

SENTENCES = [
    "Microglia are the resident immune cells of the brain.",
    "They survey their environment continuously with motile processes!",
    "Do they respond to injury within minutes?",
    "Early work (Nimmerjahn et al., 2005) imaged them in vivo.",
    "The résumé of naïve coöperation mentions 3.5 µm and 10^6 cells.",
]

PLAIN = "\n\n".join(" ".join(SENTENCES[(i + j) % 5] for j in range(1 + i % 4)) for i in range(40))

MARKDOWN = (
    """# Guide to the gateway

Intro paragraph. It has two sentences.

## Install

- pip install bastion
- run `bastion serve`
1. first step with a longer explanation that keeps going
2. second step

```
code block line
```

> A quote that is a paragraph on its own, long enough to matter.
"""
    * 6
)

LONG_WORDS = "x" * 3000 + " tail words after a very long token run " + "ab" * 800

NO_PUNCTUATION = " ".join(f"word{i} alpha beta gamma" for i in range(600))


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return minilm_tokenizer()


def _check(text: str, chunks: list[Chunk], size: int, tokenizer) -> None:  # type: ignore[no-untyped-def]
    assert chunks
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        measured = tokenizer.count([chunk.text])[0]
        assert measured == chunk.tokens
        assert measured <= size <= MAX_CHUNK_TOKENS
    # No text lost: every non-whitespace character is inside some chunk.
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert lost == []
    # In order, each starting after the previous one's start.
    assert all(b.start > a.start for a, b in itertools.pairwise(chunks))
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize(
    ("text", "fmt"), [(PLAIN, "text"), (MARKDOWN, "markdown"), (LONG_WORDS, "text"), (NO_PUNCTUATION, "text")]
)
@pytest.mark.parametrize(("size", "overlap"), [(64, 16), (200, 40), (254, 0), (16, 4)])
def test_offsets_are_exact_no_text_is_lost_and_no_chunk_is_too_long(tokenizer, text, fmt, size, overlap) -> None:  # type: ignore[no-untyped-def]
    chunks = Chunker(tokenizer, size, overlap).chunk(extractor_for(fmt).extract(text))
    _check(text, chunks, size, tokenizer)


def test_overlap_is_whole_sentences_within_the_configured_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    size, overlap = 80, 24
    chunks = Chunker(tokenizer, size, overlap).chunk(Extracted(PLAIN))
    overlapping = 0
    for a, b in itertools.pairwise(chunks):
        if b.start < a.end:
            overlapping += 1
            shared = a.text[b.start - a.start :]
            assert b.text.startswith(shared)
            assert tokenizer.count([shared])[0] <= overlap
            # The shared part starts at a sentence start.
            assert any(shared.startswith(s) for s in SENTENCES)
    assert overlapping >= len(chunks) // 2  # short sentences: most neighbours share one


def test_no_overlap_when_zero(tokenizer) -> None:  # type: ignore[no-untyped-def]
    chunks = Chunker(tokenizer, 60, 0).chunk(Extracted(PLAIN))
    assert all(b.start >= a.end for a, b in itertools.pairwise(chunks))


def test_chunks_end_on_sentence_boundaries_when_sentences_fit(tokenizer) -> None:  # type: ignore[no-untyped-def]
    chunks = Chunker(tokenizer, 100, 20).chunk(Extracted(PLAIN))
    for chunk in chunks:
        assert re.search(r"[.!?)]$", chunk.text), chunk.text[-30:]


def test_a_paragraph_that_does_not_fit_starts_a_new_chunk(tokenizer) -> None:  # type: ignore[no-untyped-def]
    first = " ".join(SENTENCES[:4])
    second = " ".join(SENTENCES * 2)
    size = int(tokenizer.count([first])[0] / 0.8)  # the first paragraph fills 80% of a chunk
    text = f"{first}\n\n{second}"
    chunks = Chunker(tokenizer, size, 0).chunk(Extracted(text))
    assert chunks[0].text == first
    # Below that fill, the chunk goes on into the next paragraph.
    assert Chunker(tokenizer, size * 2, 0).chunk(Extracted(text))[0].text.startswith(first + "\n\n")


def test_invalid_sizes_are_refused(tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        Chunker(tokenizer, MAX_CHUNK_TOKENS + 1, 0)
    with pytest.raises(ValueError):
        Chunker(tokenizer, 100, 100)


def test_pages_are_kept_and_a_page_break_is_a_boundary(tokenizer) -> None:  # type: ignore[no-untyped-def]
    page_one = "First page sentence one. First page sentence two."
    page_two = "Second page sentence."
    text = f"{page_one}\n{page_two}"
    chunks = Chunker(tokenizer, 200, 0).chunk(Extracted(text, pages=[(0, 1), (len(page_one) + 1, 2)]))
    assert [(c.text, c.page) for c in chunks] == [(page_one, 1), (page_two, 2)]


def test_markdown_title_is_its_first_heading() -> None:
    assert extractor_for("markdown").extract(MARKDOWN).title == "Guide to the gateway"
