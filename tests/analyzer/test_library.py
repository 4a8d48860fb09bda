"""The pattern library: every pattern's positive examples trigger it and its negative examples do
not; the library's files are checked when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.analyzer.engine import Analyzer
from bastion.analyzer.library import CATEGORIES, LibraryError, Pattern, default_library, load_library
from bastion.analyzer.model import PromptText

LIBRARY = default_library()
ANALYZER = Analyzer(LIBRARY)
CASES = [
    pytest.param(pattern, polarity, index, example, id=f"{pattern.id}-{polarity}-{index}")
    for pattern in LIBRARY.patterns
    for polarity, examples in (("positive", pattern.positive), ("negative", pattern.negative))
    for index, example in enumerate(examples)
]


@pytest.mark.parametrize(("pattern", "polarity", "index", "example"), CASES)
def test_every_example_of_every_pattern(pattern: Pattern, polarity: str, index: int, example: PromptText) -> None:
    findings = ANALYZER.analyze(example, only=pattern.id).findings
    if polarity == "positive":
        assert [f.pattern_id for f in findings] == [pattern.id]
        finding = findings[0]
        assert (finding.pattern_version, finding.confidence, finding.category) == (
            pattern.version,
            pattern.confidence,
            pattern.category,
        )
        for span in finding.spans:  # spans lie inside the part they name
            assert 0 <= span.start < span.end <= len(example.text(span.part))
    else:
        assert findings == ()


def test_the_library_covers_every_category_and_is_versioned() -> None:
    assert LIBRARY.version
    assert {pattern.category for pattern in LIBRARY.patterns} == set(CATEGORIES)
    ids = [pattern.id for pattern in LIBRARY.patterns]
    assert len(ids) == len(set(ids))
    # Each structure element the docs name has its pattern.
    elements = {p.detector.get("element") for p in LIBRARY.patterns if p.detector["kind"] == "absent"}
    assert elements == {"role", "task", "constraints", "output_format", "examples"}


def _write(directory: Path, body: str) -> Path:
    (directory / "library.yaml").write_text('version: "t1"\nfiles: [p.yaml]\n')
    (directory / "p.yaml").write_text(body)
    return directory


GOOD = """
patterns:
  - id: clarity.x
    version: 1
    category: clarity
    title: X
    description: d
    rationale: r
    suggestion: s
    confidence: 0.5
    detector: {kind: match, patterns: ['\\bxyzzy\\b']}
    examples: {positive: [xyzzy], negative: [plugh]}
"""


def test_a_well_formed_file_loads(tmp_path: Path) -> None:
    library = load_library(_write(tmp_path, GOOD))
    assert library.version == "t1" and [p.id for p in library.patterns] == ["clarity.x"]
    assert Analyzer(library).analyze(PromptText("say XYZZY twice: xyzzy")).findings[0].detail == "2 occurrence(s)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("id: clarity.x", "id: Clarity X"), "id must look like"),
        (("category: clarity", "category: style"), "category must be one of"),
        (("version: 1", "version: 0"), "version must be a positive integer"),
        (("confidence: 0.5", "confidence: 1.5"), "confidence must be in"),
        (("rationale: r", "rationale: ''"), "rationale is required"),
        (("kind: match", "kind: magic"), "detector.kind must be one of"),
        (("negative: [plugh]", "negative: []"), "at least one positive and one negative"),
        (("['\\bxyzzy\\b']", "['(unclosed']"), "does not compile"),
    ],
)
def test_a_malformed_pattern_is_refused_with_its_id(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    body = GOOD.replace(*change)
    with pytest.raises(LibraryError, match=message):
        Analyzer(load_library(_write(tmp_path, body)))


def test_an_unknown_builtin_is_refused(tmp_path: Path) -> None:
    body = GOOD.replace("{kind: match, patterns: ['\\bxyzzy\\b']}", "{kind: builtin, name: nope}")
    with pytest.raises(LibraryError, match="unknown builtin detector 'nope'"):
        Analyzer(load_library(_write(tmp_path, body)))


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    body = GOOD + GOOD.replace("patterns:\n", "")
    with pytest.raises(LibraryError, match=r"unique: clarity\.x"):
        load_library(_write(tmp_path, body))


def test_the_docs_describe_every_pattern_of_this_library_version() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "ANALYZER.md").read_text(encoding="utf-8")
    assert f"Library version `{LIBRARY.version}`" in docs
    missing = [pattern.id for pattern in LIBRARY.patterns if f"`{pattern.id}`" not in docs]
    assert missing == []
