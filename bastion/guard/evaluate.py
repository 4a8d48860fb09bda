"""Metrics for the guard's detectors on labelled JSONL files (pure functions; the CLI prints them).

Two file kinds, told apart by their rows:

* injection: ``{"text": ..., "label": 0|1}`` -> precision, recall, F1, false-positive rate;
* PII: ``{"text": ..., "spans": [{"type", "start", "end"}]}`` -> per entity type precision, recall
  and F1, both for exact span matches and for overlapping spans, a micro-average over the types
  the guard supports, and the types in the file that it does not detect.

``split_rows`` makes a deterministic tune/held-out split (by a hash of each text), so a figure
measured on rows that were never looked at while writing rules can be reported beside the total.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

FileKind = Literal["injection", "pii"]
MatchMode = Literal["exact", "overlap"]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass(frozen=True, slots=True)
class BinaryMetrics:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _f1(self.precision, self.recall)

    @property
    def fpr(self) -> float:
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "fpr": round(self.fpr, 4),
            "accuracy": round(self.accuracy, 4),
        }


def binary_metrics(labels: Sequence[bool], predictions: Sequence[bool]) -> BinaryMetrics:
    if len(labels) != len(predictions):
        raise ValueError("labels and predictions differ in length")
    tp = sum(1 for y, p in zip(labels, predictions, strict=True) if y and p)
    fp = sum(1 for y, p in zip(labels, predictions, strict=True) if not y and p)
    fn = sum(1 for y, p in zip(labels, predictions, strict=True) if y and not p)
    return BinaryMetrics(tp=tp, fp=fp, tn=len(labels) - tp - fp - fn, fn=fn)


@dataclass(slots=True)
class SpanCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _f1(self.precision, self.recall)

    def add(self, other: SpanCounts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


Span = tuple[str, int, int]  # (type, start, end)


def match_spans(gold: Iterable[Span], predicted: Iterable[Span], mode: MatchMode) -> dict[str, SpanCounts]:
    """Per-type counts for one text. Matching is one-to-one: a predicted span matches at most one gold span."""
    counts: dict[str, SpanCounts] = {}
    remaining = sorted(set(predicted), key=lambda s: (s[1], s[2], s[0]))
    for g_type, g_start, g_end in sorted(set(gold), key=lambda s: (s[1], s[2], s[0])):
        hit = None
        for candidate in remaining:
            p_type, p_start, p_end = candidate
            if p_type != g_type:
                continue
            if (mode == "exact" and (p_start, p_end) == (g_start, g_end)) or (
                mode == "overlap" and p_start < g_end and g_start < p_end
            ):
                hit = candidate
                break
        entry = counts.setdefault(g_type, SpanCounts())
        if hit is None:
            entry.fn += 1
        else:
            entry.tp += 1
            remaining.remove(hit)
    for p_type, _, _ in remaining:
        counts.setdefault(p_type, SpanCounts()).fp += 1
    return counts


@dataclass(slots=True)
class PiiReport:
    #: type -> {"exact": counts, "overlap": counts}
    per_type: dict[str, dict[str, SpanCounts]] = field(default_factory=dict)
    #: Number of gold spans per type.
    support: dict[str, int] = field(default_factory=dict)
    #: Micro-average over the supported types: {"exact": counts, "overlap": counts}.
    micro: dict[str, SpanCounts] = field(default_factory=dict)
    #: Types present in the file that the guard cannot detect (their recall is 0).
    unsupported: list[str] = field(default_factory=list)
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "per_type": {
                t: {"support": self.support.get(t, 0), **{m: c.to_dict() for m, c in modes.items()}}
                for t, modes in sorted(self.per_type.items())
            },
            "micro_supported": {m: c.to_dict() for m, c in self.micro.items()},
            "unsupported": {t: self.support.get(t, 0) for t in self.unsupported},
        }


def span_metrics(
    gold_rows: Sequence[Iterable[Span]], predicted_rows: Sequence[Iterable[Span]], supported: Iterable[str]
) -> PiiReport:
    """Aggregate ``match_spans`` over rows, in both modes."""
    supported_set = set(supported)
    report = PiiReport(rows=len(gold_rows), micro={"exact": SpanCounts(), "overlap": SpanCounts()})
    for gold, predicted in zip(gold_rows, predicted_rows, strict=True):
        gold_list = list(gold)
        predicted_list = list(predicted)
        for g_type, _, _ in gold_list:
            report.support[g_type] = report.support.get(g_type, 0) + 1
        for mode in ("exact", "overlap"):
            for entity, counts in match_spans(gold_list, predicted_list, mode).items():
                report.per_type.setdefault(entity, {"exact": SpanCounts(), "overlap": SpanCounts()})[mode].add(counts)
                if entity in supported_set:
                    report.micro[mode].add(counts)
    report.unsupported = sorted(t for t in report.support if t not in supported_set)
    return report


def detect_kind(rows: Sequence[dict[str, Any]]) -> FileKind:
    for row in rows:
        if "spans" in row:
            return "pii"
        if "label" in row:
            return "injection"
    raise ValueError('rows have neither "label" (injection) nor "spans" (PII)')


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from exc
    return rows


def split_rows(rows: Sequence[dict[str, Any]], *, seed: str = "bastion-guard") -> tuple[list[int], list[int]]:
    """Indices of a deterministic ~50/50 tune/held-out split, by a hash of each row's text."""
    tune: list[int] = []
    held_out: list[int] = []
    for index, row in enumerate(rows):
        digest = hashlib.sha256((seed + "\0" + str(row.get("text", ""))).encode("utf-8")).digest()
        (held_out if digest[0] & 1 else tune).append(index)
    return tune, held_out


