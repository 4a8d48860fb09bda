"""The fast injection tier on data unlike its corpus: one threshold swept over held-out-by-source scores.

Trains the fast tier as ``bastion guard train --by-source 5`` does (one regularisation, the
packaged model's), keeps every held-out row's score from the fold model that never saw its source,
and prints, for a range of thresholds, the share of rows of each kind at or above it (recall for
attacks, false-positive rate for benign rows), then the lowest threshold at which ordinary benign
rows stay at or under 3 % and hard benign rows at or under 5 %. About a minute on two cores.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.guard_threshold_sweep \\
        ../shared/data/prompt-injection/train.jsonl ../shared/data/prompt-injection/dev.jsonl
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bastion.guard.train import REGULARISATION_GRID
from bastion.guard.train_run import train_model
from bastion.guard.train_sources import HeldOutHits

KINDS = ("injection", "jailbreak", "attack", "benign", "benign-hard")
THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def held_out_scores(paths: Sequence[Path]) -> list[tuple[str, float]]:
    """(kind, score) of every held-out row, each scored by its fold's model."""
    hits: HeldOutHits = {}
    train_model(paths, by_source_folds=5, regularisation_grid=(REGULARISATION_GRID[0],), held_out_hits=hits)
    return [(hit.kind, hit.score) for hit in hits.values()]


def rates(pooled: Sequence[tuple[str, float]], threshold: float) -> dict[str, float]:
    rows = Counter(kind for kind, _ in pooled)
    hits = Counter(kind for kind, score in pooled if score >= threshold)
    return {kind: hits[kind] / rows[kind] for kind in KINDS if rows[kind]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    pooled = held_out_scores(parser.parse_args().files)
    print(f"{len(pooled)} held-out rows: {dict(Counter(kind for kind, _ in pooled))}")
    print(f"{'threshold':>9} " + " ".join(f"{kind:>12}" for kind in KINDS))
    for threshold in THRESHOLDS:
        shares = rates(pooled, threshold)
        print(f"{threshold:9.2f} " + " ".join(f"{shares.get(kind, 0.0):12.3f}" for kind in KINDS))
    for step in range(300, 1000, 5):
        shares = rates(pooled, step / 1000)
        if shares.get("benign", 0.0) <= 0.03 and shares.get("benign-hard", 0.0) <= 0.05:
            print(f"false positives at most 3 % / 5 % from {step / 1000:.3f}: "
                  + ", ".join(f"{kind} {share:.3f}" for kind, share in shares.items()))  # fmt: skip
            break


if __name__ == "__main__":
    main()
