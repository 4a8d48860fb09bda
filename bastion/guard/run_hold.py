"""The streaming output guard the gateway uses: it also holds back a run of prompt words."""

from __future__ import annotations

from bastion.guard.streaming import StreamingOutputGuard


class RunHoldingStreamGuard(StreamingOutputGuard):
    """``StreamingOutputGuard`` that also holds back a run of prompt words still in progress.

    The base guard holds the last ``n - 1`` words, so a contiguous verbatim leak releases its first
    words until the overlap reaches the threshold: for a long prompt that is many words, each a
    verbatim span. Here, while the latest words are all prompt words (a run that may be a leak in
    progress), the whole run is held, up to the length at which a contiguous copy of the prompt
    reaches the threshold. A leak is then blocked before any of it went out; an answer that merely
    shares a phrase with the prompt is released as soon as the run breaks.
    """

    def _shingle_hold(self, pending: str) -> int:
        n = self._ngram
        run = min(self._vocabulary_run, self._needed + n - 1)
        if run < n:
            return super()._shingle_hold(pending)
        return self._last_words_start(pending, run + (1 if self._carry else 0))
