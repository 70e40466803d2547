"""Dataset level: `tess train --backend jax --dataset digits --epochs 10 --seed 0`
reaches ≥ 95 % test accuracy and ends within 1.5 points of the NumPy backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("jax")

from tess.cli import main  # noqa: E402


def _train(backend: str, out: Path) -> dict:
    path = out / f"{backend}.json"
    code = main(["train", "--backend", backend, "--dataset", "digits", "--epochs", "10", "--seed", "0",
                 "--no-progress", "--json", str(path)])
    assert code == 0
    return json.loads(path.read_text())


@pytest.mark.slow
def test_digits_reaches_95_and_agrees_with_numpy(tmp_path: Path) -> None:
    jx = _train("jax", tmp_path)
    ref = _train("numpy", tmp_path)
    assert jx["backend"] == "jax" and len(jx["history"]) == 10
    assert jx["test_accuracy"] >= 0.95, jx["test_accuracy"]
    assert abs(jx["test_accuracy"] - ref["test_accuracy"]) <= 0.015, (jx["test_accuracy"], ref["test_accuracy"])
