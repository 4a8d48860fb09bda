"""Legacy text completions (/v1/completions) through the running gateway: the OpenAI SDK's
``completions.create`` (string and list prompts, streamed and not) on a remote chat model (the fake
upstream) and natively on the local model, the parameters Bastion refuses, and the ``llm`` CLI
with an OpenAI-compatible completion model. Every answer, stream event and error body is checked
against the official OpenAI OpenAPI document."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.gateway.helpers import assert_openai_error
from tests.support.fake_upstream import FakeUpstream, answer_text
from tests.support.gateway import GatewayProcess
from tests.support.openai_spec import validate, validate_response

REMOTE = "fake-ok"
LOCAL = "local/smollm2"


def _validate_chunk(chunk: dict[str, Any]) -> None:
    """A streamed ``text_completion`` against ``CreateCompletionResponse``. The document marks
    ``finish_reason`` required and non-null, but OpenAI's own streams (and every client that
    reads them) send ``null`` until the last chunk; such a chunk is checked with that one field
    set, everything else as it came."""
    for choice in chunk.get("choices") or ():
        assert "finish_reason" in choice
    checked = copy.deepcopy(chunk)
    for choice in checked.get("choices") or ():
        if choice["finish_reason"] is None:
            choice["finish_reason"] = "stop"
    validate("CreateCompletionResponse", checked)


def _events(response: httpx.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]


def test_sdk_completion_on_a_chat_model(openai_client: openai.OpenAI, fake: FakeUpstream, http: httpx.Client) -> None:
    completion = openai_client.completions.create(model=REMOTE, prompt="Say hello", max_tokens=20, stop=["\n"])
    assert completion.object == "text_completion"
    assert completion.choices[0].text == answer_text(REMOTE)
    assert completion.choices[0].index == 0
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    # The prompt went upstream as the user's message, with the request's parameters.
    sent = fake.requests(REMOTE)[-1].body
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]
    assert sent["max_tokens"] == 20 and sent["stop"] == ["\n"]
    raw = http.post("/v1/completions", json={"model": REMOTE, "prompt": "Say hello"})
    assert raw.status_code == 200
    validate_response("/completions", "post", raw.json())
    assert fake.requests(REMOTE)[-1].body["max_tokens"] == 16  # OpenAI's default for this endpoint


def test_sdk_list_prompt_gives_one_choice_per_prompt_in_order(openai_client: openai.OpenAI, fake: FakeUpstream) -> None:
    completion = openai_client.completions.create(model=REMOTE, prompt=["first", "second", "third"], max_tokens=8)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert [r.body["messages"][0]["content"] for r in fake.requests(REMOTE)[-3:]] == ["first", "second", "third"]
    single = openai_client.completions.create(model=REMOTE, prompt="first", max_tokens=8)
    assert single.usage is not None and completion.usage is not None
    assert completion.usage.prompt_tokens == 3 * single.usage.prompt_tokens


def test_sdk_stream(openai_client: openai.OpenAI, http: httpx.Client, fake: FakeUpstream) -> None:
    chunks = list(
        openai_client.completions.create(
            model=REMOTE, prompt=["a", "b"], max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    by_index: dict[int, str] = {}
    for chunk in chunks[:-1]:
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            by_index[choice.index] = by_index.get(choice.index, "") + choice.text
    assert by_index == {0: answer_text(REMOTE), 1: answer_text(REMOTE)}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # The wire: every event a valid text_completion, finish_reason null until each prompt's end,
    # then [DONE].
    response = http.post("/v1/completions", json={"model": REMOTE, "prompt": "a", "stream": True})
    events = _events(response)
    assert events[-1] == "[DONE]"
    objects = [json.loads(e) for e in events[:-1]]
    for item in objects:
        _validate_chunk(item)
        assert "usage" not in item  # not asked for
    reasons = [item["choices"][0]["finish_reason"] for item in objects]
    assert reasons[-1] == "stop" and all(r is None for r in reasons[:-1])


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"echo": True}, "echo"),
        ({"best_of": 3}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 2}, "logprobs"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_unsupported_parameters_are_refused_by_name(http: httpx.Client, extra: dict[str, Any], param: str) -> None:
    response = http.post("/v1/completions", json={"model": REMOTE, "prompt": "hi", **extra})
    assert response.status_code == 400
    body = response.json()
    assert_openai_error(body, param=param)
    validate("ErrorResponse", body)
    assert param in body["error"]["message"]


def test_sdk_error_for_unsupported_parameter(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.completions.create(model=REMOTE, prompt="hi", echo=True)
    assert "echo" in str(caught.value)


def test_local_model_completes_raw_text(openai_client: openai.OpenAI, http: httpx.Client) -> None:
    completion = openai_client.completions.create(
        model=LOCAL, prompt="The capital of France is", max_tokens=6, temperature=0
    )
    choice = completion.choices[0]
    assert choice.text.strip() and choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    # Raw text, no chat template: the prompt is its own tokens plus the start token, far fewer
    # than the same words wrapped as a chat turn.
    chat = openai_client.chat.completions.create(
        model=LOCAL, messages=[{"role": "user", "content": "The capital of France is"}], max_tokens=1
    )
    assert chat.usage is not None and completion.usage.prompt_tokens < chat.usage.prompt_tokens
    response = http.post(
        "/v1/completions", json={"model": LOCAL, "prompt": "Once upon a time", "max_tokens": 4, "stream": True}
    )
    events = _events(response)
    assert events[-1] == "[DONE]"
    objects = [json.loads(e) for e in events[:-1]]
    for item in objects:
        _validate_chunk(item)
    assert "".join(item["choices"][0]["text"] for item in objects).strip()


def test_llm_cli_completion_model(gateway: GatewayProcess, tmp_path: Path) -> None:
    """``llm -m <model>`` with an OpenAI-compatible completion model (``completion: true``)."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        yaml.safe_dump(
            [
                {
                    "model_id": "bastion-fake",
                    "model_name": REMOTE,
                    "api_base": gateway.url + "/v1",
                    "api_key_name": "bastion",
                    "completion": True,
                }
            ]
        ),
        encoding="utf-8",
    )
    (tmp_path / "keys.json").write_text(json.dumps({"bastion": "test-key"}), encoding="utf-8")
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    llm_bin = Path(sys.executable).with_name("llm")
    for extra in ([], ["--no-stream"]):
        result = subprocess.run(
            [str(llm_bin), "-m", "bastion-fake", *extra, "Say hello"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == answer_text(REMOTE)
