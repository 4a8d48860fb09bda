"""The citation rewriter (bastion/knowledge/citations.py) on its own: markers kept, narrowed or
removed, spans into the rewritten text, markers split across stream pieces at every position, and
no rewriting of code or of bracketed numbers that are not citations."""

from __future__ import annotations

import pytest

from bastion.knowledge.citations import (
    INSTRUCTION,
    NO_SOURCES,
    CitationStream,
    Sources,
    message_text,
    rewrite_answer,
    sources_block,
    with_sources,
)
from bastion.knowledge.model import Hit


def hit(chunk_id: int, text: str = "text", *, page: int | None = None) -> Hit:
    return Hit(
        chunk_id=chunk_id,
        collection_id="col1",
        collection="kb",
        document_id=f"doc{chunk_id}",
        document_key=f"key{chunk_id}",
        uri=f"file://doc{chunk_id}.md",
        title=f"Title {chunk_id}",
        start=10 * chunk_id,
        end=10 * chunk_id + len(text),
        page=page,
        text=text,
        content_hash=f"hash{chunk_id}",
        document_version=1,
        index_version=3,
        score=1.0 / chunk_id,
        rank=chunk_id,
        retrievers={},
        cosine=None,
    )


def spans_text(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[start:end] for start, end in spans]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Paris is the capital [1].", "Paris is the capital [1]."),
        ("Both [1][2] agree.", "Both [1][2] agree."),
        ("Both [1, 2] agree.", "Both [1, 2] agree."),
        ("Listed [1,2;3].", "Listed [1,2;3]."),
        ("Out of range [9].", "Out of range."),
        ("Partly [2, 9] known.", "Partly [2] known."),
        ("Mixed [1][9][3] here.", "Mixed [1][3] here."),
        ("Ends with one [7]", "Ends with one"),
        ("Middle [8] of a sentence.", "Middle of a sentence."),
        ("Repeated [1, 1] once.", "Repeated [1] once."),
        ("A box [x] and [ ] and [a1].", "A box [x] and [ ] and [a1]."),
        ("Year [2024] and index [0] and [100].", "Year [2024] and index [0] and [100]."),
        ("Code `xs[1]` and `ys[9]` stay.", "Code `xs[1]` and `ys[9]` stay."),
        ("```python\nrow[9] = row[1]\n```\nafter [9] done [1].", "```python\nrow[9] = row[1]\n```\nafter done [1]."),
        ("Double ``a[9]`` span.", "Double ``a[9]`` span."),
        ("Unclosed `tick\nthen [9] cut.", "Unclosed `tick\nthen cut."),
        ("No markers at all.", "No markers at all."),
    ],
)
def test_markers_are_kept_narrowed_or_removed(answer: str, expected: str) -> None:
    text, cited = rewrite_answer(answer, 3)
    assert text == expected
    for number, spans in cited.items():
        assert 1 <= number <= 3
        for marker in spans_text(text, spans):
            assert marker.startswith("[") and marker.endswith("]") and str(number) in marker


def test_spans_point_at_each_marker_in_the_rewritten_text() -> None:
    text, cited = rewrite_answer("A [9] b [2]. C [1, 2] d [5][1].", 2)
    assert text == "A b [2]. C [1, 2] d [1]."
    assert spans_text(text, cited[2]) == ["[2]", "[1, 2]"]
    assert spans_text(text, cited[1]) == ["[1, 2]", "[1]"]
    assert list(cited) == [2, 1]  # order of first citation


def test_no_sources_means_every_marker_goes() -> None:
    assert rewrite_answer("Nothing [1] to cite [2].", 0) == ("Nothing to cite.", {})


