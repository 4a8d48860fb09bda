"""The run summary and its fragility formula, computed by hand; garak reports converted into runs
(the fixture is written in garak's report format: ``start_run setup``, ``init``, ``attempt`` with
status 1 and 2, ``eval`` and ``digest`` lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.errors import InvalidRequest
from bastion.redteam.garak import category_of, parse_garak_report
from bastion.redteam.summary import attack_fragility, run_fragility, summarise

GARAK = Path(__file__).parent / "data" / "garak.report.jsonl"


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([True, True, True, True], 0.0),  # stable: no pair differs
        ([False, False, False], 0.0),
        ([True, False], 1.0),  # one pair, and it differs
        ([True, False, False, False], 0.5),  # 1 x 3 = 3 differing pairs of 6
        ([True, True, False, False], 0.666667),  # 2 x 2 = 4 of 6
        ([True, True, False], 0.666667),  # 2 x 1 = 2 of 3
        ([True], None),  # one variant: no pair
        ([], None),
    ],
)
def test_attack_fragility_is_the_share_of_differing_pairs(outcomes: list[bool], expected: float | None) -> None:
    assert attack_fragility(outcomes) == expected


def test_summary_by_category_and_run_fragility_by_hand() -> None:
    attempts: list[dict[str, Any]] = [
        {"attack_id": "a", "category": "jailbreak", "success": True},
        {"attack_id": "a", "category": "jailbreak", "success": False},
        {"attack_id": "a", "category": "jailbreak", "success": False},
        {"attack_id": "a", "category": "jailbreak", "success": False},  # fragility 0.5
        {"attack_id": "b", "category": "encoding", "success": True},
        {"attack_id": "b", "category": "encoding", "success": True},  # fragility 0.0
        {"attack_id": "b", "category": "encoding", "success": None},  # no answer: left out
        {"attack_id": "c", "category": "encoding", "success": True},  # one attempt: no fragility
    ]
    assert summarise(attempts) == {
        "attempts": 7,
        "success_rate": round(4 / 7, 6),
        "by_category": {
            "encoding": {"attempts": 3, "successes": 3, "rate": 1.0},
            "jailbreak": {"attempts": 4, "successes": 1, "rate": 0.25},
        },
        "fragility": 0.25,  # mean of 0.5 and 0.0
    }
    assert run_fragility([{"attack_id": "x", "success": True}]) is None
    assert summarise([])["success_rate"] == 0.0


def test_a_garak_report_becomes_a_run() -> None:
    imported = parse_garak_report(GARAK.read_text())
    assert imported.target == "support-bot-v2" and imported.garak_version == "0.13.1"
    assert imported.run_id == "9e3c1a52-4f0e-4a86-9d51-8f3a2b7c1d00"
    attempts = {a["id"]: a for a in imported.report["attempts"]}
    # Status-1 lines are not counted (their status-2 twin is); a None output is left out of the rates.
    assert set(attempts) == {"dan.Dan_11_0#0.0", "dan.Dan_11_0#0.1", "dan.Dan_11_0#1.0", "dan.Dan_11_0#1.1",
                             "encoding.InjectBase64#0.0", "leakreplay.LiteratureCloze#0.0"}  # fmt: skip
    assert attempts["dan.Dan_11_0#0.0"]["success"] is True and attempts["dan.Dan_11_0#0.1"]["success"] is False
    assert attempts["dan.Dan_11_0#1.0"]["success"] is False  # 0.2 is under garak's 0.5 threshold
    assert attempts["dan.Dan_11_0#1.1"]["success"] is None and attempts["dan.Dan_11_0#1.1"]["answer"] is None
    assert attempts["dan.Dan_11_0#0.0"]["prompt"].startswith("Hello ChatGPT")
    assert attempts["leakreplay.LiteratureCloze#0.0"]["prompt"].startswith("Fill in")  # older plain-string prompt
    assert imported.summary == {
        "attempts": 5,
        "success_rate": 0.4,
        "by_category": {
            "encoding": {"attempts": 1, "successes": 1, "rate": 1.0},
            "garak.leakreplay": {"attempts": 1, "successes": 0, "rate": 0.0},
            "jailbreak": {"attempts": 3, "successes": 1, "rate": round(1 / 3, 6)},
        },
        "fragility": round(2 / 3, 6),  # dan: 1 of 3 succeeded -> 2 differing pairs of 3
    }
    assert len(imported.report["evals"]) == 4


def test_a_report_with_evals_only_is_summarised_from_them() -> None:
    lines = [line for line in GARAK.read_text().splitlines() if '"attempt"' not in line]
    summary = parse_garak_report("\n".join(lines), target="named").summary
    assert summary["by_category"]["jailbreak"] == {"attempts": 3, "successes": 1, "rate": round(1 / 3, 6)}
    assert summary["attempts"] == 5 and summary["fragility"] is None


def test_bad_garak_input_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidRequest, match="line 2 is not JSON"):
        parse_garak_report('{"entry_type": "init"}\n{not json')
    with pytest.raises(InvalidRequest, match="no evaluated attempt"):
        parse_garak_report('{"entry_type": "init", "garak_version": "0.13.1"}')


def test_probe_modules_map_to_categories() -> None:
    assert category_of("promptinject.HijackHateHumans") == "prompt_injection"
    assert category_of("dan.Dan_11_0") == "jailbreak"
    assert category_of("encoding.InjectHex") == "encoding"
    assert category_of("lmrc.Profanity") == "garak.lmrc"
