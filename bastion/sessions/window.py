"""The conversation sent upstream: the newest history that fits the token window, then the new
message. Each stored message carries its own token cost (counted once, when it is stored, with
``bastion.usage.tokenizer``), so windowing a long history is arithmetic, not tokenizing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bastion.usage.tokenizer import REPLY_PRIMING, TOKENS_PER_MESSAGE, count_text

#: Used when the settings name no window and the model declares no context length.
DEFAULT_WINDOW_TOKENS = 4096
#: Share of a model's context kept for the answer when the prompt sets no max_tokens.
ANSWER_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class StoredMessage:
    role: str
    content: str
    tokens: int


def message_tokens(role: str, content: str) -> int:
    """What one message adds to a chat request's prompt (the tokenizer's per-message markup included)."""
    return TOKENS_PER_MESSAGE + count_text(role) + count_text(content)


def window_budget(
    configured: int | None, context_length: int | None, system_tokens: int, answer_tokens: int | None
) -> int:
    """Tokens the history and the new message may take together.

    An explicit ``sessions.history_window_tokens`` is the budget. Otherwise the model's context
    length less the system prompt and the answer's room (the prompt's max_tokens, else a quarter
    of the context); without a context length, ``DEFAULT_WINDOW_TOKENS``.
    """
    if configured:
        return configured
    if not context_length:
        return DEFAULT_WINDOW_TOKENS
    reserve = answer_tokens if answer_tokens else int(context_length * ANSWER_SHARE)
    return max(0, context_length - system_tokens - reserve - REPLY_PRIMING)


def fit(newest_first: Sequence[StoredMessage], budget: int) -> list[dict[str, str]]:
    """The longest suffix of the history within ``budget``, oldest first, as chat messages.

    Oldest messages are dropped first. A window that would start with an assistant message drops it
    too: some providers (Anthropic) require the conversation to open with the user.
    """
    kept: list[StoredMessage] = []
    used = 0
    for message in newest_first:
        if used + message.tokens > budget:
            break
        used += message.tokens
        kept.append(message)
    while kept and kept[-1].role != "user":
        kept.pop()
    return [{"role": m.role, "content": m.content} for m in reversed(kept)]
