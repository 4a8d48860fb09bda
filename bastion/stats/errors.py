"""The one error the statistics engine raises, for inputs no analysis can be made of."""

from __future__ import annotations


class StatsError(ValueError):
    """Input the statistics cannot be computed from (an empty arm, a zero baseline, a bad weight).

    A ``ValueError`` so callers that validate user input can catch it with the rest; the message is
    one line, fit to show to the user as is.
    """
