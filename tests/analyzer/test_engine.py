"""The analyzer's engine: spans, excerpts only on request, token counts and their bound, the
structure report, and the rewrite's request and answer parsing."""

from __future__ import annotations

import json

import pytest

from bastion.analyzer.engine import default_analyzer
from bastion.analyzer.model import PromptText
from bastion.analyzer.rewrite import read_rewrite, rewrite_messages
from bastion.analyzer.tokens import PIECE_CHARS, count_tokens, exact_tokenizer
from bastion.errors import UpstreamError
from bastion.usage import tokenizer as usage_tokenizer

MARKER = "Quixotic-Umber-4417"
PROMPT = PromptText(
    system=(
        f"You are {MARKER}, a support agent. Answer questions about refunds in order to help customers. "
        "Be concise. Explain every step in detail. Answer questions about refunds in order to help customers."
    ),
    template="Customer {name}: {{ question }}",
    declared=("question", "order_id"),
)


def test_spans_point_at_the_text_and_json_has_no_words_of_the_prompt_without_excerpts() -> None:
    analysis = default_analyzer().analyze(PROMPT)
    by_id = {finding.pattern_id: finding for finding in analysis.findings}
    assert {
        "efficiency.repeated-sentence",
        "efficiency.wordy-phrase",
        "clarity.conflicting-length",
        "template.foreign-placeholder",
        "template.unused-variable",
    } <= set(by_id)
    repeat = by_id["efficiency.repeated-sentence"].spans[0]
    assert PROMPT.system[repeat.start : repeat.end].startswith("Answer questions about refunds")
    assert repeat.start > PROMPT.system.index("Be concise")  # the second occurrence, not the first
    wordy = by_id["efficiency.wordy-phrase"]
    assert [PROMPT.system[s.start : s.end] for s in wordy.spans] == ["in order to", "in order to"]
    assert wordy.token_delta < 0
    foreign = by_id["template.foreign-placeholder"].spans[0]
    assert (foreign.part, PROMPT.template[foreign.start : foreign.end]) == ("template", "{name}")  # type: ignore[index]

    hidden = json.dumps(analysis.to_json())
    for word in (MARKER, "about refunds", "Explain every step", "{{ question }}", "order_id", "Customer {name}"):
        assert word not in hidden
    assert '"excerpts": false' in hidden
    shown = json.dumps(analysis.to_json(PROMPT))
    assert "in order to" in shown and '"excerpts": true' in shown


def test_findings_are_ordered_by_confidence_and_summed() -> None:
    analysis = default_analyzer().analyze(PROMPT)
    confidences = [finding.confidence for finding in analysis.findings]
    assert confidences == sorted(confidences, reverse=True)
    summary = analysis.to_json()["summary"]
    assert summary["findings"] == len(analysis.findings)
    assert summary["token_delta"] == sum(f.token_delta for f in analysis.findings)
    assert sum(summary["by_category"].values()) == len(analysis.findings)


def test_the_repeated_sentence_saving_is_its_token_count() -> None:
    sentence = "Always cite the policy section you rely on."
    analysis = default_analyzer().analyze(PromptText(f"{sentence} Be kind. {sentence} Be kind. {sentence}"))
    finding = next(f for f in analysis.findings if f.pattern_id == "efficiency.repeated-sentence")
    assert len(finding.spans) == 2
    assert finding.token_delta == -2 * count_tokens(sentence)


def test_structure_report_names_each_element_and_where_it_is() -> None:
    text = "You are a tutor. Explain fractions. Never give the final answer. Reply in plain text."
    structure = default_analyzer().analyze(PromptText(text)).to_json(PromptText(text))["structure"]
    assert {name: element["present"] for name, element in structure.items()} == {
        "role": True,
        "task": True,
        "constraints": True,
        "output_format": True,
        "examples": False,
    }
    assert structure["role"]["spans"][0]["excerpt"].lower().startswith("you are a")


def test_token_counts_exact_for_our_tokenizer_else_an_estimate_with_its_bound() -> None:
    prose = PromptText("You are a helpful assistant. " * 20)
    exact = default_analyzer().analyze(prose, tokenizer="smollm2").tokens
    estimate = default_analyzer().analyze(prose, tokenizer=None).tokens
    assert exact.total == estimate.total == count_tokens(prose.system)
    if exact_tokenizer():
        assert (exact.exact, exact.bound) == (True, 0.0)
    assert (estimate.exact, estimate.bound) == (False, 0.2 if exact_tokenizer() else 0.5)
    report = estimate.to_json()
    assert report["low"] <= report["total"] <= report["high"]
    assert report["high"] - report["total"] == pytest.approx(0.2 * report["total"], abs=1) or not exact_tokenizer()
    kanji = default_analyzer().analyze(PromptText("あなたは親切なアシスタントです。" * 10)).tokens
    assert kanji.bound == 0.5  # non-Latin text: a wider bound


def test_long_texts_are_counted_in_pieces_that_add_up_to_the_whole() -> None:
    text = " ".join(
        f"Policy {i}: returns within {i % 60} days, item unused; ask for receipt #{i * 37}." for i in range(900)
    )
    assert len(text) > 4 * PIECE_CHARS
    pieces = count_tokens(text)
    whole = usage_tokenizer._get_backend().count(text)
    if exact_tokenizer():
        assert pieces == whole
    else:  # the heuristic rounds up per piece
        assert whole <= pieces <= whole + len(text) // PIECE_CHARS + 1


def test_the_largest_prompt_the_vault_takes_is_analysed() -> None:
    huge = PromptText(("Answer questions about billing. Try to be brief, etc.\n" * 5000)[: 256 * 1024])
    analysis = default_analyzer().analyze(huge)
    assert {"efficiency.repeated-sentence", "clarity.hedged-instruction"} <= {f.pattern_id for f in analysis.findings}
    assert all(len(f.spans) <= 20 for f in analysis.findings)


def test_the_rewrite_request_carries_the_prompt_and_findings_in_the_system_message() -> None:
    analysis = default_analyzer().analyze(PROMPT)
    messages = rewrite_messages(PROMPT.system, analysis, "Keep it formal.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert PROMPT.system in messages[0]["content"] and MARKER not in messages[1]["content"]
    assert "efficiency.repeated-sentence" in messages[0]["content"] and "Keep it formal." in messages[0]["content"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Sure! <prompt>\nYou are a bot.\n</prompt> Hope it helps.", "You are a bot."),
        ("```text\nYou are a bot.\n```", "You are a bot."),
        ("  You are a bot.  ", "You are a bot."),
    ],
)
def test_the_rewrite_is_read_from_the_answer(answer: str, expected: str) -> None:
    assert read_rewrite(answer) == expected


@pytest.mark.parametrize("answer", ["", "<prompt>   </prompt>", "<prompt><prompt>x</prompt>"])
def test_an_answer_without_a_rewrite_is_an_upstream_error(answer: str) -> None:
    with pytest.raises(UpstreamError) as raised:
        read_rewrite(answer)
    assert raised.value.status == 502
