"""Read a GGUF file's tokenizer metadata (model, pre-tokenizer, merges) without llama.cpp.

A GGUF file starts with a header and its metadata as typed key/value pairs, before the tensors;
only that head is read, sequentially, so the weights (most of the file) are never touched. Format:
https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (little-endian, version 2 and 3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"GGUF"
_STRING, _ARRAY = 8, 9
#: Fixed-size value types -> struct format.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_WANTED = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.merges")


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands, or lacks tokenizer metadata."""


@dataclass(frozen=True, slots=True)
class TokenizerMetadata:
    model: str  # "gpt2" for byte-level BPE
    pre: str  # llama.cpp's pre-tokenizer name, e.g. "smollm"
    merges: list[str]  # "left right", highest priority first


class _Reader:
    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def read(self, size: int) -> bytes:
        data = self.file.read(size)
        if len(data) != size:
            raise GGUFError("truncated GGUF metadata")
        return data

    def unpack(self, fmt: str) -> int:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]  # type: ignore[no-any-return]

    def string(self) -> str:
        return self.read(self.unpack("<Q")).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.file.seek(self.unpack("<Q"), 1)

    def value(self, kind: int, keep: bool) -> object:
        """Read (``keep``) or skip one value of type ``kind``."""
        if kind == _STRING:
            if keep:
                return self.string()
            self.skip_string()
            return None
        if kind == _ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            if item_kind in _SCALARS and not keep:
                self.file.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
                return None
            items = [self.value(item_kind, keep) for _ in range(count)]
            return items if keep else None
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise GGUFError(f"unknown GGUF value type {kind}")
        return self.unpack(fmt)


def read_tokenizer_metadata(path: Path) -> TokenizerMetadata:
    """The BPE tokenizer described in ``path``'s metadata; ``GGUFError`` if there is none."""
    found: dict[str, object] = {}
    with path.open("rb") as file:
        reader = _Reader(file)
        if reader.read(4) != _MAGIC:
            raise GGUFError(f"{path} is not a GGUF file")
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise GGUFError(f"{path}: GGUF version {version} is not supported")
        reader.unpack("<Q")  # tensor count
        for _ in range(reader.unpack("<Q")):
            key = reader.string()
            found[key] = reader.value(reader.unpack("<I"), keep=key in _WANTED)
            if all(name in found for name in _WANTED):
                break
    model, pre, merges = (found.get(name) for name in _WANTED)
    if not isinstance(model, str) or not isinstance(merges, list):
        raise GGUFError(f"{path} has no BPE tokenizer metadata")
    return TokenizerMetadata(model=model, pre=pre if isinstance(pre, str) else "default", merges=merges)
