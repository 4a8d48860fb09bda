"""Training the learned injection scorer (``bastion guard train``): reproducible from the data files.

Steps, all deterministic (same files and seed give the same weights, byte for byte):

1. Rows ``{"text", "label"}`` (optionally ``kind``, ``source``) are split by a hash of the text into
   train (70%), calibration (15%) and test (15%). Only train fits weights; calibration picks the
   regularisation and the two thresholds; test is reported and touched by nothing else.
2. Rows whose script or language appears (almost) only on one side of the labels are left out of
   training: a model would learn the language, not the intent (``one_sided_groups``). They stay in calibration
   and test, so the cost of leaving them out is measured.
3. Features (``ngrams.py``) plus the rule categories (``injection.py``); an L2-regularised logistic
   regression fitted with L-BFGS (scipy). Benign rows full of trigger words weigh double: an
   over-eager detector is the usual failure of this kind of model. Large sources are damped
   (``source_balance``) so that no one source's style dominates what the model learns.
4. Thresholds on calibration rows: ``flag`` is the lowest with a false-positive rate of at most 1%
   on ordinary benign rows and 2% on hard benign rows; ``block`` the lowest with at most 0.2% on
   all benign rows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.guard.augment import benign_rows
from bastion.guard.augment_attacks import injected_rows
from bastion.guard.evaluate import is_positive
from bastion.guard.injection import InjectionDetector
from bastion.guard.injection_model import RULE_FEATURES, rule_vector, sigmoid, with_rule_floor
from bastion.guard.languages import guess_language
from bastion.guard.ngrams import blocks, count_norm, hash_block, normalize
from bastion.guard.scripts import dominant_script

DEFAULT_BITS = 18
DEFAULT_SEED = "bastion-injection-v1"
REGULARISATION_GRID = (1e-5, 3e-5, 1e-4)
HARD_BENIGN_WEIGHT = 2.0
FLAG_MAX_FPR = {"benign": 0.01, "benign-hard": 0.02}
BLOCK_MAX_FPR = 0.002
#: Longest benign training request used as the carrier of an injected row.
INJECTED_CARRIER_CHARS = 400
#: Source of an injected row: this prefix, then its carrier's source.
INJECTED_SOURCE_PREFIX = "bastion:inject:"


@dataclass(slots=True)
class Row:
    text: str
    label: int
    kind: str
    source: str
    split: str = ""
    script: str = ""
    file: str = ""
    #: The script, or for Latin-script text "Latin:" and the guessed language.
    group: str = ""


@dataclass(slots=True)
class Prepared:
    """Rows with their features: n-gram windows (bucket arrays) and the rule vector."""

    rows: list[Row]
    windows: list[list[tuple[npt.NDArray[np.int64], float]]] = field(default_factory=list)
    #: Training weight per file name (default 1).
    file_weights: dict[str, float] = field(default_factory=dict)
    #: ``train_sources.source_balance``'s power (0: every row weighs the same).
    source_power: float = 0.0
    #: ``language_balance``'s strength (0: off).
    language_power: float = 0.0
    rules: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, len(RULE_FEATURES) + 1), dtype=np.float32)
    )


def load_rows(paths: Sequence[Path]) -> list[Row]:
    rows: list[Row] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    text = str(data["text"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: expected a JSON object with text and label") from exc
                label = int(is_positive(data.get("label")))
                kind = str(data.get("kind") or ("attack" if label else "benign"))
                rows.append(Row(text, label, kind, str(data.get("source", path.name)), file=path.name))
    return rows


def split_of(text: str, seed: str) -> str:
    """``train`` (70%), ``calibration`` (15%) or ``test`` (15%), by a hash of the text."""
    digest = hashlib.sha256((seed + "\0" + text).encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    return "train" if bucket < 70 else ("calibration" if bucket < 85 else "test")


def assign_splits(rows: list[Row], seed: str) -> None:
    for row in rows:
        row.split = split_of(row.text, seed)
        row.script = dominant_script(row.text)
        row.group = f"Latin:{guess_language(row.text)}" if row.script == "Latin" else row.script


def augmented_rows(rows: Sequence[Row], seed: str) -> list[Row]:
    """The project's training rows: benign ones (``augment.py``), whose quoted attacks come from a
    third of the short training attacks (picked by hash), and injected ones
    (``augment_attacks.py``), whose carriers are a sixth of the short benign training requests, each
    recorded as ``bastion:inject:<carrier's source>``. Nothing from calibration or test is used."""
    quoted = [
        row.text
        for row in rows
        if row.split == "train"
        and row.label
        and len(row.text) <= 300
        and hashlib.sha256((seed + "\0quote\0" + row.text).encode("utf-8")).digest()[0] % 3 == 0
    ]
    made = [Row(text, 0, "benign-hard", "bastion:augment") for text in benign_rows(quoted, seed)]
    for row in rows:
        if (
            row.split == "train"
            and not row.label
            and not row.source.startswith("bastion:")
            and len(row.text) <= INJECTED_CARRIER_CHARS
            and hashlib.sha256((seed + "\0carrier\0" + row.text).encode("utf-8")).digest()[0] % 6 == 0
        ):
            source = INJECTED_SOURCE_PREFIX + row.source
            made.extend(Row(text, label, kind, source) for text, label, kind in injected_rows([row.text], seed))
    for row in made:
        row.split, row.file = "train", "augmented"
        row.script = dominant_script(row.text)
        row.group = f"Latin:{guess_language(row.text)}" if row.script == "Latin" else row.script
    return made


