"""Training the deeper tier (``bastion guard train --deep``) over a stand-in embedder: deterministic,
measured on sources held out from training, and, with the fast tier in the same command, the rates
of using both tiers on the same held-out rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from typer.testing import CliRunner

from bastion.cli.guard import app
from bastion.guard.train_deep import train_deep
from bastion.guard.train_sources import HeldOutHits

from .corpus import ATTACKS, write_training_file

DIM = 64


def hashed_words(texts: list[str]) -> npt.NDArray[np.float32]:
    """A stand-in for the sentence embedder: unit-length bags of hashed words."""
    vectors = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            vectors[row, int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % DIM] += 1.0
        norm = float(np.linalg.norm(vectors[row]))
        if norm:
            vectors[row] /= norm
    return vectors


def test_deep_training_is_deterministic_and_measured_by_source(tmp_path: Path) -> None:
    data = write_training_file(tmp_path / "train.jsonl")
    hits: HeldOutHits = {}
    card = train_deep([data], hashed_words, seed="t", by_source_folds=3, held_out_hits=hits)
    again = train_deep([data], hashed_words, seed="t")
    assert card["weights"] == again["weights"] and card["bias"] == again["bias"]
    assert len(card["weights"]) == DIM
    assert card["training"]["source_power"] == 0.5
    held = card["metrics"]["held_out_by_source"]
    assert len(held["folds"]) == 3
    assert held["pooled_at_flag"]["injection"]["rows"] == len(ATTACKS)
    # Every held-out row of the corpus is recorded once, with its kind.
    assert sum(hit.kind == "injection" for hit in hits.values()) == len(ATTACKS)
    assert "held_out_by_source" not in again["metrics"]


def test_train_command_reports_both_tiers_on_the_same_held_out_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FakeEmbedder:
        def encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
            return hashed_words(texts)

    import bastion.local.embedder as embedder_module

    monkeypatch.setattr(embedder_module.Embedder, "from_settings", staticmethod(lambda _settings: FakeEmbedder()))
    data = write_training_file(tmp_path / "train.jsonl")
    out = tmp_path / "model"
    out.mkdir()
    result = CliRunner().invoke(
        app, ["train", str(data), "--deep", "--output", str(out), "--by-source", "3", "--bits", "14"]
    )
    assert result.exit_code == 0, result.output
    assert "deep tier held out by source, at flag:" in result.output
    assert "either tier, held out by source, at flag:" in result.output
    deep = json.loads((out / "injection_deep.json").read_text(encoding="utf-8"))
    either = deep["metrics"]["held_out_by_source_either_tier"]
    fast = json.loads((out / "injection_model.json").read_text(encoding="utf-8"))["metrics"]["held_out_by_source"]
    assert either["rows"] > len(ATTACKS)
    for kind, rate in either["pooled_at_flag"].items():
        # Either tier catches at least what each tier catches alone.
        assert rate["at_or_above"] >= fast["pooled_at_flag"][kind]["at_or_above"]
        assert rate["at_or_above"] >= deep["metrics"]["held_out_by_source"]["pooled_at_flag"][kind]["at_or_above"]