ANSWERS = [
    "Paris is the capital [1]. Lyon is not [9]. Both [1][2], see [1, 2] and [2, 9].",
    "Code ```\nx[9]\n``` then `y[9]` then [9] gone and [3] kept [10].",
    "Trailing spaces   [9]   and more [1]",
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_a_stream_split_anywhere_gives_the_whole_answers_text(answer: str) -> None:
    whole, whole_cited = rewrite_answer(answer, 3)
    for size in (1, 2, 3, 5, 7):
        stream = CitationStream(3)
        pieces = [stream.feed(answer[i : i + size]) for i in range(0, len(answer), size)]
        pieces.append(stream.finish())
        assert "".join(pieces) == whole, size
        assert stream.cited == whole_cited
    for cut in range(len(answer) + 1):
        stream = CitationStream(3)
        out = stream.feed(answer[:cut]) + stream.feed(answer[cut:]) + stream.finish()
        assert out == whole, cut


def test_an_incomplete_marker_is_held_back_until_resolved() -> None:
    stream = CitationStream(2)
    assert stream.feed("Paris [") == "Paris"
    assert stream.feed("1") == ""
    assert stream.feed("] is big [") == " [1] is big"
    assert stream.feed("9].") == "."
    assert stream.feed(" Next") == " Next"
    assert stream.feed(" [not a marker") == " [not a marker"
    assert stream.finish() == ""
    assert list(stream.cited) == [1]


def test_a_long_bracket_run_is_not_held_forever() -> None:
    stream = CitationStream(2)
    head = "[" + "1," * 40
    assert stream.feed(head) == head  # longer than any marker: text
    assert stream.finish() == ""


def test_an_unfinished_marker_at_the_end_is_text() -> None:
    stream = CitationStream(2)
    assert stream.feed("cut off [1") == "cut off"
    assert stream.finish() == " [1"


def test_sources_block_numbers_the_chunks_and_says_how_to_cite() -> None:
    block = sources_block([hit(1, "Lava flows.", page=4), hit(2, " Tides rise. ")])
    assert block.startswith(INSTRUCTION)
    assert "[1] Title 1, page 4\nLava flows.\n" in block
    assert "[2] Title 2\nTides rise.\n" in block
    assert sources_block([]) == NO_SOURCES


def test_sources_go_before_the_question_in_strings_and_parts() -> None:
    assert with_sources("Why?", "BLOCK") == "BLOCK\n\nQuestion:\nWhy?"
    parts = [{"type": "text", "text": "Why?"}, {"type": "image_url", "image_url": {"url": "x"}}]
    placed = with_sources(parts, "BLOCK")
    assert placed[0] == {"type": "text", "text": "BLOCK\n\nQuestion:\n"}
    assert placed[1:] == parts
    assert message_text(parts) == "Why?"
    assert message_text(None) == ""


def test_the_response_field_maps_citations_to_source_objects() -> None:
    sources = Sources([hit(11), hit(12), hit(13)])
    text = sources.stream(0).rewrite("A [2]. B [3][7].")
    assert text == "A [2]. B [3]."
    field = sources.response_field()
    assert [source["index"] for source in field["sources"]] == [1, 2, 3]
    first = field["sources"][0]
    assert first == {
        "index": 1,
        "collection": "kb",
        "collection_id": "col1",
        "document_id": "doc11",
        "document": "key11",
        "uri": "file://doc11.md",
        "title": "Title 11",
        "chunk_id": 11,
        "start": 110,
        "end": 114,
        "page": None,
        "content_hash": "hash11",
        "document_version": 1,
        "index_version": 3,
        "score": 1.0 / 11,
        "cosine": None,
    }
    assert [(c["source"], c["chunk_id"], c["document_id"]) for c in field["citations"]] == [
        (2, 12, "doc12"),
        (3, 13, "doc13"),
    ]
    assert [text[s:e] for c in field["citations"] for s, e in c["spans"]] == ["[2]", "[3]"]
    assert sources.cited_chunk_ids() == [12, 13]


def test_random_answers_split_at_random_rewrite_as_the_whole() -> None:
    import random

    rng = random.Random(15)
    tokens = ["[", "]", "1", "2", "9", "12", ",", " ", "  ", "`", "```", "\n", "word", ".", "[1]", "[9]", "[2, 9]"]
    for _ in range(500):
        answer = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 30)))
        whole, whole_cited = rewrite_answer(answer, 2)
        cuts = sorted(rng.sample(range(len(answer) + 1), min(len(answer) + 1, rng.randint(1, 6))))
        stream = CitationStream(2)
        pieces, start = [], 0
        for cut in [*cuts, len(answer)]:
            pieces.append(stream.feed(answer[start:cut]))
            start = cut
        pieces.append(stream.finish())
        assert "".join(pieces) == whole, (answer, cuts)
        assert stream.cited == whole_cited, (answer, cuts)
