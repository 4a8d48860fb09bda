"""Token accounting helpers. ``tokenizer`` counts tokens offline when a provider reports no usage."""

from __future__ import annotations

from bastion.usage.tokenizer import count_messages, count_text, count_tools, tokenizer_name

__all__ = ["count_messages", "count_text", "count_tools", "tokenizer_name"]
