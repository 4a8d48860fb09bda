"""The shipped attack library, its schema and the encoding schemes."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.redteam import encodings
from bastion.redteam.schema import CATEGORIES, Attack, LibraryError, load_library, parse_library_text

LIBRARY_DIR = Path(__file__).resolve().parents[2] / "bastion" / "redteam" / "attacks"
_GOOD = {
    "id": "x.one",
    "category": "prompt_injection",
    "technique": "override",
    "template": "{payload}",
    "payload": "say {rogue}",
    "source": "test",
    "licence": "Apache-2.0",
}


def test_every_shipped_attack_validates_and_every_category_is_covered() -> None:
    files = sorted(LIBRARY_DIR.glob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        for attack in load_library([path]):
            # Round trip through the schema: the stored form is exactly what validates.
            assert Attack.model_validate(attack.model_dump()) == attack
            assert attack.source.strip() and attack.licence.strip()
    library = load_library()
    assert {attack.category for attack in library} == set(CATEGORIES)
    for category in CATEGORIES:
        assert sum(1 for attack in library if attack.category == category) >= 3, category
    assert len({attack.id for attack in library}) == len(library)


def test_library_encoding_attacks_cover_all_schemes() -> None:
    schemes = {scheme for attack in load_library() for scheme in attack.encodings}
    required = {"base64", "hex", "rot13", "atbash", "morse", "leetspeak", "unicode_tags", "zero_width", "homoglyph"}
    assert required <= schemes


def test_packaged_library_is_package_data() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"**/*.yaml"' in text  # the package-data glob that ships bastion/redteam/attacks/*.yaml


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"category": "phishing"}, "category"),
        ({"template": "no placeholder here"}, "{payload}"),
        ({"payload": "say {rouge}"}, "unknown placeholder"),
        ({"payload": "say hi"}, "{rogue}"),
        ({"category": "encoding", "encodings": []}, "at least one scheme"),
        ({"category": "encoding", "encodings": ["base65"]}, "unknown encoding scheme"),
        ({"licence": ""}, "licence"),
        ({"extra_field": 1}, "extra_field"),
    ],
)
def test_a_bad_attack_fails_clearly(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Attack.model_validate({**_GOOD, **change})


def test_a_bad_file_names_the_file_and_the_attack(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("attacks:\n  - id: x.broken\n    category: jailbreak\n    technique: t1\n")
    with pytest.raises(LibraryError, match=r"bad\.yaml.*attack x\.broken: template"):
        load_library([bad])
    with pytest.raises(LibraryError, match="not valid YAML"):
        parse_library_text("attacks: [", origin="broken.yaml")
    with pytest.raises(LibraryError, match="'attacks' list"):
        parse_library_text("- 1\n", origin="list.yaml")
    with pytest.raises(LibraryError, match="cannot be read"):
        load_library([tmp_path / "missing.yaml"])


def test_duplicate_ids_across_files_are_refused(tmp_path: Path) -> None:
    import yaml

    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump({"attacks": [_GOOD]}))
    with pytest.raises(LibraryError, match=r"duplicate attack id 'x\.one'"):
        load_library([tmp_path / "a.yaml", tmp_path / "b.yaml"])


def test_encodings_round_trip_or_hide_the_text() -> None:
    text = "Ignore all rules 42"
    assert len(encodings.ENCODERS) >= 9
    assert base64.b64decode(encodings.encode("base64", text)).decode() == text
    assert bytes.fromhex(encodings.encode("hex", text)).decode() == text
    assert encodings.rot13(encodings.encode("rot13", text)) == text
    assert encodings.atbash(encodings.encode("atbash", text)) == text
    assert encodings.encode("atbash", "abc XYZ") == "zyx CBA"
    assert encodings.decode_morse(encodings.encode("morse", text)) == text.upper()
    assert encodings.encode("morse", "SOS") == "... --- ..."
    assert encodings.encode("leetspeak", "test") == "7357"
    tagged = encodings.encode("unicode_tags", text)
    assert all(0xE0000 < ord(c) < 0xE0080 for c in tagged) and encodings.decode_unicode_tags(tagged) == text
    hidden = encodings.encode("zero_width", text)
    assert hidden != text and hidden.replace("\u200b", "") == text
    glyphs = encodings.encode("homoglyph", text)
    assert glyphs != text and len(glyphs) == len(text) and glyphs.isprintable()
    assert encodings.encode("reverse", "abc") == "cba"
    with pytest.raises(ValueError, match="unknown encoding scheme 'nope'"):
        encodings.encode("nope", text)
