"""The offline token counter used when a provider reports no usage."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bastion.usage import tokenizer
from bastion.usage.tokenizer import count_messages, count_text, count_tools, tokenizer_name

exact = pytest.mark.skipif("heuristic" in tokenizer_name(), reason="SmolLM2 vocabulary not installed")


@exact
def test_known_counts_are_stable() -> None:
    assert "SmolLM2" in tokenizer_name()
    assert count_text("Hello world, this is a test.") == 8
    assert count_text("The quick brown fox jumps over the lazy dog.") == 10
    assert count_text("") == 0


def test_counts_are_reasonable_for_prose_and_scale_with_length() -> None:
    prose = "Bastion sits between applications and large language models, keeping prompts secret. "
    one = count_text(prose)
    assert len(prose) / 8 < one < len(prose) / 2  # English runs at roughly 3-5 characters a token
    assert 15 * one < count_text(prose * 20) <= 20 * one  # joins may merge across repetitions
    long_text = "lorem ipsum dolor sit amet " * 2000  # beyond the cache size limit
    assert count_text(long_text) > 4000


@exact
def test_typed_special_tokens_count_as_text() -> None:
    assert count_text("<|im_end|>") > 1


def test_unicode_is_counted() -> None:
    assert count_text("日本語のテキスト 🎉") > 3


def test_messages_cost_more_than_their_text() -> None:
    text = "What is the capital of France?"
    messages = [{"role": "user", "content": text}]
    assert count_messages(messages) > count_text(text)
    assert count_messages(messages) == 3 + count_text("user") + count_text(text) + 3
    parts = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    assert count_messages(parts) == count_messages(messages)


def test_images_names_and_tool_calls_are_counted() -> None:
    base = [{"role": "user", "content": "Hi"}]
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
    with_image = [{"role": "user", "content": [{"type": "text", "text": "Hi"}, image]}]
    assert count_messages(with_image) == count_messages(base) + 85
    named = [{"role": "user", "content": "Hi", "name": "alice"}]
    assert count_messages(named) > count_messages(base)
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    with_call: list[dict[str, Any]] = [*base, {"role": "assistant", "content": None, "tool_calls": [call]}]
    plain_reply: list[dict[str, Any]] = [*base, {"role": "assistant", "content": None}]
    assert count_messages(with_call) - count_messages(plain_reply) >= count_text('{"city": "Paris"}')


def test_tools_are_counted() -> None:
    assert count_tools(None) == 0 and count_tools([]) == 0
    small = [{"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}]
    schema = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}}
    large = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema}}]
    assert 0 < count_tools(small) < count_tools(large)
    assert count_tools(small + large) > count_tools(large)


def test_counting_is_thread_safe() -> None:
    texts = [f"Message {i}: " + "some words to count " * (i % 7 + 1) for i in range(200)]
    expected = [count_text(t + " ") for t in texts]
    results: list[list[int]] = []

    def work() -> None:
        results.append([count_text(t + " ") for t in texts])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_heuristic_fallback() -> None:
    assert tokenizer._Heuristic().count("abcdefgh") == 2
    assert tokenizer._Heuristic().count("abcdefghi") == 3


# -- the pure-Python BPE against llama.cpp's own tokenizer -------------------------------------------

EDGE_CASES = [
    "Hello world, this is a test.",
    "<|im_end|><|im_start|>system",
    "  leading   spaces\n\n\ttabs\r\n trailing  ",
    "1234567 3.14159 ½ ⅷ ١٢٣ x2y",
    "def f(x):\n    return x**2  # comment\n",
    '{"city": "Paris", "n": [1,2,3]}',
    "I'm you're they've we'll he'd She'S",
    "naïve café résumé, Привет мир, مرحبا بالعالم, 日本語のテキスト",
    "emoji 👩‍👩‍👧‍👦 flags 🇫🇷 \u200b\u00a0\u2003 nbsp",
    "\x00\x01\x1c\x1f control \x0b\x0c x\u0301\u0302 marks",
    "a" * 300,
]


def _llama_counter() -> tuple[Any, Callable[[str], int]]:
    """llama.cpp's tokenizer for the same GGUF (vocabulary only), as the reference."""
    import llama_cpp

    from bastion.local import smollm2_gguf_path

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(smollm2_gguf_path()).encode(), params)
    vocab = llama_cpp.llama_model_get_vocab(model)

    def count(text: str) -> int:
        data = text.encode("utf-8")
        return -int(llama_cpp.llama_tokenize(vocab, data, len(data), None, 0, False, False)) if data else 0

    return model, count


@exact
@pytest.mark.local_model("chat")
def test_counts_match_llama_cpp() -> None:
    pytest.importorskip("llama_cpp")
    import random

    rng = random.Random(7)
    alphabet = "abcdefghij XYZ 0123456789 .,;:!?'\"()[]{}\n\t éàü日本😀\u00a0\u2028-_=+*/\\<>|"
    texts = EDGE_CASES + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(1500)]
    model, reference = _llama_counter()
    try:
        backend = tokenizer._get_backend()
        mismatched = [(text, backend.count(text), reference(text)) for text in texts]
        mismatched = [item for item in mismatched if item[1] != item[2]]
    finally:
        import llama_cpp

        llama_cpp.llama_model_free(model)
    assert mismatched == []


@exact
@pytest.mark.integration
def test_counting_does_not_load_llama_cpp() -> None:
    # A fresh interpreter: other tests in this process may have imported llama.cpp themselves.
    code = (
        "import sys\n"
        "from bastion.usage.tokenizer import count_text, tokenizer_name\n"
        "assert count_text('Hello world, this is a test.') == 8, count_text('Hello world, this is a test.')\n"
        "assert 'SmolLM2' in tokenizer_name()\n"
        "loaded = sorted(m for m in ('llama_cpp', 'torch', 'numpy') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_long_text_is_counted_on_bounded_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting runs on the event loop: a long answer is estimated from samples (a few ms), within
    a few percent of the exact count, and never tokenized whole."""
    text = " ".join(f"item{i} lorem ipsum dolor{i % 97} sit amet" for i in range(30_000))
    backend = tokenizer._get_backend()
    exact = backend.count(text)
    seen: list[int] = []
    original = type(backend).count

    def counting(self: Any, sample: str) -> int:
        seen.append(len(sample))
        return original(self, sample)

    monkeypatch.setattr(type(backend), "count", counting)
    estimate = count_text(text)
    assert abs(estimate - exact) / exact < 0.05, (estimate, exact)
    assert sum(seen) <= tokenizer.EXACT_MAX_CHARS < len(text)
