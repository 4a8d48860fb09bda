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

from bastion.guard import ALL_PII_ENTITIES, DEFAULT_PII_ENTITIES, GuardPolicy, InputGuard
from bastion.guard.engine import shared_injection_detector
from bastion.guard.evaluate import (
    BinaryMetrics,
    PiiReport,
    detect_kind,
    evaluate_injection,
    evaluate_pii,
    load_jsonl,
    split_rows,
)
from bastion.guard.pii import PiiDetector

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
        report = _pii_report(rows, default_policy, split)
    report["file"] = str(file)
    if json_output:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    elif kind == "injection":
        _print_injection(report)
    else:
        _print_pii(report)


@app.command("scan")
def scan_command(
    text: Annotated[str | None, typer.Argument(help="Text to scan (default: read standard input).")] = None,
) -> None:
    """Scan one text with the default input policy and print the ledger summary and redacted text."""
    content = text if text is not None else sys.stdin.read()
    result = InputGuard(GuardPolicy()).scan_text(content)
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


def _pii_report(rows: list[dict[str, Any]], default_policy: bool, split: bool) -> dict[str, Any]:
    entities = DEFAULT_PII_ENTITIES if default_policy else ALL_PII_ENTITIES
    detector = PiiDetector(entities, all_dates=not default_policy)

    def detect(text: str) -> list[tuple[str, int, int]]:
        return [(f.type, f.start, f.end) for f in detector.scan(text)]

    full = evaluate_pii(rows, detect, entities)
    report: dict[str, Any] = {
        "kind": "pii",
        "profile": "default-policy" if default_policy else "all-supported-types",
        "supported": sorted(entities),
        "off_by_default": sorted(set(ALL_PII_ENTITIES) - set(DEFAULT_PII_ENTITIES)),
        **full.to_dict(),
    }
    if split:
        for name, indices in zip(("tune", "held_out"), split_rows(rows), strict=True):
            part = evaluate_pii([rows[i] for i in indices], detect, entities)
            report[name] = {"rows": part.rows, "micro_supported": part.to_dict()["micro_supported"]}
    return report


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


def _print_pii(report: dict[str, Any]) -> None:
    typer.echo(f"PII detector on {report['file']}: {report['rows']} rows ({report['profile']})")
    header = f"  {'type':<18}{'support':>8}   {'exact P/R/F1':<22}{'overlap P/R/F1':<22}"
    typer.echo(header)
    supported = set(report["supported"])
    for entity, data in report["per_type"].items():
        if entity not in supported:
            continue
        exact, overlap = data["exact"], data["overlap"]
        note = "  (off by default)" if entity in report["off_by_default"] else ""
        typer.echo(f"  {entity:<18}{data['support']:>8}   {_prf(exact):<22}{_prf(overlap):<22}fp {overlap['fp']}{note}")
    micro = report["micro_supported"]
    typer.echo(f"  {'micro (supported)':<26}   {_prf(micro['exact']):<22}{_prf(micro['overlap']):<22}")
    for name in ("tune", "held_out"):
        if name in report:
            part = report[name]["micro_supported"]
            typer.echo(
                f"  {'micro ' + name.replace('_', '-'):<26}   {_prf(part['exact']):<22}{_prf(part['overlap']):<22}"
                f"[{report[name]['rows']} rows]"
            )
    if report["unsupported"]:
        missing = ", ".join(f"{t} ({n})" for t, n in report["unsupported"].items())
        typer.echo(f"  not detected (recall 0): {missing}")


def _prf(counts: dict[str, Any]) -> str:
    return f"{counts['precision']:.3f}/{counts['recall']:.3f}/{counts['f1']:.3f}"


__all__ = ["BinaryMetrics", "PiiReport", "app"]
