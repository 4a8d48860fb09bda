"""Chat requests the gateway makes on its own behalf (the analyzer's rewrites, red-team attempts,
agent runs' model calls): validated like a client's and sent through the same pipeline."""

from __future__ import annotations

from typing import Any

from bastion.dialects.openai_schema import validate_chat_request
from bastion.gateway.context import RequestContext, Timing, new_request_id


def internal_chat_context(body: dict[str, Any], user_agent: str) -> RequestContext:
    """The context of an OpenAI-shaped chat ``body`` (an invalid one raises ``InvalidRequest``);
    ``user_agent`` names the caller in the ledger."""
    parsed = validate_chat_request(body)
    return RequestContext(
        request_id=new_request_id(),
        dialect="openai",
        endpoint="chat",
        body=body,
        model=parsed.model,
        timing=Timing(),
        user_agent=user_agent,
    )
