"""Token counts the analyzer reports: cl100k_base counted in pure Python agrees with tiktoken's own
encoder (a dev dependency through langchain-openai) over the same shipped vocabulary; which
tokenizer a model gets; the report's exactness."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
import tiktoken

from bastion.analyzer.engine import default_analyzer
from bastion.analyzer.model import PromptText
from bastion.analyzer.tokens import tokenizer_of_model
from bastion.gateway.compose import model_tokenizers
from bastion.usage import cl100k_count

SAMPLES = [
    "Hello, world!",
    "  leading blanks\n\n\ntrailing   \n",
    "naïve café 東京 🚀 1234567890 don't I'LL they've WE'RE",
    "def f(x):\n    return x**2  # comment\r\n\ttabbed\u00a0nbsp",
    "<|endoftext|> is just text here",
    "ÄÖÜ ß ﬁ İstanbul ǅ",
]


@pytest.fixture(scope="module")
def reference() -> tiktoken.Encoding:
    return tiktoken.Encoding(
        name="cl100k_reference",
        pat_str=cl100k_count.PATTERN.pattern,
        mergeable_ranks=cl100k_count._ranks(),
        special_tokens={},
    )


def _random_texts() -> list[str]:
    rng = random.Random(20261206)
    alphabet = [chr(c) for c in (*range(32, 127), *range(0xA0, 0x250), *range(0x3040, 0x30FF), 0x1F600, 10, 13, 9)]
    words = ["the", " refund", "policy", "Nova", "JSON", "{{ name }}", "\n\n", "  ", "123", "é", "--", "🚀"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(40)]
    texts += ["".join(rng.choice(words) for _ in range(rng.randint(1, 200))) for _ in range(40)]
    return texts


@pytest.mark.parametrize("text", SAMPLES + _random_texts())
def test_cl100k_counts_match_tiktoken(reference: tiktoken.Encoding, text: str) -> None:
    assert cl100k_count.count_tokens(text) == len(reference.encode_ordinary(text))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4", "cl100k"),
        ("openai/gpt-4-turbo-2024-04-09", "cl100k"),
        ("gpt-3.5-turbo-0125", "cl100k"),
        ("text-embedding-3-small", "cl100k"),
        ("gpt-4o-mini", None),
        ("gpt-4.1", None),
        ("claude-3-5-sonnet", None),
        (None, None),
    ],
)
def test_which_models_get_cl100k(model: str | None, expected: str | None) -> None:
    assert tokenizer_of_model(model) == expected


def _router(groups: dict[str, list[tuple[str, str]]]) -> Any:
    def target(provider: str, model: str) -> Any:
        return SimpleNamespace(deployment=SimpleNamespace(provider=provider, model=model))

    return SimpleNamespace(
        groups={name: SimpleNamespace(targets=[target(*d) for d in deps]) for name, deps in groups.items()}
    )


def test_an_alias_gets_the_tokenizer_of_what_serves_it() -> None:
    tokenizer = model_tokenizers(
        _router(
            {
                "local/smollm2": [("local", "smollm2")],
                "smart": [("openai", "gpt-4-turbo"), ("azure", "gpt-4")],
                "mixed": [("openai", "gpt-4"), ("anthropic", "claude-3-haiku")],
                "gpt-4": [("local", "smollm2")],  # an alias named like a model: what serves it counts
            }
        )
    )
    assert [tokenizer(n) for n in ("local/smollm2", "smart", "mixed", "gpt-4", "gpt-3.5-turbo", "x", None)] == [
        "smollm2",
        "cl100k",
        None,
        "smollm2",
        "cl100k",
        None,
        None,
    ]


def test_a_cl100k_model_gets_exact_counts_in_the_report(reference: tiktoken.Encoding) -> None:
    prompt = PromptText("You are a support agent. Answer in English.", "Question: {{ q }}", model="gpt-4")
    report = default_analyzer().analyze(prompt).tokens
    assert (report.exact, report.bound, report.tokenizer) == (True, 0.0, cl100k_count.NAME)
    assert report.system == len(reference.encode_ordinary(prompt.system))
    assert report.template == len(reference.encode_ordinary(prompt.template or ""))
    other = default_analyzer().analyze(PromptText(prompt.system, model="claude-3-5-sonnet")).tokens
    assert other.exact is False and other.bound > 0
