"""``bastion guard eval`` on PII span files: per-type and micro-averaged precision, recall and F1.

Every entity type in the file gets a row, also the ones the guard never reports (P/R/F1 0 with
their support), and so does every type the guard reported that the file does not label. Micro
averages: over the types the evaluated detectors support (the historical figure), over the
structured types (validated identifiers, the request path's default tier) and over all types in
the file. The named-entity tier (``--ner``, the default when its model is installed) adds names,
organisations, places, street addresses, titles and postcodes.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from bastion.config.guard_policy import ALL_PII_ENTITIES, DEFAULT_PII_ENTITIES, NER_PII_ENTITIES
from bastion.guard import ner
from bastion.guard.evaluate import Span, evaluate_pii, micro_over, split_rows
from bastion.guard.pii import PiiDetector

#: Types of the structured tier (validated identifiers and formats).
STRUCTURED_ENTITIES: tuple[str, ...] = tuple(e for e in ALL_PII_ENTITIES if e not in NER_PII_ENTITIES)


def pii_report(rows: list[dict[str, Any]], default_policy: bool, split: bool, use_ner: bool | None) -> dict[str, Any]:
    """The evaluation report; ``use_ner`` None: the named-entity tier when its model is installed."""
    if use_ner is None:
        use_ner = ner.available()
    structured_types = tuple(e for e in (DEFAULT_PII_ENTITIES if default_policy else STRUCTURED_ENTITIES))
    entities = (*structured_types, *NER_PII_ENTITIES) if use_ner else structured_types
    structured = PiiDetector(structured_types, all_dates=not default_policy)
    named = ner.NamedEntityDetector(NER_PII_ENTITIES, strict=True) if use_ner else None
    timings: list[float] = []

    def detect(text: str) -> list[Span]:
        started = time.perf_counter()
        findings = structured.scan(text)
        if named is not None:
            findings = ner.resolve(findings, named.scan(text))
        timings.append((time.perf_counter() - started) * 1000)
        return [(f.type, f.start, f.end) for f in findings]

    if named is not None:
        ner.MODEL.warm_up()  # the load is reported apart from the per-row time
    full = evaluate_pii(rows, detect, entities)
    in_file = set(full.support)
    report: dict[str, Any] = {
        "kind": "pii",
        "profile": "default-policy" if default_policy else "all-supported-types",
        "ner": use_ner,
        "supported": sorted(entities),
        "off_by_default": sorted(set(ALL_PII_ENTITIES) - set(DEFAULT_PII_ENTITIES)),
        **full.to_dict(),
        "micro_structured": _dict(micro_over(full, set(structured_types))),
        "micro_all": _dict(micro_over(full, in_file | set(entities))),
        "scan_ms": _percentiles(timings),
    }
    # Types in the file that nothing reported still get a row (the report's per_type has them).
    if use_ner and ner.MODEL.load_seconds is not None:
        report["ner_model_load_s"] = round(ner.MODEL.load_seconds, 3)
    if split:
        for name, indices in zip(("tune", "held_out"), split_rows(rows), strict=True):
            part = evaluate_pii([rows[i] for i in indices], detect, entities)
            report[name] = {"rows": part.rows, "micro_supported": part.to_dict()["micro_supported"]}
    return report


def _dict(micro: dict[str, Any]) -> dict[str, Any]:
    return {mode: counts.to_dict() for mode, counts in micro.items()}


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": 0.0, "p95": 0.0}
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {"p50": pct(0.50), "p95": pct(0.95)}


def print_pii(report: dict[str, Any]) -> None:
    tier = "structured + named entities" if report.get("ner") else "structured only"
    typer.echo(f"PII detector on {report['file']}: {report['rows']} rows ({report['profile']}, {tier})")
    header = f"  {'type':<18}{'support':>8}   {'exact P/R/F1':<22}{'overlap P/R/F1':<22}"
    typer.echo(header)
    supported = set(report["supported"])
    for entity, data in report["per_type"].items():
        exact, overlap = data["exact"], data["overlap"]
        if entity not in supported:
            note = "  (not detected)"
        elif entity in NER_PII_ENTITIES:
            note = "  (named entity)"
        elif entity in report["off_by_default"]:
            note = "  (off by default)"
        else:
            note = ""
        typer.echo(f"  {entity:<18}{data['support']:>8}   {_prf(exact):<22}{_prf(overlap):<22}fp {overlap['fp']}{note}")
    micro = report["micro_supported"]
    typer.echo(f"  {'micro (supported)':<26}   {_prf(micro['exact']):<22}{_prf(micro['overlap']):<22}")
    for key, label in (("micro_structured", "micro (structured)"), ("micro_all", "micro (all types)")):
        part = report[key]
        typer.echo(f"  {label:<26}   {_prf(part['exact']):<22}{_prf(part['overlap']):<22}")
    for name in ("tune", "held_out"):
        if name in report:
            part = report[name]["micro_supported"]
            typer.echo(
                f"  {'micro ' + name.replace('_', '-'):<26}   {_prf(part['exact']):<22}{_prf(part['overlap']):<22}"
                f"[{report[name]['rows']} rows]"
            )
    scan = report["scan_ms"]
    load = f", model load {report['ner_model_load_s']:.2f} s" if "ner_model_load_s" in report else ""
    typer.echo(f"  scan time per row: p50 {scan['p50']:.2f} ms, p95 {scan['p95']:.2f} ms{load}")
    if report["unsupported"]:
        missing = ", ".join(f"{t} ({n})" for t, n in report["unsupported"].items())
        typer.echo(f"  not detected (recall 0): {missing}")


def _prf(counts: dict[str, Any]) -> str:
    return f"{counts['precision']:.3f}/{counts['recall']:.3f}/{counts['f1']:.3f}"