def is_positive(label: Any) -> bool:
    if isinstance(label, str):
        return label.strip().lower() in ("1", "true", "injection", "jailbreak", "malicious", "yes")
    return bool(label)


def evaluate_injection(
    rows: Sequence[dict[str, Any]], score: Callable[[str], float], threshold: float
) -> tuple[BinaryMetrics, list[float]]:
    """Metrics of ``score(text) >= threshold`` against the rows' labels, and the scores."""
    scores = [score(str(row.get("text", ""))) for row in rows]
    labels = [is_positive(row.get("label")) for row in rows]
    return binary_metrics(labels, [s >= threshold for s in scores]), scores


def evaluate_pii(
    rows: Sequence[dict[str, Any]], detect: Callable[[str], Iterable[Span]], supported: Iterable[str]
) -> PiiReport:
    gold = [[(s["type"], int(s["start"]), int(s["end"])) for s in row.get("spans", [])] for row in rows]
    predicted = [list(detect(str(row.get("text", "")))) for row in rows]
    return span_metrics(gold, predicted, supported)


def pr_auc(labels: Sequence[bool | int], scores: Sequence[float]) -> float:
    """Area under the precision-recall curve (average precision: precision summed at each positive)."""
    pairs = sorted(zip(scores, labels, strict=True), key=lambda pair: -pair[0])
    positives = sum(1 for _, label in pairs if label)
    if not positives:
        return 0.0
    total = 0.0
    hits = 0
    index = 0
    # Ties share one threshold: every row with the same score is admitted together.
    while index < len(pairs):
        score = pairs[index][0]
        group_hits = 0
        group_size = 0
        while index < len(pairs) and pairs[index][0] == score:
            group_hits += 1 if pairs[index][1] else 0
            group_size += 1
            index += 1
        hits += group_hits
        total += group_hits * hits / index
    return total / positives


def micro_over(report: PiiReport, types: Iterable[str]) -> dict[str, SpanCounts]:
    """Micro-averaged counts over ``types`` (a type the detector never reports counts its misses)."""
    wanted = set(types)
    micro = {"exact": SpanCounts(), "overlap": SpanCounts()}
    for entity, modes in report.per_type.items():
        if entity in wanted:
            for mode, counts in modes.items():
                micro[mode].add(counts)
    return micro
