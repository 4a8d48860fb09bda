"""``bastion guard eval`` on injection files and ``bastion guard train``: the injection detector's numbers.

A file the packaged model was trained on (recognised by its SHA-256 in the model card) is also
reported by the training split: ``test`` rows were never used for fitting or thresholds.

The eval's ``all`` row is the default policy's decision (flagged or blocked: score at or above the
flag threshold); the ``flag`` and ``block`` rows are the two operating points, with PR-AUC and the
scan time per row (p50/p95, the whole injection scan: rules, decoding and the learned model).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import typer

from bastion.guard.evaluate import binary_metrics, is_positive, pr_auc, split_rows
from bastion.guard.injection import InjectionDetector
from bastion.guard.train import split_of


def injection_report(
    rows: list[dict[str, Any]],
    *,
    flag_threshold: float,
    block_threshold: float,
    split: bool,
    use_model: bool = True,
    trained_on: str | None = None,
) -> dict[str, Any]:
    detector = InjectionDetector(use_model=use_model)
    scores: list[float] = []
    times_ms: list[float] = []
    for row in rows:
        text = str(row.get("text", ""))
        started = time.perf_counter()
        scores.append(detector.scan(text).score)
        times_ms.append((time.perf_counter() - started) * 1000)
    labels = [is_positive(row.get("label")) for row in rows]

    def at(threshold: float, indices: list[int] | None = None) -> dict[str, Any]:
        chosen = range(len(rows)) if indices is None else indices
        metrics = binary_metrics([labels[i] for i in chosen], [scores[i] >= threshold for i in chosen])
        return {"rows": len(chosen), **metrics.to_dict()}

    ordered = sorted(times_ms)
    report: dict[str, Any] = {
        "kind": "injection",
        "rows": len(rows),
        "scorer": "model+rules" if use_model else "rules",
        "threshold": flag_threshold,
        "thresholds": {"flag": flag_threshold, "block": block_threshold},
        "all": at(flag_threshold),
        "flag": at(flag_threshold),
        "block": at(block_threshold),
        "pr_auc": round(pr_auc(labels, scores), 4),
        "scan_ms": {
            "p50": round(statistics.median(ordered), 3) if ordered else 0.0,
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else 0.0,
        },
    }
    if split:
        for name, indices in zip(("tune", "held_out"), split_rows(rows), strict=True):
            report[name] = at(flag_threshold, indices)
    if trained_on is not None:
        # The file was one of the model's training files: its rows by the training split, so
        # figures on rows the model never fitted are reported apart from the rest.
        parts: dict[str, list[int]] = {"train": [], "calibration": [], "test": []}
        for index, row in enumerate(rows):
            parts[split_of(str(row.get("text", "")), trained_on)].append(index)
        report["training_split"] = {name: at(flag_threshold, indices) for name, indices in parts.items() if indices}
    return report


def _line(label: str, m: dict[str, Any]) -> str:
    return (
        f"  {label:<10} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  FPR {m['fpr']:.3f}"
        f"   (tp {m['tp']}, fp {m['fp']}, tn {m['tn']}, fn {m['fn']})"
    )


def print_injection(report: dict[str, Any]) -> None:
    positives = report["all"]["tp"] + report["all"]["fn"]
    thresholds = report["thresholds"]
    typer.echo(
        f"Injection detector ({report['scorer']}) on {report['file']}: {report['rows']} rows, {positives} injections, "
        f"flag at {thresholds['flag']:.3f}, block at {thresholds['block']:.3f}"
    )
    typer.echo(_line("all", report["all"]))
    typer.echo(_line("flag", report["flag"]))
    typer.echo(_line("block", report["block"]))
    typer.echo(
        f"  PR-AUC {report['pr_auc']:.3f}   scan time p50 {report['scan_ms']['p50']:.3f} ms, "
        f"p95 {report['scan_ms']['p95']:.3f} ms"
    )
    for name in ("tune", "held_out"):
        if name in report:
            typer.echo(_line(name.replace("_", "-"), report[name]) + f"  [{report[name]['rows']} rows]")
    if "training_split" in report:
        typer.echo("  this file trained the model; its rows by the training split (only test was never looked at):")
        for name, part in report["training_split"].items():
            typer.echo(_line(name, part) + f"  [{part['rows']} rows]")
