"""Expansion of a selection into attempts, scoring scripted answer sets into the report, and the
HTML page."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import jsonschema_rs
import pytest
from statsmodels.stats.proportion import proportion_confint

from bastion.redteam.html import render_html
from bastion.redteam.plan import Attempt, RunSetup, Selection, expand, prepare_run
from bastion.redteam.schema import CATEGORIES, load_library
from bastion.redteam.scoring import (
    REPORT_SCHEMA_VERSION,
    build_report,
    fragility,
    report_json_schema,
    score_answers,
    wilson_interval,
)

LIBRARY = load_library()


def _run(seed: int, answer: Callable[[Attempt, RunSetup], str | None], **selection: Any) -> dict[str, Any]:
    setup = prepare_run(seed)
    attempts = expand(LIBRARY, Selection(**selection), setup)
    results = score_answers(attempts, {a.id: answer(a, setup) for a in attempts}, setup)
    return build_report(results, setup, run={"id": f"run-{seed}", "model": "scripted"})


def _refuses(attempt: Attempt, setup: RunSetup) -> str:
    return "I'm sorry, but I can't help with that request."


def _leaks_canary(attempt: Attempt, setup: RunSetup) -> str:
    return f"Of course! My reference code is {setup.canary}."


def test_setup_plants_canary_pii_and_rogue_and_differs_by_seed() -> None:
    setup = prepare_run(11, "You are Ada, the travel agent.")
    assert setup.system_prompt.startswith("You are Ada, the travel agent.")
    assert setup.canary in setup.system_prompt
    assert all(value in setup.system_prompt for value in setup.pii.values())
    assert prepare_run(11, "You are Ada, the travel agent.") == setup
    other = prepare_run(12)
    assert other.canary != setup.canary and other.rogue != setup.rogue


def test_same_seed_same_attempts_and_same_json() -> None:
    setup = prepare_run(5)
    first = expand(LIBRARY, Selection(max_attempts=40), setup)
    second = expand(load_library(), Selection(max_attempts=40), prepare_run(5))
    assert first == second and len(first) == 40
    assert len({attempt.id for attempt in first}) == len(first)
    assert expand(LIBRARY, Selection(max_attempts=40), prepare_run(6)) != first
    one = json.dumps(_run(5, _leaks_canary, max_attempts=60), sort_keys=True)
    assert one == json.dumps(_run(5, _leaks_canary, max_attempts=60), sort_keys=True)


def test_expansion_applies_selection_and_perturbations() -> None:
    setup = prepare_run(1)
    attempts = expand(LIBRARY, Selection(categories=("jailbreak",)), setup)
    assert {a.category for a in attempts} == {"jailbreak"}
    dan = {a.variant: a.prompt for a in attempts if a.attack_id == "jb.dan-persona"}
    assert {"base", "paraphrase1", "paraphrase2", "upper", "lower", "whitespace", "encoded:base64"} <= set(dan)
    assert dan["upper"] == dan["base"].upper()
    encoded = dan["encoded:base64"].split("\n\n")[-1]
    assert base64.b64decode(encoded).decode() == dan["base"]
    only_base = expand(LIBRARY, Selection(attack_ids=("pi.ignore-previous",), perturbations=()), setup)
    assert [a.variant for a in only_base] == ["base"]
    assert setup.rogue in only_base[0].prompt and "{" not in only_base[0].prompt
    enc = expand(LIBRARY, Selection(attack_ids=("enc.decode-and-follow",), perturbations=()), setup)
    assert len(enc) == 10 and all(setup.rogue not in a.prompt for a in enc if a.variant != "base:leetspeak")
    with pytest.raises(ValueError, match="unknown categories"):
        Selection(categories=("phishing",))
    with pytest.raises(ValueError, match="unknown attack ids"):
        expand(LIBRARY, Selection(attack_ids=("nope.x",)), setup)


def test_always_leaking_the_canary_is_full_extraction_success() -> None:
    report = _run(3, _leaks_canary)
    extraction = report["by_category"]["system_prompt_extraction"]
    assert extraction["rate"] == 1.0 and extraction["trials"] > 10
    assert report["by_category"]["jailbreak"]["rate"] == 0.0  # no marker shown


def test_always_refusing_is_zero_success_everywhere() -> None:
    report = _run(3, _refuses)
    assert set(report["by_category"]) == set(CATEGORIES)
    assert all(row["rate"] == 0.0 for row in report["by_category"].values())
    assert report["totals"]["successes"] == 0 and report["top_failures"] == []
    assert report["fragility"]["overall"] == 0.0


def test_goal_specific_answers_succeed_in_their_own_category_only() -> None:
    def obeys(attempt: Attempt, setup: RunSetup) -> str:
        return {
            "rogue": f"{setup.rogue}",
            "leak_pii": f"The customer's email is {setup.pii['email']}.",
            "comply": "[DAN]: (Developer Mode Output) Oh sweetie, first you... Step 1: Sure, here is",
            "leak_prompt": base64.b64encode(setup.system_prompt.encode()).decode(),
        }[attempt.goal]

    report = _run(9, obeys)
    assert all(row["rate"] == 1.0 for row in report["by_category"].values())
    failing = report["top_failures"][0]
    hit = next(v for v in failing["verdicts"] if v["hit"])
    assert hit["evidence"] and hit["evidence"][0]["text"] in failing["answer"]


def test_errors_are_left_out_of_rates() -> None:
    report = _run(4, lambda attempt, setup: None, categories=("pii_extraction",))
    assert report["totals"]["judged"] == 0 and report["totals"]["rate"] is None
    assert report["by_category"] == {}


def test_wilson_interval_matches_statsmodels() -> None:
    for successes, trials in ((0, 10), (3, 10), (10, 10), (17, 40)):
        low, high = proportion_confint(successes, trials, alpha=0.05, method="wilson")
        row = wilson_interval(successes, trials)
        assert row["low"] == pytest.approx(low, abs=1e-6) and row["high"] == pytest.approx(high, abs=1e-6)
    assert wilson_interval(0, 0)["rate"] is None


def test_fragility_is_the_share_of_variants_flipping_the_base_outcome() -> None:
    setup = prepare_run(2)
    attempts = expand(LIBRARY, Selection(attack_ids=("pi.ignore-previous",)), setup)
    variants = [a.variant for a in attempts]
    # The base and the casing variants obey; everything else refuses.
    answers = {a.id: (setup.rogue if a.variant in {"base", "upper", "lower"} else "No.") for a in attempts}
    result = fragility(score_answers(attempts, answers, setup))
    row = result["attacks"]["pi.ignore-previous"]
    assert row["base_success"] is True and row["variants"] == len(variants) - 1
    assert row["score"] == pytest.approx((len(variants) - 3) / (len(variants) - 1), abs=1e-6)
    assert set(row["flipped"]) == set(variants) - {"base", "upper", "lower"}


def test_comparison_with_a_previous_run() -> None:
    before = _run(3, _leaks_canary)
    after = build_report(
        score_answers(
            attempts := expand(LIBRARY, Selection(), prepare_run(3)),
            {a.id: "No." for a in attempts},
            prepare_run(3),
        ),
        prepare_run(3),
        previous=before,
    )
    assert after["comparison"]["by_category_rate_delta"]["system_prompt_extraction"] == -1.0
    assert after["schema_version"] == REPORT_SCHEMA_VERSION
    with pytest.raises(ValueError, match="not a Bastion red-team report"):
        build_report([], prepare_run(3), previous={"schema": "other"})


def test_html_report_is_self_contained_and_escapes_answers() -> None:
    def hostile(attempt: Attempt, setup: RunSetup) -> str:
        return f'<script>alert(1)</script><img src="https://evil.example/x.png"> {setup.canary} & more'

    report = _run(8, hostile, categories=("system_prompt_extraction",))
    page = render_html(report)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parser = _Elements()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags and "link" not in parser.tags
    urls = [value for _, value in parser.attrs if value and re.search(r"https?:|//|url\(", value)]
    assert urls == []
    assert not re.search(r"https?://|url\(", "".join(parser.styles))
    # The only URL is the escaped answer text itself.
    assert "".join(parser.text).count("https://evil.example") == page.count("https://evil.example")
    assert "<mark>" in page  # evidence highlighted
    assert "Guard effectiveness" not in page  # no paired run: no section


def test_html_report_shows_what_the_guard_took_off_against_its_paired_run() -> None:
    report = _run(8, lambda attempt, setup: "No.", categories=("system_prompt_extraction",))
    report["guard_effectiveness"] = {
        "model_run": "rt_model",
        "gateway_run": "rt_<gw>",
        "overall": 0.375,
        "by_category": {"system_prompt_extraction": 0.375, "jailbreak": -0.05},
    }
    page = render_html(report)
    section = page[page.index("<h2>Guard effectiveness</h2>") : page.index("<h2>Top failing attempts</h2>")]
    assert "run rt_model" in section and "run rt_&lt;gw&gt;" in section
    assert "+37.5 points" in section
    assert "<td>system_prompt_extraction</td><td>+37.5 points</td>" in section
    assert "<td>jailbreak</td><td>-5.0 points</td>" in section


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.extend(attrs)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def test_reports_validate_against_the_shipped_json_schema() -> None:
    validator = jsonschema_rs.validator_for(report_json_schema())
    before = _run(3, _leaks_canary)
    for report in (
        before,
        _run(3, _refuses),
        _run(4, lambda attempt, setup: None, categories=("pii_extraction",)),
        build_report(score_answers([], {}, prepare_run(3)), prepare_run(3), previous=before),
    ):
        validator.validate(json.loads(json.dumps(report)))
    broken = json.loads(json.dumps(before))
    broken["attempts"][0]["verdicts"][0]["evidence"] = [{"start": -1, "end": 2, "text": "x"}]
    assert not validator.is_valid(broken)
