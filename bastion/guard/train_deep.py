"""Training the deeper injection tier (``bastion guard train --deep``) on the fast tier's splits.

Same rows, seed, split and left-out languages as ``train_run``; features are the local MiniLM
embeddings of each text's head (``deep_injection.embed_text``), supplied by the caller as a
synchronous batch function. An L2-regularised logistic regression (scipy L-BFGS), thresholds on
the calibration rows as for the fast tier, metrics on the test rows. Weights are written rounded
to eight decimals, so the same embeddings give the same file.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.guard.deep_injection import DEEP_MODEL_NAME, embed_text
from bastion.guard.evaluate import pr_auc
from bastion.guard.injection_model import MODEL_DIR
from bastion.guard.train import (
    DEFAULT_SEED,
    HARD_BENIGN_WEIGHT,
    assign_splits,
    augmented_rows,
    calibrated_thresholds,
    load_rows,
    one_sided_groups,
)
from bastion.guard.train_run import _operating_point, _per_kind

EncodeFunction = Callable[[list[str]], npt.NDArray[np.float32]]
DEEP_REGULARISATION_GRID = (1e-4, 1e-3, 1e-2)


def _fit(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], weight: npt.NDArray[np.float64], reg: float
) -> tuple[npt.NDArray[np.float64], float]:
    from scipy.optimize import minimize

    sample = weight / weight.sum()
    dim = x.shape[1]

    def objective(params: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        w, b = params[:dim], params[dim]
        z = x @ w + b
        loss = float(np.dot(sample, np.logaddexp(0.0, z) - y * z)) + 0.5 * reg * float(np.dot(w, w))
        residual = sample * (1.0 / (1.0 + np.exp(-z)) - y)
        return loss, np.concatenate([x.T @ residual + reg * w, [residual.sum()]])

    result = minimize(objective, np.zeros(dim + 1), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return result.x[:dim], float(result.x[dim])


def train_deep(
    paths: Sequence[Path],
    encode: EncodeFunction,
    *,
    seed: str = DEFAULT_SEED,
    progress: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    rows = load_rows(paths)
    assign_splits(rows, seed)
    skipped = one_sided_groups([row for row in rows if row.split == "train"])
    rows.extend(augmented_rows([row for row in rows if row.group not in skipped], seed))
    started = time.perf_counter()
    vectors = np.asarray(encode([embed_text(row.text) for row in rows]), dtype=np.float64)
    per_text_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
    progress(f"embedded {len(rows)} texts, {per_text_ms:.1f} ms per text")
    labels = np.asarray([row.label for row in rows], dtype=np.float64)
    weights = np.asarray([HARD_BENIGN_WEIGHT if row.kind == "benign-hard" else 1.0 for row in rows])
    train = np.asarray([row.split == "train" and row.group not in skipped for row in rows])
    calib = [i for i, row in enumerate(rows) if row.split == "calibration"]
    test = [i for i, row in enumerate(rows) if row.split == "test"]

    best: tuple[float, float, npt.NDArray[np.float64], float] | None = None
    for reg in DEEP_REGULARISATION_GRID:
        w, b = _fit(vectors[train], labels[train], weights[train], reg)
        auc = pr_auc([rows[i].label for i in calib], list(1 / (1 + np.exp(-(vectors[calib] @ w + b)))))
        progress(f"deep regularisation {reg:g}: calibration PR-AUC {auc:.4f}")
        if best is None or auc > best[0] + 1e-9:
            best = (auc, reg, w, b)
    assert best is not None
    _, reg, w, b = best
    w, b = np.round(w, 8), round(b, 8)

    def scores(indices: list[int]) -> list[float]:
        return [float(s) for s in 1 / (1 + np.exp(-(vectors[indices] @ w + b)))]

    calib_scores = scores(calib)
    flag, block = calibrated_thresholds(rows, calib, calib_scores)
    test_scores = scores(test)
    test_labels = [rows[i].label for i in test]
    return {
        "name": DEEP_MODEL_NAME,
        "version": 1,
        "features": "all-MiniLM-L6-v2 sentence embedding (384, unit length) of the text's first 1200 characters",
        "thresholds": {"flag": round(flag, 6), "block": round(block, 6)},
        "training": {
            "seed": seed,
            "files": [{"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in paths],
            "regularisation": reg,
            "left_out_groups": skipped,
            "embedding_ms_per_text_in_training_batches": round(per_text_ms, 2),
        },
        "metrics": {
            "test": {
                "rows": len(test),
                "pr_auc": round(pr_auc(test_labels, test_scores), 4),
                "flag": _operating_point(test_labels, test_scores, flag),
                "block": _operating_point(test_labels, test_scores, block),
                "by_kind_at_flag": _per_kind([rows[i] for i in test], test_scores, flag),
            }
        },
        "weights": [float(v) for v in w],
        "bias": b,
    }


def write_deep(card: dict[str, Any], directory: Path = MODEL_DIR) -> Path:
    path = directory / f"{DEEP_MODEL_NAME}.json"
    path.write_text(json.dumps(card, sort_keys=True) + "\n", encoding="utf-8")
    return path
