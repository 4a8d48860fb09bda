"""The text of a streamed answer, kept compact while it accumulates.

A stream appends one piece per token. Kept as separate ``str`` objects, each piece costs some
60 bytes of object overhead for a handful of characters: a long answer (or a client that lets
one run while it stops reading) would pin several times the text's own size. ``TextParts``
folds every ``FOLD_AT`` trailing pieces into one string, so it holds about the text itself.
"""

from __future__ import annotations

from typing import Final, SupportsIndex

#: Loose pieces folded together at once; each fold copies only these, so appending stays linear.
FOLD_AT: Final = 128


class TextParts(list[str]):
    """A ``list[str]`` of text pieces (``"".join`` gives the text) that folds small pieces together."""

    __slots__ = ("_folded",)

    def __init__(self) -> None:
        super().__init__()
        self._folded = 0  # the leading items are folded runs; the rest are loose pieces

    def append(self, text: str) -> None:
        super().append(text)
        folded = self._folded
        if len(self) - folded >= FOLD_AT:
            run = "".join(self[folded:])
            del self[folded:]
            super().append(run)
            self._folded = folded + 1

    def clear(self) -> None:
        super().clear()
        self._folded = 0

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        super().__delitem__(index)
        self._folded = min(self._folded, len(self))
