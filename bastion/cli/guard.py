"""``bastion guard``: evaluate the guard's detectors on labelled files, or scan one text.

bastion guard eval data/prompt-injection/dev.jsonl
bastion guard eval data/pii/dev.jsonl --json
bastion guard train data/prompt-injection/train.jsonl
echo "ignore all previous instructions" | bastion guard scan
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import bastion.cli.guard_pii as guard_pii
from bastion.cli.guard_injection import injection_report, print_injection
from bastion.guard import GuardPolicy, InputGuard
from bastion.guard.engine import injection_thresholds
from bastion.guard.evaluate import BinaryMetrics, PiiReport, detect_kind, load_jsonl
from bastion.guard.injection_model import shared_model
from bastion.guard.ner import NerUnavailable
from bastion.guard.train import DEFAULT_BITS, DEFAULT_SEED
from bastion.guard.train_run import LANGUAGE_POWER, SOURCE_POWER, train_model, write_model
from bastion.guard.train_sources import HeldOutHits, either_tier_rates

app = typer.Typer(help="Guard tools: evaluate detectors, scan a text.", no_args_is_help=True)


@app.callback()
def _guard() -> None:
    """Guard tools: evaluate detectors, scan a text."""


@app.command("eval")
def eval_command(
    file: Annotated[Path, typer.Argument(help="JSONL with {text,label} or {text,spans} rows.", exists=True)],
    json_output: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    threshold: Annotated[
        float | None,
        typer.Option(help="Injection flag threshold (default: the policy's, i.e. the model's).", min=0.0, max=1.0),
    ] = None,
    block_threshold: Annotated[
        float | None,
        typer.Option(help="Injection block threshold (default: the policy's, i.e. the model's).", min=0.0, max=1.0),
    ] = None,
    rules_only: Annotated[
        bool, typer.Option("--rules-only", help="Injection: score with the rules alone, without the learned model.")
    ] = False,
    use_ner: Annotated[
        bool | None,
        typer.Option(
            "--ner/--no-ner",
            help="PII: include the named-entity tier (names, places, addresses); default: when its model is installed.",
        ),
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
        flag, block = injection_thresholds(GuardPolicy(injection_model=not rules_only))
        report = injection_report(
            rows,
            flag_threshold=threshold if threshold is not None else flag,
            block_threshold=block_threshold if block_threshold is not None else block,
            split=split,
            use_model=not rules_only,
            trained_on=None if rules_only else _training_seed(file),
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
        print_injection(report)
    else:
        guard_pii.print_pii(report)


@app.command("train")
def train_command(
    files: Annotated[list[Path], typer.Argument(help="JSONL files of {text,label[,kind,source]} rows.", exists=True)],
    output: Annotated[
        Path | None, typer.Option(help="Directory for the weights and card (default: the packaged model's).")
    ] = None,
    seed: Annotated[str, typer.Option(help="Split seed: the same files and seed give the same weights.")] = (
        DEFAULT_SEED
    ),
    bits: Annotated[int, typer.Option(help="log2 of the number of hashed n-gram buckets.", min=12, max=22)] = (
        DEFAULT_BITS
    ),
    deep: Annotated[
        bool, typer.Option("--deep", help="Also train the deeper tier over the local embeddings (needs the model).")
    ] = False,
    fast: Annotated[bool, typer.Option(help="Train the fast tier (the n-gram model).")] = True,
    file_weight: Annotated[
        list[str] | None,
        typer.Option(help="NAME=WEIGHT: weigh the rows of the file NAME (e.g. dev.jsonl=3) in training."),
    ] = None,
    source_power: Annotated[
        float,
        typer.Option(
            help="Damp large sources: a row weighs count(its source, its label) ** -POWER (0: no damping).",
            min=0.0,
            max=1.0,
        ),
    ] = SOURCE_POWER,
    language_power: Annotated[
        float,
        typer.Option(
            help="Balance languages in the fast tier: weigh each script or language to the overall share "
            "of attacks (1: fully, 0: not at all). The deeper tier never balances them.",
            min=0.0,
            max=1.0,
        ),
    ] = LANGUAGE_POWER,
    by_source: Annotated[
        int,
        typer.Option(
            "--by-source",
            help="Also measure on sources held out from training, in this many folds (one more fit per fold).",
            min=0,
            max=20,
        ),
    ] = 0,
) -> None:
    """Train the learned injection/jailbreak model, calibrate its thresholds and write it with its card."""
    deep_hits: HeldOutHits = {}
    fast_hits: HeldOutHits = {}
    row_weights = (source_power, language_power)
    deep_card = _train_deep(files, seed, source_power, by_source, deep_hits) if deep else None
    if fast:
        _train_fast(files, output, seed, bits, file_weight, row_weights, by_source, fast_hits)
    if deep_card is None:
        return
    if fast and by_source:
        # Both tiers were measured on the same held-out rows: what using both (``always``) gives.
        either = either_tier_rates(fast_hits, deep_hits)
        deep_card["metrics"]["held_out_by_source_either_tier"] = either
        rates = ", ".join(f"{kind} {v['at_or_above']:.3f}" for kind, v in either["pooled_at_flag"].items())
        typer.echo(f"either tier, held out by source, at flag: {rates}")
    from bastion.guard.train_deep import write_deep

    path = write_deep(deep_card, output) if output is not None else write_deep(deep_card)
    typer.echo(f"wrote {path}")


def _train_fast(
    files: list[Path],
    output: Path | None,
    seed: str,
    bits: int,
    file_weight: list[str] | None,
    row_weights: tuple[float, float],
    by_source: int,
    hits: HeldOutHits,
) -> None:
    try:
        weights = {name: float(value) for name, _, value in (item.partition("=") for item in file_weight or ())}
        result = train_model(
            files,
            seed=seed,
            bits=bits,
            file_weights=weights,
            source_power=row_weights[0],
            language_power=row_weights[1],
            by_source_folds=by_source,
            held_out_hits=hits,
            progress=typer.echo,
        )
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="FILES") from exc
    paths = write_model(result, output) if output is not None else write_model(result)
    test = result.card["metrics"]["test"]
    typer.echo(
        f"test rows {test['rows']}: PR-AUC {test['pr_auc']:.4f}; flag at {result.card['thresholds']['flag']:.4f} "
        f"(P {test['flag']['precision']:.3f} R {test['flag']['recall']:.3f} FPR {test['flag']['fpr']:.4f}); "
        f"block at {result.card['thresholds']['block']:.4f} (P {test['block']['precision']:.3f} "
        f"R {test['block']['recall']:.3f} FPR {test['block']['fpr']:.4f})"
    )
    held = result.card["metrics"].get("held_out_by_source")
    if held is not None:
        rates = ", ".join(f"{kind} {v['at_or_above']:.3f}" for kind, v in held["pooled_at_flag"].items())
        typer.echo(f"held out by source, at flag: {rates}")
    typer.echo(f"weights sha256 {result.card['weights_sha256']}")
    for path in paths:
        typer.echo(f"wrote {path}")


def _training_seed(file: Path) -> str | None:
    """The packaged model's split seed when ``file`` is one of its training files, else None."""
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    training = shared_model().card.get("training", {})
    if any(entry.get("sha256") == digest for entry in training.get("files", ())):
        return str(training.get("seed"))
    return None


