"""The context sent upstream is windowed: the newest history that fits, oldest dropped first, the
new message always last; the stored history keeps everything."""

from __future__ import annotations

import pytest

from bastion.sessions.window import DEFAULT_WINDOW_TOKENS, StoredMessage, fit, message_tokens, window_budget
from tests.sessions.support import UPSTREAM, SessionsEnv
from tests.support.fake_upstream import FakeUpstream, answer_text

WINDOW = 80


def test_fit_keeps_the_newest_messages_and_opens_with_the_user() -> None:
    each = 10
    history = [StoredMessage("user" if i % 2 == 0 else "assistant", f"message number {i}", each) for i in range(10)]
    newest_first = list(reversed(history))
    assert fit(newest_first, each * 4) == [{"role": m.role, "content": m.content} for m in history[6:]]
    # Room for three: the oldest of them is an assistant message, so it goes too.
    assert [m["content"] for m in fit(newest_first, each * 3)] == ["message number 8", "message number 9"]
    assert fit(newest_first, each - 1) == []
    assert len(fit(newest_first, 10**6)) == 10


def test_the_budget_comes_from_the_settings_else_the_models_context() -> None:
    assert window_budget(500, 8192, 100, 1000) == 500
    assert window_budget(None, None, 100, None) == DEFAULT_WINDOW_TOKENS
    assert window_budget(None, 8192, 100, 1000) == 8192 - 100 - 1000 - 3
    assert window_budget(None, 8192, 100, None) == 8192 - 100 - 2048 - 3
    assert window_budget(None, 100, 200, None) == 0


@pytest.mark.parametrize("settings_overrides", [{"sessions": {"history_window_tokens": WINDOW}}])
async def test_a_long_history_is_trimmed_to_the_window(sessions_env: SessionsEnv, fake: FakeUpstream) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    sent: list[dict[str, str]] = []
    for i in range(8):
        assert (await env.chat(agent_id, f"question {i}")).status_code == 200
        sent.append({"role": "user", "content": f"question {i}"})
        sent.append({"role": "assistant", "content": answer_text(UPSTREAM)})
    assert (await env.chat(agent_id, "the last question")).status_code == 200

    upstream = fake.requests(UPSTREAM)[-1].body["messages"][1:]  # after the vault's system prompt
    assert upstream[-1] == {"role": "user", "content": "the last question"}
    kept = upstream[:-1]
    assert 0 < len(kept) < len(sent) and kept == sent[-len(kept) :]  # the newest, in order
    assert kept[0]["role"] == "user"
    used = sum(message_tokens(m["role"], m["content"]) for m in upstream)
    assert used <= WINDOW
    older = sent[-len(kept) - 2 : -len(kept)]  # the exchange just before the window
    assert used + sum(message_tokens(m["role"], m["content"]) for m in older) > WINDOW
    assert len((await env.history(agent_id, limit=100)).json()["data"]) == 18  # nothing lost


@pytest.mark.parametrize("settings_overrides", [{"sessions": {"history_window_tokens": 16}}])
async def test_a_message_larger_than_the_window_is_refused(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    response = await env.chat(agent_id, "word " * 50)
    assert response.status_code == 400 and response.json()["error"]["param"] == "message"
    assert (await env.history(agent_id)).json()["data"] == []
