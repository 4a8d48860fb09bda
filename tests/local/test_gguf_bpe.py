"""The tokenizer's parts on data made here: the GGUF metadata reader and byte-level BPE counting
(runs without the local extra; test_tokenizer.py checks them against llama.cpp on the real file)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bastion.usage import bpe
from bastion.usage.bpe import ByteLevelBPE
from bastion.usage.gguf import GGUFError, read_tokenizer_metadata


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _gguf(metadata: list[tuple[str, int, bytes]], version: int = 3) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, 0, len(metadata))
    return head + b"".join(_string(key) + struct.pack("<I", kind) + value for key, kind, value in metadata)


def _string_array(items: list[str]) -> bytes:
    return struct.pack("<IQ", 8, len(items)) + b"".join(_string(item) for item in items)


MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r"]
METADATA = [
    ("general.name", 8, _string("tiny")),
    ("llama.vocab_size", 4, struct.pack("<I", 300)),
    ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 3, 1, 1)),
    ("tokenizer.ggml.model", 8, _string("gpt2")),
    ("tokenizer.ggml.tokens", 9, _string_array(["<s>", "h", "e"])),
    ("tokenizer.ggml.pre", 8, _string("smollm")),
    ("tokenizer.ggml.merges", 9, _string_array(MERGES)),
]


def test_reads_tokenizer_metadata_and_skips_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(_gguf(METADATA) + b"\x00" * 64)  # tensors would follow
    metadata = read_tokenizer_metadata(path)
    assert (metadata.model, metadata.pre, metadata.merges) == ("gpt2", "smollm", MERGES)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"NOPE" + b"\x00" * 32, "not a GGUF file"),
        (_gguf(METADATA, version=1), "version 1"),
        (_gguf(METADATA)[:-10], "truncated"),
        (_gguf(METADATA[:3]), "no BPE tokenizer"),
        (_gguf([("x", 99, b"")]), "unknown GGUF value type 99"),
    ],
)
def test_bad_files_are_reported(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match=message):
        read_tokenizer_metadata(path)


def test_merges_apply_lowest_rank_first_until_none_applies() -> None:
    counter = ByteLevelBPE(MERGES, "smollm")
    assert counter.count("hello") == 1  # h e -> he, l l -> ll, he ll -> hell, hell o -> hello
    assert counter.count("hellx") == 2  # hell + x
    assert counter.count(" world") == 4  # Ġw (the byte stand-in for a space) + or + l + d
    assert counter.count("ab") == 2  # no merge: one token per byte
    assert counter.count("é") == 2  # two UTF-8 bytes, no merge
    assert counter.count("") == 0


def test_pre_tokenizer_splits_digits_and_words() -> None:
    counter = ByteLevelBPE([*MERGES, "Ġ hello"], "smollm")
    assert counter.count("hello hello") == 2  # "hello", " hello" (the space joins the next word)
    assert counter.count("123") == 3  # smollm splits every digit apart
    # Words never merge across a pre-tokenizer boundary: "o" and " " stay apart before "\n".
    assert counter.count("hello \n") == 3


def test_word_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bpe, "WORD_CACHE_SIZE", 4)
    counter = ByteLevelBPE(MERGES, "gpt2")
    assert counter.count("a b c d e f g") == 13
    assert len(counter._words) <= 4
    assert counter.count("a b c d e f g") == 13


def test_unknown_pre_tokenizer_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        ByteLevelBPE(MERGES, "no-such-pre-tokenizer")
