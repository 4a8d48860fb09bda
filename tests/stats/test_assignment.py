"""GrowthBook-compatible assignment: the SDKs' own test cases, SRM on random units, stability."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.stats.assignment import (
    assign,
    bucket_ranges,
    choose_variation,
    equal_weights,
    fnv1a32,
    gb_hash,
    in_namespace,
)
from bastion.stats.errors import StatsError
from bastion.stats.srm import srm_check

CASES = json.loads((Path(__file__).parents[1] / "data" / "growthbook" / "cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash_matches_growthbook(seed: str, value: str, version: int, expected: float | None) -> None:
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize(("name", "args", "expected"), CASES["getBucketRange"])
def test_bucket_ranges_match_growthbook(name: str, args: list[Any], expected: list[list[float]]) -> None:
    count, coverage, weights = args
    ranges = bucket_ranges(count, coverage, weights)
    assert len(ranges) == len(expected), name
    for got, want in zip(ranges, expected, strict=True):
        assert got == pytest.approx(tuple(want), abs=1e-9), name


@pytest.mark.parametrize(("name", "n", "ranges", "expected"), CASES["chooseVariation"])
def test_choose_variation_matches_growthbook(name: str, n: float, ranges: list[Any], expected: int) -> None:
    assert choose_variation(n, [tuple(r) for r in ranges]) == expected, name


@pytest.mark.parametrize(("name", "unit", "namespace", "expected"), CASES["inNamespace"])
def test_namespaces_match_growthbook(name: str, unit: str, namespace: list[Any], expected: bool) -> None:
    assert in_namespace(unit, (namespace[0], namespace[1], namespace[2])) is expected, name


@pytest.mark.parametrize(("count", "expected"), CASES["getEqualWeights"])
def test_equal_weights_match_growthbook(count: int, expected: list[float]) -> None:
    assert equal_weights(count) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(("name", "context", "experiment", "value", "in_experiment", "hash_used"), CASES["run"])
def test_run_experiment_matches_growthbook(
    name: str, context: dict[str, Any], experiment: dict[str, Any], value: Any, in_experiment: bool, hash_used: bool
) -> None:
    unit = context.get("attributes", {}).get(experiment.get("hashAttribute", "id"))
    variations = experiment["variations"]
    index = assign(
        experiment.get("seed", experiment["key"]),
        "" if unit is None else str(unit),
        len(variations),
        weights=experiment.get("weights"),
        coverage=experiment.get("coverage", 1.0),
        hash_version=experiment.get("hashVersion", 1),
    )
    assert (index != -1) is in_experiment, name
    assert variations[index if index != -1 else 0] == value, name


def test_fnv1a32_reference_vectors() -> None:
    # The published FNV-1a 32-bit test vectors (Fowler/Noll/Vo).
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_fnv1a32_hashes_utf16_code_units_like_the_javascript_sdk() -> None:
    # charCodeAt gives the two surrogates of an astral character; hashing them by hand must agree.
    h = 0x811C9DC5
    for unit in (0xD83D, 0xDE00):  # U+1F600
        h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
    assert fnv1a32("\U0001f600") == h
    assert fnv1a32("é") == ((0x811C9DC5 ^ 0xE9) * 0x01000193) & 0xFFFFFFFF


def test_100k_random_units_on_a_50_50_split_pass_srm() -> None:
    rng = np.random.default_rng(14)
    units = [str(uuid.UUID(int=int(x), version=4)) for x in rng.integers(0, 2**63, size=100_000)]
    counts = np.bincount([assign("exp-prompt-v2", u, 2) for u in units], minlength=2)
    result = srm_check(counts.tolist(), [0.5, 0.5])
    assert counts.sum() == 100_000
    assert not result.mismatch, (counts, result.p_value)


def test_coverage_excludes_units_without_moving_the_others() -> None:
    units = [f"user-{i}" for i in range(5000)]
    full = [assign("seed", u, 2, weights=[0.5, 0.5], coverage=1.0) for u in units]
    half = [assign("seed", u, 2, weights=[0.5, 0.5], coverage=0.5) for u in units]
    assert -1 not in full
    share_out = half.count(-1) / len(units)
    assert 0.45 < share_out < 0.55
    assert all(h in (-1, f) for h, f in zip(half, full, strict=True))


@pytest.mark.integration
def test_assignment_is_the_same_in_another_process() -> None:
    units = [f"u{i}" for i in range(200)]
    here = [assign("exp-7", u, 3, weights=[0.2, 0.3, 0.5]) for u in units]
    code = (
        "import json; from bastion.stats.assignment import assign; "
        f"print(json.dumps([assign('exp-7', u, 3, weights=[0.2, 0.3, 0.5]) for u in {units!r}]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert json.loads(out.stdout) == here


def test_assign_rejects_unknown_hash_versions() -> None:
    with pytest.raises(StatsError):
        assign("s", "u", 2, hash_version=3)
    with pytest.raises(StatsError):
        assign("s", "u", -1)
    assert assign("s", "u", 1) == -1
