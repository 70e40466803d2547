"""The accuracy benchmark: its summaries are what they say, and the committed table covers
every offline dataset, both TESS signals and BPTT over three seeds, and states where a
signal trails BPTT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a source-tree package, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import accuracy, figures  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _runs(accs):  # noqa: ANN001, ANN202
    return [{"seed": s, "test_accuracy": a, "train_accuracy": a, "seconds": 1.0, "history": [a]}
            for s, a in enumerate(accs)]


def test_summaries_and_gaps() -> None:
    row = {"dataset": "d", "preset": "p", "epochs": 1, "tess_lsg": accuracy.summarise(_runs([0.8, 0.9, 0.7])),
           "tess_readout_backprop": accuracy.summarise(_runs([0.95, 0.95, 0.95])),
           "bptt": accuracy.summarise(_runs([0.9, 0.9, 0.9]))}
    assert row["tess_lsg"]["test_accuracy"] == pytest.approx(0.8) and row["tess_lsg"]["min"] == 0.7
    assert figures.accuracy_stats(row["tess_lsg"])[1] == pytest.approx(row["tess_lsg"]["std"])
    g = accuracy.gaps(row)
    assert g["tess_lsg"]["points"] == pytest.approx(10.0) and g["tess_lsg"]["trails_bptt"]
    assert g["tess_lsg"]["per_seed"] == pytest.approx([10.0, 0.0, 20.0])
    assert g["tess_readout_backprop"]["points"] == pytest.approx(-5.0) and not g["tess_readout_backprop"]["trails_bptt"]
    row["gap_points"] = g
    text = accuracy.markdown({"rows": [row], "seeds": [0, 1, 2]})
    assert "TESS-LSG trails BPTT by 10.0 points" in text and "TESS-readout-backprop is ahead of BPTT by 5.0" in text


def test_committed_table_covers_every_offline_dataset_and_method() -> None:
    from tess.datasets import DATASETS, PAPER_DATASETS

    data = json.loads((RESULTS / "accuracy.json").read_text())
    assert not data["quick"] and data["seeds"] == [0, 1, 2]
    offline = {n for n in DATASETS if n not in PAPER_DATASETS}
    assert {r["dataset"] for r in data["rows"]} == offline == {"digits", "events", "order"}
    text = (RESULTS / "accuracy.md").read_text()
    for r in data["rows"]:
        assert figures.accuracy_methods(r) == list(accuracy.METHODS)
        for m in accuracy.METHODS:
            assert [run["seed"] for run in r[m]["runs"]] == [0, 1, 2] and r[m]["runs"][0]["history"]
        for m in ("tess_lsg", "tess_readout_backprop"):
            gap = r["gap_points"][m]["points"]
            if round(gap, 1) > 0:  # where the local rule trails BPTT, the table says so
                assert f"{accuracy.LABELS[m]} trails BPTT by {gap:.1f} points" in text