def _train_deep(files: list[Path], seed: str, source_power: float, by_source: int, hits: HeldOutHits) -> dict[str, Any]:
    """The deeper tier's card (weights included), trained and reported; written by the caller."""
    from bastion.config.settings import LocalModelSettings
    from bastion.guard.train_deep import train_deep
    from bastion.local.embedder import Embedder

    embedder = Embedder.from_settings(LocalModelSettings())
    try:
        card = train_deep(
            files,
            embedder.encode_batch,
            seed=seed,
            source_power=source_power,
            by_source_folds=by_source,
            held_out_hits=hits,
            progress=typer.echo,
        )
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="FILES") from exc
    test = card["metrics"]["test"]
    typer.echo(
        f"deep tier: test PR-AUC {test['pr_auc']:.4f}; "
        f"flag R {test['flag']['recall']:.3f} FPR {test['flag']['fpr']:.4f}; "
        f"block R {test['block']['recall']:.3f} FPR {test['block']['fpr']:.4f}"
    )
    held = card["metrics"].get("held_out_by_source")
    if held is not None:
        rates = ", ".join(f"{kind} {v['at_or_above']:.3f}" for kind, v in held["pooled_at_flag"].items())
        typer.echo(f"deep tier held out by source, at flag: {rates}")
    return card


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


__all__ = ["BinaryMetrics", "PiiReport", "app"]
