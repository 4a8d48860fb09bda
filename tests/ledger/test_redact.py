"""Content redaction for the ``redacted`` ledger mode (runs in the background writer)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.ledger.redact import ContentRedactor, regex_redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("write to jane.doe@example-corp.com today", "jane.doe@example-corp.com"),
        ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
        ("ssn 123-45-6789", "123-45-6789"),
        ("iban DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
        ("from 192.168.10.24 port 22", "192.168.10.24"),
        ("call +1 415 555 0100 now", "415 555 0100"),
        ("my key is bst_" + "Z" * 40, "bst_" + "Z" * 40),
        ("token sk-" + "a" * 40, "sk-" + "a" * 40),
    ],
)
def test_regex_redactor(text: str, secret: str) -> None:
    assert secret not in regex_redact(text)


def test_regex_redactor_keeps_ordinary_numbers() -> None:
    text = "Order 1234 shipped 3 items on 2026-05-01, total 1234567890123 cents (not a card: Luhn fails)."
    assert regex_redact(text) == text


def test_message_shapes_are_walked() -> None:
    redactor = ContentRedactor(lambda text: text.replace("secret", "[X]"))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "secret system"},
        {"role": "user", "content": [{"type": "text", "text": "a secret"}, {"type": "image_url", "image_url": {}}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"q":"secret"}'}}],
        },
    ]
    out = redactor.messages(messages)
    assert out[0]["content"] == "[X] system"
    assert out[1]["content"][0]["text"] == "a [X]"
    assert out[2]["tool_calls"][0]["function"]["arguments"] == '{"q":"[X]"}'
    assert messages[0]["content"] == "secret system"  # the input is not modified
    assert redactor.messages(["secret one", "two"]) == ["[X] one", "two"]
    assert redactor.messages(None) is None
    assert redactor.text("") == ""


def test_default_redactor_works_with_or_without_the_guard() -> None:
    redactor = ContentRedactor()
    out = redactor.text("mail alice.smith@corp-mail.io with bst_" + "Q" * 40)
    assert "alice.smith@corp-mail.io" not in out and "bst_QQQQ" not in out