#: Groups never left out: the main language, and text too short or mixed to tell.
_ALWAYS_KEPT = frozenset({"Latin:en", "Latin:unknown", "Common"})


def one_sided_groups(rows: Sequence[Row], *, minimum: int = 10, share: float = 0.9) -> list[str]:
    """Scripts (and Latin-script languages) with at least ``minimum`` training rows of which
    ``share`` or more carry one label: a model would learn the language, not the intent."""
    totals: Counter[str] = Counter()
    positives: Counter[str] = Counter()
    for row in rows:
        totals[row.group] += 1
        positives[row.group] += row.label
    one_sided = []
    for group, total in totals.items():
        if group in _ALWAYS_KEPT or total < minimum:
            continue
        if max(positives[group], total - positives[group]) / total >= share:
            one_sided.append(group)
    return sorted(one_sided)


def source_of(row: Row) -> str:
    """The repository a row comes from (``owner/repo`` of ``owner/repo:path``), or its file."""
    return row.source.split(":", 1)[0] or row.file


def carrier_source_of(row: Row) -> str | None:
    """For an injected row, the repository (or file) its carrier came from; else None."""
    if not row.source.startswith(INJECTED_SOURCE_PREFIX):
        return None
    return row.source.removeprefix(INJECTED_SOURCE_PREFIX).split(":", 1)[0]


def source_balance(rows: Sequence[Row], power: float) -> npt.NDArray[np.float64]:
    """Per row, ``count(source, label) ** -power``, scaled so each label's weights sum to its rows."""
    counts = Counter((source_of(row), row.label) for row in rows)
    weights = np.asarray([counts[(source_of(row), row.label)] ** -power for row in rows], dtype=np.float64)
    labels = np.asarray([row.label for row in rows])
    for label in (0, 1):
        chosen = labels == label
        if chosen.any():
            weights[chosen] *= chosen.sum() / weights[chosen].sum()
    return weights


#: ``language_balance`` never moves a row's weight by more than this factor either way.
LANGUAGE_WEIGHT_LIMIT = 4.0


def language_balance(rows: Sequence[Row], power: float) -> npt.NDArray[np.float64]:
    """Per row, a weight that makes each script or language carry the overall share of attacks.

    A group (``Row.group``) whose rows are 80% attacks teaches "this language means attack"; weighing
    its attacks by ``n_group * share(label) / n_(group, label)`` (and its benign rows alike) makes
    the label independent of the group in the weighted data, so the model must learn from the words.
    ``power`` scales the correction in log space (0: none, 1: full); each factor is kept within
    ``LANGUAGE_WEIGHT_LIMIT`` so a group with a handful of rows on one side is not blown up."""
    if not rows or power == 0.0:
        return np.ones(len(rows), dtype=np.float64)
    groups = Counter(row.group for row in rows)
    cells = Counter((row.group, row.label) for row in rows)
    labels = Counter(row.label for row in rows)
    weights = np.empty(len(rows), dtype=np.float64)
    for index, row in enumerate(rows):
        ideal = groups[row.group] * labels[row.label] / len(rows) / cells[(row.group, row.label)]
        weights[index] = min(max(ideal**power, 1 / LANGUAGE_WEIGHT_LIMIT), LANGUAGE_WEIGHT_LIMIT)
    return weights


def prepare(rows: list[Row], bits: int) -> Prepared:
    detector = InjectionDetector(use_model=False)
    prepared = Prepared(rows)
    rule_rows = []
    for row in rows:
        scan = detector.scan(row.text)
        rule_rows.append(rule_vector(scan.categories, scan.score))
        row_windows = []
        for block, starts, ends in blocks(normalize(row.text)):
            hashed = hash_block(block, starts, ends, bits)
            for index in range(starts.shape[0]):
                buckets = hashed.window_buckets(index)
                norm = count_norm(buckets)
                row_windows.append((buckets, 1.0 / norm if norm else 0.0))
        prepared.windows.append(row_windows)
    prepared.rules = np.vstack(rule_rows).astype(np.float32)
    return prepared


