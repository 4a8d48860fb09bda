"""Content redaction for the ``redacted`` ledger mode (runs in the background writer)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import bastion.ledger.redact as redact_module
from bastion.ledger.record import apply_content_mode
from bastion.ledger.redact import ContentRedactor, regex_redact
from bastion.store.db import Database
from bastion.store.models import Interaction
from tests.ledger.support import make_record, writer


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


def test_content_redaction_adds_names_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_names_redactor", lambda: lambda text: text.replace("Ada", "[PERSON]"))
    plain = ContentRedactor(lambda text: text.replace("secret", "[X]"))
    assert plain.names is False and plain.content("Ada's secret") == "Ada's [X]"
    named = ContentRedactor(lambda text: text.replace("secret", "[X]"), names=True)
    assert named.content("Ada's note") == "[PERSON]'s note"
    assert named.content_messages([{"role": "user", "content": "Ada"}]) == [{"role": "user", "content": "[PERSON]"}]
    # Client fields and system messages keep the structured redaction only.
    assert named.text("Ada's secret") == "Ada's [X]" and named.messages(["Ada"]) == ["Ada"]


def test_without_the_model_content_redaction_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_names_redactor", lambda: None)
    redactor = ContentRedactor(lambda text: text.replace("secret", "[X]"), names=True)
    assert redactor.content("Ada's secret") == "Ada's [X]" and redactor.names is False


def test_redacted_mode_uses_the_content_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_names_redactor", lambda: lambda text: text.replace("Ada", "[PERSON]"))
    redactor = ContentRedactor(lambda text: text, names=True)
    record = make_record(1, content_mode="redacted", response_text="Hi Ada", user_agent="Ada-bot")
    record["request_messages"] = [{"role": "user", "content": "I am Ada"}]
    row = apply_content_mode(record, redactor)
    assert row["request_messages"] == [{"role": "user", "content": "I am [PERSON]"}]
    assert row["response_text"] == "Hi [PERSON]" and row["user_agent"] == "Ada-bot"
    full = apply_content_mode(make_record(2, response_text="Hi Ada"), redactor)
    assert full["response_text"] == "Hi Ada"  # full mode keeps what the guard let through


@pytest.mark.local_model("ner")
def test_the_real_name_redactor() -> None:
    redactor = ContentRedactor(names=True)
    out = redactor.content("Please call Margaret Hamilton at 14 Crown Street, mail margaret@apollo-nav.io.")
    assert "Margaret Hamilton" not in out and "Crown Street" not in out and "margaret@apollo-nav.io" not in out
    assert "[PERSON]" in out and "[STREET_ADDRESS]" in out and "[EMAIL_ADDRESS]" in out


async def test_the_writer_redacts_names_in_a_thread_of_its_own(
    monkeypatch: pytest.MonkeyPatch, database: Database, tmp_path: Path
) -> None:
    threads: list[str] = []

    def names(text: str) -> str:
        threads.append(threading.current_thread().name)
        return text.replace("Ada", "[PERSON]")

    monkeypatch.setattr(redact_module, "_names_redactor", lambda: names)
    w = writer(database, tmp_path)
    await w.start()
    try:
        assert w._redactor is not None and w._redactor.names
        w.submit(make_record(1))  # full mode: no name redaction, prepared on the event loop
        await w.flush()
        assert threads == []
        w.submit(make_record(2, content_mode="redacted", response_text="Ada wrote"))
        await w.flush()
        assert threads and all(name.startswith("bastion-ledger-redact") for name in threads)
        async with database.session() as session:
            stored = (await session.execute(select(Interaction.response_text))).scalars().all()
        assert sorted(str(text) for text in stored) == ["[PERSON] wrote", "answer 1"]
    finally:
        await w.stop()


async def test_redact_names_off_builds_no_name_redactor(database: Database, tmp_path: Path) -> None:
    w = writer(database, tmp_path, redact_names=False)
    await w.start()
    try:
        assert w._redactor is not None and w._redactor.names is False
    finally:
        await w.stop()
