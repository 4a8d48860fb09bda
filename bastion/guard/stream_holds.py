"""Where the streaming guard must hold text back because a PII entity or a secret may still be growing.

Three points, kept up to date from each batch of new text rather than found again in everything
held, so a check costs time in proportion to the new text:

* the token in progress (after the last space, newline or tab): an e-mail or a key being written;
  a token longer than ``MAX_TOKEN_HOLD`` is released up to its last ``TOKEN_TAIL`` characters;
* a trailing run of digit groups ("4111 1111 11", "+44 20 79"), with the token it starts in
  ("DE89 3704 ..." holds "DE89" too); followed back at most a few dozen characters;
* an unterminated ``-----BEGIN`` block (a private key).

The streaming guard caps the total it holds on top of these (``StreamingOutputGuard.max_hold_chars``).
"""

from __future__ import annotations

import re

#: A token longer than this (a long base64 blob, say) is no credential being written: release it up
#: to its last ``TOKEN_TAIL`` characters so a stream without whitespace neither stalls nor grows.
MAX_TOKEN_HOLD = 4096
TOKEN_TAIL = 512

NUMBER_SEPARATORS = " ()./:+-"
PEM_BEGIN = "-----BEGIN"
PEM_END = "-----END"
# A number in progress: its digit groups are followed back this far, then back to the start of the
# token they start in, at most this far again. More trailing separators than fit in the examined
# tail end the number.
_RUN_DIGITS_REACH = 64
_RUN_TOKEN_REACH = 64
_RUN_TAIL = 160
_SEPARATOR_CLASS = "[ ()./:+-]"
_REVERSED_RUN_RE = re.compile(
    rf"{_SEPARATOR_CLASS}*[0-9](?:[0-9]|{_SEPARATOR_CLASS}){{0,{_RUN_DIGITS_REACH - 1}}}\S{{0,{_RUN_TOKEN_REACH}}}"
)


class EntityHolds:
    """Incremental hold-back points for PII and secrets. Offsets are absolute stream offsets."""

    __slots__ = ("pem_begin", "pem_open", "token_start")

    def __init__(self) -> None:
        self.token_start = 0  # just after the last whitespace seen
        self.pem_begin = -1  # the last "-----BEGIN" seen
        self.pem_open = False  # ... and no "-----END" after it yet

    def update(self, pending: str, offset: int, new_chars: int) -> None:
        """Take in the last ``new_chars`` characters of ``pending`` (which starts at ``offset``)."""
        new_start = len(pending) - new_chars
        last_space = max(pending.rfind(" ", new_start), pending.rfind("\n", new_start), pending.rfind("\t", new_start))
        if last_space >= 0:
            self.token_start = offset + last_space + 1
        # Markers split between two batches are found thanks to a few characters of overlap.
        region = max(0, new_start - len(PEM_BEGIN) + 1)
        begin = pending.rfind(PEM_BEGIN, region)
        if begin >= 0:
            self.pem_begin = offset + begin
            self.pem_open = pending.find(PEM_END, begin) < 0
        elif self.pem_open and pending.find(PEM_END, max(region, self.pem_begin - offset)) >= 0:
            self.pem_open = False

    def hold_from(self, pending: str, offset: int) -> int:
        """Offset in ``pending`` from which text must be held back."""
        hold = len(pending)
        if self.pem_open and self.pem_begin >= offset:
            hold = self.pem_begin - offset
        token = max(0, self.token_start - offset)
        if len(pending) - token > MAX_TOKEN_HOLD:
            token = len(pending) - TOKEN_TAIL
        hold = min(hold, token)
        run = digit_run_start(pending)
        return hold if run is None else min(hold, run)


def digit_run_start(pending: str) -> int | None:
    """Start of a trailing run of digit groups that may still be growing (with its token), or None."""
    # Matched on the reversed tail: trailing separators, then the digit groups (ending in a digit),
    # then the rest of the token they start in; each followed back a bounded distance.
    tail = pending[-_RUN_TAIL:]
    match = _REVERSED_RUN_RE.match(tail[::-1])
    if match is None:
        return None
    return len(pending) - match.end()
