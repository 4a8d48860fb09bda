"""``bastion experiments analyze`` and ``sample-size`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from bastion.cli.experiments import DEFAULT_TUNING, METHODS, app
from bastion.stats.power import PROPORTION_METHODS
from bastion.stats.sequential import DEFAULT_TUNING as STATS_TUNING

RUNNER = CliRunner()

ARMS = [
    {"name": "control", "n": 1000, "sum": 100, "sum_squares": 100},
    {"name": "concise", "n": 1010, "sum": 130, "sum_squares": 130},
    {"name": "verbose", "n": 990, "sum": 95, "sum_squares": 95},
]


def _run(*args: str) -> Any:
    assert args[0] == "experiments"
    result = RUNNER.invoke(app, list(args[1:]))
    assert "Traceback" not in result.output
    return result


def _analyze(tmp_path: Path, document: object) -> Any:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return _run("experiments", "analyze", str(path))


def test_frequentist_absolute_matches_scipy(tmp_path: Path) -> None:
    result = _analyze(tmp_path, {"metric": "binomial", "method": "frequentist", "relative": False, "arms": ARMS})
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [v["name"] for v in out["variants"]] == ["concise", "verbose"]
    concise = out["variants"][0]
    p_a, p_b = 0.1, 130 / 1010
    reference = sps.ttest_ind_from_stats(
        p_b, (p_b * (1 - p_b) * 1010 / 1009) ** 0.5, 1010, p_a, (p_a * (1 - p_a) * 1000 / 999) ** 0.5, 1000, False
    )
    assert concise["expected"] == pytest.approx(p_b - p_a)
    assert concise["p_value"] == pytest.approx(reference.pvalue, rel=0.02)  # p(1-p) vs the n-1 sample variance
    assert concise["ci"][0] < concise["expected"] < concise["ci"][1]
    assert out["srm_p_value"] == pytest.approx(sps.chisquare([1000, 1010, 990]).pvalue)
    assert out["srm_mismatch"] is False
    assert "sequential" in out["warning"]


def test_bayesian_output(tmp_path: Path) -> None:
    document = {"metric": "binomial", "method": "bayesian", "alpha": 0.05, "relative": True, "arms": ARMS}
    out = json.loads(_analyze(tmp_path, document).output)
    concise = out["variants"][0]
    assert set(concise) >= {"expected", "ci", "chance_to_win", "risk", "exact_chance_to_win"}
    assert 0.9 < concise["chance_to_win"] < 1
    assert len(concise["risk"]) == 2
    assert "p_value" not in concise


def test_sequential_mean_metric_with_correction(tmp_path: Path) -> None:
    arms = [
        {"name": "a", "n": 3000, "sum": 1396.87, "sum_squares": 52377.9767},
        {"name": "b", "n": 3461, "sum": 2422.7, "sum_squares": 134698.29},
        {"name": "c", "n": 3300, "sum": 1500.0, "sum_squares": 60000.0},
    ]
    document = {"metric": "mean", "method": "sequential", "tuning": 1000, "correction": "holm", "arms": arms}
    out = json.loads(_analyze(tmp_path, document).output)
    b = out["variants"][0]
    assert round(b["expected"], 5) == 0.50336  # GrowthBook's reference
    assert [round(x, 5) for x in b["ci"]] == [-0.55844, 1.56516]
    assert all(v["p_value_adjusted"] >= v["p_value"] for v in out["variants"])
    assert out["srm_mismatch"] is True  # equal weights expected, 3000 / 3461 / 3300 observed


def test_a_degenerate_arm_is_reported_not_raised(tmp_path: Path) -> None:
    arms = [ARMS[0], {"name": "empty", "n": 1, "sum": 0, "sum_squares": 0}]
    out = json.loads(_analyze(tmp_path, {"metric": "binomial", "arms": arms}).output)
    assert "at least 2 units" in out["variants"][0]["error"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "must hold a JSON object"),
        ({"metric": "counts", "arms": ARMS}, "metric must be one of"),
        ({"metric": "binomial", "arms": ARMS[:1]}, "at least 2 arms"),
        ({"metric": "binomial", "alpha": 2, "arms": ARMS}, "alpha must be between 0 and 1"),
        ({"metric": "mean", "arms": [{"n": 10, "sum": 5}, {"n": 10, "sum": 6}]}, "needs sum_squares"),
        ({"metric": "binomial", "arms": [{"n": 10, "sum": 50}, {"n": 10, "sum": 6}]}, "successes <= n"),
        ({"metric": "binomial", "arms": [{"n": "ten", "sum": 5}, {"n": 10, "sum": 6}]}, "must be a finite number"),
        ({"metric": "binomial", "method": "magic", "arms": ARMS}, "method must be one of"),
        ({"metric": "binomial", "arms": ARMS, "colour": "red"}, "unknown field(s): colour"),
        ({"metric": "binomial", "arms": ARMS, "weights": [0.5, 0.5]}, "one number per arm"),
        ({"metric": "binomial", "arms": [{"n": 10, "sum": 2.5}, {"n": 10, "sum": 6}]}, "whole number of conversions"),
        ({"metric": "mean", "arms": [{"n": 10, "sum": 5, "sum_squares": -1}, ARMS[1]]}, "sum_squares must be >= 0"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, document: object, message: str) -> None:
    result = _analyze(tmp_path, document)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unreadable_and_invalid_json_files(tmp_path: Path) -> None:
    missing = _run("experiments", "analyze", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.output
    broken = tmp_path / "broken.json"
    broken.write_text('{"metric": ', encoding="utf-8")
    invalid = _run("experiments", "analyze", str(broken))
    assert invalid.exit_code == 2 and "not valid JSON" in invalid.output


def test_sample_size_per_method() -> None:
    result = _run("experiments", "sample-size", "--baseline", "0.10", "--mde", "0.02")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["per_arm"], out["method"], out["total"]) == (3841, "pooled", 7682)
    relative = json.loads(
        _run(
            "experiments", "sample-size", "--baseline", "0.10", "--mde", "0.2", "--relative", "--method", "continuity"
        ).output
    )
    assert relative["method"] == "continuity" and relative["per_arm"] > 3841
    means = json.loads(_run("experiments", "sample-size", "--baseline", "10", "--mde", "0.5", "--sd", "1").output)
    assert (means["per_arm"], means["method"]) == (64, "noncentral-t")
    sequential = json.loads(
        _run("experiments", "sample-size", "--baseline", "0.10", "--mde", "0.02", "--sequential").output
    )
    assert sequential["method"].startswith("sequential") and sequential["per_arm"] > 3841


def test_sample_size_bad_input() -> None:
    result = _run("experiments", "sample-size", "--baseline", "0.10", "--mde", "0.02", "--method", "exact")
    assert result.exit_code == 2
    assert "--method must be one of" in result.output
    result = _run("experiments", "sample-size", "--baseline", "1.5", "--mde", "0.02")
    assert result.exit_code == 2 and "proportions in (0, 1)" in result.output


def test_cli_constants_match_the_engine_and_the_command_is_registered() -> None:
    assert METHODS == PROPORTION_METHODS
    assert DEFAULT_TUNING == STATS_TUNING
    from bastion.cli.main import app as bastion_app

    assert any(group.name == "experiments" and group.typer_instance is app for group in bastion_app.registered_groups)
