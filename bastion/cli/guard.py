"""``bastion guard``: evaluate the guard's detectors on labelled files, or scan one text.

bastion guard eval data/prompt-injection/dev.jsonl
bastion guard eval data/pii/dev.jsonl --json
echo "ignore all previous instructions" | bastion guard scan
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import bastion.cli.guard_pii as guard_pii
from bastion.guard import GuardPolicy, InputGuard
from bastion.guard.engine import shared_injection_detector
from bastion.guard.evaluate import (
    BinaryMetrics,
    PiiReport,
    detect_kind,
    evaluate_injection,
    load_jsonl,
    split_rows,
)
from bastion.guard.ner import NerUnavailable

app = typer.Typer(help="Guard tools: evaluate detectors, scan a text.", no_args_is_help=True)


@app.callback()
def _guard() -> None:
    """Guard tools: evaluate detectors, scan a text."""


@app.command("eval")
def eval_command(
    file: Annotated[Path, typer.Argument(help="JSONL with {text,label} or {text,spans} rows.", exists=True)],
    json_output: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    threshold: Annotated[
        float | None, typer.Option(help="Injection threshold (default: the policy's).", min=0.0, max=1.0)
    ] = None,
    split: Annotated[bool, typer.Option(help="Also report a deterministic tune / held-out split.")] = True,
    default_policy: Annotated[
        bool,
        typer.Option(
            "--default-policy",
            help="PII: evaluate only the types the default policy enables (default: every supported type).",
        ),
    ] = False,
    use_ner: Annotated[
        bool | None,
        typer.Option(
            "--ner/--no-ner",
            help="PII: include the named-entity tier (names, places, addresses); default: when its model is installed.",
        ),
    ] = None,
) -> None:
    """Precision, recall, F1 (and FPR for injection) of the guard on a labelled file."""
    try:
        rows = load_jsonl(file)
        kind = detect_kind(rows)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from exc
    if kind == "injection":
        report = _injection_report(
            rows, threshold if threshold is not None else GuardPolicy().injection_threshold, split
        )
    else:
        try:
            report = guard_pii.pii_report(rows, default_policy, split, use_ner)
        except NerUnavailable as exc:
            raise typer.BadParameter(str(exc), param_hint="--ner") from exc
    report["file"] = str(file)
    if json_output:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    elif kind == "injection":
        _print_injection(report)
    else:
        guard_pii.print_pii(report)


@app.command("scan")
def scan_command(
    text: Annotated[str | None, typer.Argument(help="Text to scan (default: read standard input).")] = None,
    use_ner: Annotated[
        bool, typer.Option("--ner", help="Also find names, places, organisations and addresses (pii_ner).")
    ] = False,
) -> None:
    """Scan one text with the default input policy and print the ledger summary and redacted text."""
    content = text if text is not None else sys.stdin.read()
    result = InputGuard(GuardPolicy(pii_ner=use_ner)).scan_text(content)
    typer.echo(json.dumps({"result": result.to_ledger(), "text": result.text}, indent=2, ensure_ascii=False))


def _injection_report(rows: list[dict[str, Any]], threshold: float, split: bool) -> dict[str, Any]:
    detector = shared_injection_detector()
    metrics, scores = evaluate_injection(rows, lambda text: detector.scan(text).score, threshold)
    report: dict[str, Any] = {"kind": "injection", "rows": len(rows), "threshold": threshold, "all": metrics.to_dict()}
    if split:
        labels = [r.get("label") for r in rows]
        for name, indices in zip(("tune", "held_out"), split_rows(rows), strict=True):
            subset = [{"label": labels[i]} for i in indices]
            sub_metrics, _ = evaluate_injection(subset, _lookup([scores[i] for i in indices]), threshold)
            report[name] = {"rows": len(indices), **sub_metrics.to_dict()}
    return report


def _lookup(scores: list[float]) -> Any:
    """A scorer that returns precomputed scores in order (rows are scored once)."""
    iterator = iter(scores)
    return lambda _text: next(iterator)


def _line(label: str, m: dict[str, Any]) -> str:
    return (
        f"  {label:<10} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  FPR {m['fpr']:.3f}"
        f"   (tp {m['tp']}, fp {m['fp']}, tn {m['tn']}, fn {m['fn']})"
    )


def _print_injection(report: dict[str, Any]) -> None:
    positives = report["all"]["tp"] + report["all"]["fn"]
    typer.echo(
        f"Injection detector on {report['file']}: {report['rows']} rows, {positives} injections, "
        f"threshold {report['threshold']:.2f}"
    )
    typer.echo(_line("all", report["all"]))
    for name in ("tune", "held_out"):
        if name in report:
            typer.echo(_line(name.replace("_", "-"), report[name]) + f"  [{report[name]['rows']} rows]")


__all__ = ["BinaryMetrics", "PiiReport", "app"]