def _design(prepared: Prepared, indices: Sequence[int], bits: int) -> tuple[Any, npt.NDArray[np.float64]]:
    """The sparse design matrix (one row per window) and each window's share of its text's weight."""
    from scipy import sparse

    data: list[npt.NDArray[np.float64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    rows: list[npt.NDArray[np.int64]] = []
    share: list[float] = []
    rule_dim = len(RULE_FEATURES) + 1
    line = 0
    for index in indices:
        row_windows = prepared.windows[index]
        for buckets, scale in row_windows:
            cols.append(buckets)
            data.append(np.full(buckets.shape[0], scale))
            rows.append(np.full(buckets.shape[0], line))
            cols.append(np.arange(rule_dim, dtype=np.int64) + (1 << bits))
            data.append(prepared.rules[index].astype(np.float64))
            rows.append(np.full(rule_dim, line))
            share.append(1.0 / len(row_windows))
            line += 1
    matrix = sparse.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(line, (1 << bits) + rule_dim)
    )
    matrix.sum_duplicates()
    return matrix, np.asarray(share)


def fit(
    prepared: Prepared, indices: Sequence[int], bits: int, regularisation: float
) -> tuple[npt.NDArray[np.float64], float]:
    """L2-regularised logistic regression over the windows of ``indices`` (weights, bias)."""
    from scipy.optimize import minimize

    matrix, share = _design(prepared, indices, bits)
    labels = np.repeat([prepared.rows[i].label for i in indices], [len(prepared.windows[i]) for i in indices])
    kinds = np.repeat([prepared.rows[i].kind for i in indices], [len(prepared.windows[i]) for i in indices])
    files = np.repeat([prepared.rows[i].file for i in indices], [len(prepared.windows[i]) for i in indices])
    file_weight = np.asarray([prepared.file_weights.get(name, 1.0) for name in files])
    balance = np.repeat(
        source_balance([prepared.rows[i] for i in indices], prepared.source_power),
        [len(prepared.windows[i]) for i in indices],
    )
    languages = np.repeat(
        language_balance([prepared.rows[i] for i in indices], prepared.language_power),
        [len(prepared.windows[i]) for i in indices],
    )
    sample = share * np.where(kinds == "benign-hard", HARD_BENIGN_WEIGHT, 1.0) * file_weight * balance * languages
    sample = sample / sample.sum()
    targets = labels.astype(np.float64)
    dim = matrix.shape[1]

    def objective(params: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        weights, bias = params[:dim], params[dim]
        z = matrix @ weights + bias
        # log(1 + e^z) - y z, computed stably.
        loss = float(np.dot(sample, np.logaddexp(0.0, z) - targets * z))
        residual = sample * (1.0 / (1.0 + np.exp(-z)) - targets)
        gradient = np.empty(dim + 1)
        gradient[:dim] = matrix.T @ residual + regularisation * weights
        gradient[dim] = residual.sum()
        return loss + 0.5 * regularisation * float(np.dot(weights, weights)), gradient

    result = minimize(objective, np.zeros(dim + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return result.x[:dim], float(result.x[dim])


def score_rows(
    prepared: Prepared, indices: Sequence[int], weights: npt.NDArray[Any], bias: float, bits: int
) -> list[float]:
    ngram = weights[: 1 << bits]
    rules = weights[1 << bits :]
    scores = []
    for index in indices:
        best = max(float(ngram[b].sum()) * s if b.size else 0.0 for b, s in prepared.windows[index])
        logit = best + float(np.dot(rules, prepared.rules[index])) + bias
        # The last rule input is the rules' combined score (``rule_vector``).
        scores.append(with_rule_floor(sigmoid(logit), float(prepared.rules[index][-1])))
    return scores


def lowest_threshold(scores: Sequence[float], labels: Sequence[int], max_fpr: float) -> float:
    """The lowest threshold whose false-positive rate on the negatives is at most ``max_fpr``."""
    negatives = sorted((s for s, y in zip(scores, labels, strict=True) if not y), reverse=True)
    if not negatives:
        return 0.5
    allowed = math.floor(max_fpr * len(negatives))
    # Strictly above the (allowed+1)-th highest negative score.
    cut = negatives[allowed] if allowed < len(negatives) else 0.0
    return float(np.nextafter(cut, 1.0))


def calibrated_thresholds(rows: Sequence[Row], indices: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """``(flag, block)`` on the rows ``indices`` scored ``scores``: ``flag`` the lowest threshold
    within ``FLAG_MAX_FPR`` for each benign kind, ``block`` (not below ``flag``) within ``BLOCK_MAX_FPR``."""
    flag = max(
        lowest_threshold(
            [s for s, i in zip(scores, indices, strict=True) if rows[i].label or rows[i].kind == kind],
            [rows[i].label for i in indices if rows[i].label or rows[i].kind == kind],
            max_fpr,
        )
        for kind, max_fpr in FLAG_MAX_FPR.items()
    )
    return flag, max(flag, lowest_threshold(scores, [rows[i].label for i in indices], BLOCK_MAX_FPR))


def encode_weights(ngram: npt.NDArray[Any], rules: npt.NDArray[Any], bias: float) -> bytes:
    """The weights file: float16 n-gram weights, float32 rule weights and bias, gzip with no timestamp
    (so the same training run writes the same bytes)."""
    payload = (
        ngram.astype("<f2").tobytes()
        + np.asarray(rules, dtype="<f4").tobytes()
        + np.asarray([bias], dtype="<f4").tobytes()
    )
    return gzip.compress(payload, compresslevel=9, mtime=0)
