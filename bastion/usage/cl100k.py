"""Decode OpenAI ``cl100k_base`` token ids back to text.

OpenAI's embeddings API accepts token ids as well as text, and some clients send ids by default:
LangChain's ``OpenAIEmbeddings`` tokenizes with tiktoken's ``cl100k_base`` (the tokenizer of
OpenAI's embedding models, and its fallback for model names it does not know) before it calls.
Bastion scans every input and may route it to a model with another tokenizer, so it decodes the
ids to the text they stand for. Decoding needs only the vocabulary (``data/``, shipped with the
package: nothing is downloaded), not tiktoken.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Final

VOCABULARY = Path(__file__).with_name("data") / "cl100k_base.tiktoken.gz"
#: tiktoken's special tokens of cl100k_base.
SPECIAL_TOKENS: Final = {
    100257: "<|endoftext|>",
    100258: "<|fim_prefix|>",
    100259: "<|fim_middle|>",
    100260: "<|fim_suffix|>",
    100276: "<|endofprompt|>",
}


class UnknownTokenId(ValueError):
    """An id that is not in the vocabulary."""

    def __init__(self, token_id: int) -> None:
        super().__init__(f"{token_id} is not a cl100k_base token id")
        self.token_id = token_id


@cache
def _token_bytes() -> tuple[bytes, ...]:
    """The bytes of every ordinary token, indexed by id (the file's ranks run 0..n-1 in order)."""
    with gzip.open(VOCABULARY, "rb") as lines:
        return tuple(base64.b64decode(line.split(maxsplit=1)[0]) for line in lines if line.strip())


def decode(ids: Sequence[int]) -> str:
    """The text of ``ids`` (bytes that are not valid UTF-8 on their own become U+FFFD)."""
    table = _token_bytes()
    parts: list[bytes] = []
    for token_id in ids:
        if 0 <= token_id < len(table):
            parts.append(table[token_id])
        elif token_id in SPECIAL_TOKENS:
            parts.append(SPECIAL_TOKENS[token_id].encode())
        else:
            raise UnknownTokenId(token_id)
    return b"".join(parts).decode("utf-8", errors="replace")
